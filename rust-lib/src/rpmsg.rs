//! RPMsg over a pair of virtqueues: the node types [`Host`] (virtio driver) and [`Remote`]
//! (virtio device), their endpoints, name service, zero-copy buffers and link handling.

use crate::endpoint::{Endpoint, EndpointTable, NameService};
use crate::error::{Error, ErrorCounters, Result};
use crate::layout::{Config, Layout, QueueId, STATUS_DRIVER_OK, STATUS_READY};
use crate::platform::{Clock, Doorbell};
use crate::shm::{
    read_message_header, read_ns_record, BufferRef, ControlView, DescSet, MessageHeader,
    PoolWindow, RingView, SharedRegion,
};
use crate::virtqueue::{DeviceQueue, DriverQueue};
use crate::wire::{NsMessage, RpmsgHeader, RPMSG_ADDR_ANY, RPMSG_NS_ADDR};

mod sealed {
    pub trait Sealed {}
}

/// The role-specific half of a node: which queue sends and which receives, and how buffers
/// are obtained and returned. Implemented by [`HostTransport`] and [`RemoteTransport`] only.
pub trait Transport<'a>: sealed::Sealed {
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
    /// Polling (`true`): the peer need not ring us, neither for messages nor for buffers we
    /// wait for; we look ourselves. Not polling (`false`, the default): it rings us for every
    /// message, and for transmit buffers while we have none. Writes a ring flag only when it
    /// changes. `write` false only records the mode (the rings are not ours right now).
    #[doc(hidden)]
    fn set_polling(&mut self, polling: bool, write: bool) -> Result<()>;
    /// Whether the peer published something we wait for (a message; a transmit buffer while
    /// we have none): a cheap look without validation.
    #[doc(hidden)]
    fn peer_moved(&self) -> bool;
    /// Deferral of doorbells (see [`Rpmsg::defer_doorbells`]).
    #[doc(hidden)]
    fn deferral(&mut self) -> &mut Deferral;
    /// Whether the peer wants a doorbell for what we sent (`tx`) and returned (`rx`) since
    /// deferring began (full barrier first).
    #[doc(hidden)]
    fn wants_doorbell(&self, tx: bool, rx: bool) -> Result<bool>;
}

/// Doorbells held back by [`Rpmsg::defer_doorbells`]: whether a send or a release happened
/// since, without the check whether the peer wants to hear about it.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Deferral {
    on: bool,
    /// The first operation of the batch was checked (and rang a sleeping peer at once).
    started: bool,
    tx: bool,
    rx: bool,
    held: u16,
}

impl Deferral {
    /// Records a send (`tx`) or release; false when not deferring, for the first operation
    /// of a batch (a peer that sleeps is woken at once and works while we go on), and when
    /// `limit` operations are held back already (then the caller checks now, for all).
    fn hold(&mut self, tx: bool, limit: u16) -> bool {
        if !self.on {
            return false;
        }
        if !self.started {
            self.started = true;
            return false;
        }
        if tx {
            self.tx = true;
        } else {
            self.rx = true;
        }
        self.held += 1;
        self.held < limit
    }

    /// What is held back (tx, rx), forgetting it; the batch goes on if `keep_on`.
    fn take(&mut self, keep_on: bool) -> (bool, bool) {
        let held = (self.tx, self.rx);
        *self = Self {
            on: self.on && keep_on,
            started: self.started && keep_on,
            ..Self::default()
        };
        held
    }
}

/// A submit or release: the doorbell check now, or held back while deferring.
fn check_or_hold<'a, T: Transport<'a> + ?Sized>(t: &mut T, tx: bool, limit: u16) -> Result<bool> {
    if t.deferral().hold(tx, limit) {
        return Ok(false);
    }
    let (held_tx, held_rx) = t.deferral().take(true);
    t.wants_doorbell(held_tx || tx, held_rx || !tx)
}

/// The host's queues: it receives on vring 0 and sends on vring 1, and owns every buffer.
#[derive(Debug)]
pub struct HostTransport<'a> {
    rx: DriverQueue<'a>,
    tx: DriverQueue<'a>,
    tx_free: DescSet,
    tx_interrupts: bool,
    /// Whether the remote rings us for messages (vring 0 avail flags clear).
    rx_interrupts: bool,
    /// The last `acquire_tx` found no buffer.
    tx_starved: bool,
    /// See [`Transport::set_polling`].
    polling: bool,
    deferral: Deferral,
    layout: Layout,
}

impl HostTransport<'_> {
    fn buffer(&self, index: usize) -> BufferRef {
        BufferRef {
            offset: self.layout.buffer_offset(index),
            len: self.layout.config().buf_size,
        }
    }
    fn addr(&self, buf: BufferRef) -> u64 {
        self.layout.config().addr_base + buf.offset as u64
    }
}

impl sealed::Sealed for HostTransport<'_> {}

impl HostTransport<'_> {
    /// Moves every transmit buffer the remote consumed back to the free set (bounded by
    /// the queue size).
    fn reclaim(&mut self, counters: &mut ErrorCounters) -> Result<()> {
        for _ in 0..=self.tx.size() {
            match self.tx.pop_used(self.layout.config().buf_size) {
                Ok(Some(elem)) => {
                    self.tx_free.insert(elem.id);
                }
                Ok(None) => break,
                Err(Error::UsedIndexOutOfRange) => return Err(Error::UsedIndexOutOfRange),
                Err(e) => counters.record(e),
            }
        }
        Ok(())
    }

    /// Starts a session: interrupts for returned transmit buffers are off, because the host
    /// reclaims them lazily when it sends; they are turned on only while it has none.
    fn start_session(&mut self) -> Result<()> {
        self.tx.suppress_interrupts(true)?;
        self.tx_interrupts = false;
        self.tx_starved = false;
        self.rx.suppress_interrupts(self.polling)?;
        self.rx_interrupts = !self.polling;
        self.deferral.take(true);
        Ok(())
    }
}

