//! The only module that touches shared memory.
//!
//! The region belongs to another machine: it may be stale, written while we read it,
//! corrupt or hostile. So:
//!
//! * every access is an atomic load or store on a bounds- and alignment-checked address
//!   (atomics, not plain or volatile accesses, so that a concurrent write by the peer is a
//!   well-defined race under the Rust memory model — this is also what lets Miri check the
//!   two-threaded tests);
//! * ring indices are published with `Release` and read with `Acquire`, and the
//!   "does the peer want a notification" checks are preceded by a `SeqCst` fence, which on
//!   aarch64 and x86_64 orders our index store before the flag load (the classic lost-wakeup
//!   race of virtio notification suppression);
//! * every value read from the peer — ring index, descriptor index, address, length, flag,
//!   RPMsg header, name-service record, control-area field — is validated here, once, and
//!   leaves this module as a plain, trusted value or as an [`Error`].
//!
//! Nothing above this module handles raw shared-memory offsets read from the peer.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use crate::error::{Error, PeerFault, Result};
use crate::layout::{Layout, RingLayout, CONTROL_AREA_SIZE, STATUS_OFFSET};
use crate::wire::{
    ControlBlock, NsMessage, RpmsgHeader, CONTROL_BLOCK_OFFSET, CONTROL_MAGIC, NO_PEER_ID,
    RPMSG_ADDR_ANY, RPMSG_NAME_SIZE, RPMSG_NS_CREATE, RPMSG_NS_DESTROY, VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
};

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
    fn at(&self, offset: usize, size: usize) -> Result<*mut u8> {
        let end = offset.checked_add(size).ok_or(Error::OutOfBounds)?;
        if end > self.len || offset % size != 0 {
            return Err(Error::OutOfBounds);
        }
        // SAFETY: `offset + size <= len`, and `new`'s contract makes the whole range valid.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    fn atomic_u8(&self, offset: usize) -> Result<&AtomicU8> {
        let p = self.at(offset, 1)?;
        // SAFETY: `p` is in bounds and valid for `'a` (see `new`); AtomicU8 has alignment 1;
        // all accesses to the region are atomic, so creating a shared atomic reference is sound.
        Ok(unsafe { AtomicU8::from_ptr(p) })
    }

    fn atomic_u16(&self, offset: usize) -> Result<&AtomicU16> {
        let p = self.at(offset, 2)?;
        // SAFETY: in bounds, valid, and 2-aligned (`at` checked offset % 2 and the base is
        // 8-aligned); all accesses are atomic.
        Ok(unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        let p = self.at(offset, 4)?;
        // SAFETY: in bounds, valid and 4-aligned, as for `atomic_u16`.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        let p = self.at(offset, 8)?;
        // SAFETY: in bounds, valid and 8-aligned, as for `atomic_u16`.
        Ok(unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    /// Loads one byte.
    pub fn load_u8(&self, offset: usize, order: Ordering) -> Result<u8> {
        Ok(self.atomic_u8(offset)?.load(order))
    }
    /// Stores one byte.
    pub fn store_u8(&self, offset: usize, value: u8, order: Ordering) -> Result<()> {
        self.atomic_u8(offset)?.store(value, order);
        Ok(())
    }
    /// Loads a little-endian u16.
    pub fn load_u16(&self, offset: usize, order: Ordering) -> Result<u16> {
        Ok(u16::from_le(self.atomic_u16(offset)?.load(order)))
    }
    /// Stores a little-endian u16.
    pub fn store_u16(&self, offset: usize, value: u16, order: Ordering) -> Result<()> {
        self.atomic_u16(offset)?.store(value.to_le(), order);
        Ok(())
    }
    /// Loads a little-endian u32.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32> {
        Ok(u32::from_le(self.atomic_u32(offset)?.load(order)))
    }
    /// Stores a little-endian u32.
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<()> {
        self.atomic_u32(offset)?.store(value.to_le(), order);
        Ok(())
    }
    /// Loads a little-endian u64.
    pub fn load_u64(&self, offset: usize, order: Ordering) -> Result<u64> {
        Ok(u64::from_le(self.atomic_u64(offset)?.load(order)))
    }
    /// Stores a little-endian u64.
    pub fn store_u64(&self, offset: usize, value: u64, order: Ordering) -> Result<()> {
        self.atomic_u64(offset)?.store(value.to_le(), order);
        Ok(())
    }

    /// Checks that `len` bytes at `offset` lie inside the region; returns the address of
    /// `offset`.
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
        // The base is 8-aligned, so the offset tells the alignment.
        let head = ((8 - offset % 8) % 8).min(dst.len());
        let (head_dst, rest) = dst.split_at_mut(head);
        let body_len = rest.len() & !7;
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
        let head = ((8 - offset % 8) % 8).min(src.len());
        let (head_src, rest) = src.split_at(head);
        let body_len = rest.len() & !7;
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

/// A full memory barrier: orders our previous stores before our following loads, as both
/// sides' notification-suppression checks require.
pub fn full_barrier() {
    fence(Ordering::SeqCst);
}

/// A set of descriptor ids (0..256), used for "in flight" and "held" bookkeeping.
///
/// The size is kept alongside the bits: it is asked for on every received buffer, and
/// counting bits is a dozen instructions per word on x86-64 targets without `popcnt`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescSet {
    bits: [u64; 4],
    len: u16,
}

impl DescSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            bits: [0; 4],
            len: 0,
        }
    }
    /// Whether `id` is in the set.
    pub const fn contains(&self, id: u16) -> bool {
        let id = id as usize;
        id < 256 && self.bits[id / 64] & (1 << (id % 64)) != 0
    }
    /// Adds `id`; returns false if it was already there (or out of range).
    pub fn insert(&mut self, id: u16) -> bool {
        let i = id as usize;
        if i >= 256 || self.contains(id) {
            return false;
        }
        self.bits[i / 64] |= 1 << (i % 64);
        self.len += 1;
        true
    }
    /// Removes `id`; returns false if it was not there.
    pub fn remove(&mut self, id: u16) -> bool {
        if !self.contains(id) {
            return false;
        }
        let i = id as usize;
        self.bits[i / 64] &= !(1 << (i % 64));
        self.len -= 1;
        true
    }
    /// Number of ids in the set.
    pub const fn len(&self) -> u32 {
        self.len as u32
    }
    /// True when empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The smallest id in the set.
    pub fn first(&self) -> Option<u16> {
        self.bits
            .iter()
            .enumerate()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| (i * 64 + w.trailing_zeros() as usize) as u16)
    }
}

