//! Kernel time, for the engine's clock and timeouts.

use crate::ffi;

/// Milliseconds since boot (monotonic).
pub fn uptime_ms() -> u64 {
    // SAFETY: plain call into the C shim; k_uptime_get() is never negative.
    unsafe { ffi::rpmsg_glue_uptime_ms() as u64 }
}

/// Sleep the calling thread for `ms` milliseconds.
pub fn sleep_ms(ms: u32) {
    // SAFETY: plain call into the C shim.
    unsafe { ffi::rpmsg_glue_sleep_ms(ms.min(i32::MAX as u32) as i32) }
}
