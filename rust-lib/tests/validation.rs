//! Every validation path of the shared-memory layer: each kind of corrupt value read from
//! the peer is rejected with its own error, without panicking.

use core::sync::atomic::Ordering::Relaxed;

use rpmsg_engine::descset::DescSet;
use rpmsg_engine::layout::{Layout, QueueId, RingLayout};
use rpmsg_engine::shm::{
    read_message_header, read_ns_record, BufferRef, ControlView, PoolWindow, RingView, SharedRegion,
};
use rpmsg_engine::testing::HeapRegion;
use rpmsg_engine::wire::{
    NsMessage, RpmsgHeader, CONTROL_BLOCK_OFFSET, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
};
use rpmsg_engine::{Config, Error, PeerFault};

const SIZE: usize = 64 * 1024;
const BASE: u64 = 0xafa0_0000;

struct Fixture {
    mem: HeapRegion,
    layout: Layout,
}

impl Fixture {
    fn new() -> Self {
        Self {
            mem: HeapRegion::new(SIZE),
            layout: Layout::new(&Config::new(SIZE)).unwrap(),
        }
    }
    fn ring(&self) -> RingView<'_> {
        RingView::new(self.mem.region(), self.layout.ring(QueueId::HostToRemote)).unwrap()
    }
    fn pool(&self) -> PoolWindow {
        PoolWindow {
            start: self.layout.pool_start(),
            end: self.layout.pool_end(),
            addr_base: BASE,
        }
    }
    /// Offers descriptor `id` at avail position 0 with the given fields.
    fn offer(&self, id: u16, addr: u64, len: u32, flags: u16) {
        let r = self.ring();
        r.write_desc(id, addr, len, flags).unwrap();
        r.write_avail_entry(0, id);
        r.publish_avail_idx(1);
    }
    fn read_offer(&self, held: &DescSet) -> Result<(u16, BufferRef), Error> {
        self.ring().read_avail_buffer(0, held, &self.pool())
    }
    /// Asserts that the offer at position 0 is refused as `fault`.
    fn expect_fault(&self, fault: PeerFault) {
        assert_eq!(self.read_offer(&DescSet::new()), Err(Error::Peer(fault)));
    }
}

#[test]
fn a_good_descriptor_passes() {
    let f = Fixture::new();
    f.offer(3, BASE + 0x400, 512, VRING_DESC_F_WRITE);
    assert_eq!(f.ring().avail_pending(0), Ok(1));
    assert_eq!(
        f.read_offer(&DescSet::new()),
        Ok((
            3,
            BufferRef {
                offset: 0x400,
                len: 512
            }
        ))
    );
}

#[test]
fn avail_index_too_far_ahead() {
    let f = Fixture::new();
    let r = f.ring();
    r.publish_avail_idx(17);
    assert_eq!(
        r.avail_pending(0),
        Err(Error::Peer(PeerFault::AvailIndexOutOfRange))
    );
    assert_eq!(r.avail_pending(1), Ok(16));
    // Behind us (wrapped backwards) is also out of range.
    r.publish_avail_idx(0xffff);
    assert_eq!(
        r.avail_pending(0),
        Err(Error::Peer(PeerFault::AvailIndexOutOfRange))
    );
}

#[test]
fn avail_index_wraps() {
    let f = Fixture::new();
    let r = f.ring();
    r.publish_avail_idx(3);
    assert_eq!(r.avail_pending(0xfffe), Ok(5));
}

#[test]
fn descriptor_index_out_of_range() {
    let f = Fixture::new();
    let r = f.ring();
    r.write_avail_entry(0, 16);
    r.publish_avail_idx(1);
    f.expect_fault(PeerFault::DescriptorIndexOutOfRange);
    r.write_avail_entry(0, 0xffff);
    f.expect_fault(PeerFault::DescriptorIndexOutOfRange);
}

