//! The two images' adapters over `rpmsg-app` (feature `engine`): [`host`] and [`remote`].
//! The image crates (`host/src/lib.rs`, `remote/src/lib.rs`) call their `main` and, as the
//! entry of the receive thread, their `rx_main`.
//!
//! What the images do — the commands, the console text, send/echo with its timeout, the
//! echo, bench, status — is `rpmsg-app`'s, shared with the native peer. Here is only what
//! is Zephyr's: the IVSHMEM device, the threads and how they wait (doorbell, event, cycle
//! counter), the shell and the console. Nothing on the per-message path allocates:
//! console lines live in fixed buffers.

#[cfg(all(CONFIG_RPMSG_IVSHMEM_SHELL, not(CONFIG_RPMSG_IVSHMEM_REMOTE)))]
mod commands;
pub mod host;
pub mod remote;
mod remote_status;

use crate::engine::IvshmemDoorbell;
use crate::ivshmem::Ivshmem;
use crate::FixedBuf;
use rpmsg_engine::{Config, PeerIdRule, SharedRegion, Side};

/// Payload bytes per message with the default 512-byte buffers (header: 16 bytes).
pub const MAX_PAYLOAD: usize = 496;

/// How long the receive thread sleeps on the doorbell before it looks at the link
/// anyway (a peer that restarted may not ring).
pub const RX_POLL_MS: u32 = 20;

/// How often a thread that expects a message from a peer that publishes no id (a C
/// OpenAMP peer) looks at the rings. Such a peer rings its own id ± 1, which may be nobody
/// (a C remote with id 0, a C host that connected after our remote): then no doorbell
/// ever announces its messages. (The kernel tick is 1 ms: boards/qemu_cortex_a53.conf.)
pub const SILENT_PEER_POLL_MS: u32 = 1;

/// How long after a message from a host that publishes no id the remote keeps looking
/// every [`SILENT_PEER_POLL_MS`], before it goes back to [`RX_POLL_MS`]: the next message
/// of a burst comes within this, and an idle link costs no more than with our host.
pub const SILENT_PEER_WINDOW_US: u64 = 250_000;

/// The board in the banners.
pub(crate) const BOARD: &str = zephyr::kconfig::CONFIG_BOARD;

/// How long a thread that just had traffic keeps looking at the rings itself (the peer
/// need not ring it meanwhile) before it asks for doorbells again and blocks:
/// CONFIG_RPMSG_IVSHMEM_SPIN_US, in cycles of [`crate::time::cycles`].
pub(crate) fn spin_cycles() -> u64 {
    // SAFETY: plain call into the C shim.
    crate::time::us_to_cycles(u64::from(unsafe { crate::ffi::rpmsg_glue_spin_us() }))
}

/// Milliseconds from now until `deadline` (cycles), at least 1.
pub(crate) fn ms_left(deadline: u64) -> u32 {
    let us = crate::time::cycles_to_us(deadline.saturating_sub(crate::time::cycles()));
    (us / 1000 + 1).min(u64::from(u32::MAX)) as u32
}

/// The console as `rpmsg-app` writes to it: blocks of up to `N` bytes (truncated beyond),
/// each written in one piece; diagnostics go to the log.
pub(crate) struct Console<'b, const N: usize> {
    pub(crate) line: &'b mut FixedBuf<N>,
    /// The shell of the running command; `None`: the console (shell or printk).
    pub(crate) shell: Option<&'b crate::shell::Shell>,
}

impl<const N: usize> rpmsg_app::Text for Console<'_, N> {
    fn put(&mut self, bytes: &[u8]) {
        self.line.push_bytes(bytes);
    }
}

impl<const N: usize> rpmsg_app::Console for Console<'_, N> {
    fn end(&mut self) {
        match self.shell {
            Some(sh) => sh.write_bytes(self.line.as_bytes()),
            None => crate::console::write_bytes(self.line.as_bytes()),
        }
        self.line.clear();
    }

    /// Logs, then waits until the line is out: the text printed next (the banner after a
    /// link change) comes after it. Only at link changes and errors, never per message.
    fn diag(&mut self, args: core::fmt::Arguments<'_>) {
        log::info!("{}", args);
        log::logger().flush();
    }
}

