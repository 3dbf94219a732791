//! Polling (`busy_poll` / `prepare_to_wait` / `has_pending`), deferred doorbells
//! (`defer_doorbells` / `flush_doorbell`) and the word-wise copies: fewer doorbells, the
//! standard virtio flags in shared memory, and no lost wake-up — stepped in one thread, and
//! in two threads that block on real (in-process) doorbells.

use core::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use rpmsg_engine::layout::QueueId;
use rpmsg_engine::rpmsg::Role;
use rpmsg_engine::testing::{Bell, BellDoorbell, HeapRegion};
use rpmsg_engine::wire::{VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY};
use rpmsg_engine::{Config, Event, Layout, Rpmsg};

mod common;
use common::*;

fn flags(mem: &HeapRegion) -> (u16, u16) {
    let layout = Layout::new(&Config::new(SIZE)).unwrap();
    let region = mem.region();
    // The host's receive ring (vring 0): its avail flags; the remote's (vring 1): used flags.
    let host_rx = region
        .load_u16(layout.ring(QueueId::RemoteToHost).avail, Relaxed)
        .unwrap();
    let remote_rx = region
        .load_u16(layout.ring(QueueId::HostToRemote).used, Relaxed)
        .unwrap();
    (host_rx, remote_rx)
}

#[test]
fn polling_sides_ring_nobody_and_use_the_standard_flags() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    assert_eq!(flags(&mem), (0, 0), "not polling: both want doorbells");
    h.busy_poll().unwrap();
    r.busy_poll().unwrap();
    assert_eq!(
        flags(&mem),
        (VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY),
        "what an OpenAMP C peer checks before it kicks"
    );
    let (h0, r0) = (h.doorbell().rung, r.doorbell().rung);
    for i in 0..100u32 {
        assert!(!r.has_pending());
        h.try_send(ept, &i.to_le_bytes()).unwrap();
        assert!(r.has_pending());
        assert!(!h.has_pending());
        assert!(echo_one(&mut r).is_some());
        assert!(h.has_pending());
        assert_eq!(recv_payload(&mut h), Some(i.to_le_bytes().to_vec()));
    }
    assert_eq!(h.doorbell().rung, h0, "the host rang a polling remote");
    assert_eq!(r.doorbell().rung, r0, "the remote rang a polling host");
    // Back to waiting: flags clear, and every message rings again.
    assert!(!h.prepare_to_wait().unwrap());
    assert!(!r.prepare_to_wait().unwrap());
    assert_eq!(flags(&mem), (0, 0));
    h.try_send(ept, b"x").unwrap();
    assert_eq!(h.doorbell().rung, h0 + 1);
    assert!(echo_one(&mut r).is_some());
    assert_eq!(r.doorbell().rung, r0 + 1);
}

#[test]
fn prepare_to_wait_reports_what_arrived_while_polling() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    r.busy_poll().unwrap();
    let before = h.doorbell().rung;
    h.try_send(ept, b"quiet").unwrap();
    assert_eq!(h.doorbell().rung, before, "the remote polls: no doorbell");
    // The remote stops polling after the message was published: it must not block.
    assert!(r.prepare_to_wait().unwrap());
    assert!(echo_one(&mut r).is_some());
    assert!(!r.prepare_to_wait().unwrap(), "nothing left");
}

#[test]
fn a_polling_sender_out_of_buffers_is_woken_only_once_it_waits() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    h.busy_poll().unwrap();
    assert_eq!(exhaust_tx(&mut h, ept), 16);
    assert!(!h.has_pending());
    let before = r.doorbell().rung;
    consume_one(&mut r);
    assert_eq!(r.doorbell().rung, before, "the host polls: no doorbell");
    assert!(h.has_pending(), "a buffer came back");
    // Not polling any more, still without a buffer: the next return rings.
    assert!(h.prepare_to_wait().unwrap(), "one is back already");
    h.try_send(ept, b"x").unwrap();
    assert!(h.try_send(ept, b"y").is_err());
    assert!(!h.prepare_to_wait().unwrap());
    consume_one(&mut r);
    assert_eq!(r.doorbell().rung, before + 1, "the waiting host is woken");
}

