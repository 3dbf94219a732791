//! The error type of the tool: a message for the user and the exit status it implies.

use std::fmt;

/// Exit status for usage errors (bad options, bad arguments): nothing was attempted.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for failures while running (server absent, timeout, link not ready, ...).
pub const EXIT_FAILURE: u8 = 1;

/// A failure, with what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The command line is wrong; nothing was attempted.
    Usage(String),
    /// Something failed at run time; the message says what and, where possible, what to do.
    Runtime(String),
    /// Already reported on the console (e.g. the timeout line): exit non-zero silently.
    Reported,
}

impl Error {
    /// A usage error.
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    /// A run-time error.
    pub fn runtime(msg: impl Into<String>) -> Self {
        Error::Runtime(msg.into())
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Runtime(_) | Error::Reported => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Runtime(m) => f.write_str(m),
            Error::Reported => f.write_str("failed (reported above)"),
        }
    }
}

impl std::error::Error for Error {}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
