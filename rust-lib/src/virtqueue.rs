//! Split virtqueues in both roles, on top of the validating [`crate::shm::RingView`].
//!
//! * [`DriverQueue`]: the driver (host) side. It owns every descriptor and never reads a
//!   descriptor back from shared memory: what it handed out is tracked locally
//!   (`in_flight`), so a peer that scribbles over the descriptor table cannot make us use
//!   a buffer we did not choose.
//! * [`DeviceQueue`]: the device (remote) side. It takes buffers from the available ring and
//!   returns them on the used ring; every descriptor it reads is validated by `shm`.
//!
//! Indices are free-running `u16`s compared with wrapping arithmetic, as virtio specifies.

use crate::descset::DescSet;
use crate::error::{Error, PeerFault, Result};
use crate::shm::{BufferRef, PoolWindow, RingView, UsedElem};
use crate::wire::{VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY};

/// The doorbell side of either queue: what a node needs to ring the peer only when it
/// asks, and to poll instead of being rung.
pub trait Notify {
    /// Whether the peer published something on this queue we have not taken yet: one load,
    /// for a caller that polls.
    fn peer_moved(&self) -> bool;
    /// Whether the peer wants a doorbell for what we just published.
    fn should_notify(&self) -> Result<bool>;
    /// Asks the peer not to ring us for what it publishes on this queue (or to do so again).
    fn suppress(&self, suppress: bool) -> Result<()>;
}

/// The driver side of a split virtqueue.
#[derive(Debug)]
pub struct DriverQueue<'a> {
    ring: RingView<'a>,
    in_flight: DescSet,
    avail_idx: u16,
    last_used: u16,
    /// The device's used index as last loaded (and validated): entries up to it are taken
    /// without loading it again, one `Acquire` load per batch instead of per buffer.
    used_seen: u16,
}

impl<'a> DriverQueue<'a> {
    /// A driver queue over `ring`. Call [`DriverQueue::reset`] before use on a fresh region.
    pub fn new(ring: RingView<'a>) -> Self {
        Self {
            ring,
            in_flight: DescSet::new(),
            avail_idx: 0,
            last_used: 0,
            used_seen: 0,
        }
    }

    /// Zeroes the ring and forgets every buffer in flight.
    pub fn reset(&mut self) -> Result<()> {
        self.ring.reset()?;
        self.in_flight = DescSet::new();
        self.avail_idx = 0;
        self.last_used = 0;
        self.used_seen = 0;
        Ok(())
    }

    /// Queue size.
    pub const fn size(&self) -> u16 {
        self.ring.size()
    }

    /// Number of buffers the device holds.
    pub const fn in_flight(&self) -> u32 {
        self.in_flight.len()
    }

    /// Offers buffer `id` (at descriptor address `addr`, `len` bytes) to the device.
    /// Errors if `id` is out of range or already in flight.
    pub fn add(&mut self, id: u16, addr: u64, len: u32, device_writable: bool) -> Result<()> {
        if id >= self.size() {
            return Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange));
        }
        if !self.in_flight.insert(id) {
            return Err(Error::Peer(PeerFault::DuplicateDescriptor));
        }
        let flags = if device_writable {
            VRING_DESC_F_WRITE
        } else {
            0
        };
        self.ring.write_desc(id, addr, len, flags)?;
        self.ring.write_avail_entry(self.avail_idx, id);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ring.publish_avail_idx(self.avail_idx);
        Ok(())
    }

    /// Takes the next buffer the device returned, if any. `buf_len` bounds the reported
    /// length. A malformed used element is skipped (and reported as the error); a used
    /// index that moved impossibly far is an error that leaves the queue unchanged.
    ///
    /// The used index is loaded (and validated) only when the entries seen at the last load
    /// are all taken: a batch of returned buffers costs one load of it.
    #[inline]
    pub fn pop_used(&mut self, buf_len: u32) -> Result<Option<UsedElem>> {
        if self.used_seen == self.last_used {
            let pending = self
                .ring
                .used_pending(self.last_used, self.in_flight.len())?;
            if pending == 0 {
                return Ok(None);
            }
            self.used_seen = self.last_used.wrapping_add(pending);
        }
        let elem = self
            .ring
            .take_used_elem(self.last_used, &mut self.in_flight, buf_len);
        self.last_used = self.last_used.wrapping_add(1);
        elem.map(Some)
    }
}

impl DriverQueue<'_> {
    /// Takes every buffer the device returned, with one load (and validation) of its used
    /// index: `done` gets each valid element, `rejected` the fault of each malformed one
    /// (skipped, as in [`DriverQueue::pop_used`]). A used index that moved impossibly far
    /// is an error that leaves the queue unchanged.
    #[inline]
    pub fn drain_used(
        &mut self,
        buf_len: u32,
        mut done: impl FnMut(UsedElem),
        mut rejected: impl FnMut(Error),
    ) -> Result<()> {
        let pending = self
            .ring
            .used_pending(self.last_used, self.in_flight.len())?;
        for _ in 0..pending {
            match self
                .ring
                .take_used_elem(self.last_used, &mut self.in_flight, buf_len)
            {
                Ok(elem) => done(elem),
                Err(e) => rejected(e),
            }
            self.last_used = self.last_used.wrapping_add(1);
        }
        self.used_seen = self.last_used;
        Ok(())
    }

    /// Puts back buffer `id`, just taken with [`DriverQueue::pop_used`]: the next
    /// `pop_used` reads (and validates) its used element again.
    pub fn unpop_used(&mut self, id: u16) {
        if self.in_flight.insert(id) {
            self.last_used = self.last_used.wrapping_sub(1);
        }
    }
}

