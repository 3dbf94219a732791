//! Command-line parsing for `ivshmem-server` and `ivshmem-client`.
//!
//! A small GNU-getopt-style parser: QEMU's short options work exactly as
//! with QEMU's tools (`-Fv`, `-l 4M`, `-l4M`), long options are added
//! (`--size 4M`, `--size=4M`), options and arguments may be mixed, and `--`
//! ends the options.

use std::path::PathBuf;
use std::time::Duration;

use crate::log::LogLevel;
use crate::server::{
    lookup_group, lookup_user, ServerConfig, ShmBacking, DEFAULT_PID_FILE, DEFAULT_SOCKET_PATH,
    MAX_VECTORS,
};
use crate::size::{parse_mode, parse_size, parse_u64};

/// One option a program accepts.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec {
    /// Short form, e.g. `'S'` for `-S`.
    pub short: Option<char>,
    /// Long form without dashes; also the key returned by [`getopt`].
    pub long: &'static str,
    /// Whether the option takes a value.
    pub has_arg: bool,
}

/// One parsed command-line item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedArg {
    /// An option (by long name) and its value, if it takes one.
    Opt(&'static str, Option<String>),
    /// A non-option argument.
    Positional(String),
}

/// Parses `args` (without the program name) against `specs`.
pub fn getopt(args: &[String], specs: &[OptSpec]) -> Result<Vec<ParsedArg>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.extend(args[i..].iter().cloned().map(ParsedArg::Positional));
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = specs
                .iter()
                .find(|s| s.long == name)
                .ok_or_else(|| format!("unknown option '--{name}'"))?;
            let value = if spec.has_arg {
                match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("option '--{name}' requires an argument"))?;
                        i += 1;
                        Some(v)
                    }
                }
            } else {
                if inline.is_some() {
                    return Err(format!("option '--{name}' does not take an argument"));
                }
                None
            };
            out.push(ParsedArg::Opt(spec.long, value));
            continue;
        }
        if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let spec = specs
                    .iter()
                    .find(|s| s.short == Some(c))
                    .ok_or_else(|| format!("invalid option -- '{c}'"))?;
                if spec.has_arg {
                    let value = if j < chars.len() {
                        chars[j..].iter().collect()
                    } else {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("option requires an argument -- '{c}'"))?;
                        i += 1;
                        v
                    };
                    out.push(ParsedArg::Opt(spec.long, Some(value)));
                    break;
                }
                out.push(ParsedArg::Opt(spec.long, None));
            }
            continue;
        }
        out.push(ParsedArg::Positional(arg.clone()));
    }
    Ok(out)
}

/// Options of `ivshmem-server`.
pub const SERVER_OPTS: &[OptSpec] = &[
    OptSpec {
        short: Some('h'),
        long: "help",
        has_arg: false,
    },
    OptSpec {
        short: Some('v'),
        long: "verbose",
        has_arg: false,
    },
    OptSpec {
        short: Some('F'),
        long: "foreground",
        has_arg: false,
    },
    OptSpec {
        short: Some('p'),
        long: "pid-file",
        has_arg: true,
    },
    OptSpec {
        short: Some('S'),
        long: "socket",
        has_arg: true,
    },
    OptSpec {
        short: Some('M'),
        long: "shm-name",
        has_arg: true,
    },
    OptSpec {
        short: Some('m'),
        long: "shm-dir",
        has_arg: true,
    },
    OptSpec {
        short: Some('l'),
        long: "size",
        has_arg: true,
    },
    OptSpec {
        short: Some('n'),
        long: "vectors",
        has_arg: true,
    },
    OptSpec {
        short: None,
        long: "socket-mode",
        has_arg: true,
    },
    OptSpec {
        short: None,
        long: "shm-mode",
        has_arg: true,
    },
    OptSpec {
        short: None,
        long: "owner",
        has_arg: true,
    },
    OptSpec {
        short: None,
        long: "group",
        has_arg: true,
    },
    OptSpec {
        short: None,
        long: "keep-shm",
        has_arg: false,
    },
    OptSpec {
        short: None,
        long: "max-backlog",
        has_arg: true,
    },
    OptSpec {
        short: None,
        long: "log-file",
        has_arg: true,
    },
    OptSpec {
        short: Some('V'),
        long: "version",
        has_arg: false,
    },
];

/// What `ivshmem-server`'s command line asks for.
#[derive(Debug, Clone)]
pub enum ServerCommand {
    /// Print the help and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Run the server.
    Run(ServerOptions),
}

