//! The host application: the virtio driver side and the `rpmsg_ivshmem` shell commands.
//!
//! Two threads share one engine node through [`SharedNode`] (a critical section around
//! each short step; nobody waits inside it):
//!
//! * the receive thread (started at boot, so the shell is usable at once) initialises the
//!   shared region, waits for doorbells with a [`RX_POLL_MS`] timeout, receives
//!   everything pending, binds the remote's endpoint `"k"` when it is announced, prints the
//!   banner each time the link comes up, and hands echoes to a waiting `send` through a
//!   small queue plus [`event::raise`];
//! * the shell thread runs `send`: for each message it sends the string and its NUL,
//!   then sleeps on [`event::wait`] until the echo is queued or [`REPLY_TIMEOUT_MS`]
//!   passed.
//!
//! Echoes that arrive while no `send` waits (a late echo after a timeout) are counted
//! and dropped. A remote that restarts is handled by the engine (it asks for a fresh
//! session); `send` during that time prints the timeout line and returns.

use super::text::{self, NOT_READY, TIMED_OUT};
use super::{ErrorOnce, ECHO_ENDPOINT, MAX_PAYLOAD, RX_POLL_MS};
use crate::engine::IvshmemDoorbell;
use crate::shell::{self, Shell};
use crate::time::{self, event};
use crate::{console, logger, thread, FixedBuf};
use core::fmt::Write;
use rpmsg_engine::{Error, Event, Host, LinkState, SharedNode};

/// How long `send` waits for each echo (and for a transmit buffer).
pub const REPLY_TIMEOUT_MS: u64 = 5_000;

/// Echoes that can wait for the shell thread (one is in flight at a time; the rest
/// absorbs a late echo of an earlier, timed-out message).
const ECHO_SLOTS: usize = 4;

const EINVAL: i32 = -22;
const EAGAIN: i32 = -11;
const ETIMEDOUT: i32 = -116;
const EIO: i32 = -5;

struct Echo {
    len: usize,
    data: [u8; MAX_PAYLOAD],
}

/// Everything the two threads share, behind one critical section.
struct HostState {
    node: Host<'static, IvshmemDoorbell>,
    /// Our endpoint bound to the remote's "k" (its local address; it stays the same
    /// across sessions, only its binding changes).
    ept: Option<u32>,
    /// A `send` is waiting for echoes: queue them.
    collecting: bool,
    echoes: heapless::Deque<Echo, ECHO_SLOTS>,
    /// Messages nobody waited for.
    stray: u64,
}

impl HostState {
    /// The endpoint to send to, if the link is up and "k" is bound.
    fn ready_ept(&self) -> Option<u32> {
        let ept = self.ept?;
        if self.node.link_state() != LinkState::Up {
            return None;
        }
        self.node.endpoint(ept)?.dest()?;
        Some(ept)
    }
}

static STATE: SharedNode<HostState> = SharedNode::new();