/// A buffer inside the shared pool: validated offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRef {
    /// Offset of the buffer in the region.
    pub offset: usize,
    /// Length of the buffer.
    pub len: u32,
}

/// A used-ring element after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedElem {
    /// Descriptor id, known to be in flight.
    pub id: u16,
    /// Bytes written, known to be at most the buffer length.
    pub len: u32,
}

/// A validated RPMsg header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Source address (never `RPMSG_ADDR_ANY`).
    pub src: u32,
    /// Destination address (never `RPMSG_ADDR_ANY`).
    pub dst: u32,
    /// Payload length; header plus payload fit the buffer.
    pub len: u16,
}

/// A validated name-service record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsRecord {
    /// The name bytes (no NUL, at most 31 bytes, valid UTF-8).
    pub name: heapless::String<31>,
    /// The announced endpoint address (never `RPMSG_ADDR_ANY`).
    pub addr: u32,
    /// True for destroy, false for create.
    pub destroy: bool,
}

/// The pool window in which the peer's descriptors must point, plus address translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolWindow {
    /// First valid buffer byte (offset in the region).
    pub start: usize,
    /// One past the last valid buffer byte.
    pub end: usize,
    /// Descriptor address of the region's first byte.
    pub addr_base: u64,
}

/// Typed, validating access to one vring.
#[derive(Debug, Clone, Copy)]
pub struct RingView<'a> {
    region: SharedRegion<'a>,
    ring: RingLayout,
}

impl<'a> RingView<'a> {
    /// A view of `ring` in `region`; fails if the ring does not fit the region.
    pub fn new(region: SharedRegion<'a>, ring: RingLayout) -> Result<Self> {
        let end = ring.used + 6 + 8 * ring.size as usize;
        if end > region.len() || ring.desc % 8 != 0 || ring.used % 4 != 0 {
            return Err(Error::OutOfBounds);
        }
        Ok(Self { region, ring })
    }

    /// Queue size.
    pub const fn size(&self) -> u16 {
        self.ring.size
    }

    fn slot(&self, idx: u16) -> usize {
        (idx % self.ring.size) as usize
    }

