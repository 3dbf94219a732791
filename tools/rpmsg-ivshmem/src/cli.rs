//! Command-line parsing. Options may stand before or after the command words; `--` ends
//! the options (for a string that starts with `-`). A word like `-1` is not an option: it
//! is taken as an argument, so that it is refused as a count with a clear message.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

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

/// The usage text.
pub fn usage() -> String {
    format!(
        "\
Usage: rpmsg-ivshmem [OPTIONS] <COMMAND> [ARGS]

RPMsg over IVSHMEM, natively on Linux: attaches to an ivshmem-server as a peer and talks to
the other side (a Zephyr image in QEMU, or another rpmsg-ivshmem) through the shared memory.
Options may come before or after the command.

Commands:
  remote                   act as the remote image: endpoint \"k\", echo every message back
  host                     long-running host; reads commands from stdin, one a line:
                             rpmsg_ivshmem send <string> <number of messages>
                             status
  host send <string> <n>   send <string> n times, waiting for each echo (as the host's shell)
  bench                    round-trip latency and one-way throughput next to their limits
                           (eventfd ping-pong, memcpy); prints a table
  status                   show the link as the shared control area describes it
  help                     this text

Options:
  -S, --socket PATH        ivshmem-server socket (default {DEFAULT_SOCKET})
      --buf-size BYTES     RPMsg buffer size, 16-byte header included (default 512)
      --buf-count N        buffers per direction = descriptors per virtqueue, a power of
                           two (default 16); both sides must use the same two values
      --board NAME         name in the \"Hello <NAME> - ... Side\" banner (default {board})
      --spin-us N          how long to look at the rings (yielding the CPU) before blocking
                           on the doorbell, in microseconds (default {spin}; 0: block at once)
  -q, --quiet              remote, host send: nothing per message, a summary at the end
      --seq                host send: number the messages (\"<i>:<string>\") and check that
                           every echo comes back once, complete and in order
      --window N           host send: messages in flight (default 1, as the firmware)
      --wait SECS          host send: how long to wait for a remote (default {wait})
      --count N            remote: exit after echoing N messages;
                           bench: round trips per payload size (default {bench})
      --sink               remote: also offer endpoint \"{sink}\", which consumes messages
                           (bench uses it for one-way throughput)
      --attach             bench: use the server at -S and a remote already running there
                           (default: start a private server and remote)
      --json               bench: print one JSON object instead of the table
      --cpus H,R           bench: pin itself (the host) to CPU H and its remote to CPU R
                           (H = R: both share one CPU; default: the scheduler decides)
  -h, --help               this text
  -V, --version            the version

Exit status: 0 success, 1 failure (server absent, link not ready, timeout), 2 usage error.
",
        board = default_board(),
        wait = DEFAULT_WAIT_LINK.as_secs(),
        bench = DEFAULT_BENCH_COUNT,
        sink = crate::SINK_ENDPOINT,
        spin = crate::platform::DEFAULT_SPIN.as_micros(),
    )
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

#[derive(Default)]
struct Raw {
    socket: Option<PathBuf>,
    buf_size: Option<String>,
    buf_count: Option<String>,
    board: Option<String>,
    spin: Option<String>,
    quiet: bool,
    seq: bool,
    window: Option<String>,
    wait: Option<String>,
    count: Option<String>,
    sink: bool,
    attach: bool,
    json: bool,
    cpus: Option<String>,
    help: bool,
    version: bool,
    words: Vec<OsString>,
}

fn is_option(arg: &[u8]) -> bool {
    arg.len() > 1 && arg[0] == b'-' && !arg[1].is_ascii_digit()
}

fn text(value: OsString, name: &str) -> Result<String> {
    value
        .into_string()
        .map_err(|v| Error::usage(format!("{name}: value {v:?} is not valid UTF-8")))
}

fn number<T: std::str::FromStr>(value: &str, name: &str, what: &str) -> Result<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::usage(format!(
            "{name}: invalid value \"{value}\": expected {what}"
        )));
    }
    value
        .parse()
        .map_err(|_| Error::usage(format!("{name}: value \"{value}\" is too large")))
}

