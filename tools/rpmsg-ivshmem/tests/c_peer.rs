//! The native peer with a peer that behaves like the OpenAMP C sample
//! (`openamp-system-reference/examples/zephyr/dual_qemu_ivshmem`): it publishes no ivshmem id
//! in the control area, rings "own id - 1" (remote) or "own id + 1" (host), and looks at its
//! rings only when its doorbell rings. Whichever native side connects first sees no other
//! peer when it starts and must learn the C peer's id from the server later.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ivshmem::PeerConnection;
use rpmsg_engine::wire::CONTROL_BLOCK_OFFSET;
use rpmsg_engine::{Config, Doorbell, Event, Host, LinkState, Remote, SharedRegion};

const T: Duration = Duration::from_secs(30);

/// The C sample's doorbell: always "own id - 1", whatever the engine asks for.
struct MinusOne<'c>(&'c PeerConnection);

impl Doorbell for MinusOne<'_> {
    fn ring(&mut self, _peer_id: u16) {
        let _ = self.0.notify(self.0.id().wrapping_sub(1), 0);
    }
}

/// The C sample host's doorbell: always "own id + 1".
struct PlusOne<'c>(&'c PeerConnection);

impl Doorbell for PlusOne<'_> {
    fn ring(&mut self, _peer_id: u16) {
        let _ = self.0.notify(self.0.id().wrapping_add(1), 0);
    }
}

/// Plays the C remote for `count` echoes; returns how many it echoed. Gives up when its
/// doorbell stays silent for `idle`.
fn c_like_remote(socket: &std::path::Path, count: usize, idle: Duration) -> usize {
    let conn = PeerConnection::connect(socket, 1, Duration::from_secs(5)).expect("connect");
    let map = conn.map_shm().expect("map");
    // SAFETY: a live MAP_SHARED mapping of `len()` bytes that outlives the region; only
    // the engine touches it in this process.
    let region = unsafe { SharedRegion::new(map.as_ptr(), map.len()) }.expect("region");
    let mut r =
        Remote::new_remote(region, Config::new(map.len()), None, MinusOne(&conn)).expect("remote");
    let k = r.create_endpoint("k", None, None).expect("endpoint");
    // Like the sample's rpmsg_init_vdev: look at the status byte until DRIVER_OK.
    let deadline = Instant::now() + T;
    while r.link_state() != LinkState::Up {
        assert!(Instant::now() < deadline, "the host never set DRIVER_OK");
        let _ = r.poll();
        std::thread::sleep(Duration::from_millis(1));
    }
    // A C remote writes nothing into our control block: erase the acknowledgement
    // (remote id, session) our engine wrote, as the host initialised it.
    region
        .store_u32(
            CONTROL_BLOCK_OFFSET + 0x28,
            u32::MAX,
            core::sync::atomic::Ordering::Release,
        )
        .unwrap();
    region
        .store_u32(
            CONTROL_BLOCK_OFFSET + 0x2C,
            0,
            core::sync::atomic::Ordering::Release,
        )
        .unwrap();
    let mut echoed = 0;
    let mut buf = vec![0u8; r.max_payload()];
    while echoed < count {
        // Like the sample's event loop: the rings are looked at only when the doorbell rings.
        if conn.wait_interrupt(Some(idle)).unwrap_or(0) == 0 {
            break;
        }
        while let Ok(Some(event)) = r.recv() {
            if let Event::Message(rx) = event {
                let n = rx.read(0, &mut buf).unwrap();
                r.release_rx(rx).unwrap();
                r.try_send(k, &buf[..n]).unwrap();
                echoed += 1;
            }
        }
    }
    echoed
}

#[test]
fn a_c_remote_that_connects_after_the_host_is_rung() {
    let server = TestServer::start();
    let mut host = sample_host(
        &server,
        &["send", "--wait", "20", "RPMsg over IVSHMEM", "10"],
    );
    host.expect_err(0, "waiting for a remote", T);
    let socket = server.socket.clone();
    let remote = std::thread::spawn(move || c_like_remote(&socket, 10, Duration::from_secs(8)));
    let status = host.expect_exit(T);
    let echoed = remote.join().expect("remote thread");
    assert!(status.success(), "{status}\n{}", host.describe());
    assert_eq!(echoed, 10);
    assert_eq!(host.out.text(), host_blocks("RPMsg over IVSHMEM", 10));
}

/// Waits (doorbell-driven, as the C sample) for the next event the host engine reports.
fn next_event<'a>(
    h: &mut Host<'a, PlusOne<'_>>,
    conn: &PeerConnection,
    idle: Duration,
) -> Option<Event<'a>> {
    let deadline = Instant::now() + idle;
    loop {
        if let Ok(Some(event)) = h.recv() {
            return Some(event);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.wait_interrupt(Some(left)).unwrap_or(0) == 0 {
            return None;
        }
    }
}

#[test]
fn a_remote_started_before_a_c_host_rings_it() {
    // Our remote connects first (id 0) and sees nobody; the C-like host connects second
    // (id 1), publishes no id and rings "own id + 1" = 2, which is nobody: our remote finds
    // its messages by looking at the rings when idle, but the host hears only doorbells.
    let (server, remote) = server_with_remote(&[]);
    remote.expect_err(0, "waiting for a host", T);
    let conn = PeerConnection::connect(&server.socket, 1, Duration::from_secs(5)).expect("connect");
    let map = conn.map_shm().expect("map");
    // SAFETY: a live MAP_SHARED mapping of `len()` bytes that outlives the region; only
    // the engine touches it in this process.
    let region = unsafe { SharedRegion::new(map.as_ptr(), map.len()) }.expect("region");
    // No own id: the control area names no host, as with the C sample.
    let mut h = Host::new_host(region, Config::new(map.len()), None, PlusOne(&conn)).expect("host");
    h.start().expect("start");
    let idle = Duration::from_secs(8);
    let ept = match next_event(&mut h, &conn, idle) {
        Some(Event::NameServiceCreate { name, addr }) if name.as_str() == "k" => {
            h.bind(&name, addr).expect("bind")
        }
        other => panic!(
            "no announcement of \"k\" rang the host: {:?}\n{}",
            other.map(|_| ()),
            remote.describe()
        ),
    };
    for i in 0..3 {
        let text = format!("C host message {i}\0");
        h.try_send(ept, text.as_bytes()).expect("send");
        match next_event(&mut h, &conn, idle) {
            Some(Event::Message(rx)) => {
                let mut buf = vec![0u8; rx.len()];
                rx.read(0, &mut buf).unwrap();
                h.release_rx(rx).unwrap();
                assert_eq!(buf, text.as_bytes());
            }
            other => panic!(
                "no echo {i}: {:?}\n{}",
                other.map(|_| ()),
                remote.describe()
            ),
        }
    }
}