impl Notify for DriverQueue<'_> {
    /// Whether the device returned a buffer we have not taken yet (no validation: that is
    /// [`DriverQueue::pop_used`]'s job).
    fn peer_moved(&self) -> bool {
        self.ring.used_idx() != self.last_used
    }

    /// Whether the device wants to be notified now (call after [`DriverQueue::add`]).
    fn should_notify(&self) -> Result<bool> {
        Ok(self.ring.device_wants_notification())
    }

    /// Asks the device not to interrupt us for used buffers (or to do so again).
    fn suppress(&self, suppress: bool) -> Result<()> {
        self.ring.set_avail_flags(if suppress {
            VRING_AVAIL_F_NO_INTERRUPT
        } else {
            0
        });
        Ok(())
    }
}

/// The device side of a split virtqueue.
#[derive(Debug)]
pub struct DeviceQueue<'a> {
    ring: RingView<'a>,
    pool: PoolWindow,
    held: DescSet,
    last_avail: u16,
    used_idx: u16,
    /// The driver's available index as last loaded (and validated); see
    /// [`DriverQueue::pop_used`].
    avail_seen: u16,
}

impl<'a> DeviceQueue<'a> {
    /// A device queue over `ring`, accepting only buffers inside `pool`.
    pub fn new(ring: RingView<'a>, pool: PoolWindow) -> Self {
        Self {
            ring,
            pool,
            held: DescSet::new(),
            last_avail: 0,
            used_idx: 0,
            avail_seen: 0,
        }
    }

    /// Starts over at indices 0 with nothing held (the driver reset the ring), accepting
    /// buffers in `pool`.
    pub fn restart(&mut self, pool: PoolWindow) {
        self.pool = pool;
        self.held = DescSet::new();
        self.last_avail = 0;
        self.used_idx = 0;
        self.avail_seen = 0;
    }

    /// Queue size.
    pub const fn size(&self) -> u16 {
        self.ring.size()
    }

    /// Number of buffers taken from the driver and not yet returned.
    pub const fn held(&self) -> u32 {
        self.held.len()
    }

    /// Takes the next available buffer, if any. A malformed entry is skipped (and reported
    /// as the error); an available index that moved impossibly far is an error that leaves
    /// the queue unchanged.
    ///
    /// The available index is loaded (and validated) once per batch, as the used index in
    /// [`DriverQueue::pop_used`].
    #[inline]
    pub fn pop_avail(&mut self) -> Result<Option<(u16, BufferRef)>> {
        let found = self.pop_avail_passing()?;
        if let Some((id, _)) = found {
            self.held.insert(id);
        }
        Ok(found)
    }

    /// [`DeviceQueue::pop_avail`] for a buffer given back with
    /// [`DeviceQueue::push_used_passing`] before anything else takes from or returns to
    /// this queue: it is checked against the held buffers but not recorded as held.
    #[inline]
    pub fn pop_avail_passing(&mut self) -> Result<Option<(u16, BufferRef)>> {
        if self.avail_seen == self.last_avail {
            let pending = self.ring.avail_pending(self.last_avail)?;
            if pending == 0 {
                return Ok(None);
            }
            self.avail_seen = self.last_avail.wrapping_add(pending);
        }
        let entry = self
            .ring
            .read_avail_buffer(self.last_avail, &self.held, &self.pool);
        self.last_avail = self.last_avail.wrapping_add(1);
        entry.map(Some)
    }

    /// Puts back buffer `id`, just taken with [`DeviceQueue::pop_avail`]: the next
    /// `pop_avail` reads (and validates) its available entry again.
    pub fn unpop_avail(&mut self, id: u16) {
        if self.held.remove(id) {
            self.last_avail = self.last_avail.wrapping_sub(1);
        }
    }

    /// Puts back buffer `id`, just taken with [`DeviceQueue::pop_avail_passing`].
    pub fn unpop_avail_passing(&mut self) {
        self.last_avail = self.last_avail.wrapping_sub(1);
    }

    /// Returns buffer `id` to the driver with `len` bytes written.
    pub fn push_used(&mut self, id: u16, len: u32) -> Result<()> {
        if !self.held.remove(id) {
            return Err(Error::StaleBuffer);
        }
        self.push_used_passing(id, len);
        Ok(())
    }

    /// Returns buffer `id`, taken with [`DeviceQueue::pop_avail_passing`], with `len`
    /// bytes written.
    pub fn push_used_passing(&mut self, id: u16, len: u32) {
        self.ring.write_used_elem(self.used_idx, id, len);
        self.used_idx = self.used_idx.wrapping_add(1);
        self.ring.publish_used_idx(self.used_idx);
    }
}

impl Notify for DeviceQueue<'_> {
    /// Whether the driver offered a buffer we have not taken yet (no validation: that is
    /// [`DeviceQueue::pop_avail`]'s job).
    fn peer_moved(&self) -> bool {
        self.ring.avail_idx() != self.last_avail
    }

    /// Whether the driver wants an interrupt now (call after [`DeviceQueue::push_used`]).
    fn should_notify(&self) -> Result<bool> {
        Ok(self.ring.driver_wants_interrupt())
    }

    /// Asks the driver not to notify us of new buffers (or to do so again). When
    /// enabling, a full barrier follows, so an available-ring check made afterwards cannot
    /// miss a buffer the driver added without notifying.
    fn suppress(&self, suppress: bool) -> Result<()> {
        self.ring
            .set_used_flags(if suppress { VRING_USED_F_NO_NOTIFY } else { 0 });
        if !suppress {
            crate::shm::full_barrier();
        }
        Ok(())
    }
}
