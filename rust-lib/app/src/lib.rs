//! # rpmsg-app: the application both platforms run
//!
//! Everything above the [`rpmsg_engine`] that the Zephyr images (`rust-lib/zephyr-glue`)
//! and the native peer (`tools/rpmsg-ivshmem`) have in common, written once:
//!
//! * [`text`]: every console text (the OpenAMP sample's banners, echo blocks, `not ready`,
//!   `timed out`) and every error text of the commands;
//! * [`command`]: the commands' argument checks (`send`, `bench`);
//! * [`host`]: the host's endpoints, its receive step and `send` with its 5 s timeout;
//! * [`remote`]: the remote's endpoints, its echo and its banner;
//! * [`bench`]: `bench`'s round trips and stream, percentiles and result lines;
//! * [`status`]: the `status` text;
//! * [`send_blocking`]: the one place that waits for a transmit buffer.
//!
//! It is generic over three small traits the platforms implement: [`Text`]/[`Console`]
//! (console output), [`Port`] (run a step on the node, wait for the doorbell or a
//! deadline, and the clock). Nothing here allocates or uses `unsafe`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod bench;
pub mod command;
pub mod host;
pub mod remote;
pub mod status;
pub mod text;

use rpmsg_engine::rpmsg::Role;
use rpmsg_engine::{Doorbell, Error, Rpmsg, RxBuffer, TxBuffer};

/// The name of the remote's echo endpoint (as in the OpenAMP sample).
pub const ECHO_ENDPOINT: &str = "k";

/// The name of the remote's silent echo endpoint, which `bench` measures through: it
/// echoes every message unchanged and prints nothing.
pub const BENCH_ENDPOINT: &str = "bench";

/// How long `send` waits for each echo (and `bench` for any progress), in milliseconds.
pub const REPLY_TIMEOUT_MS: u64 = 5_000;

/// Where text goes: a growing block (a console line, a `String`, a fixed buffer).
pub trait Text {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);

    /// Appends `v` in decimal (no `core::fmt`: small code in the firmware).
    fn put_u64(&mut self, v: u64) {
        let mut digits = [0u8; 20];
        self.put(decimal(v, &mut digits));
    }
}

/// The console: [`Text`] in blocks, each written out in one piece so that concurrent
/// writers do not interleave inside one.
pub trait Console: Text {
    /// Writes the block out (the console text of the protocol).
    fn end(&mut self);

    /// Writes the block out as an error message (the native peer: on stderr).
    fn end_error(&mut self) {
        self.end();
    }

