//! Attaching to the server and checking the shared memory before the engine starts, with
//! errors that say what to change.

use std::time::Duration;

use ivshmem::ShmMapping;
use rpmsg_engine::layout::STATUS_DRIVER_OK;
use rpmsg_engine::shm::ControlView;
use rpmsg_engine::{Config, Error as EngineError, Layout, SharedRegion};

use crate::cli::Common;
use crate::error::{Error, Result};
use crate::platform::Ivshmem;

/// The name of the endpoint the remote announces and echoes on (as the reference).
pub const ECHO_ENDPOINT: &str = "k";

/// A connection and its mapped shared memory. The region borrows the mapping, so keep this
/// alive as long as the engine runs.
#[derive(Debug)]
pub struct Attached {
    /// The server connection (becomes the engine's doorbell).
    pub ivshmem: Ivshmem,
    /// The mapped shared memory.
    pub mapping: ShmMapping,
}

/// Connects to the server named in `common` and maps its shared memory.
pub fn attach(common: &Common) -> Result<Attached> {
    let ivshmem = Ivshmem::connect(&common.socket)?;
    let mapping = ivshmem.map()?;
    Ok(Attached { ivshmem, mapping })
}

/// Connects to the server named in `common`, maps its shared memory, checks the layout,
/// and runs `f` with the region, the engine configuration and the connection.
pub fn with_attached<T>(
    common: &Common,
    f: impl FnOnce(SharedRegion<'_>, Config, Ivshmem) -> Result<T>,
) -> Result<T> {
    let Attached { ivshmem, mapping } = attach(common)?;
    let region = region(&mapping)?;
    let config = config(common, &ivshmem)?;
    f(region, config, ivshmem)
}

/// The engine's view of a mapping.
pub fn region(mapping: &ShmMapping) -> Result<SharedRegion<'_>> {
    // SAFETY: the mapping is a live MAP_SHARED mapping of `len()` bytes that stays mapped
    // for the lifetime of the borrow; this process accesses it only through the engine
    // (atomic accesses); other processes write it concurrently, which the engine expects.
    unsafe { SharedRegion::new(mapping.as_ptr(), mapping.len()) }
        .map_err(|e| Error::runtime(format!("cannot use the shared memory: {e}")))
}

/// The peer to ring when the other side publishes no id (a C OpenAMP peer): the only other
/// peer on the server, if there is exactly one. Computed again whenever peers join or leave
/// ([`rpmsg_engine::Rpmsg::set_fallback_peer_id`]): with the OpenAMP sample the C remote
/// must connect after our host (it rings "own id - 1"), so the host sees nobody at start.
pub fn fallback_peer_id(peers: &[u16]) -> Option<u16> {
    match peers {
        [only] => Some(*only),
        _ => None,
    }
}

/// The engine configuration for this region, after checking that the layout fits.
///
/// `fallback_peer_id` is set from the server's peer list ([`fallback_peer_id`]): it is used
/// only with a C OpenAMP peer, which publishes no id.
pub fn config(common: &Common, ivshmem: &Ivshmem) -> Result<Config> {
    let size = usize::try_from(ivshmem.shm_size())
        .map_err(|_| Error::runtime("the shared memory is too large to map"))?;
    let config = Config {
        fallback_peer_id: fallback_peer_id(&ivshmem.peer_ids()),
        ..common.config(size)
    };
    match Layout::new(&config) {
        Ok(_) => Ok(config),
        Err(EngineError::RegionTooSmall) => {
            let needed = Layout::required_size(&config).unwrap_or(0);
            Err(Error::runtime(format!(
                "the shared memory of the ivshmem-server at {} is too small: {size} bytes, \
                 but {} buffers of {} bytes per direction need at least {needed}; start the \
                 server with a larger size (-l), or use fewer/smaller buffers (--buf-count, \
                 --buf-size) on both sides",
                ivshmem.socket().display(),
                common.buf_count,
                common.buf_size,
            )))
        }
        Err(e) => Err(Error::runtime(format!(
            "cannot lay out RPMsg in the {size}-byte shared memory of {}: {e}",
            ivshmem.socket().display()
        ))),
    }
}

/// The error a node stops with when its ivshmem-server went away: a new server hands out
/// a new shared memory, so staying "up" on the old one would serve nobody.
pub fn server_gone(ivshmem: &Ivshmem) -> Error {
    Error::runtime(format!(
        "the ivshmem-server at {} went away; a new server shares new memory, so this peer \
         stops: start it again after the server",
        ivshmem.socket().display()
    ))
}

