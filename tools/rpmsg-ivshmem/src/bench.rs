//! `rpmsg-ivshmem bench`: round-trip latency (p50/p99/max) and round trips per second for
//! 1-, 64- and full-size payloads, and one-way streaming throughput with every buffer in
//! flight, measured as the host against a quiet remote.
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

use ivshmem::{Server, ServerConfig, ShmBacking, StopHandle};
use rpmsg_engine::Error as EngineError;

use crate::cli::Common;
use crate::error::{Error, Result};
use crate::host::{HostNode, REPLY_TIMEOUT};
use crate::node;
use crate::remote::SINK_REPORT_LEN;

/// How long the bench waits for the remote to attach.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// Round trips before measuring (caches, page faults, CPU frequency).
pub const WARM_UP: u64 = 200;
/// Streamed messages per measured round trip count.
pub const STREAM_FACTOR: u64 = 10;

/// Latency of one payload size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundTrips {
    /// Payload bytes per message.
    pub payload: usize,
    /// Round trips measured.
    pub count: u64,
    /// Median round trip, nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile, nanoseconds.
    pub p99_ns: u64,
    /// Slowest, nanoseconds.
    pub max_ns: u64,
    /// Round trips per second over the whole run.
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
    /// Seconds from the first send to the remote's report.
    pub seconds: f64,
    /// Payload megabytes (10^6 bytes) per second.
    pub mb_per_second: f64,
    /// Messages per second.
    pub messages_per_second: f64,
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
    /// One row per payload size.
    pub round_trips: Vec<RoundTrips>,
    /// The streaming row, if the remote offers the sink endpoint.
    pub stream: Option<OneWayStream>,
}

fn us(ns: u64) -> String {
    format!("{:.1} us", ns as f64 / 1000.0)
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
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
        if let Some(first) = self.round_trips.first() {
            let _ = writeln!(
                t,
                "round trips (send one message, wait for its echo), {} per payload size:",
                first.count
            );
        }
        let _ = writeln!(
            t,
            "{:>8}  {:>11}  {:>11}  {:>11}  {:>14}",
            "payload", "RTT p50", "RTT p99", "RTT max", "round trips/s"
        );
        for r in &self.round_trips {
            let _ = writeln!(
                t,
                "{:>6} B  {:>11}  {:>11}  {:>11}  {:>14.0}",
                r.payload,
                us(r.p50_ns),
                us(r.p99_ns),
                us(r.max_ns),
                r.per_second
            );
        }
        match &self.stream {
            Some(s) => {
                let _ = writeln!(
                    t,
                    "one-way stream to the remote's sink, {}-byte payloads, up to {} in flight:\n\
                     {:>8} messages in {:.3} s: {:.1} MB/s, {:.0} messages/s",
                    s.payload,
                    s.in_flight,
                    s.messages,
                    s.seconds,
                    s.mb_per_second,
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
        t
    }
}

/// A private server (thread) and remote (child process), torn down on drop.
struct Private {
    stop: StopHandle,
    server: Option<JoinHandle<std::result::Result<(), ivshmem::Error>>>,
    remote: Option<Child>,
    remote_stderr: Option<JoinHandle<String>>,
}

impl Private {
    fn start(common: &mut Common) -> Result<Self> {
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
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent; it makes
        // the kernel kill the remote if this process dies without reaping it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
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
pub fn run(common: &Common, count: u64, attach: bool) -> Result<Report> {
    let mut common = common.clone();
    let mut private = if attach {
        None
    } else {
        Some(Private::start(&mut common)?)
    };
    crate::console::set_diagnostics(false);
    let result = measure(&common, count, !attach);
    crate::console::set_diagnostics(true);
    if let Some(p) = private.as_mut() {
        let remote_log = p.finish();
        if result.is_err() && !remote_log.is_empty() {
            eprint!("{remote_log}");
        }
    }
    result
}

fn measure(common: &Common, count: u64, private: bool) -> Result<Report> {
    let attached = node::attach(common)?;
    let region = node::region(&attached.mapping)?;
    let config = node::config(common, &attached.ivshmem)?;
    let mut host = HostNode::start(region, config, attached.ivshmem, common.board.clone(), None)?;
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
    let max = host.engine().max_payload();
    let mut sizes = vec![1, 64, max];
    sizes.retain(|s| *s <= max);
    sizes.dedup();
    let mut round_trips = Vec::new();
    for size in sizes {
        round_trips.push(round_trip_row(&mut host, ept, size, count)?);
    }
    // The sink is announced right after "k"; give it a moment in case it is still on its way.
    let until = Instant::now() + Duration::from_millis(200);
    while host.sink_endpoint().is_none() && Instant::now() < until {
        while let Some(rx) = host.next_message() {
            host.discard(rx);
        }
        host.wait(Duration::from_millis(10), None);
    }
    let stream = match host.sink_endpoint() {
        Some(sink) => Some(stream_row(
            &mut host,
            sink,
            max,
            count.saturating_mul(STREAM_FACTOR),
            common.buf_count,
        )?),
        None => None,
    };
    host.shutdown();
    Ok(Report {
        socket: common.socket.clone(),
        private,
        buf_size: common.buf_size,
        buf_count: common.buf_count,
        round_trips,
        stream,
    })
}

/// Sends `data` from `ept`, waiting for a free buffer (bounded by the reply timeout).
fn send_blocking(host: &mut HostNode<'_>, ept: u32, data: &[u8]) -> Result<()> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        match host.engine().try_send(ept, data) {
            Ok(()) => return Ok(()),
            Err(EngineError::NoTxBuffer) => {}
            Err(e) => return Err(Error::runtime(format!("send failed: {e}"))),
        }
        // Buffers come back when the remote consumes; collect stray messages meanwhile.
        while let Some(rx) = host.next_message() {
            host.discard(rx);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::runtime("no transmit buffer came back within 5 s"));
        }
        host.wait((deadline - now).min(Duration::from_millis(100)), None);
    }
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
            return Err(Error::runtime(
                "Remote side response timed out! (no reply within 5 s)",
            ));
        }
        host.wait((deadline - now).min(Duration::from_millis(100)), None);
    }
}

