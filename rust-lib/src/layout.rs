//! Where everything lives in the shared region: configuration and layout arithmetic.
//!
//! All arithmetic is checked; a configuration that does not fit is an [`Error`], never a
//! wrapped offset. See the crate documentation for the byte map.

use crate::error::{ConfigRule, Error, Result};
use crate::wire::RpmsgHeader;

/// Size of the control area at the start of the region.
pub const CONTROL_AREA_SIZE: usize = 0x400;
/// The ring area of each vring is a multiple of this (0x400 as in the OpenAMP sample).
pub const RING_AREA_GRANULE: usize = 0x400;
/// Largest supported queue size (descriptors per virtqueue).
pub const MAX_QUEUE_SIZE: u16 = 256;
/// Smallest supported buffer size (header plus 16 payload bytes).
pub const MIN_BUF_SIZE: u32 = 32;
/// Largest supported buffer size (the header's 16-bit length bounds the payload).
pub const MAX_BUF_SIZE: u32 = 65536;
/// Largest supported region (the ivshmem-server's limit).
pub const MAX_SHM_SIZE: usize = 1 << 30;
/// Offset of the virtio status byte (OpenAMP sample compatible).
pub const STATUS_OFFSET: usize = 0;
/// Virtio status bits the host sets once rings and receive buffers are ready
/// (ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK); OpenAMP remotes wait for `DRIVER_OK`.
pub const STATUS_READY: u8 = 0x0F;
/// The `DRIVER_OK` status bit.
pub const STATUS_DRIVER_OK: u8 = 0x04;
/// Default guest address of the region in the Zephyr images (`qemu_cortex_a53`).
pub const DEFAULT_ADDR_BASE: u64 = 0xafa0_0000;

/// Which of the two virtqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueId {
    /// vring 0: remote → host (the host's receive queue, the remote's transmit queue).
    RemoteToHost = 0,
    /// vring 1: host → remote (the host's transmit queue, the remote's receive queue).
    HostToRemote = 1,
}

/// What a node is configured with. Both sides must agree on everything but the ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Size of the shared region in bytes.
    pub shm_size: usize,
    /// Size of one RPMsg buffer, header included (default 512).
    pub buf_size: u32,
    /// Descriptors per virtqueue, a power of two (default 16).
    pub queue_size: u16,
    /// Vring alignment, a power of two from 4 to 4096 (default 4).
    pub align: u32,
    /// The address the host writes into descriptors for the region's first byte. The remote
    /// uses the value the host published; a C OpenAMP host publishes none, so the remote
    /// then uses its own setting (identical images map the region at the same address).
    pub addr_base: u64,
    /// Send and handle name-service messages (`VIRTIO_RPMSG_F_NS`, default on).
    pub name_service: bool,
    /// Peer id to notify when the peer published none (a C OpenAMP peer). May change while
    /// a node runs: [`crate::Rpmsg::set_fallback_peer_id`].
    pub fallback_peer_id: Option<u16>,
}

impl Config {
    /// The OpenAMP sample's configuration for a region of `shm_size` bytes.
    pub const fn new(shm_size: usize) -> Self {
        Self {
            shm_size,
            buf_size: 512,
            queue_size: 16,
            align: 4,
            addr_base: DEFAULT_ADDR_BASE,
            name_service: true,
            fallback_peer_id: None,
        }
    }
}

/// Offsets of one split vring (legacy layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    /// Descriptor table offset in the region.
    pub desc: usize,
    /// Available ring offset.
    pub avail: usize,
    /// Used ring offset.
    pub used: usize,
    /// Number of descriptors.
    pub size: u16,
}

impl RingLayout {
    /// Bytes a legacy vring of `size` descriptors occupies with `align` (OpenAMP `vring_size`).
    pub const fn bytes(size: u16, align: usize) -> usize {
        let n = size as usize;
        align_up(16 * n + 6 + 2 * n, align) + 6 + 8 * n
    }

    /// The layout of a vring placed at `base`.
    pub const fn at(base: usize, size: u16, align: usize) -> Self {
        let n = size as usize;
        Self {
            desc: base,
            avail: base + 16 * n,
            used: base + align_up(16 * n + 6 + 2 * n, align),
            size,
        }
    }
}

/// The validated layout of a region for one [`Config`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    config: Config,
    rings: [RingLayout; 2],
    ring_area: usize,
}

const fn align_up(value: usize, align: usize) -> usize {
    (value + align - 1) & !(align - 1)
}

impl Layout {
    /// Checks `config` and computes its layout.
    pub fn new(config: &Config) -> Result<Self> {
        let n = config.queue_size;
        if n == 0 || !n.is_power_of_two() || n > MAX_QUEUE_SIZE {
            return Err(Error::InvalidConfig(ConfigRule::QueueSize));
        }
        if !(4..=4096).contains(&config.align) || !config.align.is_power_of_two() {
            return Err(Error::InvalidConfig(ConfigRule::Align));
        }
        if !(MIN_BUF_SIZE..=MAX_BUF_SIZE).contains(&config.buf_size) || config.buf_size % 8 != 0 {
            return Err(Error::InvalidConfig(ConfigRule::BufSize));
        }
        if config.shm_size > MAX_SHM_SIZE || config.shm_size % 8 != 0 {
            return Err(Error::InvalidConfig(ConfigRule::ShmSize));
        }
        let align = config.align as usize;
        let ring_area = align_up(RingLayout::bytes(n, align), RING_AREA_GRANULE.max(align));
        let needed = Self::required_size(config)?;
        if config.shm_size < needed {
            return Err(Error::RegionTooSmall);
        }
        let ring0 = config.shm_size - 2 * ring_area;
        let ring1 = config.shm_size - ring_area;
        if ring0 % align != 0 {
            return Err(Error::InvalidConfig(ConfigRule::ShmAlign));
        }
        Ok(Self {
            config: *config,
            rings: [
                RingLayout::at(ring0, n, align),
                RingLayout::at(ring1, n, align),
            ],
            ring_area,
        })
    }

