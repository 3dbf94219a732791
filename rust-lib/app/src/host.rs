//! The host's application: the remote's endpoints `"k"` and `"bench"` bound when they
//! are announced, one receive step, and `send` (the sample's shell command) with its
//! reply timeout.
//!
//! A platform keeps a [`HostApp`] where its threads reach it ([`crate::Port::with`]) and
//! calls [`HostApp::receive`] from whichever thread receives; while a command runs
//! ([`HostApp::busy`]) that thread is the command's, so a message for it is handed over
//! in place ([`Step::Echo`]) instead of being copied into a queue.

use rpmsg_engine::{Doorbell, Error, Event, Host, LinkState, RxBuffer};

use crate::{text, Console, ErrorOnce, Part, Port, Sender, BENCH_ENDPOINT, ECHO_ENDPOINT};

/// `bench`'s count of the echoes of its silent endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BenchCount {
    /// A bench runs: count its echoes (else they are strays).
    pub active: bool,
    /// The length every echo must have.
    pub payload: usize,
    /// Echoes since the phase began.
    pub received: u64,
    /// Echoes of the wrong length, or (payloads of 4 bytes and more, which carry the
    /// message number) out of order.
    pub bad: u64,
}

impl BenchCount {
    fn count(&mut self, rx: &RxBuffer<'_>) {
        let mut seq = [0u8; 4];
        let ok = rx.len() == self.payload
            && (self.payload < 4
                || (rx.read(0, &mut seq) == Ok(4)
                    && u64::from(u32::from_le_bytes(seq)) == self.received & 0xffff_ffff));
        if !ok {
            self.bad += 1;
        }
        self.received += 1;
    }
}

/// The host node and what the application keeps next to it.
#[derive(Debug)]
pub struct HostApp<'a, D: Doorbell> {
    /// The engine's node.
    pub node: Host<'a, D>,
    /// Our endpoint bound to the remote's "k" (it keeps its address across sessions; only
    /// its binding changes).
    pub echo: Option<u32>,
    /// Our endpoint bound to the remote's "bench".
    pub bench_ept: Option<u32>,
    /// A command runs and receives in its own thread: messages for "k" are its echoes,
    /// and a platform's background receiver leaves the node to it.
    pub busy: bool,
    /// `bench`'s echo count.
    pub bench: BenchCount,
    /// Messages nobody waited for (counted, returned, logged once).
    pub stray: u64,
    /// The session the banner was printed for (`None`: the link is not ready).
    pub greeted: Option<u32>,
}

