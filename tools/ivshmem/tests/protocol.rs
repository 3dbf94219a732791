//! Server + clients over real Unix sockets: ids, byte-exact message order,
//! vectors, interrupts, disconnects, reconnects, shutdown, files and modes.

mod common;

use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use common::*;
use ivshmem::{Error, PeerConnection, PeerEvent, PeerInfo, Server, ShmBacking};

fn le(v: i64) -> [u8; 8] {
    v.to_le_bytes()
}

/// CMSG_LEN(sizeof(int)), as QEMU's server sends.
fn cmsg_len_one_fd() -> usize {
    // CMSG_LEN(len) = CMSG_ALIGN(sizeof(struct cmsghdr)) + len; the header is a whole
    // number of alignment units on Linux (16 bytes on 64-bit targets).
    std::mem::size_of::<libc::cmsghdr>() + 4
}

/// Expects `value` with no fd.
fn expect_plain(sock: &std::os::unix::net::UnixStream, value: i64) {
    let m = raw_recv(sock, T);
    assert_eq!(m.bytes, le(value), "expected {value} without fd, got {m:?}");
    assert_eq!(m.nfds, 0, "expected no fd with {value}");
}

/// Expects `value` with exactly one fd; returns it.
fn expect_fd(sock: &std::os::unix::net::UnixStream, value: i64) -> std::os::fd::OwnedFd {
    let m = raw_recv(sock, T);
    assert_eq!(m.bytes, le(value), "expected {value} with fd, got {m:?}");
    assert_eq!(m.nfds, 1, "expected exactly one fd with {value}");
    assert_eq!(m.cmsg_len, cmsg_len_one_fd());
    m.fd.expect("fd")
}

/// Expects what a new peer gets first: the protocol version (0), its id, and the shared
/// memory's fd (with -1); returns the fd.
fn expect_greeting(sock: &std::os::unix::net::UnixStream, id: i64) -> std::os::fd::OwnedFd {
    expect_plain(sock, 0);
    expect_plain(sock, id);
    expect_fd(sock, -1)
}

#[test]
fn handshake_and_broadcasts_are_byte_exact() {
    let (_dir, shm, server) = in_proc("exact", 2);

    // Peer 0: version 0, id 0, -1 + shm fd, then its own 2 eventfds.
    let a = raw_connect(&server.socket);
    let a_shm = expect_greeting(&a, 0);
    let st = std::fs::File::from(a_shm.try_clone().unwrap())
        .metadata()
        .unwrap();
    assert!(st.file_type().is_file());
    assert_eq!(st.len(), 1 << 20);
    assert_eq!(fd_target(a_shm.as_fd()), format!("/dev/shm/{}", shm.0));
    assert_eq!(fd_flags(a_shm.as_fd()) & libc::O_ACCMODE, libc::O_RDWR);
    let a_own: Vec<_> = (0..2).map(|_| expect_fd(&a, 0)).collect();
    for fd in &a_own {
        assert_eq!(fd_target(fd.as_fd()), "anon_inode:[eventfd]");
        assert_ne!(fd_flags(fd.as_fd()) & libc::O_NONBLOCK, 0, "EFD_NONBLOCK");
    }
    assert_no_more(&a);

    // Peer 1 with n=2: 0 | 1 | -1+shm | 0+efd | 0+efd | 1+efd | 1+efd (56 bytes, 5 fds).
    let b = raw_connect(&server.socket);
    let _b_shm = expect_greeting(&b, 1);
    let b_sees_a: Vec<_> = (0..2).map(|_| expect_fd(&b, 0)).collect();
    let b_own: Vec<_> = (0..2).map(|_| expect_fd(&b, 1)).collect();
    assert_no_more(&b);
    // Peer 0 hears about peer 1: 1+efd twice.
    let a_sees_b: Vec<_> = (0..2).map(|_| expect_fd(&a, 1)).collect();
    assert_no_more(&a);

    // Same eventfd objects for everybody, counter mode, vector order kept.
    for v in 0..2 {
        eventfd_write(a_sees_b[v].as_fd(), 1);
        eventfd_write(a_sees_b[v].as_fd(), 1);
        assert_eq!(
            eventfd_read(b_own[v].as_fd()),
            2,
            "counter mode, vector {v}"
        );
        assert_eq!(
            eventfd_read(b_own[1 - v].as_fd()),
            0,
            "other vector untouched"
        );
        eventfd_write(b_sees_a[v].as_fd(), 5);
        assert_eq!(eventfd_read(a_own[v].as_fd()), 5);
    }

    // Peer 1 leaves: peer 0 gets `1` without fd, nothing else.
    drop(b);
    expect_plain(&a, 1);
    assert_no_more(&a);

    // Next peer gets id 2 (ids are not reused), and peer 0 gets 2+efd twice.
    let c = raw_connect(&server.socket);
    expect_greeting(&c, 2);
    for _ in 0..2 {
        expect_fd(&c, 0);
    }
    for _ in 0..2 {
        expect_fd(&c, 2);
    }
    assert_no_more(&c);
    for _ in 0..2 {
        expect_fd(&a, 2);
    }
    assert_no_more(&a);
}

