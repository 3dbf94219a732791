//! Console output: the protocol's text on stdout, one write (and flush) per block, so that a
//! reader of a pipe sees whole blocks; diagnostics on stderr.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a piece of console text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (the protocol's console text).
    Stdout,
    /// Standard error (diagnostics).
    Stderr,
}

/// Writes blocks of console text. A failed write to stdout (for example a closed pipe) is
/// reported once on stderr and otherwise ignored: echoing matters more than printing.
#[derive(Debug)]
pub struct Console {
    block: Vec<u8>,
    failed: bool,
    /// Where the application's blocks go ([`rpmsg_app::Console::end`]); `None`: nowhere.
    to: Option<Stream>,
}

impl Default for Console {
    fn default() -> Self {
        Self::to(Some(Stream::Stdout))
    }
}

impl Console {
    /// A console with an empty block, writing to stdout.
    pub fn new() -> Self {
        Self::default()
    }

    /// A console whose application blocks go to `to` (`None`: dropped).
    pub fn to(to: Option<Stream>) -> Self {
        Self {
            block: Vec::new(),
            failed: false,
            to,
        }
    }

    /// Appends bytes to the current block.
    pub fn put(&mut self, bytes: &[u8]) -> &mut Self {
        self.block.extend_from_slice(bytes);
        self
    }

    /// Appends a formatted string to the current block.
    pub fn fmt(&mut self, args: std::fmt::Arguments<'_>) -> &mut Self {
        // Writing into a Vec cannot fail.
        let _ = self.block.write_fmt(args);
        self
    }

    /// Writes the current block to `stream` in one piece, flushes, and starts a new block.
    pub fn flush_to(&mut self, stream: Stream) {
        let result = match stream {
            Stream::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.block).and_then(|()| out.flush())
            }
            Stream::Stderr => io::stderr().lock().write_all(&self.block),
        };
        self.block.clear();
        if let Err(e) = result {
            if !self.failed {
                self.failed = true;
                eprintln!("rpmsg-ivshmem: cannot write to {stream:?}: {e} (output dropped)");
            }
        }
    }

    /// Writes the current block to stdout.
    pub fn flush(&mut self) {
        self.flush_to(Stream::Stdout);
    }

    /// Writes one line (a newline is added) to `stream` at once.
    pub fn line(&mut self, stream: Stream, text: &str) {
        let pending = std::mem::take(&mut self.block);
        self.put(text.as_bytes()).put(b"\n");
        self.flush_to(stream);
        self.block = pending;
    }
}

impl rpmsg_app::Text for Console {
    fn put(&mut self, bytes: &[u8]) {
        self.block.extend_from_slice(bytes);
    }
}

impl rpmsg_app::Console for Console {
    fn end(&mut self) {
        match self.to {
            Some(stream) => self.flush_to(stream),
            None => self.block.clear(),
        }
    }

    fn end_error(&mut self) {
        self.flush_to(Stream::Stderr);
    }

    fn diag(&mut self, parts: &[rpmsg_app::Part<'_>]) {
        let mut line = Vec::new();
        rpmsg_app::put_parts(&mut line, parts);
        diag(format_args!("{}", String::from_utf8_lossy(&line)));
    }
}

static DIAGNOSTICS: AtomicBool = AtomicBool::new(true);

/// Turns the diagnostic lines of [`diag`] on or off (`bench` turns them off while it
/// measures; errors are still returned and reported).
pub fn set_diagnostics(on: bool) {
    DIAGNOSTICS.store(on, Ordering::Relaxed);
}

/// Prints a diagnostic line on stderr, prefixed with the program name, in one write.
pub fn diag(args: std::fmt::Arguments<'_>) {
    if !DIAGNOSTICS.load(Ordering::Relaxed) {
        return;
    }
    let line = format!("rpmsg-ivshmem: {args}\n");
    let _ = io::stderr().lock().write_all(line.as_bytes());
}

/// `diag!` formats a diagnostic line for stderr.
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => {
        $crate::console::diag(format_args!($($arg)*))
    };
}
