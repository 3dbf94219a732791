//! Both roles stepped in one thread, deterministically: link bring-up in either order,
//! doorbell targets, limits, hostile peers, restarts of either side at every protocol step.

use core::sync::atomic::Ordering::Relaxed;

use rpmsg_engine::layout::QueueId;
use rpmsg_engine::rpmsg::{BEAT_PERIOD_US, SILENCE_US};
use rpmsg_engine::testing::{Bell, BellDoorbell, HeapRegion};
use rpmsg_engine::wire::CONTROL_BLOCK_OFFSET;

mod common;
use common::*;
use rpmsg_engine::{Config, Error, Event, Host, LinkState, PeerFault, Remote};

#[test]
fn remote_first_then_host() {
    let mem = HeapRegion::new(SIZE);
    let mut r = remote(&mem);
    assert_eq!(r.poll(), Ok(false));
    assert_eq!(r.link_state(), LinkState::Down);
    assert_eq!(r.try_send(1024, b"x"), Err(Error::NotReady));
    let mut h = started_host(&mem);
    let ept = bring_up(&mut h, &mut r);
    assert_eq!(h.link_state(), LinkState::Up);
    round_trip(&mut h, &mut r, ept, b"hello\0");
}

#[test]
fn host_first_then_remote() {
    let mem = HeapRegion::new(SIZE);
    let mut h = started_host(&mem);
    assert_eq!(h.recv().unwrap().map(|_| ()), None);
    assert_eq!(h.link_state(), LinkState::Waiting);
    let mut r = remote(&mem);
    let ept = bring_up(&mut h, &mut r);
    h.try_send(ept, b"x").unwrap();
    assert!(echo_one(&mut r).is_some());
}

#[test]
fn doorbells_go_to_the_published_ids() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(r.peer_id(), Some(HOST_ID));
    assert_eq!(h.peer_id(), Some(REMOTE_ID));
    assert_eq!(r.doorbell().last_peer_id, Some(HOST_ID));
    h.try_send(ept, b"ping").unwrap();
    assert_eq!(h.doorbell().last_peer_id, Some(REMOTE_ID));
    assert!(h.doorbell().rung > 0);
}

#[test]
fn payload_limits() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(h.max_payload(), 496);
    assert_eq!(h.try_send(ept, &[1u8; 497]), Err(Error::PayloadTooLarge));
    h.try_send(ept, &[7u8; 496]).unwrap();
    h.try_send(ept, &[]).unwrap();
    assert_eq!(echo_one(&mut r).map(|p| p.len()), Some(496));
    assert_eq!(echo_one(&mut r).map(|p| p.len()), Some(0));
}

#[test]
fn tx_buffers_run_out_and_come_back() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(exhaust_tx(&mut h, ept), 16);
    // The remote consumes one (returning the buffer) without echoing.
    consume_one(&mut r);
    h.try_send(ept, b"x").unwrap();
    assert_eq!(h.try_send(ept, b"y"), Err(Error::NoTxBuffer));
}

#[test]
fn zero_copy_send_and_release() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let mut tx = h.get_tx_buffer().unwrap();
    assert_eq!(tx.capacity(), 496);
    assert_eq!(tx.write(490, &[0; 7]), Err(Error::PayloadTooLarge));
    tx.write(0, b"abc").unwrap();
    h.send_nocopy(ept, tx, 3).unwrap();
    let unused = h.get_tx_buffer().unwrap();
    h.release_tx_buffer(unused).unwrap();
    let rx = next_message(&mut r);
    let mut out = [0u8; 8];
    assert_eq!(rx.read(1, &mut out), Ok(2));
    assert_eq!(&out[..2], b"bc");
    assert_eq!(rx.read(9, &mut out), Ok(0));
    r.release_rx(rx).unwrap();
}

#[test]
fn messages_to_unknown_endpoints_are_dropped_and_their_buffers_returned() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    for _ in 0..100 {
        h.try_send_to(ept, 4000, b"nobody").unwrap();
        assert!(r.recv().unwrap().is_none());
    }
    assert_eq!(
        r.counters().get(Error::Peer(PeerFault::UnknownDestination)),
        100
    );
    assert_eq!(r.stats().dropped, 100);
    h.try_send(ept, b"still works").unwrap();
    assert!(echo_one(&mut r).is_some());
}

#[test]
fn layout_mismatch_is_reported() {
    let mem = HeapRegion::new(SIZE);
    let _host = started_host(&mem);
    let cfg = Config {
        buf_size: 256,
        ..Config::new(SIZE)
    };
    let mut r =
        Remote::new_remote(mem.region(), cfg, Some(1), BellDoorbell::new(Bell::new())).unwrap();
    assert_eq!(r.poll(), Err(Error::LayoutMismatch));
    assert_eq!(r.counters().get(Error::LayoutMismatch), 1);
}

