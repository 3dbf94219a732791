//! The only module that touches shared memory.
//!
//! The region belongs to another machine: it may be stale, written while we read it,
//! corrupt or hostile. So:
//!
//! * every access is an atomic load or store on a bounds- and alignment-checked address
//!   (atomics, not plain or volatile accesses, so that a concurrent write by the peer is a
//!   well-defined race under the Rust memory model — this is also what lets Miri check the
//!   two-threaded tests);
//! * ring indices are published with `Release` and read with `Acquire`, and the
//!   "does the peer want a notification" checks are preceded by a `SeqCst` fence, which on
//!   aarch64 and x86_64 orders our index store before the flag load (the classic lost-wakeup
//!   race of virtio notification suppression);
//! * every value read from the peer — ring index, descriptor index, address, length, flag,
//!   RPMsg header, name-service record, control-area field — is validated here, once, and
//!   leaves this module as a plain, trusted value or as an [`Error`](crate::Error).
//!
//! Nothing above this module handles raw shared-memory offsets read from the peer.
//!
//! Its parts: [`region`] (the checked atomic accesses), [`rings`] (the vrings),
//! [`messages`] (RPMsg headers and name-service records in received buffers) and
//! [`control`] (the control area).

pub mod control;
pub mod messages;
pub mod region;
pub mod rings;

pub use control::{ControlView, Published};
pub use messages::{
    read_message_header, read_ns_record, write_message_header, MessageHeader, NsRecord,
};
pub use region::{full_barrier, SharedRegion};
pub use rings::{PoolWindow, RingView, UsedElem};

/// A buffer inside the shared pool: validated offset and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferRef {
    /// Offset of the buffer in the region.
    pub offset: usize,
    /// Length of the buffer.
    pub len: u32,
}
