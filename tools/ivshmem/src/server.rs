//! The server: hands the shared memory and everybody's eventfds to every
//! peer, exactly like QEMU's `contrib/ivshmem-server` (protocol version 0),
//! but never blocks on a peer.
//!
//! Single-threaded `poll()` loop. Each peer has an outgoing queue of
//! `(int64, optional fd)` messages; a message is written directly when the
//! queue is empty and the socket takes it, otherwise it waits for `POLLOUT`.
//! A peer whose queue grows beyond [`ServerConfig::max_backlog`] is dropped
//! (and announced as disconnected), so a peer that never reads cannot make
//! the server hold an unbounded number of messages or fds.

use std::collections::VecDeque;
use std::fs::{OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::event::PollFlags;
use rustix::fs::{FileType, Mode, Stat};
use rustix::io::Errno;
use rustix::shm;

use crate::error::{Context, Error};
use crate::size::round_up_pow2;
use crate::sys;
use crate::LogLevel;
use crate::PROTOCOL_VERSION;

/// Default socket path, as QEMU's server.
pub const DEFAULT_SOCKET_PATH: &str = "/tmp/ivshmem_socket";
/// Default POSIX shared-memory name, as QEMU's server.
pub const DEFAULT_SHM_NAME: &str = "ivshmem";
/// Default shared-memory size (4 MiB), as QEMU's server.
pub const DEFAULT_SHM_SIZE: u64 = 4 << 20;
/// Default number of vectors per peer, as QEMU's server.
pub const DEFAULT_VECTORS: u16 = 1;
/// Most vectors per peer, as QEMU's server (`IVSHMEM_SERVER_MAX_VECTORS`).
pub const MAX_VECTORS: u16 = 64;
/// Default pid file in daemon mode, as QEMU's server.
pub const DEFAULT_PID_FILE: &str = "/var/run/ivshmem-server.pid";
/// Default bound on messages queued for one peer before it is dropped.
pub const DEFAULT_MAX_BACKLOG: usize = 4096;
/// `listen()` backlog (QEMU uses 10).
const LISTEN_BACKLOG: i32 = 64;
/// Largest size tried when the file system refuses the requested size
/// (hugetlbfs), as QEMU's `IVSHMEM_SERVER_MAX_HUGEPAGE_SIZE`.
const MAX_HUGEPAGE_SIZE: u64 = 1 << 30;
/// How long to stop accepting after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Most connections accepted per loop iteration (fairness to peers).
const ACCEPT_BATCH: usize = 32;

/// Where the shared memory lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShmBacking {
    /// A POSIX shared-memory object (`shm_open`, i.e. `/dev/shm/NAME`); `-M`.
    Posix(String),
    /// An unlinked temporary file `DIR/ivshmem.XXXXXX`, e.g. on hugetlbfs; `-m`.
    Directory(PathBuf),
}

/// Server settings. `Default` gives QEMU's defaults plus owner-only modes.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Unix socket path (`-S`).
    pub socket_path: PathBuf,
    /// Shared-memory backing (`-M` / `-m`).
    pub shm: ShmBacking,
    /// Requested shared-memory size (`-l`); rounded up to a power of two.
    pub shm_size: u64,
    /// Eventfds per peer (`-n`), 0..=[`MAX_VECTORS`].
    pub vectors: u16,
    /// Mode of the socket file (default 0600).
    pub socket_mode: u32,
    /// Mode of the POSIX shm object (default 0600).
    pub shm_mode: u32,
    /// Owner uid for socket and shm, if set.
    pub owner: Option<u32>,
    /// Group gid for socket and shm, if set.
    pub group: Option<u32>,
    /// Leave the POSIX shm object in place on shutdown.
    pub keep_shm: bool,
    /// Messages that may wait for a peer that does not read before it is
    /// dropped.
    pub max_backlog: usize,
    /// Log level for the default (stderr) logger.
    pub log_level: LogLevel,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
            shm: ShmBacking::Posix(DEFAULT_SHM_NAME.to_string()),
            shm_size: DEFAULT_SHM_SIZE,
            vectors: DEFAULT_VECTORS,
            socket_mode: 0o600,
            shm_mode: 0o600,
            owner: None,
            group: None,
            keep_shm: false,
            max_backlog: DEFAULT_MAX_BACKLOG,
            log_level: LogLevel::Warn,
        }
    }
}

