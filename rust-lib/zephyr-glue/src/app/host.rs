//! The host application: the virtio driver side and the `rpmsg_ivshmem` shell commands.
//!
//! Two threads share one engine node through [`SharedNode`] (a critical section around
//! each short step; nobody waits inside it):
//!
//! * the receive thread (started at boot, so the shell is usable at once) initialises the
//!   shared region, waits for doorbells with a [`RX_POLL_MS`] timeout, receives
//!   everything pending, binds the remote's endpoints `"k"` and `"bench"` when they are
//!   announced, prints the banner each time the link comes up, and wakes a waiting
//!   command ([`event::raise`]) when something arrived for it;
//! * the shell thread runs the commands. While `send` or `bench` waits for echoes it
//!   receives itself: it busy-polls the rings for up to [`spin_cycles`] (the remote does
//!   not ring meanwhile), then asks for doorbells again and sleeps on [`event::wait`]
//!   until the receive thread wakes it or [`REPLY_TIMEOUT_MS`] passed.
//!
//! `send` hands message `i + 1` to the remote before it prints the echo of message `i`,
//! so the remote works while the host prints; the console text is unchanged.
//!
//! Echoes that arrive while no command waits (a late echo after a timeout) are counted
//! and dropped. A remote that restarts is handled by the engine (it asks for a fresh
//! session); `send` during that time prints the timeout line and returns.

use super::text::{self, NOT_READY, TIMED_OUT};
use super::{
    spin_cycles, ErrorOnce, BENCH_ENDPOINT, ECHO_ENDPOINT, MAX_PAYLOAD, RX_POLL_MS,
    SILENT_PEER_POLL_MS,
};
use crate::engine::IvshmemDoorbell;
use crate::shell::{self, Shell};
use crate::time::{self, cycles, event};
use crate::{console, logger, thread, FixedBuf};
use core::cell::{RefCell, UnsafeCell};
use core::sync::atomic::{AtomicBool, Ordering};
use critical_section::Mutex;
use rpmsg_engine::{Error, Event, Host, LinkState, SharedNode, Side};

/// How long `send` waits for each echo (and for a transmit buffer); `bench` for each
/// round trip and for any progress of the stream.
pub const REPLY_TIMEOUT_MS: u64 = 5_000;

/// Echoes that can wait for the shell thread (one is in flight at a time; the rest
/// absorbs a late echo of an earlier, timed-out message).
const ECHO_SLOTS: usize = 4;

/// Most round trips one `bench` measures (the samples live in a static array).
pub const BENCH_MAX_COUNT: u32 = 2_000;
/// `bench` defaults: a full payload, 1000 round trips.
const BENCH_DEFAULT_PAYLOAD: usize = MAX_PAYLOAD;
const BENCH_DEFAULT_COUNT: u32 = 1000;
/// Messages in flight in `bench`'s streaming phase (the rings hold 16 each way).
pub const BENCH_WINDOW: u32 = 8;

const EINVAL: i32 = -22;
const EAGAIN: i32 = -11;
const ETIMEDOUT: i32 = -116;
const EIO: i32 = -5;
const EBUSY: i32 = -16;

struct Echo {
    len: usize,
    data: [u8; MAX_PAYLOAD],
}

/// `bench`'s view of the remote's silent echo endpoint.
struct Bench {
    /// Our endpoint bound to the remote's "bench" (it keeps its address across
    /// sessions, only its binding changes).
    ept: Option<u32>,
    /// A bench runs: count its echoes (else they are strays).
    active: bool,
    /// The length every echo must have.
    payload: usize,
    /// Echoes since the phase began.
    received: u32,
    /// Echoes of the wrong length, or (payloads of 4 bytes and more, which carry the
    /// message number) out of order.
    bad: u32,
}

impl Bench {
    fn count(&mut self, rx: &rpmsg_engine::RxBuffer<'_>) {
        let mut seq = [0u8; 4];
        let ok = rx.len() == self.payload
            && (self.payload < 4
                || (rx.read(0, &mut seq) == Ok(4) && u32::from_le_bytes(seq) == self.received));
        if !ok {
            self.bad += 1;
        }
        self.received += 1;
    }
}

