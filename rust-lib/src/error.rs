//! One error type for the whole engine, and counters of what went wrong.
//!
//! Errors caused by the peer (anything read from shared memory) never panic: they are
//! returned as [`Error::Peer`] with the [`PeerFault`] that says what was wrong, and the
//! engine also counts them in [`ErrorCounters`] so that a long-running node can report how
//! often its peer misbehaved.

use core::fmt;

/// Texts stored as one string and the offset where each ends: two bytes per text instead
/// of the pointer and length per text (16 bytes) and the jump table a `match` on
/// `&'static str` compiles to. Error texts are read only to print them, in the firmware
/// once per failure.
struct Joined<const N: usize> {
    all: &'static str,
    ends: [u16; N],
}

impl<const N: usize> Joined<N> {
    /// `all`, the concatenation of texts of lengths `lens` (see [`joined!`]).
    const fn new(all: &'static str, lens: [usize; N]) -> Self {
        let mut ends = [0u16; N];
        let mut end = 0;
        let mut i = 0;
        while i < N {
            end += lens[i];
            ends[i] = end as u16;
            i += 1;
        }
        assert!(end == all.len() && end <= u16::MAX as usize);
        Self { all, ends }
    }

    /// Text `i` (empty beyond the table).
    fn get(&self, i: usize) -> &'static str {
        text_at(self.all, &self.ends, i)
    }
}

/// [`Joined::get`], not generic over the table's length: one copy in a firmware image.
#[inline(never)]
fn text_at(all: &'static str, ends: &[u16], i: usize) -> &'static str {
    let Some(&end) = ends.get(i) else {
        return "";
    };
    let start = match i.checked_sub(1) {
        Some(before) => ends.get(before).copied().unwrap_or(0),
        None => 0,
    };
    all.get(start as usize..end as usize).unwrap_or("")
}

/// A [`Joined`] of the given literals.
macro_rules! joined {
    ($($text:literal),* $(,)?) => {
        Joined::new(concat!($($text),*), [$($text.len()),*])
    };
}

/// Declares a C-like enum once: its doc, each kind with its doc and its text, `ALL` in
/// declaration order, `text()` and a `Display` that writes the text.
macro_rules! text_enum {
    (
        $(#[$meta:meta])* $vis:vis enum $name:ident {
            $($(#[doc = $doc:literal])* $kind:ident => $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[doc = $doc])* $kind,)*
        }

        impl $name {
            /// Every kind, in declaration order.
            pub const ALL: [$name; [$(stringify!($kind)),*].len()] = [$($name::$kind),*];

            /// The kind, as text.
            pub fn text(self) -> &'static str {
                const TEXTS: Joined<{ $name::ALL.len() }> = joined!($($text),*);
                TEXTS.get(self as usize)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.text())
            }
        }
    };
}

text_enum! {
    /// Invalid data found in shared memory (written by the peer, or corrupted).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum PeerFault {
        /// An available-ring index moved further than the queue size since we last looked.
        AvailIndexOutOfRange => "available index moved by more than the queue size",
        /// A used-ring index moved further than the number of buffers we handed out.
        UsedIndexOutOfRange => "used index moved by more than the buffers in flight",
        /// A descriptor index in a ring entry is not smaller than the queue size.
        DescriptorIndexOutOfRange => "descriptor index out of range",
        /// The driver offered a descriptor that the device already holds.
        DuplicateDescriptor => "descriptor offered twice",
        /// A descriptor has flags this engine does not support (`NEXT` or `INDIRECT`).
        UnsupportedDescriptorFlags => "descriptor uses NEXT or INDIRECT",
        /// A descriptor's address/length does not lie inside the buffer pool.
        BufferOutOfBounds => "buffer outside the shared buffer pool",
        /// A descriptor is shorter than an RPMsg header.
        BufferTooShort => "buffer shorter than an RPMsg header",
        /// The device returned a descriptor id the driver did not hand out.
        UsedIdNotInFlight => "used element names a buffer not in flight",
        /// The device reported more bytes written than the buffer holds.
        UsedLengthTooLarge => "used length larger than the buffer",
        /// An RPMsg header's payload length does not fit the buffer it arrived in.
        BadMessageLength => "RPMsg payload length does not fit its buffer",
        /// An RPMsg header names `RPMSG_ADDR_ANY` as source or destination.
        BadMessageAddress => "RPMsg source or destination is RPMSG_ADDR_ANY",
        /// A name-service message is not 40 bytes, has an unknown flag or a name that is not
        /// printable ASCII.
        BadNameService => "malformed name-service message",
        /// The control area holds a value outside its valid range (peer id, layout field).
        BadControlValue => "invalid value in the shared control area",
        /// A message arrived for an endpoint address that does not exist here.
        UnknownDestination => "message for an unknown endpoint",
        /// A remote of ours destroyed an endpoint we are bound to, or announced a bound name at
        /// another address: it never does either within a session.
        NameServiceConflict => "name-service message undoes a binding of this session",
    }
}

