//! `wharf history`: the runs of a DAG (or of all), newest first, filtered as Dagu's
//! `history` filters them.

use wharf_store::{RunRecord, Status};

use crate::ExitCode;
use crate::args::{HistoryArgs, HistoryFormat};
use crate::commands::{dag_name, open_store};
use crate::error::{Error, Result};
use crate::time;

/// What a run must be to be shown.
struct Filter {
    statuses: Vec<Status>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    run_id: Option<String>,
}

impl Filter {
    fn of(args: &HistoryArgs) -> Result<Self> {
        let statuses = match &args.status {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    status_named(s).ok_or_else(|| {
                        Error::Usage(format!(
                            "unknown status `{s}` (known: {})",
                            Status::ALL.map(Status::as_str).join(", ")
                        ))
                    })
                })
                .collect::<Result<_>>()?,
        };
        let from_ms = match (&args.from, &args.last) {
            (Some(t), _) => Some(time_ms(t)?),
            (None, Some(d)) => Some(wharf_store::now_ms() - duration_ms(d)?),
            (None, None) => None,
        };
        let to_ms = args.to.as_deref().map(time_ms).transpose()?;
        Ok(Self {
            statuses,
            from_ms,
            to_ms,
            run_id: args.run_id.clone(),
        })
    }

    fn keeps(&self, run: &RunRecord) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&run.status))
            && self.from_ms.is_none_or(|t| run.created_at >= t)
            && self.to_ms.is_none_or(|t| run.created_at < t)
            && self
                .run_id
                .as_deref()
                .is_none_or(|id| run.run_id.contains(id))
    }
}

/// A status by wharf's name or Dagu's.
fn status_named(text: &str) -> Option<Status> {
    let text = text.to_ascii_lowercase();
    let name = match text.as_str() {
        "success" | "succeed" => "succeeded",
        "error" | "fail" => "failed",
        "cancel" | "cancelled" | "canceled" => "aborted",
        "partial_success" | "partial" => "partially_succeeded",
        other => other,
    };
    Status::parse(name)
}

/// `2026-11-30` (midnight UTC) or an RFC 3339 time, in milliseconds.
fn time_ms(text: &str) -> Result<i64> {
    let bad = || {
        Error::Usage(format!(
            "`{text}` is not a time: write `2026-11-30` or `2026-11-30T08:00:00Z`"
        ))
    };
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let date = text.parse::<jiff::civil::Date>().map_err(|_| bad())?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| bad())
}

/// `30m`, `24h`, `7d` (or seconds), in milliseconds.
pub(crate) fn duration_ms(text: &str) -> Result<i64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let unit_ms: i64 = match unit {
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => 0,
    };
    match n.parse::<i64>() {
        Ok(n) if unit_ms > 0 => Ok(n.saturating_mul(unit_ms)),
        _ => Err(Error::Usage(format!(
            "`{text}` is not a duration: write `30m`, `24h` or `7d`"
        ))),
    }
}

pub(crate) fn run(args: &HistoryArgs) -> Result<ExitCode> {
    let filter = Filter::of(args)?;
    let store = open_store()?;
    let name = args.dag.as_deref().map(dag_name);
    let all = match &name {
        Some(n) => store.history(n, usize::MAX >> 1)?,
        None => store.recent_runs(None, usize::MAX >> 1)?,
    };
    let runs: Vec<RunRecord> = all
        .into_iter()
        .filter(|r| filter.keeps(r))
        .take(args.limit)
        .collect();
    let format = if args.json {
        HistoryFormat::Json
    } else {
        args.format
    };
    match format {
        HistoryFormat::Json => {
            let list: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "name": r.dag,
                        "runId": r.run_id,
                        "status": r.status.as_str(),
                        "createdAt": time::rfc3339(r.created_at),
                        "startedAt": r.started_at.map(time::rfc3339),
                        "finishedAt": r.finished_at.map(time::rfc3339),
                        "error": r.error,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
        HistoryFormat::Csv => {
            println!("name,run_id,status,created_at,started_at,finished_at,error");
            for r in &runs {
                let opt = |t: Option<i64>| t.map(time::rfc3339).unwrap_or_default();
                println!(
                    "{},{},{},{},{},{},{}",
                    csv(&r.dag),
                    csv(&r.run_id),
                    r.status.as_str(),
                    time::rfc3339(r.created_at),
                    opt(r.started_at),
                    opt(r.finished_at),
                    csv(r.error.as_deref().unwrap_or_default())
                );
            }
        }
        HistoryFormat::Table => table(&runs, name.as_deref()),
    }
    Ok(ExitCode::Success)
}

fn table(runs: &[RunRecord], name: Option<&str>) {
    if runs.is_empty() {
        match name {
            Some(n) => eprintln!("the DAG `{n}` has no runs that match"),
            None => eprintln!("no runs match"),
        }
        return;
    }
    let width = runs.iter().map(|r| r.run_id.len()).max().unwrap_or(0);
    let dag_width = runs.iter().map(|r| r.dag.len()).max().unwrap_or(0);
    for r in runs {
        let took = time::between(r.started_at, r.finished_at)
            .map(time::duration)
            .unwrap_or_default();
        let start = r.started_at.map(time::rfc3339).unwrap_or_default();
        let dag = if name.is_none() {
            format!("{:<dag_width$}  ", r.dag)
        } else {
            String::new()
        };
        println!(
            "{dag}{:<width$}  {:<19}  {start}  {took}",
            r.run_id,
            r.status.as_str()
        );
    }
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}
