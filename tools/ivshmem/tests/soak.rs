//! 1000 connect/disconnect cycles against the real server binary: no fd and
//! no memory growth in the server, and no fd growth in this client process.
//! (Alone in its test binary so /proc/self/fd is not disturbed by other tests.)

mod common;

use std::time::Duration;

use common::*;
use ivshmem::{PeerConnection, PeerEvent};

fn cycle(socket: &std::path::Path, observers: &mut [PeerConnection], n: usize) {
    for _ in 0..n {
        let p = PeerConnection::connect(socket, 4, T).expect("connect");
        let id = p.id();
        drop(p);
        for o in observers.iter_mut() {
            wait_event(o, T, |e| *e == PeerEvent::Disconnected { id });
        }
    }
}

fn self_fds() -> usize {
    fd_count(std::process::id())
}

#[test]
fn thousand_connect_disconnect_cycles_leak_nothing() {
    let dir = TempDir::new("soak");
    let shm = ShmName::new("soak");
    let server = BinServer::start(&dir, &["-M", &shm.0, "-n", "4", "-l", "64K"]);
    let pid = server.pid();
    // Two long-lived peers, so every cycle also exercises broadcasts to
    // several peers and the new peers' "existing peers" messages.
    let mut observers = [
        PeerConnection::connect(&server.socket, 4, T).expect("observer 0"),
        PeerConnection::connect(&server.socket, 4, T).expect("observer 1"),
    ];

    // Warm up (allocator pools, queue capacities), then measure.
    cycle(&server.socket, &mut observers, 100);
    std::thread::sleep(Duration::from_millis(50));
    let (fds0, rss0, own0) = (fd_count(pid), rss_kib(pid), self_fds());
    assert!(fds0 > 0 && rss0 > 0, "cannot read /proc/{pid}");

    cycle(&server.socket, &mut observers, 1000);
    std::thread::sleep(Duration::from_millis(50));
    let (fds1, rss1, own1) = (fd_count(pid), rss_kib(pid), self_fds());
    println!(
        "server fds {fds0} -> {fds1}, VmRSS {rss0} -> {rss1} KiB; client fds {own0} -> {own1}"
    );
    assert_eq!(fds1, fds0, "server fd count changed");
    assert_eq!(own1, own0, "client library leaked fds");
    // A leak of even one small allocation per cycle (a peer record, its
    // queue, 4 eventfd handles) would add well over 100 KiB in 1000 cycles.
    assert!(
        rss1 <= rss0 + 100,
        "server VmRSS grew from {rss0} KiB to {rss1} KiB"
    );
}
