//! `bench --json`: one valid JSON object with the headline figures, their baselines and
//! ratios. Only the shape and the signs are checked here (short counts): speed goals live
//! in the bench's own output, never in timed tests.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Map, Value};

fn object(out: &str) -> Map<String, Value> {
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    match serde_json::from_str(out) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object ({other:?}):\n{out}"),
    }
}

fn positive(map: &Map<String, Value>, key: &str) -> f64 {
    match map.get(key).and_then(Value::as_f64) {
        Some(v) if v > 0.0 && v.is_finite() => v,
        _ => panic!("{key}: not a positive number: {:?}", map.get(key)),
    }
}

#[test]
fn bench_json_has_the_figures_and_their_baselines() {
    let (status, out, err) = run(
        &["bench", "--json", "--count", "200"],
        Duration::from_secs(120),
    );
    assert!(status.success(), "{out}\n{err}");
    let map = object(&out);
    for key in [
        "rtt_p50_ns",
        "rtt_p99_ns",
        "eventfd_rtt_p50_ns",
        "eventfd_rtt_p99_ns",
        "roundtrips_per_s",
        "eventfd_roundtrips_per_s",
        "stream_mb_s",
        "memcpy_mb_s",
        "bare_ring_mb_s",
        "rtt_ratio",
        "stream_ratio",
        "stream_vs_bare_ring",
    ] {
        positive(&map, key);
    }
    assert_eq!(positive(&map, "stream_payload"), 496.0);
    assert_eq!(positive(&map, "rtt_payload"), 496.0);
    assert!(positive(&map, "rtt_p99_ns") >= positive(&map, "rtt_p50_ns"));
    let ratio = positive(&map, "rtt_ratio");
    let expected = positive(&map, "rtt_p50_ns") / positive(&map, "eventfd_rtt_p50_ns");
    assert!(
        (ratio - expected).abs() < 0.01 * expected,
        "{ratio} vs {expected}"
    );
    for key in ["rtt_target_met", "stream_target_met", "private"] {
        assert!(
            matches!(map.get(key), Some(Value::Bool(_))),
            "{key}: {map:?}"
        );
    }
    let Some(Value::Array(rows)) = map.get("round_trips") else {
        panic!("round_trips: {map:?}")
    };
    assert_eq!(rows.len(), 3, "1, 64 and 496 bytes");
}

#[test]
fn bench_json_against_a_running_remote_and_without_spinning() {
    let (server, remote) = server_with_remote(&["--quiet", "--sink", "--spin-us", "0"]);
    let (status, out, err) = run(
        &[
            "bench",
            "--attach",
            "--json",
            "--count",
            "100",
            "--spin-us",
            "0",
            "-S",
            server.sock(),
        ],
        Duration::from_secs(120),
    );
    assert!(status.success(), "{out}\n{err}\n{}", remote.describe());
    let map = object(&out);
    assert_eq!(map.get("private"), Some(&Value::Bool(false)));
    assert_eq!(map.get("spin_us").and_then(Value::as_f64), Some(0.0));
    positive(&map, "eventfd_rtt_p50_ns");
    positive(&map, "stream_mb_s");
}

#[test]
fn bench_pins_to_the_cpus_given() {
    let (status, out, err) = run(
        &["bench", "--json", "--count", "100", "--cpus", "0,0"],
        Duration::from_secs(120),
    );
    assert!(status.success(), "{out}\n{err}");
    let map = object(&out);
    assert_eq!(map.get("host_cpu").and_then(Value::as_f64), Some(0.0));
    assert_eq!(map.get("remote_cpu").and_then(Value::as_f64), Some(0.0));
    positive(&map, "rtt_ratio");
}