/// Everything the two threads share, behind one critical section.
struct HostState {
    node: Host<'static, IvshmemDoorbell>,
    /// Our endpoint bound to the remote's "k" (its local address; it stays the same
    /// across sessions, only its binding changes).
    ept: Option<u32>,
    /// A `send` is waiting for echoes: queue them (in [`ECHOES`]).
    collecting: bool,
    /// Messages nobody waited for.
    stray: u64,
    bench: Bench,
}

impl HostState {
    /// `ept` if the link is up and it is bound.
    fn ready(&self, ept: Option<u32>) -> Option<u32> {
        let ept = ept?;
        if self.node.link_state() != LinkState::Up {
            return None;
        }
        self.node.endpoint(ept)?.dest()?;
        Some(ept)
    }

    /// The endpoint to send to, if the link is up and "k" is bound.
    fn ready_ept(&self) -> Option<u32> {
        self.ready(self.ept)
    }
}

static STATE: SharedNode<HostState> = SharedNode::new();

type EchoQueue = heapless::Deque<Echo, ECHO_SLOTS>;

/// The echoes for `send`: a static of their own (2 KB), never moved. Inside [`HostState`]
/// they were copied several times on the receive thread's stack when the state was
/// installed, which overflowed its 8 KiB.
static ECHOES: Mutex<RefCell<EchoQueue>> = Mutex::new(RefCell::new(heapless::Deque::new()));

fn echoes<R>(f: impl FnOnce(&mut EchoQueue) -> R) -> R {
    critical_section::with(|cs| f(&mut ECHOES.borrow_ref_mut(cs)))
}

/// Entry of the host image (`rust_main`): installs the shell handlers and starts the
/// receive thread, then returns so the shell runs at once.
pub fn main() {
    logger::init(log::LevelFilter::Info);
    shell::set_send_handler(send);
    shell::set_bench_handler(bench);
    shell::set_status_handler(status);
    thread::start_rx_thread(rx_main);
}

/// What one receive step found (reported outside the critical section).
enum Step {
    Idle,
    Echo,
    Stray,
    Bound {
        name: heapless::String<31>,
        addr: u32,
        local: u32,
    },
    BindFailed(Error),
    Ignored {
        name: heapless::String<31>,
        addr: u32,
        destroyed: bool,
    },
    Failed(Error),
}

fn receive_one(s: &mut HostState) -> Step {
    match s.node.recv() {
        Ok(None) => Step::Idle,
        Ok(Some(Event::Message(rx))) => {
            let dst = Some(rx.dst());
            let step = if s.bench.ept.is_some() && dst == s.bench.ept {
                if s.bench.active {
                    s.bench.count(&rx);
                    Step::Echo
                } else {
                    s.stray += 1;
                    Step::Stray
                }
            } else if s.collecting && dst == s.ept && echoes(|q| !q.is_full()) {
                echoes(|q| {
                    // Cannot fail: checked `is_full` above; the data is read in place.
                    let _ = q.push_back(Echo {
                        len: 0,
                        data: [0; MAX_PAYLOAD],
                    });
                    if let Some(e) = q.back_mut() {
                        e.len = rx.read(0, &mut e.data).unwrap_or(0);
                    }
                });
                Step::Echo
            } else {
                s.stray += 1;
                Step::Stray
            };
            // A buffer from an ended session is simply gone: nothing to return.
            let _ = s.node.release_rx(rx);
            step
        }
        Ok(Some(Event::NameServiceCreate { name, addr })) => {
            let slot = match name.as_str() {
                ECHO_ENDPOINT => &mut s.ept,
                BENCH_ENDPOINT => &mut s.bench.ept,
                _ => {
                    return Step::Ignored {
                        name,
                        addr,
                        destroyed: false,
                    }
                }
            };
            match s.node.bind(&name, addr) {
                Ok(local) => {
                    *slot = Some(local);
                    Step::Bound { name, addr, local }
                }
                Err(e) => Step::BindFailed(e),
            }
        }
        Ok(Some(Event::NameServiceDestroy { name, addr })) => Step::Ignored {
            name,
            addr,
            destroyed: true,
        },
        Err(e) => Step::Failed(e),
    }
}

static STRAY_LOGGED: AtomicBool = AtomicBool::new(false);

