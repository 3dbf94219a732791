//! ivshmem server and peer library, compatible with QEMU's
//! `contrib/ivshmem-server` and the `ivshmem-doorbell` device (protocol
//! version 0).
//!
//! # Protocol in brief
//! The server speaks, peers only listen, over an `AF_UNIX` stream socket.
//! Every message is an int64 in little-endian byte order, sent as one 8-byte
//! `sendmsg` with at most one fd (`SCM_RIGHTS`). On connect a peer gets:
//! `0` (version), `<own id>`, `-1` + shared-memory fd, then for every peer
//! already connected `<id>` + eventfd once per vector, then `<own id>` +
//! eventfd once per vector. Existing peers get `<new id>` + eventfd per
//! vector. When a peer leaves, the others get `<id>` without an fd. To
//! interrupt vector `v` of peer `p`, write the 64-bit value 1 to the `v`-th
//! eventfd received for `p`; the owner polls its own eventfds.
//!
//! # Pieces
//! * [`Server`] / [`ServerConfig`]: the server core used by `ivshmem-server`.
//! * [`PeerConnection`]: attach to a server as a peer (what QEMU does), get
//!   [`PeerEvent`]s, ring doorbells with [`PeerConnection::notify`], wait for
//!   interrupts, map the memory with [`PeerConnection::map_shm`].
//! * [`cli`]: the command lines of the two binaries (`clap`).
//! * [`logfmt`]: the server's log format and the binaries' logger.
#![deny(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

pub mod cli;
mod client;
mod error;
pub mod logfmt;
mod server;
mod shm;
pub mod size;
mod sys;

pub use client::{
    drain_eventfds, read_eventfd, wait_eventfds, wait_eventfds_each, PeerConnection, PeerEvent,
    PeerInfo,
};
pub use error::Error;
/// How much the server logs: `Warn` by default, `Debug` with `-v`.
pub use log::Level as LogLevel;
pub use server::{
    install_signal_handlers, lookup_group, lookup_user, Server, ServerConfig, ServerStats,
    ShmBacking, Step, StopHandle, DEFAULT_MAX_BACKLOG, DEFAULT_PID_FILE, DEFAULT_SHM_NAME,
    DEFAULT_SHM_SIZE, DEFAULT_SOCKET_PATH, DEFAULT_VECTORS, MAX_VECTORS,
};
pub use shm::ShmMapping;

/// The protocol version this crate speaks (`IVSHMEM_PROTOCOL_VERSION`).
pub const PROTOCOL_VERSION: i64 = 0;

/// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
