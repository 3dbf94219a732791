//! The receive thread: defined in C (`K_THREAD_DEFINE`, created at boot but not started);
//! its entry is `rpmsg_glue_rx_thread_main`, which the image crate defines (it calls its
//! application's receive loop directly).
//!
//! Starting it from C avoids depending on zephyr-lang-rust's thread API, which differs
//! between revisions (and on Zephyr 3.6 its newer `k_wakeup()` start never runs a thread
//! created with K_FOREVER). Stack size and priority are
//! CONFIG_RPMSG_IVSHMEM_RX_THREAD_STACK_SIZE / _PRIORITY.

use crate::ffi;
use core::sync::atomic::{AtomicBool, Ordering};

static STARTED: AtomicBool = AtomicBool::new(false);

/// Starts the receive thread. Only the first call starts it; later calls return `false`
/// and do nothing.
pub fn start_rx_thread() -> bool {
    if STARTED.swap(true, Ordering::AcqRel) {
        return false;
    }
    // SAFETY: plain call into the C shim (k_thread_start of a thread defined there).
    unsafe { ffi::rpmsg_glue_rx_thread_start() };
    true
}
