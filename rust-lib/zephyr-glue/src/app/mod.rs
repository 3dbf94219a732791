//! The two applications (feature `engine`): [`host`] and [`remote`]. The image crates
//! (`host/src/lib.rs`, `remote/src/lib.rs`) only call their `main`.
//!
//! Both run the rust-lib engine over the IVSHMEM region in one receive thread that
//! waits for the doorbell with a short timeout ([`RX_POLL_MS`]), so link changes are
//! noticed even without a doorbell. The console text is exactly the reference's
//! (see [`text`]); diagnostics go through `log`. Nothing on the per-message path
//! allocates: payloads and console lines live in fixed buffers.

pub mod host;
pub mod remote;
pub(crate) mod text;

use crate::engine::IvshmemDoorbell;
use crate::ivshmem::Ivshmem;
use rpmsg_engine::{Config, PeerIdRule, SharedRegion, Side};

/// The name of the remote's echo endpoint (as in the reference).
pub const ECHO_ENDPOINT: &str = "k";

/// The name of the remote's silent echo endpoint for `rpmsg_ivshmem bench`: it echoes every
/// message unchanged and prints nothing.
pub const BENCH_ENDPOINT: &str = "bench";

/// Payload bytes per message with the default 512-byte buffers (header: 16 bytes).
pub const MAX_PAYLOAD: usize = 496;

/// The longest string `send` accepts: the payload holds it and its terminating NUL.
pub const MAX_TEXT: usize = MAX_PAYLOAD - 1;

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

/// How long a thread that just had traffic keeps looking at the rings itself (the peer
/// need not ring it meanwhile) before it asks for doorbells again and blocks:
/// CONFIG_RPMSG_IVSHMEM_SPIN_US, in cycles of [`crate::time::cycles`].
pub(crate) fn spin_cycles() -> u64 {
    // SAFETY: plain call into the C shim.
    crate::time::us_to_cycles(u64::from(unsafe { crate::ffi::rpmsg_glue_spin_us() }))
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

/// The doorbell for `opened`, ringing [`Opened::also`] too until the peer publishes its id.
pub(crate) fn doorbell(opened: &Opened) -> IvshmemDoorbell {
    let mut bell = IvshmemDoorbell::new(opened.shm);
    bell.set_also(opened.also);
    bell
}

/// For the link-up log line: whom the doorbell goes to, and why.
pub(crate) struct PeerDesc {
    /// The id rung ([`rpmsg_engine::Rpmsg::peer_id`]).
    pub peer: Option<u16>,
    /// Whether the peer published it.
    pub published: bool,
    /// The second id rung while it publishes none.
    pub also: Option<u16>,
}

impl core::fmt::Display for PeerDesc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let peer = self.peer.map_or(-1, i32::from);
        match (self.published, self.also) {
            (true, _) => write!(f, "ivshmem id {}, published", peer),
            (false, Some(also)) => write!(
                f,
                "no ivshmem id published: ringing {} and {}, CONFIG_RPMSG_IVSHMEM_PEER_ID=-1",
                peer, also
            ),
            (false, None) => write!(
                f,
                "no ivshmem id published: ringing {}, CONFIG_RPMSG_IVSHMEM_PEER_ID",
                peer
            ),
        }
    }
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

/// Logs an engine error only when it differs from the previous one, so a persistent
/// condition (a peer with another layout, say) does not flood the log every poll.
pub(crate) struct ErrorOnce(Option<rpmsg_engine::Error>);

impl ErrorOnce {
    pub(crate) const fn new() -> Self {
        Self(None)
    }

    pub(crate) fn report(&mut self, role: &str, what: &str, e: rpmsg_engine::Error) {
        if self.0 != Some(e) {
            self.0 = Some(e);
            log::warn!("{}: {}: {} (repeats are only counted)", role, what, e);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }
}
