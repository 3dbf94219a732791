//! A node shared by two threads through `SharedNode` (critical-section's std impl): one
//! thread receives, the other sends with a timeout, as the firmware's doorbell and shell
//! threads do (waiting outside the critical section, as `rpmsg-app`'s `send_blocking`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use rpmsg_engine::testing::{Bell, BellClock, BellDoorbell, HeapRegion};
use rpmsg_engine::{Clock, Config, Error, Event, Host, SharedNode};

mod common;
use common::{host_over, remote_over, SIZE};

/// Sends from `ept` through the shared node, waiting (outside the critical section, in
/// slices of 1 ms: the doorbell may wake the other thread) up to `timeout_us` for a
/// transmit buffer and for the link.
fn send_timeout<'a>(
    node: &SharedNode<Host<'a, BellDoorbell>>,
    ept: u32,
    data: &[u8],
    clock: &mut BellClock,
    timeout_us: u64,
) -> Result<(), Error> {
    let deadline = clock.now_us().saturating_add(timeout_us);
    loop {
        match node.with(|n| n.try_send(ept, data)) {
            None => return Err(Error::NotReady),
            Some(Err(Error::NoTxBuffer | Error::NotReady)) => {}
            Some(other) => return other,
        }
        let now = clock.now_us();
        if now >= deadline {
            return Err(Error::Timeout);
        }
        clock.wait_until(deadline.min(now + 1_000));
    }
}

#[test]
fn send_timeout_from_one_thread_while_another_receives() {
    let mem = HeapRegion::new(SIZE);
    let (host_bell, remote_bell) = (Bell::new(), Bell::new());
    let node: SharedNode<Host<'_, BellDoorbell>> = SharedNode::new();
    assert_eq!(node.with(|_| ()), None, "empty slot");
    let mut host = host_over(&mem, Config::new(SIZE), 0, remote_bell.clone());
    host.start().unwrap();
    assert!(node.install(host).is_none());

    let done = AtomicBool::new(false);
    let echoes = AtomicU64::new(0);
    thread::scope(|s| {
        // The remote: echo everything.
        s.spawn(|| {
            let mut r = remote_over(&mem, Config::new(SIZE), 1, host_bell.clone());
            let k = 1024;
            let mut clock = BellClock::new(remote_bell.clone());
            let mut buf = [0u8; 496];
            while !done.load(Ordering::Relaxed) {
                match r.recv().unwrap() {
                    Some(Event::Message(rx)) => {
                        let n = rx.read(0, &mut buf).unwrap();
                        r.release_rx(rx).unwrap();
                        r.send(k, &buf[..n], &mut clock, 1_000_000).unwrap();
                    }
                    Some(_) => {}
                    None => clock.wait_until(clock.now_us() + 2_000),
                }
            }
        });
        // The host's "doorbell thread": binds and counts echoes.
        s.spawn(|| {
            let mut clock = BellClock::new(host_bell.clone());
            while !done.load(Ordering::Relaxed) {
                let got = node.with(|h| match h.recv() {
                    Ok(Some(Event::NameServiceCreate { name, addr })) => {
                        h.bind(&name, addr).unwrap();
                        true
                    }
                    Ok(Some(Event::Message(rx))) => {
                        h.release_rx(rx).unwrap();
                        echoes.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    _ => false,
                });
                if got != Some(true) {
                    clock.wait_until(clock.now_us() + 2_000);
                }
            }
        });
        // The host's "shell thread": waits for the binding, then sends 1000 messages.
        let mut clock = BellClock::new(Bell::new());
        let mut ept = None;
        for _ in 0..5000 {
            ept = node
                .with(|h| {
                    h.endpoints()
                        .find(|e| e.dest().is_some())
                        .map(|e| e.local())
                })
                .flatten();
            if ept.is_some() {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        let ept = ept.expect("remote endpoint bound");
        for i in 0..1000u32 {
            send_timeout(&node, ept, &i.to_le_bytes(), &mut clock, 5_000_000).unwrap();
        }
        for _ in 0..5000 {
            if echoes.load(Ordering::Relaxed) == 1000 {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        done.store(true, Ordering::Relaxed);
        assert_eq!(echoes.load(Ordering::Relaxed), 1000);
    });
    // Without a node, or to an unbound endpoint, send_timeout fails rather than waits.
    let host = node.take().unwrap();
    drop(host);
    let mut clock = BellClock::new(Bell::new());
    assert_eq!(
        send_timeout(&node, 1024, b"x", &mut clock, 1000),
        Err(Error::NotReady)
    );
}

#[test]
fn send_timeout_times_out_when_no_remote_ever_consumes() {
    let mem = HeapRegion::new(SIZE);
    let node = SharedNode::new();
    let mut host = host_over(&mem, Config::new(SIZE), 0, Bell::new());
    host.start().unwrap();
    let ept = host.create_endpoint("", None, Some(1024)).unwrap();
    node.install(host);
    let mut clock = BellClock::new(Bell::new());
    // The link never comes up (no remote): NotReady until the deadline, then Timeout.
    let start = clock.now_us();
    assert_eq!(
        send_timeout(&node, ept, b"x", &mut clock, 50_000),
        Err(Error::Timeout)
    );
    assert!(clock.now_us() - start >= 50_000);
}
