//! The console text (exactly the reference's) and the checks of `send`'s arguments.
//!
//! The error texts match the native peer's (`tools/rpmsg-ivshmem`), so both say the
//! same thing for the same mistake.

//! Nothing here uses `core::fmt`: numbers go through [`FixedBuf::push_u64`], so the
//! per-message path does no formatting beyond copying bytes.

use super::MAX_TEXT;
use crate::FixedBuf;

/// `send` (or `status`) while the link is down or the remote's endpoint is not bound.
pub const NOT_READY: &[u8] = b"RPMsg over IVSHMEM backend is not ready yet!\n";
/// No echo within the reply timeout.
pub const TIMED_OUT: &[u8] = b"Remote side response timed out!\n";

/// Writes the banner line of `side` ("Host" or "Remote") into `out`.
pub fn banner(out: &mut FixedBuf<128>, side: &str) {
    out.push_bytes(b"Hello ");
    out.push_bytes(zephyr::kconfig::CONFIG_BOARD.as_bytes());
    out.push_bytes(b" - ");
    out.push_bytes(side.as_bytes());
    out.push_bytes(b" Side, the communication over RPMsg is ready to use!\n");
}

/// Parses `send`'s count: a whole number from 1 to `u64::MAX`, digits only (`abc`, `-1`,
/// `0`, `1e3`, `+5`, `0x10` and out-of-range values are refused).
pub fn parse_count(text: &[u8]) -> Option<u64> {
    parse_whole(text).filter(|v| *v != 0)
}

/// A whole number (digits only, no sign, no spaces) that fits a u64.
pub fn parse_whole(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for d in text {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

/// The error line for a count `parse_count` refused.
pub fn bad_count(out: &mut FixedBuf<640>, count: &[u8]) {
    out.push_bytes(b"send: invalid number of messages \"");
    out.push_bytes(count);
    out.push_bytes(b"\": expected a whole number from 1 to ");
    out.push_u64(u64::MAX);
    out.push_bytes(b"\n");
}

/// Writes the error line for a string longer than [`MAX_TEXT`] and returns true;
/// returns false (writing nothing) if it fits.
pub fn too_long(out: &mut FixedBuf<640>, text: &[u8]) -> bool {
    if text.len() <= MAX_TEXT {
        return false;
    }
    out.push_bytes(b"send: string too long: ");
    out.push_u64(text.len() as u64);
    out.push_bytes(b" bytes, but at most ");
    out.push_u64(MAX_TEXT as u64);
    out.push_bytes(b" fit in one message (");
    out.push_u64(MAX_TEXT as u64 + 1);
    out.push_bytes(b"-byte payload, including the terminating NUL); nothing was sent\n");
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
    out.push_bytes(b" ]\nat message number ");
    out.push_u64(i);
    out.push_bytes(b"\n\n");
}

/// The remote's block for a received string.
pub fn received(out: &mut FixedBuf<640>, payload: &[u8]) {
    out.push_bytes(b"Host side sent a string:\n[ ");
    out.push_bytes(c_string(payload));
    out.push_bytes(b" ]\nNow echoing it back!\n\n");
}

/// `bench`'s error line for an argument out of range.
pub fn bench_bad_arg(out: &mut FixedBuf<256>, what: &[u8], arg: &[u8], min: u64, max: u64) {
    out.push_bytes(b"bench: invalid ");
    out.push_bytes(what);
    out.push_bytes(b" \"");
    out.push_bytes(arg);
    out.push_bytes(b"\": expected a whole number from ");
    out.push_u64(min);
    out.push_bytes(b" to ");
    out.push_u64(max);
    out.push_bytes(b"\n");
}

/// `bench`'s round-trip line; `rtt_us`: p50, p99, max.
pub fn bench_round_trips(
    out: &mut FixedBuf<256>,
    n: u32,
    size: usize,
    per_s: u64,
    rtt_us: [u64; 3],
) {
    out.push_bytes(b"bench: ");
    out.push_u64(u64::from(n));
    out.push_bytes(b" round trips of ");
    out.push_u64(size as u64);
    out.push_bytes(b" bytes: ");
    out.push_u64(per_s);
    out.push_bytes(b" round trips/s, RTT p50 ");
    out.push_u64(rtt_us[0]);
    out.push_bytes(b" us, p99 ");
    out.push_u64(rtt_us[1]);
    out.push_bytes(b" us, max ");
    out.push_u64(rtt_us[2]);
    out.push_bytes(b" us\n");
}

/// `bench`'s streaming line.
pub fn bench_stream(
    out: &mut FixedBuf<256>,
    n: u32,
    window: u32,
    size: usize,
    msgs_s: u64,
    kb_s: u64,
) {
    out.push_bytes(b"bench: ");
    out.push_u64(u64::from(n));
    out.push_bytes(b" messages of ");
    out.push_u64(size as u64);
    out.push_bytes(b" bytes streamed, ");
    out.push_u64(u64::from(window));
    out.push_bytes(b" in flight: ");
    out.push_u64(msgs_s);
    out.push_bytes(b" messages/s, ");
    out.push_u64(kb_s);
    out.push_bytes(b" KB/s echoed\n");
}