    /// Zeroes the whole ring (descriptors, both rings, flags and indices).
    pub fn reset(&self) -> Result<()> {
        let len = self.ring.used + 6 + 8 * self.ring.size as usize - self.ring.desc;
        self.region.zero(self.ring.desc, len)
    }

    // ---- driver side ------------------------------------------------------------------

    /// Writes descriptor `id` (single buffer, no chaining).
    pub fn write_desc(&self, id: u16, addr: u64, len: u32, flags: u16) -> Result<()> {
        if id >= self.ring.size {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        let d = self.ring.desc + 16 * id as usize;
        self.region.store_u64(d, addr, Ordering::Relaxed)?;
        self.region.store_u32(d + 8, len, Ordering::Relaxed)?;
        self.region.store_u16(d + 12, flags, Ordering::Relaxed)?;
        self.region.store_u16(d + 14, 0, Ordering::Relaxed)
    }

    /// Puts descriptor `id` in the available ring at position `idx`.
    pub fn write_avail_entry(&self, idx: u16, id: u16) -> Result<()> {
        let off = self.ring.avail + 4 + 2 * self.slot(idx);
        self.region.store_u16(off, id, Ordering::Relaxed)
    }

    /// Publishes the available index (`Release`: entries and descriptors become visible).
    pub fn publish_avail_idx(&self, idx: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.avail + 2, idx, Ordering::Release)
    }

    /// Sets the available ring's flags (e.g. `VRING_AVAIL_F_NO_INTERRUPT`).
    pub fn set_avail_flags(&self, flags: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.avail, flags, Ordering::Relaxed)
    }

    /// How many used elements are pending after `last_used`, validated against the number
    /// of buffers in flight (the device cannot return more than it was given).
    pub fn used_pending(&self, last_used: u16, in_flight: u32) -> Result<u16> {
        let idx = self
            .region
            .load_u16(self.ring.used + 2, Ordering::Acquire)?;
        let pending = idx.wrapping_sub(last_used);
        if u32::from(pending) > in_flight || pending > self.ring.size {
            return Err(Error::Peer(PeerFault::UsedIndexOutOfRange));
        }
        Ok(pending)
    }

    /// Reads the used element at position `idx`. Its id must be in `in_flight` and its
    /// length at most `buf_len`.
    pub fn read_used_elem(&self, idx: u16, in_flight: &DescSet, buf_len: u32) -> Result<UsedElem> {
        let off = self.ring.used + 4 + 8 * self.slot(idx);
        let id = self.region.load_u32(off, Ordering::Relaxed)?;
        let len = self.region.load_u32(off + 4, Ordering::Relaxed)?;
        if id >= u32::from(self.ring.size) {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        let id = id as u16;
        if !in_flight.contains(id) {
            return Err(Error::Peer(PeerFault::UsedIdNotInFlight));
        }
        if len > buf_len {
            return Err(Error::Peer(PeerFault::UsedLengthTooLarge));
        }
        Ok(UsedElem { id, len })
    }

    /// After publishing available buffers: does the device want a notification?
    pub fn device_wants_notification(&self) -> Result<bool> {
        full_barrier();
        let flags = self.region.load_u16(self.ring.used, Ordering::Relaxed)?;
        Ok(flags & crate::wire::VRING_USED_F_NO_NOTIFY == 0)
    }

    // ---- device side ------------------------------------------------------------------

    /// How many available entries are pending after `last_avail` (at most the queue size).
    pub fn avail_pending(&self, last_avail: u16) -> Result<u16> {
        let idx = self
            .region
            .load_u16(self.ring.avail + 2, Ordering::Acquire)?;
        let pending = idx.wrapping_sub(last_avail);
        if pending > self.ring.size {
            return Err(Error::Peer(PeerFault::AvailIndexOutOfRange));
        }
        Ok(pending)
    }

    /// Reads the descriptor id at available position `idx` and the descriptor it names.
    ///
    /// The id must be below the queue size and not in `held` (buffers the device still
    /// holds); the descriptor must be a single buffer lying entirely in `pool` and at least
    /// an RPMsg header long.
    pub fn read_avail_buffer(
        &self,
        idx: u16,
        held: &DescSet,
        pool: &PoolWindow,
    ) -> Result<(u16, BufferRef)> {
        let off = self.ring.avail + 4 + 2 * self.slot(idx);
        let id = self.region.load_u16(off, Ordering::Relaxed)?;
        if id >= self.ring.size {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        if held.contains(id) {
            return Err(Error::Peer(PeerFault::DuplicateDescriptor));
        }
        let d = self.ring.desc + 16 * id as usize;
        let addr = self.region.load_u64(d, Ordering::Relaxed)?;
        let len = self.region.load_u32(d + 8, Ordering::Relaxed)?;
        let flags = self.region.load_u16(d + 12, Ordering::Relaxed)?;
        if flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT) != 0 {
            return Err(Error::Peer(PeerFault::UnsupportedDescriptorFlags));
        }
        let offset = addr
            .checked_sub(pool.addr_base)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or(Error::Peer(PeerFault::BufferOutOfBounds))?;
        let end = offset
            .checked_add(len as usize)
            .ok_or(Error::Peer(PeerFault::BufferOutOfBounds))?;
        if offset < pool.start || end > pool.end {
            return Err(Error::Peer(PeerFault::BufferOutOfBounds));
        }
        if (len as usize) < RpmsgHeader::SIZE {
            return Err(Error::Peer(PeerFault::BufferTooShort));
        }
        Ok((id, BufferRef { offset, len }))
    }

    /// Writes the used element at position `idx`.
    pub fn write_used_elem(&self, idx: u16, id: u16, len: u32) -> Result<()> {
        let off = self.ring.used + 4 + 8 * self.slot(idx);
        self.region
            .store_u32(off, u32::from(id), Ordering::Relaxed)?;
        self.region.store_u32(off + 4, len, Ordering::Relaxed)
    }

    /// Publishes the used index (`Release`).
    pub fn publish_used_idx(&self, idx: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.used + 2, idx, Ordering::Release)
    }

    /// Sets the used ring's flags (e.g. `VRING_USED_F_NO_NOTIFY`).
    pub fn set_used_flags(&self, flags: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.used, flags, Ordering::Relaxed)
    }

    /// After publishing used buffers: does the driver want an interrupt?
    pub fn driver_wants_interrupt(&self) -> Result<bool> {
        full_barrier();
        let flags = self.region.load_u16(self.ring.avail, Ordering::Relaxed)?;
        Ok(flags & crate::wire::VRING_AVAIL_F_NO_INTERRUPT == 0)
    }

    /// Current available index (device side, for resynchronising after attach).
    pub fn avail_idx(&self) -> Result<u16> {
        self.region.load_u16(self.ring.avail + 2, Ordering::Acquire)
    }

    /// Current used index.
    pub fn used_idx(&self) -> Result<u16> {
        self.region.load_u16(self.ring.used + 2, Ordering::Acquire)
    }
}

