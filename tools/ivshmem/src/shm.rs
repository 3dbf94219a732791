//! Mapping the shared-memory object that the server hands out.

use std::os::fd::BorrowedFd;
use std::ptr;

use memmap2::{MmapOptions, MmapRaw};

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

    /// Copies `buf.len()` bytes from `offset` into `buf` (volatile reads).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check(offset, buf.len())?;
        let base = self.as_ptr().wrapping_add(offset);
        // SAFETY: offset + buf.len() <= len was checked and the mapping lives
        // as long as self; volatile byte reads because other processes write
        // this memory at any time.
        unsafe {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = ptr::read_volatile(base.add(i));
            }
        }
        Ok(())
    }

    /// Copies `data` to `offset` (volatile writes).
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), Error> {
        self.check(offset, data.len())?;
        let base = self.as_ptr().wrapping_add(offset);
        // SAFETY: offset + data.len() <= len was checked and the mapping is
        // writable and lives as long as self; volatile byte writes, as above.
        unsafe {
            for (i, b) in data.iter().enumerate() {
                ptr::write_volatile(base.add(i), *b);
            }
        }
        Ok(())
    }
}