#[test]
fn config_must_match_the_region() {
    let mem = HeapRegion::new(SIZE);
    let e = Host::new_host(
        mem.region(),
        Config::new(SIZE * 2),
        None,
        BellDoorbell::new(Bell::new()),
    );
    assert!(matches!(e, Err(Error::InvalidConfig(_))));
    let small = HeapRegion::new(4096);
    let e = Remote::new_remote(
        small.region(),
        Config::new(4096),
        None,
        BellDoorbell::new(Bell::new()),
    );
    assert!(matches!(e, Err(Error::RegionTooSmall)));
}

/// Erases the host's control block (an OpenAMP C host writes only the status byte); a
/// remote over the region, with the host as its fallback peer, creates "k" at 1024 (bound
/// to `dest`, if given) and attaches: the remote and its endpoint.
fn remote_of_a_c_host(mem: &HeapRegion, dest: Option<u32>) -> (R<'_>, u32) {
    mem.region().zero(CONTROL_BLOCK_OFFSET, 48).unwrap();
    let cfg = Config {
        fallback_peer_id: Some(HOST_ID),
        ..Config::new(SIZE)
    };
    let mut r = Remote::new_remote(
        mem.region(),
        cfg,
        Some(REMOTE_ID),
        BellDoorbell::new(Bell::new()),
    )
    .unwrap();
    let k = r.create_endpoint("k", Some(1024), dest).unwrap();
    assert_eq!(r.poll(), Ok(true));
    (r, k)
}

#[test]
fn a_host_without_control_block_is_served_like_openamp() {
    // An OpenAMP C host writes only the status byte: emulate by erasing our block.
    let mem = HeapRegion::new(SIZE);
    let h = started_host(&mem);
    let (mut r, _) = remote_of_a_c_host(&mem, None);
    assert_eq!(r.peer_id(), Some(HOST_ID));
    assert_eq!(r.doorbell().last_peer_id, Some(HOST_ID));
    // The announcement went out on vring 0 as an OpenAMP host expects it: one used
    // element whose length is the whole buffer (as OpenAMP's remote reports it), a
    // 16 + 40-byte message from 1024 to 53. (Our Host is not asked: it would see its own
    // erased block.)
    let ring = h.layout().ring(QueueId::RemoteToHost);
    let region = mem.region();
    assert_eq!(region.load_u16(ring.used + 2, Relaxed), Ok(1));
    let id = region.load_u32(ring.used + 4, Relaxed).unwrap() as usize;
    assert_eq!(region.load_u32(ring.used + 8, Relaxed), Ok(512));
    let addr = region.load_u64(ring.desc + 16 * id, Relaxed).unwrap();
    let off = (addr - 0xafa0_0000) as usize;
    assert_eq!(region.load_u32(off, Relaxed), Ok(1024), "src");
    assert_eq!(region.load_u32(off + 4, Relaxed), Ok(53), "dst");
    let mut name = [0u8; 2];
    region.read_bytes(off + 16, &mut name).unwrap();
    assert_eq!(&name, b"k\0");
}

#[test]
fn hostile_host_descriptors_are_skipped() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    h.try_send(ept, b"one").unwrap();
    // Corrupt the descriptor the host just posted on vring 1: point it at the rings.
    let ring = h.layout().ring(QueueId::HostToRemote);
    let region = mem.region();
    let id = region.load_u16(ring.avail + 4, Relaxed).unwrap() as usize;
    region
        .store_u64(ring.desc + 16 * id, 0xafa0_0000 + SIZE as u64 - 64, Relaxed)
        .unwrap();
    assert!(r.recv().unwrap().is_none());
    assert_eq!(
        r.counters().get(Error::Peer(PeerFault::BufferOutOfBounds)),
        1
    );
    // That buffer is lost to the session: the remote asks for a fresh one, and the link
    // comes back with every buffer.
    let _ = r.poll();
    relinks_in_a_fresh_session(&mut h, &mut r);
}

/// The remote asked for a fresh session: the host starts it, the link comes back with
/// every buffer and carries a message.
fn relinks_in_a_fresh_session(h: &mut H<'_>, r: &mut R<'_>) {
    assert_eq!(r.link_state(), LinkState::Waiting);
    let old = h.session();
    let ept = bring_up(h, r);
    assert_eq!(h.session(), old + 1);
    h.try_send(ept, b"two").unwrap();
    assert_eq!(echo_one(r).as_deref(), Some(&b"two"[..]));
}

/// Every receive buffer the host offers on vring 0 points outside the region: the
/// remote's send finds no usable buffer. It asks for a fresh session at once and says
/// "not ready" (before: "no buffer" at every try, so a waiting send gave up only after
/// its timeout, and the link stayed lost as long), and the link comes back.
#[test]
fn a_remote_whose_transmit_buffers_are_all_rejected_asks_for_a_session_at_once() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    // The remote's "k" learns the host's address from a first message.
    round_trip(&mut h, &mut r, ept, b"one");
    let remote_ept = 1024;
    let ring = h.layout().ring(QueueId::RemoteToHost);
    let region = mem.region();
    for d in 0..16 {
        region
            .store_u64(ring.desc + 16 * d, 0xdead_0000_0000, Relaxed)
            .unwrap();
    }
    assert_eq!(r.try_send(remote_ept, b"echo"), Err(Error::NotReady));
    assert!(r.counters().get(Error::Peer(PeerFault::BufferOutOfBounds)) > 0);
    relinks_in_a_fresh_session(&mut h, &mut r);
}

