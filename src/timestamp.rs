//! Times as central writes them: RFC 3339, possibly with an offset (release
//! expiries, and the `issued_at` / `not_after` of signed messages).

use std::time::{Duration, SystemTime};

/// RFC 3339: `2026-12-01T00:00:00Z`, with fractional seconds or a `+01:00`
/// style offset as central's clock may write them.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time");
    if let Ok(t) = humantime::parse_rfc3339(text) {
        return Ok(t);
    }
    // An offset: parse the local time as if UTC, then shift.
    let split = text.len().checked_sub(6).ok_or_else(bad)?;
    // Checked: six bytes from the end may fall inside a character.
    let (local, offset) = text.split_at_checked(split).ok_or_else(bad)?;
    let sign = match offset.as_bytes()[0] {
        b'+' => 1i64,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let (h, m) = offset[1..].split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    let as_utc = humantime::parse_rfc3339(&format!("{local}Z")).map_err(|_| bad())?;
    let shift = Duration::from_secs(h * 3600 + m * 60);
    // 12:00+02:00 is 10:00Z.
    Ok(if sign > 0 {
        as_utc - shift
    } else {
        as_utc + shift
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
