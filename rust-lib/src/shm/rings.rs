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
#[derive(Debug, Clone, Copy)]
pub struct RingView<'a> {
    region: SharedRegion<'a>,
    ring: RingLayout,
}

impl<'a> RingView<'a> {
    /// A view of `ring` in `region`; fails if the ring does not fit the region, or if its
    /// size is not a power of two (as virtio requires; positions are then masked).
    pub fn new(region: SharedRegion<'a>, ring: RingLayout) -> Result<Self> {
        if !ring.size.is_power_of_two() {
            return Err(Error::InvalidConfig(ConfigRule::QueueSize));
        }
        let end = ring.used + USED_RING + USED_ELEM_SIZE * ring.size as usize + USED_EVENT_SIZE;
        if end > region.len() || ring.desc % 8 != 0 || ring.used % 4 != 0 {
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

    /// Writes descriptor `id` (single buffer, no chaining).
    pub fn write_desc(&self, id: u16, addr: u64, len: u32, flags: u16) -> Result<()> {
        if id >= self.ring.size {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        let d = self.ring.desc + DESC_SIZE * id as usize;
        self.region
            .store_u64(d + DESC_ADDR, addr, Ordering::Relaxed)?;
        self.region
            .store_u32(d + DESC_LEN, len, Ordering::Relaxed)?;
        self.region
            .store_u16(d + DESC_FLAGS, flags, Ordering::Relaxed)?;
        self.region.store_u16(d + DESC_NEXT, 0, Ordering::Relaxed)
    }

    /// Puts descriptor `id` in the available ring at position `idx`.
    pub fn write_avail_entry(&self, idx: u16, id: u16) -> Result<()> {
        let off = self.ring.avail + AVAIL_RING + AVAIL_ENTRY_SIZE * self.slot(idx);
        self.region.store_u16(off, id, Ordering::Relaxed)
    }

    /// Publishes the available index (`Release`: entries and descriptors become visible).
    pub fn publish_avail_idx(&self, idx: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.avail + AVAIL_IDX, idx, Ordering::Release)
    }

    /// Sets the available ring's flags (e.g. `VRING_AVAIL_F_NO_INTERRUPT`).
    pub fn set_avail_flags(&self, flags: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.avail + AVAIL_FLAGS, flags, Ordering::Relaxed)
    }

    /// How many used elements are pending after `last_used`, validated against the number
    /// of buffers in flight (the device cannot return more than it was given).
    pub fn used_pending(&self, last_used: u16, in_flight: u32) -> Result<u16> {
        let idx = self
            .region
            .load_u16(self.ring.used + USED_IDX, Ordering::Acquire)?;
        let pending = idx.wrapping_sub(last_used);
        if u32::from(pending) > in_flight || pending > self.ring.size {
            return Err(Error::Peer(PeerFault::UsedIndexOutOfRange));
        }
        Ok(pending)
    }

    /// Reads the used element at position `idx`. Its id must be in `in_flight` and its
    /// length at most `buf_len`.
    pub fn read_used_elem(&self, idx: u16, in_flight: &DescSet, buf_len: u32) -> Result<UsedElem> {
        let off = self.ring.used + USED_RING + USED_ELEM_SIZE * self.slot(idx);
        let id = self
            .region
            .load_u32(off + USED_ELEM_ID, Ordering::Relaxed)?;
        let len = self
            .region
            .load_u32(off + USED_ELEM_LEN, Ordering::Relaxed)?;
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
        let flags = self
            .region
            .load_u16(self.ring.used + USED_FLAGS, Ordering::Relaxed)?;
        Ok(flags & crate::wire::VRING_USED_F_NO_NOTIFY == 0)
    }

    // ---- device side ------------------------------------------------------------------

    /// How many available entries are pending after `last_avail` (at most the queue size).
    pub fn avail_pending(&self, last_avail: u16) -> Result<u16> {
        let idx = self
            .region
            .load_u16(self.ring.avail + AVAIL_IDX, Ordering::Acquire)?;
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
        let off = self.ring.avail + AVAIL_RING + AVAIL_ENTRY_SIZE * self.slot(idx);
        let id = self.region.load_u16(off, Ordering::Relaxed)?;
        if id >= self.ring.size {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        if held.contains(id) {
            return Err(Error::Peer(PeerFault::DuplicateDescriptor));
        }
        let d = self.ring.desc + DESC_SIZE * id as usize;
        let addr = self.region.load_u64(d + DESC_ADDR, Ordering::Relaxed)?;
        let len = self.region.load_u32(d + DESC_LEN, Ordering::Relaxed)?;
        let flags = self.region.load_u16(d + DESC_FLAGS, Ordering::Relaxed)?;
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
        let off = self.ring.used + USED_RING + USED_ELEM_SIZE * self.slot(idx);
        self.region
            .store_u32(off + USED_ELEM_ID, u32::from(id), Ordering::Relaxed)?;
        self.region
            .store_u32(off + USED_ELEM_LEN, len, Ordering::Relaxed)
    }

    /// Publishes the used index (`Release`).
    pub fn publish_used_idx(&self, idx: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.used + USED_IDX, idx, Ordering::Release)
    }

    /// Sets the used ring's flags (e.g. `VRING_USED_F_NO_NOTIFY`).
    pub fn set_used_flags(&self, flags: u16) -> Result<()> {
        self.region
            .store_u16(self.ring.used + USED_FLAGS, flags, Ordering::Relaxed)
    }

    /// After publishing used buffers: does the driver want an interrupt?
    pub fn driver_wants_interrupt(&self) -> Result<bool> {
        full_barrier();
        let flags = self
            .region
            .load_u16(self.ring.avail + AVAIL_FLAGS, Ordering::Relaxed)?;
        Ok(flags & crate::wire::VRING_AVAIL_F_NO_INTERRUPT == 0)
    }

    /// Current available index (device side, for resynchronising after attach).
    pub fn avail_idx(&self) -> Result<u16> {
        self.region
            .load_u16(self.ring.avail + AVAIL_IDX, Ordering::Acquire)
    }

    /// Current used index.
    pub fn used_idx(&self) -> Result<u16> {
        self.region
            .load_u16(self.ring.used + USED_IDX, Ordering::Acquire)
    }
}
