//! Every console text of both platforms, in one place: the OpenAMP `dual_qemu_ivshmem`
//! sample's (banners, echo blocks, `not ready`, `timed out`), the commands' usage and
//! error texts, and `bench`'s result lines. Each is written into a [`Text`] without
//! `core::fmt`, so the firmware's per-message path only copies bytes.

use crate::Text;

/// `send` (or `bench`) while the link is down or the remote's endpoint is not bound.
pub const NOT_READY: &str = "RPMsg over IVSHMEM backend is not ready yet!";
/// No echo within the reply timeout.
pub const TIMED_OUT: &str = "Remote side response timed out!";
/// The host's log line when the remote's heartbeat stopped (`Rpmsg::keep_alive`).
pub const REMOTE_SILENT: &str =
    "host: the remote's heartbeat stopped; new session, waiting for a remote";
/// The remote's log line when the host's heartbeat stopped.
pub const HOST_SILENT: &str =
    "remote: the host's heartbeat stopped; asked for a new session, waiting for a host";
/// Zephyr's shell's answer to `rpmsg_ivshmem send` with the wrong number of arguments
/// (first line; the usage follows).
pub const SEND_WRONG_COUNT: &str = "send: wrong parameter count";
/// The usage line of `send`, as Zephyr's shell prints it.
pub const SEND_USAGE: &str = "send - Usage: rpmsg_ivshmem send <string> <number of messages>";
/// Zephyr's shell's answer to `rpmsg_ivshmem bench` with more than two arguments.
pub const BENCH_WRONG_COUNT: &str = "bench: wrong parameter count";
/// The usage line of `bench`, as Zephyr's shell prints it.
pub const BENCH_USAGE: &str = "bench - Usage: rpmsg_ivshmem bench [payload] [count]";
/// The help text of the command group (the native host's stdin shell).
pub const HELP: &str = "\
rpmsg_ivshmem - RPMsg over IVSHMEM commands
Subcommands:
  send    : Usage: rpmsg_ivshmem send <string> <number of messages>
  bench   : Usage: rpmsg_ivshmem bench [payload] [count]
  status  : Usage: rpmsg_ivshmem status (or just: status)
";

/// A line of its own: `text` and a newline.
pub fn line(out: &mut impl Text, text: &str) {
    out.put(text.as_bytes());
    out.put(b"\n");
}

/// The banner of `side` (`"Host"` or `"Remote"`) on `board`, printed when the link is up.
pub fn banner(out: &mut impl Text, board: &str, side: &str) {
    out.put(b"Hello ");
    out.put(board.as_bytes());
    out.put(b" - ");
    out.put(side.as_bytes());
    out.put(b" Side, the communication over RPMsg is ready to use!\n");
}

/// The host's block for echo number `i`: the start, then the echoed string, then
/// [`echoed_end`].
pub fn echoed_start(out: &mut impl Text) {
    out.put(b"Remote side echoed the string back:\n[ ");
}

/// The end of the host's echo block.
pub fn echoed_end(out: &mut impl Text, i: u64) {
    out.put(b" ]\nat message number ");
    out.put_u64(i);
    out.put(b"\n\n");
}

/// The remote's block for a received string: the start, then the string, then
/// [`received_end`].
pub fn received_start(out: &mut impl Text) {
    out.put(b"Host side sent a string:\n[ ");
}

/// The end of the remote's block.
pub fn received_end(out: &mut impl Text) {
    out.put(b" ]\nNow echoing it back!\n\n");
}

/// `send`: a count that is not a whole number from 1 to `u64::MAX` (without the
/// `send: ` prefix).
pub fn bad_count(out: &mut impl Text, count: &[u8]) {
    out.put(b"invalid number of messages \"");
    out.put(count);
    out.put(b"\": expected a whole number from 1 to ");
    out.put_u64(u64::MAX);
}

/// `send`: a string longer than fits one message with its NUL (without the prefix).
pub fn too_long(out: &mut impl Text, len: usize, max_payload: usize) {
    let longest = max_payload.saturating_sub(1) as u64;
    out.put(b"string too long: ");
    out.put_u64(len as u64);
    out.put(b" bytes, but at most ");
    out.put_u64(longest);
    out.put(b" fit in one message (");
    out.put_u64(max_payload as u64);
    out.put(b"-byte payload, including the terminating NUL); nothing was sent");
}

/// `send`: a string with a NUL inside (without the prefix).
pub fn has_nul(out: &mut impl Text) {
    out.put(b"the string contains a NUL byte, which would end it on the wire");
}

