//! Property tests: ring index wrap-around, buffer accounting (nothing leaked, nothing
//! handed out twice) and layout arithmetic from the smallest region to 1 GiB.

use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;
use rpmsg_engine::layout::{Layout, QueueId, RingLayout, CONTROL_AREA_SIZE, MAX_SHM_SIZE};
use rpmsg_engine::shm::{PoolWindow, RingView};
use rpmsg_engine::testing::{Bell, HeapRegion};
use rpmsg_engine::virtqueue::{DeviceQueue, DriverQueue};
use rpmsg_engine::{Config, Error, Event, PeerFault};

mod common;
use common::{host_over, remote_over, SIZE};

const BASE: u64 = 0xafa0_0000;

#[derive(Debug, Clone, Copy)]
enum QOp {
    DriverAdd,
    DevicePop,
    DevicePush,
    DriverPop,
}

fn qop() -> impl Strategy<Value = QOp> {
    use QOp::*;
    prop::sample::select(&[DriverAdd, DevicePop, DevicePush, DriverPop][..])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    /// A driver and a device queue over one ring, after `warmup` full cycles (to put the
    /// free-running indices anywhere, including across the u16 wrap), then random steps
    /// checked against a model.
    #[test]
    fn virtqueue_indices_wrap_and_buffers_are_accounted(
        warmup in prop_oneof![0u32..200, 65_400u32..65_700],
        qsize_log in 0u32..5,
        ops in prop::collection::vec(qop(), 1..400),
    ) {
        let n = 1u16 << qsize_log;
        let mem = HeapRegion::new(SIZE);
        let cfg = Config { queue_size: n, ..Config::new(SIZE) };
        let layout = Layout::new(&cfg).unwrap();
        let ring = layout.ring(QueueId::HostToRemote);
        let pool = PoolWindow { start: layout.pool_start(), end: layout.pool_end(), addr_base: BASE };
        let mut drv = DriverQueue::new(RingView::new(mem.region(), ring).unwrap());
        let mut dev = DeviceQueue::new(RingView::new(mem.region(), ring).unwrap(), pool);
        drv.reset().unwrap();
        let addr = |id: u16| BASE + layout.buffer_offset(id as usize) as u64;
        for i in 0..warmup {
            let id = (i % n as u32) as u16;
            drv.add(id, addr(id), 64, false).unwrap();
            let (got, buf) = dev.pop_avail().unwrap().unwrap();
            prop_assert_eq!(got, id);
            prop_assert_eq!(buf.offset, layout.buffer_offset(id as usize));
            dev.push_used(id, 16).unwrap();
            prop_assert_eq!(drv.pop_used(64).unwrap().map(|e| e.id), Some(id));
        }
        // Model state.
        let mut free: BTreeSet<u16> = (0..n).collect();
        let mut avail: VecDeque<u16> = VecDeque::new();
        let mut held: VecDeque<u16> = VecDeque::new();
        let mut used: VecDeque<u16> = VecDeque::new();
        for op in ops {
            match op {
                QOp::DriverAdd => {
                    if let Some(&id) = free.iter().next() {
                        free.remove(&id);
                        drv.add(id, addr(id), 64, false).unwrap();
                        avail.push_back(id);
                    } else {
                        // Every descriptor is out: adding any of them again must fail.
                        prop_assert_eq!(drv.add(0, addr(0), 64, false), Err(Error::Peer(PeerFault::DuplicateDescriptor)));
                    }
                }
                QOp::DevicePop => {
                    let got = dev.pop_avail().unwrap().map(|(id, _)| id);
                    prop_assert_eq!(got, avail.pop_front());
                    if let Some(id) = got { held.push_back(id); }
                }
                QOp::DevicePush => {
                    if let Some(id) = held.pop_front() {
                        dev.push_used(id, 16).unwrap();
                        used.push_back(id);
                    } else {
                        prop_assert_eq!(dev.push_used(0, 16), Err(Error::StaleBuffer));
                    }
                }
                QOp::DriverPop => {
                    let got = drv.pop_used(64).unwrap().map(|e| e.id);
                    prop_assert_eq!(got, used.pop_front());
                    if let Some(id) = got { prop_assert!(free.insert(id), "returned twice"); }
                }
            }
            let out = avail.len() + held.len() + used.len();
            prop_assert_eq!(free.len() + out, n as usize);
            prop_assert_eq!(drv.in_flight() as usize, out);
            prop_assert_eq!(dev.held() as usize, held.len());
        }
    }

    /// Layout arithmetic for every kind of configuration from the minimum to 1 GiB.
    #[test]
    fn layout_is_consistent(
        qsize_log in 0u32..9,
        buf_words in 4u32..1024,
        align_log in 2u32..13,
        size_kind in 0u8..3,
        size_seed in any::<u64>(),
    ) {
        let base = Config {
            queue_size: 1 << qsize_log,
            buf_size: buf_words * 8,
            align: 1 << align_log,
            ..Config::new(0)
        };
        let min = Layout::required_size(&base).unwrap();
        let shm_size = match size_kind {
            0 => min,
            1 => (min + (size_seed as usize % (MAX_SHM_SIZE - min + 1))) & !7,
            _ => (1usize << (20 + size_seed % 11)).min(MAX_SHM_SIZE),
        };
        let cfg = Config { shm_size, ..base };
        match Layout::new(&cfg) {
            Ok(l) => {
                prop_assert!(shm_size >= min);
                let r0 = l.ring(QueueId::RemoteToHost);
                let r1 = l.ring(QueueId::HostToRemote);
                let n = cfg.queue_size as usize;
                let ring_bytes = RingLayout::bytes(cfg.queue_size, cfg.align as usize);
                prop_assert_eq!(l.pool_start(), CONTROL_AREA_SIZE);
                prop_assert!(l.buffer_offset(2 * n) <= l.pool_end(), "buffers overlap the rings");
                prop_assert_eq!(l.pool_end(), r0.desc);
                prop_assert!(r0.desc + ring_bytes <= r1.desc, "rings overlap");
                prop_assert_eq!(r1.desc + l.ring_area(), shm_size);
                prop_assert!(ring_bytes <= l.ring_area());
                prop_assert_eq!(r0.desc % cfg.align as usize, 0);
                prop_assert_eq!(r0.used % cfg.align as usize, 0);
                prop_assert_eq!(r0.avail, r0.desc + 16 * n);
                prop_assert!(r0.used >= r0.avail + 6 + 2 * n);
                prop_assert_eq!(l.payload_capacity(), cfg.buf_size as usize - 16);
            }
            Err(Error::RegionTooSmall) => prop_assert!(shm_size < min),
            Err(Error::InvalidConfig(_)) => {
                // Only an align above the ring granule can make a size unaligned.
                prop_assert!(shm_size % cfg.align as usize != 0);
            }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum NodeOp {
    HostSend,
    HostHoldTx,
    HostReleaseTx,
    RemoteRecvHold,
    RemoteReleaseRx,
    RemoteEcho,
    HostRecv,
}

fn node_op() -> impl Strategy<Value = NodeOp> {
    prop_oneof![
        Just(NodeOp::HostSend),
        Just(NodeOp::HostHoldTx),
        Just(NodeOp::HostReleaseTx),
        Just(NodeOp::RemoteRecvHold),
        Just(NodeOp::RemoteReleaseRx),
        Just(NodeOp::RemoteEcho),
        Just(NodeOp::HostRecv),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any interleaving of sends, holds, releases and echoes, then a drain: every buffer
    /// comes back (the host can again take all 16 transmit buffers), and every message
    /// delivered was sent, in order, exactly once.
    #[test]
    fn engine_never_leaks_or_duplicates_buffers(ops in prop::collection::vec(node_op(), 1..300)) {
        let mem = HeapRegion::new(SIZE);
        let mut h = host_over(&mem, Config::new(SIZE), 1, Bell::new());
        let mut r = remote_over(&mem, Config::new(SIZE), 2, Bell::new());
        h.start().unwrap();
        r.poll().unwrap();
        let ept = match h.recv().unwrap() {
            Some(Event::NameServiceCreate { name, addr }) => h.bind(&name, addr).unwrap(),
            other => panic!("{other:?}"),
        };
        let mut next_seq = 0u32;
        let mut remote_expect = 0u32;
        let mut host_expect = 0u32;
        let mut held_tx = Vec::new();
        let mut held_rx = VecDeque::new();
        let read_seq = |rx: &rpmsg_engine::RxBuffer<'_>| {
            let mut b = [0u8; 4];
            assert_eq!(rx.read(0, &mut b).unwrap(), 4);
            u32::from_le_bytes(b)
        };
        for op in ops {
            match op {
                NodeOp::HostSend => match h.try_send(ept, &next_seq.to_le_bytes()) {
                    Ok(()) => next_seq += 1,
                    Err(Error::NoTxBuffer) => {}
                    Err(e) => panic!("{e}"),
                },
                NodeOp::HostHoldTx => if let Ok(tx) = h.get_tx_buffer() { held_tx.push(tx) },
                NodeOp::HostReleaseTx => if let Some(tx) = held_tx.pop() { h.release_tx_buffer(tx).unwrap() },
                NodeOp::RemoteRecvHold => if let Some(Event::Message(rx)) = r.recv().unwrap() {
                    prop_assert_eq!(read_seq(&rx), remote_expect);
                    remote_expect += 1;
                    held_rx.push_back(rx);
                },
                NodeOp::RemoteReleaseRx => if let Some(rx) = held_rx.pop_front() { r.release_rx(rx).unwrap() },
                NodeOp::RemoteEcho => if let Some(rx) = held_rx.pop_front() {
                    let seq = read_seq(&rx);
                    match r.try_send(1024, &seq.to_le_bytes()) {
                        Ok(()) => r.release_rx(rx).unwrap(),
                        Err(Error::NoTxBuffer) => held_rx.push_front(rx),
                        Err(e) => panic!("{e}"),
                    }
                },
                NodeOp::HostRecv => if let Some(Event::Message(rx)) = h.recv().unwrap() {
                    let seq = read_seq(&rx);
                    prop_assert!(seq >= host_expect, "echo {seq} after {host_expect}");
                    host_expect = seq + 1;
                    h.release_rx(rx).unwrap();
                },
            }
        }
        // Drain: give everything back, consume everything.
        for tx in held_tx.drain(..) { h.release_tx_buffer(tx).unwrap(); }
        for rx in held_rx.drain(..) { r.release_rx(rx).unwrap(); }
        while let Some(Event::Message(rx)) = r.recv().unwrap() {
            prop_assert_eq!(read_seq(&rx), remote_expect);
            remote_expect += 1;
            r.release_rx(rx).unwrap();
        }
        while let Some(Event::Message(rx)) = h.recv().unwrap() { h.release_rx(rx).unwrap(); }
        prop_assert_eq!(remote_expect, next_seq, "every message delivered once");
        let mut all = Vec::new();
        while let Ok(tx) = h.get_tx_buffer() { all.push(tx); }
        prop_assert_eq!(all.len(), 16, "host transmit buffers leaked");
        for tx in all { h.release_tx_buffer(tx).unwrap(); }
        // And the remote can still send 16 messages (the host re-posted every rx buffer).
        for i in 0..16u32 { r.try_send_to(1024, ept, &i.to_le_bytes()).unwrap(); }
        prop_assert_eq!(r.try_send_to(1024, ept, b"x"), Err(Error::NoTxBuffer));
        prop_assert_eq!(h.counters().total() + r.counters().total(), 0);
    }
}
