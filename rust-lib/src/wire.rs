//! Little-endian wire formats: RPMsg header, name-service message, split-vring structures
//! and our control-area block.
//!
//! Every struct here is made only of byte arrays ([`Le16`], [`Le32`], [`Le64`]), so it has
//! alignment 1, no padding and the same layout on every target; the layouts are asserted at
//! compile time below. These types hold plain values: reading them from or writing them to
//! shared memory is the job of [`crate::shm`].

use core::mem::{offset_of, size_of};

macro_rules! le_type {
    ($name:ident, $ty:ty, $n:expr) => {
        #[doc = concat!("A little-endian `", stringify!($ty), "` stored as bytes (alignment 1).")]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        #[repr(transparent)]
        pub struct $name([u8; $n]);

        impl $name {
            #[doc = concat!("Encodes a native `", stringify!($ty), "`.")]
            pub const fn new(value: $ty) -> Self {
                Self(value.to_le_bytes())
            }
            #[doc = concat!("Decodes to a native `", stringify!($ty), "`.")]
            pub const fn get(self) -> $ty {
                <$ty>::from_le_bytes(self.0)
            }
        }

        impl From<$ty> for $name {
            fn from(value: $ty) -> Self {
                Self::new(value)
            }
        }
    };
}

le_type!(Le16, u16, 2);
le_type!(Le32, u32, 4);
le_type!(Le64, u64, 8);

/// `RPMSG_ADDR_ANY`: "no address yet"; never valid on the wire as source or destination.
pub const RPMSG_ADDR_ANY: u32 = 0xFFFF_FFFF;
/// Address of the name service endpoint.
pub const RPMSG_NS_ADDR: u32 = 53;
/// First dynamically allocated endpoint address.
pub const RPMSG_RESERVED_ADDRESSES: u32 = 1024;
/// Virtio feature bit: the device supports name-service announcements.
pub const VIRTIO_RPMSG_F_NS: u32 = 1 << 0;
/// Length of an endpoint name on the wire, terminating NUL included.
pub const RPMSG_NAME_SIZE: usize = 32;

/// The 16-byte header in front of every RPMsg payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RpmsgHeader {
    /// Sender endpoint address.
    pub src: Le32,
    /// Receiver endpoint address.
    pub dst: Le32,
    /// Zero on the wire; receivers ignore it (OpenAMP reuses it locally).
    pub reserved: Le32,
    /// Payload length in bytes.
    pub len: Le16,
    /// Zero.
    pub flags: Le16,
}

impl RpmsgHeader {
    /// Size of the header on the wire.
    pub const SIZE: usize = 16;

    /// A header for `len` payload bytes from `src` to `dst`.
    pub const fn new(src: u32, dst: u32, len: u16) -> Self {
        Self {
            src: Le32::new(src),
            dst: Le32::new(dst),
            reserved: Le32::new(0),
            len: Le16::new(len),
            flags: Le16::new(0),
        }
    }

    /// The wire bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.src.0);
        b[4..8].copy_from_slice(&self.dst.0);
        b[8..12].copy_from_slice(&self.reserved.0);
        b[12..14].copy_from_slice(&self.len.0);
        b[14..16].copy_from_slice(&self.flags.0);
        b
    }

    /// Parses wire bytes (any bytes form a header; validation is the caller's).
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        Self {
            src: Le32([b[0], b[1], b[2], b[3]]),
            dst: Le32([b[4], b[5], b[6], b[7]]),
            reserved: Le32([b[8], b[9], b[10], b[11]]),
            len: Le16([b[12], b[13]]),
            flags: Le16([b[14], b[15]]),
        }
    }
}

/// Name-service flag: an endpoint was created.
pub const RPMSG_NS_CREATE: u32 = 0;
/// Name-service flag: an endpoint was destroyed.
pub const RPMSG_NS_DESTROY: u32 = 1;

/// The 40-byte name-service message sent to address 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct NsMessage {
    /// NUL-padded endpoint name.
    pub name: [u8; RPMSG_NAME_SIZE],
    /// The announcing endpoint's address.
    pub addr: Le32,
    /// [`RPMSG_NS_CREATE`] or [`RPMSG_NS_DESTROY`].
    pub flags: Le32,
}

impl NsMessage {
    /// Size on the wire.
    pub const SIZE: usize = 40;

    /// The wire bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..32].copy_from_slice(&self.name);
        b[32..36].copy_from_slice(&self.addr.0);
        b[36..40].copy_from_slice(&self.flags.0);
        b
    }

    /// Parses wire bytes (validation is the caller's).
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut name = [0u8; RPMSG_NAME_SIZE];
        name.copy_from_slice(&b[..32]);
        Self {
            name,
            addr: Le32([b[32], b[33], b[34], b[35]]),
            flags: Le32([b[36], b[37], b[38], b[39]]),
        }
    }
}

/// Descriptor flag: the buffer continues in the `next` descriptor.
pub const VRING_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const VRING_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds a table of indirect descriptors.
pub const VRING_DESC_F_INDIRECT: u16 = 4;
/// Available-ring flag: the driver asks not to be interrupted for used buffers.
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device asks not to be notified of available buffers.
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;

