//! Cron expressions of `schedule`: 5 fields (minute hour day-of-month month day-of-week),
//! optionally after `CRON_TZ=Zone ` or `TZ=Zone `, or a shorthand (`@daily`, ...), on the
//! croner crate.
//!
//! Day of month and day of week follow Vixie cron: when both are restricted, a day matches
//! either. Times are in the expression's zone, else the `CRON_TZ` or `TZ` environment
//! variable, else the system's zone. Across daylight-saving changes (croner's rules, which
//! are Vixie cron's): a time that does not exist on the day the clocks go forward runs once,
//! at the first minute after the gap; a time that comes twice on the day they go back runs
//! once, at its first occurrence. Expressions with `*` or a step in the minute or hour run
//! at each of their minutes that exist, in real time.

use std::collections::HashMap;

use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Why a text is not a cron expression, or names no zone that exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

impl From<String> for CronError {
    fn from(reason: String) -> Self {
        Self(reason)
    }
}

impl From<&str> for CronError {
    fn from(reason: &str) -> Self {
        Self(reason.to_owned())
    }
}

#[derive(Debug, Clone)]
pub struct Cron {
    /// The time zone the expression names, if any.
    pub zone: Option<String>,
    pattern: croner::Cron,
}

/// Parsed expressions by their text: the same few expressions are read again and again
/// (every DAG file read, every page that shows the next run), and parsing one costs more
/// than finding its next time. Bounded: emptied when it grows past `CACHE_MAX`.
static CACHE: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Result<Cron, CronError>>>> =
    std::sync::LazyLock::new(Default::default);
const CACHE_MAX: usize = 4096;