#[test]
fn descriptor_offered_twice() {
    let f = Fixture::new();
    f.offer(2, BASE + 0x400, 512, 0);
    let mut held = DescSet::new();
    held.insert(2);
    assert_eq!(
        f.read_offer(&held),
        Err(Error::Peer(PeerFault::DuplicateDescriptor))
    );
}

#[test]
fn chained_and_indirect_descriptors() {
    let f = Fixture::new();
    f.offer(0, BASE + 0x400, 512, VRING_DESC_F_NEXT);
    f.expect_fault(PeerFault::UnsupportedDescriptorFlags);
    f.offer(0, BASE + 0x400, 512, VRING_DESC_F_INDIRECT);
    f.expect_fault(PeerFault::UnsupportedDescriptorFlags);
}

#[test]
fn buffer_addresses_outside_the_pool() {
    let f = Fixture::new();
    let pool_end = f.layout.pool_end() as u64;
    let cases = [
        (0u64, 512u32, "below the region base"),
        (BASE - 1, 512, "just below the base"),
        (BASE, 512, "control area"),
        (BASE + 0x3f0, 512, "straddles control area"),
        (BASE + pool_end - 256, 512, "runs into the rings"),
        (BASE + pool_end, 16, "in the rings"),
        (BASE + SIZE as u64, 16, "past the region"),
        (u64::MAX - 8, 512, "address + len overflows"),
        (BASE + 0x400, u32::MAX, "length overflows the pool"),
    ];
    for (addr, len, what) in cases {
        f.offer(1, addr, len, 0);
        assert_eq!(
            f.read_offer(&DescSet::new()),
            Err(Error::Peer(PeerFault::BufferOutOfBounds)),
            "{what}"
        );
    }
}

#[test]
fn buffer_shorter_than_a_header() {
    let f = Fixture::new();
    f.offer(1, BASE + 0x400, 15, 0);
    f.expect_fault(PeerFault::BufferTooShort);
    f.offer(1, BASE + 0x400, 16, 0);
    assert!(f.read_offer(&DescSet::new()).is_ok());
}

#[test]
fn used_index_beyond_buffers_in_flight() {
    let f = Fixture::new();
    let r = f.ring();
    r.publish_used_idx(3);
    assert_eq!(
        r.used_pending(0, 2),
        Err(Error::Peer(PeerFault::UsedIndexOutOfRange))
    );
    assert_eq!(r.used_pending(0, 3), Ok(3));
    r.publish_used_idx(40);
    assert_eq!(
        r.used_pending(0, 300),
        Err(Error::Peer(PeerFault::UsedIndexOutOfRange))
    );
}

#[test]
fn used_elements() {
    let f = Fixture::new();
    let r = f.ring();
    let mut in_flight = DescSet::new();
    in_flight.insert(4);
    r.write_used_elem(0, 4, 100);
    assert_eq!(
        r.take_used_elem(0, &mut in_flight, 512)
            .map(|e| (e.id, e.len)),
        Ok((4, 100))
    );
    // Taken: no longer in flight.
    assert_eq!(
        r.take_used_elem(0, &mut in_flight, 512),
        Err(Error::Peer(PeerFault::UsedIdNotInFlight))
    );
    in_flight.insert(4);
    r.write_used_elem(0, 5, 100);
    assert_eq!(
        r.take_used_elem(0, &mut in_flight, 512),
        Err(Error::Peer(PeerFault::UsedIdNotInFlight))
    );
    r.write_used_elem(0, 4, 513);
    assert_eq!(
        r.take_used_elem(0, &mut in_flight, 512),
        Err(Error::Peer(PeerFault::UsedLengthTooLarge))
    );
    // A 32-bit id beyond the queue (the field is u32 on the wire).
    let used = f.layout.ring(QueueId::HostToRemote).used;
    f.mem
        .region()
        .store_u32(used + 4, 0x1_0004, Relaxed)
        .unwrap();
    assert_eq!(
        r.take_used_elem(0, &mut in_flight, 512),
        Err(Error::Peer(PeerFault::DescriptorIndexOutOfRange))
    );
}

