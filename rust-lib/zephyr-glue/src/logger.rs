//! `log` crate backend into Zephyr logging (module `rpmsg`).
//!
//! Formats each record into a fixed 256-byte buffer on the caller's stack (no
//! allocator), then hands it to LOG_ERR/WRN/INF/DBG in the C shim. Zephyr's
//! deferred logging copies the string.

use crate::ffi;
use log::{Level, LevelFilter, Log, Metadata, Record};

struct ZephyrLog;

static LOGGER: ZephyrLog = ZephyrLog;

impl Log for ZephyrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => 1,
            Level::Warn => 2,
            Level::Info => 3,
            Level::Debug | Level::Trace => 4,
        };
        let mut buf = crate::FixedBuf::<256>::new();
        let _ = core::fmt::write(&mut buf, *record.args());
        // SAFETY: as_c_str() returns a NUL-terminated buffer that lives across the call.
        unsafe { ffi::rpmsg_glue_log(level, buf.as_c_str()) }
    }

    /// Waits until the lines logged so far are on the console (deferred logging).
    fn flush(&self) {
        // SAFETY: no arguments; the shim only reads the log buffers' state and sleeps.
        unsafe { ffi::rpmsg_glue_log_flush() }
    }
}

/// Install the logger (once; later calls only change the level). Zephyr's own
/// CONFIG_LOG_DEFAULT_LEVEL filters again on the C side.
pub fn init(level: LevelFilter) {
    // set_logger fails only if a logger is already set: keep the first one.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
