//! Command lines of `ivshmem-server` and `ivshmem-client`, on `clap`.
//!
//! QEMU's short options work exactly as with QEMU's tools (`-Fv`, `-l 4M`,
//! `-l4M`, a later `-S` replacing an earlier one, `-m` and `-M` replacing
//! each other), long options are added (`--size 4M`, `--size=4M`), options
//! and arguments may be mixed, and `--` ends the options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::server::{
    lookup_group, lookup_user, ServerConfig, ShmBacking, DEFAULT_MAX_BACKLOG, DEFAULT_PID_FILE,
    DEFAULT_SHM_NAME, DEFAULT_SOCKET_PATH, MAX_VECTORS,
};
use crate::size::{parse_mode, parse_size, parse_u64};
use crate::LogLevel;

/// Exit status for a bad command line, as QEMU's tools (clap's own is 2).
pub const USAGE_EXIT: u8 = 1;

/// `ivshmem-server`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "ivshmem-server",
    version,
    about = "ivshmem server, compatible with QEMU's contrib/ivshmem-server (protocol 0).",
    args_override_self = true,
    after_help = "A stale socket file (nothing listening) is replaced; a live server on the \
path is an error. SIGINT/SIGTERM shut down cleanly and remove the socket and the shm object \
(unless --keep-shm)."
)]
struct ServerArgs {
    /// Log every peer event (needs -F or --log-file)
    #[arg(short, long)]
    verbose: bool,
    /// Foreground mode (default is to daemonize)
    #[arg(short = 'F', long)]
    foreground: bool,
    /// Write the PID there [default in daemon mode: /var/run/ivshmem-server.pid; none with -F]
    #[arg(short, long, value_name = "FILE", allow_hyphen_values = true)]
    pid_file: Option<PathBuf>,
    /// Unix socket to listen on
    #[arg(short = 'S', long, value_name = "PATH", default_value = DEFAULT_SOCKET_PATH,
          allow_hyphen_values = true)]
    socket: PathBuf,
    /// POSIX shared memory object to use (/dev/shm/NAME) [default: ivshmem]
    #[arg(
        short = 'M',
        long,
        value_name = "NAME",
        overrides_with = "shm_dir",
        allow_hyphen_values = true
    )]
    shm_name: Option<String>,
    /// Create the shared memory as an unlinked temporary file in DIR (e.g. hugetlbfs)
    #[arg(
        short = 'm',
        long,
        value_name = "DIR",
        overrides_with = "shm_name",
        allow_hyphen_values = true
    )]
    shm_dir: Option<PathBuf>,
    /// Size of shared memory in bytes; suffixes K, M, G (1K = 1024). Rounded UP to the next
    /// power of two (QEMU's device needs one), e.g. 1500K gives 2M; a warning says so
    #[arg(short = 'l', long, value_name = "SIZE", default_value = "4M",
          value_parser = size_arg)]
    size: u64,
    /// Number of vectors (eventfds) per peer, 0..64
    #[arg(short = 'n', long, value_name = "N", default_value_t = 1, value_parser = vectors_arg)]
    vectors: u16,
    /// Octal mode of the socket file
    #[arg(long, value_name = "MODE", default_value = "600", value_parser = mode_arg)]
    socket_mode: u32,
    /// Octal mode of the shm object
    #[arg(long, value_name = "MODE", default_value = "600", value_parser = mode_arg)]
    shm_mode: u32,
    /// Owner of socket and shm object (name or uid)
    #[arg(long, value_name = "USER", value_parser = user_arg)]
    owner: Option<u32>,
    /// Group of socket and shm object (name or gid)
    #[arg(long, value_name = "GROUP", value_parser = group_arg)]
    group: Option<u32>,
    /// Do not remove the shm object on shutdown
    #[arg(long)]
    keep_shm: bool,
    /// Messages queued for a peer that does not read before it is dropped
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_BACKLOG,
          value_parser = backlog_arg)]
    max_backlog: usize,
    /// Append the log to FILE instead of standard error
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    log_file: Option<PathBuf>,
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

