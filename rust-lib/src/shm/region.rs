//! The shared region and its checked atomic accesses: everything else in [`super`] goes
//! through these.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::error::{Error, Result};

/// A shared-memory region: a pointer and a length, valid for the lifetime `'a`.
///
/// It is `Copy`: every copy refers to the same memory, and all accesses are atomic, so
/// copies may be used from several threads.
#[derive(Debug, Clone, Copy)]
pub struct SharedRegion<'a> {
    base: NonNull<u8>,
    len: usize,
    _memory: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: the region is only ever accessed through atomic operations, which are data-race
// free by definition, so sharing or sending the pointer between threads is sound.
unsafe impl Send for SharedRegion<'_> {}
// SAFETY: as above: `&SharedRegion` only allows atomic accesses.
unsafe impl Sync for SharedRegion<'_> {}

/// The checked accessors of one width inside `impl SharedRegion`: `$get` gives the atomic
/// at a naturally aligned offset, `$load`/`$store` move a little-endian `$ty` through it.
macro_rules! le_access {
    (
        $ty:ty, $atomic:ty, $get:ident, $load:ident, $store:ident,
        $get_in:ident, $load_in:ident, $store_in:ident
    ) => {
        /// The atomic at an offset checked beforehand (by the caller's own validation).
        ///
        /// # Safety
        ///
        /// `offset + size_of::<$ty>() <= self.len()` and `offset` is a multiple of the size.
        #[inline]
        unsafe fn $get_in(&self, offset: usize) -> &$atomic {
            debug_assert!(self.at(offset, core::mem::size_of::<$ty>()).is_ok());
            // SAFETY: in bounds and aligned (the caller's contract; the base is 8-aligned),
            // valid for `'a` (see `new`); all accesses to the region are atomic.
            unsafe { <$atomic>::from_ptr(self.base.as_ptr().add(offset).cast()) }
        }

        #[doc = concat!("Loads a little-endian `", stringify!($ty), "` at an offset checked beforehand.")]
        ///
        /// # Safety
        ///
        /// As for the atomic accessor: in bounds and naturally aligned.
        #[inline]
        pub(super) unsafe fn $load_in(&self, offset: usize, order: Ordering) -> $ty {
            // SAFETY: the caller's contract.
            <$ty>::from_le(unsafe { self.$get_in(offset) }.load(order))
        }

        #[doc = concat!("Stores a little-endian `", stringify!($ty), "` at an offset checked beforehand.")]
        ///
        /// # Safety
        ///
        /// As for the atomic accessor: in bounds and naturally aligned.
        #[inline]
        pub(super) unsafe fn $store_in(&self, offset: usize, value: $ty, order: Ordering) {
            // SAFETY: the caller's contract.
            unsafe { self.$get_in(offset) }.store(value.to_le(), order);
        }

        #[inline]
        fn $get(&self, offset: usize) -> Result<&$atomic> {
            let p = self.at(offset, core::mem::size_of::<$ty>())?;
            // SAFETY: `p` is in bounds and valid for `'a` (see `new`), and aligned for
            // `$atomic`: `at` checked that `offset` is a multiple of its size, and the base
            // is 8-aligned. All accesses to the region are atomic, so creating a shared
            // atomic reference is sound.
            Ok(unsafe { <$atomic>::from_ptr(p.cast()) })
        }

        #[doc = concat!("Loads a little-endian `", stringify!($ty), "`.")]
        #[inline]
        pub fn $load(&self, offset: usize, order: Ordering) -> Result<$ty> {
            Ok(<$ty>::from_le(self.$get(offset)?.load(order)))
        }

        #[doc = concat!("Stores a little-endian `", stringify!($ty), "`.")]
        #[inline]
        pub fn $store(&self, offset: usize, value: $ty, order: Ordering) -> Result<()> {
            self.$get(offset)?.store(value.to_le(), order);
            Ok(())
        }
    };
}

impl<'a> SharedRegion<'a> {
    /// Wraps `len` bytes at `base`.
    ///
    /// Errors with [`Error::RegionMisaligned`] if `base` is null or not 8-byte aligned.
    ///
    /// # Safety
    ///
    /// For the whole lifetime `'a`, `base..base + len` must be valid for reads and writes,
    /// must not be deallocated or unmapped, and must not be accessed by this process other
    /// than through atomic operations (another process or machine may write it at any time:
    /// that is expected).
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Self> {
        let base = NonNull::new(base).ok_or(Error::RegionMisaligned)?;
        if base.as_ptr() as usize % 8 != 0 || len > isize::MAX as usize {
            return Err(Error::RegionMisaligned);
        }
        Ok(Self {
            base,
            len,
            _memory: PhantomData,
        })
    }

