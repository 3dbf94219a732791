//! The remote role: waits for a host, announces endpoint "k", and echoes every message on
//! it, printing each as the remote image does. Survives host restarts: a new host session
//! is attached to as soon as it is published.

use std::time::Duration;

use ivshmem::PeerEvent;
use rpmsg_engine::{Config, Error as EngineError, Event, LinkState, Remote, SharedRegion};

use crate::baseline::{self, BareRing};
use crate::console::{Console, Stream};
use crate::diag;
use crate::error::{Error, Result};
use crate::node::{self, ECHO_ENDPOINT};
use crate::platform::{self, Ivshmem};
use crate::validate;
use crate::SINK_ENDPOINT;

/// Longest sleep between two looks at the link when nothing rings (the host's start is
/// normally announced by a doorbell; this bounds the wait when it is not, e.g. a C host).
pub const IDLE_POLL: Duration = Duration::from_millis(20);

/// Options of the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoteOptions {
    /// No per-message output.
    pub quiet: bool,
    /// Exit after this many echoes.
    pub count: Option<u64>,
    /// Offer the sink endpoint.
    pub sink: bool,
}

/// What the sink endpoint answers to an empty message: messages and payload bytes it
/// consumed since the previous report, as two little-endian u64.
pub const SINK_REPORT_LEN: usize = 16;

/// A sink message of [`SINK_REPORT_LEN`] bytes that starts with these 8 bytes (followed by a
/// little-endian u64 `n`) asks for the bench's raw doorbell baseline: the remote answers
/// with the same 16 bytes, then echoes `n` bare doorbells ([`crate::platform::RawDoorbell`])
/// before it goes back to RPMsg (or earlier, after [`RAW_PING_IDLE`] without one).
pub const RAW_PING_MAGIC: [u8; 8] = *b"\0rawping";

/// Like [`RAW_PING_MAGIC`], for the bench's bare shared-memory stream
/// ([`crate::baseline::BareRing`]): the remote answers, then takes `n` full-size payloads
/// from the bare ring.
pub const RAW_STREAM_MAGIC: [u8; 8] = *b"\0rawstrm";

/// How long the remote waits for the next bare doorbell before it gives the baseline up.
pub const RAW_PING_IDLE: Duration = Duration::from_millis(500);

/// A remote node over an ivshmem connection.
#[derive(Debug)]
pub struct RemoteNode<'a> {
    engine: Remote<'a, Ivshmem>,
    region: SharedRegion<'a>,
    config: Config,
    ept: u32,
    sink: Option<u32>,
    sink_messages: u64,
    sink_bytes: u64,
    options: RemoteOptions,
    board: String,
    console: Console,
    /// Session for which the banner was printed.
    greeted: Option<u32>,
    /// Session found stale (its host is not connected), reported once.
    stale_reported: Option<u32>,
    logged: Vec<EngineError>,
    echoed: u64,
    spin: Duration,
}

impl<'a> RemoteNode<'a> {
    /// Creates the remote and its endpoint(s); attaches when the host is ready.
    pub fn new(
        region: SharedRegion<'a>,
        config: Config,
        mut ivshmem: Ivshmem,
        board: String,
        options: RemoteOptions,
    ) -> Result<Self> {
        node::check_no_other_remote(region, &mut ivshmem)?;
        let own_id = ivshmem.id();
        let mut engine = Remote::new_remote(region, config, Some(own_id), ivshmem)
            .map_err(|e| Error::runtime(format!("cannot set up the remote: {e}")))?;
        let ept = engine
            .create_endpoint(ECHO_ENDPOINT, None, None)
            .map_err(|e| Error::runtime(format!("cannot create endpoint \"k\": {e}")))?;
        let sink = if options.sink {
            Some(
                engine
                    .create_endpoint(SINK_ENDPOINT, None, None)
                    .map_err(|e| Error::runtime(format!("cannot create the sink: {e}")))?,
            )
        } else {
            None
        };
        diag!("remote: ivshmem id {own_id}, waiting for a host");
        Ok(Self {
            engine,
            region,
            config,
            ept,
            sink,
            sink_messages: 0,
            sink_bytes: 0,
            options,
            board,
            console: Console::new(),
            greeted: None,
            stale_reported: None,
            logged: Vec::new(),
            echoed: 0,
            spin: platform::DEFAULT_SPIN,
        })
    }

