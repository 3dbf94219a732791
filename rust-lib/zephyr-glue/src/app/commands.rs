//! The host's `rpmsg_ivshmem send`, `bench`, `doorbell` and `status` shell commands
//! (compiled with CONFIG_RPMSG_IVSHMEM_SHELL, `bench` and `doorbell` with
//! CONFIG_RPMSG_IVSHMEM_BENCH, as their registration in c/rpmsg_glue.c): `rpmsg-app`'s
//! commands on the node the receive thread shares ([`STATE`]), and `doorbell`, a bare
//! doorbell ping-pong with no RPMsg (the floor of any design that sleeps on the doorbell).

use super::host::{App, STATE};
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
use super::BARE_DOORBELL_VECTOR;
use super::{ms_left, spin_cycles, Console, Line, MAX_PAYLOAD, SILENT_PEER_POLL_MS};
use crate::ivshmem::Ivshmem;
use crate::shell::{self, Shell};
use crate::time::{self, cycles, event};
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void};
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
use core::sync::atomic::{AtomicBool, Ordering};
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
use rpmsg_app::bench::{self, BenchOutcome};
use rpmsg_app::host::{self as app, SendOptions, SendOutcome};
use rpmsg_app::{command, status, text, Port};

#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
/// Most round trips one `bench` measures (the samples live in a static array).
pub const BENCH_MAX_COUNT: u64 = 2_000;

#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
/// How long `doorbell` waits for each answer (a remote of ours answers within
/// milliseconds; one without the answer, never).
pub const DOORBELL_TIMEOUT_MS: u32 = 1_000;

const EINVAL: c_int = -22;
const EAGAIN: c_int = -11;
const ETIMEDOUT: c_int = -116;
const EIO: c_int = -5;
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
const EBUSY: c_int = -16;

/// A command's view of the node: it receives in the shell thread, spinning first, then
/// sleeping on the doorbell (the receive thread leaves it to the command meanwhile).
struct CommandPort {
    shm: Option<Ivshmem>,
    spin: u64,
    /// Whether to spin before the next sleep: not after a sleep nothing ended early (a
    /// peer that publishes no id is then looked at every SILENT_PEER_POLL_MS, and
    /// spinning each time would burn the CPU — and, under QEMU's icount, run the guest
    /// clock ahead of real time, shortening the 5 s timeout).
    look: bool,
    /// Messages received when the last wait ended: more at the next one means traffic,
    /// so spinning is worth it again.
    rx_seen: u64,
}

impl Port<App> for CommandPort {
    fn with<R>(&mut self, f: impl FnOnce(&mut App) -> R) -> Option<R> {
        STATE.with(f)
    }

    fn now(&self) -> u64 {
        cycles()
    }

    fn ticks_per_sec(&self) -> u64 {
        u64::from(time::cycles_per_sec())
    }

    #[inline(never)]
    fn wait(&mut self, deadline: u64) {
        // Look at the rings for a while (the remote does not ring us meanwhile) ...
        let rx = STATE.with(|s| s.node.stats().rx_messages).unwrap_or(0);
        let spin = if self.look || rx != self.rx_seen { self.spin } else { 0 };
        let until = cycles().saturating_add(spin).min(deadline);
        while cycles() < until {
            if STATE.with(|s| s.node.has_pending()) != Some(false) {
                return;
            }
        }
        // ... then ask for doorbells again, and sleep unless something came meanwhile.
        // A remote that publishes no id (a C OpenAMP remote) may ring nobody: then look
        // again every SILENT_PEER_POLL_MS.
        let state = STATE.with(|s| {
            let arrived = s.node.prepare_to_wait().unwrap_or(true);
            (arrived, s.node.published_peer_id().is_none())
        });
        self.look = true;
        if let (Some((false, silent)), Some(shm)) = (state, self.shm) {
            let ms = ms_left(deadline);
            let ms = if silent { ms.min(SILENT_PEER_POLL_MS) } else { ms };
            self.look = matches!(shm.wait_doorbell(Some(ms)), Ok(Some(_)));
        }
        STATE.with(|s| s.node.busy_poll().ok());
        self.rx_seen = rx;
    }
}

fn command_port() -> CommandPort {
    CommandPort {
        shm: STATE.with(|s| s.node.doorbell().device()),
        spin: spin_cycles(),
        look: true,
        rx_seen: 0,
    }
}

/// At the end of a command, the receive thread takes the doorbell back: woken wherever it
/// sleeps (on the event once it saw the command run, else still on the doorbell), it
/// receives what came after the command's last message, whose doorbell the command may
/// have taken.
fn hand_back(port: &CommandPort) {
    event::raise();
    if let Some(shm) = port.shm {
        shm.raise_again(1);
    }
}

