//! Parsing of sizes (`4M`, `1500K`, `0x1000`) and numbers on command lines.

/// Parses a size the way QEMU's `-l` does: a decimal number (a fraction is
/// allowed, `1.5M`) or a `0x` hexadecimal integer, optionally followed by a
/// binary suffix `B`, `K`, `M`, `G`, `T`, `P` or `E` (case-insensitive,
/// `1K` = 1024). The result must be a whole number of bytes. Anything else
/// in the text, a space included, is refused (as QEMU does for `1M `).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size '{text}' (expected e.g. 4194304, 4M, 1536K, 1G)");
    let t = text;
    if t.is_empty() {
        return Err(bad());
    }
    let (num, shift) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() && !t.starts_with("0x") && !t.starts_with("0X") => {
            let shift = match c.to_ascii_uppercase() {
                'B' => 0,
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                'P' => 50,
                'E' => 60,
                _ => return Err(bad()),
            };
            (&t[..t.len() - 1], shift)
        }
        _ => (t, 0u32),
    };
    if let Some(hex) = num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        if hex.is_empty() || shift != 0 {
            return Err(bad());
        }
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || frac_part.len() > 18
    {
        return Err(bad());
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| bad())?
    };
    let mut value = int.checked_shl(shift).ok_or_else(bad)?;
    if !frac_part.is_empty() {
        let frac: u128 = frac_part.parse().map_err(|_| bad())?;
        let denom = 10u128.pow(frac_part.len() as u32);
        let scaled = frac << shift;
        if scaled % denom != 0 {
            return Err(format!("size '{text}' is not a whole number of bytes"));
        }
        value += scaled / denom;
    }
    u64::try_from(value).map_err(|_| format!("size '{text}' is too large"))
}

/// Parses an unsigned integer: decimal, `0x` hexadecimal or `0o` octal.
pub fn parse_u64(text: &str) -> Result<u64, String> {
    let t = text;
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if let Some(o) = t.strip_prefix("0o") {
        u64::from_str_radix(o, 8)
    } else {
        t.parse()
    };
    r.map_err(|_| format!("invalid number '{text}'"))
}

/// Parses a file mode given in octal (`600`, `0660`, `0o640`).
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let t = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "invalid mode '{text}' (expected octal, e.g. 600 or 0660)"
        )),
    }
}

/// Rounds a shared-memory size up to the next power of two, as QEMU's
/// ivshmem-server does (`pow2ceil`). Returns `None` on overflow.
pub fn round_up_pow2(size: u64) -> Option<u64> {
    size.checked_next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4194304"), Ok(4 << 20));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("4m"), Ok(4 << 20));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("1500K"), Ok(1_536_000));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert_eq!(parse_size("512B"), Ok(512));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("4X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.1B").is_err());
        assert!(parse_size("99999999999E").is_err());
        for stray in ["1M ", " 1M", "1 M", "1M\n", "4MB", "0x10 ", "1,5M"] {
            assert!(parse_size(stray).is_err(), "{stray:?}");
        }
    }

    #[test]
    fn pow2() {
        assert_eq!(round_up_pow2(1_536_000), Some(2_097_152));
        assert_eq!(round_up_pow2(4 << 20), Some(4 << 20));
        assert_eq!(round_up_pow2(1), Some(1));
        assert_eq!(round_up_pow2(u64::MAX), None);
    }

    #[test]
    fn modes_and_numbers() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert!(parse_mode("800").is_err());
        assert!(parse_mode("77777").is_err());
        assert_eq!(parse_u64("0x10"), Ok(16));
        assert_eq!(parse_u64("10"), Ok(10));
        assert!(parse_u64("x").is_err());
        assert!(parse_u64("2 ").is_err());
        assert!(parse_mode(" 600").is_err());
    }
}
