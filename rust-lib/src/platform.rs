//! The platform boundary: how to ring the peer and how to tell time.
//!
//! Zephyr implements [`Doorbell`] with `ivshmem_int_peer` and [`Clock`] with `k_uptime` and
//! a `k_poll` on the doorbell signal; Linux with eventfds and `poll(2)`; tests with an
//! in-process fake.

/// Rings the peer's doorbell (interrupt vector 0 of the peer's ivshmem device).
pub trait Doorbell {
    /// Notify the peer whose ivshmem id is `peer_id` that a ring changed.
    ///
    /// Called with no engine lock held by the engine itself; it must not block for long.
    fn ring(&mut self, peer_id: u16);
}

/// A monotonic clock and a way to wait for the peer.
pub trait Clock {
    /// Monotonic time in microseconds.
    fn now_us(&self) -> u64;

    /// Blocks until the peer rang our doorbell or `deadline_us` passed, whichever comes
    /// first. May return early (spurious wake-ups are fine: the caller re-checks).
    fn wait_until(&mut self, deadline_us: u64);
}

/// A doorbell that does nothing: for peers that poll.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDoorbell;

impl Doorbell for NoDoorbell {
    fn ring(&mut self, _peer_id: u16) {}
}

impl<D: Doorbell + ?Sized> Doorbell for &mut D {
    fn ring(&mut self, peer_id: u16) {
        (**self).ring(peer_id)
    }
}
