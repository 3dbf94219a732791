//! Helpers shared by the integration tests: temp dirs, unique shm names,
//! an in-process server, the real server binary, and a raw protocol reader
//! that does not use the crate's client code.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ivshmem::{
    Error, LogLevel, PeerConnection, PeerEvent, Server, ServerConfig, ServerStats, ShmBacking,
    StopHandle,
};

pub const T: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(tag: &str) -> String {
    format!(
        "ivt-{}-{}-{tag}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A temporary directory under /tmp (short, for sun_path), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = PathBuf::from("/tmp").join(unique(tag));
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A POSIX shm name unique to this test, removed on drop.
pub struct ShmName(pub String);

impl ShmName {
    pub fn new(tag: &str) -> ShmName {
        ShmName(unique(tag))
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/dev/shm").join(&self.0)
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.path());
    }
}

/// A config on a fresh socket path and shm name (kept alive by the caller).
pub fn config(dir: &TempDir, shm: &ShmName, vectors: u16) -> ServerConfig {
    ServerConfig {
        socket_path: dir.join("sock"),
        shm: ShmBacking::Posix(shm.0.clone()),
        shm_size: 1 << 20,
        vectors,
        log_level: LogLevel::Warn,
        ..ServerConfig::default()
    }
}

/// A temp dir and shm name for `tag`, and a server on them with `vectors` vectors per
/// peer, in a thread of the test process.
pub fn in_proc(tag: &str, vectors: u16) -> (TempDir, ShmName, InProc) {
    in_proc_with(tag, vectors, |_| {})
}

/// [`in_proc`] with the configuration changed by `adjust` first.
pub fn in_proc_with(
    tag: &str,
    vectors: u16,
    adjust: impl FnOnce(&mut ServerConfig),
) -> (TempDir, ShmName, InProc) {
    let dir = TempDir::new(tag);
    let shm = ShmName::new(tag);
    let mut cfg = config(&dir, &shm, vectors);
    adjust(&mut cfg);
    let server = InProc::start(cfg);
    (dir, shm, server)
}

/// A server running in a thread of the test process.
pub struct InProc {
    pub stop: StopHandle,
    pub stats: Arc<ServerStats>,
    pub socket: PathBuf,
    thread: Option<JoinHandle<Result<(), Error>>>,
}

impl InProc {
    pub fn start(config: ServerConfig) -> InProc {
        let socket = config.socket_path.clone();
        let server = Server::new(config).expect("server starts");
        let stop = server.stop_handle();
        let stats = server.stats();
        let thread = Some(thread::spawn(move || server.run()));
        InProc {
            stop,
            stats,
            socket,
            thread,
        }
    }

    /// Stops the server and waits until it has shut down.
    pub fn shutdown(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            t.join()
                .expect("server thread")
                .expect("server ran cleanly");
        }
    }

    pub fn connect(&self, vectors: usize) -> PeerConnection {
        PeerConnection::connect(&self.socket, vectors, T).expect("peer connects")
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether some socket listens on `path` (from /proc/net/unix, so without
/// connecting, which would create a peer).
pub fn is_listening(path: &Path) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let want = path.to_string_lossy();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Num RefCount Protocol Flags Type St Inode Path
        f.len() >= 8 && f[7] == want && f[3] == "00010000"
    })
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// The real server binary, in the foreground, killed on drop.
pub struct BinServer {
    pub child: Child,
    pub socket: PathBuf,
}

pub fn server_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ivshmem-server")
}

pub fn client_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ivshmem-client")
}

/// Spawns `command` with the given stdin and stdout and a piped stderr.
pub fn spawn(command: &mut Command, stdin: Stdio, stdout: Stdio) -> Child {
    command
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.get_program()))
}

