//! Mapping the shared-memory object that the server hands out.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{self, NonNull};

use crate::error::Error;

/// A read/write `MAP_SHARED` mapping of the ivshmem shared memory, unmapped
/// on drop.
///
/// Other processes (QEMU guests, other peers) change this memory at any
/// time, so no Rust reference into it is handed out: use [`ShmMapping::read`]
/// and [`ShmMapping::write`] (volatile byte copies, bounds-checked) or work
/// with [`ShmMapping::as_ptr`] under your own synchronisation protocol.
#[derive(Debug)]
pub struct ShmMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned memory that stays valid wherever it is moved;
// all access goes through raw pointers.
unsafe impl Send for ShmMapping {}

impl ShmMapping {
    /// Maps `len` bytes of `fd` from offset 0, read/write and shared.
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Self, Error> {
        if len == 0 {
            return Err(Error::Config("cannot map an empty shared memory".into()));
        }
        // SAFETY: mapping a file descriptor we were given; the result is checked.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::io(
                format!("mmap of {len} bytes of shared memory"),
                std::io::Error::last_os_error(),
            ));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| Error::Protocol("mmap returned a null pointer".into()))?;
        Ok(ShmMapping { ptr, len })
    }

    /// First byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty mappings are refused by [`ShmMapping::new`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::Config(format!(
                "range {offset:#x}+{len:#x} is outside the {:#x}-byte shared memory",
                self.len
            ))),
        }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf` (volatile reads).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: offset + i < len was checked; the memory is mapped.
            *b = unsafe { ptr::read_volatile(self.ptr.as_ptr().add(offset + i)) };
        }
        Ok(())
    }

    /// Copies `data` to `offset` (volatile writes).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.check(offset, data.len())?;
        for (i, b) in data.iter().enumerate() {
            // SAFETY: offset + i < len was checked; the memory is mapped writable.
            unsafe { ptr::write_volatile(self.ptr.as_ptr().add(offset + i), *b) };
        }
        Ok(())
    }
}

impl Drop for ShmMapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap that nothing else unmaps.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
