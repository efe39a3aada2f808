//! `wharf migrate history`: a Dagu installation's run history, carried over into wharf's
//! store, so that `wharf history`, `wharf status`, the API and the web UI show the runs
//! that ran before the move.
//!
//! Dagu 1.x keeps each run in a folder of its DAG's (`DATA/<dag>/dag-runs/YYYY/MM/DD/
//! dag-run_<time>_<id>/`), each attempt in a folder of its own with a `status.jsonl` whose
//! last line is the run as it ended, and its sub-DAG runs under `children/child_<id>/`.
//! Each finished run is kept with its steps, their last attempt, outputs and logs (copied
//! into wharf's logs: Dagu's files are only read). Runs still going, queued or waiting
//! under Dagu are left for a later pass; a run wharf has already is left as it is, so the
//! command can be run again.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wharf_store::{ImportedRun, ImportedStep, OutputRecord, RunKey, Status, Store};

use crate::ExitCode;
use crate::args::MigrateArgs;
use crate::commands::open_store;
use crate::error::{Error, Result};

/// What came of one pass.
#[derive(Default)]
struct Tally {
    carried: usize,
    here: usize,
    going: usize,
    unreadable: usize,
}

pub(crate) fn history(args: &MigrateArgs) -> Result<ExitCode> {
    let data = match &args.from {
        Some(dir) => dir.clone(),
        None => dagu_data_dir().ok_or_else(|| {
            Error::Usage(
                "no Dagu data folder found: name it with --from (Dagu's `paths.dataDir`, \
                 `$DAGU_HOME/data` or `~/.local/share/dagu/data`)"
                    .into(),
            )
        })?,
    };
    let entries = std::fs::read_dir(&data).map_err(|e| Error::Read {
        path: data.clone(),
        reason: format!("cannot read Dagu's data folder: {e}"),
    })?;
    let mut dags: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("dag-runs").is_dir())
        .collect();
    dags.sort();
    let store = open_store()?;
    let dags_folder = wharf_engine::dags_dir(&wharf_store::default_home());
    let mut total = Tally::default();
    for dag in &dags {
        let mut tally = Tally::default();
        for run_dir in run_dirs(&dag.join("dag-runs")) {
            carry(
                &store,
                &run_dir,
                None,
                &dags_folder,
                args.dry_run,
                &mut tally,
            );
        }
        let label = dag
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        eprintln!(
            "{label}: {} run(s) {}{}{}{}",
            tally.carried,
            if args.dry_run {
                "to carry over"
            } else {
                "carried over"
            },
            match tally.here {
                0 => String::new(),
                n => format!(", {n} here already"),
            },
            match tally.going {
                0 => String::new(),
                n => format!(
                    ", {n} still going, queued or waiting under Dagu (left for a later pass)"
                ),
            },
            match tally.unreadable {
                0 => String::new(),
                n => format!(", {n} unreadable (named above)"),
            },
        );
        total.carried += tally.carried;
        total.here += tally.here;
        total.going += tally.going;
        total.unreadable += tally.unreadable;
    }
    eprintln!(
        "{} run(s) of {} DAG(s) {} from {}",
        total.carried,
        dags.len(),
        if args.dry_run {
            "would be carried over"
        } else {
            "carried over"
        },
        data.display()
    );
    Ok(if total.unreadable > 0 {
        ExitCode::Failure
    } else {
        ExitCode::Success
    })
}

/// Where Dagu keeps its data: `$DAGU_DATA_DIR`, `$DAGU_HOME/data`, or its XDG default.
fn dagu_data_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("DAGU_DATA_DIR")
        .or_else(|| var("DAGU_HOME").map(|h| h.join("data")))
        .or_else(|| {
            var("XDG_DATA_HOME")
                .or_else(|| var("HOME").map(|h| h.join(".local/share")))
                .map(|d| d.join("dagu/data"))
        })
        .filter(|d| d.is_dir())
}

/// The run folders under a DAG's `dag-runs` (`YYYY/MM/DD/dag-run_*`), oldest first.
fn run_dirs(dag_runs: &Path) -> Vec<PathBuf> {
    let sub = |dir: &Path| -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|e| {
                e.filter_map(std::result::Result::ok)
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        found.retain(|p| p.is_dir());
        found.sort();
        found
    };
    let mut runs = Vec::new();
    for year in sub(dag_runs) {
        for month in sub(&year) {
            for day in sub(&month) {
                runs.extend(sub(&day).into_iter().filter(|d| {
                    d.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("dag-run_"))
                }));
            }
        }
    }
    runs
}

