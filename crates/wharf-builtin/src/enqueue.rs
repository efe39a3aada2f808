//! Dagu 2.x `dag.enqueue`: runs of another DAG put in its queue (`wharf enqueue`, the same
//! binary), not waited for; one, or one per `parallel` item. The step prints
//! `{"name", "dagRunId", "status"}` for one run, the status it had once enqueued
//! (`queued`, or `running` when its queue had a place); for `parallel`,
//! `{"summary": {"total", "queued"}, "runs": [{"name", "dagRunId", "queue", "status",
//! "params"}]}`.

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use wharf_engine::StepJob;

use crate::{Ended, Output};

/// The DAG whose runs are enqueued, and where.
pub(crate) struct Target<'a> {
    pub file: &'a Path,
    pub name: &'a str,
    pub queue: Option<&'a str>,
    /// The step named the queue (`with.queue`): the runs wait there.
    pub queue_given: bool,
    /// The installation whose store the runs go to.
    pub home: &'a Path,
}

pub(crate) async fn run(
    target: &Target<'_>,
    runs: &[Vec<String>],
    parallel: bool,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let mut results = Vec::new();
    for params in runs {
        if job.stop.is_cancelled() {
            return Ended::Stopped;
        }
        match one(target, params, job).await {
            Ok(result) => results.push(result),
            Err(ended) => return ended,
        }
    }
    let result = if parallel {
        let queued = results.iter().filter(|r| r["status"] == "queued").count();
        json!({
            "summary": {"total": results.len(), "queued": queued},
            "runs": results,
        })
    } else {
        let mut one = results.into_iter().next().unwrap_or(Value::Null);
        if let Some(map) = one.as_object_mut() {
            map.remove("params");
            map.remove("queue");
        }
        one
    };
    out.stdout(format!("{result}\n").as_bytes()).await;
    Ended::Done
}

/// One run enqueued: its result, or how the step ends.
async fn one(target: &Target<'_>, params: &[String], job: &StepJob) -> Result<Value, Ended> {
    let Target {
        file,
        name,
        queue,
        queue_given,
        home,
    } = target;
    let exe = std::env::current_exe()
        .map_err(|e| Ended::Failed(format!("cannot find wharf's own program: {e}")))?;
    let run_id = wharf_engine::new_run_id();
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("enqueue")
        .arg(file)
        .args(["--run-id", &run_id])
        .env("WHARF_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if *queue_given && let Some(q) = queue {
        cmd.args(["--queue", q]);
    }
    if !params.is_empty() {
        cmd.arg("--").args(params);
    }
    let done = tokio::select! {
        done = cmd.output() => done,
        () = job.stop.cancelled() => return Err(Ended::Stopped),
    };
    let done = done.map_err(|e| Ended::Failed(format!("cannot start `wharf enqueue`: {e}")))?;
    let said = String::from_utf8_lossy(&done.stderr);
    if !done.status.success() {
        let why = said
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given");
        return Err(Ended::Failed(format!(
            "the run of `{name}` was not enqueued: {}",
            why.trim()
        )));
    }
    // `run ID of NAME: STATUS`.
    let status = said
        .lines()
        .find(|l| l.contains(&run_id))
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or("queued")
        .trim()
        .to_owned();
    Ok(json!({
        "name": name,
        "dagRunId": run_id,
        "queue": queue,
        "status": status,
        "params": params.join(" "),
    }))
}
