//! The remote's role: the virtio device side. It waits for the host's session, receives
//! on vring 1 and sends on vring 0 in buffers the host offers.

use super::batching::{check_or_hold, Deferral, Wakeups};
use super::{check_region, LinkState, Remote, Role, Rpmsg};
use crate::error::{Error, ErrorCounters, PeerFault, Result};
use crate::layout::{Config, Layout, QueueId, STATUS_DRIVER_OK};
use crate::platform::Doorbell;
use crate::shm::{BufferRef, PoolWindow, RingView, SharedRegion};
use crate::virtqueue::DeviceQueue;

/// Most transmit buffers a remote can have taken and not yet used.
const MAX_SPARE: usize = crate::layout::MAX_QUEUE_SIZE as usize;

/// The remote's queues: it receives on vring 1 and sends on vring 0, using buffers the host
/// offers.
#[derive(Debug)]
pub struct RemoteRole<'a> {
    rx: DeviceQueue<'a>,
    tx: DeviceQueue<'a>,
    /// The doorbells we ask the host for (our used rings' flags).
    wake: Wakeups,
    deferral: Deferral,
    spare: heapless::Vec<(u16, u32, u32), MAX_SPARE>,
    /// An available entry was rejected since the last look: the host's ring is corrupt and
    /// that buffer is lost to this session.
    lost: bool,
}

impl super::sealed::Sealed for RemoteRole<'_> {}

impl RemoteRole<'_> {
    /// Takes the next valid available buffer of vring 0, skipping (and counting) invalid
    /// entries; bounded by the queue size.
    fn pop_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>> {
        for _ in 0..=self.tx.size() {
            match self.tx.pop_avail() {
                Ok(found) => return Ok(found),
                Err(Error::Peer(PeerFault::AvailIndexOutOfRange)) => {
                    return Err(Error::Peer(PeerFault::AvailIndexOutOfRange))
                }
                Err(e) => {
                    self.lost = true;
                    counters.record(e);
                }
            }
        }
        Ok(None)
    }
}

impl RemoteRole<'_> {
    /// What the receive queue gave: a rejected entry loses its buffer to this session; the
    /// bytes written are the whole buffer (the header says how many are the message's).
    #[inline]
    fn received(
        &mut self,
        popped: Result<Option<(u16, BufferRef)>>,
    ) -> Result<Option<(u16, BufferRef, u32)>> {
        self.lost |= popped.is_err();
        Ok(popped?.map(|(id, buf)| (id, buf, buf.len)))
    }
}