#[test]
fn hostile_remote_used_entries_are_skipped_and_a_wild_index_resets_the_session() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let ring = h.layout().ring(QueueId::RemoteToHost);
    let region = mem.region();
    // A used element naming a descriptor the remote never had.
    let used_idx = region.load_u16(ring.used + 2, Relaxed).unwrap();
    let slot = (used_idx % 16) as usize;
    region
        .store_u32(ring.used + 4 + 8 * slot, 99, Relaxed)
        .unwrap();
    region
        .store_u16(ring.used + 2, used_idx.wrapping_add(1), Relaxed)
        .unwrap();
    assert!(h.recv().unwrap().is_none());
    assert_eq!(
        h.counters()
            .get(Error::Peer(PeerFault::DescriptorIndexOutOfRange)),
        1
    );
    // The rejected entry lost a buffer: the host starts a fresh session at its next look.
    let old = h.session();
    let _ = h.poll();
    assert_eq!(h.session(), old + 1);
    assert_eq!(bring_up(&mut h, &mut r), ept);
    let used_idx = region.load_u16(ring.used + 2, Relaxed).unwrap();
    // A used index far ahead: the ring is unusable, the host starts a new session.
    region
        .store_u16(ring.used + 2, used_idx.wrapping_add(1000), Relaxed)
        .unwrap();
    assert_eq!(
        h.recv().map(|_| ()),
        Err(Error::Peer(PeerFault::UsedIndexOutOfRange))
    );
    assert_eq!(h.link_state(), LinkState::Broken);
    let old = h.session();
    let _ = h.poll();
    assert_eq!(h.session(), old + 1);
    assert_eq!(h.stats().resets, 2);
    let ept2 = bring_up(&mut h, &mut r);
    assert_eq!(ept2, ept);
    h.try_send(ept2, b"after").unwrap();
    assert_eq!(echo_one(&mut r).as_deref(), Some(&b"after"[..]));
}

#[test]
fn remote_restart_gets_a_fresh_session_and_no_stale_message() {
    let mem = HeapRegion::new(SIZE);
    let mut h = started_host(&mem);
    let ept = {
        let mut r = remote(&mem);
        let ept = bring_up(&mut h, &mut r);
        h.try_send(ept, b"consumed").unwrap();
        assert!(echo_one(&mut r).is_some());
        h.try_send(ept, b"stale").unwrap();
        ept
        // The remote dies here with "stale" unread.
    };
    assert_eq!(recv_payload(&mut h).as_deref(), Some(&b"consumed"[..]));
    let mut r2 = remote_with(&mem, REMOTE_ID + 1);
    assert_eq!(r2.poll(), Ok(false), "must ask for a fresh session");
    assert_eq!(r2.link_state(), LinkState::Waiting);
    assert_eq!(r2.doorbell().last_peer_id, Some(HOST_ID));
    let before = h.session();
    let ept2 = bring_up(&mut h, &mut r2);
    assert_eq!(ept2, ept);
    assert_eq!(h.session(), before + 1);
    assert_eq!(h.peer_id(), Some(REMOTE_ID + 1));
    assert_eq!(h.stats().resets, 1);
    assert!(r2.recv().unwrap().is_none(), "the stale message is gone");
    round_trip(&mut h, &mut r2, ept2, b"fresh");
}

#[test]
fn host_restart_makes_the_remote_reattach_and_announce_again() {
    let mem = HeapRegion::new(SIZE);
    let mut r = remote(&mem);
    {
        let mut h = started_host(&mem);
        let ept = bring_up(&mut h, &mut r);
        h.try_send(ept, b"one").unwrap();
        assert!(echo_one(&mut r).is_some());
        // The echo is never read: the host dies.
    }
    let mut h2 = started_host(&mem);
    let ept = bring_up(&mut h2, &mut r);
    assert_eq!(r.stats().resets, 1);
    assert!(h2.recv().unwrap().is_none(), "the old echo is gone");
    round_trip(&mut h2, &mut r, ept, b"two");
}

#[test]
fn buffers_from_an_old_session_are_stale() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let tx = h.get_tx_buffer().unwrap();
    h.try_send(ept, b"held").unwrap();
    let rx = next_message(&mut r);
    h.start().unwrap();
    assert_eq!(h.send_nocopy(ept, tx, 1), Err(Error::StaleBuffer));
    let _ = r.poll();
    assert_eq!(r.release_rx(rx), Err(Error::StaleBuffer));
}

