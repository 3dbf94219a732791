//! The host image: `rpmsg-app`'s host over the IVSHMEM device, and the `rpmsg_ivshmem`
//! shell commands.
//!
//! Two threads share one [`HostApp`] through a [`SharedNode`] (a critical section around
//! each short step; nobody waits inside it):
//!
//! * the receive thread (started at boot, so the shell is usable at once) initialises the
//!   shared region, keeps the link alive (heartbeats, `super::keep_alive`), receives what
//!   no command waits for (the remote's announcements, strays) and prints the banner each
//!   time the link comes up. Linked with a remote of ours it sleeps on the doorbell until
//!   its next heartbeat; otherwise it looks every [`RX_POLL_MS`]. While a command runs it
//!   receives nothing and leaves the doorbell to the command: it sleeps on [`event::wait`]
//!   (heartbeats every [`RX_POLL_MS`]) until the command ends ([`event::raise`]), and a
//!   doorbell it took before it saw the command start it raises again for the command;
//! * the shell thread runs the commands (`super::commands`, with
//!   CONFIG_RPMSG_IVSHMEM_SHELL): it receives itself, busy-polls the rings for up to
//!   CONFIG_RPMSG_IVSHMEM_SPIN_US (the remote does not ring meanwhile), then asks for
//!   doorbells again and sleeps on the doorbell itself: the doorbell's interrupt wakes
//!   the thread that waits for the echo, with no thread in between.

use super::{Console, Line, BOARD, MAX_PAYLOAD, RX_POLL_MS};
use crate::engine::IvshmemDoorbell;
use crate::logger::{error, info};
use crate::thread;
use crate::time::{self, cycles, event};
use rpmsg_app::host::{self as app, HostApp};
use rpmsg_app::{ErrorOnce, Port};
use rpmsg_engine::{Host, SharedNode, Side};

pub(super) type App = HostApp<'static, IvshmemDoorbell>;

/// The host node and what the application keeps next to it, shared by the receive
/// thread and the shell's commands (`super::commands`).
pub(super) static STATE: SharedNode<App> = SharedNode::new();

/// Entry of the host image (`rust_main`): starts the receive thread and returns, so the
/// shell runs at once.
pub fn main() {
    thread::start_rx_thread();
}

/// Opens the device, starts the session and installs the shared state; returns the
/// device. Not inlined: the node is built and moved by value, and those temporaries stay
/// off the receive loop's frame.
#[inline(never)]
fn setup() -> Option<(crate::ivshmem::Ivshmem, Option<u16>)> {
    let opened = super::open("host", Side::Host)?;
    let shm = opened.shm;
    let doorbell = opened.doorbell();
    let mut node = match Host::new_host(opened.region, opened.config, Some(opened.id), doorbell) {
        Ok(n) => n,
        Err(e) => {
            error!("host: engine: ", e);
            return None;
        }
    };
    debug_assert_eq!(node.max_payload(), MAX_PAYLOAD);
    if let Err(e) = node.start() {
        error!("host: cannot initialise the shared region: ", e);
        return None;
    }
    let session = node.session();
    STATE.install(HostApp::new(node));
    info!("host: session ", session, ", waiting for a remote");
    Some((shm, opened.also))
}

/// The receive thread's view of the node: none while a command runs (the command
/// receives then).
struct IdlePort;

impl Port<App> for IdlePort {
    fn with<R>(&mut self, f: impl FnOnce(&mut App) -> R) -> Option<R> {
        STATE.with(|s| (!s.busy).then(|| f(s))).flatten()
    }

    fn now(&self) -> u64 {
        cycles()
    }

    fn ticks_per_sec(&self) -> u64 {
        u64::from(time::cycles_per_sec())
    }

    fn wait(&mut self, _deadline: u64) {}
}

/// The receive loop (the entry of the receive thread; see `host/src/lib.rs`).
pub fn rx_main() {
    let Some((shm, also)) = setup() else {
        return;
    };
    let mut line = Line::new();
    let mut out = Console {
        line: &mut line,
        shell: None,
    };
    let mut errors = ErrorOnce::new();
    loop {
        let busy = STATE.with(|s| s.busy).unwrap_or(false);
        if !busy {
            // A C remote publishes no id: ring the rule's second id too (see `open`).
            STATE.with(|s| super::ring_also_while_silent(&mut s.node, also));
            app::drain(&mut IdlePort, &mut out, &mut errors);
            if app::greet(&mut IdlePort, &mut out, BOARD) {
                errors.clear();
            }
        }
        let live = STATE.with(|s| super::keep_alive(&mut s.node));
        let sleep_ms = match live {
            Some(l) if l.gone => {
                if busy {
                    // The command sleeps on the doorbell: it ends now (the link was reset).
                    shm.raise_again(1);
                }
                super::log_silent_peer(&mut out, true);
                continue;
            }
            Some(l) if !busy => l.sleep_ms,
            _ => RX_POLL_MS,
        };
        if busy {
            // The command waits on the doorbell: sleep until it ends (or the next look).
            event::wait(Some(sleep_ms));
            continue;
        }
        // Doorbells again (a command may have told the remote not to ring); sleep
        // unless something came meanwhile. A doorbell after this stays pending in the
        // driver's signal, so the wait below returns at once for it.
        if STATE.with(|s| s.node.prepare_to_wait().unwrap_or(false)) == Some(true) {
            continue;
        }
        if let Ok(Some(rang)) = shm.wait_doorbell(Some(sleep_ms)) {
            // A command that started while we slept waits on the doorbell too, and only
            // one waiter wakes: it was the command's.
            if STATE.with(|s| s.busy) == Some(true) {
                shm.raise_again(rang);
            }
        }
    }
}