/// Parses the arguments (without the program name).
pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Cli> {
    let mut raw = Raw::default();
    let mut args = args.into_iter();
    let mut only_words = false;
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if only_words || !is_option(bytes) {
            raw.words.push(arg);
            continue;
        }
        if bytes == b"--" {
            only_words = true;
            continue;
        }
        // --name=value, -Svalue, or the value in the next argument.
        let (name, mut inline): (String, Option<OsString>) = if bytes.starts_with(b"--") {
            match bytes.iter().position(|b| *b == b'=') {
                Some(eq) => (
                    String::from_utf8_lossy(&bytes[..eq]).into_owned(),
                    Some(std::ffi::OsStr::from_bytes(&bytes[eq + 1..]).to_os_string()),
                ),
                None => (String::from_utf8_lossy(bytes).into_owned(), None),
            }
        } else {
            let name = String::from_utf8_lossy(&bytes[..2]).into_owned();
            let rest = &bytes[2..];
            let inline =
                (!rest.is_empty()).then(|| std::ffi::OsStr::from_bytes(rest).to_os_string());
            (name, inline)
        };
        let mut value = |name: &str| -> Result<OsString> {
            inline
                .take()
                .or_else(|| args.next())
                .ok_or_else(|| Error::usage(format!("option {name} needs a value")))
        };
        match name.as_str() {
            "-S" | "--socket" => raw.socket = Some(PathBuf::from(value(&name)?)),
            "--buf-size" => raw.buf_size = Some(text(value(&name)?, &name)?),
            "--buf-count" => raw.buf_count = Some(text(value(&name)?, &name)?),
            "--board" => raw.board = Some(text(value(&name)?, &name)?),
            "--spin-us" => raw.spin = Some(text(value(&name)?, &name)?),
            "--window" => raw.window = Some(text(value(&name)?, &name)?),
            "--wait" => raw.wait = Some(text(value(&name)?, &name)?),
            "--count" => raw.count = Some(text(value(&name)?, &name)?),
            "-q" | "--quiet" => raw.quiet = true,
            "--seq" => raw.seq = true,
            "--sink" => raw.sink = true,
            "--attach" => raw.attach = true,
            "--json" => raw.json = true,
            "--cpus" => raw.cpus = Some(text(value(&name)?, &name)?),
            "-h" | "--help" => raw.help = true,
            "-V" | "--version" => raw.version = true,
            _ => {
                return Err(Error::usage(format!(
                    "unknown option {}",
                    String::from_utf8_lossy(bytes)
                )))
            }
        }
        if inline.is_some() {
            return Err(Error::usage(format!("option {name} takes no value")));
        }
    }
    build(raw)
}