/// Parsed `ivshmem-server` options.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The server configuration.
    pub config: ServerConfig,
    /// `-F`: stay in the foreground.
    pub foreground: bool,
    /// `-v`: log every peer event.
    pub verbose: bool,
    /// Where to write the pid: `-p`, or the default in daemon mode.
    pub pid_file: Option<PathBuf>,
    /// `--log-file`: log there instead of standard error.
    pub log_file: Option<PathBuf>,
}

/// Help text of `ivshmem-server`.
pub fn server_usage(prog: &str) -> String {
    format!(
        "Usage: {prog} [OPTION]...
ivshmem server, compatible with QEMU's contrib/ivshmem-server (protocol 0).

  -h, --help               show this help
  -v, --verbose            log every peer event (needs -F or --log-file)
  -F, --foreground         foreground mode (default is to daemonize)
  -p, --pid-file FILE      write the PID there; default {DEFAULT_PID_FILE}
                           in daemon mode, none in foreground mode
  -S, --socket PATH        Unix socket to listen on
                           default {DEFAULT_SOCKET_PATH}
  -M, --shm-name NAME      POSIX shared memory object to use (/dev/shm/NAME)
                           default ivshmem
  -m, --shm-dir DIR        create the shared memory as an unlinked temporary
                           file in DIR (e.g. a hugetlbfs mount)
  -l, --size SIZE          size of shared memory in bytes; suffixes K, M and G
                           can be used, e.g. 1K means 1024; default 4M.
                           Rounded UP to the next power of two (QEMU's device
                           needs one), e.g. 1500K gives 2M; a warning says so
  -n, --vectors N          number of vectors (eventfds) per peer, 0..{MAX_VECTORS}
                           default 1
      --socket-mode MODE   octal mode of the socket file (default 600)
      --shm-mode MODE      octal mode of the shm object (default 600)
      --owner USER         owner of socket and shm object (name or uid)
      --group GROUP        group of socket and shm object (name or gid)
      --keep-shm           do not remove the shm object on shutdown
      --max-backlog N      messages queued for a peer that does not read
                           before it is dropped (default 4096)
      --log-file FILE      append the log to FILE instead of standard error
  -V, --version            print the version

A stale socket file (nothing listening) is replaced; a live server on the
path is an error. SIGINT/SIGTERM shut down cleanly and remove the socket and
the shm object (unless --keep-shm).
"
    )
}

/// Parses `ivshmem-server`'s arguments (without the program name).
pub fn parse_server_args(args: &[String]) -> Result<ServerCommand, String> {
    let mut config = ServerConfig::default();
    let mut foreground = false;
    let mut verbose = false;
    let mut pid_file = None;
    let mut log_file = None;
    for item in getopt(args, SERVER_OPTS)? {
        let (name, value) = match item {
            ParsedArg::Positional(p) => return Err(format!("unexpected argument '{p}'")),
            ParsedArg::Opt(n, v) => (n, v.unwrap_or_default()),
        };
        match name {
            "help" => return Ok(ServerCommand::Help),
            "version" => return Ok(ServerCommand::Version),
            "verbose" => verbose = true,
            "foreground" => foreground = true,
            "pid-file" => pid_file = Some(PathBuf::from(value)),
            "socket" => config.socket_path = PathBuf::from(value),
            "shm-name" => config.shm = ShmBacking::Posix(value),
            "shm-dir" => config.shm = ShmBacking::Directory(PathBuf::from(value)),
            "size" => {
                config.shm_size = parse_size(&value)?;
                if config.shm_size == 0 {
                    return Err("size must not be 0".into());
                }
            }
            "vectors" => {
                let n = parse_u64(&value).map_err(|_| "cannot parse n_vectors".to_string())?;
                if n > u64::from(MAX_VECTORS) {
                    return Err(format!("too many requested vectors (max is {MAX_VECTORS})"));
                }
                config.vectors = n as u16;
            }
            "socket-mode" => config.socket_mode = parse_mode(&value)?,
            "shm-mode" => config.shm_mode = parse_mode(&value)?,
            "owner" => config.owner = Some(lookup_user(&value).map_err(|e| e.to_string())?),
            "group" => config.group = Some(lookup_group(&value).map_err(|e| e.to_string())?),
            "keep-shm" => config.keep_shm = true,
            "max-backlog" => {
                let n = parse_u64(&value)?;
                if n == 0 {
                    return Err("max backlog must be at least 1".into());
                }
                config.max_backlog = usize::try_from(n).map_err(|_| "max backlog too large")?;
            }
            "log-file" => log_file = Some(PathBuf::from(value)),
            other => return Err(format!("unhandled option '{other}'")),
        }
    }
    if verbose && !foreground && log_file.is_none() {
        return Err("cannot use verbose in daemon mode (add -F or --log-file)".into());
    }
    if !foreground && pid_file.is_none() {
        pid_file = Some(PathBuf::from(DEFAULT_PID_FILE));
    }
    config.log_level = if verbose {
        LogLevel::Debug
    } else {
        LogLevel::Warn
    };
    Ok(ServerCommand::Run(ServerOptions {
        config,
        foreground,
        verbose,
        pid_file,
        log_file,
    }))
}

