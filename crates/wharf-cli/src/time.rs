//! Times as people read them: UTC, RFC 3339; durations.

use std::time::Duration;

/// `2026-11-28T05:41:18Z` from milliseconds since the Unix epoch.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "-".into())
}

/// `0.42s`, `12.3s`, `4m05s`, `1h02m`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 10_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
    }
}

/// The duration between two recorded times, if both are known.
pub(crate) fn between(start: Option<i64>, end: Option<i64>) -> Option<Duration> {
    let (s, e) = (start?, end?);
    Some(Duration::from_millis(u64::try_from(e - s).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_931_278_000), "2026-11-29T05:47:58Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_millis(420)), "0.42s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
    }
}
