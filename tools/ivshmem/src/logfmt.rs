//! The server's log lines: logfmt (`key=value`), one line per event, e.g.
//! `ts=2024-05-01T10:00:00.123Z level=info event=peer-connected peer=3 vectors=2 peers=2`.
//! The `event` key is stable; the README lists the events.
//!
//! The server logs through the `log` facade (the event is the message, the
//! fields are its key-values); [`init`] installs `fern` as the process
//! logger with this format, for the binaries.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::time::SystemTime;

use log::kv::{self, Key, Source, Value, VisitSource};
use log::{Level, LevelFilter};

/// Installs the process logger: records up to `level` as logfmt lines, to
/// `file` (appended, flushed per line) or else to standard error.
pub fn init(level: LevelFilter, file: Option<File>) -> Result<(), log::SetLoggerError> {
    let dispatch = fern::Dispatch::new()
        .level(level)
        .format(|out, message, record| {
            out.finish(format_args!(
                "{}",
                line(
                    SystemTime::now(),
                    record.level(),
                    message,
                    record.key_values()
                )
            ))
        });
    match file {
        Some(file) => dispatch.chain(file),
        None => dispatch.chain(std::io::stderr()),
    }
    .apply()
}

/// One log line, without its newline.
pub fn line(
    ts: SystemTime,
    level: Level,
    event: &fmt::Arguments<'_>,
    fields: &dyn Source,
) -> String {
    let mut line = format!(
        "ts={} level={} event={event}",
        humantime::format_rfc3339_millis(ts),
        level.as_str().to_ascii_lowercase(),
    );
    let _ = fields.visit(&mut Fields(&mut line));
    line
}

/// Appends ` key=value` for every field.
struct Fields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let _ = write!(self.0, " {key}=");
        push_value(self.0, &value.to_string());
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn format() {
        let ts = UNIX_EPOCH + Duration::from_millis(1_709_164_800_123); // 2024-02-29
        let fields = [("peer", "3"), ("reason", "backlog \"full\""), ("empty", "")];
        let text = line(ts, Level::Warn, &format_args!("peer-dropped"), &fields);
        assert_eq!(
            text,
            "ts=2024-02-29T00:00:00.123Z level=warn event=peer-dropped peer=3 \
             reason=\"backlog \\\"full\\\"\" empty=\"\""
        );
    }
}