    /// Size of the region in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of `offset`, after checking that `size` bytes fit and that the offset is
    /// a multiple of `size` (natural alignment for atomics; the base is 8-aligned).
    #[inline]
    fn at(&self, offset: usize, size: usize) -> Result<*mut u8> {
        let end = offset.checked_add(size).ok_or(Error::OutOfBounds)?;
        if end > self.len || offset % size != 0 {
            return Err(Error::OutOfBounds);
        }
        // SAFETY: `offset + size <= len`, and `new`'s contract makes the whole range valid.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    le_access!(
        u8,
        AtomicU8,
        atomic_u8,
        load_u8,
        store_u8,
        u8_in,
        load_u8_in,
        store_u8_in
    );
    le_access!(
        u16,
        AtomicU16,
        atomic_u16,
        load_u16,
        store_u16,
        u16_in,
        load_u16_in,
        store_u16_in
    );
    le_access!(
        u32,
        AtomicU32,
        atomic_u32,
        load_u32,
        store_u32,
        u32_in,
        load_u32_in,
        store_u32_in
    );
    le_access!(
        u64,
        AtomicU64,
        atomic_u64,
        load_u64,
        store_u64,
        u64_in,
        load_u64_in,
        store_u64_in
    );

    /// Checks that `len` bytes at `offset` lie inside the region (for the unchecked
    /// accesses that follow).
    #[inline]
    pub(super) fn check_span(&self, offset: usize, len: usize) -> Result<()> {
        self.span(offset, len).map(|_| ())
    }

    /// Checks that `len` bytes at `offset` lie inside the region; returns the address of
    /// `offset`.
    #[inline]
    fn span(&self, offset: usize, len: usize) -> Result<*mut u8> {
        let end = offset.checked_add(len).ok_or(Error::OutOfBounds)?;
        if end > self.len {
            return Err(Error::OutOfBounds);
        }
        // SAFETY: `offset <= end <= len`, and `new`'s contract makes the whole range valid.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the region (relaxed atomics,
    /// 8 bytes at a time where aligned).
    ///
    /// The range is checked once; the loop then moves one aligned word per load with no
    /// further checks (the per-message copy: 62 loads for a full 496-byte payload).
    pub fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let p = self.span(offset, dst.len())?;
        let (head, body_len) = word_split(offset, dst.len());
        let (head_dst, rest) = dst.split_at_mut(head);
        let (body, tail) = rest.split_at_mut(body_len);
        for (i, b) in head_dst.iter_mut().enumerate() {
            // SAFETY: `p + i` lies in the checked span; AtomicU8 has alignment 1; all
            // accesses to the region are atomic.
            *b = unsafe { AtomicU8::from_ptr(p.add(i)) }.load(Ordering::Relaxed);
        }
        for (k, chunk) in body.chunks_exact_mut(8).enumerate() {
            // SAFETY: bytes `head + 8k .. head + 8k + 8` lie in the checked span, and
            // `p + head` is 8-aligned; all accesses to the region are atomic.
            let word = unsafe { AtomicU64::from_ptr(p.add(head + 8 * k).cast()) };
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        for (i, b) in tail.iter_mut().enumerate() {
            // SAFETY: as for the head bytes.
            *b = unsafe { AtomicU8::from_ptr(p.add(head + body_len + i)) }.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `src` into the region at `offset` (relaxed atomics, 8 bytes at a time where
    /// aligned; publish with a `Release` index store afterwards). Checked once, like
    /// [`SharedRegion::read_bytes`].
    pub fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<()> {
        let p = self.span(offset, src.len())?;
        let (head, body_len) = word_split(offset, src.len());
        let (head_src, rest) = src.split_at(head);
        let (body, tail) = rest.split_at(body_len);
        for (i, b) in head_src.iter().enumerate() {
            // SAFETY: `p + i` lies in the checked span; AtomicU8 has alignment 1; all
            // accesses to the region are atomic.
            unsafe { AtomicU8::from_ptr(p.add(i)) }.store(*b, Ordering::Relaxed);
        }
        for (k, chunk) in body.chunks_exact(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            // SAFETY: bytes `head + 8k .. head + 8k + 8` lie in the checked span, and
            // `p + head` is 8-aligned; all accesses to the region are atomic.
            unsafe { AtomicU64::from_ptr(p.add(head + 8 * k).cast()) }
                .store(u64::from_ne_bytes(word), Ordering::Relaxed);
        }
        for (i, b) in tail.iter().enumerate() {
            // SAFETY: as for the head bytes.
            unsafe { AtomicU8::from_ptr(p.add(head + body_len + i)) }.store(*b, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Zeroes `len` bytes at `offset`.
    pub fn zero(&self, offset: usize, len: usize) -> Result<()> {
        let end = offset.checked_add(len).ok_or(Error::OutOfBounds)?;
        if end > self.len {
            return Err(Error::OutOfBounds);
        }
        let mut off = offset;
        while off < end {
            if off % 8 == 0 && end - off >= 8 {
                self.atomic_u64(off)?.store(0, Ordering::Relaxed);
                off += 8;
            } else {
                self.atomic_u8(off)?.store(0, Ordering::Relaxed);
                off += 1;
            }
        }
        Ok(())
    }
}

/// How a copy of `len` bytes at `offset` splits into single bytes up to the next 8-aligned
/// offset (the base is 8-aligned, so the offset tells the alignment), whole words, and the
/// remaining bytes: the number of leading bytes and of word bytes.
fn word_split(offset: usize, len: usize) -> (usize, usize) {
    let head = ((8 - offset % 8) % 8).min(len);
    (head, (len - head) & !7)
}

/// A full memory barrier: orders our previous stores before our following loads, as both
/// sides' notification-suppression checks require.
pub fn full_barrier() {
    fence(Ordering::SeqCst);
}
