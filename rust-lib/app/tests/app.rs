//! The application over the engine's in-memory region, in one thread: the host's port
//! runs the remote whenever the host waits, and time is a counter that jumps to the
//! deadline when nothing moves, so the 5 s timeout takes no time. Texts are checked
//! byte for byte: both platforms print exactly these.

use rpmsg_app::bench::{self, BenchOutcome};
use rpmsg_app::command::{self, ArgError};
use rpmsg_app::host::{self, HostApp, SendOptions, SendOutcome};
use rpmsg_app::remote::{self, RemoteApp};
use rpmsg_app::{status, Console, ErrorOnce, Port, Text};
use rpmsg_engine::testing::HeapRegion;
use rpmsg_engine::{Config, Host, NoDoorbell, Remote};

const BOARD: &str = "qemu_cortex_a53";
const HZ: u64 = 1_000_000;

/// Console text as blocks, diagnostics apart.
#[derive(Default)]
struct Out {
    text: Vec<u8>,
    block: Vec<u8>,
    errors: Vec<u8>,
    diags: Vec<String>,
}

impl Text for Out {
    fn put(&mut self, bytes: &[u8]) {
        self.block.extend_from_slice(bytes);
    }
}

impl Console for Out {
    fn end(&mut self) {
        self.text.append(&mut self.block);
    }
    fn end_error(&mut self) {
        self.errors.append(&mut self.block);
    }
    fn diag(&mut self, parts: &[rpmsg_app::Part<'_>]) {
        let mut line = Vec::new();
        rpmsg_app::put_parts(&mut line, parts);
        self.diags.push(String::from_utf8(line).unwrap());
    }
}

impl Out {
    fn take(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.text)).unwrap()
    }
}

/// An application on the test's clock (`HZ` ticks a second), with `peer` running
/// whenever it waits.
struct Side<A, P> {
    app: A,
    peer: P,
    now: u64,
    waits: u64,
}

/// What runs while a [`Side`] waits.
trait Peer {
    /// Runs at `now`; true if it did anything.
    fn run(&mut self, now: u64) -> bool;
}

/// Nothing runs: a wait lasts until its deadline.
impl Peer for () {
    fn run(&mut self, _now: u64) -> bool {
        false
    }
}

impl<A, P: Peer> Port<A> for Side<A, P> {
    fn with<R>(&mut self, f: impl FnOnce(&mut A) -> R) -> Option<R> {
        Some(f(&mut self.app))
    }
    fn now(&self) -> u64 {
        self.now
    }
    fn ticks_per_sec(&self) -> u64 {
        HZ
    }
    fn wait(&mut self, deadline: u64) {
        self.waits += 1;
        if self.peer.run(self.now) {
            self.now += 7; // a round trip takes a little time
        } else {
            self.now = self.now.max(deadline);
        }
    }
}

/// The remote side, stepped by the host's waits.
struct RemoteSide<'a> {
    port: Side<RemoteApp<'a, NoDoorbell>, ()>,
    out: Out,
    errors: ErrorOnce,
    /// The remote answers (false: it hangs).
    runs: bool,
    /// At its next run, instead of answering, the remote clears the host's status byte
    /// (as an intruder would): the host then starts a fresh session.
    clear_status: Option<rpmsg_engine::SharedRegion<'a>>,
    /// At its next run, the remote answers and then an intruder overwrites the addresses
    /// in the headers of the host's receive buffers: the host drops the echo as invalid.
    garble_echo: Option<(rpmsg_engine::SharedRegion<'a>, Config)>,
}

impl RemoteSide<'_> {
    /// Everything pending on the remote; true if it did anything.
    fn step(&mut self) -> bool {
        let mut any = false;
        loop {
            match remote::receive(&mut self.port, &mut self.out, BOARD, &mut self.errors) {
                remote::Received::Idle => break,
                remote::Received::Other(rx) => {
                    let _ = self.port.app.node.release_rx(rx);
                }
                _ => any = true,
            }
        }
        let _ = self.port.app.node.poll();
        any |= remote::greet(&mut self.port, &mut self.out, BOARD);
        any
    }
}

impl Peer for RemoteSide<'_> {
    fn run(&mut self, now: u64) -> bool {
        self.port.now = now;
        if let Some(region) = self.clear_status.take() {
            region.zero(0, 1).unwrap();
            return true;
        }
        if let Some((region, cfg)) = self.garble_echo.take() {
            self.step();
            let layout = rpmsg_engine::Layout::new(&cfg).unwrap();
            for i in 0..usize::from(cfg.queue_size) {
                region
                    .write_bytes(layout.buffer_offset(i), &[0xff; 8])
                    .unwrap();
            }
            return true;
        }
        self.runs && self.step()
    }
}