/// How long a peer that looks like a live rival may take to turn out to be leaving (a
/// process killed just before we connected may not have been reaped by the server yet).
pub const RIVAL_GRACE: Duration = Duration::from_millis(500);

/// Runs `check`; if it finds a rival, gives the server [`RIVAL_GRACE`] to report that the
/// rival left, then checks again.
fn check_with_grace(
    region: SharedRegion<'_>,
    ivshmem: &mut Ivshmem,
    check: fn(SharedRegion<'_>, &Ivshmem) -> Result<()>,
) -> Result<()> {
    if check(region, ivshmem).is_ok() {
        return Ok(());
    }
    ivshmem.wait_server(RIVAL_GRACE);
    check(region, ivshmem)
}

/// Refuses to start a second host while another one is alive on the same server: both
/// would reinitialise the rings under each other.
pub fn check_no_other_host(region: SharedRegion<'_>, ivshmem: &mut Ivshmem) -> Result<()> {
    check_with_grace(region, ivshmem, other_host)
}

/// Refuses to start a second remote while another one is attached to the live session.
pub fn check_no_other_remote(region: SharedRegion<'_>, ivshmem: &mut Ivshmem) -> Result<()> {
    check_with_grace(region, ivshmem, other_remote)
}

fn other_host(region: SharedRegion<'_>, ivshmem: &Ivshmem) -> Result<()> {
    let control = ControlView::new(region).map_err(|e| Error::runtime(e.to_string()))?;
    let ready = control.status().unwrap_or(0) & STATUS_DRIVER_OK != 0;
    if let Ok(Some(p)) = control.published() {
        if let Some(host) = p.host_id {
            if ready && host != ivshmem.id() && ivshmem.is_connected(host) {
                return Err(Error::runtime(format!(
                    "another host (ivshmem id {host}) is already running on the server at {}; \
                     stop it first (one host and one remote per server)",
                    ivshmem.socket().display()
                )));
            }
        }
    }
    Ok(())
}

fn other_remote(region: SharedRegion<'_>, ivshmem: &Ivshmem) -> Result<()> {
    let control = ControlView::new(region).map_err(|e| Error::runtime(e.to_string()))?;
    let ready = control.status().unwrap_or(0) & STATUS_DRIVER_OK != 0;
    let session = control.host_session().unwrap_or(0);
    if let Ok((Some(remote), attached)) = control.remote() {
        if ready
            && session != 0
            && attached == session
            && remote != ivshmem.id()
            && ivshmem.is_connected(remote)
        {
            return Err(Error::runtime(format!(
                "another remote (ivshmem id {remote}) is already attached on the server at {}; \
                 stop it first (one host and one remote per server)",
                ivshmem.socket().display()
            )));
        }
    }
    Ok(())
}

/// Explains a layout mismatch between this remote and the host, from what the host
/// published.
pub fn layout_mismatch(region: SharedRegion<'_>, config: &Config) -> Error {
    let ours = format!(
        "{} buffers of {} bytes per direction, vring align {}, {}-byte region",
        config.queue_size, config.buf_size, config.align, config.shm_size
    );
    let theirs = ControlView::new(region)
        .ok()
        .and_then(|c| c.published().ok().flatten());
    match theirs {
        Some(p) => Error::runtime(format!(
            "the host uses another shared-memory layout: {} buffers of {} bytes per direction, \
             vring align {}, {}-byte region; this remote uses {ours}. Start both sides with the \
             same --buf-size and --buf-count",
            p.queue_size, p.buf_size, p.align, p.shm_size
        )),
        None => {
            let version = ControlView::new(region)
                .and_then(|c| c.layout_version())
                .ok()
                .flatten()
                .unwrap_or(0);
            Error::runtime(format!(
                "the host speaks another layout version ({version}; this remote speaks {}): \
                 use the same rpmsg-ivshmem version on both sides",
                rpmsg_engine::wire::LAYOUT_VERSION
            ))
        }
    }
}

/// Clears `DRIVER_OK` on a clean host exit, if the region is still ours (same host id and
/// session), so that the remote sees at once that the host is gone.
pub fn release_as_host(region: SharedRegion<'_>, own_id: u16, session: u32) {
    let Ok(control) = ControlView::new(region) else {
        return;
    };
    if let Ok(Some(p)) = control.published() {
        if p.host_id == Some(own_id) && p.host_session == session {
            let _ = control.set_status(0);
        }
    }
}