/// Options of `ivshmem-client`.
pub const CLIENT_OPTS: &[OptSpec] = &[
    OptSpec {
        short: Some('h'),
        long: "help",
        has_arg: false,
    },
    OptSpec {
        short: Some('v'),
        long: "verbose",
        has_arg: false,
    },
    OptSpec {
        short: Some('S'),
        long: "socket",
        has_arg: true,
    },
    OptSpec {
        short: Some('n'),
        long: "vectors",
        has_arg: true,
    },
    OptSpec {
        short: Some('t'),
        long: "timeout",
        has_arg: true,
    },
    OptSpec {
        short: Some('V'),
        long: "version",
        has_arg: false,
    },
];

/// What `ivshmem-client`'s command line asks for.
#[derive(Debug, Clone)]
pub enum ClientCommand {
    /// Print the help and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
    /// Connect and run commands.
    Run(ClientOptions),
}

/// Parsed `ivshmem-client` options.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `-S`: the server socket.
    pub socket_path: PathBuf,
    /// `-v`: print every message and vector.
    pub verbose: bool,
    /// `-n`: own eventfds to wait for during the handshake.
    pub min_vectors: usize,
    /// `-t`: handshake timeout.
    pub timeout: Duration,
    /// Commands given as arguments (each argument is one command line);
    /// empty means read commands from standard input.
    pub commands: Vec<String>,
}

