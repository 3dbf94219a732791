//! `rpmsg-ivshmem bench`: round-trip latency (p50/p99/max) and round trips per second for
//! 1-, 64- and full-size payloads, and one-way streaming throughput with every buffer in
//! flight, measured as the host against a quiet remote — each next to its physical limit,
//! measured in the same run between the same two processes:
//!
//! * **eventfd ping-pong**: the bare doorbell path (ring the other side's eventfd, block in
//!   poll(2) on our own, read it), over the very eventfds the server handed out: the floor
//!   for a round trip that waits for a doorbell. Target: RPMsg round trip (full-size
//!   payload, p50) ≤ [`RTT_TARGET`] × this.
//! * **memcpy**: the C library's memcpy from private memory into the part of the shared
//!   region that neither side uses: the ceiling for throughput. Target: streaming of
//!   full-size payloads ≥ [`STREAM_TARGET`] × this.
//! * **bare ring** (for context): the same payloads through a bare single-producer
//!   single-consumer ring in that unused part ([`crate::baseline::BareRing`]), between the
//!   same two processes: what handing data from one CPU to the other costs without any
//!   protocol.
//!
//! The measurements are interleaved in rounds of [`ROUND_TRIPS_PER_ROUND`] (an eventfd
//! block, then a block of each payload size; a stream block, then a memcpy pass), so that
//! load coming and going on the machine, and the scheduler moving the two processes between
//! CPUs, affect a figure and its baseline alike.
//!
//! By default it starts what it needs: a private ivshmem-server (in this process, on a
//! socket and shared-memory name of its own) and a remote (`rpmsg-ivshmem remote --quiet
//! --sink`, a child process). With `--attach` it uses the server at `-S` and the remote
//! already running there.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ivshmem::{Server, ServerConfig, ShmBacking, ShmMapping, StopHandle};
use rpmsg_engine::Error as EngineError;
use rustix::process::{set_parent_process_death_signal, Signal};
use rustix::thread::CpuSet;
use serde::Serialize;

use crate::baseline::{self, BareRing};
use crate::cli::Common;
use crate::error::{Error, Result};
use crate::host::{HostNode, REPLY_TIMEOUT};
use crate::node;
use crate::remote::{RAW_PING_MAGIC, RAW_STREAM_MAGIC, SINK_REPORT_LEN};

/// How long the bench waits for the remote to attach.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// Round trips (and bare doorbells, and streamed messages) before measuring: caches, page
/// faults, CPU frequency.
pub const WARM_UP: u64 = 200;
/// Streamed messages per measured round trip count.
pub const STREAM_FACTOR: u64 = 10;
/// Round trips per payload size (and bare doorbells) per round: the measurements are
/// interleaved in `count / ROUND_TRIPS_PER_ROUND` rounds (at least one).
pub const ROUND_TRIPS_PER_ROUND: u64 = 100;
/// Target: full-size RPMsg round trip (p50) at most this many times the eventfd ping-pong.
pub const RTT_TARGET: f64 = 1.3;
/// Target: full-size streaming at least this fraction of the region's memcpy bandwidth.
pub const STREAM_TARGET: f64 = 0.25;

/// Latency of one payload size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundTrips {
    /// Payload bytes per message (0 for the eventfd ping-pong).
    pub payload: usize,
    /// Round trips measured.
    pub count: u64,
    /// Median round trip, nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile, nanoseconds.
    pub p99_ns: u64,
    /// Slowest, nanoseconds.
    pub max_ns: u64,
    /// Round trips per second over the measured blocks.
    pub per_second: f64,
}

/// One-way streaming throughput.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneWayStream {
    /// Payload bytes per message.
    pub payload: usize,
    /// Messages sent (and counted by the remote).
    pub messages: u64,
    /// Most messages in flight (the buffer count).
    pub in_flight: u16,
    /// Seconds from the first send to the remote's report, summed over the rounds.
    pub seconds: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_second: f64,
    /// Messages per second.
    pub messages_per_second: f64,
}

/// memcpy bandwidth into the shared region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memcpy {
    /// Bytes per pass (the unused part of the region).
    pub window: usize,
    /// Passes measured.
    pub passes: u64,
    /// Seconds, summed over the passes.
    pub seconds: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_second: f64,
}

