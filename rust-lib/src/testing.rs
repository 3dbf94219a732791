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

/// Runs both roles against a shared region whose contents come from `data` (the fuzz
/// target and the replay test call this): a remote facing a hostile host, and a host facing
/// a hostile remote. Between steps the hostile side rewrites parts of the region with more
/// bytes from `data`. The engine must never panic, loop without bound or touch memory
/// outside the region; errors are expected and ignored.
pub fn exercise_hostile_region(data: &[u8]) {
    use crate::layout::{Config, Layout, QueueId};
    use crate::rpmsg::{Event, Host, Remote};
    use crate::shm::ControlView;

    const SIZE: usize = 32 * 1024;
    let (head, rest) = data.split_at(data.len().min(8));
    let mut flags = [0u8; 8];
    flags[..head.len()].copy_from_slice(head);
    let cfg = Config {
        queue_size: 1 << (flags[1] % 5),
        ..Config::new(SIZE)
    };
    let Ok(layout) = Layout::new(&cfg) else {
        return;
    };
    let mem = HeapRegion::new(SIZE);
    let region = mem.region();
    let mut chunks = rest
        .chunks(64)
        .cycle()
        .take(rest.len().div_ceil(64).min(64));
    // Where a hostile write goes: mostly the rings and the control block, sometimes buffers.
    let targets = [
        layout.ring(QueueId::RemoteToHost).desc,
        layout.ring(QueueId::HostToRemote).desc,
        layout.ring(QueueId::RemoteToHost).used,
        layout.ring(QueueId::HostToRemote).avail,
        0,
        layout.pool_start(),
    ];
    let mut scribble = |step: usize| {
        if let Some(chunk) = chunks.next() {
            let selector = chunk.first().copied().unwrap_or(0) as usize;
            let base = targets[(selector + step) % targets.len()];
            let shift = (chunk.get(1).copied().unwrap_or(0) as usize) * 4;
            let _ = region.write_bytes((base + shift).min(SIZE - chunk.len()), chunk);
        }
    };

    // Remote against a hostile host.
    mem.fill_from(rest);
    if flags[0] & 1 == 1 {
        let control = ControlView::new(region).ok();
        if let Some(c) = control {
            let _ = c.publish(&layout, Some(u16::from(flags[2])), u32::from(flags[3]));
            let _ = c.set_status(0x0f);
        }
    }
    if let Ok(mut remote) = Remote::new_remote(region, cfg, Some(1), NoBell) {
        let _ = remote.create_endpoint("k", None, None);
        for step in 0..16 {
            let _ = remote.poll();
            if let Ok(Some(Event::Message(rx))) = remote.recv() {
                let mut b = [0u8; 64];
                let _ = rx.read(0, &mut b);
                if step % 3 == 0 {
                    let _ = remote.try_send(1024, &b[..rx.len().min(64)]);
                }
                let _ = remote.release_rx(rx);
            }
            if let Ok(mut tx) = remote.get_tx_buffer() {
                let _ = tx.write(0, b"hostile");
                let _ = remote.send_offchannel_nocopy(1024, 1024, tx, 7);
            }
            scribble(step);
        }
    }

    // Host against a hostile remote.
    mem.fill_from(&[]);
    if let Ok(mut host) = Host::new_host(region, cfg, Some(2), NoBell) {
        let _ = host.start();
        let _ = host.create_endpoint("h", None, None);
        for step in 0..16 {
            scribble(step);
            match host.recv() {
                Ok(Some(Event::Message(rx))) => {
                    let _ = host.release_rx(rx);
                }
                Ok(Some(Event::NameServiceCreate { name, addr })) => {
                    let _ = host.bind(&name, addr);
                }
                Ok(_) | Err(_) => {}
            }
            let _ = host.try_send_to(1024, 1024 + step as u32, b"probe");
            if flags[4] & 1 == 1 {
                let _ = host.poll();
            }
        }
    }
}

/// A doorbell that rings nobody.
#[derive(Debug, Clone, Copy)]
struct NoBell;

impl Doorbell for NoBell {
    fn ring(&mut self, _peer_id: u16) {}
}