/// Reads a validated RPMsg header from a received buffer whose first `written` bytes are
/// valid: the payload must fit both `written` and the buffer.
pub fn read_message_header(
    region: &SharedRegion<'_>,
    buf: BufferRef,
    written: u32,
) -> Result<MessageHeader> {
    let written = written.min(buf.len);
    if (written as usize) < RpmsgHeader::SIZE {
        return Err(Error::Peer(PeerFault::BadMessageLength));
    }
    let mut raw = [0u8; RpmsgHeader::SIZE];
    region.read_bytes(buf.offset, &mut raw)?;
    let h = RpmsgHeader::from_bytes(&raw);
    let len = h.len.get();
    if RpmsgHeader::SIZE + len as usize > written as usize {
        return Err(Error::Peer(PeerFault::BadMessageLength));
    }
    let (src, dst) = (h.src.get(), h.dst.get());
    if src == RPMSG_ADDR_ANY || dst == RPMSG_ADDR_ANY {
        return Err(Error::Peer(PeerFault::BadMessageAddress));
    }
    Ok(MessageHeader { src, dst, len })
}

/// Reads and validates a name-service record from the payload of `buf` (`len` bytes).
pub fn read_ns_record(region: &SharedRegion<'_>, buf: BufferRef, len: u16) -> Result<NsRecord> {
    if len as usize != NsMessage::SIZE {
        return Err(Error::Peer(PeerFault::BadNameService));
    }
    let mut raw = [0u8; NsMessage::SIZE];
    region.read_bytes(buf.offset + RpmsgHeader::SIZE, &mut raw)?;
    let m = NsMessage::from_bytes(&raw);
    // Linux forces byte 31 to NUL; we require a NUL within the 32 bytes instead.
    let name_len = m
        .name
        .iter()
        .position(|b| *b == 0)
        .ok_or(Error::Peer(PeerFault::BadNameService))?;
    debug_assert!(name_len < RPMSG_NAME_SIZE);
    let text = core::str::from_utf8(&m.name[..name_len])
        .map_err(|_| Error::Peer(PeerFault::BadNameService))?;
    let mut name = heapless::String::new();
    name.push_str(text)
        .map_err(|_| Error::Peer(PeerFault::BadNameService))?;
    let addr = m.addr.get();
    if addr == RPMSG_ADDR_ANY {
        return Err(Error::Peer(PeerFault::BadNameService));
    }
    let destroy = match m.flags.get() {
        RPMSG_NS_CREATE => false,
        RPMSG_NS_DESTROY => true,
        _ => return Err(Error::Peer(PeerFault::BadNameService)),
    };
    Ok(NsRecord {
        name,
        addr,
        destroy,
    })
}

