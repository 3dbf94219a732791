//! Start orders and restarts of the real processes (issue 6): host and remote started in
//! any order or at once, either side SIGKILLed mid-stream and replaced twenty times while
//! the other keeps running, both replaced in the reverse order, messages queued for a dead
//! peer never delivered to its successor (open-amp #44), and `status` following it all.
//!
//! Every payload carries the instance it was meant for (`r<round>:<i>` for the remote of
//! round `round`, `<i>:h<round>` from the host of round `round`), so a message from before
//! a restart showing up after it is caught by its tag. Every wait has a timeout; children
//! are SIGKILLed when a test fails (their handles drop) or when the test process dies.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(20);
const NOT_READY: &str = "RPMsg over IVSHMEM backend is not ready yet!\n";
const TIMED_OUT: &str = "Remote side response timed out!\n";

/// A long-running host reading commands from stdin, once it is waiting for a remote.
fn start_host(server: &TestServer) -> Proc {
    let host = Proc::spawn(&["host", "-S", server.sock()]);
    assert!(
        host.err.wait_for("waiting for a remote", T),
        "host did not start\n{}",
        host.describe()
    );
    host
}

/// SIGKILLs `p` and waits until everything it wrote has been read.
fn kill(p: &mut Proc) {
    p.kill();
    assert!(
        p.out.wait_eof(T) && p.err.wait_eof(T),
        "{} left a pipe open",
        p.name
    );
}

/// The ivshmem id a node printed at start ("<role>: ivshmem id N, ...").
fn ivshmem_id(p: &Proc, role: &str) -> u16 {
    let needle = format!("{role}: ivshmem id ");
    p.expect_err(0, &needle, T);
    let err = p.err.text();
    let start = err.find(&needle).unwrap() + needle.len();
    let digits: String = err[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

/// `key: value` lines of a status text.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {key:?} in status:\n{status}"))
}

/// Checks that a host's `status` text shows the link up with `remote` as its peer.
fn assert_up_with(status: &str, remote: &Proc, context: &str) {
    assert_eq!(field(status, "link"), "up", "{context}\n{status}");
    assert_eq!(
        field(status, "peer id"),
        ivshmem_id(remote, "remote").to_string(),
        "{context}\n{status}"
    );
}

/// Runs `status` in the host's stdin shell and returns its text.
fn host_status(host: &mut Proc) -> String {
    let at = host.out.len();
    host.send_line("status");
    host.expect(Stream::Out, at, T, "status ending in a line", |b| {
        b.ends_with(b"\n") && contains(b, b"peer faults: ")
    });
    host.out.text()[at..].to_string()
}

/// Sends `line` to a host that has no remote and checks that it answers exactly "not ready".
fn expect_not_ready(host: &mut Proc, line: &str, context: &str) {
    let at = host.out.len();
    host.send_line(line);
    assert!(
        host.out.wait_from(at, T, |b| b == NOT_READY.as_bytes()),
        "{context}\n{}",
        host.describe()
    );
}

/// Runs `rpmsg-ivshmem status` (a third peer that only reads) and returns its text.
fn server_status(server: &TestServer) -> String {
    let (status, out, err) = run(&["status", "-S", server.sock()], T);
    assert!(status.success(), "{out}\n{err}");
    out
}

/// The arguments of a host on `server` that sends `count` sequence-checked copies of `tag`
/// with 16 in flight (`extra` options before them).
fn seq_send_args<'a>(
    server: &'a TestServer,
    tag: &'a str,
    count: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["host", "send", "--seq", "--window", "16"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[tag, count, "-S", server.sock()]);
    args
}

/// Sends one message per text through the host's stdin shell (all lines written at once;
/// the host runs them one after the other) and checks its stdout is exactly their echoes.
fn send_each(host: &mut Proc, texts: &[String], context: &str) {
    let at = host.out.len();
    let mut lines = String::new();
    let mut want = String::new();
    for t in texts {
        lines.push_str(&format!("rpmsg_ivshmem send \"{t}\" 1\n"));
        want.push_str(&host_block(t, 1));
    }
    host.send_line(lines.trim_end());
    assert!(
        host.out.wait_from(at, T, |b| b.len() >= want.len()),
        "{context}: echoes missing\n{}",
        host.describe()
    );
    assert_eq!(&host.out.text()[at..], want, "{context}");
}

