//! The Linux platform under the engine: an ivshmem-server connection whose eventfds are the
//! doorbells, plus the waiting the engine leaves to its caller.
//!
//! * Interrupt: our own vector 0 eventfd (the server hands it out; the peer writes it).
//! * Doorbell: the peer's vector 0 eventfd, looked up by the ivshmem id the engine read from
//!   the shared control area (never "own id ± 1").
//! * Peer changes (connects, disconnects, the server going away) arrive on the server
//!   socket and are queued as [`PeerEvent`]s for the node loops.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ivshmem::{PeerConnection, PeerEvent, ShmMapping};
use rpmsg_engine::rpmsg::{LinkProtocol, Transport};
use rpmsg_engine::{Doorbell, Rpmsg};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::error::Error;

/// How long the ivshmem handshake may take (the server answers at once when it is alive).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The interrupt vector used in both directions (as the reference does).
pub const VECTOR: u16 = 0;

/// How long a node spins (looking at the rings, yielding the CPU between looks) before it
/// blocks on the doorbell, by default.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Waits for the peer as cheaply as the moment allows, and returns what woke us.
///
/// 0. Ring the peer if it wants to hear about what we sent or returned since we last woke
///    up ([`Rpmsg::flush_doorbell`]: one check, one doorbell at most, for the whole batch).
/// 1. Spin for up to `spin`: look at the rings ([`Rpmsg::has_pending`]); between looks,
///    give the CPU to whoever else wants it (`sched_yield`, which returns at once when
///    nobody does: on a machine where both peers share a CPU, the peer needs it to answer).
///    Meanwhile the peer does not ring us ([`Rpmsg::busy_poll`]): no system call on either
///    side while a conversation is going on.
/// 2. Ask to be rung again and look once more ([`Rpmsg::prepare_to_wait`]), then block on the
///    doorbell ([`Ivshmem::wait`]) for up to `timeout`.
/// 3. Awake again: tell the peer not to ring while we work, and (when spinning) hold our
///    own doorbells back until the next wait ([`Rpmsg::defer_doorbells`]).
///
/// `spin` zero skips step 1: every wake-up is then a doorbell, the path the bench compares
/// with its eventfd ping-pong. It also rings the peer for every message it wants to hear
/// about instead of once per batch: a peer that never spins sleeps as soon as it runs dry,
/// and in a stream across two CPUs the extra doorbells keep both sides' busy periods
/// overlapping (one batch-end doorbell per 16 messages costs two ~25 us wake-ups per
/// batch there: 4-5 times less throughput).
pub fn wait_for_peer<'a, T>(
    engine: &mut Rpmsg<'a, T, Ivshmem>,
    spin: Duration,
    timeout: Duration,
    extra: Option<BorrowedFd<'_>>,
) -> Wake
where
    T: Transport<'a>,
    Rpmsg<'a, T, Ivshmem>: LinkProtocol,
{
    // Liveness first (our heartbeat, the peer's); no wait is longer than a heartbeat.
    if engine.keep_alive(uptime_us()) == Ok(false) {
        let text = match T::HOST {
            true => rpmsg_app::text::REMOTE_SILENT,
            false => rpmsg_app::text::HOST_SILENT,
        };
        crate::diag!("{text}");
    }
    let timeout = timeout.min(Duration::from_micros(rpmsg_engine::rpmsg::BEAT_PERIOD_US));
    let _ = engine.flush_doorbell();
    let woken = |engine: &mut Rpmsg<'a, T, Ivshmem>| {
        let _ = engine.busy_poll();
        if !spin.is_zero() {
            engine.defer_doorbells();
        }
    };
    if !spin.is_zero() && spin_until(|| engine.has_pending(), spin.min(timeout)) {
        woken(engine);
        return Wake::default();
    }
    if engine.prepare_to_wait().unwrap_or(false) {
        woken(engine);
        return Wake::default();
    }
    let wake = engine.doorbell().wait(timeout, extra);
    woken(engine);
    wake
}

/// Microseconds since this process first asked (the engine's [`rpmsg_engine::Clock`]
/// time base for [`Rpmsg::keep_alive`]).
pub fn uptime_us() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Calls `ready` until it says true (then returns true) or `budget` has passed.
///
/// Between looks it yields the CPU (`sched_yield`), in case the peer runs on this CPU and
/// needs it to answer. A yield that comes back at once says that nobody else wanted the
/// CPU: then it looks more often between yields (up to [`MAX_LOOKS_PER_YIELD`], with a
/// pause instruction between looks), which saves the system calls when the peer runs on
/// another CPU; a yield that took long starts over with one look per yield.
pub fn spin_until(mut ready: impl FnMut() -> bool, budget: Duration) -> bool {
    let start = Instant::now();
    let mut looks = 1;
    loop {
        for _ in 0..looks {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        let before = Instant::now();
        if before.duration_since(start) >= budget {
            return ready();
        }
        rustix::thread::sched_yield();
        looks = if before.elapsed() < QUICK_YIELD {
            (looks * 2).min(MAX_LOOKS_PER_YIELD)
        } else {
            1
        };
    }
}

/// A yield that returns within this time ran nobody else.
const QUICK_YIELD: Duration = Duration::from_micros(3);
/// Most looks between two yields (a few microseconds of looking).
const MAX_LOOKS_PER_YIELD: u32 = 256;

/// What woke [`Ivshmem::wait`] up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wake {
    /// The peer rang our doorbell (the eventfd was read and cleared).
    pub interrupt: bool,
    /// The server sent something (see [`Ivshmem::take_events`]).
    pub server: bool,
    /// The extra descriptor passed to [`Ivshmem::wait`] is readable (or hung up).
    pub extra: bool,
}