/// Counters that tests and operators can read while the server runs.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Peers currently connected (handshake sent).
    pub peers: AtomicUsize,
    /// Peers that left or were dropped.
    pub disconnected: AtomicU64,
    /// Peers dropped because their backlog exceeded the bound.
    pub dropped_backlog: AtomicU64,
    /// Messages that had to wait in a queue because a socket was full.
    pub queued_messages: AtomicU64,
    /// Longest queue seen for any peer.
    pub max_queue_seen: AtomicUsize,
}

/// Logs one server event through the `log` facade if `$level` is within the
/// server's configured level: the event name is the message, the fields are
/// its key-values (shown with `Display`).
macro_rules! event {
    ($max:expr, $level:expr, $event:literal) => {{
        let level: log::Level = $level;
        if level <= $max {
            log::log!(level, $event);
        }
    }};
    ($max:expr, $level:expr, $event:literal, $($key:ident = $value:expr),+ $(,)?) => {{
        let level: log::Level = $level;
        if level <= $max {
            log::log!(level, $($key:% = $value),+; $event);
        }
    }};
}

/// Stops a running [`Server`] from any thread (or a signal handler, see
/// [`install_signal_handlers`]).
#[derive(Debug, Clone)]
pub struct StopHandle {
    /// Write end of the server's non-blocking stop pipe.
    fd: Arc<OwnedFd>,
}

impl StopHandle {
    /// Asks the server to shut down cleanly.
    pub fn stop(&self) {
        // A full pipe already holds a stop request.
        let _ = rustix::io::write(self.fd.as_fd(), &[1]);
    }
}

/// Makes SIGINT and SIGTERM stop the server through `handle` (the handler
/// writes a byte to its stop pipe), and makes SIGPIPE harmless. For the
/// binary; tests use [`StopHandle::stop`].
pub fn install_signal_handlers(handle: &StopHandle) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGPIPE, SIGTERM};
    for signal in [SIGINT, SIGTERM] {
        signal_hook::low_level::pipe::register(signal, handle.fd.try_clone()?)?;
    }
    signal_hook::flag::register(SIGPIPE, Arc::new(AtomicBool::new(false)))?;
    Ok(())
}

/// One message waiting to be sent.
#[derive(Debug)]
struct OutMsg {
    bytes: [u8; 8],
    /// Bytes already sent (a stream socket may take part of a frame).
    sent: usize,
    /// Kept alive by the queue even if its owner disconnects meanwhile.
    fd: Option<Arc<OwnedFd>>,
}

#[derive(Debug)]
struct Peer {
    id: u16,
    sock: OwnedFd,
    vectors: Vec<Arc<OwnedFd>>,
    out: VecDeque<OutMsg>,
    /// Set when the peer must go: the reason, logged when it is reaped.
    failed: Option<String>,
    /// Whether the others were told about it (then they must hear it leave).
    announced: bool,
}

/// What `step` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep going.
    Continue,
    /// A stop was requested.
    Stop,
}

/// A running ivshmem server. Create it with [`Server::new`] (which creates
/// the shared memory and listens on the socket), then [`Server::run`].
/// Dropping it shuts down like [`Server::run`] does at the end.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    listener: OwnedFd,
    /// (st_dev, st_ino) of the socket file we bound, to unlink only ours.
    socket_id: (u64, u64),
    shm: Arc<OwnedFd>,
    shm_size: u64,
    peers: Vec<Peer>,
    cur_id: u16,
    /// Read end of the stop pipe; [`StopHandle`]s hold the write end.
    stop: OwnedFd,
    stop_tx: Arc<OwnedFd>,
    stats: Arc<ServerStats>,
    accept_paused_until: Option<Instant>,
    shut_down: bool,
}