/// What the remote printed: `None` for a banner, `Some(text)` for a received message.
fn remote_log(remote: &Proc) -> Vec<Option<String>> {
    let text = remote.out.text();
    let banner = banner("Remote");
    let mut items = Vec::new();
    let mut rest = text.as_str();
    loop {
        let b = rest.find(&banner);
        let m = rest.find("Host side sent a string:\n[ ");
        match (b, m) {
            (Some(b), m) if m.map_or(true, |m| b < m) => {
                items.push(None);
                rest = &rest[b + banner.len()..];
            }
            (_, Some(m)) => {
                let body = &rest[m + "Host side sent a string:\n[ ".len()..];
                let Some(end) = body.find(" ]\nNow echoing it back!\n\n") else {
                    break; // being written
                };
                items.push(Some(body[..end].to_string()));
                rest = &body[end..];
            }
            _ => break,
        }
    }
    items
}

/// The messages in a remote's log.
fn messages(remote: &Proc) -> Vec<String> {
    remote_log(remote).into_iter().flatten().collect()
}

#[derive(Debug, Clone, Copy)]
enum Order {
    HostFirst,
    RemoteFirst,
    /// Both spawned at once.
    Together,
}

/// Host and remote, in every start order (and at the same moment, several times), come up
/// by themselves; the host's shell works before that (`send` is "not ready", `status` says
/// it waits), and the link then carries messages.
#[test]
fn every_start_order_brings_the_link_up() {
    let orders = [
        Order::HostFirst,
        Order::RemoteFirst,
        Order::Together,
        Order::Together,
        Order::Together,
        Order::Together,
        Order::Together,
    ];
    for (n, order) in orders.into_iter().enumerate() {
        let context = format!("{order:?} #{n}");
        let server = TestServer::start();
        let (mut host, remote) = match order {
            Order::HostFirst => {
                let mut host = start_host(&server);
                let status = host_status(&mut host);
                assert_eq!(field(&status, "link"), "waiting for a remote", "{context}");
                assert_eq!(field(&status, "session"), "1", "{context}");
                expect_not_ready(&mut host, "rpmsg_ivshmem send early 1", &context);
                std::thread::sleep(Duration::from_millis(200));
                (host, start_remote(&server, &[]))
            }
            Order::RemoteFirst => {
                let remote = start_remote(&server, &[]);
                std::thread::sleep(Duration::from_millis(200));
                (Proc::spawn(&["host", "-S", server.sock()]), remote)
            }
            // Spawned back to back (well under a millisecond apart, while each takes
            // milliseconds to connect and map), alternating which goes first. (Not from
            // helper threads: a child dies with the thread that spawned it, by
            // PR_SET_PDEATHSIG.)
            Order::Together if n % 2 == 0 => {
                let h = Proc::spawn(&["host", "-S", server.sock()]);
                (h, Proc::spawn(&["remote", "-S", server.sock()]))
            }
            Order::Together => {
                let r = Proc::spawn(&["remote", "-S", server.sock()]);
                (Proc::spawn(&["host", "-S", server.sock()]), r)
            }
        };
        // The shell answers at once, whether the link is up yet or not.
        let status = host_status(&mut host);
        assert!(
            [
                "up",
                "waiting for a remote",
                "up, endpoint \"k\" not announced yet"
            ]
            .contains(&field(&status, "link")),
            "{context}\n{status}"
        );
        assert!(
            host.out.wait_for(&banner("Host"), T),
            "{context}\n{}\n{}",
            host.describe(),
            remote.describe()
        );
        let texts: Vec<String> = (1..=3).map(|i| format!("{n}:{i}")).collect();
        send_each(&mut host, &texts, &context);
        assert!(
            remote.out.wait_count(&remote_block(&texts[2]), 1, T),
            "{context}\n{}",
            remote.describe()
        );
        assert_eq!(messages(&remote), texts, "{context}\n{}", remote.describe());
        let status = host_status(&mut host);
        assert_up_with(&status, &remote, &context);
        assert_eq!(field(&status, "peer faults"), "0", "{context}");
        host.close_stdin();
        assert!(host.expect_exit(T).success(), "{context}");
    }
}