impl Cron {
    pub fn parse(text: &str) -> Result<Self, CronError> {
        if let Ok(cache) = CACHE.lock()
            && let Some(found) = cache.get(text)
        {
            return found.clone();
        }
        let parsed = Self::parse_uncached(text);
        if let Ok(mut cache) = CACHE.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(text.to_owned(), parsed.clone());
        }
        parsed
    }

    fn parse_uncached(text: &str) -> Result<Self, CronError> {
        let mut expr = text.trim();
        let mut zone = None;
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(rest) = expr.strip_prefix(prefix) {
                let (z, rest) = rest
                    .split_once(' ')
                    .ok_or("a time zone must be followed by the expression")?;
                if z.is_empty() {
                    return Err("the time zone is empty".into());
                }
                zone = Some(z.to_owned());
                expr = rest.trim();
            }
        }
        if let Some(z) = &zone {
            zone_named(z)?;
        }
        if expr.starts_with('@') {
            let known = [
                "@yearly",
                "@annually",
                "@monthly",
                "@weekly",
                "@daily",
                "@midnight",
                "@hourly",
            ];
            if !known.iter().any(|k| k.eq_ignore_ascii_case(expr)) {
                return Err(
                    format!("unknown shorthand `{expr}` (known: {})", known.join(", ")).into(),
                );
            }
        } else {
            let fields = expr.split_whitespace().count();
            if fields != 5 {
                return Err(format!("expected 5 fields, found {fields}").into());
            }
        }
        let pattern = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| CronError(field_problem(expr).unwrap_or_else(|| reason(&e))))?;
        Ok(Self { zone, pattern })
    }

    /// The zone the expression's times are in: its own, else the installation's
    /// ([`set_default_zone`]), else `CRON_TZ` or `TZ`, else the system's.
    pub fn time_zone(&self) -> Result<TimeZone, CronError> {
        let configured = DEFAULT_ZONE
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let name = self.zone.clone().or(configured).or_else(|| {
            ["CRON_TZ", "TZ"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        });
        match name {
            Some(n) => zone_named(&n),
            None => Ok(TimeZone::system()),
        }
    }

    /// The first time strictly after `after` that the expression names.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let tz = self.time_zone().ok()?;
        self.pattern
            .find_next_occurrence(&after.to_zoned(tz), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last time strictly before `before` that the expression names.
    pub fn prev_before(&self, before: Timestamp) -> Option<Timestamp> {
        let tz = self.time_zone().ok()?;
        self.pattern
            .find_previous_occurrence(&before.to_zoned(tz), false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// Whether the minute that starts at `slot` is a time of the expression.
    pub fn fires_at(&self, slot: Timestamp) -> bool {
        let Ok(just_before) = slot.checked_sub(jiff::SignedDuration::from_secs(1)) else {
            return false;
        };
        self.next_after(just_before) == Some(slot)
    }
}

static DEFAULT_ZONE: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Sets the zone of expressions that name none (an installation's `tz`); an unknown zone
/// is an error.
pub fn set_default_zone(name: Option<String>) -> Result<(), CronError> {
    if let Some(n) = &name {
        zone_named(n)?;
    }
    *DEFAULT_ZONE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    Ok(())
}

fn zone_named(name: &str) -> Result<TimeZone, CronError> {
    TimeZone::get(name.trim_start_matches(':'))
        .map_err(|e| CronError(format!("unknown time zone `{name}`: {e}")))
}

/// Which field of a 5-field expression holds a number it does not take, and what it takes.
fn field_problem(expr: &str) -> Option<String> {
    const FIELDS: [(&str, u32, u32, &str); 5] = [
        ("minute", 0, 59, "0-59"),
        ("hour", 0, 23, "0-23"),
        ("day of month", 1, 31, "1-31"),
        ("month", 1, 12, "1-12 or jan-dec"),
        ("day of week", 0, 7, "0-7 or sun-sat"),
    ];
    for (text, (what, lo, hi, takes)) in expr.split_whitespace().zip(FIELDS) {
        for part in text.split(',') {
            let (range, step) = part.split_once('/').unwrap_or((part, ""));
            if !step.is_empty() && step.parse::<u32>().map_or(true, |s| s == 0) {
                return Some(format!("the {what} field has a bad step `/{step}`"));
            }
            for value in range.split('-') {
                if let Ok(v) = value.parse::<u32>()
                    && !(lo..=hi).contains(&v)
                {
                    return Some(format!("the {what} field takes {takes}, found `{value}`"));
                }
            }
        }
    }
    None
}

/// croner's message as a lowercase fragment.
fn reason(e: &croner::errors::CronError) -> String {
    let text = e.to_string();
    let text = ["Component error: ", "Invalid pattern: "]
        .iter()
        .fold(text.as_str(), |t, p| t.strip_prefix(p).unwrap_or(t))
        .trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "not a cron expression".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    fn next(expr: &str, after: &str) -> Option<Timestamp> {
        Cron::parse(expr).expect("parses").next_after(ts(after))
    }

    #[test]
    fn fields_ranges_steps_names_and_shorthands() {
        assert_eq!(
            next("CRON_TZ=UTC */15 9-17 * * mon-fri", "2026-11-30T09:20:00Z"),
            Some(ts("2026-11-30T09:30:00Z"))
        );
        assert_eq!(
            next("CRON_TZ=UTC */15 9-17 * * mon-fri", "2026-11-28T10:00:00Z"),
            Some(ts("2026-11-30T09:00:00Z")),
            "Saturday to Monday"
        );
        assert_eq!(
            next("CRON_TZ=UTC @hourly", "2026-11-28T10:07:00Z"),
            Some(ts("2026-11-28T11:00:00Z"))
        );
        assert_eq!(
            next("CRON_TZ=UTC 0 0 29 2 *", "2026-11-28T10:07:00Z"),
            Some(ts("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            next("CRON_TZ=Asia/Tokyo 0 9 * * *", "2026-11-28T10:07:00Z"),
            Some(ts("2026-11-29T00:00:00Z")),
            "09:00 in Tokyo is 00:00 UTC"
        );
        assert_eq!(
            next("TZ=UTC 5 10 * * *", "2026-11-28T10:05:00Z"),
            Some(ts("2026-11-29T10:05:00Z")),
            "strictly after"
        );
        assert_eq!(
            next("CRON_TZ=UTC 0 0 * * 7", "2026-11-28T10:00:00Z"),
            Some(ts("2026-11-29T00:00:00Z")),
            "7 is Sunday"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_given() {
        // The 13th, or a Friday: from Wednesday 2026-11-11, Friday the 13th comes first,
        // and from Saturday the 14th, Friday the 20th.
        assert_eq!(
            next("CRON_TZ=UTC 0 0 13 * fri", "2026-11-11T12:00:00Z"),
            Some(ts("2026-11-13T00:00:00Z"))
        );
        assert_eq!(
            next("CRON_TZ=UTC 0 0 13 * fri", "2026-11-14T12:00:00Z"),
            Some(ts("2026-11-20T00:00:00Z"))
        );
    }

    #[test]
    fn a_time_the_clocks_skip_runs_once_after_the_gap() {
        // Europe/Berlin goes from 02:00 to 03:00 on 2026-03-29.
        let c = Cron::parse("CRON_TZ=Europe/Berlin 30 2 * * *").expect("parses");
        let runs: Vec<Timestamp> =
            std::iter::successors(c.next_after(ts("2026-03-27T12:00:00Z")), |t| {
                c.next_after(*t)
            })
            .take(3)
            .collect();
        assert_eq!(
            runs,
            [
                ts("2026-03-28T01:30:00Z"), // 02:30 CET
                ts("2026-03-29T01:00:00Z"), // 03:00 CEST, the first minute after the gap
                ts("2026-03-30T00:30:00Z"), // 02:30 CEST
            ]
        );
        assert!(c.fires_at(ts("2026-03-29T01:00:00Z")));
    }

    #[test]
    fn a_time_the_clocks_repeat_runs_once() {
        // Europe/Berlin goes from 03:00 back to 02:00 on 2026-10-25: 02:30 comes twice.
        let c = Cron::parse("CRON_TZ=Europe/Berlin 30 2 * * *").expect("parses");
        assert!(c.fires_at(ts("2026-10-25T00:30:00Z")), "02:30 CEST");
        assert!(
            !c.fires_at(ts("2026-10-25T01:30:00Z")),
            "02:30 CET, the second time"
        );
        assert_eq!(
            c.next_after(ts("2026-10-25T00:30:00Z")),
            Some(ts("2026-10-26T01:30:00Z"))
        );
        // Every 30 minutes runs in each of the repeated half hours: they are real times.
        let every = Cron::parse("CRON_TZ=Europe/Berlin */30 * * * *").expect("parses");
        assert!(every.fires_at(ts("2026-10-25T00:30:00Z")));
        assert!(every.fires_at(ts("2026-10-25T01:30:00Z")));
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "* * *",
            "60 * * * *",
            "* * * * 8",
            "*/0 * * * *",
            "@often",
            "CRON_TZ=Nowhere/City 0 0 * * *",
            "0 0 * * * *",
        ] {
            let e = Cron::parse(bad).expect_err(bad).to_string();
            assert!(
                !e.is_empty() && e.chars().next().is_some_and(char::is_lowercase),
                "{bad}: {e}"
            );
        }
    }
}