#[test]
fn zero_vectors_sends_only_initial_info_and_disconnects() {
    let (_dir, _shm, server) = in_proc("zero", 0);
    let a = raw_connect(&server.socket);
    expect_greeting(&a, 0);
    let b = raw_connect(&server.socket);
    expect_greeting(&b, 1);
    assert_no_more(&b);
    assert_no_more(&a);
    drop(b);
    expect_plain(&a, 1);
}

#[test]
fn library_peers_ids_vectors_interrupts_disconnect_reconnect() {
    let (_dir, _shm, server) = in_proc("lib", 3);
    let mut a = server.connect(3);
    let mut b = server.connect(3);
    let c = server.connect(3);
    assert_eq!((a.id(), b.id(), c.id()), (0, 1, 2));
    assert_eq!(a.shm_size(), 1 << 20);
    assert_eq!(c.own_vectors().len(), 3);
    assert_eq!(
        c.peers(),
        vec![
            PeerInfo { id: 0, vectors: 3 },
            PeerInfo { id: 1, vectors: 3 }
        ]
    );
    let ev = wait_event(&mut a, T, |e| {
        *e == PeerEvent::VectorAdded { id: 2, vector: 2 }
    });
    assert_eq!(
        ev,
        vec![
            PeerEvent::Connected { id: 1 },
            PeerEvent::VectorAdded { id: 1, vector: 0 },
            PeerEvent::VectorAdded { id: 1, vector: 1 },
            PeerEvent::VectorAdded { id: 1, vector: 2 },
            PeerEvent::Connected { id: 2 },
            PeerEvent::VectorAdded { id: 2, vector: 0 },
            PeerEvent::VectorAdded { id: 2, vector: 1 },
            PeerEvent::VectorAdded { id: 2, vector: 2 },
        ]
    );
    wait_event(&mut b, T, |e| {
        *e == PeerEvent::VectorAdded { id: 2, vector: 2 }
    });

    // Interrupts go to exactly the vector rung.
    a.notify(1, 2).unwrap();
    assert_eq!(b.poll_interrupts(Some(T)).unwrap(), vec![0, 0, 1]);
    c.notify(0, 0).unwrap();
    c.notify(0, 0).unwrap();
    assert_eq!(a.wait_interrupt(Some(T)).unwrap(), 2);
    assert_eq!(b.notify_all_vectors(2).unwrap(), 3);
    // Self-notify works too (QEMU allows ringing our own doorbell).
    c.notify(2, 1).unwrap();
    let mut total = 0;
    while total < 4 {
        let got = c.wait_interrupt(Some(T)).unwrap();
        assert!(got > 0, "timed out");
        total += got;
    }
    assert_eq!(total, 4);
    assert_eq!(
        a.wait_interrupt(Some(Duration::from_millis(50))).unwrap(),
        0
    );
    assert_eq!(a.drain_interrupts().unwrap(), 0);

    // Clear errors for unknown peers and vectors.
    assert_eq!(a.notify(9, 0).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(a.notify(1, 3).unwrap_err().kind(), ErrorKind::InvalidInput);

    // Shared memory is shared.
    let ma = a.map_shm().unwrap();
    let mc = c.map_shm().unwrap();
    assert_eq!(ma.len(), 1 << 20);
    ma.write(100, b"ping").unwrap();
    let mut buf = [0u8; 4];
    mc.read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"ping");
    assert!(mc.read((1 << 20) - 2, &mut buf).is_err());

    // Disconnect: both others hear it and drop the fds.
    drop(c);
    wait_event(&mut a, T, |e| *e == PeerEvent::Disconnected { id: 2 });
    wait_event(&mut b, T, |e| *e == PeerEvent::Disconnected { id: 2 });
    assert_eq!(a.peers(), vec![PeerInfo { id: 1, vectors: 3 }]);
    assert_eq!(a.notify(2, 0).unwrap_err().kind(), ErrorKind::NotFound);

    // Reconnect gets a fresh id.
    let d = server.connect(3);
    assert_eq!(d.id(), 3);
    wait_event(&mut a, T, |e| {
        *e == PeerEvent::VectorAdded { id: 3, vector: 2 }
    });
    d.notify(0, 1).unwrap();
    assert_eq!(a.poll_interrupts(Some(T)).unwrap(), vec![0, 1, 0]);
}