/// Everything `bench` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Where: the socket, and whether the server and remote were private.
    pub socket: PathBuf,
    /// True when the bench started its own server and remote.
    pub private: bool,
    /// Buffer size.
    pub buf_size: u32,
    /// Buffers per direction.
    pub buf_count: u16,
    /// Round trips per payload size (and bare doorbells), as asked for.
    pub count: u64,
    /// Rounds the measurements were interleaved in.
    pub rounds: u64,
    /// One row per payload size, smallest first.
    pub round_trips: Vec<RoundTrips>,
    /// The eventfd ping-pong, if the remote takes part (it needs the sink endpoint).
    pub eventfd: Option<RoundTrips>,
    /// The streaming row, if the remote offers the sink endpoint.
    pub stream: Option<OneWayStream>,
    /// The bare ring's stream, if the remote takes part.
    pub bare: Option<OneWayStream>,
    /// memcpy into the region.
    pub memcpy: Memcpy,
    /// Spin before blocking on the doorbell (both sides, when the remote is private).
    pub spin: Duration,
    /// CPUs the host and the remote were pinned to (`--cpus`).
    pub cpus: Option<(usize, usize)>,
}

fn us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

/// `v` rounded to `decimals` places, for JSON (non-finite values become `null`).
fn rounded(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}

/// The `--json` object: the headline figures, their baselines and ratios, and every row.
#[derive(Serialize)]
struct JsonReport {
    rtt_payload: Option<usize>,
    rtt_p50_ns: Option<u64>,
    rtt_p99_ns: Option<u64>,
    rtt_max_ns: Option<u64>,
    roundtrips_per_s: Option<f64>,
    eventfd_rtt_p50_ns: Option<u64>,
    eventfd_rtt_p99_ns: Option<u64>,
    eventfd_rtt_max_ns: Option<u64>,
    eventfd_roundtrips_per_s: Option<f64>,
    rtt_ratio: Option<f64>,
    rtt_target_max_ratio: f64,
    rtt_target_met: Option<bool>,
    stream_payload: Option<usize>,
    stream_in_flight: Option<u16>,
    stream_messages: Option<u64>,
    stream_mb_s: Option<f64>,
    stream_msgs_per_s: Option<f64>,
    memcpy_mb_s: f64,
    bare_ring_mb_s: Option<f64>,
    stream_vs_bare_ring: Option<f64>,
    memcpy_bytes: usize,
    stream_ratio: Option<f64>,
    stream_target_min_ratio: f64,
    stream_target_met: Option<bool>,
    count: u64,
    rounds: u64,
    buf_size: u32,
    buf_count: u16,
    private: bool,
    spin_us: u128,
    host_cpu: Option<usize>,
    remote_cpu: Option<usize>,
    socket: String,
    round_trips: Vec<JsonRow>,
}

/// One round-trip row of [`JsonReport`].
#[derive(Serialize)]
struct JsonRow {
    payload: usize,
    count: u64,
    p50_ns: u64,
    p99_ns: u64,
    max_ns: u64,
    per_s: f64,
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

impl Report {
    /// The full-size (largest payload) round-trip row: the one compared with the baseline.
    pub fn full_size(&self) -> Option<&RoundTrips> {
        self.round_trips.last()
    }

    /// Full-size RPMsg round trip (p50) over the eventfd ping-pong (p50).
    pub fn rtt_ratio(&self) -> Option<f64> {
        let rt = self.full_size()?;
        let floor = self.eventfd?;
        (floor.p50_ns > 0).then(|| rt.p50_ns as f64 / floor.p50_ns as f64)
    }

    /// Streaming over the bare ring's.
    pub fn bare_ratio(&self) -> Option<f64> {
        let (s, b) = (self.stream?, self.bare?);
        (b.mb_per_second > 0.0).then(|| s.mb_per_second / b.mb_per_second)
    }

    /// Streaming over memcpy bandwidth.
    pub fn stream_ratio(&self) -> Option<f64> {
        let s = self.stream?;
        (self.memcpy.mb_per_second > 0.0).then(|| s.mb_per_second / self.memcpy.mb_per_second)
    }

    /// Whether the round-trip target is met.
    pub fn rtt_target_met(&self) -> Option<bool> {
        self.rtt_ratio().map(|r| r <= RTT_TARGET)
    }

    /// Whether the streaming target is met.
    pub fn stream_target_met(&self) -> Option<bool> {
        self.stream_ratio().map(|r| r >= STREAM_TARGET)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        self.table_head(&mut t);
        self.table_round_trips(&mut t);
        self.table_streams(&mut t);
        self.table_limits(&mut t);
        t
    }

    /// Where and how it ran.
    fn table_head(&self, t: &mut String) {
        let _ = writeln!(
            t,
            "rpmsg-ivshmem bench: {} server at {}, {} buffers of {} bytes per direction",
            if self.private {
                "private"
            } else {
                "attached to the"
            },
            self.socket.display(),
            self.buf_count,
            self.buf_size
        );
        let _ = writeln!(
            t,
            "spin before blocking: {} us{}; {}",
            self.spin.as_micros(),
            if self.private { "" } else { " (this side)" },
            match self.cpus {
                Some((h, r)) if h == r => format!("host and remote pinned to CPU {h}"),
                Some((h, r)) => format!("host pinned to CPU {h}, remote to CPU {r}"),
                None => "CPUs as the scheduler places them".to_string(),
            }
        );
        let _ = writeln!(
            t,
            "round trips (send one message, wait for its echo), {} per payload size, in {} \
             rounds interleaved with the eventfd ping-pong:",
            self.count, self.rounds
        );
        let _ = writeln!(
            t,
            "{:>17}  {:>11}  {:>11}  {:>11}  {:>14}",
            "payload", "RTT p50", "RTT p99", "RTT max", "round trips/s"
        );
    }

