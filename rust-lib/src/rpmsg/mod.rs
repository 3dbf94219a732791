//! RPMsg over a pair of virtqueues: the node types [`Host`] (virtio driver) and [`Remote`]
//! (virtio device), their endpoints, name service, zero-copy buffers and link handling.
//!
//! One node type, [`Rpmsg`], generic over its [`Role`]:
//!
//! * this file: the node core (state, endpoints, name service, `poll`);
//! * [`host`]: [`HostRole`] (the driver's queues, `start`, the host's link protocol);
//! * [`remote`]: [`RemoteRole`] (the device's queues, attaching to the host's session);
//! * `buffers`: zero-copy [`TxBuffer`]/[`RxBuffer`], sending and receiving;
//! * `batching`: polling instead of doorbells, and one doorbell per batch.

mod batching;
mod buffers;
pub mod host;
mod liveness;
pub mod remote;
mod stream;

pub use batching::{Deferral, Wakeups};
pub use buffers::{Event, RxBuffer, TxBuffer};
pub use host::HostRole;
pub use liveness::{BEAT_PERIOD_US, SILENCE_US};
pub use remote::RemoteRole;

use crate::endpoint::{Endpoint, EndpointTable, NameService};
use crate::error::{ConfigRule, Error, ErrorCounters, PeerFault, Result};
use crate::layout::Layout;
use crate::platform::Doorbell;
use crate::shm::{BufferRef, ControlView, SharedRegion};
use crate::virtqueue::Notify;
use crate::wire::RPMSG_NS_ADDR;

mod sealed {
    pub trait Sealed {}
}

