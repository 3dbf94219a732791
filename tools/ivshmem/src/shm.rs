//! Mapping the shared-memory object that the server hands out.

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU8, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::Error;

/// A read/write `MAP_SHARED` mapping of the ivshmem shared memory, unmapped
/// on drop.
///
/// Other processes (QEMU guests, other peers) change this memory at any
/// time, so no plain Rust reference into it is handed out: use
/// [`ShmMapping::read`] and [`ShmMapping::write`] (bounds-checked copies
/// through atomic bytes) or work with [`ShmMapping::as_ptr`] under your own
/// synchronisation protocol.
#[derive(Debug)]
pub struct ShmMapping {
    map: MmapRaw,
}

impl ShmMapping {
    /// Maps `len` bytes of `fd` from offset 0, read/write and shared.
    pub fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Self, Error> {
        if len == 0 {
            return Err(Error::Config("cannot map an empty shared memory".into()));
        }
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&fd)
            .map_err(|e| Error::io(format!("mmap of {len} bytes of shared memory"), e))?;
        Ok(ShmMapping { map })
    }

    /// First byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: empty mappings are refused by [`ShmMapping::new`].
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::Config(format!(
                "range {offset:#x}+{len:#x} is outside the {:#x}-byte shared memory",
                self.len()
            ))),
        }
    }

    /// The mapping as atomic bytes: other processes write it at any time, which
    /// atomics (unlike plain references) allow.
    fn bytes(&self) -> &[AtomicU8] {
        // SAFETY: the mapping is `len()` readable and writable bytes that stay mapped as
        // long as `self` (MmapRaw unmaps on drop); AtomicU8 has the size and alignment of
        // u8, and atomic accesses are sound under concurrent writes by other processes.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast::<AtomicU8>(), self.len()) }
    }

    /// Copies `buf.len()` bytes from `offset` into `buf` (relaxed atomic byte reads).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        let src = &self.bytes()[offset..offset + buf.len()];
        for (b, s) in buf.iter_mut().zip(src) {
            *b = s.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` to `offset` (relaxed atomic byte writes).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.check(offset, data.len())?;
        let dst = &self.bytes()[offset..offset + data.len()];
        for (d, b) in dst.iter().zip(data) {
            d.store(*b, Ordering::Relaxed);
        }
        Ok(())
    }
}
