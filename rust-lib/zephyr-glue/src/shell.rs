//! The `rpmsg_ivshmem` shell commands: `send <string> <number of messages>`,
//! `bench [payload] [count]` and `status`.
//!
//! Registered in C (`SHELL_CMD_ARG(send, ..., 3, 0)`, `SHELL_CMD_ARG(status, ...,
//! 1, 0)`, with CONFIG_RPMSG_IVSHMEM_SHELL=y) so Zephyr's shell checks the
//! argument count itself and prints, for `rpmsg_ivshmem send` alone:
//!
//! ```text
//! send: wrong parameter count
//! send - Usage: rpmsg_ivshmem send <string> <number of messages>
//! ```
//!
//! With the right count it calls the handler the application set with
//! [`set_send_handler`], with the two arguments as raw bytes. `bench` (0 to 2
//! arguments) calls the one set with [`set_bench_handler`], `status` the one set with
//! [`set_status_handler`]. Without a handler they print
//! `RPMsg over IVSHMEM backend is not ready yet!`.

use crate::ffi;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

/// The shell a command runs in; output written here goes to that shell.
pub struct Shell {
    raw: *const c_void,
}

impl Shell {
    /// Write raw bytes (no prefix, no colour).
    pub fn write_bytes(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // SAFETY: `raw` is the live shell of the running command; slice is valid.
        unsafe { ffi::rpmsg_glue_shell_write(self.raw, bytes.as_ptr().cast(), bytes.len()) }
    }

    /// Format and write in one piece (truncated to 512 bytes).
    pub fn print(&self, args: core::fmt::Arguments<'_>) {
        let mut buf = crate::FixedBuf::<512>::new();
        let _ = core::fmt::write(&mut buf, args);
        self.write_bytes(buf.as_bytes());
    }
}

impl core::fmt::Write for &Shell {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Handler of `rpmsg_ivshmem send`: `(shell, string, count)` as given (the count
/// is not parsed here). Returns the command's result (0 or a negative errno).
pub type SendHandler = fn(sh: &Shell, text: &[u8], count: &[u8]) -> i32;

/// Handler of `rpmsg_ivshmem status`. Returns the command's result.
pub type StatusHandler = fn(sh: &Shell) -> i32;

/// Handler of `rpmsg_ivshmem bench [payload] [count]`: the optional arguments as given.
pub type BenchHandler = fn(sh: &Shell, payload: Option<&[u8]>, count: Option<&[u8]>) -> i32;

static SEND: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static STATUS: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static BENCH: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

const NOT_READY: &[u8] = b"RPMsg over IVSHMEM backend is not ready yet!\n";

/// Set (or replace) the handler of `rpmsg_ivshmem send`.
pub fn set_send_handler(handler: SendHandler) {
    SEND.store(handler as *mut (), Ordering::Release);
}

/// Set (or replace) the handler of `rpmsg_ivshmem bench`.
pub fn set_bench_handler(handler: BenchHandler) {
    BENCH.store(handler as *mut (), Ordering::Release);
}

/// Set (or replace) the handler of `rpmsg_ivshmem status`.
pub fn set_status_handler(handler: StatusHandler) {
    STATUS.store(handler as *mut (), Ordering::Release);
}

/// Called by Zephyr's shell (registered in c/rpmsg_glue.c).
#[no_mangle]
extern "C" fn rpmsg_glue_shell_status(
    sh: *const c_void,
    _argc: usize,
    _argv: *const *const c_char,
) -> c_int {
    let shell = Shell { raw: sh };
    let p = STATUS.load(Ordering::Acquire);
    if p.is_null() {
        shell.write_bytes(NOT_READY);
        return -11; // EAGAIN
    }
    // SAFETY: STATUS only ever holds a `StatusHandler` stored by set_status_handler.
    let handler: StatusHandler = unsafe { core::mem::transmute::<*mut (), StatusHandler>(p) };
    handler(&shell)
}

/// Called by Zephyr's shell (registered in c/rpmsg_glue.c).
#[no_mangle]
extern "C" fn rpmsg_glue_shell_send(
    sh: *const c_void,
    argc: usize,
    argv: *const *const c_char,
) -> c_int {
    let shell = Shell { raw: sh };
    if argc != 3 || argv.is_null() {
        // The shell enforces 3 (mandatory args); be defensive anyway.
        shell.write_bytes(b"send: wrong parameter count\n");
        return -22; // EINVAL
    }
    // SAFETY: the shell passes argc valid NUL-terminated strings.
    let (text, count) = unsafe {
        (
            CStr::from_ptr(*argv.add(1)).to_bytes(),
            CStr::from_ptr(*argv.add(2)).to_bytes(),
        )
    };
    let p = SEND.load(Ordering::Acquire);
    if p.is_null() {
        shell.write_bytes(NOT_READY);
        return -11; // EAGAIN
    }
    // SAFETY: SEND only ever holds a `SendHandler` stored by set_send_handler.
    let handler: SendHandler = unsafe { core::mem::transmute::<*mut (), SendHandler>(p) };
    handler(&shell, text, count)
}

/// Called by Zephyr's shell (registered in c/rpmsg_glue.c).
#[no_mangle]
extern "C" fn rpmsg_glue_shell_bench(
    sh: *const c_void,
    argc: usize,
    argv: *const *const c_char,
) -> c_int {
    let shell = Shell { raw: sh };
    // SAFETY: the shell passes argc valid NUL-terminated strings (it enforces 1..=3).
    let arg = |i: usize| {
        (i < argc && !argv.is_null()).then(|| unsafe { CStr::from_ptr(*argv.add(i)).to_bytes() })
    };
    let p = BENCH.load(Ordering::Acquire);
    if p.is_null() {
        shell.write_bytes(NOT_READY);
        return -11; // EAGAIN
    }
    // SAFETY: BENCH only ever holds a `BenchHandler` stored by set_bench_handler.
    let handler: BenchHandler = unsafe { core::mem::transmute::<*mut (), BenchHandler>(p) };
    handler(&shell, arg(1), arg(2))
}
