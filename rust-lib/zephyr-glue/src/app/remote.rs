//! The remote image: `rpmsg-app`'s remote (endpoints `"k"` and `"bench"`, echo, banner)
//! over the IVSHMEM device.
//!
//! One thread owns the node: it waits for doorbells with a [`RX_POLL_MS`] timeout (so a
//! host that (re)initialised the region is noticed even without a doorbell). After
//! traffic it keeps looking at the rings for up to [`spin_cycles`] before it blocks, and
//! the host does not ring it meanwhile.

use super::{ms_left, spin_cycles, Console, BOARD, MAX_PAYLOAD, RX_POLL_MS};
use crate::engine::IvshmemDoorbell;
use crate::ivshmem::Ivshmem;
use crate::time::{self, cycles};
use crate::{logger, thread, FixedBuf};
use core::cell::UnsafeCell;
use rpmsg_app::remote::{self as app, Received, RemoteApp};
use rpmsg_app::{ErrorOnce, Port};
use rpmsg_engine::Remote;

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
    let Some(opened) = super::open("remote") else {
        return;
    };
    let shm = opened.shm;
    let doorbell = IvshmemDoorbell::new(shm);
    let node = match Remote::new_remote(opened.region, opened.config, Some(opened.id), doorbell) {
        Ok(n) => n,
        Err(e) => {
            log::error!("remote: engine: {}", e);
            return;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    let app = match RemoteApp::new(node, true) {
        Ok(a) => a,
        Err(e) => {
            log::error!("remote: cannot create the endpoints: {}", e);
            return;
        }
    };
    log::info!("remote: endpoints \"k\" and \"bench\", waiting for the host");
    // SAFETY: the only reference to LINE, taken once by the one receive thread.
    let line = unsafe { &mut *LINE.0.get() };
    let out = Console { line, shell: None };
    serve(&mut NodePort { app, shm }, out);
}

/// Receives, echoes and greets, forever.
fn serve(port: &mut NodePort, mut out: Console<'_, 640>) {
    let spin = spin_cycles();
    let mut errors = ErrorOnce::new();
    let mut last_traffic: Option<u64> = None;
    loop {
        // Everything pending; doorbells to the host are checked once at the end.
        port.app.node.defer_doorbells();
        loop {
            match app::receive(port, &mut out, BOARD, &mut errors) {
                Received::Handled => last_traffic = Some(cycles()),
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
        let _ = port.shm.wait_doorbell(Some(RX_POLL_MS));
    }
}
