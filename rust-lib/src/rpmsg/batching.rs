//! Batching: polling instead of doorbells while a thread is awake anyway, and one doorbell
//! check per batch of sends and releases.

use super::{Role, Rpmsg};
use crate::error::Result;
use crate::platform::Doorbell;

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
    pub(super) fn take(&mut self, keep_on: bool) -> (bool, bool) {
        let held = (self.tx, self.rx);
        *self = Self {
            on: self.on && keep_on,
            started: self.started && keep_on,
            ..Self::default()
        };
        held
    }
}

/// Which doorbells a node asks its peer for, per direction (the standard virtio
/// suppression flags on its two rings), and why. The roles differ only in which flag they
/// write (the driver's avail flags, the device's used flags): `suppress(rx, on)` writes it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Wakeups {
    /// See [`Role::set_polling`].
    pub(super) polling: bool,
    /// The peer rings us for messages (our receive ring's flag clear).
    rx: bool,
    /// The peer rings us for transmit buffers (only while we have none).
    tx: bool,
    /// The last `acquire_tx` found no buffer.
    pub(super) tx_starved: bool,
}

/// Writes the suppression flag of the receive (`true`) or transmit ring: suppressed or not.
type Suppress<'r> = &'r dyn Fn(bool, bool) -> Result<()>;

impl Wakeups {
    /// Both flags clear (the rings' state after a reset), not polling.
    pub(super) const fn new() -> Self {
        Self {
            polling: false,
            rx: true,
            tx: true,
            tx_starved: false,
        }
    }

    /// A new session: no doorbells for transmit buffers (they are taken when sending, and
    /// asked for only while there are none); for messages unless polling. Both flags are
    /// written: one set in the previous session may have landed after the rings were reset.
    pub(super) fn start_session(&mut self, suppress: Suppress<'_>) -> Result<()> {
        suppress(false, true)?;
        self.tx = false;
        self.tx_starved = false;
        suppress(true, self.polling)?;
        self.rx = !self.polling;
        Ok(())
    }

    /// Whether we ask the peer for doorbells for transmit buffers.
    pub(super) const fn asks_for_tx(&self) -> bool {
        self.tx
    }

    /// Asks for doorbells for transmit buffers (`on`: we have none) or stops asking.
    pub(super) fn want_tx(&mut self, on: bool, suppress: Suppress<'_>) -> Result<()> {
        if self.tx != on {
            suppress(false, !on)?;
            self.tx = on;
        }
        Ok(())
    }

    /// [`Role::set_polling`]: records `polling`; with `write`, writes the flags that change.
    pub(super) fn set_polling(
        &mut self,
        polling: bool,
        write: bool,
        suppress: Suppress<'_>,
    ) -> Result<()> {
        self.polling = polling;
        if !write {
            return Ok(());
        }
        if self.rx == polling {
            suppress(true, polling)?;
            self.rx = !polling;
        }
        self.want_tx(!polling && self.tx_starved, suppress)
    }
}

/// A submit or release: the doorbell check now, or held back while deferring.
#[inline]
pub(super) fn check_or_hold<'a, R: Role<'a>>(t: &mut R, tx: bool, limit: u16) -> Result<bool> {
    if t.deferral().hold(tx, limit) {
        return Ok(false);
    }
    let (held_tx, held_rx) = t.deferral().take(true);
    t.wants_doorbell(held_tx || tx, held_rx || !tx)
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
impl<'a, R: Role<'a>, D: Doorbell> Rpmsg<'a, R, D> {
    /// Tells the peer not to ring us: neither for messages nor for transmit buffers coming
    /// back, because we look at the rings ourselves ([`Rpmsg::has_pending`]) until
    /// [`Rpmsg::prepare_to_wait`]. Writes a ring flag only when it changes.
    pub fn busy_poll(&mut self) -> Result<()> {
        // (A remote writes its flags only into the session it is attached to; a write that
        // races with a host restart is overwritten when it attaches to the new one.)
        let write = self.may_receive() && self.session_current();
        self.role.set_polling(true, write)
    }

    /// Before blocking on the doorbell: asks the peer to ring us again for messages (and,
    /// if the last send found no buffer, for returned buffers), then looks once more, after
    /// a full barrier, so that nothing published before the flags were visible is missed.
    /// Returns true if something is pending: handle it instead of blocking.
    pub fn prepare_to_wait(&mut self) -> Result<bool> {
        let write = self.may_receive() && self.session_current();
        self.role.set_polling(false, write)?;
        crate::shm::full_barrier();
        Ok(self.has_pending())
    }

    /// Whether the peer published something we wait for — a message, or (if the last send
    /// found none) a transmit buffer — since we last took one: one or two shared-memory
    /// loads, no validation and no side effects, for spinning. `recv` and the send calls
    /// do the real work (and validate).
    pub fn has_pending(&self) -> bool {
        self.may_receive() && self.role.peer_moved()
    }
}

/// Batching: while a node has several messages to send or buffers to return, it need not
/// ask after each one whether the peer wants a doorbell (a full barrier and a load of a
/// line the peer writes): it asks once, at the end.
impl<'a, R: Role<'a>, D: Doorbell> Rpmsg<'a, R, D> {
    /// From now until [`Rpmsg::flush_doorbell`], sends and releases publish at once (the
    /// peer sees them as soon as it looks) but do not ring the peer; the flush rings it once
    /// if it wants to hear about any of them. Every `queue_size` held-back operations the
    /// check is made anyway, so a peer that waits is never left waiting for longer than
    /// a ring's worth of messages. Call the flush before blocking, or the peer may wait for
    /// messages it could already take.
    pub fn defer_doorbells(&mut self) {
        self.role.deferral().on = true;
    }

    /// Stops deferring, and rings the peer once if it wants to hear about what was sent or
    /// returned while deferring.
    pub fn flush_doorbell(&mut self) -> Result<()> {
        let (tx, rx) = self.role.deferral().take(false);
        if (tx || rx) && self.role.wants_doorbell(tx, rx)? {
            self.ring_peer();
        }
        Ok(())
    }
}
