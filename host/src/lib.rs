//! RPMsg over IVSHMEM, host side (Zephyr). Thin: the application is rust-lib/app
//! (`rpmsg-app`, shared with the native peer), its Zephyr adapter rust-lib/zephyr-glue
//! (`app::host`).
#![no_std]

#[no_mangle]
extern "C" fn rust_main() {
    // Starts the receive thread and returns: the shell is usable at once.
    zephyr_glue::app::host::main();
}

/// Entry of the receive thread (defined in the glue's C shim, started by `main`).
#[no_mangle]
extern "C" fn rpmsg_glue_rx_thread_main() {
    zephyr_glue::app::host::rx_main();
}
