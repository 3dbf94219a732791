//! `bench [payload] [count]`: round trips one at a time (rate and RTT percentiles), then a
//! stream with [`WINDOW`] messages in flight, all through the remote's silent `"bench"`
//! endpoint. Two result lines, nothing per message.

use rpmsg_engine::{Doorbell, Error, TxBuffer};

use crate::host::{self, HostApp};
use crate::{text, Console, ErrorOnce, Part, Port, Sender};

/// Messages in flight in the streaming phase (the rings hold 16 each way).
pub const WINDOW: u32 = 8;

/// How `bench` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchOutcome {
    /// Both result lines printed.
    Done,
    /// The link is not up ([`text::NOT_READY`] printed).
    NotReady,
    /// The remote offers no bench endpoint ([`text::BENCH_NO_ENDPOINT`] printed).
    NoEndpoint,
    /// Some echoes were wrong (counted and printed).
    BadEchoes,
    /// An echo did not come within the timeout.
    TimedOut,
}

/// Writes bench message `seq` of `size` bytes: the number (little-endian, in payloads of 4
/// bytes and more), then the bytes' offsets.
fn write_message(buf: &mut TxBuffer<'_>, size: usize, seq: u64) -> Result<(), Error> {
    let mut chunk = [0u8; 64];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(chunk.len());
        for (i, b) in chunk[..n].iter_mut().enumerate() {
            *b = (at + i) as u8;
        }
        if at == 0 && size >= 4 {
            chunk[..4].copy_from_slice(&(seq as u32).to_le_bytes());
        }
        buf.write(at, &chunk[..n])?;
        at += n;
    }
    Ok(())
}

/// Heapsort: small code, no allocation, O(n log n).
pub fn sort(v: &mut [u32]) {
    fn sift(v: &mut [u32], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for i in (0..n / 2).rev() {
        sift(v, i, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift(v, 0, end);
    }
}

/// The `p`th percentile (0 to 100) of sorted `samples`: the sample at `(n - 1) * p / 100`.
pub fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() - 1) * p / 100]
}

/// One `bench` run on a host port.
struct Run<'p, 'a, D: Doorbell, P> {
    port: &'p mut P,
    node: core::marker::PhantomData<fn() -> HostApp<'a, D>>,
    ept: u32,
    size: usize,
    timeout: u64,
    errors: ErrorOnce,
}