/// What one receive step found.
#[derive(Debug)]
pub enum Step<'a> {
    /// Nothing pending.
    Idle,
    /// A message on "k" while a command runs: read it, then release it.
    Echo(RxBuffer<'a>),
    /// A message for an endpoint of the platform's own: handle it, then release it.
    Other(RxBuffer<'a>),
    /// An echo of the bench endpoint, counted and released.
    Counted,
    /// A message nobody waited for, released; `first`: the first one ever.
    Stray {
        /// Its sender.
        src: u32,
        /// Its destination.
        dst: u32,
        /// The first stray of this node.
        first: bool,
    },
    /// The remote announced one of our endpoints and it is bound now.
    Bound {
        /// "k" or "bench".
        name: heapless::String<31>,
        /// The remote's address.
        addr: u32,
        /// Our endpoint.
        local: u32,
    },
    /// The remote announced (or destroyed) an endpoint we do not use.
    Ignored {
        /// Its name.
        name: heapless::String<31>,
        /// Its address.
        addr: u32,
        /// Destroyed rather than announced.
        destroyed: bool,
    },
    /// Receiving (or binding) failed.
    Failed(Error),
}

impl<'a, D: Doorbell> HostApp<'a, D> {
    /// A started host node, before any remote announced its endpoints.
    pub fn new(node: Host<'a, D>) -> Self {
        Self {
            node,
            echo: None,
            bench_ept: None,
            busy: false,
            bench: BenchCount::default(),
            stray: 0,
            greeted: None,
        }
    }

    /// `ept` if the link is up and it is bound.
    pub fn bound(&self, ept: Option<u32>) -> Option<u32> {
        let ept = ept?;
        if self.node.link_state() != LinkState::Up {
            return None;
        }
        self.node.endpoint(ept)?.dest()?;
        Some(ept)
    }

    /// Our endpoint bound to "k", if the link is up: `send` can run.
    pub fn ready(&self) -> Option<u32> {
        self.bound(self.echo)
    }

    /// The session, if [`HostApp::ready`]: a new value is a new link to greet.
    pub fn ready_session(&self) -> Option<u32> {
        self.ready().map(|_| self.node.session())
    }

    /// Receives one message or announcement.
    pub fn receive(&mut self) -> Step<'a> {
        match self.node.recv() {
            Ok(None) => Step::Idle,
            Ok(Some(Event::Message(rx))) => self.on_message(rx),
            Ok(Some(Event::NameServiceCreate { name, addr })) => self.on_announce(name, addr),
            Ok(Some(Event::NameServiceDestroy { name, addr })) => Step::Ignored {
                name,
                addr,
                destroyed: true,
            },
            Err(e) => Step::Failed(e),
        }
    }

    fn on_message(&mut self, rx: RxBuffer<'a>) -> Step<'a> {
        let dst = Some(rx.dst());
        let step = if self.busy && dst == self.echo {
            return Step::Echo(rx);
        } else if dst != self.echo && dst != self.bench_ept {
            return Step::Other(rx);
        } else if self.bench.active && dst == self.bench_ept {
            self.bench.count(&rx);
            Step::Counted
        } else {
            self.stray += 1;
            Step::Stray {
                src: rx.src(),
                dst: rx.dst(),
                first: self.stray == 1,
            }
        };
        // A buffer from an ended session is simply gone: nothing to return.
        let _ = self.node.release_rx(rx);
        step
    }

    fn on_announce(&mut self, name: heapless::String<31>, addr: u32) -> Step<'a> {
        let slot = match name.as_str() {
            ECHO_ENDPOINT => &mut self.echo,
            BENCH_ENDPOINT => &mut self.bench_ept,
            _ => {
                return Step::Ignored {
                    name,
                    addr,
                    destroyed: false,
                }
            }
        };
        match self.node.bind(&name, addr) {
            Ok(local) => {
                *slot = Some(local);
                Step::Bound { name, addr, local }
            }
            Err(e) => Step::Failed(e),
        }
    }
}

/// Logs what a receive step found; true if it ends a drain (nothing more, or an error).
/// A message in it that nobody takes ([`Step::Echo`] after its command ended,
/// [`Step::Other`]) is returned to the remote and counted as a stray.
pub fn settle<'a, D, P>(
    port: &mut P,
    step: Step<'a>,
    out: &mut impl Console,
    errors: &mut ErrorOnce,
) -> bool
where
    D: Doorbell + 'a,
    P: Port<HostApp<'a, D>>,
{
    match step {
        Step::Idle => return true,
        Step::Counted => {}
        Step::Echo(rx) | Step::Other(rx) => {
            port.with(|a| {
                a.stray += 1;
                a.node.release_rx(rx)
            });
        }
        Step::Stray { src, dst, first } => {
            if first {
                out.diag(&[
                    Part::Str("host: message from address "),
                    Part::Num(u64::from(src)),
                    Part::Str(" to "),
                    Part::Num(u64::from(dst)),
                    Part::Str(" while no command waits: dropped"),
                ]);
            }
        }
        Step::Bound { name, addr, local } => out.diag(&[
            Part::Str("host: endpoint \""),
            Part::Str(&name),
            Part::Str("\" of the remote (address "),
            Part::Num(u64::from(addr)),
            Part::Str(") bound to "),
            Part::Num(u64::from(local)),
        ]),
        Step::Ignored {
            name,
            addr,
            destroyed,
        } => out.diag(&[
            Part::Str("host: the remote "),
            Part::Str(if destroyed { "destroyed" } else { "announced" }),
            Part::Str(" endpoint \""),
            Part::Str(&name),
            Part::Str("\" (address "),
            Part::Num(u64::from(addr)),
            Part::Str("): not used"),
        ]),
        Step::Failed(e) => {
            errors.report(out, "host", "receive", e);
            return true;
        }
    }
    false
}