/// The host and, behind its waits, the remote.
type Pair<'a> = Side<HostApp<'a, NoDoorbell>, RemoteSide<'a>>;

fn pair(mem: &HeapRegion) -> Pair<'_> {
    let cfg = Config::new(mem.region().len());
    let mut node = Host::new_host(mem.region(), cfg, Some(0), NoDoorbell).unwrap();
    node.start().unwrap();
    let remote = Remote::new_remote(mem.region(), cfg, Some(1), NoDoorbell).unwrap();
    Pair {
        app: HostApp::new(node),
        peer: RemoteSide {
            port: Side {
                app: RemoteApp::new(remote, true).unwrap(),
                peer: (),
                now: 0,
                waits: 0,
            },
            out: Out::default(),
            errors: ErrorOnce::new(),
            runs: true,
            clear_status: None,
            garble_echo: None,
        },
        now: 0,
        waits: 0,
    }
}

/// Brings the link up: the remote attaches and announces, the host binds "k" and "bench".
fn link_up(p: &mut Pair<'_>, out: &mut Out) {
    p.peer.step();
    host::drain(p, out, &mut ErrorOnce::new());
    assert!(host::greet(p, out, BOARD));
}

/// A pair with the link up, and the host's console with the banner taken.
fn linked(mem: &HeapRegion) -> (Pair<'_>, Out) {
    let mut p = pair(mem);
    let mut out = Out::default();
    link_up(&mut p, &mut out);
    out.take();
    (p, out)
}

/// `host::send` with the default options.
fn send(p: &mut Pair<'_>, out: &mut Out, text: &[u8], count: u64) -> SendOutcome {
    host::send(p, out, text, count, SendOptions::default())
}

const HOST_BANNER: &str =
    "Hello qemu_cortex_a53 - Host Side, the communication over RPMsg is ready to use!\n";
const REMOTE_BANNER: &str =
    "Hello qemu_cortex_a53 - Remote Side, the communication over RPMsg is ready to use!\n";

fn echo_block(s: &str, i: u64) -> String {
    format!("Remote side echoed the string back:\n[ {s} ]\nat message number {i}\n\n")
}

fn received_block(s: &str) -> String {
    format!("Host side sent a string:\n[ {s} ]\nNow echoing it back!\n\n")
}

/// Diagnostic pieces: numbers in decimal (negative too), errors as their `Display` text.
#[test]
fn diagnostic_parts_match_the_formatted_text() {
    use rpmsg_app::Part;
    use rpmsg_engine::{ConfigRule, Error, PeerFault};
    for e in [
        Error::InvalidConfig(ConfigRule::QueueSize),
        Error::NotReady,
        Error::Peer(PeerFault::BadNameService),
    ] {
        let mut line = Vec::new();
        rpmsg_app::put_parts(&mut line, &[Part::Error(e)]);
        assert_eq!(String::from_utf8(line).unwrap(), e.to_string());
    }
    let mut line = Vec::new();
    let parts = [
        Part::Str("id "),
        Part::Signed(-1),
        Part::Str(", "),
        Part::Signed(7),
        Part::Str(", "),
        Part::Num(u64::MAX),
    ];
    rpmsg_app::put_parts(&mut line, &parts);
    assert_eq!(line, b"id -1, 7, 18446744073709551615");
}

#[test]
fn send_prints_the_samples_blocks_on_both_sides() {
    let mem = HeapRegion::new(64 * 1024);
    let mut p = pair(&mem);
    let mut out = Out::default();
    link_up(&mut p, &mut out);
    assert_eq!(out.take(), HOST_BANNER);
    let outcome = send(&mut p, &mut out, b"RPMsg over IVSHMEM", 3);
    assert_eq!(outcome, SendOutcome::Done);
    let want: String = (1..=3)
        .map(|i| echo_block("RPMsg over IVSHMEM", i))
        .collect();
    assert_eq!(out.take(), want);
    let want = REMOTE_BANNER.to_string() + &received_block("RPMsg over IVSHMEM").repeat(3);
    assert_eq!(p.peer.out.take(), want);
    assert_eq!(p.peer.port.app.echoed, 3);
    // Three messages and the two announcements; the message carries the NUL.
    let stats = *p.app.node.stats();
    assert_eq!((stats.tx_messages, stats.rx_messages), (3, 5));
    assert_eq!(p.app.stray, 0);
    assert!(!p.app.busy);
}

