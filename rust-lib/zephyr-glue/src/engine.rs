//! `rpmsg-engine`'s platform trait for Zephyr (feature `engine`): [`IvshmemDoorbell`],
//! `Doorbell::ring(peer)` = ivshmem doorbell, vector 0. Waiting is the applications'
//! (`app`): the receive thread sleeps on this image's doorbell, a shell command on
//! [`crate::time::event`].

use crate::ivshmem::Ivshmem;
use rpmsg_engine::Doorbell;

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

    /// The device it rings through (also the one whose doorbells this image waits on).
    pub fn device(&self) -> Ivshmem {
        self.shm
    }

    /// Rings the second id alone, if one is set.
    pub fn ring_also(&self) {
        if let Some(also) = self.also {
            self.notify(also);
        }
    }

    fn notify(&self, peer_id: u16) {
        if let Err(e) = self.shm.notify(u32::from(peer_id), 0) {
            crate::logger::warning!("doorbell to peer ", peer_id, ": ", e);
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
