//! The host's role: the virtio driver side. It owns every buffer, receives on vring 0 and
//! sends on vring 1, starts sessions and notices remotes attaching or asking for a fresh
//! one.

use super::batching::{check_or_hold, Deferral, Wakeups};
use super::{check_region, Host, LinkState, Role, Rpmsg};
use crate::error::{Error, ErrorCounters, PeerFault, Result};
use crate::layout::{Config, Layout, QueueId, MAX_QUEUE_SIZE, STATUS_READY};
use crate::platform::Doorbell;
use crate::shm::{BufferRef, RingView, SharedRegion};
use crate::virtqueue::DriverQueue;

/// The host's queues: it receives on vring 0 and sends on vring 1, and owns every buffer.
#[derive(Debug)]
pub struct HostRole<'a> {
    rx: DriverQueue<'a>,
    tx: DriverQueue<'a>,
    /// The transmit buffers that are ours and unused: a stack, so that the buffer taken
    /// next is the one that came back last (still in the cache). Ids are below the queue
    /// size, so they fit a byte.
    tx_free: heapless::Vec<u8, { MAX_QUEUE_SIZE as usize }>,
    /// The doorbells we ask the remote for (our avail rings' flags).
    wake: Wakeups,
    deferral: Deferral,
    layout: Layout,
    /// A used entry was rejected since the last look: its buffer is lost to this session.
    lost: bool,
}

const _: () = assert!(MAX_QUEUE_SIZE as usize <= u8::MAX as usize + 1);

impl HostRole<'_> {
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

impl super::sealed::Sealed for HostRole<'_> {}

impl HostRole<'_> {
    /// Moves every transmit buffer the remote consumed back to the free set (bounded by
    /// the queue size).
    fn reclaim(&mut self, counters: &mut ErrorCounters) -> Result<()> {
        let free = &mut self.tx_free;
        let lost = &mut self.lost;
        self.tx.drain_used(
            self.layout.config().buf_size,
            // Room for every id: each is free or in flight, never both.
            |elem| {
                let _ = free.push(elem.id as u8);
            },
            |e| {
                *lost = true;
                counters.record(e);
            },
        )
    }
}

impl HostRole<'_> {
    /// No transmit buffer is free: takes back those the remote returned (one look at the
    /// used ring per batch of sends, not per send) and gives one of them, if any.
    #[inline(never)]
    fn refill_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<u16>> {
        self.reclaim(counters)?;
        if self.tx_free.is_empty() && !self.wake.polling {
            // Out of buffers: ask to be interrupted when one comes back, then look again in
            // case it came back before the flag was visible. (A polling caller asks only
            // when it stops polling.)
            self.want_tx(true)?;
            self.reclaim(counters)?;
        }
        let id = self.tx_free.pop().map(u16::from);
        self.wake.tx_starved = id.is_none();
        Ok(id)
    }
}

