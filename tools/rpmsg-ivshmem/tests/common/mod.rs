//! Test support: a private ivshmem-server in a thread, and `rpmsg-ivshmem` child processes
//! whose output is collected by threads, with timeouts everywhere so that a hang fails the
//! test instead of blocking CI. Children are killed (SIGKILL) when their handle drops,
//! which also happens when a test panics.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ivshmem::{LogLevel, Server, ServerConfig, ShmBacking, StopHandle};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rpmsg-ivshmem");

/// The text the host prints for echo number `i` of `text`.
pub fn host_block(text: &str, i: u64) -> String {
    format!("Remote side echoed the string back:\n[ {text} ]\nat message number {i}\n\n")
}

/// The host's whole stdout for `n` echoes of `text`.
pub fn host_blocks(text: &str, n: u64) -> String {
    (1..=n).map(|i| host_block(text, i)).collect()
}

/// The text the remote prints for one message.
pub fn remote_block(text: &str) -> String {
    format!("Host side sent a string:\n[ {text} ]\nNow echoing it back!\n\n")
}

/// The banner line of `side` ("Host" or "Remote") with the default board name.
pub fn banner(side: &str) -> String {
    format!(
        "Hello linux_{} - {side} Side, the communication over RPMsg is ready to use!\n",
        std::env::consts::ARCH
    )
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// An ivshmem-server on a private socket and shared-memory name, stopped on drop.
pub struct TestServer {
    /// Its socket.
    pub socket: PathBuf,
    /// Its POSIX shared-memory object's name (under `/dev/shm`).
    pub shm_name: String,
    stop: StopHandle,
    thread: Option<JoinHandle<Result<(), ivshmem::Error>>>,
}

impl TestServer {
    /// A server with the default 4 MiB.
    pub fn start() -> Self {
        Self::with_size(4 << 20)
    }

    /// A server with `size` bytes of shared memory.
    pub fn with_size(size: u64) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("rpmsg-ivshmem-test-{}-{n}", std::process::id());
        let socket = std::env::temp_dir().join(format!("{tag}.sock"));
        let server = Server::new(ServerConfig {
            socket_path: socket.clone(),
            shm: ShmBacking::Posix(tag.clone()),
            shm_size: size,
            vectors: 1,
            log_level: LogLevel::Error,
            ..ServerConfig::default()
        })
        .expect("start an ivshmem-server");
        let stop = server.stop_handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Self {
            socket,
            shm_name: tag,
            stop,
            thread,
        }
    }

    /// The socket as a string argument.
    pub fn sock(&self) -> &str {
        self.socket.to_str().expect("temp dir path is UTF-8")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    eof: bool,
}

/// Everything a child wrote to one stream so far, filled by a reader thread.
#[derive(Clone)]
pub struct Output(Arc<(Mutex<Buf>, Condvar)>);

impl Output {
    fn spawn(mut r: impl Read + Send + 'static) -> Self {
        let out = Output(Arc::new((Mutex::new(Buf::default()), Condvar::new())));
        let shared = out.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                let n = r.read(&mut chunk).unwrap_or(0);
                let (lock, cv) = &*shared.0;
                let mut b = lock.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    b.eof = true;
                } else {
                    b.bytes.extend_from_slice(&chunk[..n]);
                }
                cv.notify_all();
                if n == 0 {
                    break;
                }
            }
        });
        out
    }

    /// A copy of the bytes so far.
    pub fn bytes(&self) -> Vec<u8> {
        let (lock, _) = &*self.0;
        lock.lock().unwrap_or_else(|e| e.into_inner()).bytes.clone()
    }

    /// The text so far (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        let (lock, _) = &*self.0;
        lock.lock().unwrap_or_else(|e| e.into_inner()).bytes.len()
    }

    /// Waits until `pred` holds for the bytes from `offset` on; false on timeout or EOF
    /// without it.
    pub fn wait_from(
        &self,
        offset: usize,
        timeout: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.0;
        let mut b = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pred(b.bytes.get(offset..).unwrap_or_default()) {
                return true;
            }
            let now = Instant::now();
            if b.eof || now >= deadline {
                return false;
            }
            b = cv
                .wait_timeout(b, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until the text from `offset` on contains `needle`.
    pub fn wait_for_from(&self, offset: usize, needle: &str, timeout: Duration) -> bool {
        self.wait_from(offset, timeout, |b| contains(b, needle.as_bytes()))
    }

    /// Waits until the text contains `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_from(0, needle, timeout)
    }

    /// Waits until `needle` occurs at least `n` times.
    pub fn wait_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        self.wait_from(0, timeout, |b| count(b, needle.as_bytes()) >= n)
    }

    /// Waits for the end of the stream.
    pub fn wait_eof(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.0;
        let mut b = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !b.eof {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            b = cv
                .wait_timeout(b, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Whether `hay` contains `needle`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// How often `needle` occurs in `hay` (overlapping).
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// A running `rpmsg-ivshmem`, killed on drop.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    status: Option<ExitStatus>,
    /// Its stdin (dropped to close it).
    pub stdin: Option<ChildStdin>,
    /// Its stdout.
    pub out: Output,
    /// Its stderr.
    pub err: Output,
}

impl Proc {
    /// Starts `rpmsg-ivshmem` with `args`.
    pub fn spawn(args: &[&str]) -> Proc {
        let mut command = Command::new(BIN);
        // SAFETY: prctl is async-signal-safe; it has the kernel kill the child if the test
        // thread that started it dies without cleaning up (e.g. the harness is killed).
        unsafe {
            command.pre_exec(|| {
                let _ = rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ));
                Ok(())
            });
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rpmsg-ivshmem");
        let out = Output::spawn(child.stdout.take().expect("stdout"));
        let err = Output::spawn(child.stderr.take().expect("stderr"));
        Proc {
            name: format!("rpmsg-ivshmem {}", args.join(" ")),
            stdin: child.stdin.take(),
            child,
            status: None,
            out,
            err,
        }
    }

    /// Writes a line to its stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .expect("write to stdin");
    }

    /// Closes its stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Its exit status if it exited within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status {
                return Some(s);
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
                // Let the reader threads see the end of the pipes.
                self.out.wait_eof(Duration::from_secs(5));
                self.err.wait_eof(Duration::from_secs(5));
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its exit status; panics (after killing it) if it runs longer than `timeout`.
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(s) => s,
            None => {
                self.kill();
                panic!(
                    "{} still running after {timeout:?}\n{}",
                    self.name,
                    self.describe()
                );
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) if it has not been reaped.
    pub fn signal(&self, signal: libc::c_int) {
        if self.status.is_none() {
            // Our own unreaped child: the pid cannot have been reused.
            let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
            let signal = rustix::process::Signal::from_named_raw(signal);
            if let (Some(pid), Some(signal)) = (pid, signal) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
    }

    /// Whether it is still running (not exited).
    pub fn is_running(&mut self) -> bool {
        self.wait_exit(Duration::ZERO).is_none()
    }

    /// SIGKILLs it and reaps it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// Asserts that `pred` comes to hold, within `timeout`, for what `stream` wrote from
    /// byte `at` on; the panic shows the child's output.
    pub fn expect(
        &self,
        stream: Stream,
        at: usize,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[u8]) -> bool,
    ) {
        let output = match stream {
            Stream::Out => &self.out,
            Stream::Err => &self.err,
        };
        assert!(
            output.wait_from(at, timeout, pred),
            "{} {stream:?}: no {what} from byte {at} within {timeout:?}\n{}",
            self.name,
            self.describe()
        );
    }

    /// Asserts that stdout from byte `at` on comes to contain `needle` within `timeout`.
    pub fn expect_out(&self, at: usize, needle: &str, timeout: Duration) {
        self.expect(Stream::Out, at, timeout, &format!("{needle:?}"), |b| {
            contains(b, needle.as_bytes())
        });
    }

    /// Asserts that stderr from byte `at` on comes to contain `needle` within `timeout`.
    pub fn expect_err(&self, at: usize, needle: &str, timeout: Duration) {
        self.expect(Stream::Err, at, timeout, &format!("{needle:?}"), |b| {
            contains(b, needle.as_bytes())
        });
    }

    /// Asserts that `needle` comes to stand `n` times on stdout within `timeout`.
    pub fn expect_out_count(&self, needle: &str, n: usize, timeout: Duration) {
        self.expect(Stream::Out, 0, timeout, &format!("{n} x {needle:?}"), |b| {
            count(b, needle.as_bytes()) >= n
        });
    }

    /// Sends `line` on stdin and asserts that what stdout writes from then on is exactly
    /// `want` within `timeout`.
    pub fn exchange(&mut self, line: &str, want: &str, timeout: Duration) {
        let at = self.out.len();
        self.send_line(line);
        self.expect(Stream::Out, at, timeout, &format!("{want:?}"), |b| {
            b == want.as_bytes()
        });
    }

    /// Sends `line` on stdin and asserts that stdout from then on comes to contain
    /// `needle` within `timeout`; returns that stdout.
    pub fn ask(&mut self, line: &str, needle: &str, timeout: Duration) -> String {
        let at = self.out.len();
        self.send_line(line);
        self.expect_out(at, needle, timeout);
        self.out.text()[at..].to_string()
    }

    /// Closes stdin (the stdin shell's end) and asserts a successful exit within `timeout`.
    pub fn quit(&mut self, timeout: Duration) {
        self.close_stdin();
        let status = self.expect_exit(timeout);
        assert!(status.success(), "{status}\n{}", self.describe());
    }

    /// Its output so far, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- stderr ---\n{}",
            self.name,
            self.out.text(),
            self.err.text()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One output stream of a child.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// Runs `rpmsg-ivshmem` with `args` to completion (at most `timeout`).
pub fn run(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut p = Proc::spawn(args);
    p.close_stdin();
    let status = p.expect_exit(timeout);
    (status, p.out.text(), p.err.text())
}

/// A private server with a remote on it (started with `extra`), waiting for a host.
pub fn server_with_remote(extra: &[&str]) -> (TestServer, Proc) {
    let server = TestServer::start();
    let remote = start_remote(&server, extra);
    (server, remote)
}

/// Starts `host` with `args` on `server`, with the board name of the OpenAMP sample's
/// console texts (`qemu_cortex_a53`).
pub fn sample_host(server: &TestServer, args: &[&str]) -> Proc {
    let mut all = vec!["-S", server.sock(), "--board", "qemu_cortex_a53", "host"];
    all.extend_from_slice(args);
    Proc::spawn(&all)
}

/// Starts a remote on `server` and waits until it is connected and waiting for a host.
pub fn start_remote(server: &TestServer, extra: &[&str]) -> Proc {
    let mut args = vec!["remote", "-S", server.sock()];
    args.extend_from_slice(extra);
    let p = Proc::spawn(&args);
    assert!(
        p.err
            .wait_for("waiting for a host", Duration::from_secs(10)),
        "remote did not start\n{}",
        p.describe()
    );
    p
}
