//! Command-line parsing, on `clap`. Options may stand before or after the command words;
//! `--` ends the options (for a string that starts with `-`). A word like `-1` is not an
//! option: it is taken as an argument, so that it is refused as a count with a clear message.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use rpmsg_engine::layout::MAX_SHM_SIZE;
use rpmsg_engine::{Config, Layout};

use crate::error::{Error, Result};
use crate::validate;

/// The socket the ivshmem-server listens on by default (as QEMU's server).
pub const DEFAULT_SOCKET: &str = ivshmem::DEFAULT_SOCKET_PATH;
/// How long `host send` waits for a remote by default.
pub const DEFAULT_WAIT_LINK: Duration = Duration::from_secs(10);
/// Round trips per payload size in `bench` by default.
pub const DEFAULT_BENCH_COUNT: u64 = 10_000;
/// Most round trips per payload size in `bench`.
pub const MAX_BENCH_COUNT: u64 = 10_000_000;
/// Longest `--spin-us`.
pub const MAX_SPIN_US: u64 = 1_000_000;
/// Largest `--wait` in seconds (a day): far more than any link needs to come up, and small
/// enough that a deadline computed from it never overflows.
pub const MAX_WAIT_SECS: u64 = 86_400;

/// The usage text (`--help`).
pub fn usage() -> String {
    Args::command().render_long_help().to_string()
}

/// The banner's board name for this machine: `linux_<arch>`.
pub fn default_board() -> String {
    format!("linux_{}", std::env::consts::ARCH)
}

/// Settings every command shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// The ivshmem-server socket.
    pub socket: PathBuf,
    /// RPMsg buffer size, header included.
    pub buf_size: u32,
    /// Buffers (descriptors) per direction.
    pub buf_count: u16,
    /// Name in the banner.
    pub board: String,
    /// How long to spin before blocking on the doorbell.
    pub spin: Duration,
}

impl Common {
    /// The engine configuration for a region of `shm_size` bytes.
    pub fn config(&self, shm_size: usize) -> Config {
        Config {
            buf_size: self.buf_size,
            queue_size: self.buf_count,
            ..Config::new(shm_size)
        }
    }

    /// Payload bytes per message.
    pub fn max_payload(&self) -> usize {
        self.buf_size as usize - rpmsg_engine::wire::RpmsgHeader::SIZE
    }
}

/// Options of `host send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// No per-message output; a summary at the end.
    pub quiet: bool,
    /// Number the messages and check every echo.
    pub seq: bool,
    /// Messages in flight.
    pub window: u16,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            quiet: false,
            seq: false,
            window: 1,
        }
    }
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `remote`.
    Remote {
        /// No per-message output.
        quiet: bool,
        /// Exit after this many echoes.
        count: Option<u64>,
        /// Offer the sink endpoint.
        sink: bool,
    },
    /// `host` reading commands from stdin.
    HostShell,
    /// `host send <string> <n>`.
    HostSend {
        /// The string (without its NUL).
        text: Vec<u8>,
        /// How many times.
        count: u64,
        /// Output and checking.
        options: SendOptions,
        /// How long to wait for the link.
        wait: Duration,
    },
    /// `bench`.
    Bench {
        /// Round trips per payload size.
        count: u64,
        /// Use a running server and remote.
        attach: bool,
        /// Print JSON instead of the table.
        json: bool,
        /// CPUs to pin the host (this process) and the private remote to.
        cpus: Option<(usize, usize)>,
    },
    /// `status`.
    Status,
    /// `help`, `-h`.
    Help,
    /// `-V`.
    Version,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// Shared settings.
    pub common: Common,
    /// The command.
    pub command: Command,
}

