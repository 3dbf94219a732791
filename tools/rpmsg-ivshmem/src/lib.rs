//! # rpmsg-ivshmem: the native Linux RPMsg peer
//!
//! Attaches to an ivshmem-server (QEMU's protocol, see the `ivshmem` crate) as a peer, maps
//! the shared memory it hands out, and runs the `rpmsg-engine` in either role, with real
//! eventfd doorbells: our own vector 0 eventfd is the interrupt, the peer's vector 0
//! eventfd is its doorbell, and the peer's ivshmem id comes from the shared control area.
//!
//! The binary `rpmsg-ivshmem` has these commands (see [`cli::usage`]):
//!
//! * `remote`: behaves like the remote image (endpoint `"k"`, echoes and prints each
//!   message) — [`remote`];
//! * `host send <string> <n>`: behaves like the host image's shell command — [`host`];
//! * `host`: a long-running host reading `rpmsg_ivshmem send ...` and `status` from stdin,
//!   quoted as Zephyr's shell does — [`shell`], [`host`];
//! * `bench`: latency and throughput table — [`mod@bench`];
//! * `status`: what the control area says about the link — [`status`].
//!
//! Console text the reference defines (banners, the echo blocks, `not ready`, `timed
//! out`) goes to stdout, one write per block; diagnostics go to stderr.
#![deny(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

pub mod baseline;
pub mod bench;
pub mod cli;
pub mod console;
pub mod error;
pub mod host;
pub mod node;
pub mod platform;
pub mod port;
pub mod remote;
pub mod shell;
pub mod status;
pub mod validate;

pub use error::{Error, Result};

/// Name of the remote's optional sink endpoint (`remote --sink`), which consumes messages
/// without echoing them; `bench` streams to it.
pub const SINK_ENDPOINT: &str = "rpmsg-sink";