/// A node's role: which queue sends and which receives, how buffers are obtained and
/// returned, and its half of the link protocol (see the crate docs). Implemented by
/// [`HostRole`] and [`RemoteRole`] only; the generic code of [`Rpmsg`] calls it.
pub trait Role<'a>: sealed::Sealed + Sized {
    /// Takes a free transmit buffer (id and location), if any.
    #[doc(hidden)]
    fn acquire_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>>;
    /// Hands a filled transmit buffer (`len` bytes) to the peer; true if it wants a doorbell.
    #[doc(hidden)]
    fn submit_tx(&mut self, id: u16, buf: BufferRef, len: u32) -> Result<bool>;
    /// Takes back a transmit buffer that will not be sent.
    #[doc(hidden)]
    fn cancel_tx(&mut self, id: u16, buf: BufferRef) -> Result<()>;
    /// The next received buffer: id, location and bytes written by the sender.
    #[doc(hidden)]
    fn next_rx(&mut self) -> Result<Option<(u16, BufferRef, u32)>>;
    /// Returns a received buffer to the peer; true if it wants a doorbell.
    #[doc(hidden)]
    fn release_rx(&mut self, id: u16, buf: BufferRef) -> Result<bool>;
    /// Puts back buffer `id`, just taken with [`Role::next_rx`] and not returned: the next
    /// `next_rx` reads (and validates) its ring entry again.
    #[doc(hidden)]
    fn unget_rx(&mut self, id: u16);
    /// [`Role::next_rx`] for a buffer that is returned with [`Role::release_passing`] (or
    /// put back with [`Role::unget_passing`]) within the same call, before anything else
    /// touches the receive queue: a role may skip recording it as held.
    #[doc(hidden)]
    #[inline]
    fn next_rx_passing(&mut self) -> Result<Option<(u16, BufferRef, u32)>> {
        self.next_rx()
    }
    /// Returns a buffer taken with [`Role::next_rx_passing`]; true if the peer wants a
    /// doorbell.
    #[doc(hidden)]
    #[inline]
    fn release_passing(&mut self, id: u16, buf: BufferRef) -> Result<bool> {
        self.release_rx(id, buf)
    }
    /// Puts back a buffer taken with [`Role::next_rx_passing`].
    #[doc(hidden)]
    fn unget_passing(&mut self, id: u16) {
        self.unget_rx(id)
    }
    /// Polling (`true`): the peer need not ring us, neither for messages nor for buffers we
    /// wait for; we look ourselves. Not polling (`false`, the default): it rings us for every
    /// message, and for transmit buffers while we have none. Writes a ring flag only when it
    /// changes. `write` false only records the mode (the rings are not ours right now).
    #[doc(hidden)]
    fn set_polling(&mut self, polling: bool, write: bool) -> Result<()> {
        let mut wake = *self.wakeups();
        let result = wake.set_polling(polling, write, &|rx, on| self.suppress(rx, on));
        *self.wakeups() = wake;
        result
    }
    /// Asks the peer for doorbells for transmit buffers (`on`: we have none), or stops.
    #[doc(hidden)]
    fn want_tx(&mut self, on: bool) -> Result<()> {
        let mut wake = *self.wakeups();
        let result = wake.want_tx(on, &|rx, on| self.suppress(rx, on));
        *self.wakeups() = wake;
        result
    }
    /// A new session: no doorbells for transmit buffers until we run out (we take them
    /// when we send), nothing held back.
    #[doc(hidden)]
    fn start_batching(&mut self) -> Result<()> {
        let mut wake = *self.wakeups();
        wake.start_session(&|rx, on| self.suppress(rx, on))?;
        *self.wakeups() = wake;
        self.deferral().take(true);
        Ok(())
    }
    /// The doorbells we ask the peer for.
    #[doc(hidden)]
    fn wakeups(&mut self) -> &mut Wakeups;
    /// The queue type of this role.
    #[doc(hidden)]
    type Queue: Notify;
    /// Our receive and transmit queues, and the doorbells we ask the peer for.
    #[doc(hidden)]
    fn queues(&self) -> (&Self::Queue, &Self::Queue, &Wakeups);
    /// Writes our receive (`rx`) or transmit ring's suppression flag (`on`: no doorbells).
    #[doc(hidden)]
    fn suppress(&self, rx: bool, on: bool) -> Result<()> {
        let (rx_queue, tx_queue, _) = self.queues();
        match rx {
            true => rx_queue.suppress(on),
            false => tx_queue.suppress(on),
        }
    }
    /// Whether the peer published something we wait for (a message; a transmit buffer while
    /// we have none): a cheap look without validation.
    #[doc(hidden)]
    fn peer_moved(&self) -> bool {
        let (rx_queue, tx_queue, wake) = self.queues();
        rx_queue.peer_moved() || (wake.tx_starved && tx_queue.peer_moved())
    }
    /// Deferral of doorbells (see [`Rpmsg::defer_doorbells`]).
    #[doc(hidden)]
    fn deferral(&mut self) -> &mut Deferral;
    /// Whether the peer wants a doorbell for what we sent (`tx`) and returned (`rx`) since
    /// deferring began (full barrier first).
    #[doc(hidden)]
    fn wants_doorbell(&self, tx: bool, rx: bool) -> Result<bool> {
        let (rx_queue, tx_queue, _) = self.queues();
        Ok((tx && tx_queue.should_notify()?) || (rx && rx_queue.should_notify()?))
    }
    /// Whether a buffer the peer offered or returned was rejected since the link was last
    /// refreshed: it is lost to this session.
    #[doc(hidden)]
    fn lost(&self) -> bool;
    /// Whether this is the host's role (which heartbeat word is ours).
    #[doc(hidden)]
    const HOST: bool;
    /// The peer's heartbeat stopped: the host starts a fresh session, a remote asks for one.
    #[doc(hidden)]
    fn peer_gone<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) -> Result<()>;
    /// Advances the link state machine.
    #[doc(hidden)]
    fn refresh<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) -> Result<()>;
    /// Whether received buffers belong to the current session and may be delivered.
    #[doc(hidden)]
    fn may_receive<D: Doorbell>(node: &Rpmsg<'a, Self, D>) -> bool;
    /// Called for each valid message received while [`Role::may_receive`].
    #[doc(hidden)]
    fn on_valid_message<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>);
    /// Just before touching the rings outside [`Rpmsg::recv`]/[`Rpmsg::poll`]: whether
    /// they still belong to the session this node is attached to. When they do not, every
    /// ring operation fails until the next `poll`/`recv` brings the link up to date.
    #[doc(hidden)]
    fn session_current<D: Doorbell>(node: &Rpmsg<'a, Self, D>) -> bool;
}

