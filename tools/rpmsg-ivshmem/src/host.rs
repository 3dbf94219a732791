//! The host role: the shared application ([`rpmsg_app::host`]) over an ivshmem connection,
//! one-shot (`host send`) or reading commands from stdin (`send`, `bench`, `status`).
//!
//! One host process outlives any number of remotes: when the remote's ivshmem peer leaves
//! the server, the host starts a new session at once (after draining what the remote had
//! already sent), and a new remote attaches to it and announces "k" again.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use ivshmem::PeerEvent;
use rpmsg_app::host::{self as app, HostApp, Step};
use rpmsg_app::{bench as app_bench, command, status, text, ErrorOnce, Port, Sender};
use rpmsg_engine::{Config, Error as EngineError, Host, LinkState, RxBuffer, SharedRegion};

use crate::cli::SendOptions;
use crate::console::{Console, Stream};
use crate::diag;
use crate::error::{Error, Result};
use crate::node;
use crate::platform::{Ivshmem, Wake};
use crate::port::{NativePort, PortRole};
use crate::shell::{self, Command};
use crate::SINK_ENDPOINT;

pub use rpmsg_app::host::SendOutcome;
pub use rpmsg_app::text::{NOT_READY, TIMED_OUT};

/// How long `send` waits for each echo (as the firmware).
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(rpmsg_app::REPLY_TIMEOUT_MS);
/// Longest sleep between two looks at the link when nothing rings.
pub const IDLE_POLL: Duration = Duration::from_millis(100);
/// Longest line the stdin shell accepts.
pub const MAX_LINE: usize = 64 * 1024;
/// Most round trips one `bench` of the stdin shell measures.
pub const BENCH_MAX_COUNT: u64 = 100_000;

/// The host node and its platform: what [`rpmsg_app`] drives through [`Port`].
pub type HostPort<'a> = NativePort<HostApp<'a, Ivshmem>, HostPeers<'a>>;

/// What the host's port keeps besides the application: its peers and its banner.
#[derive(Debug)]
pub struct HostPeers<'a> {
    region: SharedRegion<'a>,
    own_id: u16,
    sink: Option<u32>,
    board: String,
    /// Where the banner goes.
    banner: Console,
}

impl<'a> PortRole<HostApp<'a, Ivshmem>> for HostPeers<'a> {
    const IDLE_POLL: Duration = IDLE_POLL;

    fn after_wait(port: &mut HostPort<'a>) {
        port.upkeep();
    }
}

impl<'a> HostPort<'a> {
    /// Between receives: a C peer's id, peers that left, the banner.
    fn upkeep(&mut self) {
        self.learn_unpublished_peer();
        if self.app.node.doorbell().has_events() {
            self.on_peer_events();
        }
        let board = std::mem::take(&mut self.role.board);
        let mut banner = std::mem::take(&mut self.role.banner);
        app::greet(self, &mut banner, &board);
        self.role.board = board;
        self.role.banner = banner;
    }

    /// While no peer id is known (a C OpenAMP remote publishes none), read the server's
    /// messages now rather than after draining the rings: the C remote connected to the
    /// server before it could attach, so its id is already on our socket, and the reply to
    /// its announcement must ring it.
    fn learn_unpublished_peer(&mut self) {
        let node = &mut self.app.node;
        if node.peer_id().is_none() {
            let bell = node.doorbell();
            bell.absorb_server_messages();
            let fallback = node::fallback_peer_id(&bell.peer_ids());
            node.set_fallback_peer_id(fallback);
        }
    }

    fn on_peer_events(&mut self) {
        for event in self.app.node.doorbell().take_events() {
            match event {
                PeerEvent::Disconnected { id } => {
                    let node = &self.app.node;
                    let attached = matches!(node.link_state(), LinkState::Up | LinkState::Broken);
                    if attached && node.peer_id() == Some(id) {
                        diag!("host: the remote (ivshmem id {id}) left the server");
                        self.new_session();
                    }
                }
                PeerEvent::ServerClosed => {
                    diag!("host: the ivshmem-server closed the connection")
                }
                _ => {}
            }
        }
        // A C OpenAMP remote publishes no id: ring the peer that is there now.
        let fallback = node::fallback_peer_id(&self.app.node.doorbell().peer_ids());
        self.app.node.set_fallback_peer_id(fallback);
    }

    /// Starts a new session: everything from the previous remote is discarded.
    fn new_session(&mut self) {
        if let Err(e) = self.app.node.start() {
            diag!("host: cannot reinitialise the shared memory: {e}");
            return;
        }
        self.app.node.doorbell().ring_all_peers();
        diag!(
            "host: session {}, waiting for a remote",
            self.app.node.session()
        );
    }

