//! End to end: a real ivshmem-server (POSIX shared memory, eventfd doorbells) and the
//! `rpmsg-ivshmem` binary as separate host and remote processes.

mod common;

use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);
const NOT_READY: &str = "RPMsg over IVSHMEM backend is not ready yet!\n";
const TIMED_OUT: &str = "Remote side response timed out!\n";

#[test]
fn ten_messages_host_output_is_byte_exact() {
    let (server, remote) = server_with_remote(&["--board", "qemu_cortex_a53"]);
    let mut host = sample_host(&server, &["send", "RPMsg over IVSHMEM", "10"]);
    let status = host.expect_exit(T);
    assert!(status.success(), "{status}\n{}", host.describe());
    assert_eq!(host.out.text(), host_blocks("RPMsg over IVSHMEM", 10));
    assert!(host.err.text().contains(
        "Hello qemu_cortex_a53 - Host Side, the communication over RPMsg is ready to use!\n"
    ));
    // The remote prints each block after echoing it: wait for the last one.
    let block = remote_block("RPMsg over IVSHMEM");
    remote.expect_out_count(&block, 10, T);
    let expected = format!(
        "Hello qemu_cortex_a53 - Remote Side, the communication over RPMsg is ready to use!\n{}",
        block.repeat(10)
    );
    assert_eq!(remote.out.text(), expected);
}

#[test]
fn host_may_start_before_the_remote() {
    let server = TestServer::start();
    let mut host = Proc::spawn(&["host", "send", "first the host", "3", "-S", server.sock()]);
    host.expect_err(0, "waiting for a remote", T);
    std::thread::sleep(Duration::from_millis(300));
    let remote = start_remote(&server, &[]);
    let status = host.expect_exit(T);
    assert!(status.success(), "{status}\n{}", host.describe());
    assert_eq!(host.out.text(), host_blocks("first the host", 3));
    assert!(remote.out.wait_count(&remote_block("first the host"), 3, T));
    assert!(remote.out.text().starts_with(&banner("Remote")));
}

#[test]
fn spaces_empty_and_longest_strings_through_one_remote() {
    let (server, remote) = server_with_remote(&[]);
    let longest = "x".repeat(495);
    let texts = [
        "words  with   spaces",
        "",
        " leading and trailing ",
        "tab\there, \"quotes\" and 'apostrophes'",
        "UTF-8: grüße, 你好",
        longest.as_str(),
    ];
    // One remote, many hosts in a row: each host starts a new session the remote joins.
    for (n, text) in texts.iter().enumerate() {
        let (status, out, err) = run(&["host", "send", text, "2", "-S", server.sock()], T);
        assert!(status.success(), "{text:?}: {status}\n{out}\n{err}");
        assert_eq!(out, host_blocks(text, 2), "{text:?}");
        remote.expect_out_count(&remote_block(text), 2, T);
        assert_eq!(
            count(remote.out.text().as_bytes(), banner("Remote").as_bytes()),
            n + 1,
            "one banner per host session\n{}",
            remote.describe()
        );
    }
}

#[test]
fn a_496_byte_string_is_refused_before_anything_is_sent() {
    let (server, remote) = server_with_remote(&[]);
    let too_long = "y".repeat(496);
    let (status, out, err) = run(&["host", "send", &too_long, "1", "-S", server.sock()], T);
    assert_eq!(status.code(), Some(2), "{out}\n{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("string too long: 496 bytes, but at most 495 fit in one message"),
        "{err}"
    );
    // Same in the stdin shell of a running host.
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    host.expect_out(0, &banner("Host"), T);
    host.send_line(&format!("rpmsg_ivshmem send {too_long} 1"));
    host.expect_err(0, "string too long: 496 bytes", T);
    host.quit(T);
    assert_nothing_reached(&remote);
}

#[test]
fn bad_counts_are_refused_and_nothing_is_sent() {
    let (server, remote) = server_with_remote(&[]);
    for bad in ["abc", "-1", "0", "1e3", "", "18446744073709551616"] {
        let (status, out, err) = run(&["host", "send", "x", bad, "-S", server.sock()], T);
        assert_eq!(status.code(), Some(2), "{bad:?}: {out}\n{err}");
        assert_eq!(out, "", "{bad:?}");
        assert!(
            err.contains(&format!("invalid number of messages \"{bad}\"")),
            "{bad:?}: {err}"
        );
    }
    let (status, _, err) = run(&["host", "send", "x", "-S", server.sock()], T);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("wrong parameter count"), "{err}");
    assert_nothing_reached(&remote);
}

