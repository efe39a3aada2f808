//! Dagu 2.x `dag.enqueue`: a run of another DAG put in its queue (`wharf enqueue`, the
//! same binary), not waited for. The step prints `{"name", "dagRunId", "status"}`, the
//! status the run had once enqueued (`queued`, or `running` when its queue had a place).

use std::path::Path;
use std::process::Stdio;

use serde_json::json;
use wharf_engine::StepJob;

use crate::{Ended, Output};

pub(crate) async fn run(
    file: &Path,
    name: &str,
    params: &[String],
    home: &Path,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Ended::Failed(format!("cannot find wharf's own program: {e}")),
    };
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
    if !params.is_empty() {
        cmd.arg("--").args(params);
    }
    let done = tokio::select! {
        done = cmd.output() => done,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    let done = match done {
        Ok(done) => done,
        Err(e) => return Ended::Failed(format!("cannot start `wharf enqueue`: {e}")),
    };
    let said = String::from_utf8_lossy(&done.stderr);
    if !done.status.success() {
        let why = said
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given");
        return Ended::Failed(format!(
            "the run of `{name}` was not enqueued: {}",
            why.trim()
        ));
    }
    // `run ID of NAME: STATUS`.
    let status = said
        .lines()
        .find(|l| l.contains(&run_id))
        .and_then(|l| l.rsplit(": ").next())
        .unwrap_or("queued")
        .trim();
    let result = json!({"name": name, "dagRunId": run_id, "status": status});
    out.stdout(format!("{result}\n").as_bytes()).await;
    Ended::Done
}
