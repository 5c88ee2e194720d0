//! `--since`: an RFC 3339 time or a duration back from now.

/// Parses `--since`: RFC 3339 (`2026-11-20T00:00:00Z`, fractions and `+01:00` offsets
/// accepted, or a bare date for midnight UTC) or a duration back from `now_us` (`24h`,
/// `7d`). Returns microseconds since the epoch.
pub fn parse_since(text: &str, now_us: i64) -> Result<i64, String> {
    let text = text.trim();
    if text.starts_with(|c: char| c.is_ascii_digit()) && text.contains('-') {
        return parse_rfc3339(text);
    }
    let back = crate::duration::parse_us(text)
        .map_err(|e| format!("{e}; or give a time such as 2026-11-20T00:00:00Z"))?;
    Ok(now_us.saturating_sub(back))
}

fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!("{text:?} is not an RFC 3339 time such as 2026-11-20T00:00:00Z ({why})")
    };
    let num = |s: &str, what: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad(&format!("bad {what}")));
        }
        s.parse::<i64>().map_err(|_| bad(&format!("bad {what}")))
    };
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "00:00:00Z"),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the date is not YYYY-MM-DD"));
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad("the date is not YYYY-MM-DD"));
    }
    let (year, month, day) = (num(y, "year")?, num(m, "month")?, num(d, "day")?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // Split the zone off: Z, or +HH:MM / -HH:MM.
    let (clock, offset_secs) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let Some((h, m)) = zone[1..].split_once(':') else {
            return Err(bad("the offset is not +HH:MM"));
        };
        let (h, m) = (num(h, "offset")?, num(m, "offset")?);
        if h > 23 || m > 59 {
            return Err(bad("bad offset"));
        }
        (clock, sign * (h * 3600 + m * 60))
    } else {
        return Err(bad("no time zone: end with Z for UTC"));
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (clock, ""),
    };
    let mut fields = hms.split(':');
    let (Some(h), Some(mi), Some(s), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("the time is not HH:MM:SS"));
    };
    let (hour, minute, second) = (num(h, "hour")?, num(mi, "minute")?, num(s, "second")?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time"));
    }
    let micros = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        num(&digits, "fraction")?
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    Ok(secs * 1_000_000 + micros)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
