//! Streams: many messages on one endpoint in one call, for a sender or receiver that has a
//! batch of them. The link, the session and the endpoint are looked at once per call
//! instead of once per message; everything read from the peer is validated as in
//! [`Rpmsg::recv`] (each ring entry and header once), and each message is still published
//! to the peer (ring index store) as soon as it is sent or returned, so the peer works on
//! it while we go on.

use super::buffers::RxStep;
use super::{Role, Rpmsg};
use crate::error::{Error, Result};
use crate::platform::Doorbell;
use crate::shm::{write_message_header, BufferRef};
use crate::wire::{RpmsgHeader, RPMSG_ADDR_ANY, RPMSG_NS_ADDR};

use super::buffers::{RxBuffer, TxBuffer};

impl<'a, R: Role<'a>, D: Doorbell> Rpmsg<'a, R, D> {
    /// Sends up to `max` messages from `ept` to the address it is bound to, stopping early
    /// when no transmit buffer is free: `fill` writes each payload into its buffer and
    /// returns the payload length. Returns how many were sent; fails (having sent none)
    /// with [`Error::NoTxBuffer`] when the first finds no buffer (or with why it cannot
    /// take one, e.g. [`Error::NotReady`]; later, that ends the call), or with the error of
    /// `fill` (the buffer is returned unsent; earlier messages are sent).
    ///
    /// The same as that many [`Rpmsg::try_send`]s of the payloads (the session is
    /// confirmed before each buffer is taken and again before it is sent, as by
    /// [`Rpmsg::send_nocopy`]: when it ended meanwhile, the call ends), with the endpoint
    /// looked up once.
    pub fn try_send_each(
        &mut self,
        ept: u32,
        max: usize,
        mut fill: impl FnMut(&mut TxBuffer<'a>) -> Result<usize>,
    ) -> Result<usize> {
        let dst = self.bound_dest(ept)?;
        let mut sent = 0;
        while sent < max {
            // The link was up at the start, and only an error returned below changes it.
            let taken = match self.session_current() {
                true => self.take_tx_buffer(),
                false => Err(Error::NotReady),
            };
            let mut buf = match taken {
                Ok(buf) => buf,
                Err(_) if sent > 0 => break,
                Err(e) => return Err(e),
            };
            let len = match fill(&mut buf) {
                Ok(len) => len,
                Err(e) => {
                    self.release_tx_buffer(buf)?;
                    return Err(e);
                }
            };
            if !self.session_current() {
                // The session ended while `fill` ran: the buffer no longer exists (as for
                // `send_nocopy`).
                break;
            }
            self.submit_in_session(ept, dst, buf, len)?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Receives up to `max` messages for endpoint `ept`: `take` gets each one (read it
    /// there; it is returned to the peer as soon as `take` returns) and says whether to go
    /// on. Returns how many `take` got. Stops early when nothing is pending or at a message
    /// for another endpoint or the name service, which stays for [`Rpmsg::recv`]; invalid
    /// buffers are counted, returned and skipped, as by `recv`. An unbound `ept` binds to
    /// the sender of its first message.
    ///
    /// The same as [`Rpmsg::recv`] and [`Rpmsg::release_rx`] for each message, with the
    /// link advanced once: the session is confirmed before each buffer is returned (and so
    /// before the next is taken); when it ended meanwhile, the buffer is not returned (it
    /// no longer exists, as for `release_rx`) and the call ends.
    pub fn recv_each(
        &mut self,
        ept: u32,
        max: usize,
        mut take: impl FnMut(&RxBuffer<'a>) -> bool,
    ) -> Result<usize> {
        self.poll()?;
        if !self.may_receive() || !self.session_current() || ept == RPMSG_NS_ADDR {
            return Ok(0);
        }
        let Some(endpoint) = self.endpoints.get(ept) else {
            return Ok(0);
        };
        // Bound once (by its first message, if not before), then only its address is
        // compared.
        let mut bound = endpoint.dest().is_some();
        let mut taken = 0;
        // Bounded like `recv`: a ring's worth of skipped entries at most between messages.
        let mut skips = 0;
        while taken < max && skips <= self.layout.config().queue_size {
            let (id, buf, header) = match self.next_valid_rx::<true>()? {
                RxStep::Valid(id, buf, header) => (id, buf, header),
                RxStep::Skipped => {
                    skips += 1;
                    continue;
                }
                RxStep::Empty => break,
            };
            if header.dst != ept {
                self.role.unget_passing(id);
                self.stats.rx_messages -= 1;
                break;
            }
            if !bound {
                bound = self.endpoints.learn(ept, header.src);
            }
            let rx = RxBuffer::new(self.region, id, buf, self.epoch, header);
            let more = take(&rx);
            taken += 1;
            if !self.session_current() {
                break;
            }
            let release = self.role.release_passing(id, buf);
            self.after_release(release)?;
            if !more {
                break;
            }
        }
        Ok(taken)
    }

    /// [`Rpmsg::send_offchannel_nocopy`] for a buffer taken in this session, within the
    /// same call: the header, then the ring.
    #[inline(always)]
    pub(super) fn submit_in_session(
        &mut self,
        src: u32,
        dst: u32,
        buf: TxBuffer<'a>,
        len: usize,
    ) -> Result<()> {
        let (id, at) = buf.location();
        if len > buf.capacity() || src == RPMSG_ADDR_ANY || dst == RPMSG_ADDR_ANY {
            return self.refuse_tx(id, at, len);
        }
        // len <= capacity < 65536 - 16 (MAX_BUF_SIZE), so it fits the u16 field.
        let header = RpmsgHeader::new(src, dst, len as u16);
        write_message_header(&self.region, at.offset, &header)?;
        let notify = self
            .role
            .submit_tx(id, at, (RpmsgHeader::SIZE + len) as u32)?;
        self.stats.tx_messages += 1;
        if notify {
            self.ring_peer();
        }
        Ok(())
    }

    /// Takes back a transmit buffer that cannot be sent (`len` too large, or an endpoint
    /// not bound) and says why.
    #[cold]
    #[inline(never)]
    fn refuse_tx(&mut self, id: u16, at: BufferRef, len: usize) -> Result<()> {
        self.role.cancel_tx(id, at)?;
        Err(if len > at.len as usize - RpmsgHeader::SIZE {
            Error::PayloadTooLarge
        } else {
            Error::EndpointNotBound
        })
    }
}
