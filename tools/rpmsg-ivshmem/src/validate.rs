//! Validation of what the user asks to send, shared by the command line and the stdin shell,
//! done before anything is sent (as the firmware's shell command does).

/// Parses a message count: a positive whole number that fits in 64 bits, digits only
/// (`abc`, `-1`, `0`, `1e3`, `+5` and ` 5` are refused).
pub fn parse_count(text: &[u8]) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid number of messages \"{}\": expected a whole number from 1 to {}",
            String::from_utf8_lossy(text),
            u64::MAX
        )
    };
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let mut value: u64 = 0;
    for d in text {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    if value == 0 {
        return Err(bad());
    }
    Ok(value)
}

/// Checks that `text` plus its terminating NUL fits a payload of `max_payload` bytes, and
/// that it contains no NUL itself (the receiver would cut it there).
pub fn check_text(text: &[u8], max_payload: usize) -> Result<(), String> {
    if text.contains(&0) {
        return Err("the string contains a NUL byte, which would end it on the wire".into());
    }
    let longest = max_payload.saturating_sub(1);
    if text.len() > longest {
        return Err(format!(
            "string too long: {} bytes, but at most {longest} fit in one message \
             ({max_payload}-byte payload, including the terminating NUL); nothing was sent",
            text.len()
        ));
    }
    Ok(())
}

/// The payload for `text`: its bytes and the terminating NUL that goes on the wire.
pub fn payload(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(text);
    out.push(0);
}

/// The payload of message `seq` in sequence-checking mode: `"<seq>:<text>"` and a NUL.
pub fn seq_payload(seq: u64, text: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{seq}:");
    out.extend_from_slice(text);
    out.push(0);
}

/// Bytes the sequence prefix of message `seq` takes (`"<seq>:"`).
pub fn seq_prefix_len(seq: u64) -> usize {
    let mut digits = 1;
    let mut v = seq;
    while v >= 10 {
        v /= 10;
        digits += 1;
    }
    digits + 1
}

/// The text of a received payload as C prints it with `%s`: up to the first NUL.
pub fn c_string(payload: &[u8]) -> &[u8] {
    match payload.iter().position(|b| *b == 0) {
        Some(n) => &payload[..n],
        None => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        assert_eq!(parse_count(b"10"), Ok(10));
        assert_eq!(parse_count(b"010"), Ok(10));
        assert_eq!(parse_count(b"10000000000000"), Ok(10_000_000_000_000));
        assert_eq!(parse_count(b"18446744073709551615"), Ok(u64::MAX));
        for bad in [
            &b"abc"[..],
            b"-1",
            b"0",
            b"000",
            b"1e3",
            b"+5",
            b" 5",
            b"5 ",
            b"",
            b"18446744073709551616",
            b"0x10",
        ] {
            let e = parse_count(bad).unwrap_err();
            assert!(e.starts_with("invalid number of messages"), "{e}");
        }
    }

    #[test]
    fn texts() {
        assert!(check_text(&[b'a'; 495], 496).is_ok());
        assert!(check_text(b"", 496).is_ok());
        let e = check_text(&[b'a'; 496], 496).unwrap_err();
        assert!(
            e.starts_with("string too long: 496 bytes, but at most 495"),
            "{e}"
        );
        assert!(check_text(b"a\0b", 496).is_err());
        let mut p = Vec::new();
        payload(b"hi", &mut p);
        assert_eq!(p, b"hi\0");
        seq_payload(42, b"hi", &mut p);
        assert_eq!(p, b"42:hi\0");
        assert_eq!(seq_prefix_len(42), 3);
        assert_eq!(seq_prefix_len(9), 2);
        assert_eq!(seq_prefix_len(10), 3);
        assert_eq!(c_string(b"ab\0cd"), b"ab");
        assert_eq!(c_string(b"ab"), b"ab");
    }
}
