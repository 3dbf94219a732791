//! The host role: owns the rings, binds the remote's endpoint "k" when it is announced, and
//! runs `send` (the firmware shell command) and `status`, one-shot or from stdin.
//!
//! One host process outlives any number of remotes: when the remote's ivshmem peer leaves
//! the server, the host starts a new session at once (after draining what the remote had
//! already sent), and a new remote attaches to it and announces "k" again.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ivshmem::PeerEvent;
use rpmsg_engine::{Config, Error as EngineError, Event, Host, LinkState, RxBuffer, SharedRegion};

use crate::cli::SendOptions;
use crate::console::{Console, Stream};
use crate::diag;
use crate::error::{Error, Result};
use crate::node::{self, ECHO_ENDPOINT};
use crate::platform::{self, Ivshmem, Wake};
use crate::shell::{self, Command};
use crate::validate;
use crate::SINK_ENDPOINT;

/// How long `send` waits for each echo (as the firmware).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest sleep between two looks at the link when nothing rings.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// After a sequence-checked send, how long to watch for extra (duplicated) echoes.
pub const LINGER: Duration = Duration::from_millis(50);
/// Longest line the stdin shell accepts.
pub const MAX_LINE: usize = 64 * 1024;

/// Printed by `send` when the link is not up (firmware text).
pub const NOT_READY: &str = "RPMsg over IVSHMEM backend is not ready yet!";
/// Printed by `send` when an echo does not come within [`REPLY_TIMEOUT`] (firmware text).
pub const TIMED_OUT: &str = "Remote side response timed out!";

/// How a `send` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Every message was echoed.
    Done,
    /// The link was not up: nothing was sent ([`NOT_READY`] printed).
    NotReady,
    /// An echo did not come in time ([`TIMED_OUT`] printed).
    TimedOut,
    /// An echo was not the message sent (sequence checking), or sending failed.
    Failed,
}

/// A host node over an ivshmem connection.
#[derive(Debug)]
pub struct HostNode<'a> {
    engine: Host<'a, Ivshmem>,
    region: SharedRegion<'a>,
    own_id: u16,
    ept: Option<u32>,
    sink: Option<u32>,
    ready: bool,
    /// The session `ready` was last computed in.
    ready_session: u32,
    banner: Option<Stream>,
    board: String,
    console: Console,
    logged: Vec<EngineError>,
    stray: u64,
    spin: Duration,
}

impl<'a> HostNode<'a> {
    /// Initialises the region as the host (a new session) and rings the other peers so that
    /// a waiting remote attaches at once. The banner goes to `banner` (if any) whenever the
    /// link comes up.
    pub fn start(
        region: SharedRegion<'a>,
        config: Config,
        mut ivshmem: Ivshmem,
        board: String,
        banner: Option<Stream>,
    ) -> Result<Self> {
        node::check_no_other_host(region, &mut ivshmem)?;
        let own_id = ivshmem.id();
        let mut engine = Host::new_host(region, config, Some(own_id), ivshmem)
            .map_err(|e| Error::runtime(format!("cannot set up the host: {e}")))?;
        engine
            .start()
            .map_err(|e| Error::runtime(format!("cannot initialise the shared memory: {e}")))?;
        engine.doorbell().ring_all_peers();
        diag!(
            "host: ivshmem id {own_id}, session {}, waiting for a remote",
            engine.session()
        );
        Ok(Self {
            engine,
            region,
            own_id,
            ept: None,
            sink: None,
            ready: false,
            ready_session: 0,
            banner,
            board,
            console: Console::new(),
            logged: Vec::new(),
            stray: 0,
            spin: platform::DEFAULT_SPIN,
        })
    }

