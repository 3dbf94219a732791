//! Zero-copy buffers ([`TxBuffer`], [`RxBuffer`]) and a node's sending and receiving.

use super::{LinkState, Role, Rpmsg, WAIT_SLICE_US};
use crate::error::{Error, PeerFault, Result};
use crate::platform::{Clock, Doorbell};
use crate::shm::{read_message_header, read_ns_record, BufferRef, MessageHeader, SharedRegion};
use crate::wire::{RpmsgHeader, RPMSG_NS_ADDR};

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
    /// Its descriptor id and location.
    pub(super) const fn location(&self) -> (u16, BufferRef) {
        (self.id, self.buf)
    }

    /// Payload bytes this buffer can hold.
    pub fn capacity(&self) -> usize {
        self.buf.len as usize - RpmsgHeader::SIZE
    }

    /// Writes `data` into the payload at `offset`.
    #[inline]
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

impl<'a> RxBuffer<'a> {
    /// Buffer `id` at `buf` in `region`, received in session `epoch` with `header`.
    pub(super) const fn new(
        region: SharedRegion<'a>,
        id: u16,
        buf: BufferRef,
        epoch: u32,
        header: MessageHeader,
    ) -> Self {
        Self {
            region,
            id,
            buf,
            epoch,
            header,
        }
    }

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
    #[inline]
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

/// One step of receiving ([`Rpmsg::recv`] and the batch receive).
pub(super) enum RxStep {
    /// A buffer with a valid header: its id, location and header.
    Valid(u16, BufferRef, MessageHeader),
    /// An invalid buffer was counted and returned to the peer.
    Skipped,
    /// Nothing pending.
    Empty,
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

impl<'a, R: Role<'a>, D: Doorbell> Rpmsg<'a, R, D> {
    /// Takes a free transmit buffer (zero-copy send).
    pub fn get_tx_buffer(&mut self) -> Result<TxBuffer<'a>> {
        if self.link != LinkState::Up && self.link != LinkState::Waiting {
            return Err(Error::NotReady);
        }
        if !self.session_current() {
            return Err(Error::NotReady);
        }
        self.take_tx_buffer()
    }