    /// How long to spin before blocking on the doorbell (default [`platform::DEFAULT_SPIN`];
    /// zero: block at once).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Blocks until the host rings or `timeout` passes, spinning first (see
    /// [`platform::wait_for_peer`]).
    fn wait(&mut self, timeout: Duration) {
        platform::wait_for_peer(&mut self.engine, self.spin, timeout, None);
    }

    /// Messages echoed so far.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }

    fn log_once(&mut self, e: EngineError) {
        if !self.logged.contains(&e) {
            self.logged.push(e);
            diag!("remote: {e} (counted; further occurrences are only counted)");
        }
    }

    /// Runs until the message limit (if any) is reached, or a fatal error.
    pub fn run(&mut self) -> Result<()> {
        let mut scratch = vec![0u8; self.engine.max_payload()];
        loop {
            if self.options.count.is_some_and(|n| self.echoed >= n) {
                if self.options.quiet {
                    self.console
                        .fmt(format_args!("Echoed {} messages\n", self.echoed));
                    self.console.flush();
                }
                return Ok(());
            }
            if self.engine.peer_id().is_none() {
                // A C OpenAMP host publishes no id: learn it from the server before the
                // attach that announces "k" must ring it.
                let bell = self.engine.doorbell();
                bell.absorb_server_messages();
                if let Some(id) = node::fallback_peer_id(&bell.peer_ids()) {
                    self.engine.set_fallback_peer_id(Some(id));
                }
            }
            let event = match self.engine.recv() {
                Ok(e) => e,
                Err(EngineError::LayoutMismatch) => {
                    return Err(node::layout_mismatch(self.region, &self.config))
                }
                Err(e) => {
                    self.log_once(e);
                    None
                }
            };
            match event {
                Some(Event::Message(rx)) => {
                    let (dst, len) = (rx.dst(), rx.len());
                    let n = rx.read(0, &mut scratch).unwrap_or(0);
                    if let Err(e) = self.engine.release_rx(rx) {
                        self.log_once(e);
                    }
                    if n != len {
                        continue;
                    }
                    if dst == self.ept {
                        self.echo(&scratch[..n]);
                    } else if Some(dst) == self.sink {
                        self.consume(&scratch[..n]);
                    }
                }
                Some(Event::NameServiceCreate { name, addr }) => {
                    diag!("remote: the host announced endpoint \"{name}\" (address {addr})");
                }
                Some(Event::NameServiceDestroy { .. }) => {}
                None => {
                    self.on_peer_events();
                    self.update_greeting();
                    self.wait(IDLE_POLL);
                }
            }
        }
    }

    /// Echoes `payload` back on "k" (waiting for a buffer if the host has none posted),
    /// then prints it.
    fn echo(&mut self, payload: &[u8]) {
        loop {
            match self.engine.try_send(self.ept, payload) {
                Ok(()) => {
                    self.echoed += 1;
                    break;
                }
                Err(EngineError::NoTxBuffer) if self.engine.link_state() == LinkState::Up => {
                    self.wait(IDLE_POLL);
                    if let Err(e) = self.engine.poll() {
                        self.log_once(e);
                    }
                }
                // The session ended meanwhile: the message belongs to it.
                Err(e) => {
                    self.log_once(e);
                    return;
                }
            }
        }
        if !self.options.quiet {
            self.update_greeting();
            self.console
                .put(b"Host side sent a string:\n[ ")
                .put(validate::c_string(payload))
                .put(b" ]\nNow echoing it back!\n\n");
            self.console.flush();
        }
    }

    /// Counts a message for the sink; an empty one asks for the report.
    fn consume(&mut self, payload: &[u8]) {
        let Some(sink) = self.sink else { return };
        if payload.len() == SINK_REPORT_LEN && payload[..8] == RAW_PING_MAGIC {
            let mut n = [0u8; 8];
            n.copy_from_slice(&payload[8..]);
            return self.raw_ping_pong(sink, payload, u64::from_le_bytes(n));
        }
        if payload.len() == SINK_REPORT_LEN && payload[..8] == RAW_STREAM_MAGIC {
            let mut n = [0u8; 8];
            n.copy_from_slice(&payload[8..]);
            return self.raw_stream(sink, payload, u64::from_le_bytes(n));
        }
        if !payload.is_empty() {
            self.sink_messages += 1;
            self.sink_bytes += payload.len() as u64;
            return;
        }
        let mut report = [0u8; SINK_REPORT_LEN];
        report[..8].copy_from_slice(&self.sink_messages.to_le_bytes());
        report[8..].copy_from_slice(&self.sink_bytes.to_le_bytes());
        self.sink_messages = 0;
        self.sink_bytes = 0;
        loop {
            match self.engine.try_send(sink, &report) {
                Err(EngineError::NoTxBuffer) if self.engine.link_state() == LinkState::Up => {
                    self.wait(IDLE_POLL);
                    let _ = self.engine.poll();
                }
                Err(e) => return self.log_once(e),
                Ok(()) => return,
            }
        }
    }