/// A restart of either side injected after every step of an exchange: afterwards the link
/// comes back, nothing from before the restart is delivered, and a fresh echo works.
#[test]
fn restart_at_every_protocol_step() {
    #[derive(Debug, Clone, Copy)]
    enum Who {
        Host,
        Remote,
    }
    const STEPS: usize = 8;
    for who in [Who::Host, Who::Remote] {
        for cut in 0..=STEPS {
            let mem = HeapRegion::new(SIZE);
            let mut h = Some(host(&mem));
            let mut r = Some(remote(&mem));
            let mut ept = None;
            let mut step = 0;
            let mut restarted = false;
            let mut iterations = 0;
            loop {
                iterations += 1;
                assert!(iterations < 200, "{who:?} cut {cut}: no progress");
                if step == cut && !restarted {
                    restarted = true;
                    match who {
                        Who::Host => {
                            h = Some(host(&mem));
                        }
                        Who::Remote => {
                            r = Some(remote_with(&mem, REMOTE_ID + 1));
                        }
                    }
                    ept = None;
                }
                let (hh, rr) = (h.as_mut().unwrap(), r.as_mut().unwrap());
                match step {
                    0 => hh.start().unwrap(),
                    1 => {
                        let _ = rr.poll();
                    }
                    2 => {
                        if let Some(Event::NameServiceCreate { name, addr }) = hh.recv().unwrap() {
                            ept = Some(hh.bind(&name, addr).unwrap());
                        }
                    }
                    3 => {
                        if let Some(e) = ept {
                            let _ = hh.try_send(e, b"old");
                        }
                    }
                    4 => {
                        if let Ok(Some(Event::Message(rx))) = rr.recv() {
                            let _ = rr.release_rx(rx);
                            let _ = rr.try_send(1024, b"old");
                        }
                    }
                    5 => {
                        let _ = hh.recv();
                    }
                    _ => {}
                }
                step += 1;
                if step > STEPS && restarted {
                    break;
                }
            }
            // Recovery: whatever happened, drive both sides until the host binds again.
            let (hh, rr) = (h.as_mut().unwrap(), r.as_mut().unwrap());
            if hh.link_state() == LinkState::Down {
                hh.start().unwrap();
            }
            let mut e = ept;
            for _ in 0..20 {
                let _ = rr.poll();
                match hh.recv() {
                    Ok(Some(Event::NameServiceCreate { name, addr })) => {
                        e = Some(hh.bind(&name, addr).unwrap())
                    }
                    Ok(Some(Event::Message(rx))) => {
                        let mut b = [0u8; 8];
                        let n = rx.read(0, &mut b).unwrap();
                        panic!("{who:?} cut {cut}: stale delivery {:?}", &b[..n]);
                    }
                    _ => {}
                }
                if e.is_some()
                    && hh.link_state() == LinkState::Up
                    && rr.link_state() == LinkState::Up
                {
                    break;
                }
            }
            let e = e.unwrap_or_else(|| panic!("{who:?} cut {cut}: not rebound"));
            hh.try_send(e, b"new").unwrap();
            let mut got = None;
            for _ in 0..5 {
                if let Some(Event::Message(rx)) = rr.recv().unwrap() {
                    let mut b = vec![0u8; rx.len()];
                    rx.read(0, &mut b).unwrap();
                    rr.release_rx(rx).unwrap();
                    got = Some(b);
                    break;
                }
            }
            assert_eq!(got.as_deref(), Some(&b"new"[..]), "{who:?} cut {cut}");
        }
    }
}

#[test]
fn one_doorbell_per_message_in_steady_state() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let (h0, r0) = (h.doorbell().rung, r.doorbell().rung);
    for i in 0..100u32 {
        h.try_send(ept, &i.to_le_bytes()).unwrap();
        assert!(echo_one(&mut r).is_some());
        assert_eq!(recv_payload(&mut h), Some(i.to_le_bytes().to_vec()));
    }
    // Returned transmit buffers and re-posted receive buffers ring nobody: the side that
    // would be woken takes them when it next sends.
    assert_eq!(h.doorbell().rung - h0, 100);
    assert_eq!(r.doorbell().rung - r0, 100);
}

#[test]
fn a_sender_out_of_buffers_asks_to_be_woken() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(exhaust_tx(&mut h, ept), 16);
    // The host now wants an interrupt when the remote returns a buffer.
    let before = r.doorbell().rung;
    consume_one(&mut r);
    assert_eq!(r.doorbell().rung, before + 1, "the waiting host is woken");
    h.try_send(ept, b"x").unwrap();
    // The remote, out of transmit buffers, wants to hear about re-posted ones.
    for _ in 0..15 {
        consume_one(&mut r);
    }
    assert_eq!(exhaust_tx(&mut r, 1024), 16);
    let before = h.doorbell().rung;
    consume_one(&mut h);
    assert_eq!(h.doorbell().rung, before + 1, "the waiting remote is woken");
    r.try_send(1024, b"x").unwrap();
}