#[test]
fn the_echo_is_printed_up_to_its_nul_and_the_empty_string_works() {
    let mem = HeapRegion::new(64 * 1024);
    let (mut p, mut out) = linked(&mem);
    assert_eq!(send(&mut p, &mut out, b"", 1), SendOutcome::Done);
    assert_eq!(out.take(), echo_block("", 1));
    let long = "x".repeat(495);
    assert_eq!(
        send(&mut p, &mut out, long.as_bytes(), 2),
        SendOutcome::Done
    );
    assert_eq!(out.take(), echo_block(&long, 1) + &echo_block(&long, 2));
}

#[test]
fn send_before_the_remote_is_not_ready() {
    let mem = HeapRegion::new(64 * 1024);
    let mut p = pair(&mem);
    let mut out = Out::default();
    let outcome = send(&mut p, &mut out, b"hi", 1);
    assert_eq!(outcome, SendOutcome::NotReady);
    assert_eq!(out.take(), "RPMsg over IVSHMEM backend is not ready yet!\n");
    assert_eq!(p.app.node.stats().tx_messages, 0);
    assert_eq!(p.waits, 0, "not ready answers at once");
}

#[test]
fn a_silent_remote_times_out_after_five_seconds() {
    let mem = HeapRegion::new(64 * 1024);
    let (mut p, mut out) = linked(&mem);
    p.peer.runs = false;
    let start = p.now;
    let outcome = send(&mut p, &mut out, b"hi", 2);
    assert_eq!(outcome, SendOutcome::TimedOut);
    assert_eq!(out.take(), "Remote side response timed out!\n");
    assert_eq!(p.now - start, 5 * HZ, "gives up exactly at the timeout");
    // The late echo, when it comes, is a stray: counted and returned.
    p.peer.runs = true;
    p.peer.step();
    host::drain(&mut p, &mut out, &mut ErrorOnce::new());
    assert_eq!(p.app.stray, 1);
    assert!(out.take().is_empty());
    a_send_works_again(&mut p, &mut out);
}

/// `send "hi" 1` while the peer does what the test set up: it must time out at once
/// (well before its 5 s), with a diagnostic containing `why`.
fn send_answers_at_once(p: &mut Pair<'_>, out: &mut Out, why: &str) {
    p.peer.runs = false;
    let start = p.now;
    assert_eq!(send(p, out, b"hi", 1), SendOutcome::TimedOut);
    assert_eq!(out.take(), "Remote side response timed out!\n");
    assert!(
        p.now - start < HZ / 10,
        "answered after {} ticks",
        p.now - start
    );
    assert!(out.diags.iter().any(|d| d.contains(why)), "{:?}", out.diags);
    p.peer.runs = true;
}

/// A fresh session while a message waits for its echo: the echo cannot come any more
/// (the session's buffers are gone), so `send` answers at once instead of waiting out
/// its 5 s, and the next `send` works once the remote is back.
#[test]
fn a_session_reset_during_send_answers_at_once() {
    let mem = HeapRegion::new(64 * 1024);
    let (mut p, mut out) = linked(&mem);
    p.peer.clear_status = Some(mem.region());
    let session = p.app.node.session();
    send_answers_at_once(&mut p, &mut out, "link was reset");
    assert_ne!(p.app.node.session(), session);
    link_up(&mut p, &mut out);
    out.take();
    a_send_works_again(&mut p, &mut out);
}

/// After a `send` that did not get its echoes, the next one is echoed.
fn a_send_works_again(p: &mut Pair<'_>, out: &mut Out) {
    assert_eq!(send(p, out, b"again", 1), SendOutcome::Done);
    assert_eq!(out.take(), echo_block("again", 1));
}

/// An echo the host has to drop as invalid (an intruder wrote into its buffer) is the
/// message `send` waits for: it answers at once instead of waiting out its 5 s, and the
/// link works on.
#[test]
fn an_echo_dropped_as_invalid_ends_send_at_once() {
    let mem = HeapRegion::new(64 * 1024);
    let (mut p, mut out) = linked(&mem);
    p.peer.garble_echo = Some((mem.region(), Config::new(mem.region().len())));
    send_answers_at_once(&mut p, &mut out, "dropped as invalid");
    assert_eq!(p.app.node.stats().dropped, 1);
    a_send_works_again(&mut p, &mut out);
}

#[test]
fn numbered_messages_in_a_window_come_back_in_order() {
    let mem = HeapRegion::new(64 * 1024);
    let (mut p, mut out) = linked(&mem);
    p.peer.port.app.quiet = true;
    let options = SendOptions {
        window: 4,
        seq: true,
        quiet: true,
    };
    assert_eq!(
        host::send(&mut p, &mut out, b"abc", 100, options),
        SendOutcome::Done
    );
    assert_eq!(
        out.take(),
        "100 messages echoed back in order: none lost, duplicated or changed\n"
    );
    assert_eq!(p.peer.port.app.echoed, 100);
    assert_eq!(p.peer.out.take(), REMOTE_BANNER);
}

