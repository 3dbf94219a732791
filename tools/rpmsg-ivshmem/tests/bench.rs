//! `bench --json`: one valid JSON object with the headline figures, their baselines and
//! ratios. Only the shape and the signs are checked here (short counts): speed goals live
//! in the bench's own output, never in timed tests.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// A JSON value, as far as the test needs it.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

/// A strict little JSON parser (RFC 8259): the whole input must be one value.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing bytes at {}", p.i));
        }
        Ok(v)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected {lit:?} at {}", self.i))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut map = BTreeMap::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Object(map));
                }
                loop {
                    self.ws();
                    let Json::String(key) = self.string()? else {
                        unreachable!()
                    };
                    self.ws();
                    self.eat(":")?;
                    let v = self.value()?;
                    if map.insert(key.clone(), v).is_some() {
                        return Err(format!("duplicate key {key:?}"));
                    }
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(map));
                        }
                        _ => return Err(format!("expected , or }} at {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(format!("expected , or ] at {}", self.i)),
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(b't') => self.eat("true").map(|_| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|_| Json::Bool(false)),
            Some(b'n') => self.eat("null").map(|_| Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(format!("unexpected byte at {}", self.i)),
        }
    }

    fn string(&mut self) -> Result<Json, String> {
        self.eat("\"")?;
        let mut out = String::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => return Ok(Json::String(out)),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e as char),
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4])
                                .map_err(|e| e.to_string())?;
                            let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            out.push(char::from_u32(code).ok_or("bad \\u")?);
                            self.i += 4;
                        }
                        _ => return Err(format!("bad escape at {}", self.i)),
                    }
                }
                c if c < 0x20 => return Err(format!("control byte in string at {}", self.i)),
                _ => {
                    // Copy the UTF-8 sequence this byte starts.
                    let start = self.i - 1;
                    while self.i < self.s.len() && (self.s[self.i] & 0xC0) == 0x80 {
                        self.i += 1;
                    }
                    out.push_str(
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                    );
                }
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.i < p.s.len() && p.s[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - from
        };
        let int_start = self.i;
        if digits(self) == 0 || (self.s[int_start] == b'0' && self.i - int_start > 1) {
            return Err(format!("bad number at {start}"));
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(format!("bad fraction at {start}"));
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(format!("bad exponent at {start}"));
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        text.parse().map(Json::Number).map_err(|e| format!("{e}"))
    }
}

#[test]
fn the_parser_is_strict() {
    assert!(Parser::parse(r#"{"a":[1,-2.5e3,true,null,"x\"\u00e9"]}"#).is_ok());
    for bad in [
        "",
        "{",
        "{\"a\":1,}",
        "[01]",
        "{\"a\":NaN}",
        "{} x",
        "{\"a\":1,\"a\":2}",
    ] {
        assert!(Parser::parse(bad).is_err(), "{bad:?}");
    }
}

fn object(out: &str) -> BTreeMap<String, Json> {
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    match Parser::parse(out) {
        Ok(Json::Object(map)) => map,
        other => panic!("not a JSON object ({other:?}):\n{out}"),
    }
}

fn positive(map: &BTreeMap<String, Json>, key: &str) -> f64 {
    match map.get(key) {
        Some(Json::Number(v)) if *v > 0.0 && v.is_finite() => *v,
        other => panic!("{key}: not a positive number: {other:?}"),
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
            matches!(map.get(key), Some(Json::Bool(_))),
            "{key}: {map:?}"
        );
    }
    let Some(Json::Array(rows)) = map.get("round_trips") else {
        panic!("round_trips: {map:?}")
    };
    assert_eq!(rows.len(), 3, "1, 64 and 496 bytes");
}

#[test]
fn bench_json_against_a_running_remote_and_without_spinning() {
    let server = TestServer::start();
    let remote = start_remote(&server, &["--quiet", "--sink", "--spin-us", "0"]);
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
    assert_eq!(map.get("private"), Some(&Json::Bool(false)));
    assert_eq!(map.get("spin_us"), Some(&Json::Number(0.0)));
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
    assert_eq!(map.get("host_cpu"), Some(&Json::Number(0.0)));
    assert_eq!(map.get("remote_cpu"), Some(&Json::Number(0.0)));
    positive(&map, "rtt_ratio");
}