/// The run as its latest attempt left it: the last whole line of its `status.jsonl`, and
/// the attempt's folder. Hidden attempts (dequeued) are not runs.
fn latest_status(run_dir: &Path) -> std::result::Result<Option<(Value, PathBuf)>, String> {
    let mut attempts: Vec<PathBuf> = std::fs::read_dir(run_dir)
        .map_err(|e| format!("cannot read {}: {e}", run_dir.display()))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("attempt_"))
        })
        .collect();
    attempts.sort();
    for attempt in attempts.iter().rev() {
        let file = attempt.join("status.jsonl");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let last = text
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .find_map(|l| serde_json::from_str::<Value>(l).ok());
        match last {
            Some(v) if v.is_object() => return Ok(Some((v, attempt.clone()))),
            _ if text.trim().is_empty() => {}
            _ => {
                return Err(format!(
                    "{}: no line of it is a run's status (JSON)",
                    file.display()
                ));
            }
        }
    }
    Ok(None)
}

/// Carries over the run of `run_dir` (and its sub-DAG runs, kept under the run at the top
/// of the tree).
fn carry(
    store: &Store,
    run_dir: &Path,
    parent: Option<(RunKey, String, RunKey, &Path)>,
    dags_folder: &Path,
    dry_run: bool,
    tally: &mut Tally,
) {
    let (status, attempt) = match latest_status(run_dir) {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(why) => {
            eprintln!("error: {why}");
            tally.unreadable += 1;
            return;
        }
    };
    let text = |k: &str| status.get(k).and_then(Value::as_str).unwrap_or_default();
    let (dag, run_id) = (text("name").to_owned(), text("dagRunId").to_owned());
    if dag.is_empty() || run_id.is_empty() {
        eprintln!(
            "error: {}: the run's status has no `name` or `dagRunId`",
            attempt.join("status.jsonl").display()
        );
        tally.unreadable += 1;
        return;
    }
    let run_status = match status.get("status").and_then(Value::as_i64) {
        Some(1 | 5 | 7) => {
            tally.going += 1;
            return;
        }
        Some(n) => run_status(n),
        None => Status::Failed,
    };
    if store.run(&dag, &run_id).ok().flatten().is_some() {
        tally.here += 1;
        return;
    }
    if dry_run {
        tally.carried += 1;
        return;
    }
    let log_dir = store.log_dir(None, &dag, &run_id);
    if let Err(e) = std::fs::create_dir_all(&log_dir) {
        eprintln!("error: cannot create {}: {e}", log_dir.display());
        tally.unreadable += 1;
        return;
    }
    if let Some(log) = status
        .get("log")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
    {
        let _ = copy_log(Path::new(log), &log_dir.join("run.log"));
    }
    let nodes = status
        .get("nodes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let handlers = [
        ("onSuccess", "success"),
        ("onFailure", "failure"),
        ("onCancel", "abort"),
        ("onExit", "exit"),
    ];
    let mut steps = Vec::new();
    let mut children = Vec::new();
    for (node, handler) in nodes
        .iter()
        .map(|n| (n, None))
        .chain(handlers.iter().filter_map(|(key, event)| {
            status
                .get(*key)
                .filter(|n| n.is_object())
                .map(|n| (n, Some(*event)))
        }))
    {
        let Some(step) = imported_step(node, handler, steps.len(), &log_dir) else {
            continue;
        };
        for child in node
            .get("children")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(id) = child.get("dagRunId").and_then(Value::as_str) {
                children.push((step.name.clone(), id.to_owned()));
            }
        }
        steps.push(step);
    }
    let params: Vec<String> = match status.get("paramsList").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
        None => shell_words::split(text("params")).unwrap_or_default(),
    };
    let started_at = time(text("startedAt"));
    let file = std::fs::read_to_string(attempt.join("dag.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|d| d.get("location").and_then(Value::as_str).map(PathBuf::from))
        .unwrap_or_else(|| dags_folder.join(format!("{dag}.yaml")));
    let errors: Vec<String> = steps
        .iter()
        .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.name)))
        .collect();
    let run = ImportedRun {
        dag: dag.clone(),
        run_id: run_id.clone(),
        file,
        status: run_status,
        params,
        created_at: status
            .get("createdAt")
            .and_then(Value::as_i64)
            .or(started_at)
            .unwrap_or_else(wharf_store::now_ms),
        started_at,
        finished_at: time(text("finishedAt")),
        error: (!errors.is_empty() && run_status != Status::Succeeded).then(|| errors.join("; ")),
        log_dir,
        trigger: "dagu".into(),
        parent: parent
            .as_ref()
            .map(|(run, step, root, _)| (*run, step.clone(), *root)),
        steps,
    };
    let key = match store.import_run(&run) {
        Ok(Some(key)) => key,
        Ok(None) => {
            tally.here += 1;
            return;
        }
        Err(e) => {
            eprintln!("error: cannot keep run {run_id} of {dag}: {e}");
            tally.unreadable += 1;
            return;
        }
    };
    tally.carried += 1;
    // Sub-DAG runs live under the run at the top of the tree.
    let (root, top) = match &parent {
        Some((_, _, root, top)) => (*root, top.to_path_buf()),
        None => (key, run_dir.to_path_buf()),
    };
    for (step, id) in children {
        let child = top.join("children").join(format!("child_{id}"));
        if child.is_dir() {
            carry(
                store,
                &child,
                Some((key, step, root, &top)),
                dags_folder,
                false,
                tally,
            );
        }
    }
}