/// What the host published in the control block, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Queue size.
    pub queue_size: u16,
    /// Buffer size.
    pub buf_size: u32,
    /// Vring alignment.
    pub align: u32,
    /// Region size.
    pub shm_size: u64,
    /// Descriptor address of the region's first byte.
    pub addr_base: u64,
    /// The host's ivshmem id, if published.
    pub host_id: Option<u16>,
    /// The host's session number.
    pub host_session: u32,
}

/// Typed, validating access to the control area ([0, 0x400)).
#[derive(Debug, Clone, Copy)]
pub struct ControlView<'a> {
    region: SharedRegion<'a>,
}

const fn cb(field: usize) -> usize {
    CONTROL_BLOCK_OFFSET + field
}

fn peer_id(raw: u32) -> Result<Option<u16>> {
    match raw {
        NO_PEER_ID => Ok(None),
        id => u16::try_from(id)
            .map(Some)
            .map_err(|_| Error::Peer(PeerFault::BadControlValue)),
    }
}

impl<'a> ControlView<'a> {
    /// A view of the control area of `region`.
    pub fn new(region: SharedRegion<'a>) -> Result<Self> {
        if region.len() < CONTROL_AREA_SIZE {
            return Err(Error::RegionTooSmall);
        }
        Ok(Self { region })
    }

    /// The virtio status byte.
    pub fn status(&self) -> Result<u8> {
        self.region.load_u8(STATUS_OFFSET, Ordering::Acquire)
    }

    /// Sets the virtio status byte (`Release`: everything written before is visible to a
    /// peer that sees the new status).
    pub fn set_status(&self, status: u8) -> Result<()> {
        self.region
            .store_u8(STATUS_OFFSET, status, Ordering::Release)
    }

    /// Starts the host's (re)initialisation of the control area for `session`: the session
    /// number is stored first (where a block is present), then everything except the status
    /// byte, the magic and that number is zeroed (the ids set to none). A host that dies
    /// half-way therefore leaves the new number behind, and its successor counts on from
    /// it: session numbers never repeat, so a remote never mistakes a new session for the
    /// one it attached to.
    pub fn begin_session(&self, session: u32) -> Result<()> {
        use core::mem::offset_of;
        let magic = cb(offset_of!(ControlBlock, magic));
        let number = cb(offset_of!(ControlBlock, host_session));
        if self.region.load_u32(magic, Ordering::Acquire)? == CONTROL_MAGIC {
            self.region.store_u32(number, session, Ordering::Release)?;
        }
        self.region.zero(1, magic - 1)?;
        self.region.zero(magic + 4, number - magic - 4)?;
        self.region
            .zero(number + 4, CONTROL_AREA_SIZE - number - 4)?;
        // Zero is a valid ivshmem id: say "none" where ids are kept.
        let none = u64::from(NO_PEER_ID);
        let rel = Ordering::Relaxed;
        self.region
            .store_u32(cb(offset_of!(ControlBlock, host_id)), NO_PEER_ID, rel)?;
        self.region
            .store_u64(cb(offset_of!(ControlBlock, remote_id)), none, rel)
    }