/// The role trait under its former name (tools/rpmsg-ivshmem's platform module still
/// names it so).
#[doc(hidden)]
pub use Role as Transport;

/// Formerly the link half of the role, now part of [`Role`]: every node has it.
#[doc(hidden)]
pub trait LinkProtocol {}

impl<'a, R: Role<'a>, D: Doorbell> LinkProtocol for Rpmsg<'a, R, D> {}

/// Longest single wait of the blocking helpers: they re-check the rings at least this often
/// (in microseconds), in case the doorbell woke another thread.
pub const WAIT_SLICE_US: u64 = 1_000;

/// Where a node's link to its peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Host: not started. Remote: waiting for the host's `DRIVER_OK`.
    Down,
    /// Host: rings ready, waiting for a remote to attach. Remote: asked the host for a
    /// fresh session (it found the rings in use by a previous remote).
    Waiting,
    /// Both sides are attached to the same session.
    Up,
    /// The peer corrupted a ring index; nothing more is exchanged until a reset.
    Broken,
}

/// Counters of traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent (name-service messages included).
    pub tx_messages: u64,
    /// Messages received (name-service messages included).
    pub rx_messages: u64,
    /// Doorbells rung.
    pub notifications: u64,
    /// Received buffers dropped because they were invalid or had no endpoint.
    pub dropped: u64,
    /// Link resets (host restarts of the session, remote re-attachments).
    pub resets: u64,
    /// Peers taken as gone because their heartbeat stopped ([`Rpmsg::keep_alive`]).
    pub silent_peers: u64,
}

/// An RPMsg node in either role. Use the aliases [`Host`] and [`Remote`].
#[derive(Debug)]
pub struct Rpmsg<'a, R: Role<'a>, D: Doorbell> {
    region: SharedRegion<'a>,
    control: ControlView<'a>,
    layout: Layout,
    role: R,
    doorbell: D,
    endpoints: EndpointTable,
    counters: ErrorCounters,
    stats: Stats,
    own_id: Option<u16>,
    /// The peer's id as published in the control area (None: not published, e.g. a C
    /// OpenAMP peer); [`Rpmsg::peer_id`] falls back to [`crate::Config::fallback_peer_id`].
    published_peer: Option<u16>,
    link: LinkState,
    session: u32,
    epoch: u32,
    liveness: liveness::Liveness,
}

/// The virtio driver side: owns the buffers, posts receive buffers, sends on vring 1.
pub type Host<'a, D> = Rpmsg<'a, HostRole<'a>, D>;
/// The virtio device side: waits for the host, sends on vring 0, receives on vring 1.
pub type Remote<'a, D> = Rpmsg<'a, RemoteRole<'a>, D>;

/// Checks that `layout` was made for a region of this length.
pub(super) fn check_region(region: &SharedRegion<'_>, layout: &Layout) -> Result<()> {
    if region.len() != layout.config().shm_size {
        return Err(Error::InvalidConfig(ConfigRule::RegionLength));
    }
    Ok(())
}

