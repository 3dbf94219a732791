//! Diagnostics into Zephyr logging (module `rpmsg`), without `core::fmt`.
//!
//! [`error!`], [`warning!`] and [`info!`] take the
//! pieces of a line (strings, numbers, errors: anything [`Arg`]), concatenate them into a
//! fixed 256-byte buffer on the caller's stack (no allocator, no formatting machinery)
//! and hand it to LOG_ERR/WRN/INF in the C shim; Zephyr's deferred logging copies it.
//!
//! Lines above CONFIG_RPMSG_IVSHMEM_LOG_LEVEL (Zephyr's usual per-module level, default
//! CONFIG_LOG_DEFAULT_LEVEL) are compiled out, text included.

use crate::{ffi, Errno, FixedBuf};

/// The buffer a line is built in.
pub(crate) type Line = FixedBuf<256>;

/// LOG_LEVEL_ERR.
pub(crate) const ERROR: u32 = 1;
/// LOG_LEVEL_WRN.
pub(crate) const WARN: u32 = 2;
/// LOG_LEVEL_INF.
pub(crate) const INFO: u32 = 3;

/// The most detailed level compiled in: CONFIG_RPMSG_IVSHMEM_LOG_LEVEL (0 without logging).
pub(crate) const MAX_LEVEL: u32 = if cfg!(CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_DBG) {
    4
} else if cfg!(CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_INF) {
    INFO
} else if cfg!(CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_WRN) {
    WARN
} else if cfg!(CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_ERR) {
    ERROR
} else if cfg!(CONFIG_RPMSG_IVSHMEM_LOG_LEVEL_DEFAULT) {
    default_level()
} else {
    0
};

#[cfg(CONFIG_LOG)]
const fn default_level() -> u32 {
    zephyr::kconfig::CONFIG_LOG_DEFAULT_LEVEL as u32
}

#[cfg(not(CONFIG_LOG))]
const fn default_level() -> u32 {
    0
}

/// A piece of a log line.
pub(crate) trait Arg {
    /// Appends this piece to `line`.
    fn put(&self, line: &mut Line);
}

impl Arg for &str {
    fn put(&self, line: &mut Line) {
        line.push_bytes(self.as_bytes());
    }
}

impl Arg for u64 {
    fn put(&self, line: &mut Line) {
        line.push_u64(*self);
    }
}

impl Arg for u32 {
    fn put(&self, line: &mut Line) {
        line.push_u64(u64::from(*self));
    }
}

impl Arg for u16 {
    fn put(&self, line: &mut Line) {
        line.push_u64(u64::from(*self));
    }
}

impl Arg for usize {
    fn put(&self, line: &mut Line) {
        line.push_u64(*self as u64);
    }
}

/// As `Display`: `errno -22`.
impl Arg for Errno {
    fn put(&self, line: &mut Line) {
        line.push_bytes(b"errno -");
        line.push_u64(u64::from(self.0.unsigned_abs()));
    }
}

/// A signed number (the peer id -1 for "none").
pub(crate) struct Signed(pub(crate) i64);

impl Arg for Signed {
    fn put(&self, line: &mut Line) {
        if self.0 < 0 {
            line.push_bytes(b"-");
        }
        line.push_u64(self.0.unsigned_abs());
    }
}

/// An address as `{:p}` prints it (`0x` and lowercase hex digits).
pub(crate) struct Ptr(pub(crate) *mut u8);

impl Arg for Ptr {
    fn put(&self, line: &mut Line) {
        let mut v = self.0 as usize;
        let mut digits = [0u8; 2 + 2 * core::mem::size_of::<usize>()];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[v & 0xf];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        line.push_bytes(b"0x");
        line.push_bytes(&digits[i..]);
    }
}

/// As `Debug`: the variant's name.
impl Arg for crate::ivshmem::OpenError {
    fn put(&self, line: &mut Line) {
        line.push_bytes(match self {
            Self::NotReady => b"NotReady",
            Self::NoMemory => b"NoMemory",
        });
    }
}

/// As its `Display`.
#[cfg(feature = "engine")]
impl Arg for rpmsg_engine::Error {
    fn put(&self, line: &mut Line) {
        rpmsg_app::put_error(line, *self);
    }
}

/// Logs the concatenation of `args` at `level` (compiled out above [`MAX_LEVEL`]).
#[inline(always)]
pub(crate) fn log(level: u32, args: &[&dyn Arg]) {
    if level <= MAX_LEVEL {
        emit(level, args);
    }
}

#[inline(never)]
fn emit(level: u32, args: &[&dyn Arg]) {
    let mut line = Line::new();
    for arg in args {
        arg.put(&mut line);
    }
    write(level, &mut line);
}

/// Logs the text in `line` at `level`.
pub(crate) fn write(level: u32, line: &mut Line) {
    // SAFETY: as_c_str() returns a NUL-terminated buffer that lives across the call.
    unsafe { ffi::rpmsg_glue_log(level, line.as_c_str()) }
}

/// Waits until the lines logged so far are on the console (deferred logging).
pub(crate) fn flush() {
    // SAFETY: no arguments; the shim only reads the log buffers' state and sleeps.
    unsafe { ffi::rpmsg_glue_log_flush() }
}

/// Logs an error line: `error!("host: engine: ", e)`.
macro_rules! error {
    ($($arg:expr),+ $(,)?) => {
        $crate::logger::log($crate::logger::ERROR, &[$(&$arg as &dyn $crate::logger::Arg),+])
    };
}

/// Logs a warning line (see [`error!`]).
macro_rules! warning {
    ($($arg:expr),+ $(,)?) => {
        $crate::logger::log($crate::logger::WARN, &[$(&$arg as &dyn $crate::logger::Arg),+])
    };
}

/// Logs an info line (see [`error!`]).
macro_rules! info {
    ($($arg:expr),+ $(,)?) => {
        $crate::logger::log($crate::logger::INFO, &[$(&$arg as &dyn $crate::logger::Arg),+])
    };
}

pub(crate) use {error, info, warning};
