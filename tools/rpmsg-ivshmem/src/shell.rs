//! The host's stdin command language: the firmware shell's `rpmsg_ivshmem send <string>
//! <number of messages>`, `rpmsg_ivshmem bench [payload] [count]` and `status`, split into words the way Zephyr's shell does it.
//!
//! Zephyr's rules (`subsys/shell/shell_utils.c`, `make_argv`), reimplemented:
//!
//! * words are separated by white space;
//! * outside quotes, `\` makes the next character literal (also a space or a quote);
//! * `"` or `'` starts a quoted part that ends at the same quote character; quoted parts
//!   and unquoted text next to each other form one word (`a" b"c` is `a bc`);
//! * inside quotes, `\` followed by the quote character is that character, `\0` followed
//!   by one to three octal digits and `\x` followed by one or two hex digits are that byte;
//!   any other `\` is kept as it is;
//! * an unterminated quote is an error (`not terminated: "`).

/// Zephyr's `isspace` for the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Value of up to `max` digits of `radix` starting at `line[start]`, as Zephyr computes it
/// (in a `uint8_t`, so larger values wrap): `(value, digits used)`.
fn escaped_byte(line: &[u8], start: usize, max: usize, radix: u32) -> (u8, usize) {
    let mut value: u8 = 0;
    let mut used = 0;
    while used < max {
        let Some(d) = line
            .get(start + used)
            .and_then(|c| char::from(*c).to_digit(radix))
        else {
            break;
        };
        let shift = if radix == 8 { 3 } else { 4 };
        value = (value << shift) | d as u8;
        used += 1;
    }
    (value, used)
}

/// Splits a command line into words. Errors with the quote character when a quote is not
/// terminated.
pub fn split_words(line: &[u8]) -> Result<Vec<Vec<u8>>, u8> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        if is_space(line[i]) {
            i += 1;
            continue;
        }
        let mut word = Vec::new();
        let mut quote: Option<u8> = None;
        while i < line.len() {
            let c = line[i];
            match quote {
                None => match c {
                    b'\\' => {
                        if let Some(&next) = line.get(i + 1) {
                            word.push(next);
                        }
                        i += 2;
                    }
                    b'"' | b'\'' => {
                        quote = Some(c);
                        i += 1;
                    }
                    c if is_space(c) => break,
                    c => {
                        word.push(c);
                        i += 1;
                    }
                },
                Some(q) if c == q => {
                    quote = None;
                    i += 1;
                }
                Some(q) if c == b'\\' => {
                    let next = line.get(i + 1).copied();
                    if next == Some(q) {
                        word.push(q);
                        i += 2;
                        continue;
                    }
                    let (radix, max) = match next {
                        Some(b'0') => (8, 3),
                        Some(b'x') => (16, 2),
                        _ => (0, 0),
                    };
                    if radix != 0 {
                        let (value, used) = escaped_byte(line, i + 2, max, radix);
                        if used > 0 {
                            word.push(value);
                            i += 2 + used;
                            continue;
                        }
                    }
                    word.push(c);
                    i += 1;
                }
                Some(_) => {
                    word.push(c);
                    i += 1;
                }
            }
        }
        if let Some(q) = quote {
            return Err(q);
        }
        words.push(word);
    }
    Ok(words)
}

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Blank line.
    Empty,
    /// `rpmsg_ivshmem send <string> <count>`: the string and the count, not yet validated.
    Send {
        /// The string to send (without the NUL that goes on the wire).
        text: Vec<u8>,
        /// The count as typed.
        count: Vec<u8>,
    },
    /// `send` with the wrong number of arguments.
    SendWrongCount,
    /// `rpmsg_ivshmem bench [payload] [count]`: the arguments as typed.
    Bench {
        /// Payload size.
        payload: Option<Vec<u8>>,
        /// Round trips.
        count: Option<Vec<u8>>,
    },
    /// `bench` with more than two arguments.
    BenchWrongCount,
    /// `status` or `rpmsg_ivshmem status`.
    Status,
    /// `help`, `rpmsg_ivshmem`, `rpmsg_ivshmem help` or `-h`.
    Help,
    /// A command that does not exist (its first word(s)).
    NotFound(String),
    /// A quote was not terminated.
    Unterminated(u8),
}