/// Help text of `ivshmem-client`.
pub fn client_usage(prog: &str) -> String {
    format!(
        "Usage: {prog} [OPTION]... [COMMAND]...
ivshmem troubleshooting client, a peer like QEMU's ivshmem-doorbell device.

  -h, --help            show this help
  -v, --verbose         show every vector received
  -S, --socket PATH     Unix socket of the server
                        default {DEFAULT_SOCKET_PATH}
  -n, --vectors N       wait for N of our own vectors in the handshake
                        (use the server's -n; default 1)
  -t, --timeout SECS    handshake timeout in seconds (default 5)
  -V, --version         print the version

With COMMANDs (one per argument, or several separated by ';'), runs them and
exits. Otherwise reads commands from standard input: interactively with a
prompt on a terminal, else as a script that stops at the first failing
command (exit status 1) and exits 0 at end of input.

{}",
        COMMAND_HELP
    )
}

/// The client's command summary (also printed by its `help` command).
pub const COMMAND_HELP: &str = "Commands:
  help, ?                      this help
  dump, peers, list            our id, shm size, vectors and the peers
  int <peer> <vector>          interrupt one vector of a peer
  int <peer> all               interrupt all vectors of a peer
  int all                      interrupt all vectors of all other peers
  irqs                         interrupts received so far, per vector
  wait <ms>                    show events and interrupts for <ms> ms
  wait-int [<ms>]              wait for an interrupt not yet waited for
                               (since connecting or the last wait-int;
                               default timeout 5000 ms)
  wait-peer <peer> [<n> [<ms>]]  wait until <peer> has <n> vectors (default 1)
  wait-gone <peer> [<ms>]      wait until <peer> has disconnected
  hexdump <offset> <length>    hex dump of the shared memory (alias x)
  write <offset> <byte>...     write hex bytes, e.g. write 0x10 de ad be ef
  write <offset> \"<text>\"      write text
  quit, exit                   leave
";

/// Parses `ivshmem-client`'s arguments (without the program name).
pub fn parse_client_args(args: &[String]) -> Result<ClientCommand, String> {
    let mut opts = ClientOptions {
        socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
        verbose: false,
        min_vectors: 1,
        timeout: Duration::from_secs(5),
        commands: Vec::new(),
    };
    for item in getopt(args, CLIENT_OPTS)? {
        match item {
            ParsedArg::Positional(p) => opts.commands.push(p),
            ParsedArg::Opt("help", _) => return Ok(ClientCommand::Help),
            ParsedArg::Opt("version", _) => return Ok(ClientCommand::Version),
            ParsedArg::Opt("verbose", _) => opts.verbose = true,
            ParsedArg::Opt("socket", v) => opts.socket_path = PathBuf::from(v.unwrap_or_default()),
            ParsedArg::Opt("vectors", v) => {
                let n = parse_u64(&v.unwrap_or_default())?;
                opts.min_vectors = usize::try_from(n).map_err(|_| "too many vectors")?;
            }
            ParsedArg::Opt("timeout", v) => {
                let v = v.unwrap_or_default();
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .ok_or_else(|| format!("invalid timeout '{v}'"))?;
                opts.timeout = Duration::from_secs_f64(secs);
            }
            ParsedArg::Opt(other, _) => return Err(format!("unhandled option '{other}'")),
        }
    }
    Ok(ClientCommand::Run(opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn run(v: &[&str]) -> ServerOptions {
        match parse_server_args(&s(v)) {
            Ok(ServerCommand::Run(o)) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn qemu_defaults() {
        let o = run(&[]);
        assert!(!o.foreground);
        assert_eq!(
            o.pid_file,
            Some(PathBuf::from("/var/run/ivshmem-server.pid"))
        );
        assert_eq!(o.config.socket_path, PathBuf::from("/tmp/ivshmem_socket"));
        assert_eq!(o.config.shm, ShmBacking::Posix("ivshmem".into()));
        assert_eq!(o.config.shm_size, 4 << 20);
        assert_eq!(o.config.vectors, 1);
        assert_eq!(o.config.socket_mode, 0o600);
        assert_eq!(o.config.log_level, LogLevel::Warn);
    }

    #[test]
    fn qemu_short_options() {
        let o = run(&[
            "-Fv", "-S", "/tmp/s", "-l1536K", "-n", "2", "-M", "foo", "-p", "/tmp/p",
        ]);
        assert!(o.foreground && o.verbose);
        assert_eq!(o.config.socket_path, PathBuf::from("/tmp/s"));
        assert_eq!(o.config.shm_size, 1536 << 10);
        assert_eq!(o.config.vectors, 2);
        assert_eq!(o.config.shm, ShmBacking::Posix("foo".into()));
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/p")));
        assert_eq!(o.config.log_level, LogLevel::Debug);
        // -m after -M wins, like QEMU's getopt loop.
        let o = run(&["-F", "-M", "foo", "-m", "/dev/hugepages"]);
        assert_eq!(o.config.shm, ShmBacking::Directory("/dev/hugepages".into()));
        assert_eq!(o.pid_file, None);
    }

    #[test]
    fn long_options() {
        let o = run(&[
            "--foreground",
            "--socket=/tmp/x",
            "--size",
            "1G",
            "--vectors=64",
            "--socket-mode",
            "660",
            "--shm-mode=0640",
            "--owner",
            "0",
            "--group=root",
            "--keep-shm",
            "--max-backlog",
            "10",
        ]);
        assert_eq!(o.config.socket_path, PathBuf::from("/tmp/x"));
        assert_eq!(o.config.shm_size, 1 << 30);
        assert_eq!(o.config.vectors, 64);
        assert_eq!(o.config.socket_mode, 0o660);
        assert_eq!(o.config.shm_mode, 0o640);
        assert_eq!(o.config.owner, Some(0));
        assert_eq!(o.config.group, Some(0));
        assert!(o.config.keep_shm);
        assert_eq!(o.config.max_backlog, 10);
    }

    #[test]
    fn errors() {
        for bad in [
            &["-n", "65"][..],
            &["-n", "x"],
            &["-l", "4Q"],
            &["-l"],
            &["-x"],
            &["--nope"],
            &["-v"],
            &["extra"],
            &["--keep-shm=1"],
            &["-F", "--owner", "no-such-user-here"],
        ] {
            assert!(parse_server_args(&s(bad)).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_server_args(&s(&["-h"])),
            Ok(ServerCommand::Help)
        ));
        // Verbose in daemon mode is fine with a log file.
        assert!(parse_server_args(&s(&["-v", "--log-file", "/tmp/l"])).is_ok());
    }

    #[test]
    fn client_args() {
        let Ok(ClientCommand::Run(o)) = parse_client_args(&s(&[
            "dump",
            "-S",
            "/tmp/s",
            "-n2",
            "int 1 all",
            "--",
            "-x",
        ])) else {
            panic!()
        };
        assert_eq!(o.socket_path, PathBuf::from("/tmp/s"));
        assert_eq!(o.min_vectors, 2);
        assert_eq!(o.commands, s(&["dump", "int 1 all", "-x"]));
        assert!(parse_client_args(&s(&["-t", "0"])).is_err());
    }
}
