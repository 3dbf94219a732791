//! `rpmsg-engine`'s platform trait for Zephyr (feature `engine`): [`IvshmemDoorbell`],
//! `Doorbell::ring(peer)` = ivshmem doorbell, vector 0. Waiting is the applications'
//! (`app`): the receive thread sleeps on this image's doorbell, a shell command on
//! [`crate::time::event`].

use crate::ivshmem::Ivshmem;
use rpmsg_engine::Doorbell;

/// Rings vector 0 of the peer's ivshmem device.
pub struct IvshmemDoorbell {
    shm: Ivshmem,
}

impl IvshmemDoorbell {
    /// Doorbell through `shm` (vector 0 must exist on the peer).
    pub fn new(shm: Ivshmem) -> Self {
        Self { shm }
    }
}

impl Doorbell for IvshmemDoorbell {
    fn ring(&mut self, peer_id: u16) {
        if let Err(e) = self.shm.notify(u32::from(peer_id), 0) {
            log::warn!("doorbell to peer {}: {}", peer_id, e);
        }
    }
}
