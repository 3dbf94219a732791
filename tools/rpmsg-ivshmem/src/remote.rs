//! The remote role: the shared application ([`rpmsg_app::remote`]: endpoints "k" and
//! "bench", echo, banner) over an ivshmem connection, plus the bench tool's sink. Survives host restarts: a new host session
//! is attached to as soon as it is published.

use std::time::{Duration, Instant};

use ivshmem::PeerEvent;
use rpmsg_app::remote::{self as app, Received, RemoteApp};
use rpmsg_app::{text, ErrorOnce, Port, Sender};
use rpmsg_engine::{Config, Error as EngineError, LinkState, Remote, RxBuffer, SharedRegion};

use crate::baseline::{self, BareRing};
use crate::console::Console;
use crate::diag;
use crate::error::{Error, Result};
use crate::node;
use crate::platform::Ivshmem;
use crate::port::{NativePort, PortRole};
use crate::SINK_ENDPOINT;

/// Longest sleep between two looks at the link when nothing rings (the host's start is
/// normally announced by a doorbell; this bounds the wait when it is not, e.g. a C host).
pub const IDLE_POLL: Duration = Duration::from_millis(20);

/// How long the host's published layout may stay different from ours before the remote
/// gives up: a host restarting its session, or one that restores a block an intruder
/// wrote into, shows a foreign layout only for a moment; a host of another layout, for
/// good.
pub const LAYOUT_GRACE: Duration = Duration::from_secs(1);

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

/// The remote node and its platform: what [`rpmsg_app`] drives through [`Port`].
type RemotePort<'a> = NativePort<RemoteApp<'a, Ivshmem>, ()>;

impl<'a> PortRole<RemoteApp<'a, Ivshmem>> for () {
    const IDLE_POLL: Duration = IDLE_POLL;
}

/// A remote node over an ivshmem connection.
#[derive(Debug)]
pub struct RemoteNode<'a> {
    port: RemotePort<'a>,
    region: SharedRegion<'a>,
    config: Config,
    sink: Option<u32>,
    sink_messages: u64,
    sink_bytes: u64,
    options: RemoteOptions,
    board: String,
    console: Console,
    /// Session found stale (its host is not connected), reported once.
    stale_reported: Option<u32>,
    errors: ErrorOnce,
}

impl<'a> RemoteNode<'a> {
    /// Creates the remote and its endpoints; attaches when the host is ready.
    pub fn new(
        region: SharedRegion<'a>,
        config: Config,
        mut ivshmem: Ivshmem,
        board: String,
        options: RemoteOptions,
    ) -> Result<Self> {
        node::check_no_other_remote(region, &mut ivshmem)?;
        let own_id = ivshmem.id();
        let engine = Remote::new_remote(region, config, Some(own_id), ivshmem)
            .map_err(|e| Error::runtime(format!("cannot set up the remote: {e}")))?;
        // "bench" (the silent echo `rpmsg_ivshmem bench` measures through) comes with the
        // sink: both are for benchmarks, and a C OpenAMP host expects "k" alone.
        let mut app = RemoteApp::new(engine, options.sink)
            .map_err(|e| Error::runtime(format!("cannot create the endpoints: {e}")))?;
        app.quiet = options.quiet;
        let sink = if options.sink {
            Some(
                app.node
                    .create_endpoint(SINK_ENDPOINT, None, None)
                    .map_err(|e| Error::runtime(format!("cannot create the sink: {e}")))?,
            )
        } else {
            None
        };
        diag!("remote: ivshmem id {own_id}, waiting for a host");
        Ok(Self {
            port: NativePort::new(app, ()),
            region,
            config,
            sink,
            sink_messages: 0,
            sink_bytes: 0,
            options,
            board,
            console: Console::new(),
            stale_reported: None,
            errors: ErrorOnce::new(),
        })
    }

    /// How long to spin before blocking on the doorbell (default [`crate::platform::DEFAULT_SPIN`];
    /// zero: block at once).
    pub fn set_spin(&mut self, spin: Duration) {
        self.port.spin = spin;
    }