/// The remote is SIGKILLed twenty times in the middle of a stream of messages and a new
/// one started: at once, after the host noticed, or while the host is stopped (so that
/// only the control-area handshake can tell it). Each time the
/// host, which keeps running, brings the link up with the new remote by itself; its next
/// sends all succeed; every remote receives exactly its own round's messages, in order,
/// once (nothing lost or duplicated within a session, nothing from an earlier one); and
/// `status` shows the new peer id and a larger session number each time.
#[test]
fn remote_sigkilled_twenty_times_mid_stream_under_one_host() {
    let server = TestServer::start();
    let mut host = start_host(&server);
    let mut session = 0u32;
    let mut remote = start_remote(&server, &[]);
    for round in 1..=20usize {
        let context = format!("round {round}");
        assert!(
            host.out.wait_count(&banner("Host"), round, T),
            "{context}: the link did not come up\n{}\n{}",
            host.describe(),
            remote.describe()
        );
        let status = host_status(&mut host);
        assert_up_with(&status, &remote, &context);
        let now: u32 = field(&status, "session").parse().unwrap();
        assert!(now > session, "{context}: session {now} after {session}");
        session = now;

        let n = 4 + round % 5;
        let texts: Vec<String> = (1..=n).map(|i| format!("r{round}:{i}")).collect();
        send_each(&mut host, &texts, &context);
        // The remote's log must be this round's messages in order, once: checked once the
        // remote is dead (it may be killed before it prints the last one).
        let check = |remote: &Proc| {
            let got = messages(remote);
            assert!(
                (got.len() == n || got.len() == n - 1) && got[..] == texts[..got.len()],
                "{context}: remote received {got:?}, host sent {texts:?}\n{}",
                remote.describe()
            );
        };
        // Killed as soon as the host has the last echo: the remote may still be printing
        // (it prints after echoing), so its log is all of them or all but the last.
        let at_err = host.err.len();
        match round % 3 {
            // Behind the host's back: it is stopped while the remote dies and the new one
            // finds the old session still attached, so the new remote must ask for a
            // fresh session through the control area (the server's "peer left" reaches
            // the host only later). A remote that reused the old rings would receive this
            // round's messages again.
            0 => {
                host.signal(libc::SIGSTOP);
                kill(&mut remote);
                check(&remote);
                remote = start_remote(&server, &[]);
                std::thread::sleep(Duration::from_millis(100));
                host.signal(libc::SIGCONT);
            }
            // After the host saw the remote leave the server.
            1 => {
                kill(&mut remote);
                check(&remote);
                assert!(
                    host.err.wait_for_from(at_err, "left the server", T),
                    "{context}\n{}",
                    host.describe()
                );
                remote = start_remote(&server, &[]);
            }
            // At once.
            _ => {
                kill(&mut remote);
                check(&remote);
                remote = start_remote(&server, &[]);
            }
        }
    }
    assert!(host.out.wait_count(&banner("Host"), 21, T));
    send_each(&mut host, &["last".to_string()], "after 20 restarts");
    assert!(remote.out.wait_for(&remote_block("last"), T));
    assert_eq!(messages(&remote), ["last"], "{}", remote.describe());
    let status = host_status(&mut host);
    assert_eq!(field(&status, "peer faults"), "0", "{status}");
    assert!(field(&status, "session").parse::<u32>().unwrap() > session);
    assert!(
        field(&status, "resets").parse::<u32>().unwrap() >= 20,
        "{status}"
    );
    host.quit(T);
}