/// The command line as clap sees it; [`parse`] turns it into a [`Cli`].
#[derive(Debug, Parser)]
#[command(
    name = "rpmsg-ivshmem",
    version,
    about = "RPMsg over IVSHMEM, natively on Linux: attaches to an ivshmem-server as a peer \
             and talks to the other side (a Zephyr image in QEMU, or another rpmsg-ivshmem) \
             through the shared memory. Options may come before or after the command.",
    args_override_self = true,
    after_help = "Exit status: 0 success, 1 failure (server absent, link not ready, \
                  timeout), 2 usage error."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// ivshmem-server socket
    #[arg(short = 'S', long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// RPMsg buffer size, 16-byte header included
    #[arg(long, global = true, value_name = "BYTES", default_value = "512",
          value_parser = whole::<u32>)]
    buf_size: u32,
    /// Buffers per direction = descriptors per virtqueue, a power of two; both sides must
    /// use the same two values
    #[arg(long, global = true, value_name = "N", default_value = "16",
          value_parser = whole::<u16>)]
    buf_count: u16,
    /// Name in the "Hello <NAME> - ... Side" banner [default: linux_<arch>]
    #[arg(long, global = true, value_name = "NAME")]
    board: Option<String>,
    /// How long to look at the rings (yielding the CPU) before blocking on the doorbell,
    /// in microseconds; 0: block at once [default: 50]
    #[arg(long, global = true, value_name = "N", value_parser = spin_arg)]
    spin_us: Option<Duration>,
    /// remote, host send: nothing per message, a summary at the end
    #[arg(short, long, global = true)]
    quiet: bool,
    /// host send: number the messages ("<i>:<string>") and check that every echo comes
    /// back once, complete and in order
    #[arg(long, global = true)]
    seq: bool,
    /// host send: messages in flight [default: 1, as the firmware]
    #[arg(long, global = true, value_name = "N", value_parser = whole::<u16>)]
    window: Option<u16>,
    /// host send: how long to wait for a remote, in seconds (at most 86400) [default: 10]
    #[arg(long, global = true, value_name = "SECS", value_parser = wait_arg)]
    wait: Option<u64>,
    /// remote: exit after echoing N messages; bench: round trips per payload size
    /// [default: 10000]
    #[arg(long, global = true, value_name = "N", value_parser = positive)]
    count: Option<u64>,
    /// remote: also offer endpoint "rpmsg-sink", which consumes messages (bench uses it
    /// for one-way throughput)
    #[arg(long, global = true)]
    sink: bool,
    /// bench: use the server at -S and a remote already running there (default: start a
    /// private server and remote)
    #[arg(long, global = true)]
    attach: bool,
    /// bench: print one JSON object instead of the table
    #[arg(long, global = true)]
    json: bool,
    /// bench: pin itself (the host) to CPU H and its remote to CPU R (H = R: both share one
    /// CPU; default: the scheduler decides)
    #[arg(long, global = true, value_name = "H,R", value_parser = cpus_arg)]
    cpus: Option<(usize, usize)>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Act as the remote image: endpoint "k", echo every message back
    Remote,
    /// Long-running host; reads commands from stdin, one a line:
    /// `rpmsg_ivshmem send <string> <number of messages>`, `status`.
    /// `host send <string> <n>`: send <string> n times, waiting for each echo (as the
    /// host's shell)
    Host {
        #[command(subcommand)]
        send: Option<HostSub>,
    },
    /// Round-trip latency and one-way throughput next to their limits (eventfd ping-pong,
    /// memcpy); prints a table
    Bench,
    /// Show the link as the shared control area describes it
    Status,
}

#[derive(Debug, Subcommand)]
enum HostSub {
    /// Send <string> n times, waiting for each echo (as the host's shell)
    #[command(allow_negative_numbers = true)]
    Send {
        /// <string> <number of messages>
        #[arg(value_name = "ARGS", value_parser = clap::value_parser!(OsString))]
        words: Vec<OsString>,
    },
}

/// A whole number, digits only (no sign, no spaces).
fn whole<T: std::str::FromStr>(value: &str) -> std::result::Result<T, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number".into());
    }
    value.parse().map_err(|_| "the number is too large".into())
}

fn positive(value: &str) -> std::result::Result<u64, String> {
    match whole(value)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

fn spin_arg(value: &str) -> std::result::Result<Duration, String> {
    let us: u64 = whole(value)?;
    if us > MAX_SPIN_US {
        return Err(format!(
            "at most {MAX_SPIN_US} (a second of busy CPU per wait)"
        ));
    }
    Ok(Duration::from_micros(us))
}

fn wait_arg(value: &str) -> std::result::Result<u64, String> {
    match whole(value)? {
        s if s > MAX_WAIT_SECS => Err(format!("at most {MAX_WAIT_SECS} (a day)")),
        s => Ok(s),
    }
}

fn cpus_arg(value: &str) -> std::result::Result<(usize, usize), String> {
    value
        .split_once(',')
        .and_then(|(h, r)| Some((whole(h).ok()?, whole(r).ok()?)))
        .ok_or_else(|| "expected two CPU numbers, HOST,REMOTE".into())
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Cli> {
    let argv = std::iter::once(OsString::from("rpmsg-ivshmem")).chain(args);
    match Args::try_parse_from(argv) {
        Ok(args) => build(args),
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Ok(Cli {
                    common: defaults()?,
                    command: Command::Help,
                })
            }
            ErrorKind::DisplayVersion => Ok(Cli {
                common: defaults()?,
                command: Command::Version,
            }),
            _ => Err(Error::usage(clap_message(&e))),
        },
    }
}

