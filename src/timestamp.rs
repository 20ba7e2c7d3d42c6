//! Times as central writes them: RFC 3339, possibly with an offset (release
//! expiries, and the `issued_at` / `not_after` of signed messages).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    let utc = if sign > 0 {
        as_utc.checked_sub(shift)
    } else {
        as_utc.checked_add(shift)
    };
    // Events carry times as RFC 3339 UTC, which cannot write what an offset
    // pushes past 1970 or 9999.
    utc.filter(|t| writable(*t))
        .ok_or_else(|| format!("{text:?} is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"))
}

/// RFC 3339 UTC with milliseconds, as the contract requires. Total: a time
/// outside [`writable`] (a wildly wrong system clock; times from the broker
/// are refused before they get here) is written as the nearest end of that
/// range rather than panicking the task that renders it.
pub fn rfc3339(t: SystemTime) -> String {
    let (earliest, latest) = rfc3339_range();
    humantime::format_rfc3339_millis(t.clamp(earliest, latest)).to_string()
}

/// Whether [`rfc3339`] writes `t` as it is: from 1970 (the Unix epoch) to
/// the end of 9999 (four-digit years).
pub fn writable(t: SystemTime) -> bool {
    let (earliest, latest) = rfc3339_range();
    (earliest..=latest).contains(&t)
}

fn rfc3339_range() -> (SystemTime, SystemTime) {
    /// 9999-12-31T23:59:59.999Z.
    const LATEST_MS: u64 = 253_402_300_799_999;
    (UNIX_EPOCH, UNIX_EPOCH + Duration::from_millis(LATEST_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// humantime panics on both; a render must not.
    #[test]
    fn times_rfc3339_cannot_write_are_clamped_not_fatal() {
        let hour = Duration::from_secs(3600);
        assert_eq!(rfc3339(UNIX_EPOCH - hour), "1970-01-01T00:00:00.000Z");
        let far = UNIX_EPOCH + Duration::from_secs(253_402_300_800) + hour;
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
        assert!(!writable(far) && !writable(UNIX_EPOCH - hour) && writable(UNIX_EPOCH));
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,40}") {
            let _ = parse_rfc3339(&text);
        }
    }
}