    /// Blocks until the host rings or `timeout` passes, spinning first (see
    /// [`crate::platform::wait_for_peer`]).
    fn wait(&mut self, timeout: Duration) {
        self.port.wait_for(timeout, None);
    }

    /// Messages echoed so far.
    pub fn echoed(&self) -> u64 {
        self.port.app.echoed
    }

    /// Runs until the message limit (if any) is reached, or a fatal error.
    pub fn run(&mut self) -> Result<()> {
        let mut scratch = vec![0u8; self.port.app.node.max_payload()];
        // Since when the host's layout differs from ours (see [`LAYOUT_GRACE`]).
        let mut mismatch_since: Option<Instant> = None;
        loop {
            if self.options.count.is_some_and(|n| self.echoed() >= n) {
                if self.options.quiet {
                    let echoed = self.echoed();
                    text::remote_summary(&mut self.console, echoed);
                    self.console.flush();
                }
                return Ok(());
            }
            let bell = self.port.app.node.doorbell();
            if bell.is_server_closed() {
                return Err(node::server_gone(bell));
            }
            if self.port.app.node.link_state() != LinkState::Up {
                // Another remote may have attached to the session we are about to take
                // (e.g. both started before any host): leave it the link instead of
                // taking turns with it at every session.
                node::check_no_other_remote(self.region, self.port.app.node.doorbell())?;
            }
            self.learn_unpublished_peer();
            if self.take_sink_stream(&mut scratch) {
                continue;
            }
            let errors = &mut self.errors;
            let received = app::receive(&mut self.port, &mut self.console, &self.board, errors);
            if !matches!(received, Received::Failed(EngineError::LayoutMismatch)) {
                mismatch_since = None;
            }
            match received {
                Received::Handled => {}
                Received::Other(rx) => {
                    let n = rx.read(0, &mut scratch).unwrap_or(0);
                    let complete = n == rx.len();
                    let dst = rx.dst();
                    let _ = self.port.app.node.release_rx(rx);
                    if complete && Some(dst) == self.sink {
                        self.consume(&scratch[..n]);
                    }
                }
                Received::Failed(EngineError::LayoutMismatch)
                    if mismatch_since.get_or_insert_with(Instant::now).elapsed()
                        >= LAYOUT_GRACE =>
                {
                    return Err(node::layout_mismatch(self.region, &self.config))
                }
                Received::Failed(EngineError::LayoutMismatch) => {
                    // Look again shortly: the host may be restoring its block.
                    self.wait(IDLE_POLL);
                    continue;
                }
                Received::Idle | Received::Failed(_) => {
                    if self.port.app.node.link_state() == LinkState::Up {
                        // Two remotes that attached to the same session at once both
                        // think they are linked: the one whose id the control area no
                        // longer holds leaves (looked at when idle only).
                        node::check_no_other_remote(self.region, self.port.app.node.doorbell())?;
                    }
                    self.on_peer_events();
                    self.update_greeting();
                    self.wait(IDLE_POLL);
                }
            }
        }
    }

    /// A C OpenAMP host publishes no id: learn it from the server before the attach that
    /// announces "k" must ring it.
    fn learn_unpublished_peer(&mut self) {
        let node = &mut self.port.app.node;
        if node.peer_id().is_none() {
            let bell = node.doorbell();
            bell.absorb_server_messages();
            if let Some(id) = node::fallback_peer_id(&bell.peer_ids()) {
                node.set_fallback_peer_id(Some(id));
            }
        }
    }

    /// Sends `data` on the sink, waiting for a buffer; false (logged) if it failed.
    fn send_on_sink(&mut self, sink: u32, data: &[u8]) -> bool {
        let deadline = self.port.now() + self.port.ms(rpmsg_app::REPLY_TIMEOUT_MS);
        let send = |a: &mut RemoteApp<'a, Ivshmem>| a.node.try_send_parts(sink, &[data]);
        match rpmsg_app::send_blocking(&mut self.port, send, deadline) {
            Ok(()) => true,
            Err(e) => {
                self.errors.report(&mut self.console, "remote", "sink", e);
                false
            }
        }
    }

