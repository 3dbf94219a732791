//! One flat error type for the whole engine, and counters of what went wrong.
//!
//! Errors caused by the peer (anything read from shared memory) never panic: they are
//! returned, and the engine also counts them in [`ErrorCounters`] so that a long-running
//! node can report how often its peer misbehaved.

use core::fmt;

/// Everything that can go wrong in the engine.
///
/// Variants up to [`Error::UnknownDestination`] describe invalid data found in shared memory
/// (written by the peer, or corrupted); the rest describe local misuse or conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// An available-ring index moved further than the queue size since we last looked.
    AvailIndexOutOfRange,
    /// A used-ring index moved further than the number of buffers we handed out.
    UsedIndexOutOfRange,
    /// A descriptor index in a ring entry is not smaller than the queue size.
    DescriptorIndexOutOfRange,
    /// The driver offered a descriptor that the device already holds.
    DuplicateDescriptor,
    /// A descriptor has flags this engine does not support (`NEXT` or `INDIRECT`).
    UnsupportedDescriptorFlags,
    /// A descriptor's address/length does not lie inside the buffer pool.
    BufferOutOfBounds,
    /// A descriptor is shorter than an RPMsg header.
    BufferTooShort,
    /// The device returned a descriptor id the driver did not hand out.
    UsedIdNotInFlight,
    /// The device reported more bytes written than the buffer holds.
    UsedLengthTooLarge,
    /// An RPMsg header's payload length does not fit the buffer it arrived in.
    BadMessageLength,
    /// An RPMsg header names `RPMSG_ADDR_ANY` as source or destination.
    BadMessageAddress,
    /// A name-service message is not 40 bytes, has an unknown flag or an invalid name.
    BadNameService,
    /// The control area holds a value outside its valid range (peer id, layout field).
    BadControlValue,
    /// A message arrived for an endpoint address that does not exist here.
    UnknownDestination,

    /// The configuration is inconsistent (the text says which rule it breaks).
    InvalidConfig(&'static str),
    /// The shared region is smaller than the configuration needs.
    RegionTooSmall,
    /// The shared region pointer is null or not 8-byte aligned.
    RegionMisaligned,
    /// An access would fall outside the shared region (an engine bug, never peer data).
    OutOfBounds,
    /// The peer published a layout (version, queue size, buffer size) different from ours.
    LayoutMismatch,
    /// The link is not up yet (the driver has not set `DRIVER_OK`, or no peer bound).
    NotReady,
    /// No transmit buffer is free right now.
    NoTxBuffer,
    /// A blocking operation's deadline passed.
    Timeout,
    /// The payload is larger than a buffer's payload capacity.
    PayloadTooLarge,
    /// No endpoint has this local address.
    EndpointNotFound,
    /// The endpoint has no destination address yet.
    EndpointNotBound,
    /// The endpoint table is full.
    TooManyEndpoints,
    /// The requested local address is reserved or already used.
    AddressInUse,
    /// An endpoint name is longer than 31 bytes.
    NameTooLong,
    /// A buffer handle does not belong to this engine's current session.
    StaleBuffer,
    /// The peer's ivshmem id is unknown, so it cannot be notified.
    NoPeerId,
}

impl Error {
    /// Number of distinct error kinds (the size of [`ErrorCounters`]).
    pub const KINDS: usize = 30;

    /// A stable index for counting (0..[`Error::KINDS`]).
    pub const fn kind_index(&self) -> usize {
        match self {
            Error::AvailIndexOutOfRange => 0,
            Error::UsedIndexOutOfRange => 1,
            Error::DescriptorIndexOutOfRange => 2,
            Error::DuplicateDescriptor => 3,
            Error::UnsupportedDescriptorFlags => 4,
            Error::BufferOutOfBounds => 5,
            Error::BufferTooShort => 6,
            Error::UsedIdNotInFlight => 7,
            Error::UsedLengthTooLarge => 8,
            Error::BadMessageLength => 9,
            Error::BadMessageAddress => 10,
            Error::BadNameService => 11,
            Error::BadControlValue => 12,
            Error::UnknownDestination => 13,
            Error::InvalidConfig(_) => 14,
            Error::RegionTooSmall => 15,
            Error::RegionMisaligned => 16,
            Error::OutOfBounds => 17,
            Error::LayoutMismatch => 18,
            Error::NotReady => 19,
            Error::NoTxBuffer => 20,
            Error::Timeout => 21,
            Error::PayloadTooLarge => 22,
            Error::EndpointNotFound => 23,
            Error::EndpointNotBound => 24,
            Error::TooManyEndpoints => 25,
            Error::AddressInUse => 26,
            Error::NameTooLong => 27,
            Error::StaleBuffer => 28,
            Error::NoPeerId => 29,
        }
    }