fn build(raw: Raw) -> Result<Cli> {
    let common = Common {
        socket: raw
            .socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        buf_size: match &raw.buf_size {
            Some(v) => number(v, "--buf-size", "a buffer size in bytes")?,
            None => 512,
        },
        buf_count: match &raw.buf_count {
            Some(v) => number(v, "--buf-count", "a number of buffers")?,
            None => 16,
        },
        board: raw.board.clone().unwrap_or_else(default_board),
        spin: match &raw.spin {
            Some(v) => {
                let us: u64 = number(v, "--spin-us", "a number of microseconds")?;
                if us > MAX_SPIN_US {
                    return Err(Error::usage(format!(
                        "--spin-us: at most {MAX_SPIN_US} (a second of busy CPU per wait)"
                    )));
                }
                Duration::from_micros(us)
            }
            None => crate::platform::DEFAULT_SPIN,
        },
    };
    if raw.board.as_deref().is_some_and(|b| b.contains('\n')) {
        return Err(Error::usage("--board: the name must be one line"));
    }
    // The layout rules that do not depend on the region size, checked before connecting.
    if let Err(e) = Layout::new(&common.config(MAX_SHM_SIZE)) {
        return Err(Error::usage(format!(
            "--buf-size {} --buf-count {}: {e}",
            common.buf_size, common.buf_count
        )));
    }
    if raw.help {
        return Ok(Cli {
            common,
            command: Command::Help,
        });
    }
    if raw.version {
        return Ok(Cli {
            common,
            command: Command::Version,
        });
    }
    let words: Vec<&[u8]> = raw.words.iter().map(|w| w.as_bytes()).collect();
    let command = match words.as_slice() {
        [] => {
            return Err(Error::usage(
                "missing command: remote, host, host send, bench or status",
            ))
        }
        [b"help"] => Command::Help,
        [b"remote"] => Command::Remote {
            quiet: raw.quiet,
            count: match &raw.count {
                Some(v) => Some(positive(v, "--count")?),
                None => None,
            },
            sink: raw.sink,
        },
        [b"host"] => Command::HostShell,
        [b"host", b"send", text, count] => {
            let count = validate::parse_count(count).map_err(Error::usage)?;
            let options = SendOptions {
                quiet: raw.quiet,
                seq: raw.seq,
                window: match &raw.window {
                    Some(v) => {
                        let w: u16 = number(v, "--window", "a number of messages")?;
                        if w == 0 || w > common.buf_count {
                            return Err(Error::usage(format!(
                                "--window: {w} messages in flight is not possible with \
                                 {} buffers: use 1 to {}",
                                common.buf_count, common.buf_count
                            )));
                        }
                        w
                    }
                    None => 1,
                },
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
            Command::HostSend {
                text: text.to_vec(),
                count,
                options,
                wait: match &raw.wait {
                    Some(v) => Duration::from_secs(number(v, "--wait", "a number of seconds")?),
                    None => DEFAULT_WAIT_LINK,
                },
            }
        }
        [b"host", b"send", ..] => {
            return Err(Error::usage(
                "host send: wrong parameter count\n\
                 Usage: rpmsg-ivshmem host send <string> <number of messages>",
            ))
        }
        [b"bench"] => Command::Bench {
            count: match &raw.count {
                Some(v) => {
                    let n = positive(v, "--count")?;
                    if n > MAX_BENCH_COUNT {
                        return Err(Error::usage(format!(
                            "--count: at most {MAX_BENCH_COUNT} round trips per payload size \
                             (each one's time is kept for the percentiles)"
                        )));
                    }
                    n
                }
                None => DEFAULT_BENCH_COUNT,
            },
            attach: raw.attach,
            json: raw.json,
            cpus: match &raw.cpus {
                Some(v) => {
                    let cpu = |s: &str| number::<usize>(s, "--cpus", "").ok();
                    let pair = v
                        .split_once(',')
                        .and_then(|(h, r)| Some((cpu(h)?, cpu(r)?)));
                    Some(pair.ok_or_else(|| {
                        Error::usage(format!(
                            "--cpus: invalid value \"{v}\": expected two CPU numbers, HOST,REMOTE"
                        ))
                    })?)
                }
                None => None,
            },
        },
        [b"status"] => Command::Status,
        [first, rest @ ..] => {
            let what = if matches!(*first, b"remote" | b"host" | b"bench" | b"status" | b"help") {
                format!(
                    "unexpected argument \"{}\" after {}",
                    String::from_utf8_lossy(rest.first().copied().unwrap_or_default()),
                    String::from_utf8_lossy(first)
                )
            } else {
                format!("unknown command \"{}\"", String::from_utf8_lossy(first))
            };
            return Err(Error::usage(what));
        }
    };
    check_applicable(&raw, &command)?;
    if raw.attach && raw.cpus.is_some() {
        return Err(Error::usage(
            "--cpus pins the remote that bench starts itself: not with --attach",
        ));
    }
    Ok(Cli { common, command })
}

fn positive(v: &str, name: &str) -> Result<u64> {
    let n: u64 = number(v, name, "a positive whole number")?;
    if n == 0 {
        return Err(Error::usage(format!("{name}: must be at least 1")));
    }
    Ok(n)
}

/// Refuses options that mean nothing for the chosen command (rather than ignoring them).
fn check_applicable(raw: &Raw, command: &Command) -> Result<()> {
    let (name, allowed): (&str, &[&str]) = match command {
        Command::Remote { .. } => ("remote", &["--quiet", "--count", "--sink"]),
        Command::HostSend { .. } => ("host send", &["--quiet", "--seq", "--window", "--wait"]),
        Command::HostShell => ("host", &[]),
        Command::Bench { .. } => ("bench", &["--count", "--attach", "--json", "--cpus"]),
        Command::Status => ("status", &[]),
        Command::Help | Command::Version => return Ok(()),
    };
    let given = [
        ("--quiet", raw.quiet),
        ("--seq", raw.seq),
        ("--window", raw.window.is_some()),
        ("--wait", raw.wait.is_some()),
        ("--count", raw.count.is_some()),
        ("--sink", raw.sink),
        ("--attach", raw.attach),
        ("--json", raw.json),
        ("--cpus", raw.cpus.is_some()),
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
}