/// A peer connection to an ivshmem-server, used as the engine's [`Doorbell`].
#[derive(Debug)]
pub struct Ivshmem {
    conn: PeerConnection,
    socket: PathBuf,
    events: VecDeque<PeerEvent>,
    rings: u64,
    failed_rings: u64,
    interrupts: u64,
    server_errors: u64,
}

impl Ivshmem {
    /// Connects to the server at `socket` and performs the ivshmem handshake.
    ///
    /// The error says what to do when the server is absent or refuses us.
    pub fn connect(socket: &Path) -> Result<Self, Error> {
        let conn = PeerConnection::connect(socket, 1, CONNECT_TIMEOUT).map_err(|e| {
            let hint = match &e {
                ivshmem::Error::Io { source, .. }
                    if matches!(
                        source.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    format!(
                        "; is the ivshmem-server running? Start it with \
                         `ivshmem-server -F -S {path}` or point -S/--socket at it",
                        path = socket.display()
                    )
                }
                _ => String::new(),
            };
            Error::runtime(format!(
                "cannot attach to the ivshmem-server at {}: {e}{hint}",
                socket.display()
            ))
        })?;
        if conn.own_vectors().is_empty() {
            return Err(Error::runtime(format!(
                "the ivshmem-server at {} gives its peers no interrupt vectors; \
                 start it with at least one (-n 1)",
                socket.display()
            )));
        }
        Ok(Self {
            conn,
            socket: socket.to_path_buf(),
            events: VecDeque::new(),
            rings: 0,
            failed_rings: 0,
            interrupts: 0,
            server_errors: 0,
        })
    }

    /// Our ivshmem id.
    pub fn id(&self) -> u16 {
        self.conn.id()
    }

    /// The server's socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Size of the shared memory in bytes.
    pub fn shm_size(&self) -> u64 {
        self.conn.shm_size()
    }

    /// Maps the shared memory.
    pub fn map(&self) -> Result<ShmMapping, Error> {
        self.conn
            .map_shm()
            .map_err(|e| Error::runtime(format!("cannot map the shared memory: {e}")))
    }

    /// Ids of the other peers currently connected to the server.
    pub fn peer_ids(&self) -> Vec<u16> {
        self.conn.peers().iter().map(|p| p.id).collect()
    }

    /// Whether peer `id` is connected to the server (our own id counts).
    pub fn is_connected(&self, id: u16) -> bool {
        self.conn.peer_vectors(id).is_some_and(|v| !v.is_empty())
    }

    /// Whether the server closed our connection (doorbells keep working).
    pub fn is_server_closed(&self) -> bool {
        self.conn.is_server_closed()
    }

    /// Doorbells rung, doorbells that could not be rung (unknown peer), interrupts taken.
    pub fn counters(&self) -> (u64, u64, u64) {
        (self.rings, self.failed_rings, self.interrupts)
    }

    /// Rings every other connected peer: used after the host (re)initialised the region so
    /// that a waiting remote attaches at once instead of at its next poll.
    pub fn ring_all_peers(&mut self) {
        self.absorb_server_messages();
        for id in self.peer_ids() {
            if self.conn.notify(id, VECTOR).is_ok() {
                self.rings += 1;
            }
        }
    }

