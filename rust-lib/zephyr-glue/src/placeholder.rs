//! PLACEHOLDER until `rpmsg-engine` is wired in: a doorbell ping/pong through a
//! small mailbox in the unused part of the shared control area. It proves the
//! pipeline (mapping, ids, doorbell both ways) from Rust; delete it afterwards.
//!
//! Mailbox at shm offset 0x300, little-endian u32 words:
//! 0 remote magic, 1 remote id, 2 host magic, 3 host id, 4 ping, 5 pong.
//! Peer ids are read from the mailbox (never "own id ± 1").

use crate::ivshmem::Ivshmem;
use crate::time;
use core::sync::atomic::{fence, Ordering};

const MBOX: usize = 0x300;
const MAGIC: u32 = 0x5250_4d47; // "RPMG"
const REMOTE_MAGIC: usize = 0;
const REMOTE_ID: usize = 1;
const HOST_MAGIC: usize = 2;
const HOST_ID: usize = 3;
const PING: usize = 4;
const PONG: usize = 5;

fn word(shm: &Ivshmem, i: usize) -> *mut u32 {
    assert!(MBOX + 4 * (i + 1) <= shm.size());
    // SAFETY: in bounds (checked above) and 4-byte aligned (base is page aligned).
    unsafe { shm.base().add(MBOX + 4 * i).cast::<u32>() }
}

fn rd(shm: &Ivshmem, i: usize) -> u32 {
    fence(Ordering::SeqCst);
    // SAFETY: see `word`; the other guest writes concurrently, hence volatile.
    u32::from_le(unsafe { word(shm, i).read_volatile() })
}

fn wr(shm: &Ivshmem, i: usize, v: u32) {
    // SAFETY: see `word`.
    unsafe { word(shm, i).write_volatile(v.to_le()) };
    fence(Ordering::SeqCst);
}

/// Remote side: announce own id, then answer every ping with a pong + doorbell
/// to the host id found in the mailbox. Never returns.
pub fn remote_pong_loop(shm: &Ivshmem) -> ! {
    if let Err(e) = shm.enable_doorbell(0) {
        log::error!("enable doorbell: {}", e);
    }
    wr(shm, REMOTE_ID, shm.id());
    wr(shm, REMOTE_MAGIC, MAGIC);
    log::info!("placeholder: remote id {} announced", shm.id());
    loop {
        match shm.wait_doorbell(None) {
            Ok(Some(mask)) => {
                let ping = rd(shm, PING);
                let host = rd(shm, HOST_ID);
                if rd(shm, HOST_MAGIC) != MAGIC {
                    log::warn!("doorbell (mask {:#x}) but no host in the mailbox", mask);
                    continue;
                }
                crate::console_println!(
                    "remote: doorbell (vectors {:#x}) from host id {}: ping {:#010x}, ringing back",
                    mask, host, ping
                );
                wr(shm, PONG, ping);
                if let Err(e) = shm.notify(host, 0) {
                    log::error!("notify host {}: {}", host, e);
                }
            }
            Ok(None) => {}
            Err(e) => {
                log::error!("wait doorbell: {}", e);
                time::sleep_ms(100);
            }
        }
    }
}

/// Host side: announce own id, wait (up to `timeout_ms`) for a remote in the
/// mailbox, ping it and wait for its doorbell with the same value.
/// Returns the remote's id on success.
pub fn host_ping(shm: &Ivshmem, timeout_ms: u64) -> Option<u32> {
    if let Err(e) = shm.enable_doorbell(0) {
        log::error!("enable doorbell: {}", e);
    }
    wr(shm, HOST_ID, shm.id());
    wr(shm, HOST_MAGIC, MAGIC);
    let start = time::uptime_ms();
    let mut seq: u32 = (start as u32).wrapping_mul(2654435761) | 1;
    while time::uptime_ms().wrapping_sub(start) < timeout_ms {
        if rd(shm, REMOTE_MAGIC) != MAGIC {
            time::sleep_ms(100);
            continue;
        }
        let peer = rd(shm, REMOTE_ID);
        seq = seq.wrapping_add(2);
        wr(shm, PING, seq);
        if let Err(e) = shm.notify(peer, 0) {
            log::error!("notify remote {}: {}", peer, e);
        }
        // A stale mailbox (old remote id) gets no answer: retry with a fresh read.
        if let Ok(Some(mask)) = shm.wait_doorbell(Some(500)) {
            let pong = rd(shm, PONG);
            if pong == seq {
                crate::console_println!(
                    "host: remote id {} answered ping {:#010x} with a doorbell (vectors {:#x})",
                    peer, seq, mask
                );
                return Some(peer);
            }
        }
    }
    None
}
