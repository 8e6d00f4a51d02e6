//! Time as SoulChat stores and shows it: integer milliseconds since the Unix epoch in every
//! table and message, RFC 3339 (UTC, milliseconds) in JSON.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `2026-11-29T07:52:39.123Z` for a time in milliseconds (before 1970 shows as the epoch).
pub fn rfc3339_ms(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// A time given as RFC 3339 in UTC (`2026-11-29T07:52:39Z`, fractions allowed), in milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339(text.trim()).ok()?;
    i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_millis() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(-5), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_rfc3339_ms("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
        assert_eq!(parse_rfc3339_ms("tomorrow"), None);
    }
}
