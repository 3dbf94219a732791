//! The remote application: the virtio device side. It creates the endpoints `"k"` and
//! `"bench"`, prints the banner when it has attached to the host's session (again after
//! each host restart), and echoes every message it receives: on `"k"` it then prints it
//! (the reference's text), on `"bench"` it prints nothing.
//!
//! One thread owns the node: it waits for doorbells with a [`RX_POLL_MS`] timeout (so
//! a host that (re)initialised the region is noticed even without a doorbell). After
//! traffic it keeps looking at the rings for up to [`spin_cycles`] before it blocks, and
//! the host does not ring it meanwhile. An echo goes out before its message is printed,
//! so the host goes on while the remote prints.

use super::text;
use super::{
    spin_cycles, ErrorOnce, BENCH_ENDPOINT, ECHO_ENDPOINT, MAX_PAYLOAD, RX_POLL_MS,
    SILENT_PEER_POLL_MS, SILENT_PEER_WINDOW_US,
};
use crate::engine::{DoorbellClock, IvshmemDoorbell};
use crate::time::cycles;
use crate::{console, logger, thread, FixedBuf};
use core::cell::UnsafeCell;
use rpmsg_engine::{Error, Event, LinkState, Remote, Side};

/// How long an echo may wait for a transmit buffer.
const ECHO_TIMEOUT_US: u64 = 5_000_000;

type Node = Remote<'static, IvshmemDoorbell>;

/// Entry of the remote image (`rust_main`): starts the receive thread.
pub fn main() {
    logger::init(log::LevelFilter::Info);
    thread::start_rx_thread(rx_main);
}

/// Echoes `data` from `ept` to whoever it is bound to; waits for a buffer if none is free.
fn echo(node: &mut Node, ept: u32, data: &[u8], clock: &mut DoorbellClock, errors: &mut ErrorOnce) {
    let result = match node.try_send(ept, data) {
        Err(Error::NoTxBuffer) => {
            // Wait with doorbells on: the host rings when it hands buffers back.
            let _ = node.flush_doorbell();
            let _ = node.prepare_to_wait();
            node.send(ept, data, clock, ECHO_TIMEOUT_US)
        }
        other => other,
    };
    if let Err(e) = result {
        errors.report("remote", "echo", e);
    }
}

#[inline(never)]
fn create(node: &mut Node, name: &str) -> Option<u32> {
    match node.create_endpoint(name, None, None) {
        Ok(addr) => {
            log::info!("remote: endpoint \"{}\" at address {}", name, addr);
            Some(addr)
        }
        Err(e) => {
            log::error!("remote: cannot create endpoint \"{}\": {}", name, e);
            None
        }
    }
}

/// The console line of [`print_received`]: static, so the receive thread's stack (which
/// holds the 4 KiB node) does not need room for it.
struct Line(UnsafeCell<FixedBuf<640>>);
// SAFETY: only the remote's receive thread uses it (in `print_received`).
unsafe impl Sync for Line {}
static LINE: Line = Line(UnsafeCell::new(FixedBuf::new()));

/// Prints the block for a received string, in one console write. Only for the receive
/// thread.
#[inline(never)]
fn print_received(payload: &[u8]) {
    // SAFETY: the receive thread is the only caller, and this does not recurse.
    let line = unsafe { &mut *LINE.0.get() };
    line.clear();
    text::received(line, payload);
    console::write_bytes(line.as_bytes());
}

#[inline(never)]
fn print_banner() {
    let mut banner = FixedBuf::<128>::new();
    text::banner(&mut banner, "Remote");
    console::write_bytes(banner.as_bytes());
}

/// The remote attached to a host session: rings the host as its id says, offers the
/// silent echo endpoint "bench" (for `rpmsg_ivshmem bench`) only to a host that publishes
/// its id (ours), logs and prints the banner. A C OpenAMP host sends to whichever endpoint
/// was announced last before its `main` ran and never rebinds it by name, so it must see
/// "k" alone.
#[inline(never)]
fn attached_to(node: &mut Node, session: u32, also: Option<u16>, bench: &mut Option<u32>) {
    let published = node.published_peer_id();
    // A C host publishes no id: ring the rule's second id too (see `open`). The engine
    // rang the host as it attached; the second id may not have been set then (after a
    // host that published one), so ring it now as well.
    let bell = node.doorbell();
    bell.set_also(if published.is_some() { None } else { also });
    bell.ring_also();
    if published.is_some() {
        if bench.is_none() {
            // The silent echo endpoint, echoed like "k" and never printed.
            *bench = create(node, BENCH_ENDPOINT);
        }
    } else if let Some(addr) = bench.take() {
        let _ = node.destroy_endpoint(addr);
    }
    let desc = super::PeerDesc {
        peer: node.peer_id(),
        published: published.is_some(),
        also,
    };
    log::info!(
        "remote: attached to session {} of the host ({})",
        session,
        desc
    );
    print_banner();
}

