//! `rpmsg-engine` platform traits for Zephyr (feature `engine`).
//!
//! - [`IvshmemDoorbell`]: `Doorbell::ring(peer)` = ivshmem doorbell, vector 0.
//! - [`DoorbellClock`]: time from the kernel; `wait_until` sleeps on this image's
//!   doorbell. For the one thread that waits for doorbells (the receive thread).
//! - [`EventClock`]: same time; `wait_until` sleeps on [`crate::time::event`], for
//!   other threads (a shell command waiting for a reply), which the receive thread
//!   wakes after it processed incoming messages.

use crate::ivshmem::Ivshmem;
use crate::time;
use rpmsg_engine::{Clock, Doorbell};

/// Rings vector 0 of the peer's ivshmem device (and of a second id, see
/// [`IvshmemDoorbell::set_also`]).
pub struct IvshmemDoorbell {
    shm: Ivshmem,
    also: Option<u16>,
}

impl IvshmemDoorbell {
    /// Doorbell through `shm` (vector 0 must exist on the peer).
    pub fn new(shm: Ivshmem) -> Self {
        Self { shm, also: None }
    }

    /// Rings `also` too with every doorbell, or stops that (`None`): for a peer that
    /// publishes no id and may sit on either side of ours ([`rpmsg_engine::PeerIdRule::also`]).
    pub fn set_also(&mut self, also: Option<u16>) {
        self.also = also;
    }

    /// Rings the second id alone, if one is set.
    pub fn ring_also(&self) {
        if let Some(also) = self.also {
            self.notify(also);
        }
    }

    fn notify(&self, peer_id: u16) {
        if let Err(e) = self.shm.notify(u32::from(peer_id), 0) {
            log::warn!("doorbell to peer {}: {}", peer_id, e);
        }
    }
}

impl Doorbell for IvshmemDoorbell {
    fn ring(&mut self, peer_id: u16) {
        self.notify(peer_id);
        if let Some(also) = self.also.filter(|&a| a != peer_id) {
            self.notify(also);
        }
    }
}

fn ms_until(deadline_us: u64) -> Option<u32> {
    let now = time::uptime_us();
    if deadline_us <= now {
        return None;
    }
    // Round up so we do not spin on sub-millisecond remainders.
    let ms = (deadline_us - now).div_ceil(1000);
    Some(ms.min(u64::from(u32::MAX)) as u32)
}

/// Kernel clock; waits on this image's doorbell (enable vector 0 first).
pub struct DoorbellClock {
    shm: Ivshmem,
}

impl DoorbellClock {
    /// Clock that waits for doorbells on `shm`.
    pub fn new(shm: Ivshmem) -> Self {
        Self { shm }
    }
}

impl Clock for DoorbellClock {
    fn now_us(&self) -> u64 {
        time::uptime_us()
    }

    fn wait_until(&mut self, deadline_us: u64) {
        if let Some(ms) = ms_until(deadline_us) {
            if self.shm.wait_doorbell(Some(ms)).is_err() {
                // No vector enabled or a driver error: do not spin.
                time::sleep_ms(ms.min(10));
            }
        }
    }
}

/// Kernel clock; waits on [`crate::time::event`].
#[derive(Default)]
pub struct EventClock;

impl Clock for EventClock {
    fn now_us(&self) -> u64 {
        time::uptime_us()
    }

    fn wait_until(&mut self, deadline_us: u64) {
        if let Some(ms) = ms_until(deadline_us) {
            let _ = time::event::wait(Some(ms));
        }
    }
}