    /// The smallest region size that holds `config` (control area, 2 × queue_size buffers,
    /// two ring areas). Errors only for configurations [`Layout::new`] rejects anyway.
    pub fn required_size(config: &Config) -> Result<usize> {
        let align = (config.align as usize).max(1);
        let ring_bytes = RingLayout::bytes(config.queue_size, align);
        let granule = RING_AREA_GRANULE.max(align);
        let ring_area = ring_bytes
            .checked_add(granule - 1)
            .map(|v| v & !(granule - 1))
            .ok_or(Error::InvalidConfig(ConfigRule::RingArea))?;
        (config.queue_size as usize)
            .checked_mul(2)
            .and_then(|b| b.checked_mul(config.buf_size as usize))
            .and_then(|pool| pool.checked_add(CONTROL_AREA_SIZE))
            .and_then(|v| v.checked_add(2 * ring_area))
            .ok_or(Error::InvalidConfig(ConfigRule::LayoutSize))
    }

    /// The configuration this layout was made from.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Changes only the peer to ring when none is published: it plays no part in the
    /// layout, and may change while a node runs ([`crate::Rpmsg::set_fallback_peer_id`]).
    pub(crate) fn set_fallback_peer_id(&mut self, id: Option<u16>) {
        self.config.fallback_peer_id = id;
    }

    /// The vring of `queue`.
    pub const fn ring(&self, queue: QueueId) -> RingLayout {
        self.rings[queue as usize]
    }

    /// Bytes reserved for each vring (a multiple of 0x400).
    pub const fn ring_area(&self) -> usize {
        self.ring_area
    }

    /// First byte of the buffer pool.
    pub const fn pool_start(&self) -> usize {
        CONTROL_AREA_SIZE
    }

    /// One past the last byte of the buffer pool: buffers never overlap the rings.
    pub const fn pool_end(&self) -> usize {
        self.rings[0].desc
    }

    /// Offset of the host's `i`-th buffer: receive buffers (vring 0) are `0..queue_size`,
    /// transmit buffers (vring 1) are `queue_size..2 * queue_size`.
    pub const fn buffer_offset(&self, i: usize) -> usize {
        CONTROL_AREA_SIZE + i * self.config.buf_size as usize
    }

    /// Payload bytes per buffer (buffer size minus the 16-byte header).
    pub const fn payload_capacity(&self) -> usize {
        self.config.buf_size as usize - RpmsgHeader::SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openamp_sample_layout() {
        let l = Layout::new(&Config::new(4 << 20)).unwrap();
        let s = 4 << 20;
        assert_eq!(RingLayout::bytes(16, 4), 430);
        assert_eq!(RingLayout::bytes(16, 16), 438);
        assert_eq!(RingLayout::bytes(16, 4096), 4230);
        assert_eq!(l.ring_area(), 0x400);
        assert_eq!(l.ring(QueueId::RemoteToHost).desc, s - 0x800);
        assert_eq!(l.ring(QueueId::HostToRemote).desc, s - 0x400);
        let r = l.ring(QueueId::HostToRemote);
        assert_eq!(r.avail, s - 0x400 + 256);
        assert_eq!(r.used, s - 0x400 + 296);
        assert_eq!(l.buffer_offset(0), 0x400);
        assert_eq!(l.buffer_offset(16), 0x400 + 16 * 512);
        assert_eq!(l.payload_capacity(), 496);
        assert_eq!(l.pool_end(), s - 0x800);
    }

    #[test]
    fn region_too_small_is_an_error() {
        let min = Layout::required_size(&Config::new(0)).unwrap();
        assert_eq!(min, 0x400 + 32 * 512 + 0x800);
        assert!(Layout::new(&Config::new(min)).is_ok());
        assert_eq!(
            Layout::new(&Config::new(min - 8)),
            Err(Error::RegionTooSmall)
        );
    }

    #[test]
    fn bad_configs_are_rejected() {
        let base = Config::new(1 << 20);
        for (c, what) in [
            (
                Config {
                    queue_size: 0,
                    ..base
                },
                "q0",
            ),
            (
                Config {
                    queue_size: 12,
                    ..base
                },
                "q12",
            ),
            (
                Config {
                    queue_size: 512,
                    ..base
                },
                "q512",
            ),
            (Config { align: 2, ..base }, "a2"),
            (Config { align: 24, ..base }, "a24"),
            (
                Config {
                    align: 8192,
                    ..base
                },
                "a8192",
            ),
            (
                Config {
                    buf_size: 16,
                    ..base
                },
                "b16",
            ),
            (
                Config {
                    buf_size: 500,
                    ..base
                },
                "b500",
            ),
            (
                Config {
                    buf_size: 1 << 17,
                    ..base
                },
                "b128k",
            ),
            (
                Config {
                    shm_size: (1 << 30) + 8,
                    ..base
                },
                "big",
            ),
            (
                Config {
                    shm_size: (1 << 20) + 4,
                    ..base
                },
                "odd",
            ),
        ] {
            assert!(
                matches!(Layout::new(&c), Err(Error::InvalidConfig(_))),
                "{what}"
            );
        }
    }
}