impl<'a> Transport<'a> for HostTransport<'a> {
    fn acquire_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>> {
        self.reclaim(counters)?;
        if self.tx_free.is_empty() && !self.polling {
            // Out of buffers: ask to be interrupted when one comes back, then look again in
            // case it came back before the flag was visible. (A polling caller asks only
            // when it stops polling.)
            if !self.tx_interrupts {
                self.tx.suppress_interrupts(false)?;
                self.tx_interrupts = true;
            }
            self.reclaim(counters)?;
        }
        let Some(id) = self.tx_free.first() else {
            self.tx_starved = true;
            return Ok(None);
        };
        self.tx_starved = false;
        if self.tx_interrupts {
            self.tx.suppress_interrupts(true)?;
            self.tx_interrupts = false;
        }
        self.tx_free.remove(id);
        let n = self.layout.config().queue_size as usize;
        Ok(Some((id, self.buffer(n + id as usize))))
    }

    fn submit_tx(&mut self, id: u16, buf: BufferRef, len: u32) -> Result<bool> {
        self.tx.add(id, self.addr(buf), len, false)?;
        check_or_hold(self, true, self.tx.size())
    }

    fn cancel_tx(&mut self, id: u16, _buf: BufferRef) -> Result<()> {
        self.tx_free.insert(id);
        Ok(())
    }

    fn next_rx(&mut self) -> Result<Option<(u16, BufferRef, u32)>> {
        let buf_size = self.layout.config().buf_size;
        Ok(self
            .rx
            .pop_used(buf_size)?
            .map(|e| (e.id, self.buffer(e.id as usize), e.len)))
    }

    fn release_rx(&mut self, id: u16, buf: BufferRef) -> Result<bool> {
        self.rx.add(id, self.addr(buf), buf.len, true)?;
        check_or_hold(self, false, self.rx.size())
    }

    fn deferral(&mut self) -> &mut Deferral {
        &mut self.deferral
    }

    fn wants_doorbell(&self, tx: bool, rx: bool) -> Result<bool> {
        Ok((tx && self.tx.should_notify()?) || (rx && self.rx.should_notify()?))
    }

    fn set_polling(&mut self, polling: bool, write: bool) -> Result<()> {
        self.polling = polling;
        if !write {
            return Ok(());
        }
        if self.rx_interrupts == polling {
            self.rx.suppress_interrupts(polling)?;
            self.rx_interrupts = !polling;
        }
        let tx = !polling && self.tx_starved;
        if self.tx_interrupts != tx {
            self.tx.suppress_interrupts(!tx)?;
            self.tx_interrupts = tx;
        }
        Ok(())
    }

    fn peer_moved(&self) -> bool {
        self.rx.used_moved() || (self.tx_starved && self.tx.used_moved())
    }
}

/// Longest single wait of the blocking helpers: they re-check the rings at least this often
/// (in microseconds), in case the doorbell woke another thread.
pub const WAIT_SLICE_US: u64 = 1_000;

/// Most transmit buffers a remote can have taken and not yet used.
const MAX_SPARE: usize = crate::layout::MAX_QUEUE_SIZE as usize;

/// The remote's queues: it receives on vring 1 and sends on vring 0, using buffers the host
/// offers.
#[derive(Debug)]
pub struct RemoteTransport<'a> {
    rx: DeviceQueue<'a>,
    tx: DeviceQueue<'a>,
    tx_notifications: bool,
    /// Whether the host rings us for messages (vring 1 used flags clear).
    rx_notifications: bool,
    /// The last `acquire_tx` found no buffer.
    tx_starved: bool,
    /// See [`Transport::set_polling`].
    polling: bool,
    deferral: Deferral,
    spare: heapless::Vec<(u16, u32, u32), MAX_SPARE>,
}

impl sealed::Sealed for RemoteTransport<'_> {}

impl RemoteTransport<'_> {
    /// Takes the next valid available buffer of vring 0, skipping (and counting) invalid
    /// entries; bounded by the queue size.
    fn pop_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>> {
        for _ in 0..=self.tx.size() {
            match self.tx.pop_avail() {
                Ok(found) => return Ok(found),
                Err(Error::AvailIndexOutOfRange) => return Err(Error::AvailIndexOutOfRange),
                Err(e) => counters.record(e),
            }
        }
        Ok(None)
    }

    /// Starts a session: the host need not notify us when it re-posts receive buffers on
    /// vring 0 (we take them when we send); notifications are turned on only while we have
    /// none.
    fn start_session(&mut self) -> Result<()> {
        self.tx.suppress_notifications(true)?;
        self.tx_notifications = false;
        self.tx_starved = false;
        // Written even when not polling: a flag we set in the previous session may have
        // landed after the host cleared the rings.
        self.rx.suppress_notifications(self.polling)?;
        self.rx_notifications = !self.polling;
        self.deferral.take(true);
        Ok(())
    }
}