/// Entry of the host image (`rust_main`): installs the shell handlers and starts the
/// receive thread, then returns so the shell runs at once.
pub fn main() {
    logger::init(log::LevelFilter::Info);
    shell::set_send_handler(send);
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
            let wanted = s.collecting && Some(rx.dst()) == s.ept && !s.echoes.is_full();
            let step = if wanted {
                let mut echo = Echo {
                    len: 0,
                    data: [0; MAX_PAYLOAD],
                };
                echo.len = rx.read(0, &mut echo.data).unwrap_or(0);
                // Cannot fail: checked `is_full` above.
                let _ = s.echoes.push_back(echo);
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
            if name.as_str() != ECHO_ENDPOINT {
                return Step::Ignored {
                    name,
                    addr,
                    destroyed: false,
                };
            }
            match s.node.bind(&name, addr) {
                Ok(local) => {
                    s.ept = Some(local);
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

fn rx_main() {
    let Some(opened) = super::open("host") else {
        return;
    };
    let shm = opened.shm;
    let mut node = match Host::new_host(
        opened.region,
        opened.config,
        Some(opened.id),
        IvshmemDoorbell::new(shm),
    ) {
        Ok(n) => n,
        Err(e) => {
            log::error!("host: engine: {}", e);
            return;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    if let Err(e) = node.start() {
        log::error!("host: cannot initialise the shared region: {}", e);
        return;
    }
    let session = node.session();
    STATE.install(HostState {
        node,
        ept: None,
        collecting: false,
        echoes: heapless::Deque::new(),
        stray: 0,
    });
    log::info!("host: session {}, waiting for a remote", session);

    let mut ready: Option<u32> = None;
    let mut errors = ErrorOnce::new();
    let mut strays_logged = 0u64;
    loop {
        let mut woke = false;
        // Drain everything pending; each step is one short critical section.
        loop {
            match STATE.with(receive_one).unwrap_or(Step::Idle) {
                Step::Idle => break,
                Step::Echo => woke = true,
                Step::Stray => {
                    if strays_logged == 0 {
                        log::warn!("host: a message arrived while no send was waiting: dropped");
                    }
                    strays_logged += 1;
                }
                Step::Bound { name, addr, local } => {
                    log::info!(
                        "host: endpoint \"{}\" of the remote (address {}) bound to {}",
                        name,
                        addr,
                        local
                    )
                }
                Step::BindFailed(e) => log::error!("host: cannot bind endpoint \"k\": {}", e),
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
                    break;
                }
            }
        }
        if woke {
            event::raise();
        }
        // Ready in a session we have not announced yet? (A remote restart gives a new
        // session, possibly without a "not ready" moment between two polls.)
        let (now, peer) = STATE
            .with(|s| (s.ready_ept().map(|_| s.node.session()), s.node.peer_id()))
            .unwrap_or((None, None));
        if now != ready {
            if let Some(session) = now {
                errors.clear();
                log::info!(
                    "host: link up with the remote (ivshmem id {}), session {}",
                    peer.map_or(-1, i32::from),
                    session
                );
                let mut line = FixedBuf::<128>::new();
                text::banner(&mut line, "Host");
                console::write_bytes(line.as_bytes());
            } else if let Some(session) = ready {
                log::info!(
                    "host: link down (session {}), waiting for a remote",
                    session
                );
            }
            ready = now;
            // Wake a send that waits for the link or a buffer.
            event::raise();
        }
        let _ = shm.wait_doorbell(Some(RX_POLL_MS));
    }
}

/// Sends `payload` and waits for its echo (copied into `echo`); `Err` after the timeout
/// (or an engine error, logged).
fn exchange(ept: u32, payload: &[u8], echo: &mut [u8; MAX_PAYLOAD]) -> Result<usize, ()> {
    let deadline = time::uptime_ms() + REPLY_TIMEOUT_MS;
    let mut first = true;
    loop {
        let sent = STATE.with(|s| {
            if first {
                // Whatever is still queued belongs to an earlier message.
                s.echoes.clear();
                s.collecting = true;
            }
            let _ = s.node.poll();
            s.node.try_send(ept, payload)
        });
        first = false;
        match sent {
            Some(Ok(())) => break,
            // No buffer yet, or the link is being reset: wait (and time out).
            Some(Err(Error::NoTxBuffer | Error::NotReady | Error::EndpointNotBound)) => {}
            Some(Err(e)) => {
                log::error!("host: send failed: {}", e);
                return Err(());
            }
            None => return Err(()),
        }
        let now = time::uptime_ms();
        if now >= deadline {
            return Err(());
        }
        // The receive thread raises the event when the link or the rings change; look
        // again at least every millisecond anyway.
        event::wait(Some(1));
    }
    loop {
        let got = STATE
            .with(|s| {
                s.echoes.pop_front().map(|e| {
                    echo[..e.len].copy_from_slice(&e.data[..e.len]);
                    e.len
                })
            })
            .flatten();
        if let Some(n) = got {
            return Ok(n);
        }
        let now = time::uptime_ms();
        if now >= deadline {
            return Err(());
        }
        event::wait(Some((deadline - now).min(u64::from(u32::MAX)) as u32));
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

    let Some(ept) = STATE.with(|s| s.ready_ept()).flatten() else {
        sh.write_bytes(NOT_READY);
        return EAGAIN;
    };
    let mut echo = [0u8; MAX_PAYLOAD];
    let mut result = 0;
    for i in 1..=count {
        match exchange(ept, payload, &mut echo) {
            Ok(n) => {
                line.clear();
                text::echoed(&mut line, &echo[..n], i);
                sh.write_bytes(line.as_bytes());
            }
            Err(()) => {
                sh.write_bytes(TIMED_OUT);
                result = ETIMEDOUT;
                break;
            }
        }
    }
    STATE.with(|s| {
        s.collecting = false;
        s.echoes.clear();
    });
    result
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
        stats: *s.node.stats(),
        errors: s.node.counters().total(),
        peer_faults: s.node.counters().peer_faults(),
        stray: s.stray,
    }) else {
        sh.write_bytes(NOT_READY);
        return EIO;
    };
    let link = match s.link {
        LinkState::Down => "down",
        LinkState::Waiting => "waiting for a remote",
        LinkState::Up if s.ready => "up",
        LinkState::Up => "up, endpoint \"k\" not announced yet",
        LinkState::Broken => "broken (the remote corrupted a ring; resets when it restarts)",
    };
    let mut out = FixedBuf::<640>::new();
    let _ = write!(out, "role: host\nown id: ");
    let _ = opt(&mut out, s.own.map(u32::from));
    let _ = write!(out, "\npeer id: ");
    let _ = opt(&mut out, s.peer.map(u32::from));
    let _ = write!(out, "\nlink: {}\nsession: {}\nendpoint: ", link, s.session);
    let _ = match s.ept {
        Some((local, Some(dest))) => write!(out, "{} {} -> {}", ECHO_ENDPOINT, local, dest),
        Some((local, None)) => write!(out, "{} {} (unbound)", ECHO_ENDPOINT, local),
        None => write!(out, "none"),
    };
    let _ = write!(
        out,
        "\ntx messages: {}\nrx messages: {}\nnotifications: {}\ndropped: {}\n\
         resets: {}\nerrors: {}\npeer faults: {}\nstray messages: {}\n",
        s.stats.tx_messages,
        s.stats.rx_messages,
        s.stats.notifications,
        s.stats.dropped,
        s.stats.resets,
        s.errors,
        s.peer_faults,
        s.stray
    );
    sh.write_bytes(out.as_bytes());
    0
}

fn opt(out: &mut FixedBuf<640>, v: Option<u32>) -> core::fmt::Result {
    match v {
        Some(v) => write!(out, "{}", v),
        None => write!(out, "none"),
    }
}