    /// A diagnostic line (not console text), the concatenation of `parts`: the
    /// platform's log.
    fn diag(&mut self, parts: &[Part<'_>]);
}

/// One piece of a diagnostic line ([`Console::diag`]), written without `core::fmt` (no
/// formatting machinery in the firmware).
#[derive(Debug, Clone, Copy)]
pub enum Part<'a> {
    /// Text.
    Str(&'a str),
    /// A whole number, in decimal.
    Num(u64),
    /// A signed whole number, in decimal.
    Signed(i64),
    /// An engine error: its `Display` text.
    Error(Error),
}

/// Appends the concatenation of `parts` (a diagnostic line) to `out`.
pub fn put_parts(out: &mut dyn Text, parts: &[Part<'_>]) {
    for part in parts {
        match *part {
            Part::Str(s) => out.put(s.as_bytes()),
            Part::Num(v) => out.put_u64(v),
            Part::Signed(v) if v < 0 => {
                out.put(b"-");
                out.put_u64(v.unsigned_abs());
            }
            Part::Signed(v) => out.put_u64(v.unsigned_abs()),
            Part::Error(e) => put_error(out, e),
        }
    }
}

/// Appends the `Display` text of `e`. (Not inlined: the table of error texts is walked
/// in one place of the firmware, whoever logs an error.)
#[inline(never)]
pub fn put_error(out: &mut dyn Text, e: Error) {
    let (prefix, text) = e.texts();
    out.put(prefix.as_bytes());
    out.put(text.as_bytes());
}

/// What the application needs from the platform to drive a node `N` (the host's
/// [`host::HostApp`], the remote's [`remote::RemoteApp`]).
pub trait Port<N> {
    /// Runs one short step on the node (the firmware: inside a critical section, because
    /// its receive thread shares the node). `None`: the node is not there.
    fn with<R>(&mut self, f: impl FnOnce(&mut N) -> R) -> Option<R>;

    /// Now, in ticks of [`Port::ticks_per_sec`] (monotonic, fine enough to time a round
    /// trip).
    fn now(&self) -> u64;

    /// Ticks per second of [`Port::now`].
    fn ticks_per_sec(&self) -> u64;

    /// Waits until the peer may have published something (a doorbell, or the rings seen
    /// moving while spinning) or `deadline` (ticks) passed; may return early.
    fn wait(&mut self, deadline: u64);

    /// `ms` milliseconds in ticks.
    fn ms(&self, ms: u64) -> u64 {
        ms.saturating_mul(self.ticks_per_sec()) / 1000
    }
}

/// Anything that sends from a local endpoint: the engine node in either role.
pub trait Sender<'a> {
    /// Sends `len` payload bytes from `ept` to the address it is bound to: `write` fills a
    /// shared transmit buffer in place (no private copy). Fails at once with
    /// [`Error::NoTxBuffer`] when none is free.
    fn try_send_with(
        &mut self,
        ept: u32,
        len: usize,
        write: &mut dyn FnMut(&mut TxBuffer<'a>) -> Result<(), Error>,
    ) -> Result<(), Error>;

    /// Sends the concatenation of `parts`.
    fn try_send_parts(&mut self, ept: u32, parts: &[&[u8]]) -> Result<(), Error> {
        let len = parts.iter().map(|p| p.len()).sum();
        self.try_send_with(ept, len, &mut |buf| {
            let mut at = 0;
            for part in parts {
                buf.write(at, part)?;
                at += part.len();
            }
            Ok(())
        })
    }

    /// Sends the payload of `rx` unchanged (an echo), copied from buffer to buffer.
    fn try_echo(&mut self, ept: u32, rx: &RxBuffer<'_>) -> Result<(), Error> {
        self.try_send_with(ept, rx.len(), &mut |buf| {
            let mut result = Ok(());
            let mut at = 0;
            for_each_chunk(rx, |chunk| {
                result = buf.write(at, chunk);
                at += chunk.len();
                result.is_ok()
            });
            if at != rx.len() {
                result = result.and(Err(Error::PayloadTooLarge));
            }
            result
        })
    }
}

impl<'a, R: Role<'a>, D: Doorbell> Sender<'a> for Rpmsg<'a, R, D> {
    fn try_send_with(
        &mut self,
        ept: u32,
        len: usize,
        write: &mut dyn FnMut(&mut TxBuffer<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.link_state() != rpmsg_engine::LinkState::Up {
            return Err(Error::NotReady);
        }
        let mut buf = self.get_tx_buffer()?;
        if let Err(e) = write(&mut buf) {
            self.release_tx_buffer(buf)?;
            return Err(e);
        }
        self.send_nocopy(ept, buf, len)
    }
}

/// Whether a send that failed with `e` may work later (no buffer yet, or the link is
/// being reset): wait and try again.
pub fn retryable(e: Error) -> bool {
    matches!(
        e,
        Error::NoTxBuffer | Error::NotReady | Error::EndpointNotBound
    )
}

/// Sends with `send` (a closure around the node's [`Sender`]), waiting until `deadline`
/// (ticks) for a transmit buffer: the one blocking send of the application. Only a missing
/// buffer is waited for: a link that went down fails at once, so that nothing taken in one
/// session is sent into the next.
pub fn send_blocking<N, P: Port<N>>(
    port: &mut P,
    send: impl Fn(&mut N) -> Result<(), Error>,
    deadline: u64,
) -> Result<(), Error> {
    loop {
        match port.with(&send) {
            None => return Err(Error::NotReady),
            Some(Err(Error::NoTxBuffer)) => {}
            Some(other) => return other,
        }
        if port.now() >= deadline {
            return Err(Error::Timeout);
        }
        port.wait(deadline);
    }
}

/// Remembers the last engine error reported, so that a condition that persists (a peer
/// with another layout, say) is logged once and then only counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorOnce(Option<Error>);

impl ErrorOnce {
    /// Nothing reported yet.
    pub const fn new() -> Self {
        Self(None)
    }

    /// Logs `e` through `out` unless it was the last one logged.
    pub fn report(&mut self, out: &mut impl Console, role: &str, what: &str, e: Error) {
        if self.0 != Some(e) {
            self.0 = Some(e);
            out.diag(&[
                Part::Str(role),
                Part::Str(": "),
                Part::Str(what),
                Part::Str(": "),
                Part::Error(e),
                Part::Str(" (repeats are only counted)"),
            ]);
        }
    }

    /// Forgets the last error (the link came up again).
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

/// The link came up in `session` with the peer `peer`: logs it (`who`: "host: link up
/// with the remote", ...) and prints the banner of `side` on `board`.
fn link_up(
    out: &mut impl Console,
    who: &str,
    session: u32,
    peer: Option<u16>,
    board: &str,
    side: &str,
) {
    let peer = peer.map_or(-1, i64::from);
    out.diag(&[
        Part::Str(who),
        Part::Str(" (ivshmem id "),
        Part::Signed(peer),
        Part::Str("), session "),
        Part::Num(u64::from(session)),
    ]);
    text::banner(out, board, side);
    out.end();
}

/// `v` in decimal, written to the end of `buf`; returns the digits. (Not inlined: one
/// copy in the firmware, not one per number printed.)
#[inline(never)]
pub fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// Reads a received payload in small pieces straight from shared memory (no copy of the
/// whole message) and hands each to `f`; stops when `f` returns false.
pub fn for_each_chunk(rx: &RxBuffer<'_>, mut f: impl FnMut(&[u8]) -> bool) {
    let mut chunk = [0u8; 64];
    let mut offset = 0;
    while offset < rx.len() {
        let n = match rx.read(offset, &mut chunk) {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        if !f(&chunk[..n]) {
            return;
        }
        offset += n;
    }
}

/// Appends the text of a received payload as C prints it with `%s` (up to the first NUL).
pub fn put_c_string(out: &mut impl Text, rx: &RxBuffer<'_>) {
    for_each_chunk(rx, |chunk| match chunk.iter().position(|b| *b == 0) {
        Some(n) => {
            out.put(&chunk[..n]);
            false
        }
        None => {
            out.put(chunk);
            true
        }
    });
}

/// Whether a received payload is exactly the concatenation of `parts`.
pub fn payload_equals(rx: &RxBuffer<'_>, parts: &[&[u8]]) -> bool {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if rx.len() != total {
        return false;
    }
    let mut expected = parts.iter().flat_map(|p| p.iter());
    let mut equal = true;
    for_each_chunk(rx, |chunk| {
        equal = chunk.iter().all(|b| expected.next() == Some(b));
        equal
    });
    equal
}

#[cfg(feature = "alloc")]
impl Text for alloc::vec::Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}