impl<'a> Transport<'a> for RemoteTransport<'a> {
    fn acquire_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>> {
        if let Some((id, offset, len)) = self.spare.pop() {
            let buf = BufferRef {
                offset: offset as usize,
                len,
            };
            self.tx_starved = false;
            return Ok(Some((id, buf)));
        }
        let mut found = self.pop_tx(counters)?;
        if found.is_none() && !self.polling {
            if !self.tx_notifications {
                self.tx.suppress_notifications(false)?;
                self.tx_notifications = true;
            }
            found = self.pop_tx(counters)?;
        }
        self.tx_starved = found.is_none();
        if found.is_some() && self.tx_notifications {
            self.tx.suppress_notifications(true)?;
            self.tx_notifications = false;
        }
        Ok(found)
    }

    fn submit_tx(&mut self, id: u16, buf: BufferRef, _len: u32) -> Result<bool> {
        // The used length is the descriptor's whole length, not the message's (the RPMsg
        // header carries that), as OpenAMP's remote reports it. OpenAMP hosts up to
        // v2023.10 (Zephyr 3.6's) post a received buffer again with the used length as its
        // descriptor length: with exact lengths every receive buffer would shrink to the
        // shortest message so far, and a longer one would no longer fit.
        self.tx.push_used(id, buf.len)?;
        check_or_hold(self, true, self.tx.size())
    }

    fn cancel_tx(&mut self, id: u16, buf: BufferRef) -> Result<()> {
        // Offsets come from the validated pool window, which lies below 1 GiB.
        let offset = u32::try_from(buf.offset).map_err(|_| Error::OutOfBounds)?;
        self.spare
            .push((id, offset, buf.len))
            .map_err(|_| Error::StaleBuffer)
    }

    fn next_rx(&mut self) -> Result<Option<(u16, BufferRef, u32)>> {
        Ok(self.rx.pop_avail()?.map(|(id, buf)| (id, buf, buf.len)))
    }

    fn release_rx(&mut self, id: u16, buf: BufferRef) -> Result<bool> {
        self.rx.push_used(id, buf.len)?;
        check_or_hold(self, false, self.rx.size())
    }

    fn deferral(&mut self) -> &mut Deferral {
        &mut self.deferral
    }

    fn wants_doorbell(&self, tx: bool, rx: bool) -> Result<bool> {
        Ok((tx && self.tx.should_notify()?) || (rx && self.rx.should_notify()?))
    }

    fn set_polling(&mut self, polling: bool, write: bool) -> Result<()> {
        self.polling = polling;
        if !write {
            return Ok(());
        }
        if self.rx_notifications == polling {
            self.rx.suppress_notifications(polling)?;
            self.rx_notifications = !polling;
        }
        let tx = !polling && self.tx_starved;
        if self.tx_notifications != tx {
            self.tx.suppress_notifications(!tx)?;
            self.tx_notifications = tx;
        }
        Ok(())
    }

    fn peer_moved(&self) -> bool {
        self.rx.avail_moved() || (self.tx_starved && self.tx.avail_moved())
    }
}

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
}

/// A transmit buffer obtained with [`Rpmsg::get_tx_buffer`]: write the payload into it,
/// then give it back with [`Rpmsg::send_nocopy`] or [`Rpmsg::release_tx_buffer`].
#[must_use = "a transmit buffer must be sent or released, or it is lost until the next reset"]
#[derive(Debug)]
pub struct TxBuffer<'a> {
    region: SharedRegion<'a>,
    id: u16,
    buf: BufferRef,
    epoch: u32,
}

impl TxBuffer<'_> {
    /// Payload bytes this buffer can hold.
    pub fn capacity(&self) -> usize {
        self.buf.len as usize - RpmsgHeader::SIZE
    }

    /// Writes `data` into the payload at `offset`.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        let end = offset
            .checked_add(data.len())
            .ok_or(Error::PayloadTooLarge)?;
        if end > self.capacity() {
            return Err(Error::PayloadTooLarge);
        }
        self.region
            .write_bytes(self.buf.offset + RpmsgHeader::SIZE + offset, data)
    }
}

/// A received message held in its shared buffer (zero-copy receive). Read it with
/// [`RxBuffer::read`], then return it with [`Rpmsg::release_rx`].
#[must_use = "a received buffer must be released, or the peer runs out of buffers"]
#[derive(Debug)]
pub struct RxBuffer<'a> {
    region: SharedRegion<'a>,
    id: u16,
    buf: BufferRef,
    epoch: u32,
    header: MessageHeader,
}

impl RxBuffer<'_> {
    /// Sender's address.
    pub const fn src(&self) -> u32 {
        self.header.src
    }
    /// Our endpoint's address.
    pub const fn dst(&self) -> u32 {
        self.header.dst
    }
    /// Payload length.
    pub const fn len(&self) -> usize {
        self.header.len as usize
    }
    /// True for an empty payload.
    pub const fn is_empty(&self) -> bool {
        self.header.len == 0
    }
    /// Copies payload bytes from `offset` into `dst` straight from shared memory; returns
    /// how many were copied (fewer than `dst.len()` at the end of the payload).
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<usize> {
        let avail = self.len().saturating_sub(offset);
        let n = avail.min(dst.len());
        self.region.read_bytes(
            self.buf.offset + RpmsgHeader::SIZE + offset.min(self.len()),
            &mut dst[..n],
        )?;
        Ok(n)
    }
}

/// What [`Rpmsg::recv`] delivers.
#[derive(Debug)]
pub enum Event<'a> {
    /// A message for one of our endpoints (already bound to its sender if it was unbound).
    Message(RxBuffer<'a>),
    /// The peer announced an endpoint; bind to it with [`Rpmsg::bind`].
    NameServiceCreate {
        /// Its name.
        name: heapless::String<31>,
        /// Its address.
        addr: u32,
    },
    /// The peer destroyed an endpoint; our endpoints bound to it are now unbound.
    NameServiceDestroy {
        /// Its name.
        name: heapless::String<31>,
        /// Its address.
        addr: u32,
    },
}

/// What [`Rpmsg::process`] hands to its callback: like [`Event`], with the payload copied
/// into the caller's scratch buffer.
#[derive(Debug)]
pub enum Incoming<'s> {
    /// A message for endpoint `ept` from `src`.
    Message {
        /// Our endpoint's address.
        ept: u32,
        /// The sender's address.
        src: u32,
        /// The payload.
        payload: &'s [u8],
    },
    /// The peer announced an endpoint.
    NameServiceCreate {
        /// Its name.
        name: &'s str,
        /// Its address.
        addr: u32,
    },
    /// The peer destroyed an endpoint.
    NameServiceDestroy {
        /// Its name.
        name: &'s str,
        /// Its address.
        addr: u32,
    },
}

