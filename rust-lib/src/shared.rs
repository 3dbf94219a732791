//! Sharing one node between threads (or a thread and an interrupt handler) with
//! `critical-section`.
//!
//! A node is driven by `&mut self`. Where a doorbell thread receives while a shell thread
//! sends, put the node in a [`SharedNode`] (usable as a `static`): each call runs inside a
//! short critical section, and waiting always happens outside it
//! ([`SharedNode::send_timeout`]).

use core::cell::RefCell;

use critical_section::Mutex;

use crate::error::{Error, Result};
use crate::platform::{Clock, Doorbell};
use crate::rpmsg::{LinkProtocol, Rpmsg, Transport};

/// A node behind a critical-section mutex; empty until [`SharedNode::install`].
#[derive(Debug)]
pub struct SharedNode<N> {
    inner: Mutex<RefCell<Option<N>>>,
}

impl<N> Default for SharedNode<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N> SharedNode<N> {
    /// An empty slot (const, so it can be a `static`).
    pub const fn new() -> Self {
        Self {
            inner: Mutex::new(RefCell::new(None)),
        }
    }

    /// Puts `node` in the slot, returning the previous one.
    pub fn install(&self, node: N) -> Option<N> {
        critical_section::with(|cs| self.inner.borrow_ref_mut(cs).replace(node))
    }

    /// Takes the node out of the slot.
    pub fn take(&self) -> Option<N> {
        critical_section::with(|cs| self.inner.borrow_ref_mut(cs).take())
    }

    /// Runs `f` on the node inside a critical section; `None` when the slot is empty.
    /// Keep `f` short: interrupts may be masked while it runs. A nested call on the same
    /// slot from inside `f` also returns `None` instead of deadlocking.
    pub fn with<R>(&self, f: impl FnOnce(&mut N) -> R) -> Option<R> {
        critical_section::with(|cs| {
            let cell = self.inner.borrow(cs);
            let mut guard = cell.try_borrow_mut().ok()?;
            guard.as_mut().map(f)
        })
    }
}

impl<'a, T, D> SharedNode<Rpmsg<'a, T, D>>
where
    T: Transport<'a>,
    D: Doorbell,
    Rpmsg<'a, T, D>: LinkProtocol,
{
    /// Sends `data` from `ept`, waiting (outside the critical section) up to `timeout_us`
    /// for a transmit buffer and for the link to come up. It waits in slices of at most
    /// [`crate::rpmsg::WAIT_SLICE_US`], so it makes progress even when `clock` is not woken
    /// by the doorbell (another thread consumes it).
    pub fn send_timeout(
        &self,
        ept: u32,
        data: &[u8],
        clock: &mut impl Clock,
        timeout_us: u64,
    ) -> Result<()> {
        let deadline = clock.now_us().saturating_add(timeout_us);
        loop {
            match self.with(|node| {
                let _ = node.poll();
                node.try_send(ept, data)
            }) {
                None => return Err(Error::NotReady),
                Some(Err(Error::NoTxBuffer | Error::NotReady)) => {}
                Some(other) => return other,
            }
            if clock.now_us() >= deadline {
                return Err(Error::Timeout);
            }
            let now = clock.now_us();
            clock.wait_until(deadline.min(now.saturating_add(crate::rpmsg::WAIT_SLICE_US)));
        }
    }
}
