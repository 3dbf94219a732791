//! The native host with a remote that behaves like the OpenAMP C sample
//! (`openamp-system-reference/examples/zephyr/dual_qemu_ivshmem`, remote image): it publishes
//! no ivshmem id in the control area, rings "own id - 1", and looks at its rings only when
//! its doorbell rings. The sample needs the host to connect to the server first, so the
//! host sees no other peer when it starts and must learn the remote's id later.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ivshmem::PeerConnection;
use rpmsg_engine::wire::CONTROL_BLOCK_OFFSET;
use rpmsg_engine::{Config, Doorbell, Event, LinkState, Remote, SharedRegion};

const T: Duration = Duration::from_secs(30);

/// The C sample's doorbell: always "own id - 1", whatever the engine asks for.
struct MinusOne<'c>(&'c PeerConnection);

impl Doorbell for MinusOne<'_> {
    fn ring(&mut self, _peer_id: u16) {
        let _ = self.0.notify(self.0.id().wrapping_sub(1), 0);
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
    let mut host = Proc::spawn(&[
        "-S",
        server.sock(),
        "--board",
        "qemu_cortex_a53",
        "host",
        "send",
        "--wait",
        "20",
        "RPMsg over IVSHMEM",
        "10",
    ]);
    assert!(
        host.err.wait_for("waiting for a remote", T),
        "{}",
        host.describe()
    );
    let socket = server.socket.clone();
    let remote = std::thread::spawn(move || c_like_remote(&socket, 10, Duration::from_secs(8)));
    let status = host.expect_exit(T);
    let echoed = remote.join().expect("remote thread");
    assert!(status.success(), "{status}\n{}", host.describe());
    assert_eq!(echoed, 10);
    assert_eq!(host.out.text(), host_blocks("RPMsg over IVSHMEM", 10));
}
