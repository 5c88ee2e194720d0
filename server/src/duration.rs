//! Human durations in policy files and flags: `90s`, `30m`, `8h`, `7d`, or a combination
//! such as `1h30m`.

/// Parses a duration into microseconds. Errors name what was wrong.
pub fn parse_us(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration (write e.g. 30s, 10m, 8h or 7d)".into());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1_000_000,
            'm' => 60 * 1_000_000,
            'h' => 3_600 * 1_000_000,
            'd' => 86_400 * 1_000_000,
            _ => {
                return Err(format!(
                    "duration {text:?}: unknown unit {c:?} (use s, m, h or d)"
                ));
            }
        };
        if digits.is_empty() {
            return Err(format!("duration {text:?}: unit {c:?} without a number"));
        }
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("duration {text:?} is too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "duration {text:?}: {digits} has no unit (use s, m, h or d)"
        ));
    }
    if total == 0 {
        return Err(format!("duration {text:?} is zero"));
    }
    Ok(total)
}

/// Parses a duration into a [`std::time::Duration`].
pub fn parse(text: &str) -> Result<std::time::Duration, String> {
    parse_us(text).map(|us| std::time::Duration::from_micros(us.unsigned_abs()))
}

/// Renders microseconds the way [`parse_us`] reads them (largest whole units).
pub fn format_us(us: i64) -> String {
    let mut secs = us / 1_000_000;
    if secs <= 0 {
        return format!("{}ms", us / 1000);
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(parse_us("30s"), Ok(30_000_000));
        assert_eq!(parse_us("1h30m"), Ok(5_400_000_000));
        assert_eq!(parse_us("7d"), Ok(7 * 86_400_000_000));
        assert_eq!(format_us(5_400_000_000), "1h30m");
        for bad in ["", "10", "m", "5x", "0s", "99999999999999999999d"] {
            assert!(parse_us(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