/// Waits a little, then checks that no message reached `remote`.
fn assert_nothing_reached(remote: &Proc) {
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !remote.out.text().contains("Host side sent a string"),
        "{}",
        remote.describe()
    );
}

#[test]
fn a_count_of_ten_trillion_is_accepted() {
    let (server, remote) = server_with_remote(&[]);
    let mut host = Proc::spawn(&[
        "host",
        "send",
        "stress",
        "10000000000000",
        "-S",
        server.sock(),
    ]);
    assert!(
        host.out.wait_for(&host_block("stress", 3), T),
        "{}\n{}",
        host.describe(),
        remote.describe()
    );
    host.kill();
}

#[test]
fn remote_killed_mid_run_makes_the_host_time_out() {
    let (server, mut remote) = server_with_remote(&[]);
    let mut host = Proc::spawn(&[
        "host",
        "send",
        "RPMsg over IVSHMEM",
        "10000000000000",
        "-S",
        server.sock(),
    ]);
    assert!(
        host.out.wait_for("at message number 50\n", T),
        "{}\n{}",
        host.describe(),
        remote.describe()
    );
    remote.kill();
    let killed = Instant::now();
    host.expect_out(0, TIMED_OUT, Duration::from_secs(10));
    let elapsed = killed.elapsed();
    // The server reports the remote gone, the host starts a fresh session, and `send`
    // knows at once that the echoes in flight cannot come (it waited the full 5 s
    // reply timeout before).
    assert!(
        elapsed <= Duration::from_secs(1),
        "timeout line after {elapsed:?}"
    );
    let status = host.expect_exit(Duration::from_secs(3));
    assert!(!status.success(), "{status}");
    assert!(host.out.text().ends_with(&format!("\n\n{TIMED_OUT}")));
}

fn hundred_thousand(window: &str) {
    let (server, mut remote) = server_with_remote(&["--quiet", "--count", "100000"]);
    let mut host = Proc::spawn(&[
        "host",
        "send",
        "sequence",
        "100000",
        "--quiet",
        "--seq",
        "--window",
        window,
        "-S",
        server.sock(),
    ]);
    let status = host.expect_exit(Duration::from_secs(240));
    assert!(
        status.success(),
        "{status}\n{}\n{}",
        host.describe(),
        remote.describe()
    );
    assert_eq!(
        host.out.text(),
        "100000 messages echoed back in order: none lost, duplicated or changed\n"
    );
    // The remote counted exactly as many and then stopped by itself.
    let status = remote.expect_exit(T);
    assert!(status.success(), "{}", remote.describe());
    assert_eq!(
        remote.out.text(),
        format!("{}Echoed 100000 messages\n", banner("Remote"))
    );
}

#[test]
fn hundred_thousand_messages_sixteen_in_flight_none_lost_duplicated_or_reordered() {
    hundred_thousand("16");
}

#[test]
fn hundred_thousand_messages_one_at_a_time() {
    hundred_thousand("1");
}

#[test]
fn server_absent_is_a_clear_error() {
    let socket =
        std::env::temp_dir().join(format!("rpmsg-ivshmem-absent-{}.sock", std::process::id()));
    let socket = socket.to_str().expect("utf-8");
    for args in [
        &["remote", "-S", socket][..],
        &["-S", socket, "host", "send", "x", "1"],
        &["--socket", socket, "host"],
        &["status", "--socket", socket],
        &["bench", "--attach", "-S", socket],
    ] {
        let started = Instant::now();
        let (status, out, err) = run(args, T);
        assert_eq!(status.code(), Some(1), "{args:?}: {out}\n{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?}");
        assert!(
            err.contains(&format!("cannot attach to the ivshmem-server at {socket}"))
                && err.contains("is the ivshmem-server running?"),
            "{args:?}: {err}"
        );
        assert_eq!(out, "", "{args:?}");
    }
}

#[test]
fn too_small_shared_memory_is_a_clear_error() {
    let server = TestServer::with_size(16 << 10);
    for args in [&["remote"][..], &["host", "send", "x", "1"]] {
        let mut a = args.to_vec();
        a.extend(["-S", server.sock()]);
        let (status, out, err) = run(&a, T);
        assert_eq!(status.code(), Some(1), "{args:?}: {out}\n{err}");
        assert!(
            err.contains("is too small: 16384 bytes, but 16 buffers of 512 bytes per direction need at least 19456"),
            "{args:?}: {err}"
        );
    }
    // Fewer buffers fit.
    let remote = start_remote(&server, &["--buf-count", "8"]);
    let (status, out, err) = run(
        &[
            "host",
            "send",
            "small",
            "2",
            "--buf-count",
            "8",
            "-S",
            server.sock(),
        ],
        T,
    );
    assert!(status.success(), "{out}\n{err}\n{}", remote.describe());
    assert_eq!(out, host_blocks("small", 2));
}