/// The settings of a command line without options.
fn defaults() -> Result<Common> {
    common(&Args::try_parse_from(["rpmsg-ivshmem"]).map_err(|e| Error::usage(e.to_string()))?)
}

/// clap's message without its `error: ` prefix, usage and tips (we print our own hint).
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

fn common(args: &Args) -> Result<Common> {
    let common = Common {
        socket: args.socket.clone(),
        buf_size: args.buf_size,
        buf_count: args.buf_count,
        board: args.board.clone().unwrap_or_else(default_board),
        spin: args.spin_us.unwrap_or(crate::platform::DEFAULT_SPIN),
    };
    if common.board.contains('\n') {
        return Err(Error::usage("--board: the name must be one line"));
    }
    // The layout rules that do not depend on the region size, checked before connecting.
    if let Err(e) = Layout::new(&common.config(MAX_SHM_SIZE)) {
        return Err(Error::usage(format!(
            "--buf-size {} --buf-count {}: {e}",
            common.buf_size, common.buf_count
        )));
    }
    Ok(common)
}

fn build(args: Args) -> Result<Cli> {
    let common = common(&args)?;
    let command = match &args.command {
        None => {
            return Err(Error::usage(
                "missing command: remote, host, host send, bench or status",
            ))
        }
        Some(Sub::Remote) => Command::Remote {
            quiet: args.quiet,
            count: args.count,
            sink: args.sink,
        },
        Some(Sub::Host { send: None }) => Command::HostShell,
        Some(Sub::Host {
            send: Some(HostSub::Send { words }),
        }) => host_send(&args, &common, words)?,
        Some(Sub::Bench) => Command::Bench {
            count: bench_count(args.count)?,
            attach: args.attach,
            json: args.json,
            cpus: args.cpus,
        },
        Some(Sub::Status) => Command::Status,
    };
    check_applicable(&args, &command)?;
    if args.attach && args.cpus.is_some() {
        return Err(Error::usage(
            "--cpus pins the remote that bench starts itself: not with --attach",
        ));
    }
    Ok(Cli { common, command })
}

fn host_send(args: &Args, common: &Common, words: &[OsString]) -> Result<Command> {
    let [text, count] = words else {
        return Err(Error::usage(
            "host send: wrong parameter count\n\
             Usage: rpmsg-ivshmem host send <string> <number of messages>",
        ));
    };
    let (text, count) = (text.as_bytes(), count.as_bytes());
    let count = validate::parse_count(count).map_err(Error::usage)?;
    let window = args.window.unwrap_or(1);
    if window == 0 || window > common.buf_count {
        return Err(Error::usage(format!(
            "--window: {window} messages in flight is not possible with {} buffers: use 1 \
             to {}",
            common.buf_count, common.buf_count
        )));
    }
    let options = SendOptions {
        quiet: args.quiet,
        seq: args.seq,
        window,
    };
    validate::check_text(text, common.max_payload()).map_err(Error::usage)?;
    let longest = text.len() + validate::seq_prefix_len(count);
    if options.seq && longest >= common.max_payload() {
        return Err(Error::usage(format!(
            "string too long for --seq: with the prefix \"{count}:\" it takes {longest} \
             bytes, but at most {} fit in one message; nothing was sent",
            common.max_payload() - 1
        )));
    }
    Ok(Command::HostSend {
        text: text.to_vec(),
        count,
        options,
        wait: args.wait.map_or(DEFAULT_WAIT_LINK, Duration::from_secs),
    })
}

fn bench_count(count: Option<u64>) -> Result<u64> {
    match count {
        Some(n) if n > MAX_BENCH_COUNT => Err(Error::usage(format!(
            "--count: at most {MAX_BENCH_COUNT} round trips per payload size (each one's \
             time is kept for the percentiles)"
        ))),
        Some(n) => Ok(n),
        None => Ok(DEFAULT_BENCH_COUNT),
    }
}

