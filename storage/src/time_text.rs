//! Timestamps are stored as RFC 3339 UTC text with a fixed width, so that
//! comparing them as text (in SQL `ORDER BY` and `<`) orders them in time.

use time::{OffsetDateTime, UtcOffset, format_description::FormatItem, macros::format_description};

const FIXED_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats `at` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC.
pub fn format_timestamp(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(FIXED_UTC)
        // INVARIANT: every field in FIXED_UTC exists on an OffsetDateTime, so
        // formatting can only fail for years outside 0..=9999.
        .unwrap_or_else(|_| String::from("9999-12-31T23:59:59.999999Z"))
}

/// Parses any RFC 3339 timestamp (the stored form is one of them).
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn fixed_width_text_orders_like_time() {
        let earlier = format_timestamp(datetime!(2026-01-02 03:04:05.1 UTC));
        let later = format_timestamp(datetime!(2026-01-02 03:04:05.25 +01:00));
        assert_eq!(earlier, "2026-01-02T03:04:05.100000Z");
        assert_eq!(later, "2026-01-02T02:04:05.250000Z");
        assert!(later < earlier, "an offset is normalised to UTC before comparing");
        assert_eq!(parse_timestamp(&earlier).ok(), Some(datetime!(2026-01-02 03:04:05.1 UTC)));
    }
}
