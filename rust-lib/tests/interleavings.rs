//! An exhaustive scheduler over two small applications (a host that binds, sends and
//! reads echoes; a remote that takes, releases and echoes messages), with a restart of
//! either side — or of the host's session alone, or of both — injected between ANY two
//! engine calls of EVERY interleaving of the two scripts.
//!
//! `engine.rs`'s `restart_at_every_protocol_step` cuts one fixed order of a handful of
//! steps. This adds what that leaves open: all orders of the two sides' calls (so a restart
//! can fall between a remote's `recv` and its echo, between a `recv` and the `release_rx`
//! of a held buffer, between the host's bind and its send, ...), the host restarting its
//! session in the same object while the remote is alive, and both sides restarting.
//!
//! Every payload carries the logical time at which the host composed it. Checked on every
//! delivery, on both sides:
//! * the remote never receives a message composed before the host's latest `start()` or
//!   before that remote instance was created (open-amp #44: stale ring contents);
//! * the host never receives an echo of a message composed before its latest `start()`.
//!
//! Afterwards the link must come back by itself and a fresh message must make the round
//! trip, and no restart may look like a misbehaving peer: neither side may count a peer
//! fault (a ring index out of range, a bad descriptor, a malformed message).

use rpmsg_engine::testing::{Bell, HeapRegion};
use rpmsg_engine::{Config, Error, Event, LinkState, RxBuffer};

mod common;
use common::{host_over, remote_over, H, HOST_ID, R, REMOTE_ID};

/// A small layout (4 buffers of 64 bytes per direction) keeps the ~100 000 runs fast; the
/// protocol does not depend on the sizes.
const SIZE: usize = 4096;

