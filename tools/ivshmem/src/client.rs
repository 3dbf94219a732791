//! The peer side of the protocol: connect to an ivshmem server like QEMU's
//! `ivshmem-doorbell` device does, keep track of the other peers and their
//! eventfds, ring their doorbells and wait for our own interrupts.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::io::Errno;

use crate::error::{Context, Error};
use crate::shm::ShmMapping;
use crate::sys;
use crate::PROTOCOL_VERSION;

/// How long the socket must stay quiet after our own vectors before a
/// learning handshake ends.
const HANDSHAKE_QUIET: Duration = Duration::from_millis(20);
/// The same while none of our own vectors has come.
const HANDSHAKE_QUIET_NO_VECTORS: Duration = Duration::from_millis(200);

/// Something that changed after [`PeerConnection::connect`] returned, as
/// reported by [`PeerConnection::process_messages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The first eventfd of a peer we did not know arrived. It is always
    /// followed by `VectorAdded { id, vector: 0 }`.
    Connected {
        /// The peer's id.
        id: u16,
    },
    /// One more eventfd of another peer arrived; `vector` is its index.
    VectorAdded {
        /// The peer's id.
        id: u16,
        /// The vector index (the k-th fd for that id is vector k-1).
        vector: u16,
    },
    /// One more of our own eventfds arrived (only if the server has more
    /// vectors than `min_own_vectors` and they were late).
    OwnVectorAdded {
        /// The vector index.
        vector: u16,
    },
    /// A known peer left; our copies of its eventfds are already closed.
    /// Disconnects of ids we never saw (peers without vectors) are not reported.
    Disconnected {
        /// The peer's id.
        id: u16,
    },
    /// The server closed the connection. Eventfds and the shared memory keep
    /// working (as with QEMU), but no more peer changes will be reported.
    ServerClosed,
}

/// Another peer as seen from our connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's id.
    pub id: u16,
    /// How many of its eventfds (vectors) we have.
    pub vectors: usize,
}

/// Partial incoming frame (the server never splits frames, but a stream
/// socket is allowed to).
#[derive(Debug, Default)]
struct RxState {
    buf: [u8; 8],
    len: usize,
    fd: Option<OwnedFd>,
}

/// How long to wait for the next frame.
#[derive(Clone, Copy)]
enum Wait {
    NonBlocking,
    Until(Instant),
}

/// A connection to an ivshmem server, as a peer.
///
/// Created by [`PeerConnection::connect`], which performs the handshake.
/// Afterwards the caller polls [`PeerConnection::socket_fd`] and calls
/// [`PeerConnection::process_messages`] when it is readable, and polls
/// [`PeerConnection::own_vectors`] for interrupts.
#[derive(Debug)]
pub struct PeerConnection {
    core: Core,
    shm: OwnedFd,
    shm_size: u64,
    pending_error: Option<Error>,
}

/// Connection state shared by the handshake and the steady state.
#[derive(Debug)]
struct Core {
    sock: OwnedFd,
    id: u16,
    own: Vec<OwnedFd>,
    peers: BTreeMap<u16, Vec<OwnedFd>>,
    rx: RxState,
    closed: bool,
}

/// A Unix stream socket connected to `path`; a full listen backlog (the server
/// is busy) is retried until `deadline`.
fn connect_socket(path: &Path, deadline: Instant) -> Result<OwnedFd, Error> {
    let sock = sys::unix_stream_socket().context(|| "create a Unix socket".into())?;
    loop {
        match sys::connect_unix(sock.as_fd(), path) {
            Ok(()) => return Ok(sock),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io(format!("connect to {}", path.display()), e)),
        }
    }
}

