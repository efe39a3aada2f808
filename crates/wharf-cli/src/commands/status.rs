//! `wharf status`: a run and its steps.

use wharf_store::{RunRecord, StepRecord, Store};

use crate::ExitCode;
use crate::args::StatusArgs;
use crate::commands::{dag_name, find_run, open_store};
use crate::error::Result;
use crate::time;

pub(crate) fn run(args: &StatusArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let name = dag_name(&args.dag);
    let run = find_run(&store, &name, args.run_id.as_deref())?;
    let steps = store.steps(run.key)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json(&store, &run, &steps)).unwrap_or_default()
        );
        return Ok(ExitCode::Success);
    }
    let took = time::between(run.started_at, run.finished_at)
        .map(|d| format!(" in {}", time::duration(d)))
        .unwrap_or_default();
    println!("{} {}: {}{took}", run.dag, run.run_id, run.status);
    if let Some(start) = run.started_at {
        println!("  started {}", time::rfc3339(start));
    }
    if let Some(e) = &run.error {
        println!("  {e}");
    }
    print_steps(&store, &run, &steps, "  ");
    crate::commands::task::print_open(&store, &run, "  ");
    Ok(ExitCode::Success)
}

/// The steps of `run`, each followed by the sub-DAG runs it started (with their steps),
/// indented one level more.
fn print_steps(store: &Store, run: &RunRecord, steps: &[StepRecord], indent: &str) {
    let children = store.children(run.key).unwrap_or_default();
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in steps {
        let mut line = format!("{indent}{:<width$}  {:<19}", s.name, s.status.as_str());
        if let Some(code) = s.exit_code {
            line.push_str(&format!("  exit {code}"));
        }
        if let Some(d) = time::between(s.started_at, s.finished_at) {
            line.push_str(&format!("  {}", time::duration(d)));
        }
        if s.attempts > 1 {
            line.push_str(&format!("  {} attempts", s.attempts));
        }
        if let Some(h) = &s.handler {
            line.push_str(&format!("  (on {h})"));
        }
        if let Some(place) = &s.ran_on {
            line.push_str(&format!("  on {place}"));
        }
        if let Some(e) = s
            .error
            .as_deref()
            .filter(|_| s.status != wharf_store::Status::Succeeded)
        {
            line.push_str(&format!("  {e}"));
        }
        println!("{}", line.trim_end());
        for child in children
            .iter()
            .filter(|c| c.parent.as_ref().is_some_and(|(_, step)| *step == s.name))
        {
            let took = time::between(child.started_at, child.finished_at)
                .map(|d| format!(" in {}", time::duration(d)))
                .unwrap_or_default();
            println!(
                "{indent}  ↳ {} {}: {}{took}",
                child.dag, child.run_id, child.status
            );
            let child_steps = store.steps(child.key).unwrap_or_default();
            print_steps(store, child, &child_steps, &format!("{indent}    "));
        }
    }
}

pub(crate) fn json(store: &Store, run: &RunRecord, steps: &[StepRecord]) -> serde_json::Value {
    use serde_json::json;
    let time = |t: Option<i64>| t.map(time::rfc3339);
    let outputs: serde_json::Map<String, serde_json::Value> = store
        .outputs(run.key)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o.omit)
        .map(|o| (o.key, serde_json::Value::String(o.value)))
        .collect();
    let children = store.children(run.key).unwrap_or_default();
    json!({
        "name": run.dag,
        "runId": run.run_id,
        "status": run.status.as_str(),
        "file": run.file,
        "params": run.params.iter().map(|p| wharf_spec::redact::param(p)).collect::<Vec<_>>(),
        "startedAt": time(run.started_at),
        "finishedAt": time(run.finished_at),
        "error": run.error,
        "logDir": run.log_dir,
        "parent": run.parent.as_ref().and_then(|(key, step)| {
            let parent = store.run_by_key(*key).ok().flatten()?;
            Some(json!({"name": parent.dag, "runId": parent.run_id, "step": step}))
        }),
        "humanTasks": if run.status == wharf_store::Status::Waiting {
            wharf_engine::task::open_tasks(store, run)
                .into_iter()
                .map(|t| json!({"step": t.id, "prompt": t.prompt, "form": t.form}))
                .collect::<Vec<_>>()
        } else {
            Vec::new()
        },
        "steps": steps.iter().map(|s| {
            let mut step = json!({
                "name": s.name,
                "status": s.status.as_str(),
                "exitCode": s.exit_code,
                "handler": s.handler,
                "attempts": s.attempts,
                "startedAt": time(s.started_at),
                "finishedAt": time(s.finished_at),
                "error": s.error,
                "ranOn": s.ran_on,
            });
            let sub: Vec<serde_json::Value> = children
                .iter()
                .filter(|c| c.parent.as_ref().is_some_and(|(_, name)| *name == s.name))
                .map(|c| json(store, c, &store.steps(c.key).unwrap_or_default()))
                .collect();
            if !sub.is_empty() {
                step["subRuns"] = serde_json::Value::Array(sub);
            }
            step
        }).collect::<Vec<_>>(),
        "outputs": outputs,
    })
}
