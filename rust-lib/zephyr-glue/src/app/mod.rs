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
use crate::logger::{self, error, info, Ptr, Signed};
use crate::FixedBuf;
use rpmsg_engine::{Config, PeerIdRule, SharedRegion, Side};

/// Payload bytes per message with the default 512-byte buffers (header: 16 bytes).
pub const MAX_PAYLOAD: usize = 496;

/// How long a receive thread sleeps on the doorbell before it looks at the link anyway
/// while it is not linked with a peer of ours (a host that initialised the region rings
/// nobody; a C OpenAMP peer may ring nobody) or a command runs. Linked with a peer of
/// ours it sleeps until its next heartbeat instead ([`keep_alive`]).
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

/// The vector of the host's `rpmsg_ivshmem doorbell`, a bare doorbell ping-pong with no
/// RPMsg (CONFIG_RPMSG_IVSHMEM_BENCH): the remote rings it back at once. RPMsg rings
/// vector 0.
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
pub(crate) const BARE_DOORBELL_VECTOR: u16 = 1;

/// The board in the banners.
pub(crate) const BOARD: &str = zephyr::kconfig::CONFIG_BOARD;

/// How long a thread that just had traffic keeps looking at the rings itself (the peer
/// need not ring it meanwhile) before it asks for doorbells again and blocks:
/// CONFIG_RPMSG_IVSHMEM_SPIN_US, in cycles of [`crate::time::cycles`].
pub(crate) fn spin_cycles() -> u64 {
    // SAFETY: plain call into the C shim.
    crate::time::us_to_cycles(u64::from(unsafe { crate::ffi::rpmsg_glue_spin_us() }))
}

/// What [`keep_alive`] found.
pub(crate) struct Liveness {
    /// The peer's heartbeat stopped: the link went down (log it, outside any critical
    /// section).
    pub gone: bool,
    /// How long the receive thread may sleep on its doorbell, in milliseconds.
    pub sleep_ms: u32,
}

/// Keeps the link alive (our heartbeat, the peer's: `Rpmsg::keep_alive`), and says how
/// long the receive thread may sleep on its doorbell after it asked for doorbells
/// (`prepare_to_wait`) and found nothing: linked with a peer of ours, until our next
/// heartbeat — such a peer rings for everything we wait for, and a host that restarts
/// is seen at the next heartbeat — else [`RX_POLL_MS`].
pub(crate) fn keep_alive<'a, R: rpmsg_engine::rpmsg::Role<'a>>(
    node: &mut rpmsg_engine::Rpmsg<'a, R, IvshmemDoorbell>,
) -> Liveness {
    let now = crate::time::cycles_to_us(crate::time::cycles());
    let gone = node.keep_alive(now) == Ok(false);
    let sleep_ms = match node.next_keep_alive_us() {
        Some(at) if node.published_peer_id().is_some() => {
            (at.saturating_sub(now) / 1000 + 1).min(u64::from(u32::MAX)) as u32
        }
        _ => RX_POLL_MS,
    };
    Liveness { gone, sleep_ms }
}

/// Logs that the peer's heartbeat stopped (the node started or asked for a new session).
pub(crate) fn log_silent_peer(out: &mut Console<'_>, host: bool) {
    let text = if host {
        rpmsg_app::text::REMOTE_SILENT
    } else {
        rpmsg_app::text::HOST_SILENT
    };
    rpmsg_app::Console::diag(out, &[rpmsg_app::Part::Str(text)]);
}

/// Milliseconds from now until `deadline` (cycles), at least 1.
pub(crate) fn ms_left(deadline: u64) -> u32 {
    let us = crate::time::cycles_to_us(deadline.saturating_sub(crate::time::cycles()));
    (us / 1000 + 1).min(u64::from(u32::MAX)) as u32
}

/// A console block: one size for every console of both images, so that [`Console`] is
/// one type and `rpmsg-app`'s generic code exists once in the image, not once per size.
pub(crate) type Line = FixedBuf<640>;

/// The console as `rpmsg-app` writes to it: blocks of up to 640 bytes (truncated beyond),
/// each written in one piece; diagnostics go to the log.
pub(crate) struct Console<'b> {
    pub(crate) line: &'b mut Line,
    /// The shell of the running command; `None`: the console (shell or printk).
    pub(crate) shell: Option<&'b crate::shell::Shell>,
}

impl rpmsg_app::Text for Console<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.line.push_bytes(bytes);
    }
}

impl rpmsg_app::Console for Console<'_> {
    fn end(&mut self) {
        match self.shell {
            Some(sh) => sh.write_bytes(self.line.as_bytes()),
            None => crate::console::write_bytes(self.line.as_bytes()),
        }
        self.line.clear();
    }

    /// Logs, then waits until the line is out: the text printed next (the banner after a
    /// link change) comes after it and after the boot log lines before it, also where
    /// the line itself is compiled out (log level below INF). Only at link changes and
    /// errors, never per message.
    fn diag(&mut self, parts: &[rpmsg_app::Part<'_>]) {
        if logger::INFO <= logger::MAX_LEVEL {
            let mut line = logger::Line::new();
            rpmsg_app::put_parts(&mut line, parts);
            logger::write(logger::INFO, &mut line);
        }
        logger::flush();
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
        PeerIdRule::Configured(id) => info!(
            role,
            ": a peer that publishes no ivshmem id is rung at ",
            id,
            " (CONFIG_RPMSG_IVSHMEM_PEER_ID)"
        ),
        PeerIdRule::Adjacent => info!(
            role,
            ": a peer that publishes no ivshmem id is rung at ",
            peer,
            " (own id ",
            if side == Side::Host { "+" } else { "-" },
            " 1, the OpenAMP sample's rule) and ",
            Signed(also.map_or(-1, i64::from)),
            " (the other neighbour): CONFIG_RPMSG_IVSHMEM_PEER_ID=-1, automatic"
        ),
    }
    (peer, also)
}

/// Opens the IVSHMEM device for the engine; logs and returns `None` on failure.
pub(crate) fn open(role: &str, side: Side) -> Option<Opened> {
    let shm = match Ivshmem::open() {
        Ok(s) => s,
        Err(e) => {
            error!(
                role,
                ": ivshmem device not usable: ", e, " (is the ivshmem server running?)"
            );
            return None;
        }
    };
    if let Err(e) = shm.enable_doorbell(0) {
        error!(role, ": cannot enable doorbell vector 0: ", e);
        return None;
    }
    let Ok(id) = u16::try_from(shm.id()) else {
        error!(role, ": ivshmem id ", shm.id(), " does not fit 16 bits");
        return None;
    };
    // SAFETY: the driver mapped the BAR for the lifetime of the image and never unmaps
    // it; the engine accesses it only through atomics, and nothing else in this image
    // touches it.
    let region = match unsafe { SharedRegion::new(shm.base(), shm.size()) } {
        Ok(r) => r,
        Err(e) => {
            error!(role, ": shared region at ", Ptr(shm.base()), ": ", e);
            return None;
        }
    };
    info!(
        role,
        ": ivshmem id ",
        id,
        ", ",
        shm.size() / 1024,
        " KiB shared memory at ",
        Ptr(shm.base()),
        ", ",
        shm.vectors(),
        " vectors"
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
