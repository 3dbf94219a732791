//! Time (the hardware cycle counter) for timeouts, spins and measurements, and the
//! event one thread wakes another with.

use crate::ffi;

/// The hardware cycle counter (64 bits, never wraps in practice): for measurements and
/// short spins (the kernel's tick clock has 1 ms resolution with our qemu_cortex_a53 config).
#[inline]
pub fn cycles() -> u64 {
    // SAFETY: plain call into the C shim.
    unsafe { ffi::rpmsg_glue_cycles() }
}

/// Frequency of [`cycles`] in Hz.
pub fn cycles_per_sec() -> u32 {
    // SAFETY: plain call into the C shim.
    unsafe { ffi::rpmsg_glue_cycles_per_sec() }
}

/// `us` microseconds in [`cycles`] (at least 1 for a non-zero `us`).
pub fn us_to_cycles(us: u64) -> u64 {
    let c = us.saturating_mul(u64::from(cycles_per_sec())) / 1_000_000;
    if us > 0 {
        c.max(1)
    } else {
        0
    }
}

/// `cycles` in microseconds (rounded down).
pub fn cycles_to_us(cycles: u64) -> u64 {
    let hz = u64::from(cycles_per_sec()).max(1);
    // Split to avoid overflowing u64 for long spans.
    cycles / hz * 1_000_000 + cycles % hz * 1_000_000 / hz
}

/// A binary "something changed" event from one thread to another (a k_sem with
/// limit 1 in the C shim): e.g. a shell command that ended wakes the host's receive
/// thread, which sleeps on it instead of the doorbell while the command receives. One
/// event per image.
pub mod event {
    use crate::ffi;

    /// Wake the waiter (several raises before one wait give one wake-up).
    pub fn raise() {
        // SAFETY: plain call into the C shim.
        unsafe { ffi::rpmsg_glue_event_raise() }
    }

    /// Wait until raised (`true`) or `timeout_ms` passed (`false`); `None`: forever.
    pub fn wait(timeout_ms: Option<u32>) -> bool {
        let t = match timeout_ms {
            None => -1,
            Some(ms) => ms.min(i32::MAX as u32) as i32,
        };
        // SAFETY: plain call into the C shim.
        unsafe { ffi::rpmsg_glue_event_wait(t) == 0 }
    }
}
