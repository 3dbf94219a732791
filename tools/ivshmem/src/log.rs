//! Structured (logfmt-style `key=value`) logging for the server.
//!
//! One line per event, e.g.
//! `ts=2024-05-01T10:00:00.123Z level=info event=peer-connected peer=3 vectors=2 peers=2`.
//! The `event` key is stable; the README lists the events.

use std::fmt::{self, Display, Write as _};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How much the logger says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Only failures that stop something.
    Error,
    /// Also problems the server survives (the default: quiet when all is well).
    Warn,
    /// Also start-up and shutdown.
    Info,
    /// Also every peer event (`-v`).
    Debug,
}

impl LogLevel {
    fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// A line-oriented structured logger writing to any `Write` sink.
pub struct Logger {
    level: LogLevel,
    sink: Mutex<Box<dyn Write + Send>>,
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("level", &self.level)
            .finish()
    }
}

impl Logger {
    /// A logger writing to standard error.
    pub fn stderr(level: LogLevel) -> Self {
        Self::new(level, Box::new(std::io::stderr()))
    }

    /// A logger writing to `sink`.
    pub fn new(level: LogLevel, sink: Box<dyn Write + Send>) -> Self {
        Logger {
            level,
            sink: Mutex::new(sink),
        }
    }

    /// Whether messages of `level` are written.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    /// Writes one event line if `level` is enabled. Write errors are ignored:
    /// logging must never take the server down.
    pub fn log(&self, level: LogLevel, event: &str, fields: &[(&str, &dyn Display)]) {
        if !self.enabled(level) {
            return;
        }
        let mut line = String::with_capacity(128);
        let _ = write!(
            line,
            "ts={} level={} event={}",
            timestamp(),
            level.name(),
            event
        );
        for (key, value) in fields {
            let _ = write!(line, " {key}=");
            push_value(&mut line, &value.to_string());
        }
        line.push('\n');
        if let Ok(mut sink) = self.sink.lock() {
            let _ = sink.write_all(line.as_bytes());
            let _ = sink.flush();
        }
    }
}

/// Appends a logfmt value, quoted when it contains spaces, quotes or `=`.
fn push_value(out: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c == '\\' || c.is_control());
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 3339 UTC timestamp with milliseconds.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn format_and_levels() {
        let buf = Buf::default();
        let log = Logger::new(LogLevel::Warn, Box::new(buf.clone()));
        log.log(LogLevel::Debug, "hidden", &[]);
        log.log(
            LogLevel::Warn,
            "peer-dropped",
            &[("peer", &3), ("reason", &"backlog \"full\"")],
        );
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("hidden"));
        assert!(text.starts_with("ts="));
        assert!(
            text.ends_with(
                " level=warn event=peer-dropped peer=3 reason=\"backlog \\\"full\\\"\"\n"
            ),
            "{text}"
        );
    }
}