fn round_trip_row(
    host: &mut HostNode<'_>,
    ept: u32,
    size: usize,
    count: u64,
) -> Result<RoundTrips> {
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut echo = vec![0u8; host.engine().max_payload()];
    let mut one = |host: &mut HostNode<'_>| -> Result<()> {
        send_blocking(host, ept, &data)?;
        let n = receive(host, ept, &mut echo)?;
        if echo[..n] != data[..] {
            return Err(Error::runtime(format!(
                "the echo of a {size}-byte message came back as {n} different bytes"
            )));
        }
        Ok(())
    };
    for _ in 0..WARM_UP.min(count) {
        one(host)?;
    }
    let mut samples: Vec<u64> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        one(host)?;
        samples.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let total = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    let at = |q: f64| -> u64 {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).copied().unwrap_or(0)
    };
    Ok(RoundTrips {
        payload: size,
        count,
        p50_ns: at(0.5),
        p99_ns: at(0.99),
        max_ns: samples.last().copied().unwrap_or(0),
        per_second: count as f64 / total.max(1e-9),
    })
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

fn stream_row(
    host: &mut HostNode<'_>,
    sink: u32,
    size: usize,
    messages: u64,
    in_flight: u16,
) -> Result<OneWayStream> {
    // Binds the sink to us and zeroes its counters.
    sink_report(host, sink)?;
    let data = vec![0x5Au8; size];
    let start = Instant::now();
    for _ in 0..messages {
        send_blocking(host, sink, &data)?;
    }
    let (got, bytes) = sink_report(host, sink)?;
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    if got != messages || bytes != messages * size as u64 {
        return Err(Error::runtime(format!(
            "the sink counted {got} messages ({bytes} bytes), {messages} were sent"
        )));
    }
    Ok(OneWayStream {
        payload: size,
        messages,
        in_flight,
        seconds,
        mb_per_second: bytes as f64 / seconds / 1e6,
        messages_per_second: messages as f64 / seconds,
    })
}
