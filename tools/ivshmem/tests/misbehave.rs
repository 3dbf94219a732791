//! Misbehaving clients (write data, never read, close mid-handshake) while two
//! good clients keep exchanging interrupts; a slow reader gets everything in
//! order once it reads.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ivshmem::{PeerConnection, PeerEvent, PeerInfo};

#[test]
fn misbehaving_clients_do_not_disturb_good_ones() {
    // Good peers may lag a bit; the silent one falls far behind.
    let (_dir, _shm, mut server) = in_proc_with("bad", 2, |cfg| cfg.max_backlog = 1024);
    let stats = server.stats.clone();

    let mut a = server.connect(2);
    let mut b = server.connect(2);
    wait_event(&mut a, T, |e| {
        *e == PeerEvent::VectorAdded { id: 1, vector: 1 }
    });

    // Two good peers ping-pong interrupts for the whole test, reading their
    // server messages as good peers do.
    let stop = Arc::new(AtomicBool::new(false));
    let a_events = Arc::new(Mutex::new(Vec::new()));
    let pingpong = {
        let stop = stop.clone();
        let a_events = a_events.clone();
        thread::spawn(move || {
            let mut rounds = 0u32;
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                a.notify(1, 0).expect("a rings b");
                assert!(b.wait_interrupt(Some(T)).unwrap() > 0, "b got no interrupt");
                b.notify(0, 1).expect("b rings a");
                assert!(a.wait_interrupt(Some(T)).unwrap() > 0, "a got no interrupt");
                worst = worst.max(t0.elapsed());
                rounds += 1;
                a_events
                    .lock()
                    .unwrap()
                    .extend(a.process_messages().expect("a messages"));
                b.process_messages().expect("b messages");
                thread::sleep(Duration::from_millis(1));
            }
            (rounds, worst, a, b)
        })
    };

    // 1. A client that writes data: treated as a disconnect (as QEMU's
    //    server does); it sees EOF or a reset.
    let mut writer = raw_connect(&server.socket);
    writer.write_all(b"hello, server").unwrap();
    raw_until_eof(&writer, T);

    // 2. Clients that close mid-handshake: before reading anything, and
    //    after reading part of it.
    for i in 0..60 {
        let s = raw_connect(&server.socket);
        if i % 2 == 1 {
            raw_recv(&s, T);
            raw_recv(&s, T);
        }
        drop(s);
    }

    // 3. A client that never reads while many peers come and go: its
    //    socket fills, its queue hits the bound, it is dropped. Every other
    //    peer's handshake still completes promptly.
    let silent = raw_connect(&server.socket);
    let mut worst_connect = Duration::ZERO;
    for i in 1..=600 {
        let t0 = Instant::now();
        let p = PeerConnection::connect(&server.socket, 2, T).expect("churn peer connects");
        worst_connect = worst_connect.max(t0.elapsed());
        drop(p);
        if i % 50 == 0 {
            // Let the good peers keep up even on a loaded machine, so only
            // the silent one can fall behind by more than the bound.
            wait_until("peer 0 to keep up", T, || {
                let ev = a_events.lock().unwrap();
                ev.iter()
                    .filter(|e| matches!(e, PeerEvent::Disconnected { .. }))
                    .count()
                    >= i
            });
        }
    }
    wait_until("the silent peer to be dropped", T, || {
        stats.dropped_backlog.load(Ordering::Relaxed) >= 1
    });
    // The server closed it: reading now yields what was queued, then EOF.
    let backlog = raw_until_eof(&silent, T);
    assert!(!backlog.is_empty());

    stop.store(true, Ordering::Relaxed);
    let (rounds, worst, mut a, mut b) = pingpong.join().expect("ping-pong thread");
    println!(
        "ping-pong rounds {rounds}, worst round trip {worst:?}, worst connect {worst_connect:?}, \
         max queue {}",
        stats.max_queue_seen.load(Ordering::Relaxed)
    );
    assert!(rounds >= 10, "only {rounds} ping-pong rounds");
    assert!(worst < Duration::from_secs(2), "round trip took {worst:?}");
    assert!(
        worst_connect < Duration::from_secs(2),
        "connect took {worst_connect:?}"
    );
    assert!(stats.max_queue_seen.load(Ordering::Relaxed) <= 1025);

    // Everybody but the two good peers is gone, and they know it.
    let mut events = a_events.lock().unwrap().clone();
    let deadline = Instant::now() + T;
    while a.peers() != vec![PeerInfo { id: 1, vectors: 2 }] {
        assert!(Instant::now() < deadline, "a still sees {:?}", a.peers());
        poll_in(a.socket_fd(), Duration::from_millis(50));
        events.extend(a.process_messages().unwrap());
    }
    let deadline = Instant::now() + T;
    while b.peers() != vec![PeerInfo { id: 0, vectors: 2 }] {
        assert!(Instant::now() < deadline, "b still sees {:?}", b.peers());
        poll_in(b.socket_fd(), Duration::from_millis(50));
        b.process_messages().unwrap();
    }
    let connected = events
        .iter()
        .filter(|e| matches!(e, PeerEvent::Connected { .. }))
        .count();
    let disconnected = events
        .iter()
        .filter(|e| matches!(e, PeerEvent::Disconnected { .. }))
        .count();
    assert_eq!(connected, disconnected, "every peer that came also left");
    assert!(
        connected >= 602,
        "writer + silent + 600 churners, got {connected}"
    );
    assert_eq!(stats.peers.load(Ordering::Relaxed), 2);
    server.shutdown();
}

#[test]
fn slow_reader_gets_everything_in_order() {
    let (_dir, _shm, server) = in_proc_with("slow", 4, |cfg| cfg.max_backlog = 100_000);
    let stats = server.stats.clone();

    let mut slow = server.connect(4);
    let cycles = 250u16;
    for _ in 0..cycles {
        drop(PeerConnection::connect(&server.socket, 4, T).expect("connect"));
    }
    // 250 * (4 + 1) messages cannot all sit in a socket buffer: some waited
    // in the server's queue.
    wait_until("the churn to be processed", T, || {
        stats.disconnected.load(Ordering::Relaxed) == u64::from(cycles)
    });
    assert!(stats.queued_messages.load(Ordering::Relaxed) > 0);
    assert!(stats.max_queue_seen.load(Ordering::Relaxed) > 0);

    // A peer's disconnect may be seen after the next peer's connect, but
    // for each peer the order is fixed: Connected, vectors 0..4, Disconnected.
    let mut per_peer: BTreeMap<u16, Vec<PeerEvent>> = BTreeMap::new();
    let mut gone = 0;
    let deadline = Instant::now() + T;
    while gone < cycles {
        assert!(Instant::now() < deadline, "only {gone} disconnects seen");
        poll_in(slow.socket_fd(), Duration::from_millis(50));
        for e in slow.process_messages().expect("messages") {
            let id = match e {
                PeerEvent::Connected { id }
                | PeerEvent::VectorAdded { id, .. }
                | PeerEvent::Disconnected { id } => id,
                other => panic!("unexpected {other:?}"),
            };
            if matches!(e, PeerEvent::Disconnected { .. }) {
                gone += 1;
            }
            per_peer.entry(id).or_default().push(e);
        }
    }
    assert_eq!(per_peer.len(), usize::from(cycles));
    for (id, events) in per_peer {
        let mut expected = vec![PeerEvent::Connected { id }];
        expected.extend((0..4).map(|vector| PeerEvent::VectorAdded { id, vector }));
        expected.push(PeerEvent::Disconnected { id });
        assert!(events == expected, "peer {id}: {events:?}");
    }
    assert!(slow.peers().is_empty());
}