impl Core {
    /// Handshake steps 1 and 2: the protocol version and our id, neither with an fd.
    fn read_greeting(&mut self, wait: Wait) -> Result<(), Error> {
        let (version, fd) = self.read_frame(wait)?;
        if fd.is_some() {
            return Err(Error::Protocol(
                "server sent invalid version message (with an fd)".into(),
            ));
        }
        if version != PROTOCOL_VERSION {
            return Err(Error::Protocol(format!(
                "server sent version {version}, expecting {PROTOCOL_VERSION}"
            )));
        }
        let (id, fd) = self.read_frame(wait)?;
        if fd.is_some() || !(0..=0xffff).contains(&id) {
            return Err(Error::Protocol(format!(
                "server sent invalid ID message {id}"
            )));
        }
        self.id = id as u16;
        Ok(())
    }

    /// Handshake step 3: everything up to and including -1 with the shared-memory fd
    /// (QEMU also accepts peer messages before it); the fd and its size.
    fn read_until_shm(
        &mut self,
        wait: Wait,
        ignored: &mut Vec<PeerEvent>,
    ) -> Result<(OwnedFd, u64), Error> {
        loop {
            let (value, fd) = self.read_frame(wait)?;
            if value == -1 {
                let fd = fd.ok_or_else(|| {
                    Error::Protocol("server sent shared memory message without an fd".into())
                })?;
                let st = sys::fstat(fd.as_fd()).context(|| "fstat the shared memory fd".into())?;
                return Ok((fd, st.st_size as u64));
            }
            self.handle(value, fd, ignored)?;
        }
    }