/// One entry of the descriptor table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VringDesc {
    /// Buffer address as the driver sees it.
    pub addr: Le64,
    /// Buffer length.
    pub len: Le32,
    /// `VRING_DESC_F_*`.
    pub flags: Le16,
    /// Next descriptor when `NEXT` is set.
    pub next: Le16,
}

/// The start of the available ring; its entries (`le16` descriptor ids) follow, then
/// `used_event`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VringAvailHeader {
    /// `VRING_AVAIL_F_*`.
    pub flags: Le16,
    /// Where the driver will put its next entry.
    pub idx: Le16,
}

/// The start of the used ring; its entries ([`VringUsedElem`]) follow, then `avail_event`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VringUsedHeader {
    /// `VRING_USED_F_*`.
    pub flags: Le16,
    /// Where the device will put its next entry.
    pub idx: Le16,
}

/// One entry of the used ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct VringUsedElem {
    /// Head descriptor index of the returned buffer.
    pub id: Le32,
    /// Bytes the device wrote into the buffer.
    pub len: Le32,
}

/// Our block in the control area at [`CONTROL_BLOCK_OFFSET`] (see the crate docs' byte map).
///
/// OpenAMP C nodes only use byte 0 of the control area, so this block is invisible to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ControlBlock {
    /// [`CONTROL_MAGIC`] once the host has published this block.
    pub magic: Le32,
    /// [`LAYOUT_VERSION`].
    pub version: Le16,
    /// Descriptors per virtqueue.
    pub queue_size: Le16,
    /// Size of one RPMsg buffer, header included.
    pub buf_size: Le32,
    /// Vring alignment.
    pub align: Le32,
    /// Size of the whole shared region.
    pub shm_size: Le64,
    /// Address of the region's first byte as written into descriptors.
    pub addr_base: Le64,
    /// Host's ivshmem peer id, or [`NO_PEER_ID`].
    pub host_id: Le32,
    /// Host session number, incremented at every host (re)initialisation.
    pub host_session: Le32,
    /// Remote's ivshmem peer id, or [`NO_PEER_ID`].
    pub remote_id: Le32,
    /// The host session the remote attached to (0 = not attached).
    pub remote_session: Le32,
}

/// Offset of [`ControlBlock`] inside the control area.
pub const CONTROL_BLOCK_OFFSET: usize = 0x40;
/// "RPIV" in little-endian.
pub const CONTROL_MAGIC: u32 = u32::from_le_bytes(*b"RPIV");
/// Version of our control block and layout rules.
pub const LAYOUT_VERSION: u16 = 1;
/// Value of an id field that holds no id.
pub const NO_PEER_ID: u32 = 0xFFFF_FFFF;

/// Asserts at compile time that `$t` is `$size` bytes with each `$field` at `$offset`.
macro_rules! assert_layout {
    ($t:ty, $size:expr; $($field:ident @ $offset:expr),* $(,)?) => {
        const _: () = {
            assert!(size_of::<$t>() == $size);
            $(assert!(offset_of!($t, $field) == $offset);)*
        };
    };
}

// Compile-time layout checks: these are wire formats shared with C nodes.
assert_layout!(RpmsgHeader, RpmsgHeader::SIZE; src @ 0, dst @ 4, reserved @ 8, len @ 12, flags @ 14);
assert_layout!(NsMessage, NsMessage::SIZE; addr @ 32, flags @ 36);
assert_layout!(VringDesc, 16; addr @ 0, len @ 8, flags @ 12, next @ 14);
assert_layout!(VringUsedElem, 8; len @ 4);
assert_layout!(
    ControlBlock, 48;
    shm_size @ 16,
    addr_base @ 24,
    host_id @ 32,
    host_session @ 36,
    remote_id @ 40,
    remote_session @ 44,
);
const _: () = {
    // remote_id and remote_session are stored together as one aligned u64.
    assert!((CONTROL_BLOCK_OFFSET + offset_of!(ControlBlock, remote_id)) % 8 == 0);
    assert!(core::mem::align_of::<ControlBlock>() == 1);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_is_little_endian() {
        let h = RpmsgHeader::new(0x0403_0201, 1024, 0x1234);
        let b = h.to_bytes();
        assert_eq!(&b[..4], &[1, 2, 3, 4]);
        assert_eq!(&b[4..8], &[0, 4, 0, 0]);
        assert_eq!(&b[8..12], &[0; 4]);
        assert_eq!(&b[12..14], &[0x34, 0x12]);
        assert_eq!(RpmsgHeader::from_bytes(&b), h);
    }

    #[test]
    fn ns_message_round_trip() {
        let mut name = [0u8; 32];
        name[..1].copy_from_slice(b"k");
        let m = NsMessage {
            name,
            addr: Le32::new(1024),
            flags: Le32::new(RPMSG_NS_DESTROY),
        };
        let b = m.to_bytes();
        assert_eq!(b[0], b'k');
        assert_eq!(&b[32..36], &[0, 4, 0, 0]);
        assert_eq!(&b[36..40], &[1, 0, 0, 0]);
        assert_eq!(NsMessage::from_bytes(&b), m);
    }

    #[test]
    fn magic_spells_rpiv() {
        assert_eq!(&CONTROL_MAGIC.to_le_bytes(), b"RPIV");
    }
}
