//! `wharf history`: the runs of a DAG, newest first.

use crate::ExitCode;
use crate::args::HistoryArgs;
use crate::commands::{dag_name, open_store};
use crate::time;

pub(crate) fn run(args: &HistoryArgs) -> ExitCode {
    let Some(store) = open_store() else {
        return ExitCode::Failure;
    };
    let name = dag_name(&args.dag);
    let runs = match store.history(&name, args.limit) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Failure;
        }
    };
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
        return ExitCode::Success;
    }
    if runs.is_empty() {
        eprintln!("the DAG `{name}` has no runs");
        return ExitCode::Success;
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
    ExitCode::Success
}