    /// Handshake step 5: whatever else is already there; when `learning` the server's
    /// vector count, all the rest of the handshake. Our own vectors come last, in one
    /// burst: wait a little for the rest of it (longer while none of ours came: the
    /// server may have -n 0, or be slow).
    fn read_rest(
        &mut self,
        learning: bool,
        deadline: Instant,
        ignored: &mut Vec<PeerEvent>,
    ) -> Result<(), Error> {
        loop {
            while let Some((value, fd)) = self.try_read_frame()? {
                self.handle(value, fd, ignored)?;
            }
            if !learning {
                return Ok(());
            }
            let quiet = if !self.own.is_empty() {
                HANDSHAKE_QUIET
            } else {
                HANDSHAKE_QUIET_NO_VECTORS
            };
            let until = deadline.min(Instant::now() + quiet);
            match self.read_frame(Wait::Until(until)) {
                Ok((value, fd)) => self.handle(value, fd, ignored)?,
                Err(Error::Timeout(_)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

impl PeerConnection {
    /// Connects to the server at `path` and performs the handshake:
    /// protocol version (must be 0), our id, the shared-memory fd (its size
    /// comes from `fstat`), the eventfds of the peers already connected, and
    /// our own eventfds.
    ///
    /// The protocol does not say how many vectors the server uses, so this
    /// waits until at least `min_own_vectors` of our own eventfds arrived
    /// (use the server's `-n`), then also takes whatever else is immediately
    /// readable. The whole handshake, including waiting for a full listen
    /// backlog, must finish within `timeout`. [`PeerConnection::connect_learning`]
    /// needs no vector count.
    pub fn connect(
        path: &Path,
        min_own_vectors: usize,
        timeout: Duration,
    ) -> Result<PeerConnection, Error> {
        Self::handshake(path, Some(min_own_vectors), timeout)
    }

    /// Like [`PeerConnection::connect`], but learns the server's vector
    /// count as QEMU's client does: it takes every eventfd the server sends.
    /// Our own come last, in one burst, so the handshake is over when the
    /// socket has been quiet for a moment after them (20 ms; 200 ms while
    /// none came, which is what a server with `-n 0` looks like).
    pub fn connect_learning(path: &Path, timeout: Duration) -> Result<PeerConnection, Error> {
        Self::handshake(path, None, timeout)
    }

    fn handshake(
        path: &Path,
        min_own_vectors: Option<usize>,
        timeout: Duration,
    ) -> Result<PeerConnection, Error> {
        let deadline = Instant::now() + timeout;
        let mut conn = Core {
            sock: connect_socket(path, deadline)?,
            id: 0,
            own: Vec::new(),
            peers: BTreeMap::new(),
            rx: RxState::default(),
            closed: false,
        };
        let wait = Wait::Until(deadline);
        let handshake_err = |e: Error| match e {
            Error::ServerClosed => {
                Error::Protocol("the server closed the connection during the handshake".into())
            }
            Error::Timeout(_) => Error::Timeout(format!(
                "handshake with {} did not complete within {timeout:?}",
                path.display()
            )),
            e => e,
        };
        conn.read_greeting(wait).map_err(handshake_err)?;
        let mut ignored = Vec::new();
        let (shm, shm_size) = conn
            .read_until_shm(wait, &mut ignored)
            .map_err(handshake_err)?;
        // 4. Other peers' eventfds, then ours.
        let min_own = min_own_vectors.unwrap_or(0);
        while conn.own.len() < min_own {
            let (value, fd) = conn.read_frame(wait).map_err(|e| match e {
                Error::Timeout(_) => Error::Timeout(format!(
                    "got {} of our own eventfds from {}, expected at least {min_own} \
                     (does the server use fewer vectors, -n?)",
                    conn.own.len(),
                    path.display(),
                )),
                e => handshake_err(e),
            })?;
            conn.handle(value, fd, &mut ignored)?;
        }
        conn.read_rest(min_own_vectors.is_none(), deadline, &mut ignored)
            .map_err(handshake_err)?;
        Ok(PeerConnection {
            core: conn,
            shm,
            shm_size,
            pending_error: None,
        })
    }

    /// Our peer id (QEMU's IVPosition).
    pub fn id(&self) -> u16 {
        self.core.id
    }

    /// Size of the shared memory in bytes (`st_size` of its fd).
    pub fn shm_size(&self) -> u64 {
        self.shm_size
    }

    /// The shared-memory file descriptor.
    pub fn shm_fd(&self) -> BorrowedFd<'_> {
        self.shm.as_fd()
    }

    /// Our own eventfds, index = vector: poll them for our interrupts.
    pub fn own_vectors(&self) -> &[OwnedFd] {
        &self.core.own
    }

    /// The other peers we know, ordered by id, with their vector counts.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.core
            .peers
            .iter()
            .map(|(&id, fds)| PeerInfo {
                id,
                vectors: fds.len(),
            })
            .collect()
    }

    /// The eventfds of peer `id` (index = vector), if we know it.
    pub fn peer_vectors(&self, id: u16) -> Option<&[OwnedFd]> {
        if id == self.core.id {
            return Some(&self.core.own);
        }
        self.core.peers.get(&id).map(|v| v.as_slice())
    }

    /// The socket to the server: poll it for `POLLIN`, then call
    /// [`PeerConnection::process_messages`].
    pub fn socket_fd(&self) -> BorrowedFd<'_> {
        self.core.sock.as_fd()
    }

    /// Whether the server has closed the connection.
    pub fn is_server_closed(&self) -> bool {
        self.core.closed
    }

    /// Handles all messages that are ready, without blocking, and reports
    /// what changed. A disconnected peer's eventfds are closed here.
    ///
    /// A protocol violation is returned as an error after the events that
    /// preceded it have been returned; the connection stays usable.
    pub fn process_messages(&mut self) -> Result<Vec<PeerEvent>, Error> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        let mut events = Vec::new();
        if self.core.closed {
            return Ok(events);
        }
        loop {
            let result = match self.core.try_read_frame() {
                Ok(Some((value, fd))) => self.core.handle(value, fd, &mut events),
                Ok(None) => break,
                Err(Error::ServerClosed) => {
                    self.core.closed = true;
                    events.push(PeerEvent::ServerClosed);
                    break;
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                if events.is_empty() {
                    return Err(e);
                }
                self.pending_error = Some(e);
                break;
            }
        }
        Ok(events)
    }

    /// Rings `vector` of `peer` (our own id is allowed): adds 1 to its eventfd.
    pub fn notify(&self, peer: u16, vector: u16) -> io::Result<()> {
        let fds = self.peer_vectors(peer).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("unknown peer {peer}"))
        })?;
        let fd = fds.get(vector as usize).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("peer {peer} has {} vectors, no vector {vector}", fds.len()),
            )
        })?;
        sys::eventfd_write(fd.as_fd(), 1)
    }

    /// Rings every vector of `peer`; returns how many were rung.
    pub fn notify_all_vectors(&self, peer: u16) -> io::Result<usize> {
        let n = self
            .peer_vectors(peer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("unknown peer {peer}")))?
            .len();
        for v in 0..n {
            self.notify(peer, v as u16)?;
        }
        Ok(n)
    }

    /// Maps the shared memory read/write (`MAP_SHARED`).
    pub fn map_shm(&self) -> Result<ShmMapping, Error> {
        let len = usize::try_from(self.shm_size).map_err(|_| {
            Error::Config(format!(
                "shared memory of {} bytes is too large to map",
                self.shm_size
            ))
        })?;
        ShmMapping::new(self.shm.as_fd(), len)
    }

    /// Waits up to `timeout` (forever if `None`) for an interrupt on any of
    /// our vectors; returns the summed counts (0 on timeout).
    pub fn wait_interrupt(&self, timeout: Option<Duration>) -> io::Result<u64> {
        wait_eventfds(&self.core.own, timeout)
    }

    /// Like [`PeerConnection::wait_interrupt`] but per vector: element `v` is
    /// the count read from vector `v` (all zero on timeout).
    pub fn poll_interrupts(&self, timeout: Option<Duration>) -> io::Result<Vec<u64>> {
        wait_eventfds_each(&self.core.own, timeout)
    }

    /// Clears pending interrupts on our vectors without waiting; returns the
    /// summed counts.
    pub fn drain_interrupts(&self) -> io::Result<u64> {
        drain_eventfds(&self.core.own)
    }
}

