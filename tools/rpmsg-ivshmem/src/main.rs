//! `rpmsg-ivshmem`: the native Linux RPMsg peer (see the library docs and `--help`).

use std::process::ExitCode;

use rpmsg_ivshmem::cli::{self, Cli, Command};
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
            let attached = node::attach(common)?;
            let region = node::region(&attached.mapping)?;
            let config = node::config(common, &attached.ivshmem)?;
            let options = RemoteOptions { quiet, count, sink };
            let mut remote = RemoteNode::new(
                region,
                config,
                attached.ivshmem,
                common.board.clone(),
                options,
            )?;
            remote.set_spin(common.spin);
            remote.run()
        }
        Command::HostShell => {
            let attached = node::attach(common)?;
            let region = node::region(&attached.mapping)?;
            let config = node::config(common, &attached.ivshmem)?;
            let mut host = HostNode::start(
                region,
                config,
                attached.ivshmem,
                common.board.clone(),
                Some(Stream::Stdout),
            )?;
            host.set_spin(common.spin);
            let result = host.run_shell();
            host.shutdown();
            result
        }
        Command::HostSend {
            text,
            count,
            options,
            wait,
        } => {
            let attached = node::attach(common)?;
            let region = node::region(&attached.mapping)?;
            let config = node::config(common, &attached.ivshmem)?;
            // stdout carries only the echo blocks: the banner is a diagnostic here.
            let mut host = HostNode::start(
                region,
                config,
                attached.ivshmem,
                common.board.clone(),
                Some(Stream::Stderr),
            )?;
            host.set_spin(common.spin);
            let outcome = if host.wait_ready(wait) {
                host.send(&text, count, options)
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
        }
    }
}