fn put_message(
    region: &SharedRegion<'_>,
    src: u32,
    dst: u32,
    len: u16,
    payload: &[u8],
) -> BufferRef {
    let buf = BufferRef {
        offset: 0x400,
        len: 512,
    };
    region
        .write_bytes(buf.offset, &RpmsgHeader::new(src, dst, len).to_bytes())
        .unwrap();
    region.write_bytes(buf.offset + 16, payload).unwrap();
    buf
}

#[test]
fn message_headers() {
    let f = Fixture::new();
    let r = f.mem.region();
    let buf = put_message(&r, 1024, 1025, 10, b"0123456789");
    let h = read_message_header(&r, buf, 26).unwrap();
    assert_eq!((h.src, h.dst, h.len), (1024, 1025, 10));
    assert_eq!(
        read_message_header(&r, buf, 25),
        Err(Error::Peer(PeerFault::BadMessageLength)),
        "written too short"
    );
    assert_eq!(
        read_message_header(&r, buf, 15),
        Err(Error::Peer(PeerFault::BadMessageLength)),
        "no room for header"
    );
    let buf = put_message(&r, 1024, 1025, 497, b"");
    assert_eq!(
        read_message_header(&r, buf, 9999),
        Err(Error::Peer(PeerFault::BadMessageLength)),
        "len > buffer"
    );
    let buf = put_message(&r, u32::MAX, 1025, 0, b"");
    assert_eq!(
        read_message_header(&r, buf, 16),
        Err(Error::Peer(PeerFault::BadMessageAddress))
    );
    let buf = put_message(&r, 1024, u32::MAX, 0, b"");
    assert_eq!(
        read_message_header(&r, buf, 16),
        Err(Error::Peer(PeerFault::BadMessageAddress))
    );
}

fn ns(name: &[u8], addr: u32, flags: u32) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[..name.len()].copy_from_slice(name);
    m[32..36].copy_from_slice(&addr.to_le_bytes());
    m[36..40].copy_from_slice(&flags.to_le_bytes());
    m
}

#[test]
fn name_service_records() {
    let f = Fixture::new();
    let r = f.mem.region();
    let buf = put_message(&r, 1024, 53, 40, &ns(b"rpmsg-tty", 1024, 0));
    let rec = read_ns_record(&r, buf, 40).unwrap();
    assert_eq!(
        (rec.name.as_str(), rec.addr, rec.destroy),
        ("rpmsg-tty", 1024, false)
    );
    let buf = put_message(&r, 1024, 53, 40, &ns(b"k", 1024, 1));
    assert!(read_ns_record(&r, buf, 40).unwrap().destroy);

    let bad: [(&[u8; 40], u16, &str); 7] = [
        (&ns(b"k", 1024, 0), 39, "length 39"),
        (&ns(&[b'x'; 32], 1024, 0), 40, "no NUL in the name"),
        (&ns(&[0xff, 0xfe], 1024, 0), 40, "not UTF-8"),
        (&ns("grüße".as_bytes(), 1024, 0), 40, "not ASCII"),
        (&ns(b"k\x1b[2J", 1024, 0), 40, "a control character"),
        (&ns(b"k", u32::MAX, 0), 40, "address ANY"),
        (&ns(b"k", 1024, 2), 40, "unknown flag"),
    ];
    for (msg, len, what) in bad {
        let buf = put_message(&r, 1024, 53, len, msg);
        assert_eq!(
            read_ns_record(&r, buf, len),
            Err(Error::Peer(PeerFault::BadNameService)),
            "{what}"
        );
    }
    assert_eq!(NsMessage::SIZE, 40);
}