impl<'a> Role<'a> for RemoteRole<'a> {
    fn acquire_tx(&mut self, counters: &mut ErrorCounters) -> Result<Option<(u16, BufferRef)>> {
        if let Some((id, offset, len)) = self.spare.pop() {
            let buf = BufferRef {
                offset: offset as usize,
                len,
            };
            self.wake.tx_starved = false;
            return Ok(Some((id, buf)));
        }
        let mut found = self.pop_tx(counters)?;
        if found.is_none() && !self.wake.polling {
            self.want_tx(true)?;
            found = self.pop_tx(counters)?;
        }
        self.wake.tx_starved = found.is_none();
        if found.is_some() {
            self.want_tx(false)?;
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

    #[inline]
    fn next_rx(&mut self) -> Result<Option<(u16, BufferRef, u32)>> {
        let popped = self.rx.pop_avail();
        self.received(popped)
    }

    #[inline]
    fn release_rx(&mut self, id: u16, buf: BufferRef) -> Result<bool> {
        self.rx.push_used(id, buf.len)?;
        check_or_hold(self, false, self.rx.size())
    }

    fn unget_rx(&mut self, id: u16) {
        self.rx.unpop_avail(id);
    }

    #[inline]
    fn next_rx_passing(&mut self) -> Result<Option<(u16, BufferRef, u32)>> {
        let popped = self.rx.pop_avail_passing();
        self.received(popped)
    }

    #[inline]
    fn release_passing(&mut self, id: u16, buf: BufferRef) -> Result<bool> {
        self.rx.push_used_passing(id, buf.len);
        check_or_hold(self, false, self.rx.size())
    }

    fn unget_passing(&mut self, _id: u16) {
        self.rx.unpop_avail_passing();
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

    type Queue = DeviceQueue<'a>;

    fn queues(&self) -> (&DeviceQueue<'a>, &DeviceQueue<'a>, &Wakeups) {
        (&self.rx, &self.tx, &self.wake)
    }

    const HOST: bool = false;

    fn peer_gone<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) -> Result<()> {
        // Whatever we held belongs to a session nobody serves any more.
        node.stats.resets += 1;
        node.epoch = node.epoch.wrapping_add(1);
        node.endpoints.reset_peer_state();
        node.role.spare.clear();
        let host = node.published_peer;
        node.request_session(host)
    }

    fn refresh<D: Doorbell>(node: &mut Rpmsg<'a, Self, D>) -> Result<()> {
        node.refresh_link()
    }

    fn may_receive<D: Doorbell>(node: &Rpmsg<'a, Self, D>) -> bool {
        node.link == LinkState::Up
    }

    fn on_valid_message<D: Doorbell>(_node: &mut Rpmsg<'a, Self, D>) {}

    fn session_current<D: Doorbell>(node: &Rpmsg<'a, Self, D>) -> bool {
        // The host may have restarted since we last looked (a new host process, or a new
        // session in the same one): its rings are not ours any more, and a buffer taken
        // from them or an index published into them with our old positions would corrupt
        // the new session or deliver a message from before the restart (open-amp #44).
        node.link == LinkState::Up
            && matches!(node.control.status(), Ok(st) if st & STATUS_DRIVER_OK != 0)
            && node.control.host_session() == Ok(node.session)
    }
}

impl<'a, D: Doorbell> Remote<'a, D> {
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
        let role = RemoteRole {
            rx: DeviceQueue::new(
                RingView::new(region, layout.ring(QueueId::HostToRemote))?,
                pool,
            ),
            tx: DeviceQueue::new(
                RingView::new(region, layout.ring(QueueId::RemoteToHost))?,
                pool,
            ),
            wake: Wakeups::new(),
            deferral: Deferral::default(),
            spare: heapless::Vec::new(),
            lost: false,
        };
        Self::assemble(region, layout, role, doorbell, own_id)
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
    ///
    /// The common case — attached, the host's session unchanged, nothing rejected — is a
    /// small function of its own, checked before every receive; the rest is
    /// [`Remote::update_link`].
    #[inline]
    fn refresh_link(&mut self) -> Result<()> {
        if self.link == LinkState::Up && !self.role.lost {
            let ready = matches!(self.control.status(), Ok(st) if st & STATUS_DRIVER_OK != 0);
            if ready && self.control.host_session() == Ok(self.session) {
                return Ok(());
            }
        }
        self.update_link()
    }

    /// [`Remote::refresh_link`] when the link may have changed.
    #[inline(never)]
    fn update_link(&mut self) -> Result<()> {
        let status = self.control.status()?;
        let session = self.control.host_session()?;
        let ready = status & STATUS_DRIVER_OK != 0;
        if self.link == LinkState::Up && core::mem::take(&mut self.role.lost) {
            // The host offered a buffer we had to reject (counted): it is lost to this
            // session, and the ring is not the host's any more. Our host starts a fresh
            // session when asked; a C OpenAMP host cannot be asked, and keeps this one.
            if self.control.published().is_ok_and(|p| p.is_some()) {
                let host = self.published_peer;
                return self.request_session(host);
            }
        }
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
                self.role.spare.clear();
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
        self.attach(session, addr_base, host_id, published.is_some())
    }

    /// Attaches to the host's `session`: fresh ring positions and buffers, our id in the
    /// control area (for a host that publishes one), the endpoints announced, the host rung.
    fn attach(
        &mut self,
        session: u32,
        addr_base: u64,
        host_id: Option<u16>,
        published: bool,
    ) -> Result<()> {
        let pool = Self::pool_window(&self.layout, addr_base);
        self.role.rx.restart(pool);
        self.role.tx.restart(pool);
        self.role.spare.clear();
        self.role.lost = false;
        self.role.start_batching()?;
        self.epoch = self.epoch.wrapping_add(1);
        self.published_peer = host_id;
        self.endpoints.reset_peer_state();
        if published {
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
