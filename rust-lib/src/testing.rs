//! Test support (feature `std`): an in-memory region and an in-process fake platform, so
//! both roles can run in two threads of one test process.

extern crate std;

use std::boxed::Box;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::platform::{Clock, Doorbell};
use crate::shm::SharedRegion;

/// Heap memory standing in for the IVSHMEM region (8-byte aligned, zeroed).
#[derive(Debug)]
pub struct HeapRegion {
    words: Box<[AtomicU64]>,
    len: usize,
}

impl HeapRegion {
    /// `len` zeroed bytes (`len` is rounded up to a multiple of 8 internally).
    pub fn new(len: usize) -> Self {
        let words: Vec<AtomicU64> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        Self {
            words: words.into_boxed_slice(),
            len,
        }
    }

    /// The region, borrowing this memory.
    pub fn region(&self) -> SharedRegion<'_> {
        let ptr = self.words.as_ptr() as *mut u8;
        // SAFETY: the memory lives as long as the borrow of `self`, is 8-aligned (AtomicU64
        // storage), at least `len` bytes long, and is only accessed through atomics (the
        // AtomicU64 cells here and the engine's atomic accesses).
        match unsafe { SharedRegion::new(ptr, self.len) } {
            Ok(r) => r,
            Err(_) => unreachable!("AtomicU64 storage is 8-aligned and non-null"),
        }
    }

    /// Overwrites the whole region with bytes from `image` (repeated if shorter; zeroes if
    /// empty).
    pub fn fill_from(&self, image: &[u8]) {
        let r = self.region();
        if image.is_empty() {
            let _ = r.zero(0, self.len);
            return;
        }
        let mut off = 0;
        while off < self.len {
            let n = image.len().min(self.len - off);
            let _ = r.write_bytes(off, &image[..n]);
            off += n;
        }
    }
}

/// An in-process doorbell line: a counter and a condition variable (like an eventfd).
#[derive(Debug, Clone, Default)]
pub struct Bell(Arc<(Mutex<u64>, Condvar)>);

impl Bell {
    /// A new, quiet bell.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rings: adds one and wakes a waiter.
    pub fn ring(&self) {
        let (count, cv) = &*self.0;
        let mut c = count.lock().unwrap_or_else(|e| e.into_inner());
        *c += 1;
        cv.notify_all();
    }

    /// Waits until rung or `timeout`; returns (and clears) the count.
    pub fn wait(&self, timeout: Duration) -> u64 {
        let (count, cv) = &*self.0;
        let mut c = count.lock().unwrap_or_else(|e| e.into_inner());
        if *c == 0 {
            c = cv
                .wait_timeout(c, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        core::mem::take(&mut *c)
    }
}

/// A [`Doorbell`] that rings the peer's [`Bell`] and remembers which id it was given.
#[derive(Debug, Clone)]
pub struct BellDoorbell {
    /// The peer's bell.
    pub peer: Bell,
    /// How many times it rang.
    pub rung: u64,
    /// The ivshmem id of the last ring.
    pub last_peer_id: Option<u16>,
}

impl BellDoorbell {
    /// A doorbell ringing `peer`.
    pub fn new(peer: Bell) -> Self {
        Self {
            peer,
            rung: 0,
            last_peer_id: None,
        }
    }
}

impl Doorbell for BellDoorbell {
    fn ring(&mut self, peer_id: u16) {
        self.rung += 1;
        self.last_peer_id = Some(peer_id);
        self.peer.ring();
    }
}

/// A [`Clock`] on `Instant` that waits on our own [`Bell`].
#[derive(Debug, Clone)]
pub struct BellClock {
    own: Bell,
    start: Instant,
}

impl BellClock {
    /// A clock that wakes when `own` rings.
    pub fn new(own: Bell) -> Self {
        Self {
            own,
            start: Instant::now(),
        }
    }
}

impl Clock for BellClock {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn wait_until(&mut self, deadline_us: u64) {
        let now = self.now_us();
        if deadline_us > now {
            self.own.wait(Duration::from_micros(deadline_us - now));
        }
    }
}

/// What one role did in [`exercise_hostile_region`], after its invariants were checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostileTally {
    /// Messages delivered by `recv`.
    pub delivered: u64,
    /// Name-service events delivered by `recv`.
    pub announcements: u64,
    /// Buffers the node took from its receive ring (`Stats::rx_messages`).
    pub rx_messages: u64,
    /// Errors the node counted, of which caused by the peer.
    pub errors: u32,
    /// Of [`HostileTally::errors`], those caused by the peer.
    pub peer_faults: u32,
    /// The link ended broken.
    pub broken: bool,
}

/// What [`exercise_hostile_region`] saw: the remote facing a hostile host, and the host
/// facing a hostile remote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostileRun {
    /// The remote's tally.
    pub remote: HostileTally,
    /// The host's tally.
    pub host: HostileTally,
}

