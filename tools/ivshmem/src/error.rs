//! The crate's error type.

use std::fmt;
use std::io;

/// Everything that can go wrong in this crate.
#[derive(Debug)]
pub enum Error {
    /// A system call failed; `context` says what we were doing.
    Io {
        /// What was being attempted, e.g. "connect to /tmp/ivshmem_socket".
        context: String,
        /// The operating-system error.
        source: io::Error,
    },
    /// The other side broke the ivshmem protocol (version 0).
    Protocol(String),
    /// Something did not happen within the allowed time.
    Timeout(String),
    /// The server closed the connection.
    ServerClosed,
    /// Invalid configuration or command-line input.
    Config(String),
}

impl Error {
    /// Wraps an `io::Error` with a description of what failed.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Protocol(msg) => write!(f, "protocol error: {msg}"),
            Error::Timeout(msg) => write!(f, "timed out: {msg}"),
            Error::ServerClosed => write!(f, "the server closed the connection"),
            Error::Config(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Extension to attach context to `io::Result`s.
pub(crate) trait Context<T> {
    /// Converts the error into [`Error::Io`] with `context`.
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|e| Error::io(context(), e))
    }
}