/// Parses `ivshmem-server`'s arguments (the program name first). `--help`
/// and `--version` come back as errors of kind `DisplayHelp` and
/// `DisplayVersion`: [`exit_on`] prints them and exits 0.
pub fn parse_server_args<I, T>(args: I) -> Result<ServerOptions, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let a = ServerArgs::try_parse_from(args)?;
    if a.verbose && !a.foreground && a.log_file.is_none() {
        return Err(ServerArgs::command().error(
            ErrorKind::ArgumentConflict,
            "cannot use verbose in daemon mode (add -F or --log-file)",
        ));
    }
    let shm = match (a.shm_name, a.shm_dir) {
        (_, Some(dir)) => ShmBacking::Directory(dir),
        (name, None) => ShmBacking::Posix(name.unwrap_or_else(|| DEFAULT_SHM_NAME.into())),
    };
    let pid_file = match a.pid_file {
        None if !a.foreground => Some(PathBuf::from(DEFAULT_PID_FILE)),
        p => p,
    };
    let config = ServerConfig {
        socket_path: a.socket,
        shm,
        shm_size: a.size,
        vectors: a.vectors,
        socket_mode: a.socket_mode,
        shm_mode: a.shm_mode,
        owner: a.owner,
        group: a.group,
        keep_shm: a.keep_shm,
        max_backlog: a.max_backlog,
        log_level: if a.verbose {
            LogLevel::Debug
        } else {
            LogLevel::Warn
        },
    };
    Ok(ServerOptions {
        config,
        foreground: a.foreground,
        verbose: a.verbose,
        pid_file,
        log_file: a.log_file,
    })
}

/// `ivshmem-client`'s command line.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ivshmem-client",
    version,
    about = "ivshmem troubleshooting client, a peer like QEMU's ivshmem-doorbell device.",
    args_override_self = true,
    after_help = CLIENT_AFTER_HELP
)]
pub struct ClientOptions {
    /// Show every vector received
    #[arg(short, long)]
    pub verbose: bool,
    /// Unix socket of the server
    #[arg(short = 'S', long = "socket", value_name = "PATH", default_value = DEFAULT_SOCKET_PATH,
          allow_hyphen_values = true)]
    pub socket_path: PathBuf,
    /// Also wait for at least N of our own vectors in the handshake [default: take the
    /// vectors the server sends, as QEMU's client]
    #[arg(short = 'n', long = "vectors", value_name = "N", value_parser = count_arg)]
    pub min_vectors: Option<usize>,
    /// Handshake timeout in seconds
    #[arg(short = 't', long, value_name = "SECS", default_value = "5", value_parser = timeout_arg)]
    pub timeout: Duration,
    /// Commands to run, one per argument (or several separated by ';')
    #[arg(value_name = "COMMAND")]
    pub commands: Vec<String>,
}

const CLIENT_AFTER_HELP: &str = "\
With COMMANDs, runs them and exits. Otherwise reads commands from standard input:
interactively with a prompt on a terminal, else as a script that stops at the first
failing command (exit status 1) and exits 0 at end of input.

Commands:
  help, ?                        this help
  dump, peers, list              our id, shm size, vectors and the peers
  int <peer> <vector>            interrupt one vector of a peer
  int <peer> all                 interrupt all vectors of a peer
  int all                        interrupt all vectors of all other peers
  irqs                           interrupts received so far, per vector
  wait <ms>                      show events and interrupts for <ms> ms
  wait-int [<ms>]                wait for an interrupt not yet waited for
                                 (since connecting or the last wait-int;
                                 default timeout 5000 ms)
  wait-peer <peer> [<n> [<ms>]]  wait until <peer> has <n> vectors (default 1)
  wait-gone <peer> [<ms>]        wait until <peer> has disconnected
  hexdump <offset> <length>      hex dump of the shared memory (alias x)
  write <offset> <byte>...       write hex bytes, e.g. write 0x10 de ad be ef
  write <offset> \"<text>\"        write text
  quit, exit                     leave";

/// The client's command summary (also printed by its `help` command).
pub fn command_help() -> &'static str {
    CLIENT_AFTER_HELP
        .split_once("\n\n")
        .map_or(CLIENT_AFTER_HELP, |(_, commands)| commands)
}

/// Parses `ivshmem-client`'s arguments (the program name first); see
/// [`parse_server_args`] for help and version.
pub fn parse_client_args<I, T>(args: I) -> Result<ClientOptions, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    ClientOptions::try_parse_from(args)
}

/// Prints a parse result that is not options (help, version, a usage error)
/// and returns the exit status: 0 for help and version, [`USAGE_EXIT`] else.
pub fn exit_on(error: &clap::Error) -> u8 {
    let _ = error.print();
    if error.use_stderr() {
        USAGE_EXIT
    } else {
        0
    }
}

fn size_arg(text: &str) -> Result<u64, String> {
    match parse_size(text)? {
        0 => Err("size must not be 0".into()),
        n => Ok(n),
    }
}

fn vectors_arg(text: &str) -> Result<u16, String> {
    let n = parse_u64(text).map_err(|_| "cannot parse n_vectors".to_string())?;
    if n > u64::from(MAX_VECTORS) {
        return Err(format!("too many requested vectors (max is {MAX_VECTORS})"));
    }
    Ok(n as u16)
}

fn mode_arg(text: &str) -> Result<u32, String> {
    parse_mode(text)
}

fn user_arg(text: &str) -> Result<u32, String> {
    lookup_user(text).map_err(|e| e.to_string())
}

fn group_arg(text: &str) -> Result<u32, String> {
    lookup_group(text).map_err(|e| e.to_string())
}