fn rx_main() {
    // The node (4 KiB: the transport's table of spare buffers) lives in this frame for
    // good; building it here, not in a helper, avoids copying it on the stack.
    let Some(opened) = super::open("remote", Side::Remote) else {
        return;
    };
    let shm = opened.shm;
    let also = opened.also;
    let mut node = match Remote::new_remote(
        opened.region,
        opened.config,
        Some(opened.id),
        super::doorbell(&opened),
    ) {
        Ok(n) => n,
        Err(e) => {
            log::error!("remote: engine: {}", e);
            return;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    // "k" first: it is announced first, so a host binds it first (address 1024). The
    // silent echo endpoint "bench" comes when a host of ours attaches (see `attached_to`).
    let Some(k) = create(&mut node, ECHO_ENDPOINT) else {
        return;
    };
    let mut bench: Option<u32> = None;
    log::info!("remote: waiting for the host");
    let mut clock = DoorbellClock::new(shm);
    let spin = spin_cycles();
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut attached: Option<u32> = None;
    let mut errors = ErrorOnce::new();
    let mut last_traffic: Option<u64> = None;
    let mut last_message = 0u64;
    let silent_window = crate::time::us_to_cycles(SILENT_PEER_WINDOW_US);
    loop {
        // Everything pending; doorbells to the host are checked once at the end.
        node.defer_doorbells();
        let mut traffic = false;
        loop {
            match node.recv() {
                Ok(Some(Event::Message(rx))) => {
                    traffic = true;
                    let dst = rx.dst();
                    let n = rx.read(0, &mut payload).unwrap_or(0);
                    let _ = node.release_rx(rx);
                    // Echo exactly what came (for "k": the string and its NUL); then, for
                    // "k" only, print it (the engine drops messages for other addresses).
                    echo(&mut node, dst, &payload[..n], &mut clock, &mut errors);
                    if dst == k {
                        // The host hears about the echo before we spend time printing.
                        let _ = node.flush_doorbell();
                        print_received(&payload[..n]);
                        node.defer_doorbells();
                    }
                }
                Ok(Some(Event::NameServiceCreate { name, addr })) => log::info!(
                    "remote: the host announced endpoint \"{}\" ({}): not used",
                    name,
                    addr
                ),
                Ok(Some(Event::NameServiceDestroy { .. })) => {}
                Ok(None) => break,
                Err(e) => {
                    errors.report("remote", "receive", e);
                    break;
                }
            }
        }
        let _ = node.flush_doorbell();
        if traffic {
            last_message = cycles();
            last_traffic = Some(last_message);
        }
        // Attached to a session we have not greeted yet? (A host restart is seen as a
        // new session number, possibly without ever being observed down.)
        let now = (node.link_state() == LinkState::Up).then(|| node.session());
        if now != attached {
            attached = now;
            if let Some(session) = now {
                errors.clear();
                attached_to(&mut node, session, also, &mut bench);
            } else {
                log::info!("remote: the host reset the link, waiting for it");
            }
        }
        // After traffic, look at the rings for a while: the host need not ring us.
        if let Some(t) = last_traffic {
            let until = t.saturating_add(spin);
            let mut pending = false;
            if cycles() < until {
                let _ = node.busy_poll();
                while cycles() < until {
                    if node.has_pending() {
                        pending = true;
                        break;
                    }
                }
            }
            if pending {
                continue;
            }
            last_traffic = None;
        }
        // Doorbells again; block unless something came meanwhile.
        if node.prepare_to_wait().unwrap_or(false) {
            continue;
        }
        // A host that publishes no id may ring nobody: while its messages come, look often.
        let silent = attached.is_some()
            && node.published_peer_id().is_none()
            && cycles().saturating_sub(last_message) < silent_window;
        let _ = shm.wait_doorbell(Some(if silent {
            SILENT_PEER_POLL_MS
        } else {
            RX_POLL_MS
        }));
    }
}