/// An RPMsg node in either role. Use the aliases [`Host`] and [`Remote`].
#[derive(Debug)]
pub struct Rpmsg<'a, T: Transport<'a>, D: Doorbell> {
    region: SharedRegion<'a>,
    control: ControlView<'a>,
    layout: Layout,
    transport: T,
    doorbell: D,
    endpoints: EndpointTable,
    counters: ErrorCounters,
    stats: Stats,
    own_id: Option<u16>,
    /// The peer's id as published in the control area (None: not published, e.g. a C
    /// OpenAMP peer); [`Rpmsg::peer_id`] falls back to [`Config::fallback_peer_id`].
    published_peer: Option<u16>,
    link: LinkState,
    session: u32,
    epoch: u32,
}

/// The virtio driver side: owns the buffers, posts receive buffers, sends on vring 1.
pub type Host<'a, D> = Rpmsg<'a, HostTransport<'a>, D>;
/// The virtio device side: waits for the host, sends on vring 0, receives on vring 1.
pub type Remote<'a, D> = Rpmsg<'a, RemoteTransport<'a>, D>;

fn check_region(region: &SharedRegion<'_>, layout: &Layout) -> Result<()> {
    if region.len() != layout.config().shm_size {
        return Err(Error::InvalidConfig(
            "config shm_size differs from the region's length",
        ));
    }
    Ok(())
}

impl<'a, D: Doorbell> Rpmsg<'a, HostTransport<'a>, D> {
    /// A host node over `region`. `own_id` is our ivshmem peer id (published for the
    /// remote). Nothing is written until [`Host::start`].
    pub fn new_host(
        region: SharedRegion<'a>,
        config: Config,
        own_id: Option<u16>,
        doorbell: D,
    ) -> Result<Self> {
        let layout = Layout::new(&config)?;
        check_region(&region, &layout)?;
        let transport = HostTransport {
            rx: DriverQueue::new(RingView::new(region, layout.ring(QueueId::RemoteToHost))?),
            tx: DriverQueue::new(RingView::new(region, layout.ring(QueueId::HostToRemote))?),
            tx_free: DescSet::new(),
            tx_interrupts: true,
            rx_interrupts: true,
            tx_starved: false,
            polling: false,
            deferral: Deferral::default(),
            layout,
        };
        Self::assemble(region, layout, transport, doorbell, own_id)
    }

    /// (Re)initialises the shared region for a new session: status to 0, control area and
    /// rings cleared, every receive buffer posted, our control block published, then
    /// `DRIVER_OK`. Buffers handed out before become stale; endpoint bindings learned from
    /// the previous remote are forgotten.
    pub fn start(&mut self) -> Result<()> {
        if self.session != 0 {
            // Not our first session: this is a reset of the link, whoever asked for it.
            self.stats.resets += 1;
        }
        self.control.set_status(0)?;
        let previous = self.control.host_session()?;
        self.session = match previous.wrapping_add(1) {
            0 => 1,
            s => s,
        };
        self.control.begin_session(self.session)?;
        let t = &mut self.transport;
        t.rx.reset()?;
        t.tx.reset()?;
        t.tx_free = DescSet::new();
        let n = self.layout.config().queue_size;
        for id in 0..n {
            t.tx_free.insert(id);
            let buf = t.buffer(id as usize);
            self.region.zero(buf.offset, buf.len as usize)?;
            let addr = t.addr(buf);
            t.rx.add(id, addr, buf.len, true)?;
        }
        self.transport.start_session()?;
        self.control
            .publish(&self.layout, self.own_id, self.session)?;
        self.control.set_status(STATUS_READY)?;
        self.epoch = self.epoch.wrapping_add(1);
        self.endpoints.reset_peer_state();
        self.published_peer = None;
        self.link = LinkState::Waiting;
        Ok(())
    }

    /// Starts a new session because the remote went away or asked for one, and rings the
    /// remote that asked (if any) so it attaches at once.
    fn restart_session(&mut self, requester: Option<u16>) -> Result<()> {
        self.start()?;
        if let Some(id) = requester {
            self.ring_id(id);
        }
        Ok(())
    }

    /// Host side of the link protocol (see the crate docs): notices a remote attaching to
    /// our session, or a new remote asking for a fresh one.
    fn refresh_link(&mut self) -> Result<()> {
        if self.link == LinkState::Down {
            return Ok(());
        }
        let (id, session) = match self.control.remote() {
            Ok(v) => v,
            Err(e) => {
                self.counters.record(e);
                return Ok(());
            }
        };
        if (id.is_some() && session == 0) || self.link == LinkState::Broken {
            return self.restart_session(id);
        }
        if session == self.session {
            // The remote attached to our session. Its first message may have brought the
            // link up already (see `on_valid_message`), before its acknowledgement was
            // visible here: take its id now in any case.
            self.adopt_remote(id);
        }
        Ok(())
    }

    /// The remote acknowledged our session (`id` from the control area): the link is up
    /// and the doorbell goes to that id.
    fn adopt_remote(&mut self, id: Option<u16>) {
        match self.link {
            LinkState::Waiting => {
                self.link = LinkState::Up;
                self.published_peer = id;
                self.announce_pending();
            }
            LinkState::Up => self.published_peer = id,
            LinkState::Down | LinkState::Broken => {}
        }
    }
}