/// A remote that took a message and echoes it after the host restarted, without polling
/// in between (its application was busy), must not put the echo into the new session: its
/// ring positions belong to the old one. Before the fix the echo landed in the new rings,
/// the host delivered it to its endpoint (open-amp #44: a message from before the restart,
/// after it), and the remote's late `release_rx` broke the host's transmit ring.
#[test]
fn a_remote_busy_across_a_host_session_restart_sends_nothing_stale() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    h.try_send(ept, b"old").unwrap();
    let rx = next_message(&mut r);
    let zero_copy = r.get_tx_buffer().unwrap();
    // The host starts a new session (as it does when its ring breaks); the remote has not
    // looked at the link since.
    h.start().unwrap();
    assert_eq!(r.try_send(1024, b"old"), Err(Error::NotReady));
    assert_eq!(r.send_nocopy(1024, zero_copy, 3), Err(Error::StaleBuffer));
    assert_eq!(r.release_rx(rx), Err(Error::StaleBuffer));
    // Nothing reached the host, and nothing looked like corruption to it.
    assert_eq!(h.recv().unwrap().map(|_| ()), None);
    let ept = bring_up(&mut h, &mut r);
    assert_eq!(h.counters().peer_faults(), 0, "{:?}", h.counters());
    assert_eq!(r.counters().peer_faults(), 0, "{:?}", r.counters());
    round_trip(&mut h, &mut r, ept, b"new");
}

/// The same with a new host process: the old host dies, a new one initialises the region,
/// and the remote, busy, echoes what the old host sent.
#[test]
fn a_remote_busy_across_a_host_process_restart_sends_nothing_stale() {
    let mem = HeapRegion::new(SIZE);
    let mut r = remote(&mem);
    let rx = {
        let mut h = started_host(&mem);
        let ept = bring_up(&mut h, &mut r);
        h.try_send(ept, b"old").unwrap();
        next_message(&mut r)
    };
    let mut h2 = started_host(&mem);
    assert_eq!(r.try_send(1024, b"old"), Err(Error::NotReady));
    assert_eq!(r.release_rx(rx), Err(Error::StaleBuffer));
    let ept = bring_up(&mut h2, &mut r);
    assert_eq!(h2.counters().peer_faults(), 0, "{:?}", h2.counters());
    assert_eq!(h2.session(), 2);
    round_trip(&mut h2, &mut r, ept, b"new");
    assert_eq!(h2.counters().peer_faults(), 0, "{:?}", h2.counters());
}

/// Every session after a host's first counts as a reset, whatever caused it: a remote's
/// request, a broken ring, or the application calling `start()` again (as the native host
/// does when its remote leaves the server). Before, only the first two were counted.
#[test]
fn every_host_session_after_the_first_is_a_reset() {
    let mem = HeapRegion::new(SIZE);
    let mut h = started_host(&mem);
    assert_eq!(h.stats().resets, 0);
    h.start().unwrap();
    assert_eq!(h.stats().resets, 1);
    // A new remote asks for a fresh session.
    let mut r = remote(&mem);
    bring_up(&mut h, &mut r);
    drop(r);
    let mut r2 = remote_with(&mem, REMOTE_ID + 1);
    bring_up(&mut h, &mut r2);
    assert_eq!(h.stats().resets, 2);
    assert_eq!(h.session(), 3);
    // A second host object over the same region starts its first session: no reset.
    let h2 = started_host(&mem);
    assert_eq!(h2.stats().resets, 0);
    assert_eq!(h2.session(), 4);
}

/// The remote acknowledges the session, then announces. If the host's look at the control
/// area comes just before the acknowledgement and its look at the ring just after the
/// announcement (both inside one `recv`), the announcement brings the link up as for a C
/// remote, which never acknowledges. The host must still learn the remote's id: before,
/// it kept none for the whole session and never rang the remote again (a remote that
/// waits for doorbells, as the firmware does, then never saw a message).
#[test]
fn an_announcement_overtaking_the_acknowledgement_still_gives_the_remote_id() {
    use rpmsg_engine::shm::ControlView;
    let mem = HeapRegion::new(SIZE);
    let mut h = started_host(&mem);
    let mut r = remote(&mem);
    assert_eq!(r.poll(), Ok(true)); // acknowledged, then announced
                                    // Model the race: the host's refresh does not see the acknowledgement yet.
    let control = ControlView::new(mem.region()).unwrap();
    let ack = control.remote().unwrap();
    assert_eq!(ack, (Some(REMOTE_ID), h.session()));
    control.set_remote(None, 0).unwrap();
    let Some(Event::NameServiceCreate { name, addr }) = h.recv().unwrap() else {
        panic!("no announcement")
    };
    assert_eq!(h.link_state(), LinkState::Up);
    // ... and it becomes visible right after.
    control.set_remote(ack.0, ack.1).unwrap();
    let ept = h.bind(&name, addr).unwrap();
    assert_eq!(h.recv().unwrap().map(|_| ()), None);
    assert_eq!(h.peer_id(), Some(REMOTE_ID));
    let before = h.doorbell().rung;
    h.try_send(ept, b"ring").unwrap();
    assert_eq!(h.doorbell().rung, before + 1);
    assert_eq!(h.doorbell().last_peer_id, Some(REMOTE_ID));
    assert_eq!(echo_one(&mut r).as_deref(), Some(&b"ring"[..]));
}

