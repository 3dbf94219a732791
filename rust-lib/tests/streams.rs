//! Streams: `try_send_each` and `recv_each` carry many messages per call, in both
//! directions, deliver exactly what `try_send`/`recv` would, leave other traffic to `recv`,
//! and validate what the peer wrote as strictly.

use core::sync::atomic::Ordering::Relaxed;

use rpmsg_engine::testing::HeapRegion;
use rpmsg_engine::{Error, Event, PeerFault, QueueId, RxBuffer, TxBuffer};

mod common;
use common::{bring_up, linked, next_message, payload, round_trip, H, R, SIZE};

/// The payload of message `seq`: 1..=496 bytes, derived from `seq`.
fn message(seq: usize) -> Vec<u8> {
    let len = 1 + seq * 37 % 496;
    (0..len).map(|i| (seq * 7 + i) as u8).collect()
}

/// Sends messages `from..to` (see [`message`]) in one call; returns how many went.
fn send_from(h: &mut H<'_>, ept: u32, from: usize, to: usize) -> Result<usize, Error> {
    let mut seq = from;
    h.try_send_each(ept, to - from, |buf: &mut TxBuffer<'_>| {
        let m = message(seq);
        seq += 1;
        buf.write(0, &m).map(|()| m.len())
    })
}

/// Everything the remote's "k" has waiting, in one call: the payloads.
fn take_all(r: &mut R<'_>) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let n = r
        .recv_each(1024, usize::MAX, |rx: &RxBuffer<'_>| {
            got.push(payload(rx));
            true
        })
        .unwrap();
    assert_eq!(n, got.len());
    got
}

#[test]
fn a_stream_arrives_whole_and_in_order() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let (mut sent, mut got) = (0, Vec::new());
    while sent < 1000 {
        match send_from(&mut h, ept, sent, 1000) {
            Ok(n) => sent += n,
            Err(Error::NoTxBuffer) => {}
            Err(e) => panic!("send: {e}"),
        }
        got.extend(take_all(&mut r));
    }
    got.extend(take_all(&mut r));
    assert_eq!(got.len(), 1000);
    for (seq, m) in got.iter().enumerate() {
        assert_eq!(m, &message(seq), "message {seq}");
    }
    assert_eq!(h.stats().tx_messages, r.stats().rx_messages);
    assert_eq!(r.counters().total(), 0);
    assert_eq!(h.counters().total(), 0);
    // The buffers all came back: a message still goes both ways.
    round_trip(&mut h, &mut r, ept, b"after");
}

#[test]
fn a_send_stops_at_the_last_free_buffer_and_a_fill_error_keeps_the_buffer() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(send_from(&mut h, ept, 0, 100), Ok(16));
    assert_eq!(send_from(&mut h, ept, 16, 100), Err(Error::NoTxBuffer));
    assert_eq!(take_all(&mut r).len(), 16);
    let failing = |buf: &mut TxBuffer<'_>| buf.write(0, &[0; 497]).map(|()| 497);
    assert_eq!(
        h.try_send_each(ept, 5, failing),
        Err(Error::PayloadTooLarge)
    );
    // No buffer was lost to the failed fill.
    assert_eq!(send_from(&mut h, ept, 0, 100), Ok(16));
    assert_eq!(take_all(&mut r).len(), 16);
    // `max` is respected, and a length beyond the buffer is refused with it returned.
    assert_eq!(send_from(&mut h, ept, 0, 3), Ok(3));
    let too_long = |buf: &mut TxBuffer<'_>| buf.write(0, b"x").map(|()| 4096);
    assert_eq!(
        h.try_send_each(ept, 1, too_long),
        Err(Error::PayloadTooLarge)
    );
    assert_eq!(send_from(&mut h, ept, 3, 100), Ok(13));
    assert_eq!(take_all(&mut r).len(), 16);
    assert_eq!(
        h.try_send_each(99, 1, too_long),
        Err(Error::EndpointNotFound)
    );
}

#[test]
fn a_receiver_can_stop_early_and_takes_the_rest_later() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(send_from(&mut h, ept, 0, 10), Ok(10));
    let mut first = Vec::new();
    let stop_after_two = |rx: &RxBuffer<'_>| {
        first.push(payload(rx));
        first.len() < 2
    };
    assert_eq!(r.recv_each(1024, usize::MAX, stop_after_two), Ok(2));
    assert_eq!(r.recv_each(1024, 3, |_: &RxBuffer<'_>| true), Ok(3));
    let rest = take_all(&mut r);
    assert_eq!(rest.len(), 5);
    assert_eq!(first, [message(0), message(1)]);
    assert_eq!(rest[0], message(5));
}

/// A message for another endpoint (or the name service) ends the pass and stays for
/// `recv`; what follows it is taken by the next pass.
#[test]
fn other_traffic_is_left_for_recv() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let other = r.create_endpoint("other", None, None).unwrap();
    // The remote announces "other" at its next poll; the host binds it.
    let _ = r.poll();
    let to_other = match h.recv().unwrap() {
        Some(Event::NameServiceCreate { name, addr }) => h.bind(&name, addr).unwrap(),
        e => panic!("host got {e:?}"),
    };
    assert_eq!(send_from(&mut h, ept, 0, 2), Ok(2));
    h.try_send(to_other, b"elsewhere").unwrap();
    assert_eq!(send_from(&mut h, ept, 2, 3), Ok(1));
    assert_eq!(take_all(&mut r), [message(0), message(1)]);
    assert_eq!(take_all(&mut r), Vec::<Vec<u8>>::new());
    let rx = next_message(&mut r);
    assert_eq!((rx.dst(), payload(&rx)), (other, b"elsewhere".to_vec()));
    r.release_rx(rx).unwrap();
    assert_eq!(take_all(&mut r), [message(2)]);
    assert_eq!(r.stats().rx_messages, 4);
}