    /// True when the error means the peer wrote something invalid into shared memory.
    pub const fn is_peer_fault(&self) -> bool {
        self.kind_index() <= Error::UnknownDestination.kind_index()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::AvailIndexOutOfRange => "available index moved by more than the queue size",
            Error::UsedIndexOutOfRange => "used index moved by more than the buffers in flight",
            Error::DescriptorIndexOutOfRange => "descriptor index out of range",
            Error::DuplicateDescriptor => "descriptor offered twice",
            Error::UnsupportedDescriptorFlags => "descriptor uses NEXT or INDIRECT",
            Error::BufferOutOfBounds => "buffer outside the shared buffer pool",
            Error::BufferTooShort => "buffer shorter than an RPMsg header",
            Error::UsedIdNotInFlight => "used element names a buffer not in flight",
            Error::UsedLengthTooLarge => "used length larger than the buffer",
            Error::BadMessageLength => "RPMsg payload length does not fit its buffer",
            Error::BadMessageAddress => "RPMsg source or destination is RPMSG_ADDR_ANY",
            Error::BadNameService => "malformed name-service message",
            Error::BadControlValue => "invalid value in the shared control area",
            Error::UnknownDestination => "message for an unknown endpoint",
            Error::InvalidConfig(why) => return write!(f, "invalid configuration: {why}"),
            Error::RegionTooSmall => "shared region too small for this configuration",
            Error::RegionMisaligned => "shared region pointer null or not 8-byte aligned",
            Error::OutOfBounds => "access outside the shared region",
            Error::LayoutMismatch => "peer uses a different shared-memory layout",
            Error::NotReady => "link not ready",
            Error::NoTxBuffer => "no transmit buffer available",
            Error::Timeout => "timed out",
            Error::PayloadTooLarge => "payload larger than the buffer payload capacity",
            Error::EndpointNotFound => "no such endpoint",
            Error::EndpointNotBound => "endpoint has no destination yet",
            Error::TooManyEndpoints => "endpoint table full",
            Error::AddressInUse => "endpoint address reserved or in use",
            Error::NameTooLong => "endpoint name longer than 31 bytes",
            Error::StaleBuffer => "buffer handle from another session",
            Error::NoPeerId => "peer ivshmem id unknown",
        };
        f.write_str(text)
    }
}

impl core::error::Error for Error {}

/// Result type of the engine.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// How many times each kind of [`Error`] was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounters {
    counts: [u32; Error::KINDS],
}

impl ErrorCounters {
    /// Counts one occurrence of `error` (saturating).
    pub fn record(&mut self, error: Error) {
        let slot = &mut self.counts[error.kind_index()];
        *slot = slot.saturating_add(1);
    }

    /// How many times errors of the same kind as `error` were recorded.
    pub fn get(&self, error: Error) -> u32 {
        self.counts[error.kind_index()]
    }

    /// Total of all errors caused by invalid data from the peer.
    pub fn peer_faults(&self) -> u32 {
        self.counts[..=Error::UnknownDestination.kind_index()]
            .iter()
            .fold(0u32, |a, b| a.saturating_add(*b))
    }

    /// Total of all recorded errors.
    pub fn total(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, b| a.saturating_add(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_indices_are_dense_and_distinct() {
        let all = [
            Error::AvailIndexOutOfRange,
            Error::UsedIndexOutOfRange,
            Error::DescriptorIndexOutOfRange,
            Error::DuplicateDescriptor,
            Error::UnsupportedDescriptorFlags,
            Error::BufferOutOfBounds,
            Error::BufferTooShort,
            Error::UsedIdNotInFlight,
            Error::UsedLengthTooLarge,
            Error::BadMessageLength,
            Error::BadMessageAddress,
            Error::BadNameService,
            Error::BadControlValue,
            Error::UnknownDestination,
            Error::InvalidConfig(""),
            Error::RegionTooSmall,
            Error::RegionMisaligned,
            Error::OutOfBounds,
            Error::LayoutMismatch,
            Error::NotReady,
            Error::NoTxBuffer,
            Error::Timeout,
            Error::PayloadTooLarge,
            Error::EndpointNotFound,
            Error::EndpointNotBound,
            Error::TooManyEndpoints,
            Error::AddressInUse,
            Error::NameTooLong,
            Error::StaleBuffer,
            Error::NoPeerId,
        ];
        assert_eq!(all.len(), Error::KINDS);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.kind_index(), i, "{e:?}");
            assert_eq!(e.is_peer_fault(), i <= 13, "{e:?}");
        }
    }

    #[test]
    fn counters_count_by_kind() {
        let mut c = ErrorCounters::default();
        c.record(Error::BadNameService);
        c.record(Error::BadNameService);
        c.record(Error::Timeout);
        assert_eq!(c.get(Error::BadNameService), 2);
        assert_eq!(c.get(Error::Timeout), 1);
        assert_eq!(c.peer_faults(), 2);
        assert_eq!(c.total(), 3);
    }
}