/// The host is SIGKILLed twenty times while it streams sequence-checked messages with 16
/// in flight, and a new host started; the remote keeps running. Each new host's messages
/// are echoed complete, once and in order (its own `--seq` check fails on any echo of an
/// older host's message), `rpmsg-ivshmem status` shows the two live ids and a larger
/// session each time, and the remote receives each host's messages contiguously, never
/// one of an earlier host after a later one's.
#[test]
fn host_sigkilled_twenty_times_mid_stream_under_one_remote() {
    let (server, remote) = server_with_remote(&[]);
    let remote_id = ivshmem_id(&remote, "remote");
    let mut session = 0u32;
    for round in 1..=20usize {
        let context = format!("round {round}");
        let tag = format!("h{round}");
        let mut host = Proc::spawn(&seq_send_args(&server, &tag, "100000000", &[]));
        let kill_at = 5 + (round * 13) % 60;
        assert!(
            host.out
                .wait_for(&format!("at message number {kill_at}\n"), T),
            "{context}\n{}\n{}",
            host.describe(),
            remote.describe()
        );
        let status = server_status(&server);
        assert_eq!(field(&status, "link"), "up", "{context}\n{status}");
        assert_eq!(
            field(&status, "host id"),
            format!("{} (connected)", ivshmem_id(&host, "host")),
            "{context}\n{status}"
        );
        assert_eq!(
            field(&status, "remote id"),
            format!("{remote_id} (connected)"),
            "{context}\n{status}"
        );
        let now: u32 = field(&status, "session").parse().unwrap();
        assert!(now > session, "{context}: session {now} after {session}");
        session = now;
        assert!(
            host.is_running(),
            "{context}: the host stopped by itself (a bad echo?)\n{}",
            host.describe()
        );
        kill(&mut host);
        // Its echoes so far: 1..=m, each exactly once, in order.
        let out = host.out.text();
        let m = count(out.as_bytes(), b"Remote side echoed the string back:\n");
        let want: String = (1..=m as u64)
            .map(|i| host_block(&format!("{i}:{tag}"), i))
            .collect();
        assert_eq!(out, want, "{context}");
        assert!(m >= kill_at, "{context}");
    }
    let (status, out, err) = run(
        &["host", "send", "--seq", "final", "10", "-S", server.sock()],
        T,
    );
    assert!(status.success(), "{out}\n{err}\n{}", remote.describe());
    assert!(remote.out.wait_for(&remote_block("10:final"), T));
    // The remote's view: each host's messages 1..=m contiguous, hosts in order.
    let mut expected_round = 1usize;
    let mut next = 1u64;
    for msg in messages(&remote) {
        let (i, tag) = msg.split_once(':').expect("i:tag");
        let i: u64 = i.parse().unwrap();
        let round = match tag.strip_prefix('h') {
            Some(r) => r.parse().unwrap(),
            None => 21,
        };
        if round != expected_round {
            assert!(
                round > expected_round && i == 1,
                "message {msg:?} after host {expected_round}'s message {}: stale or lost\n{}",
                next - 1,
                remote.describe()
            );
            expected_round = round;
            next = 1;
        }
        assert_eq!(i, next, "host {round}: message {msg:?} out of sequence");
        next += 1;
    }
    assert_eq!(expected_round, 21);
    assert_eq!(next, 11);
}

/// Both sides SIGKILLed (in either order) and restarted in the reverse order of their
/// first start, several times: the link comes back, the session number grows, and nothing
/// from before the restart is delivered.
#[test]
fn both_killed_and_restarted_in_reverse_order() {
    let server = TestServer::start();
    let mut host = start_host(&server);
    let mut remote = start_remote(&server, &[]);
    let mut session = 0u32;
    for round in 1..=6usize {
        let context = format!("round {round}");
        assert!(
            host.out.wait_for(&banner("Host"), T),
            "{context}\n{}\n{}",
            host.describe(),
            remote.describe()
        );
        let status = host_status(&mut host);
        assert_eq!(field(&status, "link"), "up", "{context}\n{status}");
        let now: u32 = field(&status, "session").parse().unwrap();
        assert!(now > session, "{context}: session {now} after {session}");
        session = now;
        let texts: Vec<String> = (1..=3).map(|i| format!("b{round}:{i}")).collect();
        send_each(&mut host, &texts, &context);
        assert!(remote.out.wait_for(&remote_block(&texts[2]), T));
        assert_eq!(messages(&remote), texts, "{context}");
        // Kill order alternates; the restart order is the reverse of the last start order:
        // odd rounds started host then remote, so the remote comes back first.
        if round % 2 == 1 {
            kill(&mut host);
            kill(&mut remote);
            remote = start_remote(&server, &[]);
            std::thread::sleep(Duration::from_millis(100));
            host = start_host(&server);
        } else {
            kill(&mut remote);
            kill(&mut host);
            host = start_host(&server);
            expect_not_ready(&mut host, "rpmsg_ivshmem send alone 1", &context);
            std::thread::sleep(Duration::from_millis(100));
            remote = start_remote(&server, &[]);
        }
    }
    assert!(host.out.wait_for(&banner("Host"), T));
    send_each(&mut host, &["end".to_string()], "end");
    assert!(remote.out.wait_for(&remote_block("end"), T));
    assert_eq!(messages(&remote), ["end"], "{}", remote.describe());
    let status = host_status(&mut host);
    assert!(field(&status, "session").parse::<u32>().unwrap() > session);
    assert_eq!(field(&status, "peer faults"), "0", "{status}");
}