    /// Takes the messages waiting for the sink in one pass ([`Remote::recv_each`]),
    /// counting the stream's payloads; stops at a request (an empty message, a baseline's)
    /// and handles it. False when it took nothing: the next message is for another endpoint
    /// (or the name service), or there is none, or the node reported an error: the
    /// application's receive step deals with it.
    fn take_sink_stream(&mut self, scratch: &mut [u8]) -> bool {
        let Some(sink) = self.sink else { return false };
        let (mut messages, mut bytes, mut request) = (0, 0, None);
        let take = |rx: &RxBuffer<'_>| {
            let n = rx.read(0, scratch).unwrap_or(0);
            if n != rx.len() {
                return true;
            }
            if n == 0 || is_baseline_request(&scratch[..n]) {
                request = Some(n);
                return false;
            }
            messages += 1;
            bytes += n as u64;
            true
        };
        let taken = self.port.app.node.recv_each(sink, usize::MAX, take);
        self.sink_messages += messages;
        self.sink_bytes += bytes;
        if let Some(n) = request {
            self.consume(&scratch[..n]);
        }
        matches!(taken, Ok(n) if n > 0)
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
        self.send_on_sink(sink, &report);
    }

    /// Answers a baseline request on the sink (and flushes: the host waits for it).
    fn answer(&mut self, sink: u32, request: &[u8]) -> bool {
        if !self.send_on_sink(sink, request) {
            return false;
        }
        let _ = self.port.app.node.flush_doorbell();
        true
    }

    /// The bench's bare shared-memory stream (see [`RAW_STREAM_MAGIC`]).
    fn raw_stream(&mut self, sink: u32, request: &[u8], count: u64) {
        let layout = *self.port.app.node.layout();
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
        let Some(host) = self.port.app.node.peer_id() else {
            return;
        };
        // A doorbell still pending from the request would answer the first ping early.
        self.port.app.node.doorbell().clear_interrupt();
        if !self.answer(sink, request) {
            return;
        }
        let Some(raw) = self.port.app.node.doorbell().raw_doorbell(host) else {
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
        let node = &mut self.port.app.node;
        if !node.doorbell().has_events() {
            return;
        }
        for event in node.doorbell().take_events() {
            match event {
                PeerEvent::Disconnected { id } if node.peer_id() == Some(id) => {
                    diag!("remote: the host (ivshmem id {id}) left the server; waiting for a host");
                    self.port.app.greeted = None;
                }
                PeerEvent::ServerClosed => {
                    diag!("remote: the ivshmem-server closed the connection")
                }
                _ => {}
            }
        }
        // A C OpenAMP host publishes no id: ring the peer that is there now (a remote started
        // before the C host saw nobody). A host that left stays the fallback, so that its
        // stale session is reported as such instead of being trusted.
        let node = &mut self.port.app.node;
        if let Some(id) = node::fallback_peer_id(&node.doorbell().peer_ids()) {
            node.set_fallback_peer_id(Some(id));
        }
    }

    /// Prints the banner once per session, when the link is up with a host that is alive.
    fn update_greeting(&mut self) {
        let Some(session) = self.port.app.to_greet() else {
            return;
        };
        let node = &mut self.port.app.node;
        let host = node.peer_id();
        let alive = match host {
            Some(id) => node.doorbell().is_connected(id),
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
        app::greet(&mut self.port, &mut self.console, &self.board);
    }
}

/// Whether a sink payload asks for one of the bench's baselines.
fn is_baseline_request(payload: &[u8]) -> bool {
    payload.len() == SINK_REPORT_LEN
        && (payload[..8] == RAW_PING_MAGIC || payload[..8] == RAW_STREAM_MAGIC)
}
