//! The console text (exactly the reference's) and the checks of `send`'s arguments.
//!
//! The error texts match the native peer's (`tools/rpmsg-ivshmem`), so both say the
//! same thing for the same mistake.

use super::MAX_TEXT;
use crate::FixedBuf;
use core::fmt::Write;

/// `send` (or `status`) while the link is down or the remote's endpoint is not bound.
pub const NOT_READY: &[u8] = b"RPMsg over IVSHMEM backend is not ready yet!\n";
/// No echo within the reply timeout.
pub const TIMED_OUT: &[u8] = b"Remote side response timed out!\n";

/// Writes the banner line of `side` ("Host" or "Remote") into `out`.
pub fn banner(out: &mut FixedBuf<128>, side: &str) {
    let _ = write!(
        out,
        "Hello {} - {} Side, the communication over RPMsg is ready to use!\n",
        zephyr::kconfig::CONFIG_BOARD,
        side
    );
}

/// Parses `send`'s count: a whole number from 1 to `u64::MAX`, digits only (`abc`, `-1`,
/// `0`, `1e3`, `+5`, `0x10` and out-of-range values are refused).
pub fn parse_count(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for d in text {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (value != 0).then_some(value)
}

/// The error line for a count `parse_count` refused.
pub fn bad_count(out: &mut FixedBuf<640>, count: &[u8]) {
    out.push_bytes(b"send: invalid number of messages \"");
    out.push_bytes(count);
    let _ = write!(out, "\": expected a whole number from 1 to {}\n", u64::MAX);
}

/// Writes the error line for a string longer than [`MAX_TEXT`] and returns true;
/// returns false (writing nothing) if it fits.
pub fn too_long(out: &mut FixedBuf<640>, text: &[u8]) -> bool {
    if text.len() <= MAX_TEXT {
        return false;
    }
    let _ = write!(
        out,
        "send: string too long: {} bytes, but at most {} fit in one message \
         ({}-byte payload, including the terminating NUL); nothing was sent\n",
        text.len(),
        MAX_TEXT,
        MAX_TEXT + 1
    );
    true
}

/// The text of a received payload as C prints it with `%s`: up to the first NUL.
pub fn c_string(payload: &[u8]) -> &[u8] {
    match payload.iter().position(|b| *b == 0) {
        Some(n) => &payload[..n],
        None => payload,
    }
}

/// The host's block for echo number `i`.
pub fn echoed(out: &mut FixedBuf<640>, echo: &[u8], i: u64) {
    out.push_bytes(b"Remote side echoed the string back:\n[ ");
    out.push_bytes(c_string(echo));
    let _ = write!(out, " ]\nat message number {}\n\n", i);
}

/// The remote's block for a received string.
pub fn received(out: &mut FixedBuf<640>, payload: &[u8]) {
    out.push_bytes(b"Host side sent a string:\n[ ");
    out.push_bytes(c_string(payload));
    out.push_bytes(b" ]\nNow echoing it back!\n\n");
}