#[test]
fn deferred_doorbells_ring_once_per_batch() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    let before = h.doorbell().rung;
    h.defer_doorbells();
    for i in 0..10u8 {
        h.try_send(ept, &[i]).unwrap();
    }
    // The first message rang the waiting remote at once; the rest were held back.
    assert_eq!(h.doorbell().rung, before + 1);
    // The remote took the first and waits again before the flush: the flush rings it.
    assert!(echo_one(&mut r).is_some());
    assert!(r.prepare_to_wait().unwrap(), "nine more are waiting");
    h.flush_doorbell().unwrap();
    assert_eq!(h.doorbell().rung, before + 2);
    // Nothing held back: a flush rings nobody.
    h.flush_doorbell().unwrap();
    assert_eq!(h.doorbell().rung, before + 2);
    // Not deferring any more: each send rings.
    h.try_send(ept, b"x").unwrap();
    assert_eq!(h.doorbell().rung, before + 3);
    // A polling remote is not rung by a flush.
    r.busy_poll().unwrap();
    h.defer_doorbells();
    h.try_send(ept, b"y").unwrap();
    h.try_send(ept, b"z").unwrap();
    h.flush_doorbell().unwrap();
    assert_eq!(h.doorbell().rung, before + 3);
}

#[test]
fn a_long_batch_checks_every_queue_size_operations() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, ept) = linked(&mem);
    h.busy_poll().unwrap();
    r.defer_doorbells();
    let before = r.doorbell().rung;
    // 40 round trips without a flush on the remote's side; the host waits (not polling)
    // from the start, so a check rings it: the first operation, then every 16 held back.
    assert!(!h.prepare_to_wait().unwrap());
    let mut got = 0;
    for i in 0..40u8 {
        h.try_send(ept, &[i]).unwrap();
        assert!(echo_one(&mut r).is_some());
        if recv_payload(&mut h).is_some() {
            got += 1;
        }
    }
    assert_eq!(got, 40);
    let rung = r.doorbell().rung - before;
    assert!(
        (3..=6).contains(&rung),
        "{rung} doorbells for 80 held-back operations"
    );
}

#[test]
fn a_host_restart_resets_the_remote_flags() {
    let mem = HeapRegion::new(SIZE);
    let (mut h, mut r, _) = linked(&mem);
    r.busy_poll().unwrap();
    h.busy_poll().unwrap();
    // The host restarts its session; the remote is still polling when it re-attaches.
    h.start().unwrap();
    let ept = bring_up(&mut h, &mut r);
    assert_eq!(
        flags(&mem),
        (VRING_AVAIL_F_NO_INTERRUPT, VRING_USED_F_NO_NOTIFY),
        "both still polling in the new session"
    );
    assert!(!r.prepare_to_wait().unwrap());
    let before = h.doorbell().rung;
    h.try_send(ept, b"new").unwrap();
    assert_eq!(h.doorbell().rung, before + 1, "the waiting remote is rung");
}

/// How long a blocked side may wait before its wake-up counts as lost.
const STALL: Duration = Duration::from_millis(500);

/// The idle step of the documented loop: spin a little (yield), then stop polling and
/// block on the doorbell unless something arrived meanwhile.
struct Idler {
    who: &'static str,
    bell: Bell,
    /// Every how many idle steps to block (the others yield).
    every: u32,
    spins: u32,
    blocked: u64,
}

impl Idler {
    fn new(who: &'static str, bell: Bell, every: u32) -> Self {
        Self {
            who,
            bell,
            every,
            spins: 0,
            blocked: 0,
        }
    }

    /// One idle step of `node`; `progress` (messages handled so far) names a lost wake-up.
    fn step<'a, T: Role<'a>>(&mut self, node: &mut Rpmsg<'a, T, BellDoorbell>, progress: u64) {
        self.spins += 1;
        if self.spins % self.every != 0 {
            thread::yield_now();
            return;
        }
        node.flush_doorbell().unwrap();
        if !node.prepare_to_wait().unwrap() {
            self.blocked += 1;
            let t = Instant::now();
            self.bell.wait(STALL);
            let who = self.who;
            assert!(t.elapsed() < STALL, "{who}: lost wake-up after {progress}");
        }
        node.busy_poll().unwrap();
        node.defer_doorbells();
    }
}