/// Refuses options that mean nothing for the chosen command (rather than ignoring them).
fn check_applicable(args: &Args, command: &Command) -> Result<()> {
    let (name, allowed): (&str, &[&str]) = match command {
        Command::Remote { .. } => ("remote", &["--quiet", "--count", "--sink"]),
        Command::HostSend { .. } => ("host send", &["--quiet", "--seq", "--window", "--wait"]),
        Command::HostShell => ("host", &[]),
        Command::Bench { .. } => ("bench", &["--count", "--attach", "--json", "--cpus"]),
        Command::Status => ("status", &[]),
        Command::Help | Command::Version => return Ok(()),
    };
    let given = [
        ("--quiet", args.quiet),
        ("--seq", args.seq),
        ("--window", args.window.is_some()),
        ("--wait", args.wait.is_some()),
        ("--count", args.count.is_some()),
        ("--sink", args.sink),
        ("--attach", args.attach),
        ("--json", args.json),
        ("--cpus", args.cpus.is_some()),
    ];
    for (option, set) in given {
        if set && !allowed.contains(&option) {
            return Err(Error::usage(format!(
                "option {option} does not apply to {name}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Cli> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn socket_before_or_after_the_command() {
        for args in [
            &["-S", "/tmp/s", "remote"][..],
            &["remote", "-S", "/tmp/s"],
            &["remote", "--socket=/tmp/s"],
            &["--socket", "/tmp/s", "remote"],
            &["-S/tmp/s", "remote"],
        ] {
            let c = cli(args).unwrap();
            assert_eq!(c.common.socket, PathBuf::from("/tmp/s"), "{args:?}");
            assert_eq!(
                c.command,
                Command::Remote {
                    quiet: false,
                    count: None,
                    sink: false
                }
            );
        }
        assert_eq!(
            cli(&["remote"]).unwrap().common.socket,
            PathBuf::from("/tmp/ivshmem_socket")
        );
    }

    #[test]
    fn host_send() {
        let c = cli(&["host", "send", "RPMsg over IVSHMEM", "10", "-S", "/x"]).unwrap();
        assert_eq!(
            c.command,
            Command::HostSend {
                text: b"RPMsg over IVSHMEM".to_vec(),
                count: 10,
                options: SendOptions::default(),
                wait: DEFAULT_WAIT_LINK
            }
        );
        let c = cli(&["host", "send", "", "10000000000000"]).unwrap();
        assert!(matches!(
            c.command,
            Command::HostSend {
                count: 10_000_000_000_000,
                ..
            }
        ));
        let c = cli(&["host", "send", "--", "-x", "1"]).unwrap();
        assert!(matches!(c.command, Command::HostSend { ref text, .. } if text == b"-x"));
        let c = cli(&[
            "host", "send", "a", "5", "--quiet", "--seq", "--window", "8", "--wait", "3",
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::HostSend {
                text: b"a".to_vec(),
                count: 5,
                options: SendOptions {
                    quiet: true,
                    seq: true,
                    window: 8
                },
                wait: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn bad_counts_and_strings_are_usage_errors() {
        for count in ["abc", "-1", "0", "1e3"] {
            let e = cli(&["host", "send", "x", count]).unwrap_err();
            assert!(
                matches!(e, Error::Usage(ref m) if m.contains("invalid number of messages")),
                "{count}: {e}"
            );
        }
        let long = "a".repeat(496);
        let e = cli(&["host", "send", &long, "1"]).unwrap_err();
        assert!(
            e.to_string().starts_with("string too long: 496 bytes"),
            "{e}"
        );
        assert!(cli(&["host", "send", &"a".repeat(495), "1"]).is_ok());
        // With --seq the prefix counts too.
        assert!(cli(&["host", "send", &"a".repeat(495), "1", "--seq"]).is_err());
        assert!(cli(&["host", "send", &"a".repeat(493), "1", "--seq"]).is_ok());
        // A larger buffer allows longer strings.
        assert!(cli(&["host", "send", &long, "1", "--buf-size", "1024"]).is_ok());
        let e = cli(&["host", "send", "x"]).unwrap_err();
        assert!(e.to_string().contains("wrong parameter count"));
    }

    #[test]
    fn bad_options() {
        assert!(cli(&[]).is_err());
        assert!(cli(&["remote", "--bogus"]).is_err());
        assert!(cli(&["remote", "-S"]).is_err());
        assert!(cli(&["remote", "--seq"]).is_err());
        assert!(cli(&["bench", "--quiet"]).is_err());
        assert!(cli(&["remote", "--quiet=1"]).is_err());
        assert!(cli(&["remote", "--buf-size", "500"]).is_err());
        assert!(cli(&["remote", "--buf-count", "12"]).is_err());
        assert!(cli(&["remote", "--buf-count", "0"]).is_err());
        assert!(cli(&["host", "send", "x", "1", "--window", "17"]).is_err());
        assert!(cli(&["host", "send", "x", "1", "--window", "0"]).is_err());
        assert!(cli(&["frobnicate"]).is_err());
        assert!(cli(&["bench", "--count", "10000001"]).is_err());
        assert!(cli(&["bench", "--count", "0"]).is_err());
        for huge in ["18446744073709551615", "86401"] {
            assert!(cli(&["host", "send", "x", "1", "--wait", huge]).is_err());
        }
        assert!(cli(&["host", "send", "x", "1", "--wait", "86400"]).is_ok());
        assert!(cli(&["remote", "--json"]).is_err());
        assert_eq!(
            cli(&["bench", "--json", "--count", "5"]).unwrap().command,
            Command::Bench {
                count: 5,
                attach: false,
                json: true,
                cpus: None
            }
        );
        assert!(matches!(
            cli(&["bench", "--cpus", "0,1"]).unwrap().command,
            Command::Bench {
                cpus: Some((0, 1)),
                ..
            }
        ));
        assert!(cli(&["bench", "--cpus", "0"]).is_err());
        assert!(cli(&["bench", "--cpus", "a,1"]).is_err());
        assert!(cli(&["remote", "--cpus", "0,1"]).is_err());
        assert!(cli(&["bench", "--cpus", "0,1", "--attach"]).is_err());
        assert!(cli(&["remote", "extra"]).is_err());
        assert_eq!(cli(&["remote", "-h"]).unwrap().command, Command::Help);
        assert_eq!(cli(&["-V"]).unwrap().command, Command::Version);
        let c = cli(&["remote", "--buf-size", "1024", "--buf-count", "64"]).unwrap();
        assert_eq!((c.common.buf_size, c.common.buf_count), (1024, 64));
        assert_eq!(c.common.max_payload(), 1008);
        assert_eq!(c.common.spin, crate::platform::DEFAULT_SPIN);
        let c = cli(&["remote", "--spin-us", "0"]).unwrap();
        assert_eq!(c.common.spin, Duration::ZERO);
        let c = cli(&["--spin-us=250", "bench"]).unwrap();
        assert_eq!(c.common.spin, Duration::from_micros(250));
        assert!(cli(&["remote", "--spin-us", "-1"]).is_err());
        assert!(cli(&["remote", "--spin-us", "1000001"]).is_err());
    }

    #[test]
    fn clap_forms() {
        Args::command().debug_assert();
        // Combined short flags with an attached value, options after `--`-free words.
        let c = cli(&["-qS/tmp/s", "remote"]).unwrap();
        assert_eq!(c.common.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(c.command, Command::Remote { quiet: true, .. }));
        // The last of a repeated option counts.
        let c = cli(&["-S", "/a", "remote", "-S", "/b"]).unwrap();
        assert_eq!(c.common.socket, PathBuf::from("/b"));
        for help in [&["help"][..], &["--help"], &["-h"], &["bench", "--help"]] {
            assert_eq!(cli(help).unwrap().command, Command::Help, "{help:?}");
        }
        assert_eq!(cli(&["--version"]).unwrap().command, Command::Version);
        assert!(usage().contains("--buf-size"));
        for (args, msg) in [
            (&["remote", "--bogus"][..], "unexpected argument '--bogus'"),
            (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
            (&["remote", "-S"], "a value is required"),
            (&["remote", "--buf-size", "5x"], "expected a whole number"),
            (
                &["host", "send", "x", "-1"],
                "invalid number of messages \"-1\"",
            ),
        ] {
            let e = cli(args).unwrap_err();
            assert!(
                matches!(e, Error::Usage(ref m) if m.contains(msg)),
                "{args:?}: {e}"
            );
        }
    }
}
