//! Console text without log prefixes or colour codes.
//!
//! Goes through the UART shell when it is active (it then redraws its prompt
//! after the text), else through printk. Use this for the user-visible text
//! (the quoted console lines); diagnostics go through [`crate::logger`].

use crate::ffi;

/// Write raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: pointer and length describe a live slice; C prints exactly `len` bytes.
    unsafe { ffi::rpmsg_glue_console_write(bytes.as_ptr().cast(), bytes.len()) }
}