    /// Writes our control block (the host does this before setting the status).
    pub fn publish(&self, layout: &Layout, host_id: Option<u16>, session: u32) -> Result<()> {
        use core::mem::offset_of;
        let c = layout.config();
        let r = &self.region;
        let rel = Ordering::Relaxed;
        r.store_u16(
            cb(offset_of!(ControlBlock, version)),
            crate::wire::LAYOUT_VERSION,
            rel,
        )?;
        r.store_u16(cb(offset_of!(ControlBlock, queue_size)), c.queue_size, rel)?;
        r.store_u32(cb(offset_of!(ControlBlock, buf_size)), c.buf_size, rel)?;
        r.store_u32(cb(offset_of!(ControlBlock, align)), c.align, rel)?;
        r.store_u64(
            cb(offset_of!(ControlBlock, shm_size)),
            c.shm_size as u64,
            rel,
        )?;
        r.store_u64(cb(offset_of!(ControlBlock, addr_base)), c.addr_base, rel)?;
        let id = host_id.map_or(NO_PEER_ID, u32::from);
        r.store_u32(cb(offset_of!(ControlBlock, host_id)), id, rel)?;
        r.store_u32(cb(offset_of!(ControlBlock, host_session)), session, rel)?;
        r.store_u64(
            cb(offset_of!(ControlBlock, remote_id)),
            u64::from(NO_PEER_ID),
            rel,
        )?;
        r.store_u32(
            cb(offset_of!(ControlBlock, magic)),
            CONTROL_MAGIC,
            Ordering::Release,
        )
    }

    /// The host's published block: `Ok(None)` when there is none (a C OpenAMP host), an
    /// error when it is present but from another layout version or has invalid ids.
    pub fn published(&self) -> Result<Option<Published>> {
        use core::mem::offset_of;
        let r = &self.region;
        let rel = Ordering::Relaxed;
        if r.load_u32(cb(offset_of!(ControlBlock, magic)), Ordering::Acquire)? != CONTROL_MAGIC {
            return Ok(None);
        }
        if r.load_u16(cb(offset_of!(ControlBlock, version)), rel)? != crate::wire::LAYOUT_VERSION {
            return Err(Error::LayoutMismatch);
        }
        Ok(Some(Published {
            queue_size: r.load_u16(cb(offset_of!(ControlBlock, queue_size)), rel)?,
            buf_size: r.load_u32(cb(offset_of!(ControlBlock, buf_size)), rel)?,
            align: r.load_u32(cb(offset_of!(ControlBlock, align)), rel)?,
            shm_size: r.load_u64(cb(offset_of!(ControlBlock, shm_size)), rel)?,
            addr_base: r.load_u64(cb(offset_of!(ControlBlock, addr_base)), rel)?,
            host_id: peer_id(r.load_u32(cb(offset_of!(ControlBlock, host_id)), rel)?)?,
            host_session: r.load_u32(cb(offset_of!(ControlBlock, host_session)), rel)?,
        }))
    }

    /// The layout version of the host's block, if one is present (whatever its version:
    /// for telling the user which version the other side speaks).
    pub fn layout_version(&self) -> Result<Option<u16>> {
        use core::mem::offset_of;
        let r = &self.region;
        if r.load_u32(cb(offset_of!(ControlBlock, magic)), Ordering::Acquire)? != CONTROL_MAGIC {
            return Ok(None);
        }
        r.load_u16(cb(offset_of!(ControlBlock, version)), Ordering::Relaxed)
            .map(Some)
    }

    /// The host session number currently in the control block (0 if none).
    pub fn host_session(&self) -> Result<u32> {
        use core::mem::offset_of;
        let r = &self.region;
        if r.load_u32(cb(offset_of!(ControlBlock, magic)), Ordering::Acquire)? != CONTROL_MAGIC {
            return Ok(0);
        }
        r.load_u32(
            cb(offset_of!(ControlBlock, host_session)),
            Ordering::Acquire,
        )
    }

    /// The remote's published id and the session it attached to (one 64-bit load, so the
    /// pair is never torn: `(Some(id), 0)` is unambiguously a request for a fresh session).
    pub fn remote(&self) -> Result<(Option<u16>, u32)> {
        use core::mem::offset_of;
        let word = self
            .region
            .load_u64(cb(offset_of!(ControlBlock, remote_id)), Ordering::Acquire)?;
        let id = peer_id(word as u32)?;
        Ok((id, (word >> 32) as u32))
    }

    /// The remote publishes its id and the session it attached to (0 asks the host for a
    /// fresh session), in one 64-bit store.
    pub fn set_remote(&self, id: Option<u16>, session: u32) -> Result<()> {
        use core::mem::offset_of;
        let id = id.map_or(NO_PEER_ID, u32::from);
        let word = u64::from(id) | u64::from(session) << 32;
        self.region.store_u64(
            cb(offset_of!(ControlBlock, remote_id)),
            word,
            Ordering::Release,
        )
    }
}
