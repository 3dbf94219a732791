//! The control area: the virtio status byte and our control block (sessions, ids,
//! layout), read and written with the orderings the link protocol needs.

use core::sync::atomic::Ordering;

use super::region::SharedRegion;
use crate::error::{Error, PeerFault, Result};
use crate::layout::{Layout, CONTROL_AREA_SIZE, STATUS_OFFSET};
use crate::wire::{ControlBlock, CONTROL_BLOCK_OFFSET, CONTROL_MAGIC, NO_PEER_ID};

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

/// Whether a field of `size` bytes at `offset` lies in the control area, naturally aligned.
const fn field_ok(offset: usize, size: usize) -> bool {
    offset % size == 0 && offset + size <= CONTROL_AREA_SIZE
}

const MAGIC: usize = cb(core::mem::offset_of!(ControlBlock, magic));
const HOST_SESSION: usize = cb(core::mem::offset_of!(ControlBlock, host_session));
const REMOTE_ID: usize = cb(core::mem::offset_of!(ControlBlock, remote_id));

/// The heartbeat words follow the control block, in the control area's zeroed space
/// (zeroed again by every [`ControlView::begin_session`]); each is written by one side.
const HEARTBEAT_OFFSET: usize = CONTROL_BLOCK_OFFSET + core::mem::size_of::<ControlBlock>();

const HOST_BEAT: usize = HEARTBEAT_OFFSET;
const REMOTE_BEAT: usize = HEARTBEAT_OFFSET + 4;

fn peer_id(raw: u32) -> Result<Option<u16>> {
    match raw {
        NO_PEER_ID => Ok(None),
        id => u16::try_from(id)
            .map(Some)
            .map_err(|_| Error::Peer(PeerFault::BadControlValue)),
    }
}

/// Loads and stores of the fields read on every message and heartbeat, without a bounds
/// check at run time: `new` checked that the control area lies in the region, and the
/// offset is checked against the area at compile time.
impl ControlView<'_> {
    #[inline]
    fn load_u8<const OFFSET: usize>(&self, order: Ordering) -> u8 {
        const { assert!(field_ok(OFFSET, 1)) };
        // SAFETY: in the control area (above), which `new` checked lies in the region.
        unsafe { self.region.load_u8_in(OFFSET, order) }
    }

    #[inline]
    fn load_u32<const OFFSET: usize>(&self, order: Ordering) -> u32 {
        const { assert!(field_ok(OFFSET, 4)) };
        // SAFETY: as in `load_u8`; aligned.
        unsafe { self.region.load_u32_in(OFFSET, order) }
    }

    #[inline]
    fn store_u32<const OFFSET: usize>(&self, value: u32, order: Ordering) {
        const { assert!(field_ok(OFFSET, 4)) };
        // SAFETY: as in `load_u8`; aligned.
        unsafe { self.region.store_u32_in(OFFSET, value, order) }
    }

    #[inline]
    fn load_u64<const OFFSET: usize>(&self, order: Ordering) -> u64 {
        const { assert!(field_ok(OFFSET, 8)) };
        // SAFETY: as in `load_u8`; aligned.
        unsafe { self.region.load_u64_in(OFFSET, order) }
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
    #[inline]
    pub fn status(&self) -> Result<u8> {
        Ok(self.load_u8::<STATUS_OFFSET>(Ordering::Acquire))
    }

    /// Sets the virtio status byte (`Release`: everything written before is visible to a
    /// peer that sees the new status).
    pub fn set_status(&self, status: u8) -> Result<()> {
        const { assert!(field_ok(STATUS_OFFSET, 1)) };
        // SAFETY: in the control area, which `new` checked lies in the region.
        unsafe {
            self.region
                .store_u8_in(STATUS_OFFSET, status, Ordering::Release)
        };
        Ok(())
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
    #[inline]
    pub fn host_session(&self) -> Result<u32> {
        if self.load_u32::<MAGIC>(Ordering::Acquire) != CONTROL_MAGIC {
            return Ok(0);
        }
        Ok(self.load_u32::<HOST_SESSION>(Ordering::Acquire))
    }

    /// The remote's published id and the session it attached to (one 64-bit load, so the
    /// pair is never torn: `(Some(id), 0)` is unambiguously a request for a fresh session).
    pub fn remote(&self) -> Result<(Option<u16>, u32)> {
        let word = self.load_u64::<REMOTE_ID>(Ordering::Acquire);
        let id = peer_id(word as u32)?;
        Ok((id, (word >> 32) as u32))
    }

    /// The heartbeat counter of the host (`host` true) or the remote: 0 until that node
    /// bumps it (a C OpenAMP node or one of ours from before heartbeats never does).
    pub fn heartbeat(&self, host: bool) -> Result<u32> {
        Ok(match host {
            true => self.load_u32::<HOST_BEAT>(Ordering::Relaxed),
            false => self.load_u32::<REMOTE_BEAT>(Ordering::Relaxed),
        })
    }

    /// Stores our heartbeat counter (`host`: whether we are the host). No ordering is
    /// needed: the value says only that the node is alive, nothing else is published
    /// with it.
    pub fn set_heartbeat(&self, host: bool, value: u32) -> Result<()> {
        match host {
            true => self.store_u32::<HOST_BEAT>(value, Ordering::Relaxed),
            false => self.store_u32::<REMOTE_BEAT>(value, Ordering::Relaxed),
        }
        Ok(())
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