fn backlog_arg(text: &str) -> Result<usize, String> {
    match parse_u64(text)? {
        0 => Err("max backlog must be at least 1".into()),
        n => usize::try_from(n).map_err(|_| "max backlog too large".into()),
    }
}

fn count_arg(text: &str) -> Result<usize, String> {
    usize::try_from(parse_u64(text)?).map_err(|_| "too many vectors".into())
}

fn timeout_arg(text: &str) -> Result<Duration, String> {
    text.parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("invalid timeout '{text}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(v: &[&str]) -> Result<ServerOptions, clap::Error> {
        parse_server_args(std::iter::once("ivshmem-server").chain(v.iter().copied()))
    }

    fn run(v: &[&str]) -> ServerOptions {
        server(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
    }

    #[test]
    fn command_definitions_are_consistent() {
        ServerArgs::command().debug_assert();
        ClientOptions::command().debug_assert();
    }

    #[test]
    fn qemu_defaults() {
        let o = run(&[]);
        assert!(!o.foreground && !o.verbose);
        assert_eq!(
            o.pid_file,
            Some(PathBuf::from("/var/run/ivshmem-server.pid"))
        );
        assert_eq!(o.config.socket_path, PathBuf::from("/tmp/ivshmem_socket"));
        assert_eq!(o.config.shm, ShmBacking::Posix("ivshmem".into()));
        assert_eq!(o.config.shm_size, 4 << 20);
        assert_eq!(o.config.vectors, 1);
        assert_eq!(o.config.socket_mode, 0o600);
        assert_eq!(o.config.max_backlog, DEFAULT_MAX_BACKLOG);
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
        // Every form of a value: attached, separate, and the long ones.
        for args in [
            &["-F", "-l4M"][..],
            &["-F", "-l", "4M"],
            &["-F", "--size", "4M"],
            &["-F", "--size=4M"],
            &["-vF", "-l", "4194304"],
        ] {
            assert_eq!(run(args).config.shm_size, 4 << 20, "{args:?}");
        }
        // -m after -M wins and the other way round, like QEMU's getopt loop.
        let o = run(&["-F", "-M", "foo", "-m", "/dev/hugepages"]);
        assert_eq!(o.config.shm, ShmBacking::Directory("/dev/hugepages".into()));
        assert_eq!(o.pid_file, None);
        let o = run(&["-F", "-m", "/dev/hugepages", "-M", "foo"]);
        assert_eq!(o.config.shm, ShmBacking::Posix("foo".into()));
        // A repeated option: the last one counts, as with getopt.
        let o = run(&["-F", "-S", "/tmp/a", "-S", "/tmp/b", "-n", "1", "-n2"]);
        assert_eq!(o.config.socket_path, PathBuf::from("/tmp/b"));
        assert_eq!(o.config.vectors, 2);
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
            &["-l", "1M "],
            &["-l", " 1M"],
            &["-l", "0"],
            &["-l"],
            &["-x"],
            &["--nope"],
            &["-v"],
            &["extra"],
            &["--keep-shm=1"],
            &["--max-backlog", "0"],
            &["-F", "--owner", "no-such-user-here"],
        ] {
            let e = server(bad).expect_err(&format!("{bad:?}"));
            assert!(e.use_stderr(), "{bad:?}");
        }
        for (args, kind) in [
            ("-h", ErrorKind::DisplayHelp),
            ("--help", ErrorKind::DisplayHelp),
            ("-V", ErrorKind::DisplayVersion),
            ("--version", ErrorKind::DisplayVersion),
        ] {
            assert_eq!(server(&[args]).unwrap_err().kind(), kind);
        }
        // Verbose in daemon mode is fine with a log file.
        assert!(server(&["-v", "--log-file", "/tmp/l"]).is_ok());
    }

    fn client(v: &[&str]) -> Result<ClientOptions, clap::Error> {
        parse_client_args(std::iter::once("ivshmem-client").chain(v.iter().copied()))
    }

    #[test]
    fn client_args() {
        let o = client(&["dump", "-S", "/tmp/s", "-n2", "int 1 all", "--", "-x"]).unwrap();
        assert_eq!(o.socket_path, PathBuf::from("/tmp/s"));
        assert_eq!(o.min_vectors, Some(2));
        assert_eq!(o.commands, ["dump", "int 1 all", "-x"]);
        let o = client(&["-vS/tmp/t"]).unwrap();
        assert!(o.verbose && o.commands.is_empty() && o.min_vectors.is_none());
        assert_eq!(o.socket_path, PathBuf::from("/tmp/t"));
        assert_eq!(o.timeout, Duration::from_secs(5));
        assert!(client(&["-t", "0"]).is_err());
        assert!(client(&["-x"]).is_err());
        assert!(command_help().starts_with("Commands:"));
    }
}