impl PeerFault {
    /// Number of kinds.
    pub const KINDS: usize = PeerFault::ALL.len();

    /// A ring index moved impossibly far, or the bindings of the session are no longer
    /// the remote's: the link is broken until a new session.
    pub const fn breaks_link(self) -> bool {
        matches!(
            self,
            Self::AvailIndexOutOfRange | Self::UsedIndexOutOfRange | Self::NameServiceConflict
        )
    }
}

text_enum! {
    /// The configuration rule an [`Error::InvalidConfig`] breaks.
    ///
    /// A one-byte code rather than the text itself, so that [`Error`] stays two bytes and a
    /// `Result` of a small value is returned in registers on the per-message paths.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum ConfigRule {
        /// The queue size is not a power of two from 1 to 256.
        QueueSize => "queue size must be a power of two from 1 to 256",
        /// The vring alignment is not a power of two from 4 to 4096.
        Align => "vring align must be a power of two from 4 to 4096",
        /// The buffer size is not a multiple of 8 from 32 to 65536.
        BufSize => "buffer size must be a multiple of 8 from 32 to 65536",
        /// The region size is not a multiple of 8 or larger than 1 GiB.
        ShmSize => "region size must be a multiple of 8 and at most 1 GiB",
        /// The region size is not a multiple of the vring alignment.
        ShmAlign => "region size must be a multiple of the vring align",
        /// The ring area's size overflows.
        RingArea => "ring area overflows",
        /// The layout's size overflows.
        LayoutSize => "layout overflows",
        /// The configured region size differs from the region's length.
        RegionLength => "config shm_size differs from the region's length",
    }
}

/// Everything that can go wrong in the engine: what the peer wrote ([`Error::Peer`]), or a
/// local misuse or condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// Invalid data in shared memory.
    Peer(PeerFault),
    /// The configuration is inconsistent ([`ConfigRule`] says which rule it breaks).
    InvalidConfig(ConfigRule),
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
    /// A blocking operation ran out of time.
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
}

impl From<PeerFault> for Error {
    fn from(fault: PeerFault) -> Self {
        Error::Peer(fault)
    }
}

/// Kinds of [`Error`] that are not peer faults, for counting.
const LOCAL_KINDS: usize = 15;

impl Error {
    /// Number of distinct error kinds (the size of [`ErrorCounters`]).
    pub const KINDS: usize = PeerFault::KINDS + LOCAL_KINDS;

    /// The peer fault, if this is one.
    pub const fn peer_fault(&self) -> Option<PeerFault> {
        match self {
            Error::Peer(f) => Some(*f),
            _ => None,
        }
    }

    /// True when the error means the peer wrote something invalid into shared memory.
    pub const fn is_peer_fault(&self) -> bool {
        self.peer_fault().is_some()
    }

    /// A stable index for counting (0..[`Error::KINDS`]): the peer faults first.
    pub const fn kind_index(&self) -> usize {
        let local = match self {
            Error::Peer(f) => return *f as usize,
            Error::InvalidConfig(_) => 0,
            Error::RegionTooSmall => 1,
            Error::RegionMisaligned => 2,
            Error::OutOfBounds => 3,
            Error::LayoutMismatch => 4,
            Error::NotReady => 5,
            Error::NoTxBuffer => 6,
            Error::Timeout => 7,
            Error::PayloadTooLarge => 8,
            Error::EndpointNotFound => 9,
            Error::EndpointNotBound => 10,
            Error::TooManyEndpoints => 11,
            Error::AddressInUse => 12,
            Error::NameTooLong => 13,
            Error::StaleBuffer => 14,
        };
        PeerFault::KINDS + local
    }
}