/// Receives what is pending while no command runs (see [`settle`]), at most [`MAX_DRAIN`]
/// steps.
pub fn drain<'a, D, P>(port: &mut P, out: &mut impl Console, errors: &mut ErrorOnce)
where
    D: Doorbell + 'a,
    P: Port<HostApp<'a, D>>,
{
    // Bounded, so that a peer that keeps sending cannot keep the caller here for ever.
    for _ in 0..MAX_DRAIN {
        let Some(step) = port.with(|a| a.receive()) else {
            return;
        };
        if settle(port, step, out, errors) {
            return;
        }
    }
}

/// Most steps one [`drain`] takes: four ring-fulls of the default queue.
pub const MAX_DRAIN: usize = 64;

/// Prints the banner on `board` when the link became ready in a session not greeted yet
/// (a remote restart gives a new session, possibly without a "not ready" moment between
/// two looks); logs when it went down. True if the link just came up.
pub fn greet<'a, D, P>(port: &mut P, out: &mut impl Console, board: &str) -> bool
where
    D: Doorbell + 'a,
    P: Port<HostApp<'a, D>>,
{
    let change = port.with(|a| {
        let now = a.ready_session();
        let before = core::mem::replace(&mut a.greeted, now);
        (now != before).then(|| (now, before, a.node.peer_id()))
    });
    match change.flatten() {
        Some((Some(session), _, peer)) => {
            let who = "host: link up with the remote";
            crate::link_up(out, who, session, peer, board, "Host");
            true
        }
        Some((None, Some(session), _)) => {
            out.diag(&[
                Part::Str("host: link down (session "),
                Part::Num(u64::from(session)),
                Part::Str("), waiting for a remote"),
            ]);
            false
        }
        _ => false,
    }
}

/// How `send` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Every message was echoed.
    Done,
    /// The link was not up: nothing was sent ([`text::NOT_READY`] printed).
    NotReady,
    /// An echo did not come in time ([`text::TIMED_OUT`] printed).
    TimedOut,
    /// An echo was not the message sent (sequence checking), or sending failed.
    Failed,
}

/// Options of `send` beyond the sample's (the native peer's `--window`, `--seq`,
/// `--quiet`); the default is the sample's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// Messages in flight (at least 1).
    pub window: u16,
    /// Number the messages (`"<i>:<string>"`) and check every echo.
    pub seq: bool,
    /// No echo blocks; a summary at the end.
    pub quiet: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            window: 1,
            seq: false,
            quiet: false,
        }
    }
}

/// After a sequence-checked `send`, how long to watch for an extra (duplicated) echo.
pub const LINGER_MS: u64 = 50;

/// One `send`: its arguments, where it stands, and the errors it logged.
struct Sending<'t> {
    ept: u32,
    text: &'t [u8],
    count: u64,
    options: SendOptions,
    sent: u64,
    received: u64,
    deadline: u64,
    /// The session the messages went out in: a fresh one loses whatever was in flight.
    session: u32,
    /// The node's count of dropped messages at the last look.
    dropped: u64,
    errors: ErrorOnce,
}