#[test]
fn client_library_rejects_wrong_versions_and_times_out() {
    let dir = TempDir::new("badsrv");
    let path = dir.join("sock");
    let listener = UnixListener::bind(&path).unwrap();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s1, _) = listener.accept().unwrap();
        s1.write_all(&1i64.to_le_bytes()).unwrap(); // version 1
        let (mut s2, _) = listener.accept().unwrap();
        s2.write_all(&0i64.to_le_bytes()).unwrap(); // version 0, then silence
        s2.write_all(&0i64.to_le_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        drop((s1, s2));
    });
    match PeerConnection::connect(&path, 1, T) {
        Err(Error::Protocol(m)) => assert!(m.contains("version 1"), "{m}"),
        other => panic!("{other:?}"),
    }
    match PeerConnection::connect(&path, 1, Duration::from_millis(200)) {
        Err(Error::Timeout(_)) => {}
        other => panic!("{other:?}"),
    }
    t.join().unwrap();
    match PeerConnection::connect(&dir.join("nothing"), 1, T) {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), ErrorKind::NotFound),
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_shutdown_closes_peers_like_qemu_and_removes_files() {
    let (_dir, shm, mut server) = in_proc("shut", 1);
    let socks: Vec<_> = (0..3).map(|_| raw_connect(&server.socket)).collect();
    // Drain the handshakes: peer k gets 3 + (k+1) messages, then 1 per later peer.
    for (k, s) in socks.iter().enumerate() {
        for _ in 0..(3 + (k + 1) + (2 - k)) {
            raw_recv(s, T);
        }
        assert_no_more(s);
    }
    assert!(shm.path().exists());
    server.shutdown();
    // The first peer gets only EOF; later ones hear about earlier ones first.
    let got: Vec<Vec<i64>> = socks
        .iter()
        .map(|s| raw_until_eof(s, T).iter().map(|m| m.value()).collect())
        .collect();
    assert_eq!(got, vec![vec![], vec![0], vec![0, 1]]);
    assert!(!server.socket.exists(), "socket removed");
    assert!(!shm.path().exists(), "shm removed");
}

#[test]
fn keep_shm_reuses_contents_and_rounds_size_up() {
    let dir = TempDir::new("keep");
    let shm = ShmName::new("keep");
    let mut cfg = config(&dir, &shm, 1);
    cfg.keep_shm = true;
    cfg.shm_size = 1_536_000; // 1500K -> 2M, as QEMU's server
    let mut server = InProc::start(cfg.clone());
    let p = server.connect(1);
    assert_eq!(p.shm_size(), 2 << 20);
    p.map_shm().unwrap().write(4096, b"kept").unwrap();
    drop(p);
    server.shutdown();
    assert!(shm.path().exists(), "--keep-shm keeps the object");
    assert_eq!(std::fs::metadata(shm.path()).unwrap().len(), 2 << 20);

    cfg.keep_shm = false;
    let mut server = InProc::start(cfg);
    let p = server.connect(1);
    let mut buf = [0u8; 4];
    p.map_shm().unwrap().read(4096, &mut buf).unwrap();
    assert_eq!(&buf, b"kept", "existing object and contents are reused");
    drop(p);
    server.shutdown();
    assert!(!shm.path().exists());
}