/// A host killed in the middle of `start()` (status 0, control area half cleared) leaves
/// its new session number behind: the next host counts on from it instead of starting
/// again at 1. Before, `start()` zeroed the whole control area first, so a host killed
/// there made its successor reuse session numbers, and a remote that slept through the
/// interruption could take the successor's session for the one it was attached to and
/// keep its old ring positions. (Found by the native `both_killed_and_restarted_in_reverse_order`.)
#[test]
fn a_host_killed_during_start_does_not_make_session_numbers_repeat() {
    use rpmsg_engine::shm::ControlView;
    let mem = HeapRegion::new(SIZE);
    let mut r = remote(&mem);
    {
        let mut h = started_host(&mem);
        h.start().unwrap();
        assert_eq!(h.session(), 2);
        bring_up(&mut h, &mut r);
        assert_eq!(r.session(), 2);
    }
    // The next host gets as far as start() does before touching the rings, and dies.
    let control = ControlView::new(mem.region()).unwrap();
    control.set_status(0).unwrap();
    control.begin_session(3).unwrap();
    assert_eq!(control.host_session(), Ok(3));
    assert_eq!(control.remote(), Ok((None, 0)));
    // The remote did not look meanwhile; a third host starts.
    let mut h = started_host(&mem);
    assert_eq!(h.session(), 4);
    let ept = bring_up(&mut h, &mut r);
    assert_eq!(r.session(), 4);
    assert_eq!(r.stats().resets, 1);
    round_trip(&mut h, &mut r, ept, b"after");
    assert_eq!(h.counters().peer_faults() + r.counters().peer_faults(), 0);
}

/// Without a block in the control area (a fresh region, or one a C host used) there is no
/// number to count on from: sessions start at 1.
#[test]
fn sessions_start_at_one_without_a_control_block() {
    let mem = HeapRegion::new(SIZE);
    mem.region().store_u8(0, 0x0F, Relaxed).unwrap(); // a C host's status, no block
    let h = started_host(&mem);
    assert_eq!(h.session(), 1);
}

/// Erases the remote's acknowledgement (id, session) from the control area: a C OpenAMP
/// remote never writes one.
/// Brings the link up with `r` acting as a C remote (it announces "k" but its
/// acknowledgement, with its id, is erased); returns the host's endpoint.
/// A started host and a remote on `mem`, linked with the remote posing as a C node (its
/// id erased from the control area); the host's endpoint bound to "k".
fn c_remote_pair(mem: &HeapRegion) -> (H<'_>, R<'_>, u32) {
    let mut h = started_host(mem);
    let mut r = remote(mem);
    let _ = r.poll();
    erase_remote_ack(mem);
    let ept = match h.recv().unwrap() {
        Some(Event::NameServiceCreate { name, addr }) => h.bind(&name, addr).unwrap(),
        other => panic!("expected the announcement, got {other:?}"),
    };
    (h, r, ept)
}

fn erase_remote_ack(mem: &HeapRegion) {
    let region = mem.region();
    region
        .store_u32(CONTROL_BLOCK_OFFSET + 0x28, u32::MAX, Relaxed)
        .unwrap();
    region
        .store_u32(CONTROL_BLOCK_OFFSET + 0x2C, 0, Relaxed)
        .unwrap();
}

#[test]
fn a_c_remote_that_joins_after_the_host_is_rung_once_its_id_is_known() {
    // Interop with the OpenAMP sample: the host starts first (the C remote rings "own id
    // - 1", so it must connect second) and sees no other peer, so it has no fallback id.
    // The C remote then announces "k" without publishing an id; the native host learns
    // the id from the server's peer list only now and must ring it from then on.
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = c_remote_pair(&mem);
    assert_eq!(h.link_state(), LinkState::Up);
    assert_eq!(h.peer_id(), None);
    h.set_fallback_peer_id(Some(REMOTE_ID));
    assert_eq!(h.peer_id(), Some(REMOTE_ID));
    assert_eq!(h.published_peer_id(), None, "a C remote publishes no id");
    let rung = h.doorbell().rung;
    h.try_send(ept, b"RPMsg over IVSHMEM\0").unwrap();
    assert_eq!(h.doorbell().rung, rung + 1);
    assert_eq!(h.doorbell().last_peer_id, Some(REMOTE_ID));
    assert_eq!(
        echo_one(&mut r).as_deref(),
        Some(&b"RPMsg over IVSHMEM\0"[..])
    );
    assert_eq!(
        recv_payload(&mut h).as_deref(),
        Some(&b"RPMsg over IVSHMEM\0"[..])
    );
    // The C remote leaves the server: nobody to ring any more.
    h.set_fallback_peer_id(None);
    assert_eq!(h.peer_id(), None);
}

