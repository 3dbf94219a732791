//! Interoperability with Debian's QEMU: two `ivshmem-doorbell` devices
//! (vectors=2) attach to our server (`-n 2`); a client sees each QEMU peer
//! with its 2 vectors and sees it leave when that QEMU is killed.
//!
//! Skips (with a clear line) when qemu-system-aarch64 is not installed;
//! CI installs it.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ivshmem::{PeerConnection, PeerEvent, PeerInfo};

const QEMU: &str = "qemu-system-aarch64";
const QEMU_T: Duration = Duration::from_secs(60);

fn qemu_available() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

struct Qemu {
    child: Child,
    log: PathBuf,
}

impl Qemu {
    fn start(dir: &TempDir, name: &str, socket: &Path, kernel: &Path) -> Qemu {
        let log = dir.join(&format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = Command::new(QEMU)
            .args([
                "-machine",
                "virt,gic-version=3",
                "-cpu",
                "cortex-a53",
                "-m",
                "64",
            ])
            .args(["-nographic", "-monitor", "none", "-serial", "null"])
            .arg("-kernel")
            .arg(kernel)
            .args(["-device", "ivshmem-doorbell,vectors=2,chardev=ivshmem"])
            .arg("-chardev")
            .arg(format!("socket,path={},id=ivshmem", socket.display()))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start qemu-system-aarch64");
        Qemu { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with QEMU's output if it has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(st)) = self.child.try_wait() {
            panic!("QEMU exited with {st}:\n{}", self.log());
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our peer connection plus every event it has reported.
struct Watcher {
    conn: PeerConnection,
    seen: Vec<PeerEvent>,
}

/// Waits until `want` has been seen while checking that the QEMUs keep running.
fn expect_event(w: &mut Watcher, qemus: &mut [&mut Qemu], want: PeerEvent) {
    let deadline = Instant::now() + QEMU_T;
    loop {
        let events = w.conn.process_messages().expect("messages");
        w.seen.extend(events);
        if w.seen.contains(&want) {
            return;
        }
        for q in qemus.iter_mut() {
            q.assert_running();
        }
        assert!(Instant::now() < deadline, "timed out waiting for {want:?}");
        poll_in(w.conn.socket_fd(), Duration::from_millis(100));
    }
}

#[test]
fn qemu_doorbell_devices_appear_with_their_vectors_and_leave() {
    if !qemu_available() {
        println!("SKIPPED: {QEMU} not installed (apt-get install qemu-system-arm)");
        return;
    }
    let dir = TempDir::new("qemu");
    let shm = ShmName::new("qemu");
    let mut server = BinServer::start(&dir, &["-v", "-n", "2", "-M", &shm.0, "-l", "1M"]);
    let mut me = Watcher {
        conn: PeerConnection::connect(&server.socket, 2, T).expect("connect"),
        seen: Vec::new(),
    };
    assert_eq!(me.conn.id(), 0);

    // A 4-byte AArch64 image: `b .` (0x14000000), so the guest just spins.
    let kernel = dir.join("spin.bin");
    std::fs::write(&kernel, 0x1400_0000u32.to_le_bytes()).unwrap();

    let mut qa = Qemu::start(&dir, "qemu-a", &server.socket, &kernel);
    expect_event(&mut me, &mut [&mut qa], PeerEvent::Connected { id: 1 });
    expect_event(
        &mut me,
        &mut [&mut qa],
        PeerEvent::VectorAdded { id: 1, vector: 1 },
    );
    // Ringing the QEMU peer's doorbells is accepted (the guest has not
    // enabled MSI-X, so QEMU just clears them).
    me.conn.notify(1, 0).unwrap();
    me.conn.notify(1, 1).unwrap();

    // Our command-line client sees the QEMU peer with both vectors.
    let stdout = client_peers(&server.socket, &["-n", "2"]);
    assert!(
        stdout.contains("own id 2, shm 1048576 bytes, 2 vectors"),
        "{stdout}"
    );
    assert!(
        stdout.contains("peer 0: 2 vectors\npeer 1: 2 vectors"),
        "{stdout}"
    );
    expect_event(&mut me, &mut [&mut qa], PeerEvent::Disconnected { id: 2 });

    // A second QEMU joins; QEMU A gets its eventfds without complaint.
    let mut qb = Qemu::start(&dir, "qemu-b", &server.socket, &kernel);
    expect_event(
        &mut me,
        &mut [&mut qa, &mut qb],
        PeerEvent::VectorAdded { id: 3, vector: 1 },
    );
    assert_eq!(
        me.conn.peers(),
        vec![
            PeerInfo { id: 1, vectors: 2 },
            PeerInfo { id: 3, vectors: 2 }
        ]
    );
    // Without -n it learns the vector count from the server, as QEMU's client.
    let stdout = client_peers(&server.socket, &[]);
    assert!(
        stdout.contains("own id 4, shm 1048576 bytes, 2 vectors\npeer 0: 2 vectors\npeer 1: 2 vectors\npeer 3: 2 vectors"),
        "{stdout}"
    );
    expect_event(
        &mut me,
        &mut [&mut qa, &mut qb],
        PeerEvent::Disconnected { id: 4 },
    );

    // QEMU A is killed: it disappears; QEMU B stays.
    qa.child.kill().unwrap();
    qa.child.wait().unwrap();
    expect_event(&mut me, &mut [&mut qb], PeerEvent::Disconnected { id: 1 });
    thread::sleep(Duration::from_millis(200));
    qb.assert_running();
    assert_eq!(me.conn.peers(), vec![PeerInfo { id: 3, vectors: 2 }]);
    qb.child.kill().unwrap();
    qb.child.wait().unwrap();
    expect_event(&mut me, &mut [], PeerEvent::Disconnected { id: 3 });
    assert!(me.conn.peers().is_empty());

    // QEMU printed nothing: no complaint such as a wrong version or "Too
    // many eventfd received" (which it prints when -n and vectors differ).
    for q in [&qa, &qb] {
        let log = q.log();
        assert!(log.trim().is_empty(), "QEMU said:\n{log}");
    }
    server.signal(libc::SIGTERM);
    let deadline = Instant::now() + T;
    while server.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop");
        thread::sleep(Duration::from_millis(10));
    }
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.child.stderr.take().unwrap(), &mut log).unwrap();
    for needle in [
        "event=peer-connected peer=1 vectors=2",
        "event=peer-connected peer=3 vectors=2",
        "event=peer-disconnected peer=1",
        "event=peer-disconnected peer=3",
    ] {
        assert!(log.contains(needle), "server log lacks {needle}:\n{log}");
    }
    assert!(!server.socket.exists());
    assert!(!shm.path().exists());
}

/// Runs `ivshmem-client -S SOCKET ARGS... peers`; its stdout (it must succeed).
fn client_peers(socket: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(client_bin())
        .arg("-S")
        .arg(socket)
        .args(args)
        .arg("peers")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
