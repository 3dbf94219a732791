//! The remote image: `rpmsg-app`'s remote (endpoints `"k"` and `"bench"`, echo, banner)
//! over the IVSHMEM device.
//!
//! One thread owns the node: it waits for doorbells with a [`RX_POLL_MS`] timeout (so a
//! host that (re)initialised the region is noticed even without a doorbell). After
//! traffic it keeps looking at the rings for up to [`spin_cycles`] before it blocks, and
//! the host does not ring it meanwhile.

use super::{
    ms_left, spin_cycles, Console, BOARD, MAX_PAYLOAD, RX_POLL_MS, SILENT_PEER_POLL_MS,
    SILENT_PEER_WINDOW_US,
};
use crate::engine::IvshmemDoorbell;
use crate::ivshmem::Ivshmem;
use crate::time::{self, cycles};
use crate::{logger, thread, FixedBuf};
use core::cell::UnsafeCell;
use rpmsg_app::remote::{self as app, Received, RemoteApp};
use rpmsg_app::{ErrorOnce, Port};
use rpmsg_engine::{Remote, Side};

type App = RemoteApp<'static, IvshmemDoorbell>;

/// Entry of the remote image (`rust_main`): starts the receive thread.
pub fn main() {
    logger::init(log::LevelFilter::Info);
    thread::start_rx_thread();
}

/// The node, owned by the receive thread, and how it waits.
struct NodePort {
    app: App,
    shm: Ivshmem,
    /// The second id to ring while the host publishes none ([`super::Opened::also`]).
    also: Option<u16>,
}

impl Port<App> for NodePort {
    fn with<R>(&mut self, f: impl FnOnce(&mut App) -> R) -> Option<R> {
        Some(f(&mut self.app))
    }

    fn now(&self) -> u64 {
        cycles()
    }

    fn ticks_per_sec(&self) -> u64 {
        u64::from(time::cycles_per_sec())
    }

    /// Waits for a doorbell (a transmit buffer coming back, with doorbells asked for).
    fn wait(&mut self, deadline: u64) {
        let _ = self.app.node.flush_doorbell();
        if self.app.node.prepare_to_wait().unwrap_or(true) {
            return;
        }
        let _ = self
            .shm
            .wait_doorbell(Some(ms_left(deadline).min(RX_POLL_MS)));
    }
}

/// The console line: static, so the receive thread's stack (which holds the 4 KiB node)
/// does not need room for it.
struct Line(UnsafeCell<FixedBuf<640>>);
// SAFETY: only the remote's receive thread uses it, through the one reference `rx_main`
// takes once.
unsafe impl Sync for Line {}
static LINE: Line = Line(UnsafeCell::new(FixedBuf::new()));

/// The receive loop (the entry of the receive thread; see `remote/src/lib.rs`).
pub fn rx_main() {
    // The node (4 KiB: the transport's table of spare buffers) lives in this frame for
    // good; building it here, not in a helper, avoids copying it on the stack.
    let Some(opened) = super::open("remote", Side::Remote) else {
        return;
    };
    let shm = opened.shm;
    let also = opened.also;
    let doorbell = opened.doorbell();
    let node = match Remote::new_remote(opened.region, opened.config, Some(opened.id), doorbell) {
        Ok(n) => n,
        Err(e) => {
            log::error!("remote: engine: {}", e);
            return;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    // "bench" comes when a host of ours attaches (see `attached`).
    let app = match RemoteApp::new(node, false) {
        Ok(a) => a,
        Err(e) => {
            log::error!("remote: cannot create the endpoints: {}", e);
            return;
        }
    };
    log::info!("remote: endpoint \"k\", waiting for the host");
    // SAFETY: the only reference to LINE, taken once by the one receive thread.
    let line = unsafe { &mut *LINE.0.get() };
    let out = Console { line, shell: None };
    serve(&mut NodePort { app, shm, also }, out);
}

/// The remote attached to a new host session: rings the host as its id says, and offers
/// the silent echo endpoint "bench" (for `rpmsg_ivshmem bench`) only to a host that
/// publishes its id (ours). A C OpenAMP host sends to whichever endpoint was announced
/// last before its `main` ran and never rebinds by name, so it must see "k" alone.
#[inline(never)]
fn attached(port: &mut NodePort) {
    let node = &mut port.app.node;
    super::ring_also_while_silent(node, port.also);
    // The engine rang the host as it attached, maybe before the second id was set.
    node.doorbell().ring_also();
    if node.published_peer_id().is_some() && port.app.bench.is_none() {
        match node.create_endpoint(rpmsg_app::BENCH_ENDPOINT, None, None) {
            Ok(addr) => port.app.bench = Some(addr),
            Err(e) => log::error!("remote: cannot create endpoint \"bench\": {}", e),
        }
    }
}

/// Receives, echoes and greets, forever.
fn serve(port: &mut NodePort, mut out: Console<'_, 640>) {
    let spin = spin_cycles();
    let mut errors = ErrorOnce::new();
    let mut last_traffic: Option<u64> = None;
    let mut last_message = 0u64;
    let mut seen_session: Option<u32> = None;
    let silent_window = time::us_to_cycles(SILENT_PEER_WINDOW_US);
    loop {
        // Everything pending; doorbells to the host are checked once at the end.
        port.app.node.defer_doorbells();
        loop {
            match app::receive(port, &mut out, BOARD, &mut errors) {
                Received::Handled => {
                    last_message = cycles();
                    last_traffic = Some(last_message);
                }
                Received::Other(rx) => {
                    let _ = port.app.node.release_rx(rx);
                }
                Received::Idle | Received::Failed(_) => break,
            }
        }
        let _ = port.app.node.flush_doorbell();
        if app::greet(port, &mut out, BOARD) {
            errors.clear();
        }
        // Greeted in `greet` or, when a message came first, in `receive`.
        if port.app.greeted != seen_session {
            seen_session = port.app.greeted;
            attached(port);
        }
        super::remote_status::publish(&port.app);
        // After traffic, look at the rings for a while: the host need not ring us.
        if let Some(t) = last_traffic.take() {
            let until = t.saturating_add(spin);
            if cycles() < until {
                let _ = port.app.node.busy_poll();
                while cycles() < until {
                    if port.app.node.has_pending() {
                        last_traffic = Some(t);
                        break;
                    }
                }
            }
            if last_traffic.is_some() {
                continue;
            }
        }
        // Doorbells again; block unless something came meanwhile.
        if port.app.node.prepare_to_wait().unwrap_or(false) {
            continue;
        }
        // A host that publishes no id may ring nobody: while its messages come, look often.
        let silent = port.app.node.published_peer_id().is_none()
            && cycles().saturating_sub(last_message) < silent_window;
        let ms = if silent { SILENT_PEER_POLL_MS } else { RX_POLL_MS };
        let _ = port.shm.wait_doorbell(Some(ms));
    }
}