impl<'a> Role<'a> for HostRole<'a> {
    #[inline]
    fn acquire_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>> {
        let id = match self.tx_free.pop() {
            Some(id) => u16::from(id),
            None => match self.refill_tx(counters)? {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        self.wake.tx_starved = false;
        if self.wake.asks_for_tx() {
            self.want_tx(false)?;
        }
        let n = self.layout.config().queue_size as usize;
        Ok(Some((id, self.buffer(n + id as usize))))
    }

    #[inline]
    fn submit_tx(&mut self, id: u16, buf: BufferRef, len: u32) -> Result<bool> {
        self.tx.add(id, self.addr(buf), len, false)?;
        check_or_hold(self, true, self.tx.size())
    }

    fn cancel_tx(&mut self, id: u16, _buf: BufferRef) -> Result<()> {
        self.tx_free.push(id as u8).map_err(|_| Error::StaleBuffer)
    }

    #[inline]
    fn next_rx(&mut self) -> Result<Option<(u16, BufferRef, u32)>> {
        let buf_size = self.layout.config().buf_size;
        let popped = self.rx.pop_used(buf_size);
        self.lost |= popped.is_err();
        Ok(popped?.map(|e| (e.id, self.buffer(e.id as usize), e.len)))
    }

    #[inline]
    fn release_rx(&mut self, id: u16, buf: BufferRef) -> Result<bool> {
        self.rx.add(id, self.addr(buf), buf.len, true)?;
        check_or_hold(self, false, self.rx.size())
    }

    fn unget_rx(&mut self, id: u16) {
        self.rx.unpop_used(id);
    }

    fn lost(&self) -> bool {
        self.lost
    }

    fn deferral(&mut self) -> &mut Deferral {
        &mut self.deferral
    }

    fn wakeups(&mut self) -> &mut Wakeups {
        &mut self.wake
    }

    type Queue = DriverQueue<'a>;

    fn queues(&self) -> (&DriverQueue<'a>, &DriverQueue<'a>, &Wakeups) {
        (&self.rx, &self.tx, &self.wake)
    }

    const HOST: bool = true;

    fn peer_gone<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) -> Result<()> {
        node.restart_session(None)
    }

    fn refresh<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) -> Result<()> {
        node.refresh_link()
    }

    fn may_receive<D: Doorbell>(node: &Rpmsg<'a, Self, D>) -> bool {
        // The host reset the rings when it started the session, so whatever arrives
        // after that is from this session, even before the remote's acknowledgement.
        matches!(node.link, LinkState::Up | LinkState::Waiting)
    }

    fn on_valid_message<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) {
        if node.link != LinkState::Waiting {
            return;
        }
        // Our remote acknowledges before it sends, so a message that overtook our last
        // look at the control area finds the acknowledgement there now; a C OpenAMP
        // remote never acknowledges, and its first message brings the link up.
        // (Our endpoints are announced at the next poll.)
        node.link = LinkState::Up;
        if let Ok((id, session)) = node.control.remote() {
            if session == node.session {
                node.published_peer = id;
            }
        }
    }

    fn session_current<D: Doorbell>(_node: &Rpmsg<'a, Self, D>) -> bool {
        // The host owns the rings: only its own start() replaces them.
        true
    }
}

impl<'a, D: Doorbell> Host<'a, D> {
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
        let role = HostRole {
            rx: DriverQueue::new(RingView::new(region, layout.ring(QueueId::RemoteToHost))?),
            tx: DriverQueue::new(RingView::new(region, layout.ring(QueueId::HostToRemote))?),
            tx_free: heapless::Vec::new(),
            wake: Wakeups::new(),
            deferral: Deferral::default(),
            layout,
            lost: false,
        };
        Self::assemble(region, layout, role, doorbell, own_id)
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
        let t = &mut self.role;
        t.rx.reset()?;
        t.tx.reset()?;
        t.tx_free.clear();
        t.lost = false;
        let n = self.layout.config().queue_size;
        // Taken from the top: buffer 0 first.
        t.tx_free.extend((0..n).rev().map(|id| id as u8));
        for id in 0..n {
            let buf = t.buffer(id as usize);
            self.region.zero(buf.offset, buf.len as usize)?;
            let addr = t.addr(buf);
            t.rx.add(id, addr, buf.len, true)?;
        }
        self.role.start_batching()?;
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
        if !self.region_intact() {
            return self.restart_session(None);
        }
        let (id, session) = match self.control.remote() {
            Ok(v) => v,
            Err(e) => {
                // An impossible remote word: whoever wrote it, only a fresh session
                // (which clears it) gets a real remote back.
                self.counters.record(e);
                return self.restart_session(None);
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

    /// Whether the session still stands as we set it up: our status byte and session
    /// number are written by us alone, so another value there was written by someone
    /// else (counted), and a ring entry we rejected lost a buffer for good (counted when
    /// it was rejected). Either way only a fresh session restores the link.
    fn region_intact(&mut self) -> bool {
        let ours = self.control.status() == Ok(STATUS_READY)
            && self.control.host_session() == Ok(self.session);
        if !ours {
            self.counters
                .record(Error::Peer(PeerFault::BadControlValue));
        }
        ours && !core::mem::take(&mut self.role.lost)
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