/// Runs both roles against a shared region whose contents come from `data` (the fuzz
/// target and the replay test call this): a remote facing a hostile host, and a host facing
/// a hostile remote. Between steps the hostile side rewrites parts of the region with more
/// bytes from `data`. The engine must never panic, loop without bound or touch memory
/// outside the region; errors are expected. It must also keep its invariants, which this
/// checks (and panics on, so that the fuzzer reports them): a message is delivered only
/// while the link may deliver (never from a broken or ended session), only to an endpoint
/// that exists and within the payload capacity; nothing is delivered that was not counted
/// as received; a broken link was broken by a ring index the peer moved impossibly far.
pub fn exercise_hostile_region(data: &[u8]) -> HostileRun {
    use crate::layout::{Config, Layout};

    let (head, rest) = data.split_at(data.len().min(8));
    let mut flags = [0u8; 8];
    flags[..head.len()].copy_from_slice(head);
    let cfg = Config {
        queue_size: 1 << (flags[1] % 5),
        ..Config::new(HOSTILE_SIZE)
    };
    let Ok(layout) = Layout::new(&cfg) else {
        return HostileRun::default();
    };
    let mem = HeapRegion::new(HOSTILE_SIZE);
    let mut scribbler = Scribbler::new(mem.region(), &layout, rest);
    mem.fill_from(rest);
    let remote = hostile_host(&mem, cfg, &layout, flags, &mut scribbler);
    mem.fill_from(&[]);
    let host = hostile_remote(&mem, cfg, flags, &mut scribbler);
    HostileRun { remote, host }
}

const HOSTILE_SIZE: usize = 32 * 1024;

/// The hostile side's writes: chunks of the input, mostly at the rings and the control
/// block, sometimes at buffers.
struct Scribbler<'r, 'd> {
    region: crate::SharedRegion<'r>,
    chunks: core::iter::Take<core::iter::Cycle<core::slice::Chunks<'d, u8>>>,
    targets: [usize; 6],
}

impl<'r, 'd> Scribbler<'r, 'd> {
    fn new(region: crate::SharedRegion<'r>, layout: &crate::Layout, rest: &'d [u8]) -> Self {
        use crate::layout::QueueId;
        Self {
            region,
            chunks: rest
                .chunks(64)
                .cycle()
                .take(rest.len().div_ceil(64).min(64)),
            targets: [
                layout.ring(QueueId::RemoteToHost).desc,
                layout.ring(QueueId::HostToRemote).desc,
                layout.ring(QueueId::RemoteToHost).used,
                layout.ring(QueueId::HostToRemote).avail,
                0,
                layout.pool_start(),
            ],
        }
    }

    fn scribble(&mut self, step: usize) {
        if let Some(chunk) = self.chunks.next() {
            let selector = chunk.first().copied().unwrap_or(0) as usize;
            let base = self.targets[(selector + step) % self.targets.len()];
            let shift = (chunk.get(1).copied().unwrap_or(0) as usize) * 4;
            let at = (base + shift).min(HOSTILE_SIZE - chunk.len());
            let _ = self.region.write_bytes(at, chunk);
        }
    }
}

/// Checks what `recv` delivered against the node's state, and counts it.
fn check_event<'a, R: crate::rpmsg::Role<'a>, D: Doorbell>(
    node: &crate::Rpmsg<'a, R, D>,
    event: &crate::Event<'a>,
    may_deliver: bool,
    tally: &mut HostileTally,
) {
    assert!(may_deliver, "delivered while {:?}", node.link_state());
    match event {
        crate::Event::Message(rx) => {
            tally.delivered += 1;
            assert!(
                rx.len() <= node.max_payload(),
                "payload beyond the capacity"
            );
            assert!(node.endpoint(rx.dst()).is_some(), "message for no endpoint");
        }
        _ => tally.announcements += 1,
    }
}

