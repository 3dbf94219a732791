//! Typed, validating access to one vring: descriptor table, available ring, used ring.
//! Field offsets come from the `repr(C)` ring structures of [`crate::wire`].

use core::sync::atomic::Ordering;

use super::region::{full_barrier, SharedRegion};
use super::BufferRef;
use crate::descset::DescSet;
use crate::error::{ConfigRule, Error, PeerFault, Result};
use crate::layout::RingLayout;
use crate::wire::{
    RpmsgHeader, VringAvailHeader, VringDesc, VringUsedElem, VringUsedHeader,
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
};

use core::mem::{offset_of, size_of};

const DESC_SIZE: usize = size_of::<VringDesc>();
const DESC_ADDR: usize = offset_of!(VringDesc, addr);
const DESC_LEN: usize = offset_of!(VringDesc, len);
const DESC_FLAGS: usize = offset_of!(VringDesc, flags);
const DESC_NEXT: usize = offset_of!(VringDesc, next);
const AVAIL_FLAGS: usize = offset_of!(VringAvailHeader, flags);
const AVAIL_IDX: usize = offset_of!(VringAvailHeader, idx);
const AVAIL_RING: usize = size_of::<VringAvailHeader>();
const AVAIL_ENTRY_SIZE: usize = size_of::<u16>();
const USED_FLAGS: usize = offset_of!(VringUsedHeader, flags);
const USED_IDX: usize = offset_of!(VringUsedHeader, idx);
const USED_RING: usize = size_of::<VringUsedHeader>();
const USED_ELEM_SIZE: usize = size_of::<VringUsedElem>();
const USED_ELEM_ID: usize = offset_of!(VringUsedElem, id);
const USED_ELEM_LEN: usize = offset_of!(VringUsedElem, len);
/// `avail_event` after the used ring's entries.
const USED_EVENT_SIZE: usize = size_of::<u16>();

// The legacy vring layout (virtio 1.x, 2.6), which the byte map in the crate docs shows.
const _: () = assert!(DESC_SIZE == 16 && USED_ELEM_SIZE == 8);
const _: () = assert!(AVAIL_RING == 4 && USED_RING == 4 && DESC_FLAGS == 12);

/// A used-ring element after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedElem {
    /// Descriptor id, known to be in flight.
    pub id: u16,
    /// Bytes written, known to be at most the buffer length.
    pub len: u32,
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
///
/// Its three parts are checked against the region once, by [`RingView::new`]: every
/// access after that is to a slot below the queue size (a masked position, or an id
/// checked against the size), in bounds and aligned by construction, so it needs no
/// check of its own.
#[derive(Debug, Clone, Copy)]
pub struct RingView<'a> {
    region: SharedRegion<'a>,
    ring: RingLayout,
}

/// Whether `count` entries of `entry` bytes after a header of `header` bytes and before a
/// trailer of `trailer` bytes, at `offset` aligned to `align`, fit a region of `len` bytes.
fn part_fits(offset: usize, align: usize, bytes: [usize; 4], len: usize) -> bool {
    let [header, entry, count, trailer] = bytes;
    let end = entry
        .checked_mul(count)
        .and_then(|b| b.checked_add(header + trailer))
        .and_then(|b| b.checked_add(offset));
    offset % align == 0 && end.is_some_and(|end| end <= len)
}

impl<'a> RingView<'a> {
    /// A view of `ring` in `region`; fails if a part of the ring (descriptor table,
    /// available ring, used ring) does not fit the region or is misaligned, or if its size
    /// is not a power of two (as virtio requires; positions are then masked).
    pub fn new(region: SharedRegion<'a>, ring: RingLayout) -> Result<Self> {
        if !ring.size.is_power_of_two() {
            return Err(Error::InvalidConfig(ConfigRule::QueueSize));
        }
        let (n, len) = (ring.size as usize, region.len());
        let fits = part_fits(ring.desc, 8, [0, DESC_SIZE, n, 0], len)
            && part_fits(ring.avail, 2, [AVAIL_RING, AVAIL_ENTRY_SIZE, n, 2], len)
            && part_fits(
                ring.used,
                4,
                [USED_RING, USED_ELEM_SIZE, n, USED_EVENT_SIZE],
                len,
            );
        if !fits {
            return Err(Error::OutOfBounds);
        }
        Ok(Self { region, ring })
    }