impl<'a, D: Doorbell> Rpmsg<'a, RemoteTransport<'a>, D> {
    /// A remote node over `region`. `own_id` is our ivshmem peer id (published for the
    /// host). It attaches when the host is ready: see [`Rpmsg::poll`].
    pub fn new_remote(
        region: SharedRegion<'a>,
        config: Config,
        own_id: Option<u16>,
        doorbell: D,
    ) -> Result<Self> {
        let layout = Layout::new(&config)?;
        check_region(&region, &layout)?;
        let pool = Self::pool_window(&layout, config.addr_base);
        let transport = RemoteTransport {
            rx: DeviceQueue::new(
                RingView::new(region, layout.ring(QueueId::HostToRemote))?,
                pool,
            ),
            tx: DeviceQueue::new(
                RingView::new(region, layout.ring(QueueId::RemoteToHost))?,
                pool,
            ),
            tx_notifications: true,
            rx_notifications: true,
            tx_starved: false,
            polling: false,
            deferral: Deferral::default(),
            spare: heapless::Vec::new(),
        };
        Self::assemble(region, layout, transport, doorbell, own_id)
    }

    fn pool_window(layout: &Layout, addr_base: u64) -> PoolWindow {
        PoolWindow {
            start: layout.pool_start(),
            end: layout.pool_end(),
            addr_base,
        }
    }

    /// Asks the host for a fresh session and waits for it.
    fn request_session(&mut self, host_id: Option<u16>) -> Result<()> {
        self.control.set_remote(self.own_id, 0)?;
        self.link = LinkState::Waiting;
        if let Some(id) = host_id.or(self.layout.config().fallback_peer_id) {
            self.ring_id(id);
        }
        Ok(())
    }

    /// Remote side of the link protocol (see the crate docs).
    fn refresh_link(&mut self) -> Result<()> {
        let status = self.control.status()?;
        let session = self.control.host_session()?;
        let ready = status & STATUS_DRIVER_OK != 0;
        match self.link {
            LinkState::Up if ready && session == self.session => return Ok(()),
            LinkState::Broken if ready && session == self.session => {
                let host = self.published_peer;
                return self.request_session(host);
            }
            LinkState::Waiting if ready && session == self.session => return Ok(()),
            LinkState::Up | LinkState::Broken => {
                // The host reset the region: everything we held is gone.
                self.stats.resets += 1;
                self.link = LinkState::Down;
                self.epoch = self.epoch.wrapping_add(1);
                self.endpoints.reset_peer_state();
                self.transport.spare.clear();
            }
            LinkState::Waiting | LinkState::Down => {}
        }
        if !ready {
            return Ok(());
        }
        let cfg = *self.layout.config();
        let published = self.control.published()?;
        let (_, attached) = self.control.remote()?;
        // What we read is one host's one session only if the status and the session number
        // did not change meanwhile (the host sets the status to 0 before it touches
        // anything, and session numbers never repeat); otherwise look again at the next poll.
        let still_ready = self.control.status()? & STATUS_DRIVER_OK != 0;
        if !still_ready
            || self.control.host_session()? != session
            || published.is_some_and(|p| p.host_session != session)
        {
            return Ok(());
        }
        let (addr_base, host_id) = match published {
            Some(p) => {
                if p.queue_size != cfg.queue_size
                    || p.buf_size != cfg.buf_size
                    || p.align != cfg.align
                    || p.shm_size != cfg.shm_size as u64
                {
                    return Err(Error::LayoutMismatch);
                }
                (p.addr_base, p.host_id)
            }
            // A C OpenAMP host: no control block; identical address maps assumed.
            None => (cfg.addr_base, None),
        };
        self.session = session;
        if published.is_some() && attached == session {
            // A previous remote attached to this session and its ring positions are lost
            // with it: ask the host to start over.
            return self.request_session(host_id);
        }
        let pool = Self::pool_window(&self.layout, addr_base);
        self.transport.rx.restart(pool);
        self.transport.tx.restart(pool);
        self.transport.spare.clear();
        self.transport.start_session()?;
        self.epoch = self.epoch.wrapping_add(1);
        self.published_peer = host_id;
        self.endpoints.reset_peer_state();
        if published.is_some() {
            self.control.set_remote(self.own_id, session)?;
        }
        self.link = LinkState::Up;
        self.announce_pending();
        if let Some(id) = self.peer_id() {
            // Tell the host we are here: it reads our id from the control area.
            self.ring_id(id);
        }
        Ok(())
    }
}

/// Role-specific link handling, called by the generic code.
#[doc(hidden)]
pub trait LinkProtocol {
    /// Advances the link state machine.
    fn refresh(&mut self) -> Result<()>;
    /// Whether received buffers belong to the current session and may be delivered.
    fn may_receive(&self) -> bool;
    /// Called for each valid message received while [`LinkProtocol::may_receive`].
    fn on_valid_message(&mut self);
    /// Just before touching the rings outside [`Rpmsg::recv`]/[`Rpmsg::poll`]: whether
    /// they still belong to the session this node is attached to. When they do not, every
    /// ring operation fails until the next `poll`/`recv` brings the link up to date.
    fn session_current(&self) -> bool;
}

impl<'a, D: Doorbell> LinkProtocol for Rpmsg<'a, HostTransport<'a>, D> {
    fn refresh(&mut self) -> Result<()> {
        self.refresh_link()
    }
    fn may_receive(&self) -> bool {
        // The host reset the rings when it started the session, so whatever arrives
        // after that is from this session, even before the remote's acknowledgement.
        matches!(self.link, LinkState::Up | LinkState::Waiting)
    }
    fn on_valid_message(&mut self) {
        if self.link != LinkState::Waiting {
            return;
        }
        // Our remote acknowledges before it sends, so a message that overtook our last
        // look at the control area finds the acknowledgement there now; a C OpenAMP
        // remote never acknowledges, and its first message brings the link up.
        // (Our endpoints are announced at the next poll.)
        self.link = LinkState::Up;
        if let Ok((id, session)) = self.control.remote() {
            if session == self.session {
                self.published_peer = id;
            }
        }
    }
    fn session_current(&self) -> bool {
        // The host owns the rings: only its own start() replaces them.
        true
    }
}

impl<'a, D: Doorbell> LinkProtocol for Rpmsg<'a, RemoteTransport<'a>, D> {
    fn refresh(&mut self) -> Result<()> {
        self.refresh_link()
    }
    fn may_receive(&self) -> bool {
        self.link == LinkState::Up
    }
    fn on_valid_message(&mut self) {}
    fn session_current(&self) -> bool {
        // The host may have restarted since we last looked (a new host process, or a new
        // session in the same one): its rings are not ours any more, and a buffer taken
        // from them or an index published into them with our old positions would corrupt
        // the new session or deliver a message from before the restart (open-amp #44).
        self.link == LinkState::Up
            && matches!(self.control.status(), Ok(st) if st & STATUS_DRIVER_OK != 0)
            && self.control.host_session() == Ok(self.session)
    }
}