/// The node's counters at the end, checked.
fn finish<'a, R: crate::rpmsg::Role<'a>, D: Doorbell>(
    node: &crate::Rpmsg<'a, R, D>,
    mut tally: HostileTally,
) -> HostileTally {
    use crate::error::{Error, PeerFault};
    let counters = node.counters();
    tally.rx_messages = node.stats().rx_messages;
    tally.errors = counters.total();
    tally.peer_faults = counters.peer_faults();
    tally.broken = node.link_state() == crate::LinkState::Broken;
    assert!(tally.delivered + tally.announcements <= tally.rx_messages);
    assert!(tally.peer_faults <= tally.errors);
    let index_faults = counters.get(Error::Peer(PeerFault::AvailIndexOutOfRange))
        + counters.get(Error::Peer(PeerFault::UsedIndexOutOfRange));
    assert!(
        !tally.broken || index_faults > 0,
        "broken without a ring index fault"
    );
    tally
}

/// A remote against a hostile host.
fn hostile_host(
    mem: &HeapRegion,
    cfg: crate::Config,
    layout: &crate::Layout,
    flags: [u8; 8],
    scribbler: &mut Scribbler<'_, '_>,
) -> HostileTally {
    use crate::rpmsg::{Event, Remote};
    let region = mem.region();
    if flags[0] & 1 == 1 {
        if let Ok(c) = crate::shm::ControlView::new(region) {
            let _ = c.publish(layout, Some(u16::from(flags[2])), u32::from(flags[3]));
            let _ = c.set_status(0x0f);
        }
    }
    let Ok(mut remote) = Remote::new_remote(region, cfg, Some(1), NoBell) else {
        return HostileTally::default();
    };
    let _ = remote.create_endpoint("k", None, None);
    let mut tally = HostileTally::default();
    for step in 0..16 {
        let _ = remote.poll();
        if let Ok(Some(event)) = remote.recv() {
            let up = remote.link_state() == crate::LinkState::Up;
            check_event(&remote, &event, up, &mut tally);
            if let Event::Message(rx) = event {
                let mut b = [0u8; 64];
                let n = rx.read(0, &mut b).unwrap_or(0);
                assert!(n <= rx.len());
                if step % 3 == 0 {
                    let _ = remote.try_send(1024, &b[..n]);
                }
                let _ = remote.release_rx(rx);
            }
        }
        if let Ok(mut tx) = remote.get_tx_buffer() {
            let _ = tx.write(0, b"hostile");
            let _ = remote.send_offchannel_nocopy(1024, 1024, tx, 7);
        }
        scribbler.scribble(step);
    }
    finish(&remote, tally)
}

/// A host against a hostile remote.
fn hostile_remote(
    mem: &HeapRegion,
    cfg: crate::Config,
    flags: [u8; 8],
    scribbler: &mut Scribbler<'_, '_>,
) -> HostileTally {
    use crate::rpmsg::{Event, Host};
    use crate::LinkState;
    let Ok(mut host) = Host::new_host(mem.region(), cfg, Some(2), NoBell) else {
        return HostileTally::default();
    };
    let _ = host.start();
    let _ = host.create_endpoint("h", None, None);
    let mut tally = HostileTally::default();
    for step in 0..16 {
        scribbler.scribble(step);
        if let Ok(Some(event)) = host.recv() {
            let open = matches!(host.link_state(), LinkState::Up | LinkState::Waiting);
            check_event(&host, &event, open, &mut tally);
            match event {
                Event::Message(rx) => {
                    let _ = host.release_rx(rx);
                }
                Event::NameServiceCreate { name, addr } => {
                    let _ = host.bind(&name, addr);
                }
                Event::NameServiceDestroy { .. } => {}
            }
        }
        let _ = host.try_send_to(1024, 1024 + step as u32, b"probe");
        if flags[4] & 1 == 1 {
            let _ = host.poll();
        }
    }
    finish(&host, tally)
}

/// A doorbell that rings nobody.
#[derive(Debug, Clone, Copy)]
struct NoBell;

impl Doorbell for NoBell {
    fn ring(&mut self, _peer_id: u16) {}
}