/// A node of Dagu's status as a step, its logs copied into `log_dir`.
fn imported_step(
    node: &Value,
    handler: Option<&str>,
    position: usize,
    log_dir: &Path,
) -> Option<ImportedStep> {
    let name = node
        .pointer("/step/name")
        .and_then(Value::as_str)?
        .to_owned();
    let text = |k: &str| node.get(k).and_then(Value::as_str).unwrap_or_default();
    let status = match node.get("status").and_then(Value::as_i64) {
        Some(5) => Status::Skipped,
        Some(n) => run_status(n),
        None => Status::NotStarted,
    };
    let started_at = time(text("startedAt"));
    let attempts = match started_at {
        None => 0,
        Some(_) => node
            .get("retryCount")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0)
            .saturating_add(1),
    };
    let base = format!(
        "{position}-{}.{}",
        wharf_store::safe_name(&name),
        attempts.max(1)
    );
    let stdout = log_dir.join(format!("{base}.stdout"));
    let (out_from, err_from) = (text("stdout"), text("stderr"));
    // Merged logs (`logOutput: merged`): one file for both.
    let stderr = if !err_from.is_empty() && err_from == out_from {
        stdout.clone()
    } else {
        log_dir.join(format!("{base}.stderr"))
    };
    if !out_from.is_empty() {
        let _ = copy_log(Path::new(out_from), &stdout);
    }
    if !err_from.is_empty() && stderr != stdout {
        let _ = copy_log(Path::new(err_from), &stderr);
    }
    let outputs = node
        .get("outputVariables")
        .and_then(Value::as_object)
        .map(|vars| {
            vars.iter()
                .map(|(key, v)| {
                    let raw = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    let value = raw
                        .strip_prefix(&format!("{key}="))
                        .map_or(raw.clone(), str::to_owned);
                    OutputRecord {
                        step: name.clone(),
                        name: key.clone(),
                        key: key.clone(),
                        value,
                        omit: false,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ImportedStep {
        handler: handler.map(str::to_owned),
        status,
        started_at,
        finished_at: time(text("finishedAt")),
        attempts,
        error: Some(text("error"))
            .filter(|e| !e.is_empty())
            .map(str::to_owned),
        stdout,
        stderr,
        outputs,
        name,
    })
}

/// Dagu's status integers (the same for runs and steps, but 5: queued, or a step skipped).
fn run_status(n: i64) -> Status {
    match n {
        0 => Status::NotStarted,
        1 => Status::Running,
        3 => Status::Aborted,
        4 => Status::Succeeded,
        5 => Status::Queued,
        6 => Status::PartiallySucceeded,
        7 => Status::Waiting,
        8 => Status::Rejected,
        _ => Status::Failed,
    }
}

/// A time as Dagu writes it (RFC 3339, or `2006-01-02 15:04:05` in the machine's zone in
/// older files), in ms; None for `-`, empty or unreadable.
fn time(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() || text == "-" {
        return None;
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond()).filter(|ms| *ms > 0);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::system()).ok())
        .map(|z| z.timestamp().as_millisecond())
        .filter(|ms| *ms > 0)
}

/// Copies a log Dagu wrote, readable by its owner alone (logs may hold secrets).
fn copy_log(from: &Path, to: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(from)?;
    wharf_store::write_private(to, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dagus_times_in_both_of_its_forms() {
        assert_eq!(time("2025-01-02T03:04:05Z"), Some(1_735_787_045_000));
        assert_eq!(time("2025-01-02T04:04:05+01:00"), Some(1_735_787_045_000));
        assert!(time("2025-01-02 03:04:05").is_some());
        assert_eq!(time("-"), None);
        assert_eq!(time(""), None);
        assert_eq!(time("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn dagus_status_integers() {
        let all: Vec<&str> = (0..=8).map(|n| run_status(n).as_str()).collect();
        assert_eq!(
            all,
            [
                "not_started",
                "running",
                "failed",
                "aborted",
                "succeeded",
                "queued",
                "partially_succeeded",
                "waiting",
                "rejected"
            ]
        );
    }
}
