//! Zephyr glue for the RPMsg-over-IVSHMEM firmware.
//!
//! Everything Zephyr-specific that `host/` and `remote/` need, over the C shim in
//! `c/rpmsg_glue.c` (compiled into each image by the shared `CMakeLists.txt`):
//!
//! - [`ivshmem`]: the shared region, own id, vectors, doorbell (ring a peer,
//!   wait for a ring).
//! - [`time`]: uptime and sleep, for the engine's clock and timeouts.
//! - [`console`]: text without log prefixes.
//! - [`shell`]: the shell a command runs in, and its arguments (the `rpmsg_ivshmem`
//!   commands are registered in C and handled in `app`).
//! - [`thread`]: the receive thread (defined in C; its entry is the image crate's
//!   `rpmsg_glue_rx_thread_main`).
//! - `logger`: diagnostics into Zephyr logging without `core::fmt`, compiled out above
//!   CONFIG_RPMSG_IVSHMEM_LOG_LEVEL.
//! - `engine` (feature `engine`): `rpmsg-engine`'s `Doorbell` for Zephyr.
//! - `app` (feature `engine`): the two images' adapters over `rpmsg-app` (the
//!   application both platforms share); the image crates only call them.
//!
//! The critical-section implementation comes from the `zephyr` crate (linked
//! through this crate), which `rpmsg-engine`'s `critical-section` uses.
#![no_std]
#![deny(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

// Linked for its panic handler, critical-section implementation and Kconfig.
pub use zephyr;

mod ffi;

#[cfg(feature = "engine")]
pub mod app;
pub mod console;
#[cfg(feature = "engine")]
pub mod engine;
pub mod ivshmem;
pub(crate) mod logger;
pub mod shell;
pub mod thread;
pub mod time;

/// Defines an image's two C entry points for the application `$role` (`host` or
/// `remote`, a module of [`app`]): `rust_main`, which zephyr-lang-rust calls from Zephyr's
/// main thread, and `rpmsg_glue_rx_thread_main`, the entry of the receive thread that the
/// C shim defines.
#[cfg(feature = "engine")]
#[macro_export]
macro_rules! image_entry_points {
    ($role:ident) => {
        #[no_mangle]
        extern "C" fn rust_main() {
            $crate::app::$role::main();
        }

        #[no_mangle]
        extern "C" fn rpmsg_glue_rx_thread_main() {
            $crate::app::$role::rx_main();
        }
    };
}

/// A negative Zephyr errno value returned by a C call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Turn a C return value (0 or negative errno) into a `Result`.
fn check(ret: core::ffi::c_int) -> Result<(), Errno> {
    if ret < 0 {
        Err(Errno(ret))
    } else {
        Ok(())
    }
}

/// A fixed-capacity text buffer (truncates, never allocates, keeps room for a NUL), for
/// log lines and console blocks.
pub(crate) struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedBuf<N> {
    pub(crate) const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Empties the buffer.
    #[cfg(feature = "engine")]
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends raw bytes (not necessarily UTF-8), truncating.
    #[inline]
    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) {
        push_into(&mut self.buf, &mut self.len, bytes);
    }

    /// Appends `v` in decimal.
    pub(crate) fn push_u64(&mut self, v: u64) {
        let mut digits = [0u8; 20];
        self.push_bytes(rpmsg_app::decimal(v, &mut digits));
    }

    /// NUL-terminate (truncating the last byte if full) and return a C string pointer.
    pub(crate) fn as_c_str(&mut self) -> *const core::ffi::c_char {
        let end = if self.len < N { self.len } else { N - 1 };
        self.buf[end] = 0;
        self.buf.as_ptr().cast()
    }
}

/// The body of [`FixedBuf::push_bytes`], not generic over the capacity (one copy in the
/// image instead of one per buffer size).
#[inline(never)]
fn push_into(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    let room = buf.len().saturating_sub(1).saturating_sub(*len);
    let n = bytes.len().min(room);
    buf[*len..*len + n].copy_from_slice(&bytes[..n]);
    *len += n;
}

impl<const N: usize> rpmsg_app::Text for FixedBuf<N> {
    fn put(&mut self, bytes: &[u8]) {
        self.push_bytes(bytes);
    }
}