    /// [`Rpmsg::get_tx_buffer`] once the link and the session are known to be current.
    #[inline]
    pub(super) fn take_tx_buffer(&mut self) -> Result<TxBuffer<'a>> {
        match self.role.acquire_tx(&mut self.counters) {
            Ok(Some((id, buf))) => Ok(TxBuffer {
                region: self.region,
                id,
                buf,
                epoch: self.epoch,
            }),
            Ok(None) => Err(self.no_tx_buffer()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Why no transmit buffer was free.
    #[cold]
    #[inline(never)]
    fn no_tx_buffer(&mut self) -> Error {
        if !self.role.lost() {
            return Error::NoTxBuffer;
        }
        // A buffer the peer offered was rejected (counted): only a fresh session gets it
        // back. Start it (host) or ask for it (remote) now, not when a send waiting for a
        // buffer gives up.
        if let Err(e) = R::refresh(self) {
            return e;
        }
        if self.link == LinkState::Up {
            Error::NoTxBuffer
        } else {
            Error::NotReady
        }
    }

    /// Returns an unused transmit buffer.
    pub fn release_tx_buffer(&mut self, buf: TxBuffer<'a>) -> Result<()> {
        if buf.epoch != self.epoch {
            return Err(Error::StaleBuffer);
        }
        self.role.cancel_tx(buf.id, buf.buf)
    }

    /// Sends `len` payload bytes already written into `buf` from endpoint `src` to `dst`.
    pub fn send_offchannel_nocopy(
        &mut self,
        src: u32,
        dst: u32,
        buf: TxBuffer<'a>,
        len: usize,
    ) -> Result<()> {
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
        self.submit_in_session(src, dst, buf, len)
    }

    /// Sends `len` payload bytes already written into `buf` from endpoint `ept` to the
    /// address it is bound to.
    pub fn send_nocopy(&mut self, ept: u32, buf: TxBuffer<'a>, len: usize) -> Result<()> {
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

    pub(super) fn try_send_raw(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<()> {
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
    pub fn try_send(&mut self, ept: u32, data: &[u8]) -> Result<()> {
        let dst = self.bound_dest(ept)?;
        self.try_send_to(ept, dst, data)
    }

    /// The address endpoint `ept` sends to, with the link up.
    pub(super) fn bound_dest(&self, ept: u32) -> Result<u32> {
        if self.link != LinkState::Up {
            return Err(Error::NotReady);
        }
        self.endpoints
            .get(ept)
            .ok_or(Error::EndpointNotFound)?
            .dest()
            .ok_or(Error::EndpointNotBound)
    }

    /// Copies `data` into a free buffer and sends it from `src` to `dst`.
    pub fn try_send_to(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<()> {
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
    ) -> Result<()> {
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
    pub fn recv(&mut self) -> Result<Option<Event<'a>>> {
        self.poll()?;
        if !self.may_receive() {
            return Ok(None);
        }
        let n = self.layout.config().queue_size;
        for _ in 0..=n {
            let (id, buf, header) = match self.next_valid_rx::<false>()? {
                RxStep::Valid(id, buf, header) => (id, buf, header),
                RxStep::Skipped => continue,
                RxStep::Empty => return Ok(None),
            };
            if header.dst == RPMSG_NS_ADDR && self.layout.config().name_service {
                let record = read_ns_record(&self.region, buf, header.len);
                let release = self.role.release_rx(id, buf);
                self.after_release(release)?;
                match record {
                    Ok(r) if self.forged_name_service(&r.name, r.addr, r.destroy) => {
                        return Err(self.fail(Error::Peer(PeerFault::NameServiceConflict)));
                    }
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
            if !self.endpoints.learn(header.dst, header.src) {
                self.drop_rx::<false>(id, buf, Error::Peer(PeerFault::UnknownDestination))?;
                continue;
            }
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

    /// One step of receiving: the next received buffer with a valid header. An invalid
    /// buffer is counted and returned to the peer (skipped); an impossible ring index
    /// breaks the link (the error).
    ///
    /// `PASSING`: the buffer is returned (or put back) before the caller returns
    /// ([`Role::next_rx_passing`]).
    #[inline]
    pub(super) fn next_valid_rx<const PASSING: bool>(&mut self) -> Result<RxStep> {
        let popped = match PASSING {
            true => self.role.next_rx_passing(),
            false => self.role.next_rx(),
        };
        let (id, buf, written) = match popped {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(RxStep::Empty),
            Err(e) => return self.rx_rejected(e).map(|()| RxStep::Skipped),
        };
        self.stats.rx_messages += 1;
        match read_message_header(&self.region, buf, written) {
            Ok(header) => {
                self.on_valid_message();
                Ok(RxStep::Valid(id, buf, header))
            }
            Err(e) => self
                .drop_rx::<PASSING>(id, buf, e)
                .map(|()| RxStep::Skipped),
        }
    }

    /// A received ring entry was rejected: an impossible index breaks the link, anything
    /// else is counted (the entry is skipped).
    #[cold]
    #[inline(never)]
    fn rx_rejected(&mut self, e: Error) -> Result<()> {
        if matches!(
            e,
            Error::Peer(PeerFault::AvailIndexOutOfRange | PeerFault::UsedIndexOutOfRange)
        ) {
            return Err(self.fail(e));
        }
        self.stats.dropped += 1;
        self.counters.record(e);
        Ok(())
    }

    /// A host's view of a name-service record that undoes a binding of this session: a
    /// remote of ours (it publishes its id) announces each endpoint once per session and
    /// never destroys one, so the record is forged or the remote is corrupted, and only a
    /// fresh session (the remote announces again) brings the real bindings back. From a C
    /// OpenAMP remote it is taken as written.
    fn forged_name_service(&self, name: &str, addr: u32, destroy: bool) -> bool {
        R::HOST && self.published_peer.is_some() && self.endpoints.undone_by(name, addr, destroy)
    }

    #[inline]
    pub(super) fn after_release(&mut self, notify: Result<bool>) -> Result<()> {
        match notify {
            Ok(true) => {
                self.ring_peer();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Returns an invalid received buffer (taken with [`Role::next_rx_passing`] if
    /// `PASSING`) to the peer, counted.
    #[cold]
    #[inline(never)]
    fn drop_rx<const PASSING: bool>(&mut self, id: u16, buf: BufferRef, why: Error) -> Result<()> {
        self.stats.dropped += 1;
        self.counters.record(why);
        let release = match PASSING {
            true => self.role.release_passing(id, buf),
            false => self.role.release_rx(id, buf),
        };
        self.after_release(release)
    }

    /// Gives a received buffer back to the peer.
    pub fn release_rx(&mut self, buf: RxBuffer<'a>) -> Result<()> {
        if buf.epoch != self.epoch || !self.session_current() {
            // The session ended while the buffer was held: it no longer exists.
            return Err(Error::StaleBuffer);
        }
        let release = self.role.release_rx(buf.id, buf.buf);
        self.after_release(release)
    }
}
