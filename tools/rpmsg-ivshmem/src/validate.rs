//! The command line's checks of what the user asks to send: [`rpmsg_app::command`]'s (the
//! firmware's shell command makes the same), with their texts as `String`s.

use rpmsg_app::command::{self, ArgError};

fn text(e: ArgError<'_>) -> String {
    let mut out = Vec::new();
    e.write(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a message count: a positive whole number that fits in 64 bits, digits only.
pub fn parse_count(count: &[u8]) -> Result<u64, String> {
    command::parse_count(count).map_err(text)
}

/// Checks that `text` plus its terminating NUL fits a payload of `max_payload` bytes, and
/// that it contains no NUL itself (the receiver would cut it there).
pub fn check_text(text_: &[u8], max_payload: usize) -> Result<(), String> {
    command::check_text(text_, max_payload).map_err(text)
}

/// Bytes the sequence prefix of message `seq` takes (`"<seq>:"`).
pub fn seq_prefix_len(seq: u64) -> usize {
    let mut digits = [0u8; 20];
    rpmsg_app::decimal(seq, &mut digits).len() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_as_strings() {
        assert_eq!(parse_count(b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_count(b"-1").unwrap_err(),
            "invalid number of messages \"-1\": expected a whole number from 1 to \
             18446744073709551615"
        );
        assert!(check_text(&[b'a'; 495], 496).is_ok());
        assert!(check_text(&[b'a'; 496], 496)
            .unwrap_err()
            .starts_with("string too long: 496 bytes, but at most 495"));
        assert!(check_text(b"a\0b", 496).unwrap_err().contains("NUL"));
        assert_eq!(seq_prefix_len(42), 3);
        assert_eq!(seq_prefix_len(9), 2);
        assert_eq!(seq_prefix_len(10), 3);
    }
}