#[test]
fn bench_measures_through_the_silent_endpoint() {
    let mem = HeapRegion::new(64 * 1024);
    let (mut p, mut out) = linked(&mem);
    p.peer.out.take();
    let mut samples = vec![0u32; 50];
    assert_eq!(
        bench::run(&mut p, &mut out, 16, &mut samples),
        BenchOutcome::Done
    );
    let text = out.take();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("bench: 50 round trips of 16 bytes: "),
        "{text}"
    );
    assert!(lines[0].contains(" round trips/s, RTT p50 ") && lines[0].ends_with(" us"));
    assert!(
        lines[1].starts_with("bench: 50 messages of 16 bytes streamed, 8 in flight: "),
        "{text}"
    );
    assert!(lines[1].ends_with(" KB/s echoed"));
    assert!(
        p.peer.out.take().is_empty(),
        "the remote prints nothing for bench"
    );
    assert_eq!(p.peer.port.app.echoed, 0);
    assert_eq!(p.app.stray, 0);
    assert!(!p.app.bench.active && !p.app.busy);
    // Every payload size works, the empty one too.
    for size in [0, 3, 4, 496] {
        let mut samples = vec![0u32; 5];
        assert_eq!(
            bench::run(&mut p, &mut out, size, &mut samples),
            BenchOutcome::Done
        );
    }
}

#[test]
fn bench_without_link_or_endpoint() {
    let mem = HeapRegion::new(64 * 1024);
    let mut p = pair(&mem);
    let mut out = Out::default();
    let mut samples = vec![0u32; 5];
    assert_eq!(
        bench::run(&mut p, &mut out, 16, &mut samples),
        BenchOutcome::NotReady
    );
    assert_eq!(out.take(), "RPMsg over IVSHMEM backend is not ready yet!\n");
    link_up(&mut p, &mut out);
    out.take();
    p.app.bench_ept = None;
    assert_eq!(
        bench::run(&mut p, &mut out, 16, &mut samples),
        BenchOutcome::NoEndpoint
    );
    assert_eq!(
        out.take(),
        "bench: the remote has no \"bench\" endpoint (it echoes silently); nothing was sent\n"
    );
    a_hung_bench_times_out(&mut p, &mut out);
}

fn a_hung_bench_times_out(p: &mut Pair<'_>, out: &mut Out) {
    p.app.bench_ept = p.app.echo.map(|e| e + 1);
    p.peer.runs = false;
    let mut samples = vec![0u32; 5];
    assert_eq!(bench::run(p, out, 16, &mut samples), BenchOutcome::TimedOut);
    assert_eq!(
        out.take(),
        "bench: no echo of round trip 1 within 5 s; stopped\n"
    );
}

#[test]
fn status_text() {
    let mem = HeapRegion::new(64 * 1024);
    let mut p = pair(&mem);
    let mut out = Out::default();
    let mut text = Vec::new();
    status::write(&mut text, &p.app, &[]);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "role: host\nown id: 0\npeer id: none\nlink: waiting for a remote\nliveness: no remote\nsession: 1\n\
         endpoint: none\nbench endpoint: none\ntx messages: 0\nrx messages: 0\n\
         notifications: 0\ndropped: 0\nresets: 0\nerrors: 0\npeer faults: 0\n\
         silent peers: 0\nstray messages: 0\n"
    );
    link_up(&mut p, &mut out);
    send(&mut p, &mut out, b"x", 2);
    let mut text = Vec::new();
    status::write(&mut text, &p.app, &[("doorbells rung", 3)]);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "role: host\nown id: 0\npeer id: 1\nlink: up\nliveness: heartbeat not seen yet\nsession: 1\n\
         endpoint: k 1024 -> 1024\nbench endpoint: bench 1025 -> 1025\ntx messages: 2\n\
         rx messages: 4\nnotifications: 2\ndoorbells rung: 3\ndropped: 0\nresets: 0\n\
         errors: 0\npeer faults: 0\nsilent peers: 0\nstray messages: 0\n"
    );
}