impl Server {
    /// Opens/creates the shared memory and listens on the socket. Events up
    /// to `config.log_level` go to the `log` facade (see [`crate::logfmt`]).
    pub fn new(config: ServerConfig) -> Result<Server, Error> {
        let size = checked_shm_size(&config)?;
        // The socket first: if another server is live on it, touch nothing
        // (its shared memory included).
        check_fits_in_memory(size)?;
        prepare_socket_path(&config)?;
        let (shm, created_shm) = open_shm(&config)?;
        // A failure after this point removes the shared memory if we created it.
        let undo = |e: Error| {
            if created_shm {
                unlink_shm(&config);
            }
            e
        };
        let shm_size = set_shm_size(&shm, size, &config).map_err(undo)?;
        if shm_size != size {
            event!(
                config.log_level,
                LogLevel::Warn,
                "shm-size-raised",
                requested = size,
                size = shm_size
            );
        }
        let (listener, socket_id) = listen_socket(&config).map_err(undo)?;
        let (stop, stop_tx) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
        )
        .map_err(|e| Error::io("create the stop pipe", e.into()))?;
        event!(
            config.log_level,
            LogLevel::Info,
            "listening",
            socket = config.socket_path.display(),
            shm = shm_description(&config),
            size = shm_size,
            vectors = config.vectors
        );
        Ok(Server {
            config,
            listener,
            socket_id,
            shm: Arc::new(shm),
            shm_size,
            peers: Vec::new(),
            cur_id: 0,
            stop,
            stop_tx: Arc::new(stop_tx),
            stats: Arc::new(ServerStats::default()),
            accept_paused_until: None,
            shut_down: false,
        })
    }

    /// A handle that stops [`Server::run`] from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            fd: self.stop_tx.clone(),
        }
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// The actual shared-memory size (a power of two).
    pub fn shm_size(&self) -> u64 {
        self.shm_size
    }

    /// The configuration in use.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Ids of the connected peers, in connect order.
    pub fn peer_ids(&self) -> Vec<u16> {
        self.peers.iter().map(|p| p.id).collect()
    }

    /// Serves until stopped, then shuts down: every peer is closed (the
    /// remaining ones hearing about it, as QEMU's server does), the socket
    /// file is removed, and the POSIX shm object too unless `keep_shm`.
    pub fn run(mut self) -> Result<(), Error> {
        let result = loop {
            match self.step(None) {
                Ok(Step::Continue) => {}
                Ok(Step::Stop) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.shutdown();
        result
    }

    /// Waits up to `timeout` (forever if `None`) for something to do, and
    /// does it. For callers that drive the loop themselves.
    pub fn step(&mut self, timeout: Option<Duration>) -> Result<Step, Error> {
        let now = Instant::now();
        let accepting = match self.accept_paused_until {
            Some(t) if t > now => false,
            _ => {
                self.accept_paused_until = None;
                true
            }
        };
        let mut timeout = timeout;
        if let Some(t) = self.accept_paused_until {
            let left = t.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |x| x.min(left)));
        }
        let listen_events = if accepting {
            PollFlags::IN
        } else {
            PollFlags::empty()
        };
        let fixed = [
            (self.stop.as_fd(), PollFlags::IN),
            (self.listener.as_fd(), listen_events),
        ];
        let peers = self.peers.iter().map(|p| {
            let out = if p.out.is_empty() {
                PollFlags::empty()
            } else {
                PollFlags::OUT
            };
            (p.sock.as_fd(), PollFlags::IN | out)
        });
        let ready =
            sys::poll_each(fixed.into_iter().chain(peers), timeout).context(|| "poll".into())?;
        if !ready[0].is_empty() {
            let mut drain = [0u8; 64];
            while matches!(rustix::io::read(&self.stop, &mut drain), Ok(n) if n > 0) {}
            return Ok(Step::Stop);
        }
        let listener_ready = ready[1].contains(PollFlags::IN);
        // Peers first, by position: the list does not change before this
        // loop ends. Any readability (data, EOF, error) means disconnect,
        // as in QEMU's server; the server never reads from peers.
        for i in 0..self.peers.len() {
            let revents = ready[i + 2];
            if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL)
            {
                let peer = &mut self.peers[i];
                if peer.failed.is_none() {
                    peer.failed = Some(if revents.contains(PollFlags::IN) {
                        "closed or sent data".into()
                    } else {
                        "hung up".into()
                    });
                }
            } else if revents.contains(PollFlags::OUT) {
                self.flush(i);
            }
        }
        self.reap();
        if listener_ready {
            self.accept_connections()?;
        }
        Ok(Step::Continue)
    }

    fn accept_connections(&mut self) -> Result<(), Error> {
        for _ in 0..ACCEPT_BATCH {
            match sys::accept(self.listener.as_fd()) {
                Ok(Some(sock)) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    self.new_peer(sock);
                    self.reap();
                }
                Ok(None) => break,
                Err(e)
                    if matches!(
                        Errno::from_io_error(&e),
                        Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
                    ) =>
                {
                    event!(
                        self.config.log_level,
                        LogLevel::Warn,
                        "accept-failed",
                        error = e,
                        retry_ms = ACCEPT_BACKOFF.as_millis()
                    );
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    break;
                }
                Err(e) => {
                    event!(
                        self.config.log_level,
                        LogLevel::Warn,
                        "accept-failed",
                        error = e
                    );
                    break;
                }
            }
        }
        Ok(())
    }

    /// QEMU's `ivshmem_server_handle_new_conn`, message for message.
    fn new_peer(&mut self, sock: OwnedFd) {
        let peers = &self.peers;
        let (id, next) = allocate_id(self.cur_id, |id| peers.iter().any(|p| p.id == id));
        self.cur_id = next;
        let Some(id) = id else {
            event!(
                self.config.log_level,
                LogLevel::Warn,
                "peer-refused",
                reason = "cannot allocate new client id"
            );
            return;
        };

        let Some(vectors) = self.peer_vectors(id) else {
            return;
        };
        event!(
            self.config.log_level,
            LogLevel::Debug,
            "peer-accepted",
            peer = id
        );
        self.peers.push(Peer {
            id,
            sock,
            vectors,
            out: VecDeque::new(),
            failed: None,
            announced: false,
        });
        let new = self.peers.len() - 1;

        // a-c: version, id, shm fd to the new peer.
        self.send(new, PROTOCOL_VERSION, None);
        self.send(new, i64::from(id), None);
        let shm = self.shm.clone();
        self.send(new, -1, Some(shm));
        if let Some(reason) = &self.peers[new].failed {
            // Nobody knows about it yet: drop it silently, as QEMU does.
            event!(
                self.config.log_level,
                LogLevel::Debug,
                "peer-gone-in-handshake",
                peer = id,
                reason = reason
            );
            self.peers.pop();
            return;
        }
        self.announce(new, id);
        self.peers[new].announced = true;
        self.stats.peers.store(self.peers.len(), Ordering::Relaxed);
        event!(
            self.config.log_level,
            LogLevel::Debug,
            "peer-connected",
            peer = id,
            vectors = self.config.vectors,
            peers = self.peers.len()
        );
    }

    /// The new peer's eventfds, one per vector; `None` (and a warning) if one cannot be made.
    fn peer_vectors(&self, id: u16) -> Option<Vec<Arc<OwnedFd>>> {
        let mut vectors = Vec::with_capacity(self.config.vectors as usize);
        for _ in 0..self.config.vectors {
            match sys::eventfd() {
                Ok(fd) => vectors.push(Arc::new(fd)),
                Err(e) => {
                    event!(
                        self.config.log_level,
                        LogLevel::Warn,
                        "peer-refused",
                        peer = id,
                        reason = "cannot create eventfd",
                        error = e
                    );
                    return None;
                }
            }
        }
        Some(vectors)
    }

    /// The rest of the handshake, after the version, id and shm fd: the new peer (at `new`, id `id`) and the existing peers
    /// learn each other's vectors, and the new peer its own, last.
    fn announce(&mut self, new: usize, id: u16) {
        // The new peer's vectors to each existing peer, in connect order.
        let new_vectors = self.peers[new].vectors.clone();
        for other in 0..new {
            for fd in &new_vectors {
                self.send(other, i64::from(id), Some(fd.clone()));
            }
        }
        // Each existing peer's vectors to the new peer.
        for other in 0..new {
            let (other_id, fds) = (self.peers[other].id, self.peers[other].vectors.clone());
            for fd in fds {
                self.send(new, i64::from(other_id), Some(fd));
            }
        }
        // Its own vectors, last.
        for fd in new_vectors {
            self.send(new, i64::from(id), Some(fd));
        }
    }

    /// Queues a message for peer `idx` and tries to send what is queued.
    fn send(&mut self, idx: usize, value: i64, fd: Option<Arc<OwnedFd>>) {
        let max_backlog = self.config.max_backlog;
        let peer = &mut self.peers[idx];
        if peer.failed.is_some() {
            return;
        }
        peer.out.push_back(OutMsg {
            bytes: value.to_le_bytes(),
            sent: 0,
            fd,
        });
        if peer.out.len() == 1 {
            self.flush(idx);
        }
        let peer = &mut self.peers[idx];
        let queued = peer.out.len();
        if queued > 0 && peer.failed.is_none() {
            self.stats.queued_messages.fetch_add(1, Ordering::Relaxed);
            self.stats
                .max_queue_seen
                .fetch_max(queued, Ordering::Relaxed);
            if queued > max_backlog {
                peer.failed = Some(format!(
                    "backlog of {queued} messages exceeds {max_backlog} (peer does not read)"
                ));
                peer.out.clear();
                self.stats.dropped_backlog.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Writes as much of peer `idx`'s queue as its socket takes.
    fn flush(&mut self, idx: usize) {
        let peer = &mut self.peers[idx];
        while let Some(msg) = peer.out.front_mut() {
            let fd = if msg.sent == 0 {
                msg.fd.as_ref().map(|f| f.as_fd())
            } else {
                None
            };
            match sys::send_frame(peer.sock.as_fd(), &msg.bytes[msg.sent..], fd) {
                Ok(n) => {
                    msg.sent += n;
                    if msg.sent >= 8 {
                        peer.out.pop_front();
                    } else if n > 0 {
                        // The fd went with the first part.
                        msg.fd = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    peer.failed = Some(format!("send failed: {e}"));
                    peer.out.clear();
                    break;
                }
            }
        }
        if peer.out.is_empty() && peer.out.capacity() > 64 {
            peer.out.shrink_to(16);
        }
    }

    /// Removes failed peers, telling the others (which may fail in turn).
    fn reap(&mut self) {
        while let Some(idx) = self.peers.iter().position(|p| p.failed.is_some()) {
            let peer = self.peers.remove(idx);
            let reason = peer.failed.clone().unwrap_or_default();
            drop(peer.sock);
            if peer.announced {
                self.stats.disconnected.fetch_add(1, Ordering::Relaxed);
                for other in 0..self.peers.len() {
                    self.send(other, i64::from(peer.id), None);
                }
                let level = if reason.starts_with("backlog") {
                    LogLevel::Warn
                } else {
                    LogLevel::Debug
                };
                event!(
                    self.config.log_level,
                    level,
                    "peer-disconnected",
                    peer = peer.id,
                    reason = reason,
                    peers = self.peers.len()
                );
            }
            self.stats.peers.store(self.peers.len(), Ordering::Relaxed);
            // peer.vectors dropped here; queued copies keep their fds open
            // until sent.
        }
    }

    /// Closes every peer in connect order (each later peer hears about the
    /// earlier ones, as with QEMU's server), then removes socket and shm.
    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        event!(
            self.config.log_level,
            LogLevel::Info,
            "shutdown",
            peers = self.peers.len()
        );
        while !self.peers.is_empty() {
            let peer = self.peers.remove(0);
            drop(peer.sock);
            for other in 0..self.peers.len() {
                self.send(other, i64::from(peer.id), None);
            }
        }
        self.stats.peers.store(0, Ordering::Relaxed);
        // Remove the socket file only if it is still the one we bound.
        if let Ok(Some(st)) = sys::lstat(&self.config.socket_path) {
            if file_id(&st) == self.socket_id {
                let _ = std::fs::remove_file(&self.config.socket_path);
            }
        }
        if !self.config.keep_shm {
            if let ShmBacking::Posix(_) = self.config.shm {
                // Only if the name still refers to our object.
                if let (Ok(ours), Ok(Some(named))) =
                    (sys::fstat(self.shm.as_fd()), shm_stat(&self.config))
                {
                    if file_id(&ours) == file_id(&named) {
                        unlink_shm(&self.config);
                    }
                }
            }
        }
        event!(self.config.log_level, LogLevel::Info, "stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// QEMU's id allocation: the first id >= `cur` (16-bit, wrapping) that is
/// not in use, trying at most 65535 ids; returns it (if any) and the next
/// `cur` (the id + 1). Ids are thus not reused until the counter wraps.
fn allocate_id(mut cur: u16, in_use: impl Fn(u16) -> bool) -> (Option<u16>, u16) {
    for _ in 0..u16::MAX {
        if !in_use(cur) {
            return (Some(cur), cur.wrapping_add(1));
        }
        cur = cur.wrapping_add(1);
    }
    (None, cur)
}

fn shm_description(config: &ServerConfig) -> String {
    match &config.shm {
        ShmBacking::Posix(name) => format!("posix:{name}"),
        ShmBacking::Directory(dir) => format!("dir:{}", dir.display()),
    }
}

/// The shared memory size to use: `config.shm_size` rounded up to a power of two, after
/// the checks of the configuration QEMU's server makes first.
fn checked_shm_size(config: &ServerConfig) -> Result<u64, Error> {
    if config.vectors > MAX_VECTORS {
        return Err(Error::Config(format!(
            "too many requested vectors {} (max is {MAX_VECTORS})",
            config.vectors
        )));
    }
    if config.shm_size == 0 {
        return Err(Error::Config("shared memory size must not be 0".into()));
    }
    if config.max_backlog == 0 {
        return Err(Error::Config("max backlog must be at least 1".into()));
    }
    let size = round_up_pow2(config.shm_size).ok_or_else(|| {
        Error::Config(format!(
            "shared memory size {} is too large",
            config.shm_size
        ))
    })?;
    if size != config.shm_size {
        event!(
            config.log_level,
            LogLevel::Warn,
            "shm-size-rounded",
            requested = config.shm_size,
            size = size,
            why = "QEMU's ivshmem device needs a power of two"
        );
    }
    Ok(size)
}

/// Refuses a shared memory larger than the machine's RAM: the object is
/// sparse, so creating it would succeed, and peers would get SIGBUS once
/// the memory runs out (QEMU's server accepts such a size too).
fn check_fits_in_memory(size: u64) -> Result<(), Error> {
    let info = rustix::system::sysinfo();
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on 32-bit targets
    let ram = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1)));
    if ram > 0 && size > ram {
        return Err(Error::Config(format!(
            "shared memory size {size} is larger than this machine's memory ({ram} bytes)"
        )));
    }
    Ok(())
}

/// Refuses a live server on `path`, replaces a stale socket file.
fn prepare_socket_path(config: &ServerConfig) -> Result<(), Error> {
    let path = &config.socket_path;
    let st = match sys::lstat(path).context(|| format!("stat {}", path.display()))? {
        None => return Ok(()),
        Some(st) => st,
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Socket {
        return Err(Error::Config(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        )));
    }
    let probe = sys::unix_stream_socket().context(|| "create a Unix socket".into())?;
    match sys::connect_unix(probe.as_fd(), path) {
        // Connected, or the listen backlog is full: somebody is serving.
        Ok(()) => Err(Error::Config(format!(
            "another server is already listening on {}",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::Config(format!(
            "another server is already listening on {} (and is busy)",
            path.display()
        ))),
        Err(e) if Errno::from_io_error(&e) == Some(Errno::CONNREFUSED) => {
            std::fs::remove_file(path)
                .context(|| format!("remove stale socket {}", path.display()))?;
            event!(
                config.log_level,
                LogLevel::Info,
                "stale-socket-removed",
                socket = path.display()
            );
            Ok(())
        }
        Err(e) => Err(Error::io(
            format!("check whether a server listens on {}", path.display()),
            e,
        )),
    }
}

/// (st_dev, st_ino): what tells whether a name still refers to our file.
fn file_id(st: &Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn shm_mode(config: &ServerConfig) -> Mode {
    Mode::from_raw_mode(config.shm_mode as _)
}

/// Refuses names that `shm_open` cannot take.
fn check_shm_name(name: &str) -> Result<(), Error> {
    if name.contains('\0') {
        return Err(Error::Config("shm name contains a NUL byte".into()));
    }
    Ok(())
}

/// Opens the shared memory; the bool says whether we created it.
fn open_shm(config: &ServerConfig) -> Result<(OwnedFd, bool), Error> {
    match &config.shm {
        ShmBacking::Posix(name) => {
            check_shm_name(name)?;
            // Exclusive first, to know whether we created it; then reuse an
            // existing object and its contents, as QEMU's server does.
            let create = shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR;
            let (fd, created) = match shm::open(name.as_str(), create, shm_mode(config)) {
                Ok(fd) => (Ok(fd), true),
                Err(Errno::EXIST) => (
                    shm::open(name.as_str(), shm::OFlags::RDWR, shm_mode(config)),
                    false,
                ),
                Err(e) => (Err(e), true),
            };
            let fd =
                fd.map_err(|e| Error::io(format!("cannot open shm object {name}"), e.into()))?;
            if !created {
                check_foreign_shm(fd.as_fd(), name, config)?;
            }
            if let Err(e) = apply_owner_mode(fd.as_fd(), config) {
                if created {
                    unlink_shm(config);
                }
                return Err(e);
            }
            if !created {
                event!(config.log_level, LogLevel::Info, "shm-reused", shm = name);
            }
            Ok((fd, created))
        }
        ShmBacking::Directory(dir) => Ok((create_unlinked_file(dir)?, true)),
    }
}

/// Refuses to reuse an existing shm object that another user owns or that grants more
/// access than ours would: whoever could open it may still hold it mapped, and a chmod now
/// would not take that away, so all traffic would be theirs to read and write.
fn check_foreign_shm(fd: BorrowedFd<'_>, name: &str, config: &ServerConfig) -> Result<(), Error> {
    let st = sys::fstat(fd).context(|| format!("fstat shm object {name}"))?;
    let uid = rustix::process::geteuid().as_raw();
    let wider = st.st_mode & 0o777 & !(config.shm_mode & 0o777);
    if st.st_uid != uid || wider != 0 {
        return Err(Error::Config(format!(
            "shm object {name} already exists (owner uid {}, mode {:o}) and was not made by \
             this user with mode {:o}: refusing to share memory that others may have mapped; \
             remove /dev/shm/{name} or choose another name (-M)",
            st.st_uid,
            st.st_mode & 0o777,
            config.shm_mode & 0o777
        )));
    }
    Ok(())
}

/// QEMU's `mkstemp("DIR/ivshmem.XXXXXX")` followed by `unlink()`: a new
/// file (`O_EXCL`, mode 0600) that no name refers to any more.
fn create_unlinked_file(dir: &Path) -> Result<OwnedFd, Error> {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut state = seed | 1;
    for _ in 0..100 {
        let suffix: String = (0..6)
            .map(|_| {
                // xorshift64: enough to make a clash with another file unlikely.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                LETTERS[(state % LETTERS.len() as u64) as usize] as char
            })
            .collect();
        let path = dir.join(format!("ivshmem.{suffix}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match file {
            Ok(file) => {
                std::fs::remove_file(&path).context(|| format!("unlink {}", path.display()))?;
                return Ok(file.into());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::io(
                    format!("cannot create a file in {}", dir.display()),
                    e,
                ))
            }
        }
    }
    Err(Error::Config(format!(
        "cannot create a file in {}: every name tried exists",
        dir.display()
    )))
}

/// fchmod/fchown the shm object as configured. An existing object owned by
/// someone else cannot be changed: that is a warning-free no-op only when
/// nothing was asked for explicitly.
fn apply_owner_mode(fd: BorrowedFd<'_>, config: &ServerConfig) -> Result<(), Error> {
    rustix::fs::fchmod(fd, shm_mode(config)).map_err(|e| {
        Error::io(
            format!("chmod {:o} the shm object", config.shm_mode),
            e.into(),
        )
    })?;
    if config.owner.is_some() || config.group.is_some() {
        let uid = config.owner.map(rustix::fs::Uid::from_raw);
        let gid = config.group.map(rustix::fs::Gid::from_raw);
        rustix::fs::fchown(fd, uid, gid)
            .map_err(|e| Error::io("chown the shm object", e.into()))?;
    }
    Ok(())
}

/// QEMU's `ivshmem_server_ftruncate`: nothing if the size is already right,
/// else the size, else doubling up to 1 GiB (hugetlbfs page sizes).
fn set_shm_size(fd: &OwnedFd, size: u64, config: &ServerConfig) -> Result<u64, Error> {
    if let Ok(st) = sys::fstat(fd.as_fd()) {
        if st.st_size as u64 == size {
            return Ok(size);
        }
    }
    let mut try_size = size;
    loop {
        if i64::try_from(try_size).is_err() {
            return Err(Error::Config(format!(
                "shared memory size {try_size} is too large"
            )));
        }
        match rustix::fs::ftruncate(fd, try_size) {
            Ok(()) => return Ok(try_size),
            Err(e) => {
                if try_size >= MAX_HUGEPAGE_SIZE {
                    return Err(Error::io(
                        format!(
                            "ftruncate({}) to {size} bytes (and larger powers of two up to 1 GiB)",
                            shm_description(config)
                        ),
                        e.into(),
                    ));
                }
                try_size *= 2;
            }
        }
    }
}

fn shm_stat(config: &ServerConfig) -> Result<Option<Stat>, Error> {
    let ShmBacking::Posix(name) = &config.shm else {
        return Ok(None);
    };
    check_shm_name(name)?;
    match shm::open(name.as_str(), shm::OFlags::RDONLY, Mode::empty()) {
        Ok(fd) => Ok(Some(sys::fstat(fd.as_fd()).context(|| "fstat shm".into())?)),
        Err(_) => Ok(None),
    }
}

fn unlink_shm(config: &ServerConfig) {
    if let ShmBacking::Posix(name) = &config.shm {
        if check_shm_name(name).is_ok() {
            let _ = shm::unlink(name.as_str());
        }
    }
}

/// socket/bind/chmod/chown/listen. Nobody can connect before `listen()`,
/// so the mode and owner are right before the first client arrives.
fn listen_socket(config: &ServerConfig) -> Result<(OwnedFd, (u64, u64)), Error> {
    let path = &config.socket_path;
    let sock = sys::unix_stream_socket().context(|| "create a Unix socket".into())?;
    sys::bind_unix(sock.as_fd(), path).context(|| format!("cannot bind {}", path.display()))?;
    let undo = |e: Error| {
        let _ = std::fs::remove_file(path);
        e
    };
    std::fs::set_permissions(path, Permissions::from_mode(config.socket_mode))
        .context(|| format!("chmod {:o} {}", config.socket_mode, path.display()))
        .map_err(undo)?;
    if config.owner.is_some() || config.group.is_some() {
        std::os::unix::fs::lchown(path, config.owner, config.group)
            .context(|| format!("chown {}", path.display()))
            .map_err(undo)?;
    }
    let st = sys::lstat(path)
        .context(|| format!("stat {}", path.display()))
        .map_err(undo)?
        .ok_or_else(|| {
            undo(Error::Config(format!(
                "{} vanished after bind",
                path.display()
            )))
        })?;
    sys::listen(sock.as_fd(), LISTEN_BACKLOG)
        .context(|| format!("listen on {}", path.display()))
        .map_err(undo)?;
    Ok((sock, file_id(&st)))
}

/// Resolves a user name or numeric uid.
pub fn lookup_user(name: &str) -> Result<u32, Error> {
    lookup_id(name, "user", |n| {
        Ok(nix::unistd::User::from_name(n)?.map(|u| u.uid.as_raw()))
    })
}

/// Resolves a group name or numeric gid.
pub fn lookup_group(name: &str) -> Result<u32, Error> {
    lookup_id(name, "group", |n| {
        Ok(nix::unistd::Group::from_name(n)?.map(|g| g.gid.as_raw()))
    })
}

/// A numeric id as it is, else the id `by_name` finds for the `kind` ("user", "group").
fn lookup_id(
    name: &str,
    kind: &str,
    by_name: impl FnOnce(&str) -> nix::Result<Option<u32>>,
) -> Result<u32, Error> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(id);
    }
    match by_name(name) {
        Ok(Some(id)) => Ok(id),
        _ => Err(Error::Config(format!("unknown {kind} '{name}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::allocate_id;

    #[test]
    fn ids_increase_skip_used_and_wrap() {
        assert_eq!(allocate_id(0, |_| false), (Some(0), 1));
        // After 0 and 1 connect and 1 leaves, the next peer gets 2.
        assert_eq!(allocate_id(2, |id| id == 0), (Some(2), 3));
        // The counter wraps and skips ids still in use.
        assert_eq!(allocate_id(65535, |_| false), (Some(65535), 0));
        assert_eq!(
            allocate_id(65534, |id| !(3..65534).contains(&id)),
            (Some(3), 4)
        );
        // Like QEMU, at most 65535 ids are tried.
        assert_eq!(allocate_id(7, |id| id != 6).0, None);
        assert_eq!(allocate_id(7, |id| id != 5).0, Some(5));
    }
}