#[test]
fn shm_dir_backing_is_an_unlinked_file() {
    let dir = TempDir::new("mdir");
    let shmdir = TempDir::new("mdir-shm");
    let shm = ShmName::new("unused");
    let mut cfg = config(&dir, &shm, 1);
    cfg.shm = ShmBacking::Directory(shmdir.path().to_path_buf());
    let server = InProc::start(cfg);
    let p = server.connect(1);
    let target = fd_target(p.shm_fd());
    assert!(
        target.starts_with(&format!("{}/ivshmem.", shmdir.path().display()))
            && target.ends_with(" (deleted)"),
        "{target}"
    );
    assert_eq!(std::fs::read_dir(shmdir.path()).unwrap().count(), 0);
    assert!(!shm.path().exists());
}

#[test]
fn default_modes_are_owner_only_and_configurable() {
    let (_dir, shm, server) = in_proc("mode", 1);
    assert_eq!(mode_of(&server.socket), 0o600);
    assert_eq!(mode_of(&shm.path()), 0o600);
    drop(server);

    let dir = TempDir::new("mode2");
    let shm = ShmName::new("mode2");
    let mut cfg = config(&dir, &shm, 1);
    cfg.socket_mode = 0o660;
    cfg.shm_mode = 0o640;
    let root = rustix::process::geteuid().is_root();
    if root {
        cfg.group = Some(4242);
        cfg.owner = Some(4343);
    } else {
        println!("not root: owner/group change not tested (CI runs as root)");
    }
    let server = InProc::start(cfg);
    assert_eq!(mode_of(&server.socket), 0o660);
    assert_eq!(mode_of(&shm.path()), 0o640);
    for p in [server.socket.clone(), shm.path()].iter().filter(|_| root) {
        let md = std::fs::symlink_metadata(p).unwrap();
        assert_eq!((md.uid(), md.gid()), (4343, 4242), "{}", p.display());
    }
}

#[test]
fn stale_socket_is_replaced_live_server_is_refused() {
    let dir = TempDir::new("stale");
    let shm = ShmName::new("stale");
    let path = dir.join("sock");
    // A socket file with nobody listening, as a crashed server leaves it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = InProc::start(config(&dir, &shm, 1));
    let p = server.connect(1);
    assert_eq!(p.id(), 0);

    // A second server on the same path: clear error, and it touches nothing
    // (not even its own shm name).
    let shm2 = ShmName::new("stale2");
    let err = Server::new(config(&dir, &shm2, 1)).unwrap_err().to_string();
    assert!(err.contains("already listening"), "{err}");
    assert!(!shm2.path().exists());
    assert!(path.exists());
    // The probe connection was a short-lived peer; the real one is unharmed.
    let q = server.connect(1);
    assert!(q.peers().iter().any(|i| i.id == 0));

    // Not a socket: refused, not deleted.
    let dir2 = TempDir::new("notsock");
    std::fs::write(dir2.join("sock"), b"x").unwrap();
    let err = Server::new(config(&dir2, &shm2, 1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a socket"), "{err}");
    assert!(dir2.join("sock").exists());
}

#[test]
fn invalid_configs_are_refused() {
    let dir = TempDir::new("inval");
    let shm = ShmName::new("inval");
    let mut cfg = config(&dir, &shm, 65);
    assert!(Server::new(cfg.clone()).is_err());
    cfg.vectors = 1;
    cfg.shm_size = 0;
    assert!(Server::new(cfg.clone()).is_err());
    cfg.shm_size = 4096;
    cfg.socket_path = dir.join(&"x".repeat(120));
    assert!(Server::new(cfg).is_err());
    assert!(!shm.path().exists(), "nothing left behind");
}