    /// The round-trip rows and the eventfd ping-pong.
    fn table_round_trips(&self, t: &mut String) {
        let row = |t: &mut String, name: &str, r: &RoundTrips| {
            let _ = writeln!(
                t,
                "{:>17}  {:>11}  {:>11}  {:>11}  {:>14.0}",
                name,
                us(r.p50_ns),
                us(r.p99_ns),
                us(r.max_ns),
                r.per_second
            );
        };
        for r in &self.round_trips {
            row(t, &format!("{} B", r.payload), r);
        }
        match &self.eventfd {
            Some(e) => row(t, "eventfd ping-pong", e),
            None => {
                let _ = writeln!(
                    t,
                    "{:>17}  skipped (the remote takes part through its \"{}\" endpoint; run \
                     it with --sink)",
                    "eventfd ping-pong",
                    crate::SINK_ENDPOINT
                );
            }
        }
    }

    /// The one-way stream, the bare ring and memcpy.
    fn table_streams(&self, t: &mut String) {
        match &self.stream {
            Some(s) => {
                let _ = writeln!(
                    t,
                    "one-way stream to the remote's sink, {}-byte payloads, up to {} in flight, \
                     interleaved with memcpy passes:\n\
                     {:>17}  {:>10.1} MB/s  ({} messages in {:.3} s, {:.0} messages/s)",
                    s.payload,
                    s.in_flight,
                    "stream",
                    s.mb_per_second,
                    s.messages,
                    s.seconds,
                    s.messages_per_second
                );
            }
            None => {
                let _ = writeln!(
                    t,
                    "one-way stream: skipped (the remote offers no \"{}\" endpoint; run it \
                     with --sink)",
                    crate::SINK_ENDPOINT
                );
            }
        }
        if let Some(b) = &self.bare {
            let _ = writeln!(
                t,
                "{:>17}  {:>10.1} MB/s  ({} messages in {:.3} s through a bare ring in the \
                 unused part of the region)",
                "bare ring", b.mb_per_second, b.messages, b.seconds
            );
        }
        let _ = writeln!(
            t,
            "{:>17}  {:>10.1} MB/s  ({} passes of {} bytes into the unused part of the region)",
            "memcpy", self.memcpy.mb_per_second, self.memcpy.passes, self.memcpy.window
        );
    }

    /// The figures against their limits and targets.
    fn table_limits(&self, t: &mut String) {
        let _ = writeln!(t, "against the limits:");
        if let (Some(rt), Some(e), Some(ratio)) = (self.full_size(), self.eventfd, self.rtt_ratio())
        {
            let _ = writeln!(
                t,
                "  round trip ({} B, p50): {} vs eventfd ping-pong {}: {:.2} x (target <= {:.1} x: {})",
                rt.payload,
                us(rt.p50_ns),
                us(e.p50_ns),
                ratio,
                RTT_TARGET,
                verdict(self.rtt_target_met())
            );
        }
        if let (Some(s), Some(ratio)) = (self.stream, self.stream_ratio()) {
            let _ = writeln!(
                t,
                "  stream ({} B): {:.1} MB/s vs memcpy {:.1} MB/s: {:.1} % (target >= {:.0} %: {})",
                s.payload,
                s.mb_per_second,
                self.memcpy.mb_per_second,
                ratio * 100.0,
                STREAM_TARGET * 100.0,
                verdict(self.stream_target_met())
            );
        }
        if let (Some(b), Some(ratio)) = (self.bare, self.bare_ratio()) {
            let _ = writeln!(
                t,
                "  (the bare ring moves {:.1} MB/s = {:.1} % of memcpy; the stream does {:.0} % \
                 of that)",
                b.mb_per_second,
                b.mb_per_second / self.memcpy.mb_per_second.max(1e-9) * 100.0,
                ratio * 100.0
            );
        }
    }

