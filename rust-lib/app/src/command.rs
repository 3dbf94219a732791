//! The commands' argument checks, done before anything is sent. The error texts are in
//! [`crate::text`]; [`ArgError::write`] writes them.

use crate::{text, Text};

/// An argument a command refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgError<'t> {
    /// `send`'s count is not a whole number from 1 to `u64::MAX`.
    BadCount(&'t [u8]),
    /// `send`'s string and its NUL do not fit one payload of `max_payload` bytes.
    TooLong {
        /// The string's length.
        len: usize,
        /// Payload bytes per message.
        max_payload: usize,
    },
    /// `send`'s string contains a NUL (the receiver would cut it there).
    Nul,
    /// A `bench` argument out of range.
    Bench {
        /// Which argument ("payload size", "number of round trips").
        what: &'static str,
        /// As typed.
        arg: &'t [u8],
        /// Smallest value accepted.
        min: u64,
        /// Largest value accepted.
        max: u64,
    },
}

impl ArgError<'_> {
    /// The error text, without the command's prefix and newline.
    pub fn write(&self, out: &mut impl Text) {
        match *self {
            Self::BadCount(count) => text::bad_count(out, count),
            Self::TooLong { len, max_payload } => text::too_long(out, len, max_payload),
            Self::Nul => text::has_nul(out),
            Self::Bench {
                what,
                arg,
                min,
                max,
            } => text::bench_bad_arg(out, what, arg, min, max),
        }
    }

    /// The command it belongs to (the prefix of its line).
    pub fn command(&self) -> &'static str {
        match self {
            Self::Bench { .. } => "bench",
            _ => "send",
        }
    }

    /// The whole line: `<command>: <error>\n`.
    pub fn write_line(&self, out: &mut impl Text) {
        out.put(self.command().as_bytes());
        out.put(b": ");
        self.write(out);
        out.put(b"\n");
    }
}

/// A whole number (digits only: no sign, no spaces, no NUL) that fits a u64.
pub fn parse_whole(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |value, d| {
        if !d.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `send`'s count: a whole number from 1 to `u64::MAX`, digits only (`abc`, `-1`, `0`,
/// `1e3`, `+5`, ` 5`, `0x10`, a NUL and out-of-range values are refused).
pub fn parse_count(count: &[u8]) -> Result<u64, ArgError<'_>> {
    parse_whole(count)
        .filter(|v| *v != 0)
        .ok_or(ArgError::BadCount(count))
}

/// Checks `send`'s string: no NUL inside, and it plus its terminating NUL fit a payload of
/// `max_payload` bytes.
pub fn check_text(text: &[u8], max_payload: usize) -> Result<(), ArgError<'static>> {
    // A plain loop, not `contains` (core's word-wise memchr, 0.1 KB in the firmware):
    // a command line is short.
    #[allow(clippy::manual_contains)]
    let nul = text.iter().any(|b| *b == 0);
    if nul {
        return Err(ArgError::Nul);
    }
    if text.len() >= max_payload {
        return Err(ArgError::TooLong {
            len: text.len(),
            max_payload,
        });
    }
    Ok(())
}

/// `send <string> <count>`, checked.
pub fn send_args<'t>(
    text: &'t [u8],
    count: &'t [u8],
    max_payload: usize,
) -> Result<(&'t [u8], u64), ArgError<'t>> {
    let count = parse_count(count)?;
    check_text(text, max_payload)?;
    Ok((text, count))
}

/// `bench`'s default payload: a full one.
pub const BENCH_DEFAULT_COUNT: u64 = 1000;

/// `bench [payload] [count]`, checked: payload 0 to `max_payload` bytes (default
/// `max_payload`), count 1 to `max_count` (default [`BENCH_DEFAULT_COUNT`], at most
/// `max_count`). Returns `(payload size, count)`.
pub fn bench_args<'t>(
    payload: Option<&'t [u8]>,
    count: Option<&'t [u8]>,
    max_payload: usize,
    max_count: u64,
) -> Result<(usize, u64), ArgError<'t>> {
    let max = max_payload as u64;
    let size = match payload {
        None => max,
        Some(p) => parse_whole(p)
            .filter(|v| *v <= max)
            .ok_or(ArgError::Bench {
                what: "payload size",
                arg: p,
                min: 0,
                max,
            })?,
    };
    let n = match count {
        None => BENCH_DEFAULT_COUNT.min(max_count),
        Some(c) => parse_whole(c)
            .filter(|v| (1..=max_count).contains(v))
            .ok_or(ArgError::Bench {
                what: "number of round trips",
                arg: c,
                min: 1,
                max: max_count,
            })?,
    };
    Ok((size as usize, n))
}