/// Arguments 1 and 2 of a shell command (`None` where not given).
type Args<'s> = (Option<&'s [u8]>, Option<&'s [u8]>);

/// Runs a command: `f` gets the shell's console and arguments 1 and 2; its result is
/// the command's.
///
/// # Safety
///
/// `argv` must hold `argc` valid NUL-terminated strings that live during the call, as
/// Zephyr's shell passes them to a handler.
unsafe fn run_command(
    sh: *const c_void,
    argc: usize,
    argv: *const *const c_char,
    f: impl FnOnce(&mut Console<'_>, Args<'_>) -> c_int,
) -> c_int {
    let sh = Shell::from_raw(sh);
    let mut line = Line::new();
    let mut out = Console {
        line: &mut line,
        shell: Some(&sh),
    };
    // SAFETY: forwarded from the caller.
    let args = unsafe { (shell::arg(argc, argv, 1), shell::arg(argc, argv, 2)) };
    f(&mut out, args)
}

/// Prints a refused argument's error line; the command's result.
fn refuse(out: &mut Console<'_>, e: command::ArgError<'_>) -> c_int {
    e.write_line(out);
    rpmsg_app::Console::end_error(out);
    EINVAL
}

/// Defines the C entry point of a shell command (registered in c/rpmsg_glue.c) that runs
/// `$command` through [`run_command`].
macro_rules! shell_entry {
    ($(#[$attr:meta])* $entry:ident => $command:ident) => {
        $(#[$attr])*
        #[no_mangle]
        extern "C" fn $entry(sh: *const c_void, argc: usize, argv: *const *const c_char) -> c_int {
            // SAFETY: Zephyr's shell passes `argc` valid strings that live during the call.
            unsafe { run_command(sh, argc, argv, $command) }
        }
    };
}

shell_entry! {
    /// `rpmsg_ivshmem send <string> <number of messages>` (Zephyr's shell checks that
    /// there are two arguments).
    rpmsg_glue_shell_send => send_command
}

/// `send` proper, on the shell's console.
fn send_command(out: &mut Console<'_>, (text, count): Args<'_>) -> c_int {
    let args = command::send_args(text.unwrap_or(b""), count.unwrap_or(b""), MAX_PAYLOAD);
    let (text, count) = match args {
        Ok(args) => args,
        Err(e) => return refuse(out, e),
    };
    let port = &mut command_port();
    let outcome = app::send(port, out, text, count, SendOptions::default());
    hand_back(port);
    match outcome {
        SendOutcome::Done => 0,
        SendOutcome::NotReady => EAGAIN,
        SendOutcome::TimedOut => ETIMEDOUT,
        SendOutcome::Failed => EIO,
    }
}

#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
/// The round-trip times of one `bench`, in cycles (no allocator: a static array).
struct Samples(UnsafeCell<[u32; BENCH_MAX_COUNT as usize]>);
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
// SAFETY: only `bench` touches the array, and only while it holds BENCH_BUSY, so there is
// never more than one reference to it.
unsafe impl Sync for Samples {}
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
static SAMPLES: Samples = Samples(UnsafeCell::new([0; BENCH_MAX_COUNT as usize]));
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
static BENCH_BUSY: AtomicBool = AtomicBool::new(false);

shell_entry! {
    /// `rpmsg_ivshmem bench [payload] [count]` (`rpmsg_app::bench`).
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    rpmsg_glue_shell_bench => bench_command
}

/// Runs `f` with the first `n` of [`SAMPLES`] (`bench`'s and `doorbell`'s), or says that
/// one of them already runs.
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
fn with_samples(
    out: &mut Console<'_>,
    n: u64,
    f: impl FnOnce(&mut Console<'_>, &mut [u32]) -> c_int,
) -> c_int {
    if BENCH_BUSY.swap(true, Ordering::Acquire) {
        text::line(out, text::BENCH_BUSY);
        rpmsg_app::Console::end(out);
        return EBUSY;
    }
    // SAFETY: BENCH_BUSY is ours until the store below; nobody else touches SAMPLES.
    let samples = unsafe { &mut (&mut *SAMPLES.0.get())[..n as usize] };
    let result = f(out, samples);
    BENCH_BUSY.store(false, Ordering::Release);
    result
}

/// `bench` proper, on the shell's console.
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
fn bench_command(out: &mut Console<'_>, (payload, count): Args<'_>) -> c_int {
    let (size, n) = match command::bench_args(payload, count, MAX_PAYLOAD, BENCH_MAX_COUNT) {
        Ok(args) => args,
        Err(e) => return refuse(out, e),
    };
    with_samples(out, n, |out, samples| {
        let port = &mut command_port();
        let outcome = bench::run(port, out, size, samples);
        hand_back(port);
        match outcome {
            BenchOutcome::Done => 0,
            BenchOutcome::NotReady => EAGAIN,
            BenchOutcome::NoEndpoint | BenchOutcome::BadEchoes => EIO,
            BenchOutcome::TimedOut => ETIMEDOUT,
        }
    })
}

shell_entry! {
    /// `rpmsg_ivshmem doorbell [count]`: bare doorbell round trips, no RPMsg.
    #[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
    rpmsg_glue_shell_doorbell => doorbell_command
}

/// `doorbell` proper: `count` (default 1000) round trips of [`ping_pong`] with the remote
/// that published its id, timed like `bench`'s.
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
fn doorbell_command(out: &mut Console<'_>, (count, _): Args<'_>) -> c_int {
    // `bench`'s check of the count (its payload given as 0), with this command's prefix.
    let n = match command::bench_args(Some(&b"0"[..]), count, MAX_PAYLOAD, BENCH_MAX_COUNT) {
        Ok((_, n)) => n,
        Err(e) => {
            rpmsg_app::Text::put(out, b"doorbell: ");
            e.write(out);
            text::line(out, "");
            rpmsg_app::Console::end_error(out);
            return EINVAL;
        }
    };
    let linked = STATE.with(|s| (s.node.doorbell().device(), s.node.published_peer_id()));
    let Some((shm, Some(peer))) = linked else {
        text::line(out, text::DOORBELL_NO_PEER);
        rpmsg_app::Console::end(out);
        return EAGAIN;
    };
    if let Err(e) = shm.own_doorbell(BARE_DOORBELL_VECTOR) {
        crate::logger::error!("host: doorbell: cannot route vector 1: ", e);
        return EIO;
    }
    with_samples(out, n, |out, samples| {
        let result = ping_pong(shm, peer, samples);
        match result {
            Ok(total) => doorbell_figures(out, samples, total),
            Err(i) => text::doorbell_timed_out(out, i + 1, u64::from(DOORBELL_TIMEOUT_MS)),
        }
        rpmsg_app::Console::end(out);
        if result.is_ok() {
            0
        } else {
            ETIMEDOUT
        }
    })
}

/// Rings vector [`BARE_DOORBELL_VECTOR`] of `peer` and sleeps on ours until it rings back
/// (the remote's receive thread does), `samples.len()` times; each round trip's time
/// (cycles) goes to `samples`. The total time, or `Err(i)`: round trip `i` got no answer
/// within [`DOORBELL_TIMEOUT_MS`].
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
fn ping_pong(shm: Ivshmem, peer: u16, samples: &mut [u32]) -> Result<u64, u64> {
    // A late answer to an earlier run that timed out would end the first round trip early.
    let _ = shm.wait_own_doorbell(0);
    let start = cycles();
    for (i, sample) in samples.iter_mut().enumerate() {
        let t0 = cycles();
        let answered = shm
            .notify(u32::from(peer), BARE_DOORBELL_VECTOR)
            .and_then(|()| shm.wait_own_doorbell(DOORBELL_TIMEOUT_MS));
        if answered != Ok(true) {
            return Err(i as u64);
        }
        *sample = (cycles() - t0).min(u64::from(u32::MAX)) as u32;
    }
    Ok(cycles() - start)
}

/// `doorbell`'s result line from its samples and total time (cycles).
#[cfg(CONFIG_RPMSG_IVSHMEM_BENCH)]
fn doorbell_figures(out: &mut Console<'_>, samples: &mut [u32], total: u64) {
    let n = samples.len() as u64;
    let per_s = n * u64::from(time::cycles_per_sec()) / total.max(1);
    bench::sort(samples);
    let rtt = [50, 99, 100].map(|p| time::cycles_to_us(u64::from(bench::percentile(samples, p))));
    text::doorbell_round_trips(out, n, per_s, rtt);
}

shell_entry! {
    /// `rpmsg_ivshmem status`: ids, link, session and counters, one `key: value` a line.
    rpmsg_glue_shell_status => status_command
}

/// `status` proper, on the shell's console.
fn status_command(out: &mut Console<'_>, _: Args<'_>) -> c_int {
    let ready = STATE.with(|s| status::write(out, s, &[])).is_some();
    if !ready {
        text::line(out, text::NOT_READY);
    }
    rpmsg_app::Console::end(out);
    if ready {
        0
    } else {
        EIO
    }
}