/// A `send` running while the remote is SIGKILLed and replaced prints the timeout line and
/// returns at once; the next `send` works with the new remote. A message the host queued for a
/// remote that never took it (stopped, then killed) is never delivered to its successor
/// (open-amp #44), nor is anything the old remote had in flight.
#[test]
fn a_send_running_during_a_remote_restart_times_out_and_nothing_stale_follows() {
    let server = TestServer::start();
    let mut host = start_host(&server);
    let mut remote = start_remote(&server, &[]);
    host.expect_out(0, &banner("Host"), T);

    // 1. Mid-stream: a long send, the remote killed under it and replaced at once.
    let at = host.out.len();
    host.send_line("rpmsg_ivshmem send \"stream\" 100000000");
    host.expect_out(at, "at message number 30\n", T);
    kill(&mut remote);
    let killed = Instant::now();
    remote = start_remote(&server, &[]);
    host.expect_out(at, TIMED_OUT, Duration::from_secs(15));
    let elapsed = killed.elapsed();
    // The host starts a fresh session when the server reports the remote gone, and the
    // send knows at once that its echoes cannot come (before: after its 5 s).
    assert!(
        elapsed <= Duration::from_secs(1),
        "timeout line after {elapsed:?}"
    );
    // The echo blocks, then the timeout line (the new link's banner may come between).
    let text = host.out.text()[at..].replace(&banner("Host"), "");
    assert!(
        text.ends_with(&format!(
            " ]\nat message number {}\n\n{TIMED_OUT}",
            count(text.as_bytes(), b"at message number ")
        )),
        "{text}"
    );
    host.expect_out_count(&banner("Host"), 2, T);
    send_each(&mut host, &["after stream".to_string()], "after the stream");
    assert!(remote.out.wait_for(&remote_block("after stream"), T));
    assert_eq!(messages(&remote), ["after stream"], "{}", remote.describe());

    // 2. A message queued in the ring of a remote that never takes it (stopped), then the
    // remote replaced while the host is stopped too: the new remote finds the old session
    // with that message in its ring, and must not take it.
    remote.signal(libc::SIGSTOP);
    let at = host.out.len();
    host.send_line("rpmsg_ivshmem send \"queued for the dead\" 1");
    // Let the host put it in the ring before the remote dies.
    std::thread::sleep(Duration::from_millis(300));
    host.signal(libc::SIGSTOP);
    kill(&mut remote);
    remote = start_remote(&server, &[]);
    std::thread::sleep(Duration::from_millis(200));
    host.signal(libc::SIGCONT);
    host.expect_out(at, TIMED_OUT, Duration::from_secs(15));
    assert_eq!(
        host.out.text()[at..].replace(&banner("Host"), ""),
        TIMED_OUT,
        "{}",
        host.describe()
    );
    host.expect_out_count(&banner("Host"), 3, T);
    send_each(&mut host, &["fresh".to_string()], "after the queued one");
    assert!(remote.out.wait_for(&remote_block("fresh"), T));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(messages(&remote), ["fresh"], "{}", remote.describe());
    let status = host_status(&mut host);
    assert_eq!(field(&status, "peer faults"), "0", "{status}");
}

/// The reverse direction: a host SIGSTOPped with 16 messages in flight, whose echoes the
/// remote has put in the host's receive ring, then SIGKILLed. A new host never receives
/// those echoes: its sequence check would fail on the first one.
#[test]
fn echoes_queued_for_a_dead_host_never_reach_its_successor() {
    let (server, remote) = server_with_remote(&[]);
    for round in 1..=3 {
        let tag = format!("old{round}");
        let mut old = Proc::spawn(&seq_send_args(&server, &tag, "100000000", &["--quiet"]));
        assert!(
            remote.out.wait_for(&remote_block(&format!("100:{tag}")), T),
            "{}\n{}",
            old.describe(),
            remote.describe()
        );
        old.signal(libc::SIGSTOP);
        std::thread::sleep(Duration::from_millis(100));
        kill(&mut old);
        let new_tag = format!("new{round}");
        let (status, out, err) = run(&seq_send_args(&server, &new_tag, "50", &[]), T);
        assert!(status.success(), "{out}\n{err}\n{}", remote.describe());
        assert!(remote
            .out
            .wait_for(&remote_block(&format!("50:{new_tag}")), T));
        // After the new host's first message, nothing of the old one.
        let log = messages(&remote);
        let first = log
            .iter()
            .position(|m| *m == format!("1:{new_tag}"))
            .unwrap();
        assert!(
            log[first..].iter().all(|m| m.ends_with(&new_tag)),
            "stale message after the restart: {:?}",
            &log[first..]
        );
    }
}
