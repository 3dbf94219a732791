//! Console text without log prefixes or colour codes.
//!
//! Goes through the UART shell when it is active (it then redraws its prompt
//! after the text), else through printk. Use this for the user-visible text
//! (the quoted console lines); diagnostics go through the `log` crate.

use crate::ffi;

/// Write raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: pointer and length describe a live slice; C prints exactly `len` bytes.
    unsafe { ffi::rpmsg_glue_console_write(bytes.as_ptr().cast(), bytes.len()) }
}

/// A `fmt::Write` handle on the console. Each `write_str` is one console write,
/// so prefer formatting a whole line at once (the macros below do).
pub struct Console;

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Format into a fixed buffer, then write it in one piece (so concurrent
/// writers do not interleave inside a line). Longer text is truncated to 512 bytes.
#[doc(hidden)]
pub fn _print(args: core::fmt::Arguments<'_>) {
    let mut buf = crate::FixedBuf::<512>::new();
    let _ = core::fmt::write(&mut buf, args);
    write_bytes(buf.as_bytes());
}

/// Print to the console (no newline, no prefix).
#[macro_export]
macro_rules! console_print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Print a line to the console (no prefix).
#[macro_export]
macro_rules! console_println {
    () => { $crate::console::write_bytes(b"\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