/// The shared region, opened and checked: doorbell vector 0 enabled, a region the
/// engine accepts, an id that fits the engine's 16 bits.
pub(crate) struct Opened {
    pub shm: Ivshmem,
    pub region: SharedRegion<'static>,
    /// The OpenAMP sample's layout, and the peer id to ring while the peer publishes none.
    pub config: Config,
    pub id: u16,
    /// The second id to ring while the peer publishes none ([`PeerIdRule::also`]).
    pub also: Option<u16>,
}

impl Opened {
    /// The doorbell, ringing [`Opened::also`] too until the peer publishes its id.
    pub(crate) fn doorbell(&self) -> IvshmemDoorbell {
        let mut bell = IvshmemDoorbell::new(self.shm);
        bell.set_also(self.also);
        bell
    }
}

/// Keeps ringing `also` as well only while the peer has published no id of its own (a
/// published id always wins).
pub(crate) fn ring_also_while_silent<'a, R: rpmsg_engine::rpmsg::Role<'a>>(
    node: &mut rpmsg_engine::Rpmsg<'a, R, IvshmemDoorbell>,
    also: Option<u16>,
) {
    let silent = node.published_peer_id().is_none();
    node.doorbell().set_also(if silent { also } else { None });
}

/// CONFIG_RPMSG_IVSHMEM_PEER_ID as a rule, logged: whom a node of `side` with `own_id`
/// rings while the peer publishes no id (a C OpenAMP peer). Returns the id and the second
/// id to ring as well.
fn peer_rule(role: &str, side: Side, own_id: u16) -> (u16, Option<u16>) {
    // SAFETY: plain call into the C shim.
    let value = unsafe { crate::ffi::rpmsg_glue_peer_id_config() };
    // Kconfig's range keeps the value valid; anything else is treated as automatic.
    let rule = PeerIdRule::from_config(value).unwrap_or(PeerIdRule::Adjacent);
    let peer = rule.peer_id(side, own_id);
    let also = rule.also(side, own_id);
    match rule {
        PeerIdRule::Configured(id) => log::info!(
            "{}: a peer that publishes no ivshmem id is rung at {} (CONFIG_RPMSG_IVSHMEM_PEER_ID)",
            role,
            id
        ),
        PeerIdRule::Adjacent => log::info!(
            "{}: a peer that publishes no ivshmem id is rung at {} (own id {} 1, the OpenAMP sample's rule) and {} (the other neighbour): CONFIG_RPMSG_IVSHMEM_PEER_ID=-1, automatic",
            role,
            peer,
            if side == Side::Host { '+' } else { '-' },
            also.map_or(-1, i32::from)
        ),
    }
    (peer, also)
}

/// Opens the IVSHMEM device for the engine; logs and returns `None` on failure.
pub(crate) fn open(role: &str, side: Side) -> Option<Opened> {
    let shm = match Ivshmem::open() {
        Ok(s) => s,
        Err(e) => {
            log::error!(
                "{}: ivshmem device not usable: {:?} (is the ivshmem server running?)",
                role,
                e
            );
            return None;
        }
    };
    if let Err(e) = shm.enable_doorbell(0) {
        log::error!("{}: cannot enable doorbell vector 0: {}", role, e);
        return None;
    }
    let Ok(id) = u16::try_from(shm.id()) else {
        log::error!("{}: ivshmem id {} does not fit 16 bits", role, shm.id());
        return None;
    };
    // SAFETY: the driver mapped the BAR for the lifetime of the image and never unmaps
    // it; the engine accesses it only through atomics, and nothing else in this image
    // touches it.
    let region = match unsafe { SharedRegion::new(shm.base(), shm.size()) } {
        Ok(r) => r,
        Err(e) => {
            log::error!("{}: shared region at {:p}: {}", role, shm.base(), e);
            return None;
        }
    };
    log::info!(
        "{}: ivshmem id {}, {} KiB shared memory at {:p}, {} vectors",
        role,
        id,
        shm.size() / 1024,
        shm.base(),
        shm.vectors()
    );
    let (fallback, also) = peer_rule(role, side, id);
    Some(Opened {
        shm,
        region,
        // The OpenAMP sample's layout; both guests map the region at 0xafa00000.
        config: Config {
            fallback_peer_id: Some(fallback),
            ..Config::new(shm.size())
        },
        id,
        also,
    })
}