    /// The next application message (on "k" or the sink), handling announcements and peer
    /// changes on the way. `None` when nothing is pending.
    fn next_message(&mut self) -> Option<RxBuffer<'a>> {
        let mut errors = ErrorOnce::new();
        let mut console = Console::new();
        loop {
            self.learn_unpublished_peer();
            // Messages on "k" come back to the caller, as to a running command.
            self.app.busy = true;
            let step = self.app.receive();
            self.app.busy = false;
            match step {
                Step::Echo(rx) | Step::Other(rx) => return Some(rx),
                Step::Stray { .. } | Step::Counted => {}
                Step::Ignored {
                    name,
                    addr,
                    destroyed: false,
                } if name == SINK_ENDPOINT => match self.app.node.bind(&name, addr) {
                    Ok(local) => self.role.sink = Some(local),
                    Err(e) => diag!("host: cannot bind endpoint \"{name}\": {e}"),
                },
                Step::Idle | Step::Failed(_) => {
                    app::settle(self, step, &mut console, &mut errors);
                    // Only now, with everything the remote sent drained, act on peer changes.
                    if self.app.node.doorbell().has_events() {
                        self.on_peer_events();
                        continue;
                    }
                    self.upkeep();
                    return None;
                }
                other => {
                    app::settle(self, other, &mut console, &mut errors);
                }
            }
        }
    }
}