/// Parses one line of input.
pub fn parse_line(line: &[u8]) -> Command {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(q) => return Command::Unterminated(q),
    };
    let w: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
    match w.as_slice() {
        [] => Command::Empty,
        [b"status"] | [b"rpmsg_ivshmem", b"status"] => Command::Status,
        [b"help"] | [b"rpmsg_ivshmem"] | [b"rpmsg_ivshmem", b"help" | b"-h" | b"--help"] => {
            Command::Help
        }
        [b"rpmsg_ivshmem", b"send", text, count] => Command::Send {
            text: text.to_vec(),
            count: count.to_vec(),
        },
        [b"rpmsg_ivshmem", b"send", ..] => Command::SendWrongCount,
        [b"rpmsg_ivshmem", b"bench", args @ ..] if args.len() <= 2 => Command::Bench {
            payload: args.first().map(|a| a.to_vec()),
            count: args.get(1).map(|a| a.to_vec()),
        },
        [b"rpmsg_ivshmem", b"bench", ..] => Command::BenchWrongCount,
        [b"rpmsg_ivshmem", sub, ..] => {
            Command::NotFound(format!("rpmsg_ivshmem {}", String::from_utf8_lossy(sub)))
        }
        [first, ..] => Command::NotFound(String::from_utf8_lossy(first).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_words(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn splits_like_zephyr() {
        assert_eq!(words("  a  b\tc "), ["a", "b", "c"]);
        assert_eq!(
            words(r#"rpmsg_ivshmem send "RPMsg over IVSHMEM" 10"#),
            ["rpmsg_ivshmem", "send", "RPMsg over IVSHMEM", "10"]
        );
        assert_eq!(words(r#"'single quoted' x"#), ["single quoted", "x"]);
        assert_eq!(words(r#"a" b"c d"#), ["a bc", "d"]);
        assert_eq!(words(r#"a\ b \"q"#), ["a b", "\"q"]);
        assert_eq!(words(r#""say \"hi\"""#), ["say \"hi\""]);
        assert_eq!(words(r#"'it\'s'"#), ["it's"]);
        assert_eq!(words(r#""\x41\x4a\x4" "\0101\07""#), ["AJ\u{4}", "A\u{7}"]);
        assert_eq!(words(r#""\n\0 \x""#), ["\\n\\0 \\x"]);
        assert_eq!(words(r#""" x"#), ["", "x"]);
        assert_eq!(words(r#"'"' "'""#), ["\"", "'"]);
        assert_eq!(words("trailing\\"), ["trailing"]);
        assert!(words("").is_empty());
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        assert_eq!(split_words(br#"send "abc"#), Err(b'"'));
        assert_eq!(split_words(b"send 'abc"), Err(b'\''));
        assert_eq!(parse_line(b"x \"y"), Command::Unterminated(b'"'));
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse_line(b""), Command::Empty);
        assert_eq!(parse_line(b"   "), Command::Empty);
        assert_eq!(parse_line(b"status"), Command::Status);
        assert_eq!(parse_line(b"rpmsg_ivshmem status"), Command::Status);
        assert_eq!(parse_line(b"rpmsg_ivshmem"), Command::Help);
        assert_eq!(
            parse_line(br#"rpmsg_ivshmem send "" 1"#),
            Command::Send {
                text: vec![],
                count: b"1".to_vec()
            }
        );
        assert_eq!(parse_line(b"rpmsg_ivshmem send"), Command::SendWrongCount);
        assert_eq!(
            parse_line(b"rpmsg_ivshmem bench 16"),
            Command::Bench {
                payload: Some(b"16".to_vec()),
                count: None
            }
        );
        assert_eq!(
            parse_line(b"rpmsg_ivshmem bench 1 2 3"),
            Command::BenchWrongCount
        );
        assert_eq!(parse_line(b"rpmsg_ivshmem send a"), Command::SendWrongCount);
        assert_eq!(
            parse_line(b"rpmsg_ivshmem send a 1 2"),
            Command::SendWrongCount
        );
        assert_eq!(
            parse_line(b"send a 1"),
            Command::NotFound("send".to_string())
        );
        assert_eq!(
            parse_line(b"rpmsg_ivshmem foo"),
            Command::NotFound("rpmsg_ivshmem foo".to_string())
        );
    }
}