#[test]
fn remote_status_text() {
    let mem = HeapRegion::new(64 * 1024);
    let mut p = pair(&mem);
    let mut out = Out::default();
    let remote_text = |p: &Pair<'_>| {
        let mut text = Vec::new();
        status::write_remote(&mut text, &status::RemoteSnapshot::of(&p.peer.port.app));
        String::from_utf8(text).unwrap()
    };
    assert_eq!(
        remote_text(&p),
        "role: remote\nown id: 1\npeer id: none\nlink: down (waiting for a host)\n\
         session: 0\nendpoint: k 1024 (unbound)\nbench endpoint: bench 1025 (unbound)\n\
         tx messages: 0\nrx messages: 0\nnotifications: 0\ndropped: 0\nresets: 0\n\
         errors: 0\npeer faults: 0\nechoed messages: 0\n"
    );
    // "k" is bound by the first message; "bench" only by bench traffic. Sent: the two
    // announcements and the two echoes.
    link_up(&mut p, &mut out);
    host::send(&mut p, &mut out, b"x", 2, SendOptions::default());
    assert_eq!(
        remote_text(&p),
        "role: remote\nown id: 1\npeer id: 0\nlink: up\nsession: 1\n\
         endpoint: k 1024 -> 1024\nbench endpoint: bench 1025 (unbound)\ntx messages: 4\n\
         rx messages: 2\nnotifications: 3\ndropped: 0\nresets: 0\nerrors: 0\n\
         peer faults: 0\nechoed messages: 2\n"
    );
}

fn error_line(e: ArgError<'_>) -> String {
    let mut v = Vec::new();
    e.write_line(&mut v);
    String::from_utf8(v).unwrap()
}

#[test]
fn argument_checks_and_their_texts() {
    assert_eq!(command::parse_count(b"10"), Ok(10));
    assert_eq!(command::parse_count(b"010"), Ok(10));
    assert_eq!(command::parse_count(b"18446744073709551615"), Ok(u64::MAX));
    for bad in [
        &b"abc"[..],
        b"-1",
        b"0",
        b"000",
        b"1e3",
        b"+5",
        b" 5",
        b"5 ",
        b"",
        b"18446744073709551616",
        b"0x10",
        b"1\0",
        b"\x001",
    ] {
        assert_eq!(command::parse_count(bad), Err(ArgError::BadCount(bad)));
    }
    assert_eq!(
        error_line(ArgError::BadCount(b"abc")),
        "send: invalid number of messages \"abc\": expected a whole number from 1 to \
         18446744073709551615\n"
    );
    assert_eq!(command::check_text(&[b'a'; 495], 496), Ok(()));
    assert_eq!(command::check_text(b"", 496), Ok(()));
    let e = command::check_text(&[b'a'; 496], 496).unwrap_err();
    assert_eq!(
        error_line(e),
        "send: string too long: 496 bytes, but at most 495 fit in one message (496-byte \
         payload, including the terminating NUL); nothing was sent\n"
    );
    assert_eq!(
        error_line(command::check_text(b"a\0b", 496).unwrap_err()),
        "send: the string contains a NUL byte, which would end it on the wire\n"
    );
    // The count is checked first.
    assert_eq!(
        command::send_args(&[b'a'; 600], b"x", 496),
        Err(ArgError::BadCount(b"x"))
    );
    assert_eq!(command::send_args(b"hi", b"3", 496), Ok((&b"hi"[..], 3)));
}

#[test]
fn bench_argument_checks() {
    assert_eq!(command::bench_args(None, None, 496, 2000), Ok((496, 1000)));
    assert_eq!(
        command::bench_args(Some(b"0"), Some(b"2000"), 496, 2000),
        Ok((0, 2000))
    );
    for (payload, count, want) in [
        (
            &b"497"[..],
            None,
            "bench: invalid payload size \"497\": expected a whole number from 0 to 496\n",
        ),
        (
            b"x",
            Some(&b"5"[..]),
            "bench: invalid payload size \"x\": expected a whole number from 0 to 496\n",
        ),
        (
            b"16",
            Some(b"0"),
            "bench: invalid number of round trips \"0\": expected a whole number from 1 to 2000\n",
        ),
        (
            b"16",
            Some(b"2001"),
            "bench: invalid number of round trips \"2001\": expected a whole number from 1 to \
             2000\n",
        ),
    ] {
        let e = command::bench_args(Some(payload), count, 496, 2000).unwrap_err();
        assert_eq!(error_line(e), want);
    }
}

#[test]
fn percentiles_of_sorted_samples() {
    let mut v: Vec<u32> = (0..2000).rev().map(|i| i * 3 % 2000).collect();
    bench::sort(&mut v);
    assert!(v.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(bench::percentile(&v, 50), v[999]);
    assert_eq!(bench::percentile(&v, 100), 1999);
    assert_eq!(bench::percentile(&[], 50), 0);
    let mut one = [7];
    bench::sort(&mut one);
    assert_eq!(bench::percentile(&one, 99), 7);
}