    /// Queue size.
    pub const fn size(&self) -> u16 {
        self.ring.size
    }

    /// One past the ring's last byte (the used ring's `avail_event`).
    fn end(&self) -> usize {
        self.ring.used + USED_RING + USED_ELEM_SIZE * self.ring.size as usize + USED_EVENT_SIZE
    }

    /// The ring position of free-running index `idx` (the size is a power of two: a mask,
    /// not a division).
    fn slot(&self, idx: u16) -> usize {
        (idx & (self.ring.size - 1)) as usize
    }

    /// Zeroes the whole ring (descriptors, both rings, flags and indices).
    pub fn reset(&self) -> Result<()> {
        let len = self.end() - self.ring.desc;
        self.region.zero(self.ring.desc, len)
    }

    // ---- driver side ------------------------------------------------------------------

    /// Writes descriptor `id` (single buffer, no chaining) as two words: the address, then
    /// length, flags and `next` (0).
    pub fn write_desc(&self, id: u16, addr: u64, len: u32, flags: u16) -> Result<()> {
        if id >= self.ring.size {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        const _: () = assert!(DESC_LEN == 8 && DESC_NEXT == 14);
        let d = self.ring.desc + DESC_SIZE * id as usize;
        let rest = u64::from(len) | u64::from(flags) << 32;
        // SAFETY: `id < size`, and `new` checked that the table's `size` entries lie in the
        // region, 8-aligned.
        unsafe {
            self.region
                .store_u64_in(d + DESC_ADDR, addr, Ordering::Relaxed);
            self.region
                .store_u64_in(d + DESC_LEN, rest, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Puts descriptor `id` in the available ring at position `idx`.
    pub fn write_avail_entry(&self, idx: u16, id: u16) {
        let off = self.ring.avail + AVAIL_RING + AVAIL_ENTRY_SIZE * self.slot(idx);
        // SAFETY: a masked position: one of the `size` entries `new` checked.
        unsafe { self.region.store_u16_in(off, id, Ordering::Relaxed) }
    }

    /// Publishes the available index (`Release`: entries and descriptors become visible).
    pub fn publish_avail_idx(&self, idx: u16) {
        // SAFETY: the available ring's header, checked by `new`.
        unsafe {
            self.region
                .store_u16_in(self.ring.avail + AVAIL_IDX, idx, Ordering::Release)
        }
    }

    /// Sets the available ring's flags (e.g. `VRING_AVAIL_F_NO_INTERRUPT`).
    pub fn set_avail_flags(&self, flags: u16) {
        // SAFETY: the available ring's header, checked by `new`.
        unsafe {
            self.region
                .store_u16_in(self.ring.avail + AVAIL_FLAGS, flags, Ordering::Relaxed)
        }
    }

    /// How many used elements are pending after `last_used`, validated against the number
    /// of buffers in flight (the device cannot return more than it was given).
    pub fn used_pending(&self, last_used: u16, in_flight: u32) -> Result<u16> {
        let idx = self.used_idx();
        let pending = idx.wrapping_sub(last_used);
        if u32::from(pending) > in_flight || pending > self.ring.size {
            return Err(Error::Peer(PeerFault::UsedIndexOutOfRange));
        }
        Ok(pending)
    }

    /// Takes the used element at position `idx`: its id must be below the queue size and
    /// its length at most `buf_len`, and then the id must be in `in_flight`, from which it
    /// is removed (the buffer is ours again).
    #[inline]
    pub fn take_used_elem(
        &self,
        idx: u16,
        in_flight: &mut DescSet,
        buf_len: u32,
    ) -> Result<UsedElem> {
        let off = self.ring.used + USED_RING + USED_ELEM_SIZE * self.slot(idx);
        // SAFETY: a masked position: one of the `size` elements `new` checked (4-aligned).
        let (id, len) = unsafe {
            (
                self.region
                    .load_u32_in(off + USED_ELEM_ID, Ordering::Relaxed),
                self.region
                    .load_u32_in(off + USED_ELEM_LEN, Ordering::Relaxed),
            )
        };
        if id >= u32::from(self.ring.size) {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        if len > buf_len {
            return Err(Error::Peer(PeerFault::UsedLengthTooLarge));
        }
        let id = id as u16;
        if !in_flight.remove(id) {
            return Err(Error::Peer(PeerFault::UsedIdNotInFlight));
        }
        Ok(UsedElem { id, len })
    }

    /// After publishing available buffers: does the device want a notification?
    pub fn device_wants_notification(&self) -> bool {
        full_barrier();
        // SAFETY: the used ring's header, checked by `new`.
        let flags = unsafe {
            self.region
                .load_u16_in(self.ring.used + USED_FLAGS, Ordering::Relaxed)
        };
        flags & crate::wire::VRING_USED_F_NO_NOTIFY == 0
    }

    // ---- device side ------------------------------------------------------------------

    /// How many available entries are pending after `last_avail` (at most the queue size).
    pub fn avail_pending(&self, last_avail: u16) -> Result<u16> {
        let idx = self.avail_idx();
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
    #[inline]
    pub fn read_avail_buffer(
        &self,
        idx: u16,
        held: &DescSet,
        pool: &PoolWindow,
    ) -> Result<(u16, BufferRef)> {
        let off = self.ring.avail + AVAIL_RING + AVAIL_ENTRY_SIZE * self.slot(idx);
        // SAFETY: a masked position: one of the `size` entries `new` checked.
        let id = unsafe { self.region.load_u16_in(off, Ordering::Relaxed) };
        if id >= self.ring.size {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        if held.contains(id) {
            return Err(Error::Peer(PeerFault::DuplicateDescriptor));
        }
        let d = self.ring.desc + DESC_SIZE * id as usize;
        // SAFETY: `id < size`: one of the descriptors `new` checked (8-aligned).
        let (addr, rest) = unsafe {
            (
                self.region.load_u64_in(d + DESC_ADDR, Ordering::Relaxed),
                self.region.load_u64_in(d + DESC_LEN, Ordering::Relaxed),
            )
        };
        let (len, flags) = (rest as u32, (rest >> 32) as u16);
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
    pub fn write_used_elem(&self, idx: u16, id: u16, len: u32) {
        let off = self.ring.used + USED_RING + USED_ELEM_SIZE * self.slot(idx);
        // SAFETY: a masked position: one of the `size` elements `new` checked (4-aligned).
        unsafe {
            self.region
                .store_u32_in(off + USED_ELEM_ID, u32::from(id), Ordering::Relaxed);
            self.region
                .store_u32_in(off + USED_ELEM_LEN, len, Ordering::Relaxed);
        }
    }

    /// Publishes the used index (`Release`).
    pub fn publish_used_idx(&self, idx: u16) {
        // SAFETY: the used ring's header, checked by `new`.
        unsafe {
            self.region
                .store_u16_in(self.ring.used + USED_IDX, idx, Ordering::Release)
        }
    }

    /// Sets the used ring's flags (e.g. `VRING_USED_F_NO_NOTIFY`).
    pub fn set_used_flags(&self, flags: u16) {
        // SAFETY: the used ring's header, checked by `new`.
        unsafe {
            self.region
                .store_u16_in(self.ring.used + USED_FLAGS, flags, Ordering::Relaxed)
        }
    }

    /// After publishing used buffers: does the driver want an interrupt?
    pub fn driver_wants_interrupt(&self) -> bool {
        full_barrier();
        // SAFETY: the available ring's header, checked by `new`.
        let flags = unsafe {
            self.region
                .load_u16_in(self.ring.avail + AVAIL_FLAGS, Ordering::Relaxed)
        };
        flags & crate::wire::VRING_AVAIL_F_NO_INTERRUPT == 0
    }

    /// Current available index, unvalidated (device side: [`RingView::avail_pending`]
    /// validates it; also for a cheap look while polling).
    pub fn avail_idx(&self) -> u16 {
        // SAFETY: the available ring's header, checked by `new`.
        unsafe {
            self.region
                .load_u16_in(self.ring.avail + AVAIL_IDX, Ordering::Acquire)
        }
    }

    /// Current used index, unvalidated (driver side: [`RingView::used_pending`] validates
    /// it).
    pub fn used_idx(&self) -> u16 {
        // SAFETY: the used ring's header, checked by `new`.
        unsafe {
            self.region
                .load_u16_in(self.ring.used + USED_IDX, Ordering::Acquire)
        }
    }
}
