//! The range of event times AER accepts: from the Unix epoch to the last millisecond of
//! the year 9999. Every time that crosses a boundary (ingest, a plugin's call, a stored
//! record) is checked against it or clamped into it, so arithmetic on two such times
//! (differences, windows, buckets) can never overflow.

/// The earliest event time, in milliseconds since the Unix epoch (1970-01-01T00:00:00Z).
pub const MIN_MS: i64 = 0;
/// The latest event time, in milliseconds since the Unix epoch (9999-12-31T23:59:59.999Z).
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Whether `ms` is an event time AER accepts.
pub fn in_range(ms: i64) -> bool {
    (MIN_MS..=MAX_MS).contains(&ms)
}

/// `ms` brought into the accepted range.
pub fn clamp(ms: i64) -> i64 {
    ms.clamp(MIN_MS, MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_ends_at_the_years_0_and_9999_and_clamps_the_extremes() {
        assert!(in_range(0) && in_range(MAX_MS));
        assert!(!in_range(-1) && !in_range(MAX_MS + 1));
        assert_eq!((clamp(i64::MIN), clamp(i64::MAX)), (MIN_MS, MAX_MS));
        // Any two accepted times are a safe difference apart.
        assert!(MAX_MS.checked_sub(MIN_MS).is_some() && MIN_MS.checked_sub(MAX_MS).is_some());
    }
}