impl Error {
    /// The text of the error in two pieces, a prefix (empty, or `"invalid configuration: "`)
    /// and the rest: the `Display` text without `core::fmt` (small firmware diagnostics).
    pub fn texts(&self) -> (&'static str, &'static str) {
        // The local kinds in the order of `kind_index` (the first, InvalidConfig, has its
        // rule's text instead).
        const LOCAL: Joined<LOCAL_KINDS> = joined!(
            "",
            "shared region too small for this configuration",
            "shared region pointer null or not 8-byte aligned",
            "access outside the shared region",
            "peer uses a different shared-memory layout",
            "link not ready",
            "no transmit buffer available",
            "timed out",
            "payload larger than the buffer payload capacity",
            "no such endpoint",
            "endpoint has no destination yet",
            "endpoint table full",
            "endpoint address reserved or in use",
            "endpoint name longer than 31 bytes",
            "buffer handle from another session",
        );
        match self {
            Error::Peer(fault) => ("", fault.text()),
            Error::InvalidConfig(why) => ("invalid configuration: ", why.text()),
            _ => ("", LOCAL.get(self.kind_index() - PeerFault::KINDS)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, text) = self.texts();
        f.write_str(prefix)?;
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
        sum(&self.counts[..PeerFault::KINDS])
    }

    /// Total of all recorded errors.
    pub fn total(&self) -> u32 {
        sum(&self.counts)
    }
}

fn sum(counts: &[u32]) -> u32 {
    counts.iter().fold(0u32, |a, b| a.saturating_add(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local kinds other than `InvalidConfig`, in the order of `kind_index`.
    const LOCAL_WITHOUT_PAYLOAD: [Error; LOCAL_KINDS - 1] = [
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
    ];

    #[test]
    fn kind_indices_are_dense_and_distinct() {
        let peer = PeerFault::ALL;
        for (i, f) in peer.iter().enumerate() {
            assert_eq!(*f as usize, i, "{f:?}");
        }
        assert_eq!(peer.len(), PeerFault::KINDS);
        assert_eq!(peer.len() + 1 + LOCAL_WITHOUT_PAYLOAD.len(), Error::KINDS);
        let all = peer
            .iter()
            .map(|f| Error::Peer(*f))
            .chain([Error::InvalidConfig(ConfigRule::QueueSize)])
            .chain(LOCAL_WITHOUT_PAYLOAD);
        let mut seen = [false; Error::KINDS];
        for e in all {
            assert!(!seen[e.kind_index()], "{e:?}");
            seen[e.kind_index()] = true;
            assert_eq!(e.is_peer_fault(), matches!(e, Error::Peer(_)), "{e:?}");
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn every_error_has_its_own_text() {
        let local = [
            (
                Error::RegionTooSmall,
                "shared region too small for this configuration",
            ),
            (Error::NotReady, "link not ready"),
            (Error::StaleBuffer, "buffer handle from another session"),
        ];
        for (e, text) in local {
            assert_eq!(e.texts(), ("", text));
        }
        assert_eq!(
            Error::InvalidConfig(ConfigRule::RegionLength).texts(),
            (
                "invalid configuration: ",
                "config shm_size differs from the region's length"
            )
        );
        assert_eq!(
            PeerFault::ALL[0].text(),
            "available index moved by more than the queue size"
        );
        assert_eq!(
            PeerFault::NameServiceConflict.text(),
            "name-service message undoes a binding of this session"
        );
        let mut seen: heapless::Vec<(&str, &str), 64> = heapless::Vec::new();
        let all = PeerFault::ALL
            .iter()
            .map(|f| Error::Peer(*f))
            .chain(ConfigRule::ALL.iter().map(|r| Error::InvalidConfig(*r)))
            .chain(LOCAL_WITHOUT_PAYLOAD);
        for e in all {
            let (prefix, text) = e.texts();
            assert!(!text.is_empty(), "{e:?}");
            assert!(!seen.contains(&(prefix, text)), "{e:?}: {text}");
            seen.push((prefix, text)).unwrap();
        }
    }

    #[test]
    fn counters_count_by_kind() {
        let mut c = ErrorCounters::default();
        c.record(PeerFault::BadNameService.into());
        c.record(Error::Peer(PeerFault::BadNameService));
        c.record(Error::Timeout);
        assert_eq!(c.get(Error::Peer(PeerFault::BadNameService)), 2);
        assert_eq!(c.get(Error::Timeout), 1);
        assert_eq!(c.peer_faults(), 2);
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn peer_faults_display_as_themselves() {
        let e = Error::Peer(PeerFault::UsedLengthTooLarge);
        assert_eq!(
            e.peer_fault().map(PeerFault::text),
            Some("used length larger than the buffer")
        );
        assert!(PeerFault::UsedIndexOutOfRange.breaks_link());
        assert!(!PeerFault::BadNameService.breaks_link());
    }
}
