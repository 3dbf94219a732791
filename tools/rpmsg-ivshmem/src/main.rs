//! `rpmsg-ivshmem`: the native Linux RPMsg peer (see the library docs and `--help`).

use std::process::ExitCode;
use std::time::Duration;

use rpmsg_ivshmem::cli::{self, Cli, Command, Common, SendOptions};
use rpmsg_ivshmem::console::{Console, Stream};
use rpmsg_ivshmem::host::{HostNode, SendOutcome, NOT_READY};
use rpmsg_ivshmem::remote::{RemoteNode, RemoteOptions};
use rpmsg_ivshmem::{bench, node, status, Error, Result};

fn main() -> ExitCode {
    // Errors of the private ivshmem-server that `bench` runs in this process.
    let _ = ivshmem::logfmt::init(log::LevelFilter::Warn, None);
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rpmsg-ivshmem: {e}\nTry 'rpmsg-ivshmem --help' for more information.");
            return ExitCode::from(e.exit_code());
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Reported) => ExitCode::from(Error::Reported.exit_code()),
        Err(e) => {
            eprintln!("rpmsg-ivshmem: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let common = &cli.common;
    match cli.command {
        Command::Help => {
            print!("{}", cli::usage());
            Ok(())
        }
        Command::Version => {
            println!("rpmsg-ivshmem {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Status => {
            print!("{}", status::run(common)?);
            Ok(())
        }
        Command::Bench {
            count,
            attach,
            json,
            cpus,
        } => {
            let report = bench::run(common, count, attach, cpus)?;
            print!("{}", if json { report.json() } else { report.table() });
            Ok(())
        }
        Command::Remote { quiet, count, sink } => {
            run_remote(common, RemoteOptions { quiet, count, sink })
        }
        Command::HostShell => run_host_shell(common),
        Command::HostSend {
            text,
            count,
            options,
            wait,
        } => run_host_send(common, &text, count, options, wait),
    }
}

fn run_remote(common: &Common, options: RemoteOptions) -> Result<()> {
    node::with_attached(common, |region, config, ivshmem| {
        let board = common.board.clone();
        let mut remote = RemoteNode::new(region, config, ivshmem, board, options)?;
        remote.set_spin(common.spin);
        remote.run()
    })
}

fn run_host_shell(common: &Common) -> Result<()> {
    node::with_attached(common, |region, config, ivshmem| {
        let board = common.board.clone();
        let banner = Some(Stream::Stdout);
        let mut host = HostNode::start(region, config, ivshmem, board, banner)?;
        host.set_spin(common.spin);
        let result = host.run_shell();
        host.shutdown();
        result
    })
}

fn run_host_send(
    common: &Common,
    text: &[u8],
    count: u64,
    options: SendOptions,
    wait: Duration,
) -> Result<()> {
    node::with_attached(common, |region, config, ivshmem| {
        let board = common.board.clone();
        // stdout carries only the echo blocks: the banner is a diagnostic here.
        let banner = Some(Stream::Stderr);
        let mut host = HostNode::start(region, config, ivshmem, board, banner)?;
        host.set_spin(common.spin);
        let outcome = if host.wait_ready(wait) {
            host.send(text, count, options)
        } else {
            Console::new().line(Stream::Stdout, NOT_READY);
            eprintln!(
                "rpmsg-ivshmem: no remote attached within {} s (start one with \
                 `rpmsg-ivshmem remote -S {}`, or wait longer with --wait)",
                wait.as_secs(),
                common.socket.display()
            );
            SendOutcome::NotReady
        };
        host.shutdown();
        match outcome {
            SendOutcome::Done => Ok(()),
            _ => Err(Error::Reported),
        }
    })
}