/// Both sides in threads, each running the documented loop: handle everything, spin a
/// little, stop polling, block on the doorbell. A lost wake-up shows as a wait that runs
/// into its (long) timeout.
#[test]
fn no_lost_wakeup_between_two_polling_threads() {
    const MESSAGES: u64 = 20_000;
    let mem = HeapRegion::new(SIZE);
    let (host_bell, remote_bell) = (Bell::new(), Bell::new());
    let mut h = host_over(&mem, Config::new(SIZE), HOST_ID, remote_bell.clone());
    let mut r = remote_over(&mem, Config::new(SIZE), REMOTE_ID, host_bell.clone());
    h.start().unwrap();
    let ept = bring_up(&mut h, &mut r);
    thread::scope(|s| {
        let remote = s.spawn(move || {
            let mut echoed = 0u64;
            let mut idle = Idler::new("remote", remote_bell, 4);
            let mut buf = [0u8; 496];
            while echoed < MESSAGES {
                let mut did = false;
                while let Some(Event::Message(rx)) = r.recv().unwrap() {
                    let n = rx.read(0, &mut buf).unwrap();
                    r.release_rx(rx).unwrap();
                    while r.try_send(1024, &buf[..n]).is_err() {
                        thread::yield_now();
                        let _ = r.poll();
                    }
                    echoed += 1;
                    did = true;
                }
                if !did && !r.has_pending() {
                    idle.step(&mut r, echoed);
                }
            }
            r.flush_doorbell().unwrap();
            idle.blocked
        });
        let mut sent = 0u64;
        let mut got = 0u64;
        let mut idle = Idler::new("host", host_bell, 3);
        let mut buf = [0u8; 496];
        while got < MESSAGES {
            let mut did = false;
            // Up to 8 in flight, with 1..496-byte payloads carrying their number.
            while sent < MESSAGES && sent - got < 8 {
                let len = 8 + (sent as usize * 31) % 488;
                buf[..8].copy_from_slice(&sent.to_le_bytes());
                if h.try_send(ept, &buf[..len]).is_err() {
                    break;
                }
                sent += 1;
                did = true;
            }
            while let Some(Event::Message(rx)) = h.recv().unwrap() {
                let mut echo = [0u8; 496];
                let n = rx.read(0, &mut echo).unwrap();
                h.release_rx(rx).unwrap();
                assert_eq!(n, 8 + (got as usize * 31) % 488);
                assert_eq!(echo[..8], got.to_le_bytes());
                got += 1;
                did = true;
            }
            if !did && !h.has_pending() {
                idle.step(&mut h, got);
            }
        }
        let remote_blocked = remote.join().unwrap();
        eprintln!("blocked: host {}, remote {remote_blocked}", idle.blocked);
        assert!(idle.blocked + remote_blocked > 0, "the test never blocked");
    });
}

#[test]
fn word_copies_at_every_alignment() {
    let mem = HeapRegion::new(256);
    let region = mem.region();
    let pattern: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(5))
        .collect();
    for offset in 0..17 {
        for len in 0..41 {
            region.zero(0, 256).unwrap();
            region.write_bytes(offset, &pattern[..len]).unwrap();
            let mut all = [0u8; 80];
            region.read_bytes(0, &mut all).unwrap();
            for (i, b) in all.iter().enumerate() {
                let want = if (offset..offset + len).contains(&i) {
                    pattern[i - offset]
                } else {
                    0
                };
                assert_eq!(*b, want, "offset {offset} len {len} byte {i}");
            }
            let mut back = vec![0u8; len];
            region.read_bytes(offset, &mut back).unwrap();
            assert_eq!(back, &pattern[..len], "offset {offset} len {len}");
        }
    }
    // Out of bounds: refused whole, nothing written.
    region.zero(0, 256).unwrap();
    assert!(region.write_bytes(250, &[1; 7]).is_err());
    assert!(region.write_bytes(usize::MAX, &[1]).is_err());
    let mut b = [0u8; 7];
    assert!(region.read_bytes(250, &mut b).is_err());
    let mut all = [0u8; 256];
    region.read_bytes(0, &mut all).unwrap();
    assert!(all.iter().all(|b| *b == 0));
    assert!(region.write_bytes(256, &[]).is_ok());
}