#[test]
fn a_published_id_wins_over_a_changed_fallback() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    h.set_fallback_peer_id(Some(REMOTE_ID + 7));
    r.set_fallback_peer_id(Some(HOST_ID + 7));
    assert_eq!(h.peer_id(), Some(REMOTE_ID));
    assert_eq!(r.peer_id(), Some(HOST_ID));
    assert_eq!(h.published_peer_id(), Some(REMOTE_ID));
    assert_eq!(r.published_peer_id(), Some(HOST_ID));
    h.try_send(ept, b"x").unwrap();
    assert_eq!(h.doorbell().last_peer_id, Some(REMOTE_ID));
}

#[test]
fn a_remote_of_a_c_host_follows_a_changed_fallback() {
    // A C host publishes nothing; when it comes back under a new ivshmem id, the native
    // remote updates its fallback and rings the new id.
    let mem = HeapRegion::new(SIZE);
    let _host = started_host(&mem);
    let (mut r, k) = remote_of_a_c_host(&mem, Some(1024));
    assert_eq!(r.doorbell().last_peer_id, Some(HOST_ID));
    assert_eq!(r.published_peer_id(), None, "a C host publishes no id");
    r.set_fallback_peer_id(Some(HOST_ID + 1));
    assert_eq!(r.peer_id(), Some(HOST_ID + 1));
    r.try_send(k, b"x").unwrap();
    assert_eq!(r.doorbell().last_peer_id, Some(HOST_ID + 1));
}

/// An OpenAMP host up to v2023.10 (the one Zephyr 3.6 carries) posts a received buffer
/// again with the used length as its descriptor length (`rpmsg_virtio_rx_callback` ->
/// `rpmsg_virtio_return_buffer(rvdev, rp_hdr, len, idx)`). Emulates that host over vring 0.
fn openamp_2023_host_reposts_with_used_len(mem: &HeapRegion, h: &H<'_>) -> usize {
    let ring = h.layout().ring(QueueId::RemoteToHost);
    let region = mem.region();
    let used_idx = region.load_u16(ring.used + 2, Relaxed).unwrap();
    let mut avail_idx = region.load_u16(ring.avail + 2, Relaxed).unwrap();
    let n = usize::from(ring.size);
    let mut reposted = 0;
    // Consume every used element (the test host side keeps its own index at 0 because
    // it never looks: start from the oldest entry still in the ring).
    for i in 0..used_idx {
        let slot = usize::from(i) % n;
        let id = region.load_u32(ring.used + 4 + 8 * slot, Relaxed).unwrap() as usize;
        let len = region.load_u32(ring.used + 8 + 8 * slot, Relaxed).unwrap();
        region
            .store_u32(ring.desc + 16 * id + 8, len, Relaxed)
            .unwrap();
        region
            .store_u16(
                ring.avail + 4 + 2 * (usize::from(avail_idx) % n),
                id as u16,
                Relaxed,
            )
            .unwrap();
        avail_idx = avail_idx.wrapping_add(1);
        reposted += 1;
    }
    region
        .store_u16(ring.avail + 2, avail_idx, Relaxed)
        .unwrap();
    reposted
}

#[test]
fn a_remote_keeps_the_buffers_of_an_openamp_2023_host_whole() {
    // A C host publishes no block; our remote sends short messages, the OpenAMP host
    // re-posts each buffer with the used length; a long message must still fit.
    let mem = HeapRegion::new(SIZE);
    let h = started_host(&mem);
    let (mut r, k) = remote_of_a_c_host(&mem, Some(1024));
    // Fill every buffer once with a 2-byte message (a bound "k" is not announced), the
    // host re-posting each.
    for _ in 0..16 {
        r.try_send(k, b"x\0").unwrap();
    }
    assert_eq!(openamp_2023_host_reposts_with_used_len(&mem, &h), 16);
    let ring = h.layout().ring(QueueId::RemoteToHost);
    for id in 0..16 {
        let len = mem
            .region()
            .load_u32(ring.desc + 16 * id + 8, Relaxed)
            .unwrap();
        assert_eq!(len, 512, "descriptor {id} shrank");
    }
    let long = [b'L'; 496];
    assert_eq!(r.try_send(k, &long), Ok(()));
}