#[test]
fn another_layout_is_a_clear_error() {
    let server = TestServer::start();
    let mut host = Proc::spawn(&["host", "--buf-size", "1024", "-S", server.sock()]);
    host.expect_err(0, "waiting for a remote", T);
    let (status, out, err) = run(&["remote", "-S", server.sock()], T);
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(
            "the host uses another shared-memory layout: 16 buffers of 1024 bytes per direction"
        ) && err.contains("this remote uses 16 buffers of 512 bytes")
            && err.contains("--buf-size"),
        "{err}"
    );
    host.close_stdin();
    assert!(host.expect_exit(T).success());
}

#[test]
fn second_host_is_refused() {
    let server = TestServer::start();
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    host.expect_err(0, "waiting for a remote", T);
    let (status, _, err) = run(&["host", "send", "x", "1", "-S", server.sock()], T);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("another host (ivshmem id"), "{err}");
    host.close_stdin();
    assert!(host.expect_exit(T).success());
}

#[test]
fn host_send_without_a_remote_is_not_ready() {
    let server = TestServer::start();
    let started = Instant::now();
    let (status, out, err) = run(
        &["host", "send", "x", "1", "--wait", "1", "-S", server.sock()],
        T,
    );
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert_eq!(out, NOT_READY);
    assert!(err.contains("no remote attached within 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn long_running_host_reads_commands_and_outlives_remotes() {
    let server = TestServer::start();
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    host.expect_err(0, "waiting for a remote", T);

    // Before any remote: not ready.
    host.ask("rpmsg_ivshmem send early 1", NOT_READY, T);

    let mut remote = start_remote(&server, &[]);
    host.expect_out(0, &banner("Host"), T);

    host.exchange(
        r#"rpmsg_ivshmem send "RPMsg over IVSHMEM" 3"#,
        &host_blocks("RPMsg over IVSHMEM", 3),
        T,
    );

    host.exchange(
        "rpmsg_ivshmem send",
        "send: wrong parameter count\n\
         send - Usage: rpmsg_ivshmem send <string> <number of messages>\n",
        T,
    );

    // Zephyr shell quoting.
    host.exchange(
        r#"rpmsg_ivshmem send 'it\'s "quoted"'\ too 1"#,
        &host_block(r#"it's "quoted" too"#, 1),
        T,
    );

    let at_err = host.err.len();
    host.send_line("rpmsg_ivshmem send x abc");
    host.expect_err(at_err, "invalid number of messages \"abc\"", T);
    host.send_line("rpmsg_ivshmem send \"unterminated 1");
    assert!(host.err.wait_for_from(at_err, "not terminated: \"", T));

    let status = host.ask("status", "peer faults: 0\n", T);
    assert!(status.contains("role: host\n"), "{status}");
    assert!(status.contains("link: up\n"), "{status}");
    assert!(status.contains("tx messages: 4\n"), "{status}");

    // The remote dies; the host notices, and a new remote attaches to the same host.
    remote.kill();
    host.expect_err(0, "left the server", T);
    let status = host.ask("rpmsg_ivshmem status", "peer faults: 0\n", T);
    assert!(status.contains("link: waiting for a remote\n"), "{status}");
    host.ask("rpmsg_ivshmem send gone 1", NOT_READY, T);

    let remote2 = start_remote(&server, &[]);
    host.expect_out_count(&banner("Host"), 2, T);
    host.exchange("rpmsg_ivshmem send again 2", &host_blocks("again", 2), T);
    assert!(remote2.out.wait_count(&remote_block("again"), 2, T));
    assert!(!remote2.out.text().contains("early") && !remote2.out.text().contains("gone"));

    host.close_stdin();
    let status = host.expect_exit(T);
    assert!(status.success(), "{status}\n{}", host.describe());
}

#[test]
fn status_command_describes_the_link() {
    let server = TestServer::start();
    let (status, out, err) = run(&["status", "-S", server.sock()], T);
    assert!(status.success(), "{err}");
    assert!(
        out.contains("link: down (no host has initialised the shared memory)"),
        "{out}"
    );
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    let remote = start_remote(&server, &[]);
    host.expect_out(0, &banner("Host"), T);
    let (status, out, err) = run(&["status", "-S", server.sock()], T);
    assert!(status.success(), "{err}");
    assert!(out.contains("link: up\n"), "{out}");
    assert!(
        out.contains("layout: 16 buffers of 512 bytes per direction"),
        "{out}"
    );
    drop(remote);
    host.close_stdin();
    assert!(host.expect_exit(T).success());
}

#[test]
fn bench_prints_a_table() {
    let (status, out, err) = run(&["bench", "--count", "300"], Duration::from_secs(120));
    assert!(status.success(), "{out}\n{err}");
    for needle in [
        "RTT p50",
        "RTT p99",
        "RTT max",
        "round trips/s",
        "     1 B",
        "    64 B",
        "   496 B",
        "MB/s",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    // Against a running server and remote.
    let (server, remote) = server_with_remote(&["--quiet", "--sink"]);
    let (status, out, err) = run(
        &["bench", "--attach", "--count", "100", "-S", server.sock()],
        Duration::from_secs(120),
    );
    assert!(status.success(), "{out}\n{err}\n{}", remote.describe());
    assert!(out.contains("attached to the server at"), "{out}");
    assert!(out.contains("MB/s"), "{out}");
}

#[test]
fn remote_killed_and_restarted_at_once_works_with_the_same_host() {
    let server = TestServer::start();
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    host.expect_err(0, "waiting for a remote", T);
    let mut remote = start_remote(&server, &[]);
    for round in 1..=5 {
        assert!(
            host.out.wait_count(&banner("Host"), round, T),
            "round {round}\n{}",
            host.describe()
        );
        let at = host.out.len();
        let text = format!("round {round}");
        host.send_line(&format!("rpmsg_ivshmem send \"{text}\" 2"));
        let want = host_blocks(&text, 2);
        assert!(
            host.out.wait_from(at, T, |b| b == want.as_bytes()),
            "round {round}\n{}\n{}",
            host.describe(),
            remote.describe()
        );
        // SIGKILL and a new remote straight away, before the server has told anyone.
        remote.kill();
        remote = start_remote(&server, &[]);
    }
    host.quit(T);
}

#[test]
fn host_killed_and_restarted_works_with_the_same_remote() {
    let (server, remote) = server_with_remote(&[]);
    for round in 1..=3 {
        let mut host = Proc::spawn(&["host", "-S", server.sock()]);
        host.expect_out(0, &banner("Host"), T);
        let text = format!("host number {round}");
        host.send_line(&format!("rpmsg_ivshmem send \"{text}\" 2"));
        let want = host_blocks(&text, 2);
        assert!(
            host.out
                .wait_from(banner("Host").len(), T, |b| b == want.as_bytes()),
            "{}\n{}",
            host.describe(),
            remote.describe()
        );
        // SIGKILL: no clean shutdown, the shared memory still says the link is up.
        host.kill();
    }
    remote.expect_out_count(&banner("Remote"), 3, T);
}

#[test]
fn the_stdin_shell_runs_the_firmwares_bench() {
    let (server, remote) = server_with_remote(&["--sink"]);
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    host.expect_out(0, &banner("Host"), T);
    let text = host.ask("rpmsg_ivshmem bench 16 50", " KB/s echoed\n", T);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("bench: 50 round trips of 16 bytes: "),
        "{text}"
    );
    assert!(
        lines[1].starts_with("bench: 50 messages of 16 bytes streamed, 8 in flight: "),
        "{text}"
    );
    let at_err = host.err.len();
    host.send_line("rpmsg_ivshmem bench 497");
    assert!(
        host.err.wait_for_from(
            at_err,
            "bench: invalid payload size \"497\": expected a whole number from 0 to 496\n",
            T
        ),
        "{}",
        host.describe()
    );
    // The remote prints nothing for bench traffic: only its banner.
    assert_eq!(remote.out.text(), banner("Remote"));
    host.quit(T);
}

#[test]
fn without_its_bench_endpoint_the_remote_is_refused_by_bench() {
    let (server, _remote) = server_with_remote(&[]);
    let mut host = Proc::spawn(&["host", "-S", server.sock()]);
    host.expect_out(0, &banner("Host"), T);
    let want =
        "bench: the remote has no \"bench\" endpoint (it echoes silently); nothing was sent\n";
    host.ask("rpmsg_ivshmem bench", want, T);
    host.quit(T);
}
