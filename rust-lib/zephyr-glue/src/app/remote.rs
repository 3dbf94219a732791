//! The remote image: `rpmsg-app`'s remote (endpoints `"k"` and `"bench"`, echo, banner)
//! over the IVSHMEM device.
//!
//! One thread owns the node and keeps the link alive (heartbeats, `super::keep_alive`).
//! Linked with a host of ours it sleeps on the doorbell until its next heartbeat (the host
//! rings for every message, and a host that restarted is seen at the next heartbeat);
//! otherwise it looks every [`RX_POLL_MS`] (a host that initialises the region rings
//! nobody) — or every [`SILENT_PEER_POLL_MS`] while messages come from a host that
//! publishes no id. After traffic it keeps looking at the rings for up to
//! [`spin_cycles`] before it blocks, and the host does not ring it meanwhile.

use super::{
    ms_left, spin_cycles, Console, BOARD, MAX_PAYLOAD, RX_POLL_MS, SILENT_PEER_POLL_MS,
    SILENT_PEER_WINDOW_US,
};
use crate::engine::IvshmemDoorbell;
use crate::ivshmem::Ivshmem;
use crate::logger::{error, info};
use crate::time::{self, cycles};
use crate::{thread, FixedBuf};
use core::cell::UnsafeCell;
use rpmsg_app::remote::{self as app, Received, RemoteApp};
use rpmsg_app::{ErrorOnce, Port};
use rpmsg_engine::{Remote, Side};

type App = RemoteApp<'static, IvshmemDoorbell>;

/// Entry of the remote image (`rust_main`): starts the receive thread.
pub fn main() {
    thread::start_rx_thread();
}

/// The node, owned by the receive thread, and how it waits.
struct NodePort {
    app: App,
    shm: Ivshmem,
    /// The second id to ring while the host publishes none ([`super::Opened::also`]).
    also: Option<u16>,
    /// The host's heartbeat stopped while [`Port::wait`] waited (logged by `serve`).
    host_gone: bool,
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
        // Our heartbeat goes on while we wait for the host (up to the reply timeout).
        self.host_gone |= super::keep_alive(&mut self.app.node).gone;
        let _ = self.app.node.flush_doorbell();
        if self.app.node.prepare_to_wait().unwrap_or(true) {
            return;
        }
        self.sleep(ms_left(deadline).min(RX_POLL_MS));
    }
}

impl NodePort {
    /// Sleeps on the doorbell (every enabled vector) for up to `ms`. A doorbell on
    /// `BARE_DOORBELL_VECTOR` (the host's `rpmsg_ivshmem doorbell`, with
    /// CONFIG_RPMSG_IVSHMEM_BENCH) is rung back at once, before anything else.
    fn sleep(&mut self, ms: u32) {
        let rang = self.shm.wait_doorbell(Some(ms));
        #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
        if let (Ok(Some(mask)), Some(host)) = (rang, self.app.node.published_peer_id()) {
            if mask & (1 << super::BARE_DOORBELL_VECTOR) != 0 {
                let _ = self
                    .shm
                    .notify(u32::from(host), super::BARE_DOORBELL_VECTOR);
            }
        }
        #[cfg(not(CONFIG_RPMSG_IVSHMEM_BENCH))]
        let _ = rang;
    }
}

/// What the receive thread keeps in a static, not on its stack: the console line and the
/// node with its port (the node is 4 KiB, the transport's table of spare buffers; built
/// in `rx_main`'s frame it stayed there, with its moves into `RemoteApp` and the port:
/// 14.6 KB of stack, now 2.8 KB; see docs/firmware.md).
struct RxState {
    line: FixedBuf<640>,
    port: Option<NodePort>,
}
struct RxCell(UnsafeCell<RxState>);
// SAFETY: only the remote's receive thread uses it, through the one reference `rx_main`
// takes once.
unsafe impl Sync for RxCell {}
static RX: RxCell = RxCell(UnsafeCell::new(RxState {
    line: FixedBuf::new(),
    port: None,
}));

/// The receive loop (the entry of the receive thread; see `remote/src/lib.rs`).
pub fn rx_main() {
    // SAFETY: the only reference to RX, taken once by the one receive thread.
    let RxState { line, port } = unsafe { &mut *RX.0.get() };
    let Some(port) = setup(port) else {
        return;
    };
    info!("remote: endpoint \"k\", waiting for the host");
    serve(port, Console { line, shell: None });
}