impl Core {
    /// Reads one frame without blocking; `Ok(None)` if none is complete.
    fn try_read_frame(&mut self) -> Result<Option<(i64, Option<OwnedFd>)>, Error> {
        match self.read_frame(Wait::NonBlocking) {
            Ok(frame) => Ok(Some(frame)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads one 8-byte frame (exactly 8 bytes per `recvmsg` at most, see the
    /// protocol notes: the kernel may otherwise join messages).
    fn read_frame(&mut self, wait: Wait) -> Result<(i64, Option<OwnedFd>), Error> {
        loop {
            let len = self.rx.len;
            let r = sys::recv_with_fds(self.sock.as_fd(), &mut self.rx.buf[len..]);
            match r {
                Ok(r) if r.n == 0 => {
                    self.closed = true;
                    return Err(Error::ServerClosed);
                }
                Ok(r) => {
                    self.rx.len += r.n;
                    let mut fds = r.fds.into_iter();
                    if self.rx.fd.is_none() {
                        self.rx.fd = fds.next();
                    }
                    let extra = fds.count();
                    if r.truncated {
                        return Err(Error::Protocol(
                            "file descriptors were dropped by the kernel (MSG_CTRUNC); \
                             is RLIMIT_NOFILE too low?"
                                .into(),
                        ));
                    }
                    if extra > 0 {
                        return Err(Error::Protocol(format!(
                            "server sent {} file descriptors with one message",
                            extra + 1
                        )));
                    }
                    if self.rx.len == 8 {
                        let value = i64::from_le_bytes(self.rx.buf);
                        self.rx.len = 0;
                        return Ok((value, self.rx.fd.take()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let deadline = match wait {
                        Wait::NonBlocking => return Err(Error::Timeout("no message".into())),
                        Wait::Until(d) => d,
                    };
                    let left = sys::remaining(deadline);
                    if left.is_zero() {
                        return Err(Error::Timeout("no message from the server".into()));
                    }
                    let mut pfd = [sys::pollfd(&self.sock, PollFlags::IN)];
                    sys::poll(&mut pfd, Some(left)).context(|| "poll the server socket".into())?;
                }
                Err(e) if Errno::from_io_error(&e) == Some(Errno::CONNRESET) => {
                    self.closed = true;
                    return Err(Error::ServerClosed);
                }
                Err(e) => return Err(Error::io("receive from the server", e)),
            }
        }
    }

    /// Applies one message to our state.
    fn handle(
        &mut self,
        value: i64,
        fd: Option<OwnedFd>,
        events: &mut Vec<PeerEvent>,
    ) -> Result<(), Error> {
        if value == -1 {
            return Err(Error::Protocol(
                "server sent unexpected shared memory message".into(),
            ));
        }
        if !(0..=0xffff).contains(&value) {
            return Err(Error::Protocol(format!(
                "server sent invalid message {value}"
            )));
        }
        let id = value as u16;
        match fd {
            Some(fd) if id == self.id => {
                // Best effort, as QEMU does: we poll and read these fds.
                let _ = sys::set_nonblocking(fd.as_fd());
                self.own.push(fd);
                events.push(PeerEvent::OwnVectorAdded {
                    vector: (self.own.len() - 1) as u16,
                });
            }
            Some(fd) => {
                let fds = self.peers.entry(id).or_default();
                if fds.is_empty() {
                    events.push(PeerEvent::Connected { id });
                }
                fds.push(fd);
                events.push(PeerEvent::VectorAdded {
                    id,
                    vector: (fds.len() - 1) as u16,
                });
            }
            None if id == self.id => {
                return Err(Error::Protocol(format!(
                    "server sent disconnect for our own id {id}"
                )));
            }
            None => {
                if self.peers.remove(&id).is_some() {
                    events.push(PeerEvent::Disconnected { id });
                }
            }
        }
        Ok(())
    }
}

/// Reads one eventfd without blocking and returns its count (0 if unset).
pub fn read_eventfd(fd: BorrowedFd<'_>) -> io::Result<u64> {
    sys::eventfd_read(fd)
}

/// Waits up to `timeout` (forever if `None`) until any of `fds` is readable,
/// then reads all readable ones; returns the summed counts (0 on timeout).
pub fn wait_eventfds<F: AsFd>(fds: &[F], timeout: Option<Duration>) -> io::Result<u64> {
    Ok(wait_eventfds_each(fds, timeout)?.iter().sum())
}

/// Like [`wait_eventfds`] but returns the count of each fd.
pub fn wait_eventfds_each<F: AsFd>(fds: &[F], timeout: Option<Duration>) -> io::Result<Vec<u64>> {
    let mut counts = vec![0; fds.len()];
    if fds.is_empty() {
        if let Some(t) = timeout {
            thread::sleep(t);
        }
        return Ok(counts);
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(sys::remaining);
        let ready = sys::poll_each(fds.iter().map(|f| (f.as_fd(), PollFlags::IN)), left)?;
        let mut any = false;
        for (i, revents) in ready.iter().enumerate() {
            if revents.contains(PollFlags::IN) {
                counts[i] += sys::eventfd_read(fds[i].as_fd())?;
                any |= counts[i] > 0;
            }
        }
        if any || left.is_some_and(|l| l.is_zero()) {
            return Ok(counts);
        }
    }
}

/// Reads (clears) all of `fds` without blocking; returns the summed counts.
pub fn drain_eventfds<F: AsFd>(fds: &[F]) -> io::Result<u64> {
    let mut total = 0;
    for fd in fds {
        total += sys::eventfd_read(fd.as_fd())?;
    }
    Ok(total)
}
