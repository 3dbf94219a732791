//! The receive thread: defined in C (`K_THREAD_DEFINE`, created at boot but not
//! started), runs the function given to [`start_rx_thread`].
//!
//! Starting it from C avoids depending on zephyr-lang-rust's thread API, which
//! differs between revisions (and on Zephyr 3.6 its newer `k_wakeup()` start
//! never runs a thread created with K_FOREVER). Stack size and priority are
//! CONFIG_RPMSG_IVSHMEM_RX_THREAD_STACK_SIZE / _PRIORITY.

use crate::ffi;
use core::sync::atomic::{AtomicPtr, Ordering};

static ENTRY: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Start the receive thread running `entry`. Only the first call starts it;
/// later calls return `false` and do nothing.
pub fn start_rx_thread(entry: fn()) -> bool {
    let p = entry as *mut ();
    if ENTRY
        .compare_exchange(
            core::ptr::null_mut(),
            p,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        return false;
    }
    // SAFETY: plain call into the C shim; the thread reads ENTRY after this store.
    unsafe { ffi::rpmsg_glue_rx_thread_start() };
    true
}

/// Entry of the C-defined thread.
#[no_mangle]
extern "C" fn rpmsg_glue_rx_thread_main() {
    let p = ENTRY.load(Ordering::Acquire);
    if p.is_null() {
        log::error!("rx thread started without an entry");
        return;
    }
    // SAFETY: ENTRY only ever holds a `fn()` stored by start_rx_thread.
    let entry: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(p) };
    entry();
}
