//! Sharing one node between threads (or a thread and an interrupt handler) with
//! `critical-section`.
//!
//! A node is driven by `&mut self`. Where a doorbell thread receives while a shell thread
//! sends, put the node in a [`SharedNode`] (usable as a `static`): each call runs inside a
//! short critical section, and waiting always happens outside it (see `rpmsg-app`'s
//! `send_blocking`, which the firmware's shell thread uses).

use core::cell::RefCell;

use critical_section::Mutex;

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