/// Opens the device and builds the node and its port in `slot`. Not inlined: the engine's
/// result, the one copy of the node on the stack, stays off the receive loop's frame.
#[inline(never)]
fn setup(slot: &mut Option<NodePort>) -> Option<&mut NodePort> {
    let opened = super::open("remote", Side::Remote)?;
    let doorbell = opened.doorbell();
    let node = match Remote::new_remote(opened.region, opened.config, Some(opened.id), doorbell) {
        Ok(n) => n,
        Err(e) => {
            error!("remote: engine: ", e);
            return None;
        }
    };
    // Built in `slot`, endpoints made in place: the node is not moved through this frame
    // again (`RemoteApp::new` returns it by value).
    let port = slot.insert(NodePort {
        app: RemoteApp::unstarted(node),
        shm: opened.shm,
        also: opened.also,
        host_gone: false,
    });
    debug_assert_eq!(port.app.node.max_payload(), MAX_PAYLOAD);
    // The host's bare doorbell ping-pong (`NodePort::sleep` answers it).
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    if let Err(e) = port.shm.enable_doorbell(super::BARE_DOORBELL_VECTOR) {
        error!("remote: cannot enable doorbell vector 1: ", e);
    }
    // "k" alone; "bench" comes when a host of ours attaches (see `attached`).
    if let Err(e) = port.app.create_endpoints(false) {
        error!("remote: cannot create the endpoints: ", e);
        return None;
    }
    Some(port)
}

/// The remote attached to a new host session: rings the host as its id says, and offers
/// the silent echo endpoint "bench" (for `rpmsg_ivshmem bench`, with
/// CONFIG_RPMSG_IVSHMEM_BENCH) only to a host that publishes its id (ours). A C OpenAMP
/// host sends to whichever endpoint was announced last before its `main` ran and never
/// rebinds by name, so it must see "k" alone.
#[inline(never)]
fn attached(port: &mut NodePort) {
    let node = &mut port.app.node;
    super::ring_also_while_silent(node, port.also);
    // The engine rang the host as it attached, maybe before the second id was set.
    node.doorbell().ring_also();
    let bench = cfg!(CONFIG_RPMSG_IVSHMEM_BENCH);
    if bench && node.published_peer_id().is_some() && port.app.bench.is_none() {
        match node.create_endpoint(rpmsg_app::BENCH_ENDPOINT, None, None) {
            Ok(addr) => port.app.bench = Some(addr),
            Err(e) => error!("remote: cannot create endpoint \"bench\": ", e),
        }
    }
}

/// `super::keep_alive`, logging a host whose heartbeat stopped; how long the thread may
/// sleep. `due` becomes the time (cycles) when it is due again.
fn keep_alive(port: &mut NodePort, out: &mut Console<'_>, due: &mut u64) -> u32 {
    let live = super::keep_alive(&mut port.app.node);
    if core::mem::take(&mut port.host_gone) | live.gone {
        super::log_silent_peer(out, false);
    }
    *due = cycles().saturating_add(time::us_to_cycles(u64::from(live.sleep_ms) * 1000));
    live.sleep_ms
}

/// Looks at the rings until `until` (cycles), the host told not to ring meanwhile; true
/// if something came.
fn more_within(port: &mut NodePort, until: u64) -> bool {
    if cycles() >= until {
        return false;
    }
    let _ = port.app.node.busy_poll();
    while cycles() < until {
        if port.app.node.has_pending() {
            return true;
        }
    }
    false
}

/// Receives, echoes and greets, forever.
fn serve(port: &mut NodePort, mut out: Console<'_>) {
    let spin = spin_cycles();
    let mut errors = ErrorOnce::new();
    let mut last_traffic: Option<u64> = None;
    let mut last_message = 0u64;
    let mut seen_session: Option<u32> = None;
    let silent_window = time::us_to_cycles(SILENT_PEER_WINDOW_US);
    let mut live_due = 0u64;
    loop {
        // Liveness, also between the batches of a long exchange, when due (or to log a
        // host that went silent while we waited for it): not between a doorbell and its
        // echo.
        if cycles() >= live_due || port.host_gone {
            keep_alive(port, &mut out, &mut live_due);
        }
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
            // The heartbeats of the new session start now.
            live_due = 0;
        }
        super::remote_status::publish(&port.app);
        // After traffic, look at the rings for a while: the host need not ring us.
        if let Some(t) = last_traffic.take() {
            if more_within(port, t.saturating_add(spin)) {
                last_traffic = Some(t);
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
        let ms = if silent {
            SILENT_PEER_POLL_MS
        } else if cycles() >= live_due {
            keep_alive(port, &mut out, &mut live_due)
        } else {
            ms_left(live_due)
        };
        port.sleep(ms);
    }
}