impl Sending<'_> {
    /// Sends while the window has room; false if sending failed for good.
    fn fill<'a, D, P>(&mut self, port: &mut P, out: &mut impl Console) -> bool
    where
        D: Doorbell + 'a,
        P: Port<HostApp<'a, D>>,
    {
        let window = u64::from(self.options.window.max(1));
        while self.sent < self.count && self.sent - self.received < window {
            let mut digits = [0u8; 20];
            let seq: &[u8] = if self.options.seq {
                crate::decimal(self.sent + 1, &mut digits)
            } else {
                &[]
            };
            let colon: &[u8] = if self.options.seq { b":" } else { b"" };
            let parts = [seq, colon, self.text, b"\0"];
            match port.with(|a| a.node.try_send_parts(self.ept, &parts)) {
                Some(Ok(())) => {
                    self.sent += 1;
                    self.deadline = port.now().saturating_add(port.ms(crate::REPLY_TIMEOUT_MS));
                }
                Some(Err(e)) if crate::retryable(e) => break,
                Some(Err(e)) => {
                    out.diag(&[Part::Str("host: send failed: "), Part::Error(e)]);
                    return false;
                }
                None => return false,
            }
        }
        true
    }

    /// Whether echo `rx` is the message it answers (always, without `seq`).
    fn check(&self, rx: &RxBuffer<'_>, out: &mut impl Console) -> bool {
        if !self.options.seq {
            return true;
        }
        let mut digits = [0u8; 20];
        let seq = crate::decimal(self.received, &mut digits);
        let ok = crate::payload_equals(rx, &[seq, b":", self.text, b"\0"]);
        if !ok {
            out.diag(&[
                Part::Str("host: echo number "),
                Part::Num(self.received),
                Part::Str(" is not message "),
                Part::Num(self.received),
                Part::Str(": lost, duplicated, reordered or changed"),
            ]);
        }
        ok
    }

    /// Takes one echo: checks it, sends what now fits the window (the remote works while
    /// we print), prints it. `None`: go on; `Some`: `send` ends so.
    fn on_echo<'a, D, P>(
        &mut self,
        port: &mut P,
        out: &mut impl Console,
        rx: RxBuffer<'a>,
    ) -> Option<SendOutcome>
    where
        D: Doorbell + 'a,
        P: Port<HostApp<'a, D>>,
    {
        if self.received == self.sent {
            // A late echo of an earlier, timed-out send: not ours (with `seq`: a failure).
            out.diag(&[Part::Str(
                "host: an echo arrived that no message in flight explains",
            )]);
            port.with(|a| {
                a.stray += 1;
                a.node.release_rx(rx)
            });
            return self.options.seq.then_some(SendOutcome::Failed);
        }
        self.received += 1;
        self.deadline = port.now().saturating_add(port.ms(crate::REPLY_TIMEOUT_MS));
        if !self.check(&rx, out) {
            port.with(|a| a.node.release_rx(rx));
            return Some(SendOutcome::Failed);
        }
        let filled = self.fill(port, out);
        if !self.options.quiet {
            text::echoed_start(out);
            crate::put_c_string(out, &rx);
            text::echoed_end(out, self.received);
            out.end();
        }
        port.with(|a| a.node.release_rx(rx));
        if !filled {
            return Some(SendOutcome::Failed);
        }
        (self.received == self.count).then_some(SendOutcome::Done)
    }

    /// Receives until `send` ends.
    fn run<'a, D, P>(&mut self, port: &mut P, out: &mut impl Console) -> SendOutcome
    where
        D: Doorbell + 'a,
        P: Port<HostApp<'a, D>>,
    {
        if !self.fill(port, out) {
            return SendOutcome::Failed;
        }
        loop {
            let Some(step) = port.with(|a| a.receive()) else {
                return SendOutcome::Failed;
            };
            match step {
                Step::Echo(rx) => {
                    if let Some(outcome) = self.on_echo(port, out, rx) {
                        return outcome;
                    }
                    continue;
                }
                Step::Idle if !self.fill(port, out) => return SendOutcome::Failed,
                Step::Idle => {}
                // A peer that keeps sending something else does not hold `send` up: the
                // timeout is checked after every step.
                other => {
                    settle(port, other, out, &mut self.errors);
                }
            }
            if let Some(why) = self.lost(port) {
                // The echoes of what is in flight cannot come (a fresh session: the old
                // one's buffers are gone), or one was dropped as invalid: nothing to wait
                // for. (A late echo after all is a stray, counted.)
                out.diag(&[
                    Part::Str(why),
                    Part::Num(self.sent - self.received),
                    Part::Str(" message(s) in flight lost"),
                ]);
            } else if port.now() < self.deadline {
                if port.with(|a| a.node.has_pending()) != Some(true) {
                    port.wait(self.deadline);
                }
                continue;
            }
            text::line(out, text::TIMED_OUT);
            out.end();
            return SendOutcome::TimedOut;
        }
    }

    /// Why the echoes in flight will not come, if something said so since the last look:
    /// a fresh session, or a message from the remote dropped as invalid.
    fn lost<'a, D, P>(&mut self, port: &mut P) -> Option<&'static str>
    where
        D: Doorbell + 'a,
        P: Port<HostApp<'a, D>>,
    {
        let (session, dropped) = port.with(|a| (a.node.session(), a.node.stats().dropped))?;
        let before = core::mem::replace(&mut self.dropped, dropped);
        if session != self.session {
            Some("host: the link was reset during send: ")
        } else if dropped != before && self.sent > self.received {
            Some("host: a message from the remote was dropped as invalid during send: ")
        } else {
            None
        }
    }

    /// With `seq`: a duplicated last echo would come right after it.
    fn linger<'a, D, P>(&mut self, port: &mut P, out: &mut impl Console) -> SendOutcome
    where
        D: Doorbell + 'a,
        P: Port<HostApp<'a, D>>,
    {
        let until = port.now().saturating_add(port.ms(LINGER_MS));
        while port.now() < until {
            match port.with(|a| a.receive()) {
                Some(Step::Echo(rx)) => {
                    port.with(|a| a.node.release_rx(rx));
                    return SendOutcome::Failed;
                }
                Some(Step::Idle) => port.wait(until),
                Some(other) => {
                    settle(port, other, out, &mut self.errors);
                }
                None => break,
            }
        }
        SendOutcome::Done
    }
}