impl BinServer {
    /// Starts `ivshmem-server -F -S <dir>/sock <args>` and waits until it listens.
    pub fn start(dir: &TempDir, args: &[&str]) -> BinServer {
        let socket = dir.join("sock");
        let child = spawn(
            Command::new(server_bin())
                .arg("-F")
                .arg("-S")
                .arg(&socket)
                .args(args),
            Stdio::null(),
            Stdio::null(),
        );
        let mut s = BinServer { child, socket };
        let deadline = Instant::now() + T;
        while !is_listening(&s.socket) {
            if let Ok(Some(status)) = s.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = s.child.stderr.take() {
                    let _ = io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("ivshmem-server exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "server did not start listening");
            thread::sleep(Duration::from_millis(5));
        }
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        send_signal(self.child.id(), sig);
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes messages until `pred` matches an event (events before it are
/// returned too), or panics after `timeout`.
pub fn wait_event(
    conn: &mut PeerConnection,
    timeout: Duration,
    mut pred: impl FnMut(&PeerEvent) -> bool,
) -> Vec<PeerEvent> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        for e in conn.process_messages().expect("process messages") {
            let hit = pred(&e);
            seen.push(e);
            if hit {
                return seen;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; events so far: {seen:?}");
        poll_in(conn.socket_fd(), left.min(Duration::from_millis(100)));
    }
}

/// Sends signal `sig` (e.g. `libc::SIGTERM`) to process `pid`.
pub fn send_signal(pid: u32, sig: i32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    let sig = rustix::process::Signal::from_named_raw(sig).expect("a named signal");
    rustix::process::kill_process(pid, sig).expect("kill");
}

/// Polls one fd for input.
pub fn poll_in(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut p = [rustix::event::PollFd::from_borrowed_fd(
        fd,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::event::Timespec::try_from(timeout).ok();
    matches!(rustix::event::poll(&mut p, timeout.as_ref()), Ok(n) if n > 0)
}

// ---- raw protocol reader (independent of the crate's client) ----

/// One message as received: the 8 raw bytes, its fd, and the cmsg_len seen.
#[derive(Debug)]
pub struct RawMsg {
    pub bytes: [u8; 8],
    pub fd: Option<OwnedFd>,
    pub cmsg_len: usize,
    pub nfds: usize,
}

impl RawMsg {
    pub fn value(&self) -> i64 {
        i64::from_le_bytes(self.bytes)
    }
}

pub fn raw_connect(path: &Path) -> UnixStream {
    UnixStream::connect(path).expect("raw connect")
}

/// What one recvmsg of exactly 8 bytes returned.
pub enum RawRecv {
    Msg(RawMsg),
    Eof,
    WouldBlock,
    Err(io::Error),
}

/// One recvmsg of at most 8 bytes, MSG_DONTWAIT.
pub fn raw_recv_now(sock: BorrowedFd<'_>) -> RawRecv {
    let mut buf = [0u8; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let mut ctl = [0u64; 16];
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut cmsg_len = 0;
    // SAFETY: an all-zero msghdr is valid; it points at `iov`/`buf` and `ctl`, which
    // outlive the call. Afterwards the CMSG_* macros only walk the control bytes the
    // kernel filled (msg_controllen), and each SCM_RIGHTS payload holds descriptors
    // that are now ours. Plain libc on purpose: this reader checks the wire format
    // (cmsg_len) independently of the crate's rustix code.
    let (n, msg_flags) = unsafe {
        let mut msg: libc::msghdr = mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&ctl) as _;
        let n = libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        );
        let mut c = if n > 0 {
            libc::CMSG_FIRSTHDR(&msg)
        } else {
            std::ptr::null_mut()
        };
        while !c.is_null() {
            assert_eq!((*c).cmsg_level, libc::SOL_SOCKET);
            assert_eq!((*c).cmsg_type, libc::SCM_RIGHTS);
            cmsg_len = (*c).cmsg_len as usize;
            let count = (cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
            let data = libc::CMSG_DATA(c).cast::<RawFd>();
            for i in 0..count {
                fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        (n, msg.msg_flags)
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock {
            RawRecv::WouldBlock
        } else {
            RawRecv::Err(e)
        };
    }
    if n == 0 {
        return RawRecv::Eof;
    }
    assert_eq!(n, 8, "a frame must arrive as 8 bytes in one piece");
    assert_eq!(msg_flags & libc::MSG_CTRUNC, 0, "control data truncated");
    let nfds = fds.len();
    RawRecv::Msg(RawMsg {
        bytes: buf,
        fd: fds.into_iter().next(),
        cmsg_len,
        nfds,
    })
}

/// Waits up to `timeout` for one message.
pub fn raw_recv(sock: &UnixStream, timeout: Duration) -> RawMsg {
    let deadline = Instant::now() + timeout;
    loop {
        match raw_recv_now(sock.as_fd()) {
            RawRecv::Msg(m) => return m,
            RawRecv::Eof => panic!("unexpected EOF"),
            RawRecv::Err(e) => panic!("recvmsg: {e}"),
            RawRecv::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "timed out waiting for a message");
                poll_in(sock.as_fd(), left);
            }
        }
    }
}

/// Asserts that nothing more is queued right now (after a short grace).
pub fn assert_no_more(sock: &UnixStream) {
    poll_in(sock.as_fd(), Duration::from_millis(50));
    match raw_recv_now(sock.as_fd()) {
        RawRecv::WouldBlock => {}
        RawRecv::Msg(m) => panic!("unexpected extra message {m:?}"),
        RawRecv::Eof => panic!("unexpected EOF"),
        RawRecv::Err(e) => panic!("recvmsg: {e}"),
    }
}

/// Waits for EOF (or ECONNRESET), returning the messages before it.
pub fn raw_until_eof(sock: &UnixStream, timeout: Duration) -> Vec<RawMsg> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        match raw_recv_now(sock.as_fd()) {
            RawRecv::Msg(m) => out.push(m),
            RawRecv::Eof => return out,
            RawRecv::Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return out,
            RawRecv::Err(e) => panic!("recvmsg: {e}"),
            RawRecv::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "timed out waiting for EOF");
                poll_in(sock.as_fd(), left);
            }
        }
    }
}

/// What /proc says an fd is (e.g. "anon_inode:[eventfd]").
pub fn fd_target(fd: BorrowedFd<'_>) -> String {
    fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn eventfd_write(fd: BorrowedFd<'_>, v: u64) {
    let n = rustix::io::write(fd, &v.to_ne_bytes());
    assert!(matches!(n, Ok(8)), "eventfd write: {n:?}");
}

/// Non-blocking read of an eventfd counter (0 if none).
pub fn eventfd_read(fd: BorrowedFd<'_>) -> u64 {
    if !poll_in(fd, Duration::ZERO) {
        return 0;
    }
    let mut b = [0u8; 8];
    let n = rustix::io::read(fd, &mut b);
    assert!(matches!(n, Ok(8)), "eventfd read: {n:?}");
    u64::from_ne_bytes(b)
}

pub fn fd_flags(fd: BorrowedFd<'_>) -> i32 {
    rustix::fs::fcntl_getfl(fd).expect("F_GETFL").bits() as i32
}

/// Number of open fds of a process.
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}