impl<'a, T: Transport<'a>, D: Doorbell> Rpmsg<'a, T, D> {
    fn assemble(
        region: SharedRegion<'a>,
        layout: Layout,
        transport: T,
        doorbell: D,
        own_id: Option<u16>,
    ) -> Result<Self> {
        Ok(Self {
            region,
            control: ControlView::new(region)?,
            layout,
            transport,
            doorbell,
            endpoints: EndpointTable::new(),
            counters: ErrorCounters::default(),
            stats: Stats::default(),
            own_id,
            published_peer: None,
            link: LinkState::Down,
            session: 0,
            epoch: 0,
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
    /// [`Config::fallback_peer_id`] (a C OpenAMP peer publishes none). The doorbell goes here.
    pub fn peer_id(&self) -> Option<u16> {
        self.published_peer
            .or(self.layout.config().fallback_peer_id)
    }

    /// The peer's id as published in the control area; `None` while it published none
    /// (a C OpenAMP peer, or ours before it attached), when [`Rpmsg::peer_id`] is the fallback.
    pub const fn published_peer_id(&self) -> Option<u16> {
        self.published_peer
    }

    /// Replaces [`Config::fallback_peer_id`], the peer rung while the other side has
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
        if matches!(e, Error::AvailIndexOutOfRange | Error::UsedIndexOutOfRange) {
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
    ) -> Result<u32>
    where
        Self: LinkProtocol,
    {
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

    /// Destroys an endpoint, announcing the destruction if it had been announced.
    pub fn destroy_endpoint(&mut self, addr: u32) -> Result<()>
    where
        Self: LinkProtocol,
    {
        let ep = self.endpoints.remove(addr)?;
        if self.layout.config().name_service && !ep.name().is_empty() && self.link == LinkState::Up
        {
            let msg = NameService::message(&ep, true).to_bytes();
            // Best effort: the peer also forgets us when the session ends.
            let _ = self.try_send_raw(ep.local(), RPMSG_NS_ADDR, &msg);
        }
        Ok(())
    }

    /// The endpoint with local address `addr`.
    pub fn endpoint(&self, addr: u32) -> Option<&Endpoint> {
        self.endpoints.get(addr)
    }

    /// All endpoints.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter()
    }

    fn announce_pending(&mut self)
    where
        Self: LinkProtocol,
    {
        if !self.layout.config().name_service {
            return;
        }
        while let Some(ep) = self.endpoints.next_unannounced() {
            let local = ep.local();
            let msg = NameService::message(ep, false).to_bytes();
            match self.try_send_raw(local, RPMSG_NS_ADDR, &msg) {
                Ok(()) => self.endpoints.mark_announced(local),
                // No buffer yet: announced on a later poll.
                Err(_) => break,
            }
        }
    }

    /// Advances the link (attach, restarts, pending announcements) without receiving.
    /// Returns whether the link is up.
    pub fn poll(&mut self) -> Result<bool>
    where
        Self: LinkProtocol,
    {
        if let Err(e) = self.refresh() {
            return Err(self.fail(e));
        }
        if self.link == LinkState::Up {
            self.announce_pending();
        }
        Ok(self.link == LinkState::Up)
    }

    /// Takes a free transmit buffer (zero-copy send).
    pub fn get_tx_buffer(&mut self) -> Result<TxBuffer<'a>>
    where
        Self: LinkProtocol,
    {
        if self.link != LinkState::Up && self.link != LinkState::Waiting {
            return Err(Error::NotReady);
        }
        if !self.session_current() {
            return Err(Error::NotReady);
        }
        match self.transport.acquire_tx(&mut self.counters) {
            Ok(Some((id, buf))) => Ok(TxBuffer {
                region: self.region,
                id,
                buf,
                epoch: self.epoch,
            }),
            Ok(None) => Err(Error::NoTxBuffer),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Returns an unused transmit buffer.
    pub fn release_tx_buffer(&mut self, buf: TxBuffer<'a>) -> Result<()> {
        if buf.epoch != self.epoch {
            return Err(Error::StaleBuffer);
        }
        self.transport.cancel_tx(buf.id, buf.buf)
    }

    /// Sends `len` payload bytes already written into `buf` from endpoint `src` to `dst`.
    pub fn send_offchannel_nocopy(
        &mut self,
        src: u32,
        dst: u32,
        buf: TxBuffer<'a>,
        len: usize,
    ) -> Result<()>
    where
        Self: LinkProtocol,
    {
        if !self.session_current() {
            // The session ended since the buffer was taken: it no longer exists.
            return Err(Error::StaleBuffer);
        }
        self.submit(src, dst, buf, len)
    }

    /// [`Rpmsg::send_offchannel_nocopy`] once the session is confirmed.
    fn submit(&mut self, src: u32, dst: u32, buf: TxBuffer<'a>, len: usize) -> Result<()> {
        if buf.epoch != self.epoch {
            return Err(Error::StaleBuffer);
        }
        if len > buf.capacity() {
            self.transport.cancel_tx(buf.id, buf.buf)?;
            return Err(Error::PayloadTooLarge);
        }
        if src == RPMSG_ADDR_ANY || dst == RPMSG_ADDR_ANY {
            self.transport.cancel_tx(buf.id, buf.buf)?;
            return Err(Error::EndpointNotBound);
        }
        // len <= capacity < 65536 - 16 (MAX_BUF_SIZE), so it fits the u16 field.
        let header = RpmsgHeader::new(src, dst, len as u16);
        self.region
            .write_bytes(buf.buf.offset, &header.to_bytes())?;
        let notify = self
            .transport
            .submit_tx(buf.id, buf.buf, (RpmsgHeader::SIZE + len) as u32)?;
        self.stats.tx_messages += 1;
        if notify {
            self.ring_peer();
        }
        Ok(())
    }

    /// Sends `len` payload bytes already written into `buf` from endpoint `ept` to the
    /// address it is bound to.
    pub fn send_nocopy(&mut self, ept: u32, buf: TxBuffer<'a>, len: usize) -> Result<()>
    where
        Self: LinkProtocol,
    {
        let dst = match self.endpoints.get(ept).map(|e| e.dest()) {
            Some(Some(d)) => d,
            other => {
                self.release_tx_buffer(buf)?;
                return Err(if other.is_none() {
                    Error::EndpointNotFound
                } else {
                    Error::EndpointNotBound
                });
            }
        };
        self.send_offchannel_nocopy(ept, dst, buf, len)
    }

    fn try_send_raw(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<()>
    where
        Self: LinkProtocol,
    {
        let mut buf = self.get_tx_buffer()?;
        if let Err(e) = buf.write(0, data) {
            self.release_tx_buffer(buf)?;
            return Err(e);
        }
        // get_tx_buffer checked the session a moment ago, within this call.
        self.submit(src, dst, buf, data.len())
    }

    /// Copies `data` into a free buffer and sends it from `ept` to its bound address, or
    /// fails at once with [`Error::NoTxBuffer`].
    pub fn try_send(&mut self, ept: u32, data: &[u8]) -> Result<()>
    where
        Self: LinkProtocol,
    {
        if self.link != LinkState::Up {
            return Err(Error::NotReady);
        }
        let dst = self
            .endpoints
            .get(ept)
            .ok_or(Error::EndpointNotFound)?
            .dest()
            .ok_or(Error::EndpointNotBound)?;
        self.try_send_to(ept, dst, data)
    }

    /// Copies `data` into a free buffer and sends it from `src` to `dst`.
    pub fn try_send_to(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<()>
    where
        Self: LinkProtocol,
    {
        if data.len() > self.max_payload() {
            return Err(Error::PayloadTooLarge);
        }
        if self.link != LinkState::Up {
            return Err(Error::NotReady);
        }
        self.try_send_raw(src, dst, data)
    }

    /// Like [`Rpmsg::try_send`], but waits up to `timeout_us` (by `clock`) for a buffer.
    ///
    /// For a node shared between threads, loop over `try_send` and wait outside the lock
    /// instead: this method holds `&mut self` while it waits.
    pub fn send(
        &mut self,
        ept: u32,
        data: &[u8],
        clock: &mut impl Clock,
        timeout_us: u64,
    ) -> Result<()>
    where
        Self: LinkProtocol,
    {
        let deadline = clock.now_us().saturating_add(timeout_us);
        loop {
            match self.try_send(ept, data) {
                Err(Error::NoTxBuffer) | Err(Error::NotReady) => {}
                other => return other,
            }
            let now = clock.now_us();
            if now >= deadline {
                return Err(Error::Timeout);
            }
            clock.wait_until(deadline.min(now.saturating_add(WAIT_SLICE_US)));
            self.poll()?;
        }
    }

    /// Receives the next message or name-service event, if any (zero-copy: a message stays
    /// in its shared buffer until [`Rpmsg::release_rx`]). Invalid buffers are counted,
    /// returned to the peer and skipped. Also advances the link, like [`Rpmsg::poll`].
    pub fn recv(&mut self) -> Result<Option<Event<'a>>>
    where
        Self: LinkProtocol,
    {
        self.poll()?;
        if !self.may_receive() {
            return Ok(None);
        }
        let n = self.layout.config().queue_size;
        for _ in 0..=n {
            let (id, buf, written) = match self.transport.next_rx() {
                Ok(Some(x)) => x,
                Ok(None) => return Ok(None),
                Err(e @ (Error::AvailIndexOutOfRange | Error::UsedIndexOutOfRange)) => {
                    return Err(self.fail(e))
                }
                Err(e) => {
                    self.stats.dropped += 1;
                    self.counters.record(e);
                    continue;
                }
            };
            self.stats.rx_messages += 1;
            let header = match read_message_header(&self.region, buf, written) {
                Ok(h) => h,
                Err(e) => {
                    self.drop_rx(id, buf, e)?;
                    continue;
                }
            };
            self.on_valid_message();
            if header.dst == RPMSG_NS_ADDR && self.layout.config().name_service {
                let record = read_ns_record(&self.region, buf, header.len);
                let release = self.transport.release_rx(id, buf);
                self.after_release(release)?;
                match record {
                    Ok(r) if r.destroy => {
                        self.endpoints.unbind(r.addr);
                        return Ok(Some(Event::NameServiceDestroy {
                            name: r.name,
                            addr: r.addr,
                        }));
                    }
                    Ok(r) => {
                        return Ok(Some(Event::NameServiceCreate {
                            name: r.name,
                            addr: r.addr,
                        }))
                    }
                    Err(e) => {
                        self.stats.dropped += 1;
                        self.counters.record(e);
                        continue;
                    }
                }
            }
            if self.endpoints.get(header.dst).is_none() {
                self.drop_rx(id, buf, Error::UnknownDestination)?;
                continue;
            }
            self.endpoints.learn(header.dst, header.src);
            return Ok(Some(Event::Message(RxBuffer {
                region: self.region,
                id,
                buf,
                epoch: self.epoch,
                header,
            })));
        }
        Ok(None)
    }

    fn after_release(&mut self, notify: Result<bool>) -> Result<()> {
        match notify {
            Ok(true) => {
                self.ring_peer();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn drop_rx(&mut self, id: u16, buf: BufferRef, why: Error) -> Result<()> {
        self.stats.dropped += 1;
        self.counters.record(why);
        let release = self.transport.release_rx(id, buf);
        self.after_release(release)
    }

    /// Gives a received buffer back to the peer.
    pub fn release_rx(&mut self, buf: RxBuffer<'a>) -> Result<()>
    where
        Self: LinkProtocol,
    {
        if buf.epoch != self.epoch || !self.session_current() {
            // The session ended while the buffer was held: it no longer exists.
            return Err(Error::StaleBuffer);
        }
        let release = self.transport.release_rx(buf.id, buf.buf);
        self.after_release(release)
    }

    /// Receives everything pending, calling `handler` for each event with the payload
    /// copied into `scratch` (which should hold [`Rpmsg::max_payload`] bytes; longer
    /// payloads are dropped and counted as [`Error::PayloadTooLarge`]). The handler gets the
    /// node back, so it can reply. Returns the number of events handled.
    pub fn process<F>(&mut self, scratch: &mut [u8], mut handler: F) -> Result<usize>
    where
        Self: LinkProtocol,
        F: FnMut(&mut Self, Incoming<'_>),
    {
        let mut handled = 0;
        // Bounded: at most two queue-fulls of events per call, so a flooding peer cannot
        // keep us here forever.
        for _ in 0..2 * self.layout.config().queue_size as usize {
            let Some(event) = self.recv()? else { break };
            handled += 1;
            match event {
                Event::Message(rx) => {
                    let (ept, src, len) = (rx.dst(), rx.src(), rx.len());
                    let copied = if len <= scratch.len() {
                        rx.read(0, &mut scratch[..len])
                    } else {
                        Err(Error::PayloadTooLarge)
                    };
                    self.release_rx(rx)?;
                    match copied {
                        Ok(n) => handler(
                            self,
                            Incoming::Message {
                                ept,
                                src,
                                payload: &scratch[..n],
                            },
                        ),
                        Err(e) => {
                            self.stats.dropped += 1;
                            self.counters.record(e);
                        }
                    }
                }
                Event::NameServiceCreate { name, addr } => {
                    handler(self, Incoming::NameServiceCreate { name: &name, addr })
                }
                Event::NameServiceDestroy { name, addr } => {
                    handler(self, Incoming::NameServiceDestroy { name: &name, addr })
                }
            }
        }
        Ok(handled)
    }
}

/// Polling: a node whose thread is awake anyway (it just handled a message, or spins
/// briefly before it blocks) tells the peer not to ring it, and rings are saved on both
/// sides (a doorbell costs a system call or a VM exit to ring, and a wake-up to take).
///
/// ```text
/// node.busy_poll()?;                 // after waking up: the peer need not ring us
/// loop {
///     handle everything node.recv() returns;
///     spin a little while !node.has_pending();
///     if node.has_pending() { continue }
///     if node.prepare_to_wait()? { node.busy_poll()?; continue }  // arrived meanwhile
///     block until the doorbell rings;
///     node.busy_poll()?;
/// }
/// ```
///
/// Only the standard virtio suppression flags are used (`VRING_AVAIL_F_NO_INTERRUPT` on the
/// host's receive ring, `VRING_USED_F_NO_NOTIFY` on the remote's), which an OpenAMP C peer
/// honours; a node that never calls these methods behaves as before.
impl<'a, T: Transport<'a>, D: Doorbell> Rpmsg<'a, T, D>
where
    Self: LinkProtocol,
{
    /// Tells the peer not to ring us: neither for messages nor for transmit buffers coming
    /// back, because we look at the rings ourselves ([`Rpmsg::has_pending`]) until
    /// [`Rpmsg::prepare_to_wait`]. Writes a ring flag only when it changes.
    pub fn busy_poll(&mut self) -> Result<()> {
        // (A remote writes its flags only into the session it is attached to; a write that
        // races with a host restart is overwritten when it attaches to the new one.)
        let write = self.may_receive() && self.session_current();
        self.transport.set_polling(true, write)
    }

    /// Before blocking on the doorbell: asks the peer to ring us again for messages (and,
    /// if the last send found no buffer, for returned buffers), then looks once more, after
    /// a full barrier, so that nothing published before the flags were visible is missed.
    /// Returns true if something is pending: handle it instead of blocking.
    pub fn prepare_to_wait(&mut self) -> Result<bool> {
        let write = self.may_receive() && self.session_current();
        self.transport.set_polling(false, write)?;
        crate::shm::full_barrier();
        Ok(self.has_pending())
    }

    /// Whether the peer published something we wait for — a message, or (if the last send
    /// found none) a transmit buffer — since we last took one: one or two shared-memory
    /// loads, no validation and no side effects, for spinning. `recv` and the send calls
    /// do the real work (and validate).
    pub fn has_pending(&self) -> bool {
        self.may_receive() && self.transport.peer_moved()
    }
}

/// Batching: while a node has several messages to send or buffers to return, it need not
/// ask after each one whether the peer wants a doorbell (a full barrier and a load of a
/// line the peer writes): it asks once, at the end.
impl<'a, T: Transport<'a>, D: Doorbell> Rpmsg<'a, T, D> {
    /// From now until [`Rpmsg::flush_doorbell`], sends and releases publish at once (the
    /// peer sees them as soon as it looks) but do not ring the peer; the flush rings it once
    /// if it wants to hear about any of them. Every `queue_size` held-back operations the
    /// check is made anyway, so a peer that waits is never left waiting for longer than
    /// a ring's worth of messages. Call the flush before blocking, or the peer may wait for
    /// messages it could already take.
    pub fn defer_doorbells(&mut self) {
        self.transport.deferral().on = true;
    }

    /// Stops deferring, and rings the peer once if it wants to hear about what was sent or
    /// returned while deferring.
    pub fn flush_doorbell(&mut self) -> Result<()> {
        let (tx, rx) = self.transport.deferral().take(false);
        if (tx || rx) && self.transport.wants_doorbell(tx, rx)? {
            self.ring_peer();
        }
        Ok(())
    }
}

// NsMessage is used in docs and keeps the import honest.
const _: usize = NsMessage::SIZE;