    /// One JSON object (one line) with the headline figures, their baselines and ratios,
    /// and every row.
    pub fn json(&self) -> String {
        let rt = self.full_size();
        let (e, s) = (self.eventfd, self.stream);
        let per_s = |r: &RoundTrips| rounded(r.per_second, 1);
        let report = JsonReport {
            rtt_payload: rt.map(|r| r.payload),
            rtt_p50_ns: rt.map(|r| r.p50_ns),
            rtt_p99_ns: rt.map(|r| r.p99_ns),
            rtt_max_ns: rt.map(|r| r.max_ns),
            roundtrips_per_s: rt.map(per_s),
            eventfd_rtt_p50_ns: e.map(|r| r.p50_ns),
            eventfd_rtt_p99_ns: e.map(|r| r.p99_ns),
            eventfd_rtt_max_ns: e.map(|r| r.max_ns),
            eventfd_roundtrips_per_s: e.as_ref().map(per_s),
            rtt_ratio: self.rtt_ratio().map(|r| rounded(r, 3)),
            rtt_target_max_ratio: RTT_TARGET,
            rtt_target_met: self.rtt_target_met(),
            stream_payload: s.map(|s| s.payload),
            stream_in_flight: s.map(|s| s.in_flight),
            stream_messages: s.map(|s| s.messages),
            stream_mb_s: s.map(|s| rounded(s.mb_per_second, 1)),
            stream_msgs_per_s: s.map(|s| rounded(s.messages_per_second, 1)),
            memcpy_mb_s: rounded(self.memcpy.mb_per_second, 1),
            bare_ring_mb_s: self.bare.map(|b| rounded(b.mb_per_second, 1)),
            stream_vs_bare_ring: self.bare_ratio().map(|r| rounded(r, 4)),
            memcpy_bytes: self.memcpy.window,
            stream_ratio: self.stream_ratio().map(|r| rounded(r, 4)),
            stream_target_min_ratio: STREAM_TARGET,
            stream_target_met: self.stream_target_met(),
            count: self.count,
            rounds: self.rounds,
            buf_size: self.buf_size,
            buf_count: self.buf_count,
            private: self.private,
            spin_us: self.spin.as_micros(),
            host_cpu: self.cpus.map(|c| c.0),
            remote_cpu: self.cpus.map(|c| c.1),
            socket: self.socket.to_string_lossy().into_owned(),
            round_trips: self
                .round_trips
                .iter()
                .map(|r| JsonRow {
                    payload: r.payload,
                    count: r.count,
                    p50_ns: r.p50_ns,
                    p99_ns: r.p99_ns,
                    max_ns: r.max_ns,
                    per_s: per_s(r),
                })
                .collect(),
        };
        // Serializing plain numbers, booleans and strings into a String cannot fail.
        let mut text = serde_json::to_string(&report).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A private server (thread) and remote (child process), torn down on drop.
struct Private {
    stop: StopHandle,
    server: Option<JoinHandle<std::result::Result<(), ivshmem::Error>>>,
    remote: Option<Child>,
    remote_stderr: Option<JoinHandle<String>>,
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`); returns the previous mask.
fn pin_to(cpu: usize) -> Result<CpuSet> {
    let old = rustix::thread::sched_getaffinity(None)
        .map_err(|e| Error::runtime(format!("--cpus: cannot read the CPU mask: {e}")))?;
    if cpu >= CpuSet::MAX_CPU {
        return Err(Error::runtime(format!("--cpus: there is no CPU {cpu}")));
    }
    rustix::thread::sched_setaffinity(None, &only(cpu))
        .map_err(|e| Error::runtime(format!("--cpus: cannot run on CPU {cpu}: {e}")))?;
    Ok(old)
}

/// The set of just `cpu` (< `CpuSet::MAX_CPU`).
fn only(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu);
    set
}

impl Private {
    fn start(common: &mut Common, remote_cpu: Option<usize>) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tag = format!("rpmsg-ivshmem-bench-{}-{nanos}", std::process::id());
        let socket = std::env::temp_dir().join(format!("{tag}.sock"));
        let config = ServerConfig {
            socket_path: socket.clone(),
            shm: ShmBacking::Posix(tag),
            shm_size: ivshmem::DEFAULT_SHM_SIZE,
            vectors: 1,
            log_level: ivshmem::LogLevel::Error,
            ..ServerConfig::default()
        };
        let server = Server::new(config)
            .map_err(|e| Error::runtime(format!("cannot start a private ivshmem-server: {e}")))?;
        let stop = server.stop_handle();
        let handle = std::thread::spawn(move || server.run());
        common.socket = socket;
        let mut private = Private {
            stop,
            server: Some(handle),
            remote: None,
            remote_stderr: None,
        };
        let exe = std::env::current_exe().map_err(|e| {
            Error::runtime(format!("cannot find this program to start a remote: {e}"))
        })?;
        let mut command = Command::new(exe);
        // SAFETY: the closure runs in the child between fork and exec: it makes two system
        // calls (prctl, sched_setaffinity), which are async-signal-safe, and neither
        // allocates nor takes a lock. The first makes the kernel kill the remote if this
        // process dies without reaping it, the second pins the remote.
        unsafe {
            command.pre_exec(move || {
                set_parent_process_death_signal(Some(Signal::KILL))?;
                if let Some(cpu) = remote_cpu.filter(|c| *c < CpuSet::MAX_CPU) {
                    rustix::thread::sched_setaffinity(None, &only(cpu))?;
                }
                Ok(())
            });
        }
        let mut child = command
            .arg("remote")
            .arg("--quiet")
            .arg("--sink")
            .arg("-S")
            .arg(&common.socket)
            .arg("--buf-size")
            .arg(common.buf_size.to_string())
            .arg("--buf-count")
            .arg(common.buf_count.to_string())
            .arg("--spin-us")
            .arg(common.spin.as_micros().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::runtime(format!("cannot start the remote: {e}")))?;
        if let Some(mut err) = child.stderr.take() {
            private.remote_stderr = Some(std::thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            }));
        }
        private.remote = Some(child);
        Ok(private)
    }

    /// Stops everything; returns what the remote wrote on stderr.
    fn finish(&mut self) -> String {
        if let Some(mut child) = self.remote.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop.stop();
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
        self.remote_stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs the benchmark.
///
/// `cpus` pins this thread (the host) and the private remote to the two CPUs given.
pub fn run(
    common: &Common,
    count: u64,
    attach: bool,
    cpus: Option<(usize, usize)>,
) -> Result<Report> {
    let mut common = common.clone();
    let old_mask = match cpus {
        Some((host, _)) => Some(pin_to(host)?),
        None => None,
    };
    let mut private = if attach {
        None
    } else {
        Some(
            Private::start(&mut common, cpus.map(|c| c.1)).map_err(|e| match cpus {
                Some((_, r)) => Error::runtime(format!("{e} (on CPU {r}?)")),
                None => e,
            })?,
        )
    };
    crate::console::set_diagnostics(false);
    let result = measure(&common, count, !attach).map(|mut r| {
        r.cpus = cpus;
        r
    });
    crate::console::set_diagnostics(true);
    if let Some(mask) = old_mask {
        let _ = rustix::thread::sched_setaffinity(None, &mask);
    }
    if let Some(p) = private.as_mut() {
        let remote_log = p.finish();
        if result.is_err() && !remote_log.is_empty() {
            eprint!("{remote_log}");
        }
    }
    result
}

/// `total` split into `rounds` nearly equal parts (the first ones one larger).
fn share(total: u64, rounds: u64, round: u64) -> u64 {
    total / rounds + u64::from(round < total % rounds)
}

fn measure(common: &Common, count: u64, private: bool) -> Result<Report> {
    let attached = node::attach(common)?;
    let region = node::region(&attached.mapping)?;
    let config = node::config(common, &attached.ivshmem)?;
    let mut host = HostNode::start(region, config, attached.ivshmem, common.board.clone(), None)?;
    host.set_spin(common.spin);
    let (ept, sink) = bench_endpoints(&mut host, private)?;
    let rounds = count.div_ceil(ROUND_TRIPS_PER_ROUND);
    let (round_trips, eventfd) = measure_round_trips(&mut host, ept, sink, count, rounds)?;
    let (stream, bare, memcpy) = measure_streams(
        &mut host,
        sink,
        &attached.mapping,
        region,
        count.saturating_mul(STREAM_FACTOR),
        rounds,
    )?;
    host.shutdown();
    Ok(Report {
        socket: common.socket.clone(),
        private,
        buf_size: common.buf_size,
        buf_count: common.buf_count,
        count,
        rounds,
        round_trips,
        eventfd,
        stream,
        bare,
        memcpy,
        spin: common.spin,
        cpus: None,
    })
}

/// Waits for the remote: our endpoints bound to its "k" and (if it offers one) its sink.
fn bench_endpoints(host: &mut HostNode<'_>, private: bool) -> Result<(u32, Option<u32>)> {
    if !host.wait_ready(ATTACH_TIMEOUT) {
        return Err(Error::runtime(format!(
            "no remote attached within {} s{}",
            ATTACH_TIMEOUT.as_secs(),
            if private {
                ""
            } else {
                "; start one with `rpmsg-ivshmem remote --quiet --sink -S <socket>`"
            }
        )));
    }
    let ept = host
        .echo_endpoint()
        .ok_or_else(|| Error::runtime("the link went down"))?;
    // The sink is announced right after "k"; give it a moment in case it is still on its way.
    let until = Instant::now() + Duration::from_millis(200);
    while host.sink_endpoint().is_none() && Instant::now() < until {
        while let Some(rx) = host.next_message() {
            host.discard(rx);
        }
        host.wait(Duration::from_millis(10), None);
    }
    Ok((ept, host.sink_endpoint()))
}

/// Round trips per payload size, interleaved with the eventfd ping-pong round by round, so
/// that both see the same machine (other load comes and goes).
fn measure_round_trips(
    host: &mut HostNode<'_>,
    ept: u32,
    sink: Option<u32>,
    count: u64,
    rounds: u64,
) -> Result<(Vec<RoundTrips>, Option<RoundTrips>)> {
    let max = host.engine().max_payload();
    let mut sizes = vec![1, 64, max];
    sizes.retain(|s| *s <= max);
    sizes.dedup();
    let mut eventfd = sink.map(|_| Samples::new(count));
    if let (Some(sink), Some(samples)) = (sink, eventfd.as_mut()) {
        raw_ping_pong(host, sink, WARM_UP.min(count), &mut Samples::new(0))?;
        if !raw_ping_pong(host, sink, share(count, rounds, 0), samples)? {
            eventfd = None;
        }
    }
    let mut rows: Vec<Samples> = Vec::new();
    for &size in &sizes {
        let mut row = Samples::new(count);
        round_trips(host, ept, size, WARM_UP.min(count), &mut Samples::new(0))?;
        round_trips(host, ept, size, share(count, rounds, 0), &mut row)?;
        rows.push(row);
    }
    for round in 1..rounds {
        if let (Some(sink), Some(samples)) = (sink, eventfd.as_mut()) {
            raw_ping_pong(host, sink, share(count, rounds, round), samples)?;
        }
        for (&size, row) in sizes.iter().zip(rows.iter_mut()) {
            round_trips(host, ept, size, share(count, rounds, round), row)?;
        }
    }
    let round_trips = sizes
        .iter()
        .zip(rows.iter_mut())
        .map(|(&size, row)| row.summary(size))
        .collect();
    Ok((round_trips, eventfd.as_mut().map(|s| s.summary(0))))
}

/// Streaming to the sink (and through the bare ring), interleaved with memcpy passes over
/// the unused part of the region.
fn measure_streams(
    host: &mut HostNode<'_>,
    sink: Option<u32>,
    mapping: &ShmMapping,
    region: rpmsg_engine::SharedRegion<'_>,
    messages: u64,
    rounds: u64,
) -> Result<(Option<OneWayStream>, Option<OneWayStream>, Memcpy)> {
    let max = host.engine().max_payload();
    let layout = *host.engine().layout();
    let queue_size = layout.config().queue_size;
    let window = baseline::unused_window(&layout, mapping.len());
    let mut source = vec![0xA5u8; window.len()];
    let (mut copy, mut stream, mut bare) = Default::default();
    let mut ring = BareRing::new(region, &window, queue_size, max + 16);
    if let Some(sink) = sink {
        // Binds the sink to us, zeroes its counters, and warms up.
        sink_report(host, sink)?;
        stream_block(host, sink, max, WARM_UP.min(messages))?;
        if let Some(r) = ring {
            if bare_block(host, sink, &r, max, WARM_UP.min(messages))?.is_none() {
                ring = None;
            }
        }
    }
    memcpy_pass(mapping, &window, &mut source);
    for round in 0..rounds {
        if let Some(sink) = sink {
            let n = share(messages, rounds, round);
            let seconds = stream_block(host, sink, max, n)?;
            Throughput::add(&mut stream, n * max as u64, n, seconds);
            if let Some(r) = ring {
                if let Some(seconds) = bare_block(host, sink, &r, max, n)? {
                    Throughput::add(&mut bare, n * max as u64, n, seconds);
                }
            }
        }
        let t = Instant::now();
        memcpy_pass(mapping, &window, &mut source);
        Throughput::add(&mut copy, window.len() as u64, 1, t.elapsed().as_secs_f64());
    }
    let memcpy = Memcpy {
        window: window.len(),
        passes: copy.items,
        seconds: copy.seconds,
        mb_per_second: copy.mb_per_second(),
    };
    let stream_row = sink.map(|_| stream.one_way(max, queue_size));
    let bare_row = ring
        .filter(|_| sink.is_some())
        .map(|_| bare.one_way(max, queue_size));
    Ok((stream_row, bare_row, memcpy))
}

/// Round-trip times of one row, in nanoseconds.
struct Samples {
    ns: Vec<u64>,
    seconds: f64,
}

impl Samples {
    fn new(capacity: u64) -> Self {
        Self {
            ns: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
            seconds: 0.0,
        }
    }

    fn summary(&mut self, payload: usize) -> RoundTrips {
        self.ns.sort_unstable();
        let at = |q: f64| -> u64 {
            let i = ((self.ns.len() as f64 - 1.0) * q).round() as usize;
            self.ns.get(i).copied().unwrap_or(0)
        };
        RoundTrips {
            payload,
            count: self.ns.len() as u64,
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            max_ns: self.ns.last().copied().unwrap_or(0),
            per_second: self.ns.len() as f64 / self.seconds.max(1e-9),
        }
    }
}

/// Bytes (or messages) moved and the time it took, summed over rounds.
#[derive(Default)]
struct Throughput {
    bytes: u64,
    items: u64,
    seconds: f64,
}

impl Throughput {
    fn add(&mut self, bytes: u64, items: u64, seconds: f64) {
        self.bytes += bytes;
        self.items += items;
        self.seconds += seconds;
    }

    /// The row of a one-way stream of `payload`-byte messages, `in_flight` at most.
    fn one_way(&self, payload: usize, in_flight: u16) -> OneWayStream {
        OneWayStream {
            payload,
            messages: self.items,
            in_flight,
            seconds: self.seconds,
            mb_per_second: self.mb_per_second(),
            messages_per_second: self.items as f64 / self.seconds.max(1e-9),
        }
    }

    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9) / 1e6
    }
}

/// One plain memcpy (the C library's) of `source` into `window` of the mapping.
fn memcpy_pass(mapping: &ShmMapping, window: &std::ops::Range<usize>, source: &mut [u8]) {
    // Touch the source so the copy cannot be hoisted or elided between passes.
    if let Some(b) = source.first_mut() {
        *b = b.wrapping_add(1);
    }
    let len = window
        .len()
        .min(source.len())
        .min(mapping.len().saturating_sub(window.start));
    // SAFETY: `window` lies inside the live mapping (checked above). Neither this process's
    // engine nor the peer accesses these bytes: they are outside every buffer and ring of
    // the layout both sides use, and the bare ring that uses them runs only between the
    // memcpy passes (its last access, the remote's tail store, is what the host waited
    // for), so this plain (non-atomic) copy races with nothing.
    unsafe {
        std::ptr::copy_nonoverlapping(source.as_ptr(), mapping.as_ptr().add(window.start), len);
    }
    std::hint::black_box(mapping.as_ptr());
}

/// Sends `data` from `ept`, waiting for a free buffer (bounded by the reply timeout).
fn send_blocking(host: &mut HostNode<'_>, ept: u32, data: &[u8]) -> Result<()> {
    host.send_blocking(ept, data).map_err(|e| match e {
        EngineError::Timeout => Error::runtime("no transmit buffer came back within 5 s"),
        e => Error::runtime(format!("send failed: {e}")),
    })
}

/// Waits for the next message to `ept` and copies it into `out`; returns its length.
fn receive(host: &mut HostNode<'_>, ept: u32, out: &mut [u8]) -> Result<usize> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        while let Some(rx) = host.next_message() {
            if rx.dst() != ept {
                host.discard(rx);
                continue;
            }
            let n = rx.read(0, out).unwrap_or(0);
            let len = rx.len();
            let _ = host.engine().release_rx(rx);
            if n != len {
                return Err(Error::runtime(format!(
                    "reply of {len} bytes does not fit the {}-byte buffer",
                    out.len()
                )));
            }
            return Ok(n);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::runtime(format!(
                "{} (no reply within 5 s)",
                rpmsg_app::text::TIMED_OUT
            )));
        }
        host.wait((deadline - now).min(Duration::from_millis(100)), None);
    }
}

/// `count` round trips of `size`-byte payloads on `ept`, timed into `row`.
fn round_trips(
    host: &mut HostNode<'_>,
    ept: u32,
    size: usize,
    count: u64,
    row: &mut Samples,
) -> Result<()> {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut echo = vec![0u8; host.engine().max_payload()];
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        send_blocking(host, ept, &data)?;
        let n = receive(host, ept, &mut echo)?;
        row.ns
            .push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if echo[..n] != data[..] {
            return Err(Error::runtime(format!(
                "the echo of a {size}-byte message came back as {n} different bytes"
            )));
        }
    }
    row.seconds += start.elapsed().as_secs_f64();
    Ok(())
}

/// `count` bare eventfd round trips with the remote (see [`RAW_PING_MAGIC`]), timed into
/// `row`. False if the remote does not take part (it answered something else).
fn raw_ping_pong(
    host: &mut HostNode<'_>,
    sink: u32,
    count: u64,
    row: &mut Samples,
) -> Result<bool> {
    if !remote_takes_part(host, sink, RAW_PING_MAGIC, count)? {
        return Ok(false);
    }
    let peer = host
        .engine()
        .peer_id()
        .ok_or_else(|| Error::runtime("the remote published no ivshmem id"))?;
    let doorbell = host.engine().doorbell();
    doorbell.clear_interrupt();
    let raw = doorbell
        .raw_doorbell(peer)
        .ok_or_else(|| Error::runtime("the server gave us no eventfd of the remote"))?;
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        if !raw.ring() {
            return Err(Error::runtime("cannot ring the remote's eventfd"));
        }
        if !raw.wait(REPLY_TIMEOUT) {
            return Err(Error::runtime(
                "the remote did not answer a bare doorbell within 5 s",
            ));
        }
        row.ns
            .push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    row.seconds += start.elapsed().as_secs_f64();
    Ok(true)
}

/// Asks the sink for a bare-path run (`magic` and `count`); true if it echoed the
/// request, that is, if it takes part.
fn remote_takes_part(
    host: &mut HostNode<'_>,
    sink: u32,
    magic: [u8; 8],
    count: u64,
) -> Result<bool> {
    let mut request = [0u8; SINK_REPORT_LEN];
    request[..8].copy_from_slice(&magic);
    request[8..].copy_from_slice(&count.to_le_bytes());
    send_blocking(host, sink, &request)?;
    let mut answer = [0u8; SINK_REPORT_LEN];
    let n = receive(host, sink, &mut answer)?;
    Ok(answer[..n] == request[..])
}

fn sink_report(host: &mut HostNode<'_>, sink: u32) -> Result<(u64, u64)> {
    send_blocking(host, sink, &[])?;
    let mut report = [0u8; SINK_REPORT_LEN];
    let n = receive(host, sink, &mut report)?;
    if n != SINK_REPORT_LEN {
        return Err(Error::runtime(format!(
            "the sink answered {n} bytes instead of {SINK_REPORT_LEN}"
        )));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&report[..8]);
    let messages = u64::from_le_bytes(word);
    word.copy_from_slice(&report[8..]);
    Ok((messages, u64::from_le_bytes(word)))
}

/// `messages` payloads through the bare ring (see [`RAW_STREAM_MAGIC`]); the seconds
/// from the first copy to the remote's last tail update, or `None` if the remote does not
/// take part.
fn bare_block(
    host: &mut HostNode<'_>,
    sink: u32,
    ring: &BareRing<'_>,
    size: usize,
    messages: u64,
) -> Result<Option<f64>> {
    ring.reset();
    if !remote_takes_part(host, sink, RAW_STREAM_MAGIC, messages)? {
        return Ok(None);
    }
    let data = vec![0x3Cu8; size];
    let start = Instant::now();
    if !ring.send(&data, messages, REPLY_TIMEOUT) {
        return Err(Error::runtime(
            "the remote stopped taking from the bare ring for 5 s",
        ));
    }
    Ok(Some(start.elapsed().as_secs_f64().max(1e-9)))
}

/// Sends `messages` copies of `data` to `sink` as a stream: as many as there are free
/// transmit buffers in one call ([`rpmsg_engine::Rpmsg::try_send_each`]), then waits (as
/// the nodes do: spin, then block on the doorbell) until the remote returns some, for up
/// to [`REPLY_TIMEOUT`] without progress.
fn stream_messages(host: &mut HostNode<'_>, sink: u32, data: &[u8], messages: u64) -> Result<()> {
    let mut left = messages;
    let mut deadline = Instant::now() + REPLY_TIMEOUT;
    while left > 0 {
        let fill = |buf: &mut rpmsg_engine::TxBuffer<'_>| buf.write(0, data).map(|()| data.len());
        let max = usize::try_from(left).unwrap_or(usize::MAX);
        match host.engine().try_send_each(sink, max, fill) {
            Ok(sent) => {
                left -= sent as u64;
                deadline = Instant::now() + REPLY_TIMEOUT;
                continue;
            }
            Err(EngineError::NoTxBuffer) => {}
            Err(e) => return Err(Error::runtime(format!("send failed: {e}"))),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::runtime("no transmit buffer came back within 5 s"));
        }
        host.wait((deadline - now).min(Duration::from_millis(100)), None);
    }
    Ok(())
}

/// Streams `messages` full-size messages to the sink and waits for its report; returns
/// the seconds from the first send to the report.
///
/// Like [`bare_block`], whose request round trip ([`remote_takes_part`]) comes before its
/// clock starts, it first asks the sink for an (empty) report, untimed: both streams start
/// with the remote awake, not one of them with the remote asleep on its doorbell (it
/// sleeps after a memcpy pass) and a wake-up on its clock.
fn stream_block(host: &mut HostNode<'_>, sink: u32, size: usize, messages: u64) -> Result<f64> {
    let data = vec![0x5Au8; size];
    let (stale, _) = sink_report(host, sink)?;
    if stale != 0 {
        return Err(Error::runtime(format!(
            "the sink counted {stale} messages before the stream began"
        )));
    }
    let start = Instant::now();
    stream_messages(host, sink, &data, messages)?;
    let (got, bytes) = sink_report(host, sink)?;
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    if got != messages || bytes != messages * size as u64 {
        return Err(Error::runtime(format!(
            "the sink counted {got} messages ({bytes} bytes), {messages} were sent"
        )));
    }
    Ok(seconds)
}
