//! `wharf history`: the runs of a DAG, newest first.

use crate::ExitCode;
use crate::args::HistoryArgs;
use crate::commands::{dag_name, open_store};
use crate::error::Result;
use crate::time;

pub(crate) fn run(args: &HistoryArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let name = dag_name(&args.dag);
    let runs = store.history(&name, args.limit)?;
    if args.json {
        let list: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.dag,
                    "runId": r.run_id,
                    "status": r.status.as_str(),
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
        return Ok(ExitCode::Success);
    }
    if runs.is_empty() {
        eprintln!("the DAG `{name}` has no runs");
        return Ok(ExitCode::Success);
    }
    let width = runs.iter().map(|r| r.run_id.len()).max().unwrap_or(0);
    for r in &runs {
        let took = time::between(r.started_at, r.finished_at)
            .map(time::duration)
            .unwrap_or_default();
        let start = r.started_at.map(time::rfc3339).unwrap_or_default();
        println!(
            "{:<width$}  {:<19}  {start}  {took}",
            r.run_id,
            r.status.as_str()
        );
    }
    Ok(ExitCode::Success)
}
