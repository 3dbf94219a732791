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

use crate::ivshmem::Ivshmem;
use rpmsg_engine::{Config, SharedRegion};

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
    pub config: Config,
    pub id: u16,
}

/// Opens the IVSHMEM device for the engine; logs and returns `None` on failure.
pub(crate) fn open(role: &str) -> Option<Opened> {
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
    Some(Opened {
        shm,
        region,
        // The OpenAMP sample's layout; both guests map the region at 0xafa00000.
        config: Config::new(shm.size()),
        id,
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