fn config() -> Config {
    Config {
        queue_size: 4,
        buf_size: 64,
        ..Config::new(SIZE)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostOp {
    /// `start()`.
    Start,
    /// `recv()`: bind "k" on its announcement, check an echo.
    Recv,
    /// `try_send()` of a new message on "k" (skipped while unbound).
    Send,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoteOp {
    /// `poll()`.
    Poll,
    /// `recv()`: keep the message's buffer (zero-copy) and its payload.
    Take,
    /// `release_rx()` of the kept buffer.
    Release,
    /// `try_send()` of the last payload back on "k".
    Echo,
}

const HOST_SCRIPT: [HostOp; 6] = [
    HostOp::Start,
    HostOp::Recv,
    HostOp::Send,
    HostOp::Recv,
    HostOp::Send,
    HostOp::Recv,
];

const REMOTE_SCRIPT: [RemoteOp; 7] = [
    RemoteOp::Poll,
    RemoteOp::Take,
    RemoteOp::Echo,
    RemoteOp::Release,
    RemoteOp::Take,
    RemoteOp::Release,
    RemoteOp::Echo,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// The host process dies; a new one starts (new object, `start()`).
    HostProcess,
    /// The host starts a new session in the same object while the remote runs.
    HostSession,
    /// The remote process dies; a new one (new ivshmem id) takes its place.
    RemoteProcess,
    /// Both die; the host comes back first.
    Both,
}

/// Logical time at which the host composed a payload.
fn payload(t: u32) -> Vec<u8> {
    format!("t{t}").into_bytes()
}

fn composed_at(p: &[u8]) -> u32 {
    std::str::from_utf8(&p[1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a payload of this test: {p:?}"))
}

struct World<'m> {
    mem: &'m HeapRegion,
    h: H<'m>,
    r: R<'m>,
    /// The host application's endpoint bound to "k".
    ept: Option<u32>,
    /// The remote application's kept buffer and last payload.
    held: Option<RxBuffer<'m>>,
    last: Option<Vec<u8>>,
    /// Logical clock (one tick per engine call) and the boundaries of the invariants.
    now: u32,
    host_started: u32,
    remote_created: u32,
    remotes: u16,
    /// Faults of the objects replaced so far.
    past_faults: u32,
    trace: Vec<Step>,
}

/// What happened, for the failure message (read through `Debug` only).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
enum Step {
    H(HostOp),
    R(RemoteOp),
    Restart(Restart),
    Fresh,
}

impl<'m> World<'m> {
    fn new(mem: &'m HeapRegion) -> Self {
        Self {
            mem,
            h: new_host(mem),
            r: new_remote(mem, REMOTE_ID),
            ept: None,
            held: None,
            last: None,
            now: 1,
            host_started: 0,
            remote_created: 0,
            remotes: 1,
            past_faults: 0,
            trace: Vec::new(),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\ntrace: {:?}\nhost {:?} session {} faults {:?}\nremote {:?} session {} faults {:?}",
            self.trace,
            self.h.link_state(),
            self.h.session(),
            self.h.counters(),
            self.r.link_state(),
            self.r.session(),
            self.r.counters()
        )
    }

    fn host_start(&mut self) {
        self.h.start().unwrap();
        self.host_started = self.now;
    }

    fn restart(&mut self, kind: Restart) {
        self.trace.push(Step::Restart(kind));
        if matches!(kind, Restart::HostProcess | Restart::Both) {
            self.past_faults += self.h.counters().peer_faults();
            self.h = new_host(self.mem);
            self.ept = None;
            self.host_start();
        }
        if kind == Restart::HostSession {
            self.host_start();
        }
        if matches!(kind, Restart::RemoteProcess | Restart::Both) {
            self.past_faults += self.r.counters().peer_faults();
            self.remotes += 1;
            self.r = new_remote(self.mem, REMOTE_ID + self.remotes);
            self.held = None;
            self.last = None;
            self.remote_created = self.now;
        }
        self.now += 1;
    }

    fn host_step(&mut self, op: HostOp) {
        self.trace.push(Step::H(op));
        match op {
            HostOp::Start => self.host_start(),
            HostOp::Recv => self.host_recv(),
            HostOp::Send => {
                if let Some(e) = self.ept {
                    let _ = self.h.try_send(e, &payload(self.now));
                }
            }
        }
        self.now += 1;
    }

    fn host_recv(&mut self) {
        match self.h.recv() {
            Ok(Some(Event::NameServiceCreate { name, addr })) => {
                self.ept = Some(self.h.bind(&name, addr).unwrap());
            }
            Ok(Some(Event::Message(rx))) => {
                self.host_take_echo(rx, "in the run");
            }
            _ => {}
        }
    }

    /// Reads and releases an echo the host received; checks that it is not older than the
    /// host's latest `start()`; returns when it was composed.
    fn host_take_echo(&mut self, rx: RxBuffer<'m>, when: &str) -> u32 {
        let mut b = vec![0u8; rx.len()];
        rx.read(0, &mut b).unwrap();
        let _ = self.h.release_rx(rx);
        let t = composed_at(&b);
        if t < self.host_started {
            self.fail(&format!(
                "{when}: the host received the echo of a message composed at {t}, before its \
                 start at {}",
                self.host_started
            ));
        }
        t
    }

    fn remote_step(&mut self, op: RemoteOp) {
        self.trace.push(Step::R(op));
        match op {
            RemoteOp::Poll => {
                let _ = self.r.poll();
            }
            RemoteOp::Take => {
                if self.held.is_none() {
                    self.remote_take();
                }
            }
            RemoteOp::Release => {
                if let Some(rx) = self.held.take() {
                    let _ = self.r.release_rx(rx);
                }
            }
            RemoteOp::Echo => {
                if let Some(p) = self.last.clone() {
                    let _ = self.r.try_send(1024, &p);
                }
            }
        }
        self.now += 1;
    }

    /// One remote `recv()`; a message is checked and kept.
    fn remote_take(&mut self) -> Option<u32> {
        let Ok(Some(Event::Message(rx))) = self.r.recv() else {
            return None;
        };
        let mut b = vec![0u8; rx.len()];
        rx.read(0, &mut b).unwrap();
        let t = composed_at(&b);
        if t < self.host_started || t < self.remote_created {
            self.fail(&format!(
                "the remote received a message composed at {t}, before the host's start at {} \
                 or the remote's creation at {}",
                self.host_started, self.remote_created
            ));
        }
        self.held = Some(rx);
        self.last = Some(b);
        Some(t)
    }

    /// Drives both sides (host: recv; remote: take, release, echo) until the host has
    /// bound "k" and both links are up; then one fresh message must make the round trip.
    fn recover_and_check(&mut self) {
        if self.h.link_state() == LinkState::Down {
            self.host_start();
        }
        for _ in 0..30 {
            self.remote_step(RemoteOp::Release);
            self.remote_step(RemoteOp::Poll);
            self.host_step(HostOp::Recv);
            if self.ept.is_some()
                && self.h.link_state() == LinkState::Up
                && self.r.link_state() == LinkState::Up
            {
                break;
            }
        }
        let Some(ept) = self.ept else {
            self.fail("the host did not bind \"k\" again");
        };
        if self.h.link_state() != LinkState::Up || self.r.link_state() != LinkState::Up {
            self.fail("the link did not come back");
        }
        let fresh = self.now;
        self.trace.push(Step::Fresh);
        if let Err(e) = self.h.try_send(ept, &payload(fresh)) {
            self.fail(&format!("fresh send failed: {e:?}"));
        }
        self.now += 1;
        // Messages of this session sent earlier may come first; the fresh one must come.
        let mut got = false;
        for _ in 0..20 {
            self.remote_step(RemoteOp::Release);
            if self.remote_take() == Some(fresh) {
                got = true;
                break;
            }
        }
        if !got {
            self.fail("the fresh message did not reach the remote");
        }
        self.remote_step(RemoteOp::Release);
        self.trace.push(Step::Fresh);
        if let Err(e) = self.r.try_send(1024, &payload(fresh)) {
            self.fail(&format!("fresh echo failed: {e:?}"));
        }
        let mut echoed = false;
        for _ in 0..20 {
            match self.h.recv() {
                Ok(Some(Event::Message(rx))) => {
                    if self.host_take_echo(rx, "recovery") == fresh {
                        echoed = true;
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => self.fail(&format!("host recv failed: {e:?}")),
            }
        }
        if !echoed {
            self.fail("the fresh echo did not reach the host");
        }
        let faults =
            self.past_faults + self.h.counters().peer_faults() + self.r.counters().peer_faults();
        if faults != 0 {
            self.fail(&format!(
                "{faults} peer faults counted: a restart looked like corruption"
            ));
        }
    }
}

fn new_host(mem: &HeapRegion) -> H<'_> {
    host_over(mem, config(), HOST_ID, Bell::new())
}

fn new_remote(mem: &HeapRegion, id: u16) -> R<'_> {
    remote_over(mem, config(), id, Bell::new())
}

/// Every interleaving of the two scripts, as bit masks: bit i set = step i is the host's.
fn interleavings() -> impl Iterator<Item = u32> {
    let (h, r) = (HOST_SCRIPT.len() as u32, REMOTE_SCRIPT.len() as u32);
    (0u32..1 << (h + r)).filter(move |m| m.count_ones() == h)
}

fn run(order: u32, cut: usize, kind: Restart) {
    let mem = HeapRegion::new(SIZE);
    let mut w = World::new(&mem);
    let (mut hi, mut ri) = (0, 0);
    let steps = HOST_SCRIPT.len() + REMOTE_SCRIPT.len();
    for step in 0..=steps {
        if step == cut {
            w.restart(kind);
        }
        if step == steps {
            break;
        }
        if order & (1 << step) != 0 {
            w.host_step(HOST_SCRIPT[hi]);
            hi += 1;
        } else {
            w.remote_step(REMOTE_SCRIPT[ri]);
            ri += 1;
        }
    }
    w.recover_and_check();
}

fn all_for(kind: Restart) {
    let steps = HOST_SCRIPT.len() + REMOTE_SCRIPT.len();
    let mut runs = 0;
    for order in interleavings() {
        for cut in 0..=steps {
            run(order, cut, kind);
            runs += 1;
        }
    }
    // C(13, 6) orders × 14 cut points.
    assert_eq!(runs, 1716 * 14);
}

#[test]
fn every_kind_of_restart_between_any_two_calls() {
    for kind in [
        Restart::HostProcess,
        Restart::HostSession,
        Restart::RemoteProcess,
        Restart::Both,
    ] {
        all_for(kind);
    }
}

/// The scheduler itself: the failure it exists to catch is detected. A remote that took a
/// message before a host restart and echoes it without looking at the link again must not
/// get it delivered; checked here on the one order that exposes it, with a readable trace.
#[test]
fn an_echo_across_a_host_session_restart_is_not_delivered() {
    let mem = HeapRegion::new(SIZE);
    let mut w = World::new(&mem);
    w.host_step(HostOp::Start);
    w.remote_step(RemoteOp::Poll);
    w.host_step(HostOp::Recv);
    w.host_step(HostOp::Send);
    w.remote_step(RemoteOp::Take);
    w.remote_step(RemoteOp::Release);
    w.restart(Restart::HostSession);
    // The remote has not looked at the link since: its echo must not reach the host, and
    // must not disturb the new session's rings.
    let p = w.last.clone().unwrap();
    assert_eq!(w.r.try_send(1024, &p), Err(Error::NotReady));
    w.recover_and_check();
}