    /// Answers a baseline request on the sink (and flushes: the host waits for it).
    fn answer(&mut self, sink: u32, request: &[u8]) -> bool {
        loop {
            match self.engine.try_send(sink, request) {
                Ok(()) => break,
                Err(EngineError::NoTxBuffer) if self.engine.link_state() == LinkState::Up => {
                    self.wait(IDLE_POLL);
                    let _ = self.engine.poll();
                }
                Err(e) => {
                    self.log_once(e);
                    return false;
                }
            }
        }
        let _ = self.engine.flush_doorbell();
        true
    }

    /// The bench's bare shared-memory stream (see [`RAW_STREAM_MAGIC`]).
    fn raw_stream(&mut self, sink: u32, request: &[u8], count: u64) {
        let layout = *self.engine.layout();
        let window = baseline::unused_window(&layout, self.region.len());
        let slot = layout.config().buf_size as usize;
        let Some(ring) = BareRing::new(self.region, &window, layout.config().queue_size, slot)
        else {
            return;
        };
        if !self.answer(sink, request) {
            return;
        }
        let mut scratch = vec![0u8; slot];
        ring.receive(
            count,
            layout.payload_capacity(),
            &mut scratch,
            RAW_PING_IDLE,
        );
    }

    /// The bench's eventfd ping-pong baseline (see [`RAW_PING_MAGIC`]).
    fn raw_ping_pong(&mut self, sink: u32, request: &[u8], count: u64) {
        let Some(host) = self.engine.peer_id() else {
            return;
        };
        // A doorbell still pending from the request would answer the first ping early.
        self.engine.doorbell().clear_interrupt();
        if !self.answer(sink, request) {
            return;
        }
        let Some(raw) = self.engine.doorbell().raw_doorbell(host) else {
            return;
        };
        for _ in 0..count {
            if !raw.wait(RAW_PING_IDLE) {
                break;
            }
            raw.ring();
        }
    }

    fn on_peer_events(&mut self) {
        if !self.engine.doorbell().has_events() {
            return;
        }
        for event in self.engine.doorbell().take_events() {
            match event {
                PeerEvent::Disconnected { id } if self.engine.peer_id() == Some(id) => {
                    diag!("remote: the host (ivshmem id {id}) left the server; waiting for a host");
                    self.greeted = None;
                }
                PeerEvent::ServerClosed => diag!(
                    "remote: the ivshmem-server closed the connection; the link keeps working, \
                     but peers joining or leaving are no longer seen"
                ),
                _ => {}
            }
        }
        // A C OpenAMP host publishes no id: ring the peer that is there now (a remote started
        // before the C host saw nobody). A host that left stays the fallback, so that its
        // stale session is reported as such instead of being trusted.
        if let Some(id) = node::fallback_peer_id(&self.engine.doorbell().peer_ids()) {
            self.engine.set_fallback_peer_id(Some(id));
        }
    }

    /// Prints the banner once per session, when the link is up with a host that is alive.
    fn update_greeting(&mut self) {
        if self.engine.link_state() != LinkState::Up {
            return;
        }
        let session = self.engine.session();
        if self.greeted == Some(session) {
            return;
        }
        let host = self.engine.peer_id();
        let alive = match host {
            Some(id) => self.engine.doorbell().is_connected(id),
            None => true, // a C host publishes no id: trust it
        };
        if !alive {
            if self.stale_reported != Some(session) {
                self.stale_reported = Some(session);
                diag!(
                    "remote: the shared memory holds session {session} of host {}, which is not \
                     connected; waiting for a host",
                    host.map_or_else(|| "?".to_string(), |h| h.to_string())
                );
            }
            return;
        }
        self.greeted = Some(session);
        diag!(
            "remote: link up with the host (ivshmem id {}), session {session}",
            host.map_or_else(|| "unknown".to_string(), |h| h.to_string())
        );
        let text = format!(
            "Hello {} - Remote Side, the communication over RPMsg is ready to use!",
            self.board
        );
        self.console.line(Stream::Stdout, &text);
    }
}
