//! Host and remote engines over one in-memory region, in two threads: the remote echoes,
//! the host checks every echo for sequence and content.

use std::thread;
use std::time::Duration;

use rpmsg_engine::testing::{Bell, BellClock, HeapRegion};
use rpmsg_engine::{Clock, Config, Error, Event, LinkState};

mod common;
use common::{host_over, remote_over};

const HOST_ID: u16 = 7;
const REMOTE_ID: u16 = 9;
const REGION: usize = 64 * 1024;

/// Payload for sequence number `seq`: 1..=496 bytes, the seq in the first 8 (when they fit)
/// and a pattern derived from it after.
fn payload(seq: u64, out: &mut [u8; 496]) -> usize {
    let len = 1 + (seq.wrapping_mul(2_654_435_761) % 496) as usize;
    for (i, b) in out[..len].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    let s = seq.to_le_bytes();
    let n = len.min(8);
    out[..n].copy_from_slice(&s[..n]);
    len
}

fn config() -> Config {
    Config::new(REGION)
}

fn run_remote(region: &HeapRegion, own: Bell, peer: Bell, messages: u64) -> (u64, u32) {
    let mut remote = remote_over(region, config(), REMOTE_ID, peer);
    let mut clock = BellClock::new(own);
    let ept = 1024;
    let mut echoed = 0u64;
    let mut scratch = [0u8; 496];
    let mut pending = None;
    let deadline = clock.now_us() + 120_000_000;
    while echoed < messages {
        assert!(
            clock.now_us() < deadline,
            "remote stuck after {echoed} echoes"
        );
        if pending.is_none() {
            match remote.recv().unwrap() {
                Some(Event::Message(rx)) => pending = Some(rx),
                Some(other) => panic!("remote got {other:?}"),
                None => {
                    clock.wait_until(clock.now_us() + 5_000);
                    continue;
                }
            }
        }
        let Some(rx) = pending.take() else { continue };
        match remote.get_tx_buffer() {
            Ok(mut tx) => {
                let n = rx.read(0, &mut scratch).unwrap();
                assert_eq!(n, rx.len());
                tx.write(0, &scratch[..n]).unwrap();
                remote.send_nocopy(ept, tx, n).unwrap();
                remote.release_rx(rx).unwrap();
                echoed += 1;
            }
            Err(Error::NoTxBuffer) => {
                pending = Some(rx);
                clock.wait_until(clock.now_us() + 5_000);
            }
            Err(e) => panic!("remote tx: {e}"),
        }
    }
    assert_eq!(remote.endpoint(ept).unwrap().dest(), Some(1024));
    (echoed, remote.counters().total())
}

fn run_host(region: &HeapRegion, own: Bell, peer: Bell, messages: u64, window: u64) -> u32 {
    let mut host = host_over(region, config(), HOST_ID, peer);
    host.start().unwrap();
    let mut clock = BellClock::new(own);
    // Name service: the remote's "k" must be announced and bound.
    let deadline = clock.now_us() + 10_000_000;
    let ept = loop {
        assert!(clock.now_us() < deadline, "no name-service announcement");
        match host.recv().unwrap() {
            Some(Event::NameServiceCreate { name, addr }) => {
                assert_eq!(name.as_str(), "k");
                assert_eq!(addr, 1024);
                break host.bind(&name, addr).unwrap();
            }
            Some(other) => panic!("host got {other:?} before the announcement"),
            None => clock.wait_until(clock.now_us() + 5_000),
        }
    };
    assert_eq!(host.link_state(), LinkState::Up);
    assert_eq!(host.peer_id(), Some(REMOTE_ID));
    let (mut sent, mut received) = (0u64, 0u64);
    let mut expect = [0u8; 496];
    let mut got = [0u8; 496];
    let deadline = clock.now_us() + 120_000_000;
    while received < messages {
        assert!(clock.now_us() < deadline, "host stuck at {received}/{sent}");
        let mut progressed = false;
        while sent < messages && sent - received < window {
            let len = payload(sent, &mut expect);
            match host.try_send(ept, &expect[..len]) {
                Ok(()) => {
                    sent += 1;
                    progressed = true;
                }
                Err(Error::NoTxBuffer) => break,
                Err(e) => panic!("host send: {e}"),
            }
        }
        while let Some(event) = host.recv().unwrap() {
            let Event::Message(rx) = event else {
                panic!("unexpected {event:?}")
            };
            assert_eq!(rx.dst(), ept);
            assert_eq!(rx.src(), 1024);
            let len = payload(received, &mut expect);
            assert_eq!(rx.len(), len, "length of echo {received}");
            let n = rx.read(0, &mut got).unwrap();
            assert_eq!(&got[..n], &expect[..len], "content of echo {received}");
            host.release_rx(rx).unwrap();
            received += 1;
            progressed = true;
        }
        if !progressed {
            clock.wait_until(clock.now_us() + 5_000);
        }
    }
    assert_eq!(
        host.stats().rx_messages,
        messages + 1,
        "echoes plus one announcement"
    );
    host.counters().total()
}

fn echo(messages: u64, window: u64) {
    let region = HeapRegion::new(REGION);
    let (host_bell, remote_bell) = (Bell::new(), Bell::new());
    thread::scope(|s| {
        let r = s.spawn(|| run_remote(&region, remote_bell.clone(), host_bell.clone(), messages));
        // Start the host a little later: the remote must wait for DRIVER_OK.
        thread::sleep(Duration::from_millis(20));
        let host_errors = run_host(
            &region,
            host_bell.clone(),
            remote_bell.clone(),
            messages,
            window,
        );
        let (echoed, remote_errors) = r.join().unwrap();
        assert_eq!(echoed, messages);
        assert_eq!(host_errors, 0);
        assert_eq!(remote_errors, 0);
    });
}

#[test]
fn echo_100k_messages_of_varied_length() {
    let n = if cfg!(miri) { 50 } else { 100_000 };
    echo(n, 8);
}

#[test]
fn echo_one_at_a_time() {
    echo(if cfg!(miri) { 10 } else { 2_000 }, 1);
}

#[test]
fn echo_with_more_in_flight_than_buffers() {
    // The window exceeds the 16 buffers per direction: sends must wait for buffers.
    echo(if cfg!(miri) { 40 } else { 20_000 }, 40);
}
