//! The shell a command runs in, and the arguments Zephyr's shell hands its handler.
//!
//! The `rpmsg_ivshmem` commands are registered in C (`SHELL_CMD_ARG(send, ..., 3, 0)`,
//! `bench` 1 to 3 words, `status` 1, with CONFIG_RPMSG_IVSHMEM_SHELL=y), so Zephyr's shell
//! checks the argument count itself and prints, for `rpmsg_ivshmem send` alone:
//!
//! ```text
//! send: wrong parameter count
//! send - Usage: rpmsg_ivshmem send <string> <number of messages>
//! ```
//!
//! With the right count it calls the handlers: the host's `rpmsg_glue_shell_send`,
//! `_bench` and `_status` (`app::commands`), the remote's `_remote_status`
//! (`app::remote_status`; the remote registers only `status`).

use crate::ffi;
use core::ffi::{c_char, c_void, CStr};

/// The shell a command runs in; output written here goes to that shell.
pub struct Shell {
    raw: *const c_void,
}

impl Shell {
    /// The shell Zephyr passed to a command handler.
    pub fn from_raw(raw: *const c_void) -> Self {
        Self { raw }
    }

    /// Write raw bytes (no prefix, no colour).
    pub fn write_bytes(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // SAFETY: `raw` is the live shell of the running command (or null, which the C
        // side handles); the slice is valid for `len` bytes.
        unsafe { ffi::rpmsg_glue_shell_write(self.raw, bytes.as_ptr().cast(), bytes.len()) }
    }
}

/// Argument `i` of a command handler (`None` beyond `argc`).
///
/// # Safety
///
/// `argv` must hold `argc` valid NUL-terminated strings that outlive `'a`, as Zephyr's
/// shell passes them to a handler for the duration of the call.
pub unsafe fn arg<'a>(argc: usize, argv: *const *const c_char, i: usize) -> Option<&'a [u8]> {
    if i >= argc || argv.is_null() {
        return None;
    }
    // SAFETY: i < argc, so `argv.add(i)` is one of the `argc` pointers the caller vouches
    // for, and it points to a NUL-terminated string that lives for 'a.
    Some(unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes())
}