    /// The engine (for statistics).
    pub fn engine(&mut self) -> &mut Host<'a, Ivshmem> {
        &mut self.engine
    }

    /// Whether the link is up and the remote's endpoint "k" is bound.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Our local endpoint bound to the remote's "k".
    pub fn echo_endpoint(&self) -> Option<u32> {
        self.ept.filter(|_| self.ready)
    }

    /// Our local endpoint bound to the remote's sink endpoint, if it offers one.
    pub fn sink_endpoint(&self) -> Option<u32> {
        let ept = self.sink?;
        self.engine.endpoint(ept)?.dest()?;
        Some(ept)
    }

    fn log_once(&mut self, e: EngineError) {
        if !self.logged.contains(&e) {
            self.logged.push(e);
            diag!("host: {e} (counted; further occurrences are only counted)");
        }
    }

    /// The next application message, handling name-service announcements and peer changes
    /// on the way. Returns `None` when nothing is pending.
    pub fn next_message(&mut self) -> Option<RxBuffer<'a>> {
        loop {
            self.learn_unpublished_peer();
            match self.engine.recv() {
                Ok(Some(Event::Message(rx))) => return Some(rx),
                Ok(Some(Event::NameServiceCreate { name, addr })) => {
                    self.on_announce(&name, addr);
                    continue;
                }
                Ok(Some(Event::NameServiceDestroy { name, addr })) => {
                    diag!("host: the remote destroyed endpoint \"{name}\" (address {addr})");
                    continue;
                }
                Ok(None) => {}
                Err(e) => self.log_once(e),
            }
            // Only now, with everything the remote sent drained, act on peer changes.
            if self.engine.doorbell().has_events() {
                self.on_peer_events();
                continue;
            }
            self.update_ready();
            return None;
        }
    }

    fn on_announce(&mut self, name: &str, addr: u32) {
        let slot = match name {
            ECHO_ENDPOINT => &mut self.ept,
            SINK_ENDPOINT => &mut self.sink,
            _ => {
                diag!("host: the remote announced endpoint \"{name}\" (address {addr}): not used");
                return;
            }
        };
        match self.engine.bind(name, addr) {
            Ok(local) => *slot = Some(local),
            Err(e) => diag!("host: cannot bind endpoint \"{name}\": {e}"),
        }
    }

    /// While no peer id is known (a C OpenAMP remote publishes none), read the server's
    /// messages now rather than after draining the rings: the C remote connected to the
    /// server before it could attach, so its id is already on our socket, and the reply to
    /// its announcement must ring it.
    fn learn_unpublished_peer(&mut self) {
        if self.engine.peer_id().is_none() {
            let bell = self.engine.doorbell();
            bell.absorb_server_messages();
            let fallback = node::fallback_peer_id(&bell.peer_ids());
            self.engine.set_fallback_peer_id(fallback);
        }
    }

    fn on_peer_events(&mut self) {
        for event in self.engine.doorbell().take_events() {
            match event {
                PeerEvent::Disconnected { id } => {
                    let attached =
                        matches!(self.engine.link_state(), LinkState::Up | LinkState::Broken);
                    if attached && self.engine.peer_id() == Some(id) {
                        diag!("host: the remote (ivshmem id {id}) left the server");
                        self.new_session();
                    }
                }
                PeerEvent::ServerClosed => diag!(
                    "host: the ivshmem-server closed the connection; the link keeps working, \
                     but peers joining or leaving are no longer seen"
                ),
                _ => {}
            }
        }
        // A C OpenAMP remote publishes no id: ring the peer that is there now.
        let fallback = node::fallback_peer_id(&self.engine.doorbell().peer_ids());
        self.engine.set_fallback_peer_id(fallback);
    }

    /// Starts a new session: everything from the previous remote is discarded.
    fn new_session(&mut self) {
        if let Err(e) = self.engine.start() {
            diag!("host: cannot reinitialise the shared memory: {e}");
            return;
        }
        self.engine.doorbell().ring_all_peers();
        self.update_ready();
        diag!(
            "host: session {}, waiting for a remote",
            self.engine.session()
        );
    }

    fn update_ready(&mut self) {
        let now = self.engine.link_state() == LinkState::Up
            && self
                .ept
                .and_then(|e| self.engine.endpoint(e))
                .and_then(|e| e.dest())
                .is_some();
        // A new session is a new link, even when it came up again between two looks (a
        // new remote asked for it, attached and announced "k" within one receive loop).
        let session = self.engine.session();
        if now && self.ready && self.ready_session != session {
            self.ready = false;
        }
        self.ready_session = session;
        if now && !self.ready {
            let peer = self
                .engine
                .peer_id()
                .map_or_else(|| "unknown".to_string(), |id| id.to_string());
            diag!(
                "host: link up with the remote (ivshmem id {peer}), session {}",
                self.engine.session()
            );
            if let Some(stream) = self.banner {
                let text = format!(
                    "Hello {} - Host Side, the communication over RPMsg is ready to use!",
                    self.board
                );
                self.console.line(stream, &text);
            }
        } else if !now && self.ready {
            diag!("host: link down");
        }
        self.ready = now;
    }

    /// Blocks until something happens or `timeout` passes, spinning first (see
    /// [`platform::wait_for_peer`]).
    pub fn wait(&mut self, timeout: Duration, extra: Option<std::os::fd::BorrowedFd<'_>>) -> Wake {
        platform::wait_for_peer(&mut self.engine, self.spin, timeout, extra)
    }

    /// How long to spin before blocking on the doorbell (default [`platform::DEFAULT_SPIN`];
    /// zero: block at once).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Returns a message nobody waits for to the remote.
    pub fn discard(&mut self, rx: RxBuffer<'a>) {
        self.stray += 1;
        if self.stray == 1 {
            diag!(
                "host: message from address {} to {} while no send runs: dropped",
                rx.src(),
                rx.dst()
            );
        }
        let _ = self.engine.release_rx(rx);
    }

    /// Services the link until it is ready or `timeout` passes; true if ready.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(rx) = self.next_message() {
                self.discard(rx);
            }
            if self.ready {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wait((deadline - now).min(IDLE_POLL), None);
        }
    }

    /// The firmware's `send`: sends `text` (plus NUL) `count` times and prints each echo,
    /// with up to `options.window` messages in flight; gives up when no echo arrives within
    /// [`REPLY_TIMEOUT`]. `text` must have passed [`validate::check_text`].
    pub fn send(&mut self, text: &[u8], count: u64, options: SendOptions) -> SendOutcome {
        // Handle what is pending first, so that "ready" is current.
        while let Some(rx) = self.next_message() {
            self.discard(rx);
        }
        let Some(ept) = self.echo_endpoint() else {
            self.console.line(Stream::Stdout, NOT_READY);
            return SendOutcome::NotReady;
        };
        let max = self.engine.max_payload();
        let window = u64::from(options.window.max(1));
        let mut payload = Vec::with_capacity(max);
        let mut expected = Vec::with_capacity(max);
        let mut echo = vec![0u8; max];
        if !options.seq {
            validate::payload(text, &mut payload);
        }
        let (mut sent, mut received) = (0u64, 0u64);
        let started = Instant::now();
        let mut last_progress = started;
        let mut in_flight: VecDeque<u64> = VecDeque::with_capacity(window as usize);
        loop {
            while sent < count && sent - received < window {
                if options.seq {
                    validate::seq_payload(sent + 1, text, &mut payload);
                }
                match self.engine.try_send(ept, &payload) {
                    Ok(()) => {
                        sent += 1;
                        in_flight.push_back(sent);
                        last_progress = Instant::now();
                    }
                    // No buffer yet, or the link is being reset: wait (and time out).
                    Err(
                        EngineError::NoTxBuffer
                        | EngineError::NotReady
                        | EngineError::EndpointNotBound,
                    ) => break,
                    Err(e) => {
                        diag!("host: send failed: {e}");
                        return SendOutcome::Failed;
                    }
                }
            }
            let mut echoed = false;
            while let Some(rx) = self.next_message() {
                if rx.dst() != ept {
                    self.discard(rx);
                    continue;
                }
                let n = rx.read(0, &mut echo).unwrap_or(0);
                let _ = self.engine.release_rx(rx);
                let Some(seq) = in_flight.pop_front() else {
                    diag!(
                        "host: an echo arrived that no message in flight explains: {:?}",
                        String::from_utf8_lossy(validate::c_string(&echo[..n]))
                    );
                    if options.seq {
                        return SendOutcome::Failed;
                    }
                    continue;
                };
                received += 1;
                echoed = true;
                last_progress = Instant::now();
                if options.seq {
                    validate::seq_payload(seq, text, &mut expected);
                    if echo[..n] != expected[..] {
                        diag!(
                            "host: echo number {received} is {:?}, expected {:?}: lost, \
                             duplicated, reordered or changed",
                            String::from_utf8_lossy(&echo[..n]),
                            String::from_utf8_lossy(&expected)
                        );
                        return SendOutcome::Failed;
                    }
                }
                if !options.quiet {
                    self.console
                        .put(b"Remote side echoed the string back:\n[ ")
                        .put(validate::c_string(&echo[..n]))
                        .fmt(format_args!(" ]\nat message number {received}\n\n"));
                    self.console.flush();
                }
            }
            if received == count {
                break;
            }
            let now = Instant::now();
            if echoed && sent < count {
                // An echo just made room for the next message: send it before sleeping.
                continue;
            }
            let deadline = last_progress + REPLY_TIMEOUT;
            if now >= deadline {
                self.console.line(Stream::Stdout, TIMED_OUT);
                return SendOutcome::TimedOut;
            }
            self.wait((deadline - now).min(IDLE_POLL), None);
        }
        let elapsed = started.elapsed();
        if options.seq {
            // A duplicated last echo would arrive right after it: watch a little longer.
            let until = Instant::now() + LINGER;
            while Instant::now() < until {
                while let Some(rx) = self.next_message() {
                    if rx.dst() == ept {
                        let n = rx.read(0, &mut echo).unwrap_or(0);
                        diag!(
                            "host: extra echo after the last one: {:?}",
                            String::from_utf8_lossy(&echo[..n])
                        );
                        let _ = self.engine.release_rx(rx);
                        return SendOutcome::Failed;
                    }
                    self.discard(rx);
                }
                self.wait(LINGER, None);
            }
        }
        if options.quiet {
            if options.seq {
                self.console.fmt(format_args!(
                    "{count} messages echoed back in order: none lost, duplicated or changed\n"
                ));
            } else {
                self.console
                    .fmt(format_args!("{count} messages echoed back\n"));
            }
            self.console.flush();
            let secs = elapsed.as_secs_f64();
            diag!(
                "host: {count} round trips in {secs:.3} s ({:.0}/s, window {window})",
                count as f64 / secs.max(1e-9)
            );
        }
        SendOutcome::Done
    }

    /// The `status` text: ids, link, session and counters, one `key: value` a line.
    pub fn status_text(&mut self) -> String {
        let link = match self.engine.link_state() {
            LinkState::Down => "down",
            LinkState::Waiting => "waiting for a remote",
            LinkState::Up if self.ready => "up",
            LinkState::Up => "up, endpoint \"k\" not announced yet",
            LinkState::Broken => "broken (the remote corrupted a ring; resets when it restarts)",
        };
        let peer = self
            .engine
            .peer_id()
            .map_or_else(|| "none".to_string(), |id| id.to_string());
        let endpoint = match self.ept.and_then(|e| self.engine.endpoint(e)) {
            Some(e) => match e.dest() {
                Some(d) => format!("{} {} -> {d}", e.name(), e.local()),
                None => format!("{} {} (unbound)", e.name(), e.local()),
            },
            None => "none".to_string(),
        };
        let s = *self.engine.stats();
        let errors = self.engine.counters().total();
        let peer_faults = self.engine.counters().peer_faults();
        let session = self.engine.session();
        let (rings, failed_rings, interrupts) = self.engine.doorbell().counters();
        format!(
            "role: host\nown id: {}\npeer id: {peer}\nlink: {link}\nsession: {session}\n\
             endpoint: {endpoint}\ntx messages: {}\nrx messages: {}\nnotifications: {}\n\
             doorbells rung: {rings}\ndoorbells failed: {failed_rings}\ninterrupts: {interrupts}\n\
             dropped: {}\nresets: {}\nerrors: {errors}\npeer faults: {peer_faults}\n",
            self.own_id, s.tx_messages, s.rx_messages, s.notifications, s.dropped, s.resets,
        )
    }

    /// Runs one command line of the stdin shell.
    pub fn execute(&mut self, line: &[u8]) {
        match shell::parse_line(line) {
            Command::Empty => {}
            Command::Send { text, count } => {
                let count = match validate::parse_count(&count) {
                    Ok(c) => c,
                    Err(e) => return self.console.line(Stream::Stderr, &format!("send: {e}")),
                };
                if let Err(e) = validate::check_text(&text, self.engine.max_payload()) {
                    return self.console.line(Stream::Stderr, &format!("send: {e}"));
                }
                self.send(&text, count, SendOptions::default());
            }
            Command::SendWrongCount => {
                self.console
                    .put(b"send: wrong parameter count\n")
                    .put(shell::SEND_USAGE.as_bytes())
                    .put(b"\n");
                self.console.flush();
            }
            Command::Status => {
                let text = self.status_text();
                self.console.put(text.as_bytes());
                self.console.flush();
            }
            Command::Help => {
                self.console.put(shell::HELP.as_bytes());
                self.console.flush();
            }
            Command::NotFound(what) => self
                .console
                .line(Stream::Stderr, &format!("{what}: command not found")),
            Command::Unterminated(q) => self.console.line(
                Stream::Stderr,
                &format!("not terminated: {}", char::from(q)),
            ),
        }
    }

    /// The long-running host: services the link and runs commands from stdin until EOF.
    pub fn run_shell(&mut self) -> Result<()> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let prompt = stdin.is_terminal();
        let mut pending: Vec<u8> = Vec::new();
        let mut eof = false;
        let mut chunk = vec![0u8; 4096];
        if prompt {
            self.console.put(b"uart:~$ ").flush();
        }
        loop {
            while let Some(rx) = self.next_message() {
                self.discard(rx);
            }
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = pending.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.execute(&line);
                if prompt {
                    self.console.put(b"uart:~$ ").flush();
                }
            }
            if eof {
                if !pending.is_empty() {
                    let line = std::mem::take(&mut pending);
                    self.execute(&line);
                }
                return Ok(());
            }
            let wake = self.wait(IDLE_POLL, Some(fd));
            if wake.extra {
                // SAFETY: reading into a live buffer of `chunk.len()` bytes from stdin.
                let n = unsafe { libc::read(0, chunk.as_mut_ptr().cast(), chunk.len()) };
                if n > 0 {
                    pending.extend_from_slice(&chunk[..n as usize]);
                    if pending.len() > MAX_LINE && !pending.contains(&b'\n') {
                        self.console.line(
                            Stream::Stderr,
                            &format!("line longer than {MAX_LINE} bytes: ignored"),
                        );
                        pending.clear();
                    }
                } else if n == 0 {
                    eof = true;
                } else {
                    let e = std::io::Error::last_os_error();
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                    ) {
                        diag!("host: cannot read stdin: {e}");
                        eof = true;
                    }
                }
            }
        }
    }

    /// On a clean exit: tells the remote the host is gone (if the region is still ours).
    pub fn shutdown(&mut self) {
        node::release_as_host(self.region, self.own_id, self.engine.session());
    }
}