/// A host node over an ivshmem connection.
#[derive(Debug)]
pub struct HostNode<'a> {
    port: HostPort<'a>,
    console: Console,
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
        let peers = HostPeers {
            region,
            own_id,
            sink: None,
            board,
            banner: Console::to(banner),
        };
        let port = NativePort::new(HostApp::new(engine), peers);
        Ok(Self {
            port,
            console: Console::new(),
        })
    }

    /// The engine (for statistics).
    pub fn engine(&mut self) -> &mut Host<'a, Ivshmem> {
        &mut self.port.app.node
    }

    /// Whether the link is up and the remote's endpoint "k" is bound.
    pub fn is_ready(&self) -> bool {
        self.port.app.ready().is_some()
    }

    /// Our local endpoint bound to the remote's "k".
    pub fn echo_endpoint(&self) -> Option<u32> {
        self.port.app.ready()
    }

    /// Our local endpoint bound to the remote's sink endpoint, if it offers one.
    pub fn sink_endpoint(&self) -> Option<u32> {
        self.port.app.bound(self.port.role.sink)
    }

    /// The next application message, handling name-service announcements and peer changes
    /// on the way. Returns `None` when nothing is pending.
    pub fn next_message(&mut self) -> Option<RxBuffer<'a>> {
        self.port.next_message()
    }

    /// Blocks until something happens or `timeout` passes, spinning first (see
    /// [`crate::platform::wait_for_peer`]).
    pub fn wait(&mut self, timeout: Duration, extra: Option<BorrowedFd<'_>>) -> Wake {
        self.port.wait_for(timeout, extra)
    }

    /// How long to spin before blocking on the doorbell (default [`crate::platform::DEFAULT_SPIN`];
    /// zero: block at once).
    pub fn set_spin(&mut self, spin: Duration) {
        self.port.spin = spin;
    }

    /// Sends `data` from `ept`, waiting up to [`REPLY_TIMEOUT`] for a transmit buffer
    /// ([`rpmsg_app::send_blocking`]).
    pub fn send_blocking(&mut self, ept: u32, data: &[u8]) -> std::result::Result<(), EngineError> {
        let deadline = self.port.now() + self.port.ms(rpmsg_app::REPLY_TIMEOUT_MS);
        let send = |a: &mut HostApp<'a, Ivshmem>| a.node.try_send_parts(ept, &[data]);
        rpmsg_app::send_blocking(&mut self.port, send, deadline)
    }

    /// Returns a message nobody waits for to the remote.
    pub fn discard(&mut self, rx: RxBuffer<'a>) {
        let app = &mut self.port.app;
        app.stray += 1;
        if app.stray == 1 {
            diag!(
                "host: message from address {} to {} while no send runs: dropped",
                rx.src(),
                rx.dst()
            );
        }
        let _ = app.node.release_rx(rx);
    }

    /// Services the link until it is ready or `timeout` passes; true if ready.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        // The command line allows at most a day; library callers get the same cap, so
        // the deadline cannot overflow the clock.
        let cap = Duration::from_secs(crate::cli::MAX_WAIT_SECS);
        let deadline = Instant::now() + timeout.min(cap);
        loop {
            while let Some(rx) = self.next_message() {
                self.discard(rx);
            }
            if self.is_ready() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.wait((deadline - now).min(IDLE_POLL), None);
        }
    }

    /// The firmware's `send` ([`rpmsg_app::host::send`]): sends `text` (plus NUL) `count`
    /// times and prints each echo, with up to `options.window` messages in flight.
    pub fn send(&mut self, text: &[u8], count: u64, options: SendOptions) -> SendOutcome {
        let options = app::SendOptions {
            window: options.window,
            seq: options.seq,
            quiet: options.quiet,
        };
        let started = Instant::now();
        let outcome = app::send(&mut self.port, &mut self.console, text, count, options);
        if outcome == SendOutcome::Done && options.quiet {
            let secs = started.elapsed().as_secs_f64();
            diag!(
                "host: {count} round trips in {secs:.3} s ({:.0}/s, window {})",
                count as f64 / secs.max(1e-9),
                options.window
            );
        }
        outcome
    }

    /// The `status` text: ids, link, session and counters, one `key: value` a line.
    pub fn status_text(&mut self) -> String {
        let (rings, failed_rings, interrupts) = self.port.app.node.doorbell().counters();
        let mut out = Vec::new();
        status::write(
            &mut out,
            &self.port.app,
            &[
                ("doorbells rung", rings),
                ("doorbells failed", failed_rings),
                ("interrupts", interrupts),
            ],
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `bench [payload] [count]` of the stdin shell ([`rpmsg_app::bench`]).
    fn bench(&mut self, payload: Option<&[u8]>, count: Option<&[u8]>) {
        let max_payload = self.port.app.node.max_payload();
        match command::bench_args(payload, count, max_payload, BENCH_MAX_COUNT) {
            Ok((size, n)) => {
                let mut samples = vec![0u32; n as usize];
                app_bench::run(&mut self.port, &mut self.console, size, &mut samples);
            }
            Err(e) => self.refuse(e),
        }
    }

    /// Prints a refused argument's error line on stderr.
    fn refuse(&mut self, e: command::ArgError<'_>) {
        e.write_line(&mut self.console);
        rpmsg_app::Console::end_error(&mut self.console);
    }

    /// Runs one command line of the stdin shell.
    pub fn execute(&mut self, line: &[u8]) {
        match shell::parse_line(line) {
            Command::Empty => {}
            Command::Send { text, count } => {
                let max_payload = self.port.app.node.max_payload();
                match command::send_args(&text, &count, max_payload) {
                    Ok((text, count)) => {
                        self.send(text, count, SendOptions::default());
                    }
                    Err(e) => self.refuse(e),
                }
            }
            Command::SendWrongCount => {
                text::line(&mut self.console, text::SEND_WRONG_COUNT);
                text::line(&mut self.console, text::SEND_USAGE);
                self.console.flush();
            }
            Command::Bench { payload, count } => self.bench(payload.as_deref(), count.as_deref()),
            Command::BenchWrongCount => {
                text::line(&mut self.console, text::BENCH_WRONG_COUNT);
                text::line(&mut self.console, text::BENCH_USAGE);
                self.console.flush();
            }
            Command::Status => {
                let text = self.status_text();
                self.console.put(text.as_bytes());
                self.console.flush();
            }
            Command::Help => {
                self.console.put(text::HELP.as_bytes());
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

    /// Reads what stdin has into `pending`; false at the end of input. Straight from the
    /// file descriptor (no buffering in between: the caller polls it).
    fn read_stdin(&mut self, pending: &mut Vec<u8>, chunk: &mut [u8]) -> bool {
        use std::os::fd::AsFd;
        match rustix::io::read(std::io::stdin().as_fd(), &mut *chunk) {
            Ok(0) => false,
            Ok(n) => {
                pending.extend_from_slice(&chunk[..n]);
                if pending.len() > MAX_LINE && !pending.contains(&b'\n') {
                    self.console.line(
                        Stream::Stderr,
                        &format!("line longer than {MAX_LINE} bytes: ignored"),
                    );
                    pending.clear();
                }
                true
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => true,
            Err(e) => {
                diag!("host: cannot read stdin: {e}");
                false
            }
        }
    }

    /// Runs the complete lines in `pending`.
    fn execute_lines(&mut self, pending: &mut Vec<u8>, prompt: bool) {
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
    }

    /// The long-running host: services the link and runs commands from stdin until EOF.
    pub fn run_shell(&mut self) -> Result<()> {
        let stdin = std::io::stdin();
        let fd = stdin.as_fd();
        let prompt = stdin.is_terminal();
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 4096];
        let mut errors = ErrorOnce::new();
        if prompt {
            self.console.put(b"uart:~$ ").flush();
        }
        loop {
            app::drain(&mut self.port, &mut self.console, &mut errors);
            self.port.upkeep();
            let bell = self.port.app.node.doorbell();
            if bell.is_server_closed() {
                return Err(node::server_gone(bell));
            }
            self.execute_lines(&mut pending, prompt);
            let wake = self.wait(IDLE_POLL, Some(fd));
            if wake.extra && !self.read_stdin(&mut pending, &mut chunk) {
                self.execute_lines(&mut pending, prompt);
                if !pending.is_empty() {
                    let line = std::mem::take(&mut pending);
                    self.execute(&line);
                }
                return Ok(());
            }
        }
    }

    /// On a clean exit: tells the remote the host is gone (if the region is still ours).
    pub fn shutdown(&mut self) {
        let session = self.port.app.node.session();
        node::release_as_host(self.port.role.region, self.port.role.own_id, session);
    }
}
