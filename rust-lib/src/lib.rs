//! RPMsg over IVSHMEM: the protocol engine (placeholder docs, replaced below).
#![no_std]
#![deny(
    unsafe_op_in_unsafe_fn,
    missing_docs,
    clippy::undocumented_unsafe_blocks
)]

pub mod endpoint;
pub mod error;
pub mod layout;
pub mod platform;
pub mod rpmsg;
pub mod shm;
#[cfg(feature = "std")]
pub mod testing;
pub mod virtqueue;
pub mod wire;

pub use endpoint::{Endpoint, EndpointTable, NameService, MAX_ENDPOINTS};
pub use error::{Error, ErrorCounters, Result};
pub use layout::{Config, Layout, QueueId};
pub use platform::{Clock, Doorbell, NoDoorbell};
pub use rpmsg::{Event, Host, Incoming, LinkState, Remote, Rpmsg, RxBuffer, Stats, TxBuffer};
pub use shm::SharedRegion;
