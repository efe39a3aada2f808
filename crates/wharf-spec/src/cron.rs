//! Cron expressions of `schedule`: 5 fields (minute hour day-of-month month day-of-week),
//! optionally after `CRON_TZ=Zone ` or `TZ=Zone `, or a shorthand (`@daily`, ...).
//!
//! Day of month and day of week follow Vixie cron: when both are restricted (neither
//! starts with `*` or `?`), a day matches either; otherwise both must match.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// The time zone the expression names, if any.
    pub zone: Option<String>,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_any: bool,
    weekdays_any: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
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
        let expanded;
        if let Some(name) = expr.strip_prefix('@') {
            expanded = match name {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                _ => return Err(format!("unknown shorthand `@{name}`")),
            };
            expr = expanded;
        }
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("expected 5 fields, found {}", fields.len()));
        }
        let minutes = field(fields[0], "minute", 0, 59, &[], 0)?;
        let hours = field(fields[1], "hour", 0, 23, &[], 0)?;
        let days = field(fields[2], "day of month", 1, 31, &[], 0)?;
        let months = field(fields[3], "month", 1, 12, MONTHS, 1)?;
        let mut weekdays = field(fields[4], "day of week", 0, 7, DAYS, 0)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1; // 7 is Sunday too
        }
        let any = |f: &str| f.starts_with('*') || f.starts_with('?');
        Ok(Self {
            zone,
            minutes,
            hours: u32::try_from(hours).unwrap_or(0),
            days: u32::try_from(days).unwrap_or(0),
            months: u16::try_from(months).unwrap_or(0),
            weekdays: u8::try_from(weekdays & 0x7f).unwrap_or(0),
            days_any: any(fields[2]),
            weekdays_any: any(fields[4]),
        })
    }

    /// Whether a minute matches: `month` 1-12, `day` 1-31, `weekday` 0-6 (Sunday 0).
    pub fn matches(&self, minute: u32, hour: u32, day: u32, month: u32, weekday: u32) -> bool {
        self.minutes & (1 << minute) != 0
            && self.hours & (1 << hour) != 0
            && self.months & (1 << month) != 0
            && self.day_matches(day, weekday)
    }

    /// Whether a day matches (the day-of-month and day-of-week fields together).
    pub fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        if self.days_any || self.weekdays_any {
            dom && dow
        } else {
            dom || dow
        }
    }

    pub fn month_matches(&self, month: u32) -> bool {
        self.months & (1 << month) != 0
    }

    pub fn hour_matches(&self, hour: u32) -> bool {
        self.hours & (1 << hour) != 0
    }

    pub fn minute_matches(&self, minute: u32) -> bool {
        self.minutes & (1 << minute) != 0
    }
}

/// One field as a bit set of the values it allows.
fn field(
    text: &str,
    what: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    base: u32,
) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(u32::try_from(i).unwrap_or(0) + base);
        }
        match s.parse::<u32>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(format!("the {what} field takes {lo}-{hi}, found `{s}`")),
        }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(s) if s > 0 => (range, s),
                _ => return Err(format!("the {what} field has a bad step `/{step}`")),
            },
            None => (part, 1),
        };
        let (a, b) = if range == "*" || range == "?" {
            if range == "?" && !matches!(what, "day of month" | "day of week") {
                return Err(format!("`?` is not allowed in the {what} field"));
            }
            (lo, hi)
        } else {
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a)?, value(b)?);
                    if a > b {
                        return Err(format!("the {what} range `{range}` runs backwards"));
                    }
                    (a, b)
                }
                // `5/15`: from 5 to the end, every 15.
                None if part.contains('/') => (value(range)?, hi),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            }
        };
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_ranges_steps_and_names() {
        let c = Cron::parse("*/15 9-17 * * mon-fri").expect("parses");
        assert!(c.matches(30, 9, 2, 3, 1));
        assert!(!c.matches(31, 9, 2, 3, 1));
        assert!(!c.matches(0, 18, 2, 3, 1));
        assert!(!c.matches(0, 9, 2, 3, 0), "Sunday");
        let c = Cron::parse("CRON_TZ=Asia/Tokyo 0 9 1 jan *").expect("parses");
        assert_eq!(c.zone.as_deref(), Some("Asia/Tokyo"));
        assert!(c.matches(0, 9, 1, 1, 3) && !c.matches(0, 9, 1, 2, 3));
        let c = Cron::parse("@hourly").expect("parses");
        assert!(c.matches(0, 5, 10, 10, 2) && !c.matches(1, 5, 10, 10, 2));
        let c = Cron::parse("5/20 * * * 7").expect("parses");
        assert!(c.matches(45, 0, 1, 1, 0) && !c.matches(0, 0, 1, 1, 0));
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_given() {
        let c = Cron::parse("0 0 13 * fri").expect("parses");
        assert!(c.matches(0, 0, 13, 5, 2), "the 13th");
        assert!(c.matches(0, 0, 7, 5, 5), "a Friday");
        assert!(!c.matches(0, 0, 7, 5, 4));
        let c = Cron::parse("0 0 * * fri").expect("parses");
        assert!(!c.matches(0, 0, 13, 5, 2));
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "* * *",
            "60 * * * *",
            "* * * * 8",
            "*/0 * * * *",
            "5-1 * * * *",
            "@often",
            "? * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