/// `bench`: an argument out of range (without the prefix).
pub fn bench_bad_arg(out: &mut impl Text, what: &str, arg: &[u8], min: u64, max: u64) {
    out.put(b"invalid ");
    out.put(what.as_bytes());
    out.put(b" \"");
    out.put(arg);
    out.put(b"\": expected a whole number from ");
    out.put_u64(min);
    out.put(b" to ");
    out.put_u64(max);
}

/// `bench`: the remote offers no bench endpoint.
pub const BENCH_NO_ENDPOINT: &str =
    "bench: the remote has no \"bench\" endpoint (it echoes silently); nothing was sent";
/// `bench` while another one runs.
pub const BENCH_BUSY: &str = "bench: already running";

/// `bench`'s round-trip line; `rtt_us`: p50, p99, max.
pub fn bench_round_trips(out: &mut impl Text, n: u64, size: usize, per_s: u64, rtt_us: [u64; 3]) {
    out.put(b"bench: ");
    out.put_u64(n);
    out.put(b" round trips of ");
    out.put_u64(size as u64);
    out.put(b" bytes: ");
    rate_and_rtt(out, per_s, rtt_us);
}

/// `X round trips/s, RTT p50 X us, p99 X us, max X us` and the newline.
fn rate_and_rtt(out: &mut impl Text, per_s: u64, rtt_us: [u64; 3]) {
    out.put_u64(per_s);
    out.put(b" round trips/s, RTT p50 ");
    out.put_u64(rtt_us[0]);
    out.put(b" us, p99 ");
    out.put_u64(rtt_us[1]);
    out.put(b" us, max ");
    out.put_u64(rtt_us[2]);
    out.put(b" us\n");
}

/// The firmware host's `doorbell` (a bare doorbell ping-pong, no RPMsg): its result line,
/// in `bench`'s words; `rtt_us`: p50, p99, max.
pub fn doorbell_round_trips(out: &mut impl Text, n: u64, per_s: u64, rtt_us: [u64; 3]) {
    out.put(b"doorbell: ");
    out.put_u64(n);
    out.put(b" bare round trips on vector 1, no RPMsg: ");
    rate_and_rtt(out, per_s, rtt_us);
}

/// `doorbell`: round trip `i` (from 1) got no answer within `ms`.
pub fn doorbell_timed_out(out: &mut impl Text, i: u64, ms: u64) {
    out.put(b"doorbell: no answer to round trip ");
    out.put_u64(i);
    out.put(b" within ");
    out.put_u64(ms);
    out.put(b" ms (is the remote ours, built with CONFIG_RPMSG_IVSHMEM_BENCH?); stopped\n");
}

/// `doorbell` while the remote has published no ivshmem id (not linked, or not ours).
pub const DOORBELL_NO_PEER: &str =
    "doorbell: no remote of ours linked (none published its ivshmem id); nothing rung";

/// `bench`'s streaming line.
pub fn bench_stream(out: &mut impl Text, n: u64, window: u32, size: usize, msgs_s: u64, kb_s: u64) {
    out.put(b"bench: ");
    out.put_u64(n);
    out.put(b" messages of ");
    out.put_u64(size as u64);
    out.put(b" bytes streamed, ");
    out.put_u64(u64::from(window));
    out.put(b" in flight: ");
    out.put_u64(msgs_s);
    out.put(b" messages/s, ");
    out.put_u64(kb_s);
    out.put(b" KB/s echoed\n");
}

/// `bench`: echoes of the wrong length or order.
pub fn bench_bad_echoes(out: &mut impl Text, bad: u64) {
    out.put(b"bench: ");
    out.put_u64(bad);
    out.put(b" echoes had the wrong length or came out of order\n");
}

/// `bench`: no echo of message `i` (1-based) of a phase (`"round trip"`, `"stream
/// message"`) within the timeout.
pub fn bench_timed_out(out: &mut impl Text, what: &str, i: u64) {
    out.put(b"bench: no echo of ");
    out.put(what.as_bytes());
    out.put(b" ");
    out.put_u64(i);
    out.put(b" within 5 s; stopped\n");
}

/// The host's `send` summary with `--quiet`.
pub fn echoed_summary(out: &mut impl Text, count: u64, checked: bool) {
    out.put_u64(count);
    if checked {
        out.put(b" messages echoed back in order: none lost, duplicated or changed\n");
    } else {
        out.put(b" messages echoed back\n");
    }
}

/// The remote's summary with `--quiet`.
pub fn remote_summary(out: &mut impl Text, echoed: u64) {
    out.put(b"Echoed ");
    out.put_u64(echoed);
    out.put(b" messages\n");
}