/// Logs what a receive step found (either thread). Returns whether it was something a
/// waiting command looks for, and whether to stop draining (an error).
fn report(step: Step, errors: &mut ErrorOnce) -> (bool, bool) {
    match step {
        Step::Idle => return (false, true),
        Step::Echo => return (true, false),
        Step::Stray => {
            if !STRAY_LOGGED.swap(true, Ordering::Relaxed) {
                log::warn!("host: a message arrived while no command was waiting: dropped");
            }
        }
        Step::Bound { name, addr, local } => log::info!(
            "host: endpoint \"{}\" of the remote (address {}) bound to {}",
            name,
            addr,
            local
        ),
        Step::BindFailed(e) => log::error!("host: cannot bind an endpoint: {}", e),
        Step::Ignored {
            name,
            addr,
            destroyed,
        } => log::info!(
            "host: the remote {} endpoint \"{}\" (address {}): not used",
            if destroyed { "destroyed" } else { "announced" },
            name,
            addr
        ),
        Step::Failed(e) => {
            errors.report("host", "receive", e);
            return (false, true);
        }
    }
    (false, false)
}

/// Opens the device, starts the session and installs the shared state; returns the
/// device. Not inlined: the node is built and moved by value, and those temporaries stay
/// off the receive loop's frame.
#[inline(never)]
fn setup() -> Option<(crate::ivshmem::Ivshmem, Option<u16>)> {
    let opened = super::open("host", Side::Host)?;
    let shm = opened.shm;
    let mut node = match Host::new_host(
        opened.region,
        opened.config,
        Some(opened.id),
        super::doorbell(&opened),
    ) {
        Ok(n) => n,
        Err(e) => {
            log::error!("host: engine: {}", e);
            return None;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    if let Err(e) = node.start() {
        log::error!("host: cannot initialise the shared region: {}", e);
        return None;
    }
    let session = node.session();
    STATE.install(HostState {
        node,
        ept: None,
        collecting: false,
        stray: 0,
        bench: Bench {
            ept: None,
            active: false,
            payload: 0,
            received: 0,
            bad: 0,
        },
    });
    log::info!("host: session {}, waiting for a remote", session);
    Some((shm, opened.also))
}

#[inline(never)]
fn print_banner() {
    let mut line = FixedBuf::<128>::new();
    text::banner(&mut line, "Host");
    console::write_bytes(line.as_bytes());
}

fn rx_main() {
    let Some((shm, also)) = setup() else {
        return;
    };
    let mut ready: Option<u32> = None;
    let mut errors = ErrorOnce::new();
    loop {
        let mut woke = false;
        // Drain everything pending; each step is one short critical section.
        loop {
            let step = STATE.with(receive_one).unwrap_or(Step::Idle);
            let (wanted, stop) = report(step, &mut errors);
            woke |= wanted;
            if stop {
                break;
            }
        }
        if woke {
            event::raise();
        }
        // Ready in a session we have not announced yet? (A remote restart gives a new
        // session, possibly without a "not ready" moment between two polls.)
        let (now, peer, published) = STATE
            .with(|s| {
                let published = s.node.published_peer_id();
                // A C remote publishes no id: ring the rule's second id too (see `open`).
                s.node
                    .doorbell()
                    .set_also(if published.is_some() { None } else { also });
                let now = s.ready_ept().map(|_| s.node.session());
                (now, s.node.peer_id(), published)
            })
            .unwrap_or((None, None, None));
        if now != ready {
            if let Some(session) = now {
                errors.clear();
                let desc = super::PeerDesc {
                    peer,
                    published: published.is_some(),
                    also,
                };
                log::info!(
                    "host: link up with the remote ({}), session {}",
                    desc,
                    session
                );
                print_banner();
            } else if let Some(session) = ready {
                log::info!(
                    "host: link down (session {}), waiting for a remote",
                    session
                );
            }
            ready = now;
            // Wake a command that waits for the link or a buffer.
            event::raise();
        }
        let _ = shm.wait_doorbell(Some(RX_POLL_MS));
    }
}

/// Milliseconds from now until `deadline` (cycles), at least 1.
fn ms_left(deadline: u64) -> u32 {
    let us = time::cycles_to_us(deadline.saturating_sub(cycles()));
    (us / 1000 + 1).min(u64::from(u32::MAX)) as u32
}

/// In the shell thread: receives until `done` holds (`Some(true)`) or `deadline` (in
/// cycles) passed (`Some(false)`); `None` if the node is not there. Spins on the rings
/// for up to [`spin_cycles`], then asks for doorbells and sleeps until the receive thread
/// wakes it. The node is left polling (call [`stop_polling`] when the command ends).
/// (`done` is a `dyn` closure: one copy of this loop in the image, not one per caller.)
#[inline(never)]
fn wait_for(
    done: &dyn Fn(&HostState) -> bool,
    deadline: u64,
    errors: &mut ErrorOnce,
) -> Option<bool> {
    let spin = spin_cycles();
    // A remote that publishes no id may ring nobody: then look every SILENT_PEER_POLL_MS.
    let silent = STATE.with(|s| s.node.published_peer_id().is_none())?;
    // Spin before sleeping only when something came or we were woken for it.
    let mut look = true;
    loop {
        // Take what is there; each step is one short critical section.
        loop {
            let (step, finished) = STATE.with(|s| {
                let step = receive_one(s);
                (step, done(s))
            })?;
            look |= !matches!(step, Step::Idle);
            let (_, stop) = report(step, errors);
            if finished {
                return Some(true);
            }
            if stop {
                break;
            }
        }
        let now = cycles();
        if now >= deadline {
            return Some(false);
        }
        // Look at the rings for a while (the remote does not ring us meanwhile) ...
        let until = if look {
            now.saturating_add(spin).min(deadline)
        } else {
            now
        };
        let mut pending = false;
        while cycles() < until {
            if STATE.with(|s| done(s) || s.node.has_pending())? {
                pending = true;
                break;
            }
        }
        if pending {
            continue;
        }
        // ... then ask for doorbells again, and sleep unless something came meanwhile.
        let arrived = STATE.with(|s| s.node.prepare_to_wait().unwrap_or(true) || done(s))?;
        if !arrived {
            let ms = ms_left(deadline);
            let ms = if silent {
                ms.min(SILENT_PEER_POLL_MS)
            } else {
                ms
            };
            look = event::wait(Some(ms));
        }
        STATE.with(|s| s.node.busy_poll())?.ok();
    }
}

/// The command starts: receive in this thread, the remote need not ring.
fn start_polling() {
    STATE.with(|s| s.node.busy_poll().ok());
}

/// The command ends: doorbells again, for the receive thread.
fn stop_polling() {
    STATE.with(|s| s.node.prepare_to_wait().ok());
}

/// Sends `payload` from `ept`, waiting until `deadline` (cycles) for a transmit buffer.
fn send_one(ept: u32, payload: &[u8], deadline: u64, errors: &mut ErrorOnce) -> Result<(), ()> {
    loop {
        match STATE.with(|s| s.node.try_send(ept, payload)) {
            Some(Ok(())) => return Ok(()),
            // No buffer yet, or the link is being reset: wait (and time out).
            Some(Err(Error::NoTxBuffer | Error::NotReady | Error::EndpointNotBound)) => {}
            Some(Err(e)) => {
                log::error!("host: send failed: {}", e);
                return Err(());
            }
            None => return Err(()),
        }
        // Buffers come back with the remote's progress: receive, then look again.
        let short = cycles()
            .saturating_add(time::us_to_cycles(1000))
            .min(deadline);
        if wait_for(&|s| s.node.has_pending(), short, errors).is_none() || cycles() >= deadline {
            return Err(());
        }
    }
}

/// `rpmsg_ivshmem send <string> <number of messages>`.
fn send(sh: &Shell, text: &[u8], count: &[u8]) -> i32 {
    let mut line = FixedBuf::<640>::new();
    let Some(count) = text::parse_count(count) else {
        text::bad_count(&mut line, count);
        sh.write_bytes(line.as_bytes());
        return EINVAL;
    };
    if text::too_long(&mut line, text) {
        sh.write_bytes(line.as_bytes());
        return EINVAL;
    }
    let mut payload = [0u8; MAX_PAYLOAD];
    payload[..text.len()].copy_from_slice(text);
    // payload[text.len()] is the terminating NUL that goes on the wire.
    let payload = &payload[..=text.len()];

    let Some(ept) = STATE
        .with(|s| {
            let ept = s.ready_ept()?;
            // Whatever is still queued belongs to an earlier command.
            echoes(|q| q.clear());
            s.collecting = true;
            Some(ept)
        })
        .flatten()
    else {
        sh.write_bytes(NOT_READY);
        return EAGAIN;
    };
    start_polling();
    let timeout = time::us_to_cycles(REPLY_TIMEOUT_MS * 1000);
    let mut errors = ErrorOnce::new();
    let mut echo = [0u8; MAX_PAYLOAD];
    let mut result = 0;
    let mut deadline = cycles() + timeout;
    let mut sent = send_one(ept, payload, deadline, &mut errors).is_ok();
    let mut i = 1;
    loop {
        let arrived =
            sent && wait_for(&|_| echoes(|q| !q.is_empty()), deadline, &mut errors) == Some(true);
        let got = arrived
            .then(|| {
                echoes(|q| {
                    let n = q.front().map(|e| {
                        echo[..e.len].copy_from_slice(&e.data[..e.len]);
                        e.len
                    });
                    q.pop_front();
                    n
                })
            })
            .flatten();
        let Some(n) = got else {
            sh.write_bytes(TIMED_OUT);
            result = ETIMEDOUT;
            break;
        };
        // The next message goes out before this echo is printed: the remote receives,
        // prints and echoes it while we print.
        if i < count {
            deadline = cycles() + timeout;
            sent = send_one(ept, payload, deadline, &mut errors).is_ok();
        }
        line.clear();
        text::echoed(&mut line, &echo[..n], i);
        sh.write_bytes(line.as_bytes());
        if i == count {
            break;
        }
        i += 1;
    }
    STATE.with(|s| s.collecting = false);
    echoes(|q| q.clear());
    stop_polling();
    result
}

/// The round-trip times of one `bench`, in cycles (no allocator: a static array).
struct Samples(UnsafeCell<[u32; BENCH_MAX_COUNT as usize]>);
// SAFETY: only `bench` touches it, while it holds BENCH_BUSY.
unsafe impl Sync for Samples {}
static SAMPLES: Samples = Samples(UnsafeCell::new([0; BENCH_MAX_COUNT as usize]));
static BENCH_BUSY: AtomicBool = AtomicBool::new(false);

/// `rpmsg_ivshmem bench [payload] [count]`: round trips one at a time (rate and RTT
/// percentiles), then a stream with [`BENCH_WINDOW`] messages in flight, all through the
/// remote's silent "bench" endpoint. Prints two result lines, nothing per message.
fn bench(sh: &Shell, payload: Option<&[u8]>, count: Option<&[u8]>) -> i32 {
    let mut line = FixedBuf::<256>::new();
    let size = match payload {
        None => Some(BENCH_DEFAULT_PAYLOAD as u64),
        Some(p) => text::parse_whole(p).filter(|v| *v <= MAX_PAYLOAD as u64),
    };
    let Some(size) = size else {
        text::bench_bad_arg(
            &mut line,
            b"payload size",
            payload.unwrap_or_default(),
            0,
            MAX_PAYLOAD as u64,
        );
        sh.write_bytes(line.as_bytes());
        return EINVAL;
    };
    let n = match count {
        None => Some(u64::from(BENCH_DEFAULT_COUNT)),
        Some(c) => text::parse_count(c).filter(|v| *v <= u64::from(BENCH_MAX_COUNT)),
    };
    let Some(n) = n else {
        text::bench_bad_arg(
            &mut line,
            b"number of round trips",
            count.unwrap_or_default(),
            1,
            u64::from(BENCH_MAX_COUNT),
        );
        sh.write_bytes(line.as_bytes());
        return EINVAL;
    };
    let (size, n) = (size as usize, n as u32);
    let Some(ready) = STATE.with(|s| (s.ready_ept().is_some(), s.ready(s.bench.ept))) else {
        sh.write_bytes(NOT_READY);
        return EAGAIN;
    };
    let ept = match ready {
        (_, Some(ept)) => ept,
        (true, None) => {
            sh.write_bytes(b"bench: the remote has no \"bench\" endpoint (it echoes silently); nothing was sent\n");
            return EIO;
        }
        (false, None) => {
            sh.write_bytes(NOT_READY);
            return EAGAIN;
        }
    };
    if BENCH_BUSY.swap(true, Ordering::Acquire) {
        sh.write_bytes(b"bench: already running\n");
        return EBUSY;
    }
    // SAFETY: BENCH_BUSY is ours until the store below; nobody else touches SAMPLES.
    let samples = unsafe { &mut (&mut *SAMPLES.0.get())[..n as usize] };
    let result = run_bench(sh, ept, size, samples);
    BENCH_BUSY.store(false, Ordering::Release);
    result
}

fn run_bench(sh: &Shell, ept: u32, size: usize, samples: &mut [u32]) -> i32 {
    let n = samples.len() as u32;
    let hz = u64::from(time::cycles_per_sec()).max(1);
    let timeout = time::us_to_cycles(REPLY_TIMEOUT_MS * 1000);
    let mut errors = ErrorOnce::new();
    let mut msg = [0u8; MAX_PAYLOAD];
    for (i, b) in msg.iter_mut().enumerate() {
        *b = i as u8;
    }
    let set_phase = |active: bool| {
        STATE.with(|s| {
            s.bench.active = active;
            s.bench.payload = size;
            s.bench.received = 0;
        });
    };
    let stamp = |msg: &mut [u8; MAX_PAYLOAD], seq: u32| {
        if size >= 4 {
            msg[..4].copy_from_slice(&seq.to_le_bytes());
        }
    };
    STATE.with(|s| s.bench.bad = 0);
    set_phase(true);
    start_polling();
    let mut line = FixedBuf::<256>::new();

    // 1. Round trips, one at a time.
    let mut failed: Option<(&[u8], u32)> = None;
    let t_start = cycles();
    for i in 0..n {
        stamp(&mut msg, i);
        let t0 = cycles();
        let deadline = t0 + timeout;
        if send_one(ept, &msg[..size], deadline, &mut errors).is_err()
            || wait_for(&|s| s.bench.received > i, deadline, &mut errors) != Some(true)
        {
            failed = Some((b"round trip", i));
            break;
        }
        samples[i as usize] = (cycles() - t0).min(u64::from(u32::MAX)) as u32;
    }
    let t_rt = cycles() - t_start;
    if failed.is_none() {
        sort(samples);
        let pct = |p: usize| time::cycles_to_us(u64::from(samples[(samples.len() - 1) * p / 100]));
        text::bench_round_trips(
            &mut line,
            n,
            size,
            u64::from(n) * hz / t_rt.max(1),
            [pct(50), pct(99), pct(100)],
        );
        sh.write_bytes(line.as_bytes());
    }

    // 2. A stream: up to BENCH_WINDOW in flight, refilled as echoes come back.
    if failed.is_none() {
        set_phase(true);
        let mut sent = 0u32;
        let mut received = 0u32;
        let t_start = cycles();
        while received < n {
            let filled = STATE.with(|s| {
                // One doorbell check for the whole burst.
                s.node.defer_doorbells();
                let mut k = 0;
                let mut err = None;
                while sent + k < n && (sent + k).saturating_sub(s.bench.received) < BENCH_WINDOW {
                    stamp(&mut msg, sent + k);
                    match s.node.try_send(ept, &msg[..size]) {
                        Ok(()) => k += 1,
                        Err(Error::NoTxBuffer) => break,
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                let _ = s.node.flush_doorbell();
                (k, err)
            });
            let Some((k, err)) = filled else { break };
            if let Some(e) = err {
                log::error!("host: bench: send failed: {}", e);
                failed = Some((b"stream message", received));
                break;
            }
            sent += k;
            let before = received;
            let deadline = cycles() + timeout;
            match wait_for(&|s| s.bench.received > before, deadline, &mut errors) {
                Some(true) => {}
                _ => {
                    failed = Some((b"stream message", received));
                    break;
                }
            }
            received = STATE.with(|s| s.bench.received).unwrap_or(received);
        }
        let t_stream = cycles() - t_start;
        if failed.is_none() {
            line.clear();
            text::bench_stream(
                &mut line,
                n,
                BENCH_WINDOW,
                size,
                u64::from(n) * hz / t_stream.max(1),
                u64::from(n) * size as u64 * hz / t_stream.max(1) / 1000,
            );
            sh.write_bytes(line.as_bytes());
        }
    }
    set_phase(false);
    stop_polling();
    let bad = STATE.with(|s| s.bench.bad).unwrap_or(0);
    if bad > 0 {
        line.clear();
        line.push_bytes(b"bench: ");
        line.push_u64(u64::from(bad));
        line.push_bytes(b" echoes had the wrong length or came out of order\n");
        sh.write_bytes(line.as_bytes());
    }
    match failed {
        None if bad == 0 => 0,
        None => EIO,
        Some((what, i)) => {
            line.clear();
            line.push_bytes(b"bench: no echo of ");
            line.push_bytes(what);
            line.push_bytes(b" ");
            line.push_u64(u64::from(i) + 1);
            line.push_bytes(b" within 5 s; stopped\n");
            sh.write_bytes(line.as_bytes());
            ETIMEDOUT
        }
    }
}

/// Heapsort: small code, no allocation, O(n log n) (an insertion sort of 2000 samples
/// would be two million steps).
fn sort(v: &mut [u32]) {
    fn sift(v: &mut [u32], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for i in (0..n / 2).rev() {
        sift(v, i, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift(v, 0, end);
    }
}

/// `rpmsg_ivshmem status`: ids, link, session and counters, one `key: value` a line.
fn status(sh: &Shell) -> i32 {
    struct Snapshot {
        own: Option<u16>,
        peer: Option<u16>,
        link: LinkState,
        ready: bool,
        session: u32,
        ept: Option<(u32, Option<u32>)>,
        bench: Option<(u32, Option<u32>)>,
        stats: rpmsg_engine::Stats,
        errors: u32,
        peer_faults: u32,
        stray: u64,
    }
    let Some(s) = STATE.with(|s| Snapshot {
        own: s.node.own_id(),
        peer: s.node.peer_id(),
        link: s.node.link_state(),
        ready: s.ready_ept().is_some(),
        session: s.node.session(),
        ept: s
            .ept
            .map(|e| (e, s.node.endpoint(e).and_then(|x| x.dest()))),
        bench: s
            .bench
            .ept
            .map(|e| (e, s.node.endpoint(e).and_then(|x| x.dest()))),
        stats: *s.node.stats(),
        errors: s.node.counters().total(),
        peer_faults: s.node.counters().peer_faults(),
        stray: s.stray,
    }) else {
        sh.write_bytes(NOT_READY);
        return EIO;
    };
    let link: &[u8] = match s.link {
        LinkState::Down => b"down",
        LinkState::Waiting => b"waiting for a remote",
        LinkState::Up if s.ready => b"up",
        LinkState::Up => b"up, endpoint \"k\" not announced yet",
        LinkState::Broken => b"broken (the remote corrupted a ring; resets when it restarts)",
    };
    let mut out = FixedBuf::<640>::new();
    out.push_bytes(b"role: host\nown id: ");
    opt(&mut out, s.own.map(u64::from));
    out.push_bytes(b"\npeer id: ");
    opt(&mut out, s.peer.map(u64::from));
    out.push_bytes(b"\nlink: ");
    out.push_bytes(link);
    out.push_bytes(b"\nsession: ");
    out.push_u64(u64::from(s.session));
    out.push_bytes(b"\nendpoint: ");
    endpoint(&mut out, ECHO_ENDPOINT, s.ept);
    out.push_bytes(b"\nbench endpoint: ");
    endpoint(&mut out, BENCH_ENDPOINT, s.bench);
    let counters: [(&[u8], u64); 8] = [
        (b"\ntx messages: ", s.stats.tx_messages),
        (b"\nrx messages: ", s.stats.rx_messages),
        (b"\nnotifications: ", s.stats.notifications),
        (b"\ndropped: ", s.stats.dropped),
        (b"\nresets: ", s.stats.resets),
        (b"\nerrors: ", u64::from(s.errors)),
        (b"\npeer faults: ", u64::from(s.peer_faults)),
        (b"\nstray messages: ", s.stray),
    ];
    for (key, value) in counters {
        out.push_bytes(key);
        out.push_u64(value);
    }
    out.push_bytes(b"\n");
    sh.write_bytes(out.as_bytes());
    0
}

fn opt(out: &mut FixedBuf<640>, v: Option<u64>) {
    match v {
        Some(v) => out.push_u64(v),
        None => out.push_bytes(b"none"),
    }
}

fn endpoint(out: &mut FixedBuf<640>, name: &str, e: Option<(u32, Option<u32>)>) {
    let Some((local, dest)) = e else {
        out.push_bytes(b"none");
        return;
    };
    out.push_bytes(name.as_bytes());
    out.push_bytes(b" ");
    out.push_u64(u64::from(local));
    match dest {
        Some(d) => {
            out.push_bytes(b" -> ");
            out.push_u64(u64::from(d));
        }
        None => out.push_bytes(b" (unbound)"),
    }
}
