//! RPMsg over IVSHMEM, remote side (Zephyr). Thin: the logic lives in rust-lib (the
//! engine) and rust-lib/zephyr-glue (`app::remote`).
#![no_std]

#[no_mangle]
extern "C" fn rust_main() {
    // Starts the receive thread, which attaches, announces "k" and echoes.
    zephyr_glue::app::remote::main();
}
