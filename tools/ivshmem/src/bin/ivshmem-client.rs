//! `ivshmem-client`: a troubleshooting peer for an ivshmem server. See
//! `--help` and tools/ivshmem/README.md.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ivshmem::cli::{command_help, exit_on, parse_client_args, ClientOptions};
use ivshmem::size::{parse_size, parse_u64};
use ivshmem::{read_eventfd, PeerConnection, PeerEvent, ShmMapping};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

const PROG: &str = "ivshmem-client";
/// What one `poll` found ready.
struct Ready {
    /// The server socket.
    server: bool,
    /// Our own vectors, by index.
    vectors: Vec<bool>,
    /// Standard input.
    stdin: bool,
}

const DEFAULT_WAIT: Duration = Duration::from_millis(5000);

fn main() -> ExitCode {
    let opts = match parse_client_args(std::env::args_os()) {
        Ok(o) => o,
        Err(e) => return ExitCode::from(exit_on(&e)),
    };
    // A closed stdout is an error, not a kill: the Rust runtime ignores
    // SIGPIPE before main.
    let conn = match opts.min_vectors {
        Some(n) => PeerConnection::connect(&opts.socket_path, n, opts.timeout),
        None => PeerConnection::connect_learning(&opts.socket_path, opts.timeout),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{PROG}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let interactive = opts.commands.is_empty() && io::stdin().is_terminal();
    let mut app = App {
        irqs: vec![0; conn.own_vectors().len()],
        irqs_acked: 0,
        conn,
        verbose: opts.verbose,
        shm: None,
        interactive,
    };
    if app.verbose || interactive {
        app.say(&format!(
            "connected to {} as peer {} ({} bytes of shared memory, {} vectors, {} other peers)",
            opts.socket_path.display(),
            app.conn.id(),
            app.conn.shm_size(),
            app.conn.own_vectors().len(),
            app.conn.peers().len()
        ));
    }
    let ok = if opts.commands.is_empty() {
        app.run_stdin(&opts)
    } else {
        app.run_args(&opts.commands)
    };
    let _ = io::stdout().flush();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct App {
    conn: PeerConnection,
    verbose: bool,
    /// Interrupts received per own vector.
    irqs: Vec<u64>,
    /// Total interrupts already accounted for by `wait-int`.
    irqs_acked: u64,
    shm: Option<ShmMapping>,
    interactive: bool,
}

impl App {
    fn say(&self, line: &str) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Runs each argument as a command line; stops at the first failure.
    fn run_args(&mut self, commands: &[String]) -> bool {
        // Report what is already pending (e.g. interrupts sent before we ran).
        self.pump(Duration::ZERO, |_| false);
        for line in commands {
            match self.exec_line(line) {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => {
                    eprintln!("{PROG}: {line}: {e}");
                    return false;
                }
            }
        }
        true
    }

    /// Reads commands from stdin while showing events and interrupts.
    fn run_stdin(&mut self, _opts: &ClientOptions) -> bool {
        let mut pending = Vec::<u8>::new();
        self.prompt();
        loop {
            let ready = match self.poll_ready(true, None) {
                Ok(ready) => ready,
                Err(e) => {
                    eprintln!("{PROG}: poll: {e}");
                    return false;
                }
            };
            self.handle_ready(&ready);
            if !ready.stdin {
                continue;
            }
            let mut buf = [0u8; 4096];
            // Straight from the descriptor: std's buffered stdin would hide
            // what poll() reports.
            let r = match rustix::io::read(io::stdin(), &mut buf) {
                Ok(r) => r,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    eprintln!("{PROG}: read stdin: {e}");
                    return false;
                }
            };
            let eof = r == 0;
            pending.extend_from_slice(&buf[..r]);
            while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=pos).collect();
                match self.run_line(&String::from_utf8_lossy(&line)) {
                    Some(result) => return result,
                    None => self.prompt(),
                }
            }
            if eof {
                if !pending.is_empty() {
                    let line = String::from_utf8_lossy(&pending).into_owned();
                    if let Some(result) = self.run_line(&line) {
                        return result;
                    }
                }
                if self.interactive {
                    self.say("");
                }
                return true;
            }
        }
    }

    /// Runs one line from stdin. `Some(exit status ok)` ends the program.
    fn run_line(&mut self, line: &str) -> Option<bool> {
        match self.exec_line(line) {
            Ok(true) => Some(true),
            Ok(false) => None,
            Err(e) if self.interactive => {
                self.say(&format!("error: {e}"));
                None
            }
            Err(e) => {
                eprintln!("{PROG}: {}: {e}", line.trim());
                Some(false)
            }
        }
    }

    fn prompt(&self) {
        if self.interactive {
            let mut out = io::stdout().lock();
            let _ = write!(out, "cmd> ");
            let _ = out.flush();
        }
    }

    /// Polls the server socket (until it closes), our eventfds and, if
    /// asked, standard input, up to `timeout` (forever if `None`).
    fn poll_ready(&self, stdin: bool, timeout: Option<Duration>) -> io::Result<Ready> {
        let server_open = !self.conn.is_server_closed();
        let stdin_handle = io::stdin();
        let mut fds = Vec::new();
        if server_open {
            fds.push(PollFd::from_borrowed_fd(
                self.conn.socket_fd(),
                PollFlags::IN,
            ));
        }
        let vectors = self.conn.own_vectors();
        fds.extend(vectors.iter().map(|fd| PollFd::new(fd, PollFlags::IN)));
        if stdin {
            fds.push(PollFd::from_borrowed_fd(
                stdin_handle.as_fd(),
                PollFlags::IN,
            ));
        }
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|p| !p.revents().is_empty()).collect();
        let first_vector = usize::from(server_open);
        Ok(Ready {
            server: server_open && ready[0],
            vectors: ready[first_vector..first_vector + vectors.len()].to_vec(),
            stdin: stdin && ready.last().copied().unwrap_or(false),
        })
    }

    /// Handles whatever `poll_ready()` reported.
    fn handle_ready(&mut self, ready: &Ready) {
        if ready.server {
            match self.conn.process_messages() {
                Ok(events) => {
                    for e in events {
                        self.show_event(&e);
                    }
                }
                Err(e) => eprintln!("{PROG}: warning: {e}"),
            }
            self.irqs.resize(self.conn.own_vectors().len(), 0);
        }
        for (vector, _) in ready.vectors.iter().enumerate().filter(|(_, r)| **r) {
            let Some(fd) = self.conn.own_vectors().get(vector) else {
                continue;
            };
            match read_eventfd(fd.as_fd()) {
                Ok(0) => {}
                Ok(count) => {
                    if let Some(slot) = self.irqs.get_mut(vector) {
                        *slot += count;
                    }
                    self.say(&format!("interrupt: vector {vector} count {count}"));
                }
                Err(e) => eprintln!("{PROG}: warning: read vector {vector}: {e}"),
            }
        }
    }

    fn show_event(&self, e: &PeerEvent) {
        match e {
            PeerEvent::Connected { id } => self.say(&format!("peer {id} connected")),
            PeerEvent::VectorAdded { id, vector } if self.verbose => {
                self.say(&format!("peer {id} vector {vector} added"))
            }
            PeerEvent::OwnVectorAdded { vector } if self.verbose => {
                self.say(&format!("own vector {vector} added"))
            }
            PeerEvent::Disconnected { id } => self.say(&format!("peer {id} disconnected")),
            PeerEvent::ServerClosed => self.say("server closed the connection"),
            _ => {}
        }
    }

    /// Shows events and interrupts until `done` or `timeout`; returns
    /// whether `done` became true.
    fn pump(&mut self, timeout: Duration, mut done: impl FnMut(&App) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.poll_ready(false, Some(left)) {
                Ok(ready) => self.handle_ready(&ready),
                Err(e) => {
                    eprintln!("{PROG}: poll: {e}");
                    return done(self);
                }
            }
            if left.is_zero() {
                return done(self);
            }
        }
    }

    /// Runs a line of `;`-separated commands. `Ok(true)` means quit.
    fn exec_line(&mut self, line: &str) -> Result<bool, String> {
        for cmd in line.split(['\n', '\r', ';']) {
            if self.exec(cmd.trim())? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn exec(&mut self, cmd: &str) -> Result<bool, String> {
        // First take in what happened meanwhile, so `dump` is up to date.
        self.pump(Duration::ZERO, |_| false);
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let Some((&name, args)) = words.split_first() else {
            return Ok(false);
        };
        let arg = |i: usize, what: &str| -> Result<&str, String> {
            args.get(i)
                .copied()
                .ok_or_else(|| format!("missing {what}; type help"))
        };
        let ms = |i: usize| -> Result<Duration, String> {
            match args.get(i) {
                None => Ok(DEFAULT_WAIT),
                Some(t) => parse_u64(t).map(Duration::from_millis),
            }
        };
        match name {
            "help" | "?" => println!("{}", command_help()),
            "quit" | "exit" | "q" => return Ok(true),
            "dump" | "peers" | "list" | "ls" => self.dump(),
            "int" => self.int(args)?,
            "irqs" | "interrupts" => {
                for (v, n) in self.irqs.iter().enumerate() {
                    self.say(&format!("vector {v}: {n} interrupts"));
                }
            }
            "wait" => {
                let t = parse_u64(arg(0, "milliseconds")?)?;
                self.pump(Duration::from_millis(t), |_| false);
            }
            "wait-int" => self.wait_int(ms(0)?)?,
            "wait-peer" => {
                let id = parse_id(arg(0, "peer id")?)?;
                let want = match args.get(1) {
                    Some(n) => parse_u64(n)? as usize,
                    None => 1,
                };
                self.wait_peer(id, want, ms(2)?)?;
            }
            "wait-gone" => self.wait_gone(parse_id(arg(0, "peer id")?)?, ms(1)?)?,
            "hexdump" | "x" => {
                let off = parse_offset(arg(0, "offset")?)?;
                let len = parse_offset(arg(1, "length")?)?;
                self.hexdump(off, len)?;
            }
            "write" => {
                let off = parse_offset(arg(0, "offset")?)?;
                let rest = cmd
                    .splitn(3, char::is_whitespace)
                    .nth(2)
                    .map(str::trim)
                    .unwrap_or_default();
                let data = parse_bytes(rest)?;
                self.map()?.write(off, &data).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("unknown command '{other}'; type help")),
        }
        Ok(false)
    }

    /// `wait-int`: succeeds at once if an interrupt came since the last `wait-int` (or
    /// since we connected), so scripts need no race.
    fn wait_int(&mut self, t: Duration) -> Result<(), String> {
        let seen = self.irqs_acked;
        if !self.pump(t, |a| a.irqs.iter().sum::<u64>() > seen) {
            return Err("no interrupt arrived".into());
        }
        self.irqs_acked = self.irqs.iter().sum();
        Ok(())
    }

    /// `wait-peer`: peer `id` connected with at least `want` vectors.
    fn wait_peer(&mut self, id: u16, want: usize, t: Duration) -> Result<(), String> {
        let have = |a: &App| {
            a.conn
                .peers()
                .iter()
                .any(|p| p.id == id && p.vectors >= want)
        };
        if !self.pump(t, have) {
            return Err(format!("peer {id} did not show up with {want} vectors"));
        }
        Ok(())
    }

    /// `wait-gone`: peer `id` disconnected.
    fn wait_gone(&mut self, id: u16, t: Duration) -> Result<(), String> {
        let gone = |a: &App| !a.conn.peers().iter().any(|p| p.id == id);
        if !self.pump(t, gone) {
            return Err(format!("peer {id} is still connected"));
        }
        Ok(())
    }

    fn dump(&self) {
        self.say(&format!(
            "own id {}, shm {} bytes, {} vectors",
            self.conn.id(),
            self.conn.shm_size(),
            self.conn.own_vectors().len()
        ));
        let peers = self.conn.peers();
        if peers.is_empty() {
            self.say("no other peers");
        }
        for p in peers {
            self.say(&format!("peer {}: {} vectors", p.id, p.vectors));
        }
    }

    fn int(&self, args: &[&str]) -> Result<(), String> {
        match args {
            ["all"] => {
                let mut n = 0;
                for p in self.conn.peers() {
                    n += self
                        .conn
                        .notify_all_vectors(p.id)
                        .map_err(|e| e.to_string())?;
                }
                if self.verbose {
                    self.say(&format!("sent {n} interrupts"));
                }
            }
            [peer, "all"] => {
                let id = parse_id(peer)?;
                self.conn
                    .notify_all_vectors(id)
                    .map_err(|e| e.to_string())?;
            }
            [peer, vector] => {
                let id = parse_id(peer)?;
                let v = parse_u64(vector)?;
                let v = u16::try_from(v).map_err(|_| format!("invalid vector {vector}"))?;
                self.conn.notify(id, v).map_err(|e| e.to_string())?;
            }
            _ => return Err("usage: int <peer> <vector|all> | int all".into()),
        }
        Ok(())
    }

    fn map(&mut self) -> Result<&ShmMapping, String> {
        if self.shm.is_none() {
            self.shm = Some(self.conn.map_shm().map_err(|e| e.to_string())?);
        }
        self.shm.as_ref().ok_or_else(|| "no mapping".to_string())
    }

    fn hexdump(&mut self, off: usize, len: usize) -> Result<(), String> {
        let mut data = vec![0u8; len];
        self.map()?
            .read(off, &mut data)
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        for (i, chunk) in data.chunks(16).enumerate() {
            let mut hex = String::new();
            for (j, b) in chunk.iter().enumerate() {
                if j == 8 {
                    hex.push(' ');
                }
                hex.push_str(&format!("{b:02x} "));
            }
            let ascii: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            out.push_str(&format!("{:08x}  {hex:<49} |{ascii}|\n", off + i * 16));
        }
        print!("{out}");
        Ok(())
    }
}

fn parse_id(text: &str) -> Result<u16, String> {
    parse_u64(text)
        .ok()
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(|| format!("invalid peer id '{text}'"))
}

fn parse_offset(text: &str) -> Result<usize, String> {
    let v = parse_size(text)?;
    usize::try_from(v).map_err(|_| format!("'{text}' is too large"))
}

/// `"text"` or hex bytes (`de ad`, `dead`, `0xde 0xad`).
fn parse_bytes(text: &str) -> Result<Vec<u8>, String> {
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| "unterminated string".to_string())?;
        return Ok(inner.as_bytes().to_vec());
    }
    let mut out = Vec::new();
    for word in text.split_whitespace() {
        let w = word.trim_start_matches("0x");
        if w.is_empty() || w.len() % 2 != 0 {
            return Err(format!("invalid hex bytes '{word}'"));
        }
        for i in (0..w.len()).step_by(2) {
            let b = w
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid hex bytes '{word}'"))?;
            out.push(b);
        }
    }
    if out.is_empty() {
        return Err("nothing to write".into());
    }
    Ok(out)
}