#[test]
fn control_block() {
    let f = Fixture::new();
    let c = ControlView::new(f.mem.region()).unwrap();
    assert_eq!(c.published(), Ok(None), "no magic: a C OpenAMP host");
    c.publish(&f.layout, Some(3), 9).unwrap();
    let p = c.published().unwrap().unwrap();
    assert_eq!(
        (p.host_id, p.host_session, p.queue_size, p.buf_size),
        (Some(3), 9, 16, 512)
    );
    assert_eq!(c.remote(), Ok((None, 0)));
    c.set_remote(Some(4), 9).unwrap();
    assert_eq!(c.remote(), Ok((Some(4), 9)));

    let r = f.mem.region();
    r.store_u16(CONTROL_BLOCK_OFFSET + 4, 2, Relaxed).unwrap();
    assert_eq!(
        c.published(),
        Err(Error::LayoutMismatch),
        "other layout version"
    );
    r.store_u16(CONTROL_BLOCK_OFFSET + 4, 1, Relaxed).unwrap();
    r.store_u32(CONTROL_BLOCK_OFFSET + 32, 0x1_0000, Relaxed)
        .unwrap();
    assert_eq!(
        c.published(),
        Err(Error::Peer(PeerFault::BadControlValue)),
        "host id > 65535"
    );
    r.store_u32(CONTROL_BLOCK_OFFSET + 40, 0x2_0000, Relaxed)
        .unwrap();
    assert_eq!(
        c.remote(),
        Err(Error::Peer(PeerFault::BadControlValue)),
        "remote id > 65535"
    );
}

#[test]
fn region_construction_and_bounds() {
    // SAFETY: a null pointer is rejected before any access.
    assert_eq!(
        unsafe { SharedRegion::new(core::ptr::null_mut(), 8) }.err(),
        Some(Error::RegionMisaligned)
    );
    let mem = HeapRegion::new(64);
    let base = mem.region();
    let len = base.len();
    assert_eq!(base.load_u32(len - 4, Relaxed), Ok(0));
    assert_eq!(
        base.load_u32(len - 2, Relaxed),
        Err(Error::OutOfBounds),
        "past the end"
    );
    assert_eq!(
        base.load_u32(2, Relaxed),
        Err(Error::OutOfBounds),
        "misaligned"
    );
    assert_eq!(
        base.load_u64(usize::MAX - 3, Relaxed),
        Err(Error::OutOfBounds),
        "overflow"
    );
    let mut buf = [0u8; 8];
    assert_eq!(base.read_bytes(60, &mut buf), Err(Error::OutOfBounds));
    assert_eq!(base.write_bytes(usize::MAX, &buf), Err(Error::OutOfBounds));
    assert_eq!(base.zero(60, 8), Err(Error::OutOfBounds));
    base.write_bytes(3, b"hello, world").unwrap();
    let mut out = [0u8; 12];
    base.read_bytes(3, &mut out).unwrap();
    assert_eq!(&out, b"hello, world");
}

#[test]
fn rings_that_do_not_fit_are_refused() {
    let mem = HeapRegion::new(1024);
    let layout = Layout::new(&Config::new(SIZE)).unwrap();
    assert_eq!(
        RingView::new(mem.region(), layout.ring(QueueId::HostToRemote)).err(),
        Some(Error::OutOfBounds)
    );
}

/// Each part of a ring is checked on its own (the accesses after that are not): a
/// descriptor table, available ring or used ring past the region's end, or misaligned,
/// is refused even when the other parts are fine.
#[test]
fn every_part_of_a_ring_must_fit_and_be_aligned() {
    let mem = HeapRegion::new(SIZE);
    let good = Layout::new(&Config::new(SIZE))
        .unwrap()
        .ring(QueueId::HostToRemote);
    assert!(RingView::new(mem.region(), good).is_ok());
    let end = SIZE - 8;
    let bad = [
        RingLayout { desc: end, ..good },
        RingLayout { avail: end, ..good },
        RingLayout { used: end, ..good },
        RingLayout {
            desc: usize::MAX - 8,
            ..good
        },
        RingLayout {
            desc: good.desc + 4,
            ..good
        },
        RingLayout {
            avail: good.avail + 1,
            ..good
        },
        RingLayout {
            used: good.used + 2,
            ..good
        },
    ];
    for ring in bad {
        assert_eq!(
            RingView::new(mem.region(), ring).err(),
            Some(Error::OutOfBounds),
            "{ring:?}"
        );
    }
}