/// The sample's `send`: sends `text` (plus its NUL) `count` times and prints each echo
/// block, with up to `options.window` messages in flight; prints [`text::TIMED_OUT`] and
/// gives up when no echo came within [`crate::REPLY_TIMEOUT_MS`] of the last progress, or
/// at once (with a diagnostic) when the link is reset or a message from the remote is
/// dropped as invalid meanwhile. `text` must have passed [`crate::command::check_text`].
pub fn send<'a, D, P>(
    port: &mut P,
    out: &mut impl Console,
    text: &[u8],
    count: u64,
    options: SendOptions,
) -> SendOutcome
where
    D: Doorbell + 'a,
    P: Port<HostApp<'a, D>>,
{
    let mut errors = ErrorOnce::new();
    // Take what is pending first, so that "ready" is current.
    drain(port, out, &mut errors);
    let ready = port.with(|a| {
        let ept = a.ready()?;
        a.busy = true;
        // The remote need not ring while we receive in this thread.
        let _ = a.node.busy_poll();
        Some((ept, a.node.session(), a.node.stats().dropped))
    });
    let Some((ept, session, dropped)) = ready.flatten() else {
        text::line(out, text::NOT_READY);
        out.end();
        return SendOutcome::NotReady;
    };
    let mut sending = Sending {
        ept,
        text,
        count,
        options,
        sent: 0,
        received: 0,
        deadline: port.now().saturating_add(port.ms(crate::REPLY_TIMEOUT_MS)),
        session,
        dropped,
        errors,
    };
    let mut outcome = sending.run(port, out);
    if outcome == SendOutcome::Done && options.seq {
        outcome = sending.linger(port, out);
        if outcome == SendOutcome::Failed {
            out.diag(&[Part::Str("host: an extra echo came after the last one")]);
        }
    }
    port.with(|a| {
        a.busy = false;
        let _ = a.node.prepare_to_wait();
    });
    if outcome == SendOutcome::Done && options.quiet {
        text::echoed_summary(out, count, options.seq);
        out.end();
    }
    outcome
}