impl<'a, R: Role<'a>, D: Doorbell> Rpmsg<'a, R, D> {
    fn assemble(
        region: SharedRegion<'a>,
        layout: Layout,
        role: R,
        doorbell: D,
        own_id: Option<u16>,
    ) -> Result<Self> {
        Ok(Self {
            region,
            control: ControlView::new(region)?,
            layout,
            role,
            doorbell,
            endpoints: EndpointTable::new(),
            counters: ErrorCounters::default(),
            stats: Stats::default(),
            own_id,
            published_peer: None,
            link: LinkState::Down,
            session: 0,
            epoch: 0,
            liveness: liveness::Liveness::default(),
        })
    }

    /// The layout in use.
    pub const fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where the link stands.
    pub const fn link_state(&self) -> LinkState {
        self.link
    }

    /// The current session number (0 before the first session).
    pub const fn session(&self) -> u32 {
        self.session
    }

    /// Our ivshmem id as configured.
    pub const fn own_id(&self) -> Option<u16> {
        self.own_id
    }

    /// The peer's ivshmem id: as published in the control area, else
    /// [`crate::Config::fallback_peer_id`] (a C OpenAMP peer publishes none). The doorbell goes here.
    pub fn peer_id(&self) -> Option<u16> {
        self.published_peer
            .or(self.layout.config().fallback_peer_id)
    }

    /// The peer's id as published in the control area; `None` while it published none
    /// (a C OpenAMP peer, or ours before it attached), when [`Rpmsg::peer_id`] is the fallback.
    pub const fn published_peer_id(&self) -> Option<u16> {
        self.published_peer
    }

    /// Replaces [`crate::Config::fallback_peer_id`], the peer rung while the other side has
    /// published no id (a C OpenAMP peer). It may change while the node runs — e.g. from the
    /// ivshmem-server's peer list, when a C peer connects after this node started or comes
    /// back with a new id — and takes effect at the next doorbell. A published id still
    /// takes precedence.
    pub fn set_fallback_peer_id(&mut self, id: Option<u16>) {
        self.layout.set_fallback_peer_id(id);
    }

    /// Errors recorded so far, by kind.
    pub const fn counters(&self) -> &ErrorCounters {
        &self.counters
    }

    /// Traffic counters.
    pub const fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The doorbell (e.g. to inspect a test fake).
    pub fn doorbell(&mut self) -> &mut D {
        &mut self.doorbell
    }

    /// Payload bytes per message with the configured buffer size.
    pub const fn max_payload(&self) -> usize {
        self.layout.payload_capacity()
    }

    fn refresh(&mut self) -> Result<()> {
        R::refresh(self)
    }

    fn may_receive(&self) -> bool {
        R::may_receive(self)
    }

    fn on_valid_message(&mut self) {
        R::on_valid_message(self)
    }

    fn session_current(&self) -> bool {
        R::session_current(self)
    }

    fn ring_id(&mut self, id: u16) {
        self.stats.notifications += 1;
        self.doorbell.ring(id);
    }

    fn ring_peer(&mut self) {
        if let Some(id) = self.peer_id() {
            self.ring_id(id);
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        self.counters.record(e);
        if e.peer_fault().is_some_and(PeerFault::breaks_link) {
            self.link = LinkState::Broken;
        }
        e
    }

    /// Creates an endpoint. `addr: None` allocates one from 1024 up; `dest: None` leaves it
    /// unbound (it binds to the sender of the first message it receives). A named, unbound
    /// endpoint is announced through the name service as soon as the link is up.
    pub fn create_endpoint(
        &mut self,
        name: &str,
        addr: Option<u32>,
        dest: Option<u32>,
    ) -> Result<u32> {
        let local = self.endpoints.create(name, addr, dest)?;
        if self.link == LinkState::Up {
            self.announce_pending();
        }
        Ok(local)
    }

    /// Binds (or creates) the endpoint named `name` to the peer's address `dest`, as a host
    /// does when the remote announces an endpoint. Returns the local address.
    pub fn bind(&mut self, name: &str, dest: u32) -> Result<u32> {
        self.endpoints.bind(name, dest)
    }

    /// The endpoint with local address `addr`.
    pub fn endpoint(&self, addr: u32) -> Option<&Endpoint> {
        self.endpoints.get(addr)
    }

    /// All endpoints.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter()
    }

    fn announce_pending(&mut self) {
        if !self.layout.config().name_service || self.endpoints.all_announced() {
            return;
        }
        while let Some(ep) = self.endpoints.next_unannounced() {
            let local = ep.local();
            let msg = NameService::message(ep, false).to_bytes();
            match self.try_send_raw(local, RPMSG_NS_ADDR, &msg) {
                Ok(()) => self.endpoints.mark_announced(local),
                // No buffer yet: announced on a later poll.
                Err(_) => return,
            }
        }
        self.endpoints.note_all_announced();
    }

    /// Advances the link (attach, restarts, pending announcements) without receiving.
    /// Returns whether the link is up.
    pub fn poll(&mut self) -> Result<bool> {
        if let Err(e) = self.refresh() {
            return Err(self.fail(e));
        }
        if self.link == LinkState::Up && !self.endpoints.all_announced() {
            self.announce_pending();
        }
        Ok(self.link == LinkState::Up)
    }
}
