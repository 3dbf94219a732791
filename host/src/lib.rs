//! RPMsg over IVSHMEM, host side (Zephyr). Thin: the logic lives in rust-lib (the
//! engine) and rust-lib/zephyr-glue (`app::host`).
#![no_std]

#[no_mangle]
extern "C" fn rust_main() {
    // Starts the receive thread and returns: the shell is usable at once.
    zephyr_glue::app::host::main();
}
