//! Timestamp and number parsing for cells and JSON values: RFC 3339 or epoch seconds to epoch
//! milliseconds, and numeric cells with empty meaning missing.

use chrono::DateTime;

use super::{Problem, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};

/// Parses a timestamp into UTC epoch milliseconds: RFC 3339 with an offset
/// (`2025-03-04T09:15:00Z`, `2025-03-04T10:15:00.250+01:00`) or epoch seconds, integer or
/// decimal (`1741079700`, `1741079700.25`). Surrounding whitespace is ignored; precision below a
/// millisecond is truncated toward the past; times must lie in years 0000–9999.
pub fn parse_timestamp(text: &str) -> Result<i64, Problem> {
    let s = text.trim();
    let ms = if looks_like_epoch(s) {
        parse_epoch_seconds(s)
    } else {
        DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
    };
    match ms {
        Some(ms) if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) => Ok(ms),
        Some(_) => Err(Problem::TimestampRange(text.to_string())),
        None => Err(Problem::Timestamp(text.to_string())),
    }
}

fn looks_like_epoch(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `[-+]digits[.digits]` seconds → milliseconds, floored; `None` if malformed or huge.
fn parse_epoch_seconds(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || int.len() > 15 || frac.contains('.') || (body.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut nanos: i128 = int.parse::<i128>().ok()? * 1_000_000_000;
    let mut scale = 100_000_000i128;
    for b in frac.bytes() {
        nanos += i128::from(b - b'0') * scale;
        scale /= 10;
    }
    if negative {
        nanos = -nanos;
    }
    i64::try_from(nanos.div_euclid(1_000_000)).ok()
}

/// Parses a numeric cell: empty (after trimming) is missing (NaN); NaN and infinities are errors.
pub fn parse_number(text: &str) -> Result<f64, Problem> {
    let s = text.trim();
    if s.is_empty() {
        return Ok(f64::NAN);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(Problem::NonFinite(text.to_string())),
        Err(_) => Err(Problem::Number(text.to_string())),
    }
}
