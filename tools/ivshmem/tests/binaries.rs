//! The real `ivshmem-server` and `ivshmem-client` binaries: options, signals,
//! daemon mode, pid file, logging, and the client's command modes.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ivshmem::{PeerConnection, PeerEvent};

fn wait_exit(server: &mut BinServer) -> std::process::ExitStatus {
    let deadline = Instant::now() + T;
    loop {
        if let Some(st) = server.child.try_wait().expect("wait") {
            return st;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

fn stderr_of(server: &mut BinServer) -> String {
    let mut s = String::new();
    if let Some(mut e) = server.child.stderr.take() {
        e.read_to_string(&mut s).unwrap();
    }
    s
}

fn run_server(args: &[&str]) -> Output {
    Command::new(server_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ivshmem-server")
}

#[test]
fn server_options_help_and_errors() {
    let out = run_server(&["-h"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "-F",
        "-v",
        "-p",
        "-S",
        "-M",
        "-m",
        "-l",
        "-n",
        "-h",
        "power of two",
    ] {
        assert!(help.contains(opt), "help lacks {opt}");
    }
    for args in [&["--help"][..], &["-V"], &["--version"]] {
        let out = run_server(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty() && out.stderr.is_empty(), "{args:?}");
    }
    assert!(text(&run_server(&["-V"]).stdout).starts_with("ivshmem-server "));
    for (args, msg) in [
        (&["-x"][..], "unexpected argument '-x'"),
        (&["--nope"], "unexpected argument '--nope'"),
        (&["-v"], "cannot use verbose in daemon mode"),
        (&["-F", "-n", "65"], "too many requested vectors"),
        (&["-F", "-n", "2 "], "cannot parse n_vectors"),
        (&["-F", "-l", "4Q"], "invalid size"),
        (&["-F", "-l", "1M "], "invalid size '1M '"),
        (&["-F", "--size=1M "], "invalid size '1M '"),
        (&["-F", "-l", "1E"], "larger than this machine's memory"),
        (&["-F", "-S"], "a value is required"),
        (&["-F", "extra"], "unexpected argument 'extra'"),
    ] {
        let out = run_server(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

#[test]
fn sigterm_shuts_down_cleanly_and_quietly() {
    let dir = TempDir::new("term");
    let shm = ShmName::new("term");
    let pid_file = dir.join("pid");
    let pid_arg = pid_file.to_str().unwrap().to_string();
    let mut server = BinServer::start(&dir, &["-M", &shm.0, "-n", "2", "-p", &pid_arg]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(pid.trim(), server.pid().to_string());
    assert_eq!(mode_of(&server.socket), 0o600);
    assert_eq!(mode_of(&shm.path()), 0o600);

    let mut a = PeerConnection::connect(&server.socket, 2, T).unwrap();
    let b = PeerConnection::connect(&server.socket, 2, T).unwrap();
    drop(b);
    wait_event(&mut a, T, |e| *e == PeerEvent::Disconnected { id: 1 });
    server.signal(libc::SIGTERM);
    assert!(wait_exit(&mut server).success());
    wait_event(&mut a, T, |e| *e == PeerEvent::ServerClosed);
    assert!(!server.socket.exists(), "socket removed");
    assert!(!shm.path().exists(), "shm removed");
    assert!(!pid_file.exists(), "pid file removed");
    // Quiet by default: nothing on stderr when all is well.
    assert_eq!(stderr_of(&mut server), "");
}

#[test]
fn sigint_with_keep_shm_and_verbose_log() {
    let dir = TempDir::new("int");
    let shm = ShmName::new("int");
    let mut server = BinServer::start(&dir, &["-v", "-M", &shm.0, "--keep-shm", "-l", "1500K"]);
    let p = PeerConnection::connect(&server.socket, 1, T).unwrap();
    assert_eq!(p.shm_size(), 2 << 20);
    drop(p);
    thread::sleep(Duration::from_millis(100));
    server.signal(libc::SIGINT);
    assert!(wait_exit(&mut server).success());
    assert!(!server.socket.exists());
    assert!(shm.path().exists(), "--keep-shm");
    let log = stderr_of(&mut server);
    for needle in [
        "level=warn event=shm-size-rounded requested=1536000 size=2097152",
        "event=listening",
        "event=peer-connected peer=0 vectors=1 peers=1",
        "event=peer-disconnected peer=0",
        "event=shutdown",
    ] {
        assert!(log.contains(needle), "log lacks {needle:?}:\n{log}");
    }
    assert!(log.lines().all(|l| l.starts_with("ts=")), "{log}");
}

#[test]
fn second_server_on_live_socket_is_refused_stale_one_replaced() {
    let dir = TempDir::new("live");
    let shm = ShmName::new("live");
    let server = BinServer::start(&dir, &["-M", &shm.0]);
    let shm2 = ShmName::new("live2");
    let sock = server.socket.to_str().unwrap().to_string();
    let out = run_server(&["-F", "-S", &sock, "-M", &shm2.0]);
    assert_failed(&out, "another server is already listening");
    assert!(!shm2.path().exists());
    // kill -9 leaves the socket file behind; the next server replaces it.
    drop(server);
    assert!(dir.join("sock").exists(), "SIGKILL leaves the socket file");
    let _server = BinServer::start(&dir, &["-M", &shm.0]);
    PeerConnection::connect(&dir.join("sock"), 1, T).expect("new server works");
}

/// Runs the server in daemon mode on `dir`/sock, with the pid file `dir`/pid, through
/// `sh -c "<shell> exec server ..."`; asserts that the command succeeded (it returns when
/// the daemon is ready) and returns the daemon's pid from the pid file.
fn start_daemon(shell: &str, dir: &TempDir, shm: &ShmName) -> u32 {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{shell} exec \"$0\" \"$@\""))
        .arg(server_bin())
        .arg("-S")
        .arg(dir.join("sock"))
        .args(["-M", &shm.0, "-p"])
        .arg(dir.join("pid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run daemon");
    assert!(status.success(), "{status}");
    let pid = std::fs::read_to_string(dir.join("pid")).unwrap();
    pid.trim().parse().unwrap()
}

#[test]
fn daemon_mode_returns_when_ready_and_writes_pid_file() {
    let dir = TempDir::new("daemon");
    let shm = ShmName::new("daemon");
    let (pid_file, sock) = (dir.join("pid"), dir.join("sock"));
    let pid = start_daemon("", &dir, &shm);
    // Ready as soon as the command returned: no sleep needed before QEMU starts.
    assert!(is_listening(&sock));
    let p = PeerConnection::connect(&sock, 1, T).unwrap();
    assert_eq!(p.id(), 0);
    // The daemon is in its own session.
    let sid = rustix::process::getsid(rustix::process::Pid::from_raw(pid as i32));
    assert_eq!(sid.map(|s| s.as_raw_nonzero().get()), Ok(pid as i32));
    send_signal(pid, libc::SIGTERM);
    wait_until("daemon to exit", T, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
    });
    assert!(!sock.exists());
    assert!(!shm.path().exists());
    assert!(!pid_file.exists());
}

// ---- ivshmem-client ----

/// Runs `ivshmem-client -S sock args` with nothing on stdin.
fn client(sock: &std::path::Path, args: &[&str]) -> Output {
    run_client(sock, args, "")
}

/// Runs `ivshmem-client -S sock` with `script` on stdin.
fn client_script(sock: &std::path::Path, script: &str) -> Output {
    run_client(sock, &[], script)
}

fn run_client(sock: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = spawn(
        Command::new(client_bin()).arg("-S").arg(sock).args(args),
        Stdio::piped(),
        Stdio::piped(),
    );
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input); // EOF
    let deadline = Instant::now() + T;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ivshmem-client did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that a command succeeded; returns its stdout.
fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Asserts that a command exited with status 1 and said `why` on stderr.
fn assert_failed(out: &Output, why: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(why), "{err}");
}

#[test]
fn client_lists_peers_and_sends_interrupts() {
    let (_dir, _shm, server) = in_proc("cli1", 2);
    let p = server.connect(2);
    let out = client(&server.socket, &["-n", "2", "dump", "int 0 all; int 0 1"]);
    let stdout = succeeded(&out);
    assert!(
        stdout.contains("own id 1, shm 1048576 bytes, 2 vectors"),
        "{stdout}"
    );
    assert!(stdout.contains("peer 0: 2 vectors"), "{stdout}");
    let mut counts = vec![0, 0];
    let deadline = Instant::now() + T;
    while counts != vec![1, 2] {
        assert!(Instant::now() < deadline, "interrupts so far {counts:?}");
        for (c, n) in counts.iter_mut().zip(p.poll_interrupts(Some(T)).unwrap()) {
            *c += n;
        }
    }
}

#[test]
fn client_learns_the_vector_count_from_the_server() {
    for vectors in [0, 1, 3] {
        let (_dir, _shm, server) = in_proc("cli5", vectors);
        let _p = server.connect(vectors as usize);
        let out = client(&server.socket, &["dump"]);
        let stdout = succeeded(&out);
        assert!(
            stdout.contains(&format!("own id 1, shm 1048576 bytes, {vectors} vectors")),
            "-n {vectors}: {stdout}"
        );
        if vectors > 0 {
            assert!(
                stdout.contains(&format!("peer 0: {vectors} vectors")),
                "{stdout}"
            );
        }
    }
}

#[test]
fn client_shows_received_interrupts_and_peer_changes() {
    let (_dir, _shm, server) = in_proc("cli2", 2);
    let mut p = server.connect(2);
    let socket = server.socket.clone();
    let cli = thread::spawn(move || {
        client(
            &socket,
            &["-n2", "wait-int 10000", "irqs", "wait-gone 0 10000"],
        )
    });
    wait_event(&mut p, T, |e| {
        *e == PeerEvent::VectorAdded { id: 1, vector: 1 }
    });
    p.notify(1, 1).unwrap();
    thread::sleep(Duration::from_millis(100));
    drop(p);
    let out = cli.join().unwrap();
    let stdout = succeeded(&out);
    assert!(stdout.contains("interrupt: vector 1 count 1"), "{stdout}");
    assert!(
        stdout.contains("vector 0: 0 interrupts\nvector 1: 1 interrupts"),
        "{stdout}"
    );
    assert!(stdout.contains("peer 0 disconnected"), "{stdout}");
}

#[test]
fn client_script_from_stdin_exits_on_eof_and_stops_on_error() {
    let (_dir, _shm, server) = in_proc("cli3", 1);
    let p = server.connect(1);
    let out = client_script(
        &server.socket,
        "peers\nwrite 0x20 \"abc\"\nwrite 0x23 de ad\nx 0x20 16\n",
    );
    let stdout = succeeded(&out);
    assert!(stdout.contains("peer 0: 1 vectors"), "{stdout}");
    assert!(
        stdout.contains(
            "00000020  61 62 63 de ad 00 00 00  00 00 00 00 00 00 00 00  |abc.............|"
        ),
        "{stdout}"
    );
    let mut buf = [0u8; 5];
    p.map_shm().unwrap().read(0x20, &mut buf).unwrap();
    assert_eq!(&buf, b"abc\xde\xad");

    // A failing command stops the script with status 1; later ones do not run.
    let out = client_script(&server.socket, "int 9 0\nwrite 0 \"never\"\n");
    assert_failed(&out, "unknown peer 9");
    p.map_shm().unwrap().read(0, &mut buf).unwrap();
    assert_eq!(&buf, &[0; 5]);

    // Out-of-range dumps are errors, not crashes.
    let out = client(&server.socket, &["x 0xffff0 0x100"]);
    assert_failed(&out, "outside");
}

#[test]
fn client_reports_connection_errors() {
    let dir = TempDir::new("cli4");
    let out = client(&dir.join("none"), &[]);
    assert_failed(&out, "connect to");
    // Waiting for more own vectors than the server has: a clear timeout.
    let shm = ShmName::new("cli4");
    let server = InProc::start(config(&dir, &shm, 1));
    let out = client(&server.socket, &["-n", "3", "-t", "0.3", "dump"]);
    assert_failed(&out, "expected at least 3");
}

#[test]
fn pid_file_is_0644_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("pidmode");
    let shm = ShmName::new("pidmode");
    // Daemon mode: the command returns once the pid file is written.
    let pid = start_daemon("umask 077;", &dir, &shm);
    let mode = std::fs::metadata(dir.join("pid"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    send_signal(pid, libc::SIGTERM);
    assert_eq!(mode, 0o644, "pid file mode {mode:o}");
}

#[test]
fn a_pre_existing_shm_object_open_to_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("foreign");
    let shm = ShmName::new("foreign");
    let file = std::fs::File::create(shm.path()).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o666))
        .unwrap();
    let out = run_server(&["-F", "-S", dir.join("sock").to_str().unwrap(), "-M", &shm.0]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("already exists"), "{err}");
    // Another user's object (root only can make one here).
    if rustix::process::geteuid().is_root() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::chown(shm.path(), Some(65534), None).unwrap();
        let out = run_server(&["-F", "-S", dir.join("sock").to_str().unwrap(), "-M", &shm.0]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains("owner uid 65534"), "{err}");
    }
}