#[test]
fn the_host_receives_a_stream_too() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    // The remote's "k" learns the host's address from a first message.
    round_trip(&mut h, &mut r, ept, b"hello");
    for seq in 0..10 {
        r.try_send(1024, &message(seq)).unwrap();
    }
    let mut got = Vec::new();
    let take = |rx: &RxBuffer<'_>| {
        got.push(payload(rx));
        true
    };
    assert_eq!(h.recv_each(ept, usize::MAX, take), Ok(10));
    assert_eq!(got, (0..10).map(message).collect::<Vec<_>>());
    round_trip(&mut h, &mut r, ept, b"after");
}

/// Corrupt entries are counted and returned (skipped) as by `recv`, and a host that offers
/// a buffer the remote still holds (from `recv`) is refused: the pass never hands out a
/// buffer twice.
#[test]
fn a_hostile_host_gets_no_further_with_a_stream() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let ring = h.layout().ring(QueueId::HostToRemote);
    let region = mem.region();
    // A descriptor pointing at the rings, between two good messages.
    assert_eq!(send_from(&mut h, ept, 0, 3), Ok(3));
    let avail = region.load_u16(ring.avail + 2, Relaxed).unwrap();
    let slot = usize::from(avail.wrapping_sub(2) % 16);
    let id = usize::from(region.load_u16(ring.avail + 4 + 2 * slot, Relaxed).unwrap());
    region
        .store_u64(ring.desc + 16 * id, 0xafa0_0000 + SIZE as u64 - 64, Relaxed)
        .unwrap();
    assert_eq!(take_all(&mut r), [message(0), message(2)]);
    assert_eq!(
        r.counters().get(Error::Peer(PeerFault::BufferOutOfBounds)),
        1
    );
    // The remote asks for a fresh session (that buffer is lost); the link comes back.
    let _ = r.poll();
    let ept = bring_up(&mut h, &mut r);
    // The remote holds a message; the host offers its buffer again.
    assert_eq!(send_from(&mut h, ept, 0, 1), Ok(1));
    let held = next_message(&mut r);
    let avail = region.load_u16(ring.avail + 2, Relaxed).unwrap();
    let held_id = region
        .load_u16(
            ring.avail + 4 + 2 * usize::from(avail.wrapping_sub(1) % 16),
            Relaxed,
        )
        .unwrap();
    region
        .store_u16(
            ring.avail + 4 + 2 * usize::from(avail % 16),
            held_id,
            Relaxed,
        )
        .unwrap();
    region
        .store_u16(ring.avail + 2, avail.wrapping_add(1), Relaxed)
        .unwrap();
    assert_eq!(take_all(&mut r), Vec::<Vec<u8>>::new());
    assert_eq!(
        r.counters()
            .get(Error::Peer(PeerFault::DuplicateDescriptor)),
        1
    );
    assert_eq!(payload(&held), message(0));
    r.release_rx(held).unwrap();
}

/// The host starts a new session while the remote is in the middle of a pass (its `take`
/// runs the host's restart): the pass ends there, the buffer of the old session is not
/// returned into the new one, nothing looks like corruption to either side, and the link
/// comes back. The same for a remote sending a stream: nothing written after the restart
/// is sent.
#[test]
fn a_host_restart_in_the_middle_of_a_pass_reaches_nothing_stale() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(send_from(&mut h, ept, 0, 5), Ok(5));
    let mut seen = 0;
    let restart_at_second = |_: &RxBuffer<'_>| {
        seen += 1;
        if seen == 2 {
            h.start().unwrap();
        }
        true
    };
    assert_eq!(r.recv_each(1024, usize::MAX, restart_at_second), Ok(2));
    assert_eq!(h.recv().unwrap().map(|_| ()), None);
    let ept = bring_up(&mut h, &mut r);
    assert_eq!(h.counters().peer_faults(), 0, "{:?}", h.counters());
    assert_eq!(r.counters().peer_faults(), 0, "{:?}", r.counters());
    round_trip(&mut h, &mut r, ept, b"new");
    // A remote's stream, the host restarting after its second payload is written.
    let mut filled = 0;
    let restart_at_second = |buf: &mut TxBuffer<'_>| {
        filled += 1;
        if filled == 2 {
            h.start().unwrap();
        }
        buf.write(0, b"old").map(|()| 3)
    };
    // The first went out in the old session; the second, written when the session
    // ended, does not.
    assert_eq!(r.try_send_each(1024, 5, restart_at_second), Ok(1));
    assert_eq!(h.recv().unwrap().map(|_| ()), None);
    let ept = bring_up(&mut h, &mut r);
    assert_eq!(h.counters().peer_faults(), 0, "{:?}", h.counters());
    round_trip(&mut h, &mut r, ept, b"new");
}
