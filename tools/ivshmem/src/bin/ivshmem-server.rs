//! `ivshmem-server`: QEMU-compatible ivshmem server. See `--help` and
//! tools/ivshmem/README.md.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use ivshmem::cli::{exit_on, parse_server_args};
use ivshmem::{install_signal_handlers, logfmt, Server};
use nix::unistd::ForkResult;

const PROG: &str = "ivshmem-server";

fn main() -> ExitCode {
    let opts = match parse_server_args(std::env::args_os()) {
        Ok(o) => o,
        Err(e) => return ExitCode::from(exit_on(&e)),
    };
    raise_fd_limit();

    let log_file = match &opts.log_file {
        None => None,
        Some(path) => match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("{PROG}: cannot open log file {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let level = opts.config.log_level.to_level_filter();
    if let Err(e) = logfmt::init(level, log_file) {
        eprintln!("{PROG}: cannot install the logger: {e}");
        return ExitCode::FAILURE;
    }

    // Shared memory and socket are ready (listening) before we detach, so
    // when the command returns, QEMU can connect.
    let server = match Server::new(opts.config.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{PROG}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = install_signal_handlers(&server.stop_handle()) {
        eprintln!("{PROG}: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }

    let ready = if opts.foreground {
        None
    } else {
        match daemonize() {
            Ok(pipe) => Some(pipe),
            Err(e) => {
                eprintln!("{PROG}: cannot daemonize: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let pid = std::process::id();
    if let Some(pid_file) = &opts.pid_file {
        if let Err(e) = write_pid_file(pid_file, pid) {
            eprintln!("{PROG}: cannot write pid file {}: {e}", pid_file.display());
            if let Some(pipe) = ready {
                let _ = fs::File::from(pipe).write_all(b"1");
            }
            return ExitCode::FAILURE;
        }
    }
    if let Some(pipe) = ready {
        // Tell the waiting parent that we are up; it exits 0.
        let _ = fs::File::from(pipe).write_all(b"0");
    }

    let result = server.run();
    if let Some(pid_file) = &opts.pid_file {
        remove_pid_file(pid_file, pid);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{PROG}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes our pid, readable by everyone (0644) whatever the umask, as service managers
/// and scripts of other users read it.
fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    // The umask may have narrowed the mode at creation; an existing file keeps its own.
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    file.write_all(format!("{pid}\n").as_bytes())
}

/// Removes the pid file if it still holds our pid.
fn remove_pid_file(path: &Path, pid: u32) {
    if let Ok(text) = fs::read_to_string(path) {
        if text.trim() == pid.to_string() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Forks; the parent waits until the child reports readiness and exits
/// with 0 (or 1 if the child failed), without running any destructor. The
/// child starts a new session, gets /dev/null as stdin and stdout and keeps
/// stderr (like QEMU's `qemu_daemon(1, 1)`), and returns the write end of
/// the readiness pipe.
fn daemonize() -> std::io::Result<OwnedFd> {
    let (rd, wr) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // SAFETY: the process is single-threaded here (signal-hook's handlers
    // are not threads), so the child may run any code after fork.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { .. } => {
            drop(wr);
            let mut status = [0u8; 1];
            let ok = matches!(fs::File::from(rd).read(&mut status), Ok(1) if status[0] == b'0');
            // Leave without unwinding: the child owns the socket and shm now,
            // and the server's destructor would remove them.
            std::process::exit(if ok { 0 } else { 1 });
        }
        ForkResult::Child => {}
    }
    drop(rd);
    rustix::process::setsid()?;
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    Ok(wr)
}

/// Peers cost 1 + vectors descriptors each: use the hard limit.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
