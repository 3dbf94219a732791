//! The remote application: the virtio device side. It creates the endpoint `"k"`, prints
//! the banner when it has attached to the host's session (again after each host
//! restart), and prints and echoes every message it receives.
//!
//! One thread owns the node: it waits for doorbells with a [`RX_POLL_MS`] timeout (so
//! a host that (re)initialised the region is noticed even without a doorbell), and
//! echoes with [`rpmsg_engine::Rpmsg::send`], which waits on the doorbell for a buffer.

use super::text;
use super::{ErrorOnce, ECHO_ENDPOINT, MAX_PAYLOAD, RX_POLL_MS};
use crate::engine::{DoorbellClock, IvshmemDoorbell};
use crate::{console, logger, thread, FixedBuf};
use rpmsg_engine::{Event, LinkState, Remote};

/// How long an echo may wait for a transmit buffer.
const ECHO_TIMEOUT_US: u64 = 5_000_000;

/// Entry of the remote image (`rust_main`): starts the receive thread.
pub fn main() {
    logger::init(log::LevelFilter::Info);
    thread::start_rx_thread(rx_main);
}

fn rx_main() {
    let Some(opened) = super::open("remote") else {
        return;
    };
    let shm = opened.shm;
    let mut node = match Remote::new_remote(
        opened.region,
        opened.config,
        Some(opened.id),
        IvshmemDoorbell::new(shm),
    ) {
        Ok(n) => n,
        Err(e) => {
            log::error!("remote: engine: {}", e);
            return;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    let k = match node.create_endpoint(ECHO_ENDPOINT, None, None) {
        Ok(k) => k,
        Err(e) => {
            log::error!(
                "remote: cannot create endpoint \"{}\": {}",
                ECHO_ENDPOINT,
                e
            );
            return;
        }
    };
    log::info!(
        "remote: endpoint \"{}\" at address {}, waiting for the host",
        ECHO_ENDPOINT,
        k
    );

    let mut clock = DoorbellClock::new(shm);
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut line = FixedBuf::<640>::new();
    let mut attached: Option<u32> = None;
    let mut errors = ErrorOnce::new();
    loop {
        match node.recv() {
            Ok(Some(Event::Message(rx))) => {
                let n = rx.read(0, &mut payload).unwrap_or(0);
                let _ = node.release_rx(rx);
                line.clear();
                text::received(&mut line, &payload[..n]);
                console::write_bytes(line.as_bytes());
                // Echo exactly what came (the string and its NUL).
                if let Err(e) = node.send(k, &payload[..n], &mut clock, ECHO_TIMEOUT_US) {
                    errors.report("remote", "echo", e);
                }
                continue;
            }
            Ok(Some(Event::NameServiceCreate { name, addr })) => {
                log::info!(
                    "remote: the host announced endpoint \"{}\" ({}): not used",
                    name,
                    addr
                );
                continue;
            }
            Ok(Some(Event::NameServiceDestroy { .. })) => continue,
            Ok(None) => {}
            Err(e) => errors.report("remote", "receive", e),
        }
        // Attached to a session we have not greeted yet? (A host restart is seen as a
        // new session number, possibly without ever being observed down.)
        let now = (node.link_state() == LinkState::Up).then(|| node.session());
        if now != attached {
            attached = now;
            if let Some(session) = now {
                errors.clear();
                log::info!(
                    "remote: attached to session {} of the host (ivshmem id {})",
                    session,
                    node.peer_id().map_or(-1, i32::from)
                );
                let mut banner = FixedBuf::<128>::new();
                text::banner(&mut banner, "Remote");
                console::write_bytes(banner.as_bytes());
            } else {
                log::info!("remote: the host reset the link, waiting for it");
            }
        }
        let _ = shm.wait_doorbell(Some(RX_POLL_MS));
    }
}