#[test]
fn a_silent_remote_is_taken_as_gone_after_a_second_and_a_silent_host_likewise() {
    let mem = HeapRegion::new(SIZE);
    let mut h = started_host(&mem);
    let mut r = remote(&mem);
    bring_up(&mut h, &mut r);
    let first = h.session();
    // Both beat for a while: nobody is gone.
    for t in 0..8u64 {
        assert_eq!(h.keep_alive(t * 200_000), Ok(true));
        assert_eq!(r.keep_alive(t * 200_000), Ok(true));
    }
    // The remote stops; the host notices within a second and a beat.
    let mut gone_at = None;
    for t in 8..30u64 {
        if h.keep_alive(t * 100_000) == Ok(false) {
            gone_at = Some(t * 100_000);
            break;
        }
    }
    let gone_at = gone_at.expect("host never noticed the silent remote");
    assert!(gone_at <= 1_400_000 + 1_000_000, "noticed at {gone_at} us");
    assert_eq!(h.link_state(), LinkState::Waiting);
    assert_eq!(h.session(), first + 1);
    assert_eq!(h.stats().silent_peers, 1);
    // The next remote is taken.
    let mut r2 = remote(&mem);
    bring_up(&mut h, &mut r2);
    // Now the host stops beating: the remote asks for a fresh session.
    for t in 0..30u64 {
        let now = 10_000_000 + t * 100_000;
        if t < 3 {
            assert_eq!(h.keep_alive(now), Ok(true));
        }
        if r2.keep_alive(now) == Ok(false) {
            assert_eq!(r2.link_state(), LinkState::Waiting);
            assert_eq!(r2.stats().silent_peers, 1);
            return;
        }
    }
    panic!("remote never noticed the silent host");
}

/// A name-service record from endpoint 1024 to 53 (`destroy` or create) for `name` at `addr`.
fn ns_record(name: &str, addr: u32, destroy: bool) -> Vec<u8> {
    let mut m = vec![0u8; 40];
    m[..name.len()].copy_from_slice(name.as_bytes());
    m[32..36].copy_from_slice(&addr.to_le_bytes());
    m[36..40].copy_from_slice(&u32::from(destroy).to_le_bytes());
    m
}

/// Issue 12: a destroy of "k" (or "k" announced again elsewhere) written by a remote of
/// ours left the host unbound until the remote restarted. The host takes it as a broken
/// session: a fresh one, the remote attaches and announces again, "k" is bound again.
#[test]
fn a_forged_name_service_record_makes_the_host_rebind() {
    for (case, record) in [
        ("destroy", ns_record("k", 1024, true)),
        ("moved", ns_record("k", 4000, false)),
    ] {
        let mem = HeapRegion::new(SIZE);
        let mut h = host(&mem);
        h.start().unwrap();
        let mut r = remote(&mem);
        let ept = bring_up(&mut h, &mut r);
        r.try_send_to(1024, 53, &record).unwrap();
        assert_eq!(
            h.recv().map(|_| ()),
            Err(Error::Peer(PeerFault::NameServiceConflict)),
            "{case}"
        );
        assert_eq!(h.endpoint(ept).and_then(|e| e.dest()), Some(1024), "{case}");
        assert_eq!(bring_up(&mut h, &mut r), ept, "{case}");
        assert_eq!(h.stats().resets, 1, "{case}");
        h.try_send(ept, b"again").unwrap();
        assert_eq!(echo_one(&mut r).as_deref(), Some(&b"again"[..]), "{case}");
        assert_eq!(
            recv_payload(&mut h).as_deref(),
            Some(&b"again"[..]),
            "{case}"
        );
    }
}

/// A remote that publishes no id (a C OpenAMP node) may destroy its endpoints: taken as
/// written, no new session.
#[test]
fn a_c_remote_may_destroy_its_endpoint() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = c_remote_pair(&mem);
    assert_eq!(h.published_peer_id(), None, "a C remote publishes no id");
    r.try_send_to(1024, 53, &ns_record("k", 1024, true))
        .unwrap();
    assert!(matches!(
        h.recv(),
        Ok(Some(Event::NameServiceDestroy { .. }))
    ));
    assert_eq!(h.endpoint(ept).and_then(|e| e.dest()), None);
    assert_eq!(h.link_state(), LinkState::Up);
    assert_eq!(h.stats().resets, 0);
}

/// What a firmware node sleeps on: the next heartbeat while linked, nothing due before;
/// the peer's heartbeat counts once it moved.
#[test]
fn keep_alive_says_when_it_is_due_and_whether_the_peer_beats() {
    let mem = HeapRegion::new(SIZE);
    let mut h = started_host(&mem);
    assert_eq!(h.next_keep_alive_us(), None, "not linked");
    let mut r = remote(&mem);
    bring_up(&mut h, &mut r);
    assert_eq!(h.keep_alive(1_000), Ok(true));
    assert_eq!(h.next_keep_alive_us(), Some(1_000 + BEAT_PERIOD_US));
    assert!(!h.peer_heartbeat());
    assert_eq!(r.keep_alive(5_000), Ok(true));
    assert_eq!(h.keep_alive(100_000), Ok(true));
    assert!(h.peer_heartbeat());
    // The remote stops: after SILENCE_US the host starts a new session.
    let mut t = 100_000;
    while h.keep_alive(t) == Ok(true) {
        t += BEAT_PERIOD_US;
        assert!(t < 100_000 + SILENCE_US + 2 * BEAT_PERIOD_US, "not noticed");
    }
    assert_eq!(h.link_state(), LinkState::Waiting);
    assert_eq!(h.next_keep_alive_us(), None);
    assert!(!h.peer_heartbeat());
    assert_eq!(h.stats().silent_peers, 1);
}