    /// Peer changes seen since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<PeerEvent> {
        self.events.drain(..).collect()
    }

    /// Whether peer changes are waiting in [`Ivshmem::take_events`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Reads whatever the server sent, without blocking, into the event queue.
    pub fn absorb_server_messages(&mut self) {
        match self.conn.process_messages() {
            Ok(events) => self.events.extend(events),
            Err(e) => {
                self.server_errors += 1;
                if self.server_errors <= 3 {
                    eprintln!("rpmsg-ivshmem: ivshmem-server message ignored: {e}");
                }
            }
        }
    }

    /// Clears a pending doorbell without waiting; true if one was pending.
    pub fn clear_interrupt(&mut self) -> bool {
        let n = ivshmem::drain_eventfds(self.conn.own_vectors()).unwrap_or(0);
        self.interrupts += n;
        n > 0
    }

    /// The bare doorbell path to `peer` (see [`RawDoorbell`]), if the server told us its
    /// eventfd.
    pub fn raw_doorbell(&mut self, peer: u16) -> Option<RawDoorbell<'_>> {
        if self.conn.peer_vectors(peer).is_none() {
            self.absorb_server_messages();
        }
        let own = self.conn.own_vectors().first()?.as_fd();
        let peer = self
            .conn
            .peer_vectors(peer)?
            .get(usize::from(VECTOR))?
            .as_fd();
        Some(RawDoorbell { own, peer })
    }

    /// Waits up to `timeout` for the server's messages only (e.g. to see whether a peer
    /// that looks alive is in fact leaving); interrupts are left pending.
    pub fn wait_server(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.conn.is_server_closed() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let mut fd = [PollFd::from_borrowed_fd(
                self.conn.socket_fd(),
                PollFlags::IN,
            )];
            let ms = left.as_millis().max(1);
            if poll(&mut fd, ms) > 0 {
                self.absorb_server_messages();
            }
        }
    }

    /// Blocks until the peer rings, the server sends something, `extra` becomes readable,
    /// or `timeout` passes. Interrupts are cleared and server messages absorbed here.
    pub fn wait(&mut self, timeout: Duration, extra: Option<BorrowedFd<'_>>) -> Wake {
        let own = self.conn.own_vectors().first().map(|fd| fd.as_fd());
        let server = (!self.conn.is_server_closed()).then(|| self.conn.socket_fd());
        // (own, server, extra), leaving out the ones we do not have.
        let slots = [own, server, extra];
        let mut fds: Vec<PollFd<'_>> = slots
            .iter()
            .flatten()
            .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
            .collect();
        // Round sub-millisecond waits up, so that a short wait is not a busy loop.
        let ms = timeout.as_millis();
        let ms = if ms == 0 && !timeout.is_zero() { 1 } else { ms };
        let mut wake = Wake::default();
        if poll(&mut fds, ms) == 0 {
            // Timeout, or EINTR: the caller re-checks everything anyway.
            return wake;
        }
        let mut revents = [PollFlags::empty(); 3];
        let mut ready = fds.iter().map(|p| p.revents());
        for (slot, fd) in revents.iter_mut().zip(slots) {
            if fd.is_some() {
                *slot = ready.next().unwrap_or_else(PollFlags::empty);
            }
        }
        drop(fds);
        if revents[0].contains(PollFlags::IN) {
            // Readable: the counter is non-zero and only we read our own eventfd, so this
            // read returns at once (whatever O_NONBLOCK a QEMU peer left on it).
            if let Some(count) = own.and_then(read_counter) {
                self.interrupts += count;
                wake.interrupt = true;
            }
        } else if !revents[0].is_empty() {
            wake.interrupt = self.clear_interrupt();
        }
        if !revents[1].is_empty() {
            wake.server = true;
            self.absorb_server_messages();
        }
        wake.extra = !revents[2].is_empty();
        wake
    }
}

/// The bare doorbell path between two peers, without the engine: `bench` measures its round
/// trip (an eventfd ping-pong) as the floor for an RPMsg round trip. Each side blocks in
/// poll(2) on its own vector 0 eventfd, reads it, and writes the other side's: the same
/// three system calls per wake-up that [`Ivshmem::wait`] and [`Doorbell::ring`] make.
#[derive(Debug, Clone, Copy)]
pub struct RawDoorbell<'a> {
    own: BorrowedFd<'a>,
    peer: BorrowedFd<'a>,
}

impl RawDoorbell<'_> {
    /// Writes 1 to the peer's eventfd.
    pub fn ring(&self) -> bool {
        matches!(rustix::io::write(self.peer, &1u64.to_ne_bytes()), Ok(8))
    }

    /// Blocks in poll(2) until our eventfd is readable (or `timeout` passes), then reads it.
    /// True if the peer rang.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut fd = [PollFd::from_borrowed_fd(self.own, PollFlags::IN)];
        poll(&mut fd, timeout.as_millis().max(1)) > 0 && read_counter(self.own).is_some()
    }
}

/// poll(2) for up to `ms` milliseconds; the number of ready descriptors (0 on a timeout or
/// an error such as EINTR: callers re-check their state either way).
fn poll(fds: &mut [PollFd<'_>], ms: u128) -> usize {
    let ms = u64::try_from(ms).unwrap_or(u64::MAX);
    let timeout = Timespec::try_from(Duration::from_millis(ms)).ok();
    rustix::event::poll(fds, timeout.as_ref()).unwrap_or(0)
}

/// Reads an eventfd's 8-byte counter; `None` if nothing was read.
fn read_counter(fd: BorrowedFd<'_>) -> Option<u64> {
    let mut count = [0u8; 8];
    match rustix::io::read(fd, &mut count) {
        Ok(8) => Some(u64::from_ne_bytes(count)),
        _ => None,
    }
}

impl Doorbell for Ivshmem {
    fn ring(&mut self, peer_id: u16) {
        if self.conn.notify(peer_id, VECTOR).is_ok() {
            self.rings += 1;
            return;
        }
        // The server announces a new peer to us before that peer finishes its own
        // handshake, so the eventfd is normally in our socket already: read it and retry.
        self.absorb_server_messages();
        match self.conn.notify(peer_id, VECTOR) {
            Ok(()) => self.rings += 1,
            Err(_) => self.failed_rings += 1,
        }
    }
}