impl<'a, D: Doorbell + 'a, P: Port<HostApp<'a, D>>> Run<'_, 'a, D, P> {
    fn ticks_to_us(&self, t: u64) -> u64 {
        let hz = self.port.ticks_per_sec().max(1);
        t / hz * 1_000_000 + t % hz * 1_000_000 / hz
    }

    /// Starts a phase: counts echoes from zero.
    fn phase(&mut self, active: bool) {
        let size = self.size;
        self.port.with(|a| {
            a.bench.active = active;
            a.bench.payload = size;
            a.bench.received = 0;
        });
    }

    /// Receives until the bench has more than `n` echoes or `deadline`: true if it has.
    fn wait_echoes(&mut self, out: &mut impl Console, n: u64, deadline: u64) -> bool {
        loop {
            let Some(step) = self.port.with(|a| a.receive()) else {
                return false;
            };
            if self.port.with(|a| a.bench.received > n) == Some(true) {
                return true;
            }
            let idle = matches!(step, host::Step::Idle);
            host::settle(self.port, step, out, &mut self.errors);
            // Checked after every step: a peer that keeps sending strays times out too.
            if self.port.now() >= deadline {
                return false;
            }
            if idle {
                self.port.wait(deadline);
            }
        }
    }

    /// Round trips, one at a time; their times go to `samples`. `Err(i)`: round trip `i`
    /// failed.
    fn round_trips(&mut self, out: &mut impl Console, samples: &mut [u32]) -> Result<u64, u64> {
        let (ept, size) = (self.ept, self.size);
        let start = self.port.now();
        for (i, sample) in samples.iter_mut().enumerate() {
            let i = i as u64;
            let t0 = self.port.now();
            let deadline = t0.saturating_add(self.timeout);
            let send = |a: &mut HostApp<'a, D>| {
                a.node
                    .try_send_with(ept, size, &mut |buf| write_message(buf, size, i))
            };
            if crate::send_blocking(self.port, send, deadline).is_err()
                || !self.wait_echoes(out, i, deadline)
            {
                return Err(i);
            }
            *sample = (self.port.now() - t0).min(u64::from(u32::MAX)) as u32;
        }
        Ok(self.port.now() - start)
    }

    /// Sends what fits the window; `Err` if sending failed for good.
    fn fill(&mut self, sent: &mut u64, n: u64) -> Result<(), Error> {
        let (ept, size) = (self.ept, self.size);
        let result = self.port.with(|a| {
            // One doorbell check for the whole burst.
            a.node.defer_doorbells();
            let mut result = Ok(());
            while *sent < n && *sent - a.bench.received < u64::from(WINDOW) {
                let seq = *sent;
                match a
                    .node
                    .try_send_with(ept, size, &mut |buf| write_message(buf, size, seq))
                {
                    Ok(()) => *sent += 1,
                    Err(Error::NoTxBuffer) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let _ = a.node.flush_doorbell();
            result
        });
        result.unwrap_or(Err(Error::NotReady))
    }

    /// The stream of `n` messages. `Err(i)`: no progress after `i` echoes.
    fn stream(&mut self, out: &mut impl Console, n: u64) -> Result<u64, u64> {
        let start = self.port.now();
        let (mut sent, mut received) = (0u64, 0u64);
        while received < n {
            if let Err(e) = self.fill(&mut sent, n) {
                out.diag(&[Part::Str("host: bench: send failed: "), Part::Error(e)]);
                return Err(received);
            }
            let deadline = self.port.now().saturating_add(self.timeout);
            if !self.wait_echoes(out, received, deadline) {
                return Err(received);
            }
            received = self.port.with(|a| a.bench.received).unwrap_or(received);
        }
        Ok(self.port.now() - start)
    }

    fn measure(
        &mut self,
        out: &mut impl Console,
        samples: &mut [u32],
    ) -> Result<(), (&'static str, u64)> {
        let n = samples.len() as u64;
        let hz = self.port.ticks_per_sec();
        self.phase(true);
        let t = self
            .round_trips(out, samples)
            .map_err(|i| ("round trip", i))?;
        sort(samples);
        let rtt = [50, 99, 100].map(|p| self.ticks_to_us(u64::from(percentile(samples, p))));
        text::bench_round_trips(out, n, self.size, n * hz / t.max(1), rtt);
        out.end();
        self.phase(true);
        let t = self.stream(out, n).map_err(|i| ("stream message", i))?;
        let per_s = n * hz / t.max(1);
        let kb_s = n * self.size as u64 * hz / t.max(1) / 1000;
        text::bench_stream(out, n, WINDOW, self.size, per_s, kb_s);
        out.end();
        Ok(())
    }
}

/// Runs `bench` with messages of `size` bytes, `samples.len()` round trips and as many
/// streamed messages (arguments checked by [`crate::command::bench_args`]).
pub fn run<'a, D, P>(
    port: &mut P,
    out: &mut impl Console,
    size: usize,
    samples: &mut [u32],
) -> BenchOutcome
where
    D: Doorbell + 'a,
    P: Port<HostApp<'a, D>>,
{
    host::drain(port, out, &mut ErrorOnce::new());
    let endpoints = port.with(|a| (a.ready(), a.bound(a.bench_ept)));
    let ept = match endpoints {
        Some((_, Some(ept))) => ept,
        Some((Some(_), None)) => {
            text::line(out, text::BENCH_NO_ENDPOINT);
            out.end();
            return BenchOutcome::NoEndpoint;
        }
        _ => {
            text::line(out, text::NOT_READY);
            out.end();
            return BenchOutcome::NotReady;
        }
    };
    port.with(|a| {
        a.bench.bad = 0;
        // This thread receives now; the remote need not ring it meanwhile.
        a.busy = true;
        let _ = a.node.busy_poll();
    });
    let timeout = port.ms(crate::REPLY_TIMEOUT_MS);
    let mut run = Run {
        port,
        node: core::marker::PhantomData,
        ept,
        size,
        timeout,
        errors: ErrorOnce::new(),
    };
    let result = run.measure(out, samples);
    run.phase(false);
    let bad = port
        .with(|a| {
            a.busy = false;
            let _ = a.node.prepare_to_wait();
            a.bench.bad
        })
        .unwrap_or(0);
    if bad > 0 {
        text::bench_bad_echoes(out, bad);
        out.end();
    }
    match result {
        Ok(()) if bad == 0 => BenchOutcome::Done,
        Ok(()) => BenchOutcome::BadEchoes,
        Err((what, i)) => {
            text::bench_timed_out(out, what, i + 1);
            out.end();
            BenchOutcome::TimedOut
        }
    }
}
