//! `wharf stop`: asks the process running each run of the DAG to stop it, and waits.
//!
//! The process that runs a run owns its steps; it gets SIGTERM, as from a terminal's
//! `kill`, and does what it does for Ctrl-C: the steps' stop signals, the grace period,
//! the kill, the handlers, the record.

use std::time::Duration;

use crate::ExitCode;
use crate::args::StopArgs;
use crate::commands::{dag_name, open_store};
use crate::error::Result;

/// How long `wharf stop` waits for the runs to be recorded as ended: the grace period,
/// the handlers, and a margin.
const WAIT: Duration = Duration::from_secs(600);

pub(crate) fn run(args: &StopArgs) -> Result<ExitCode> {
    let name = dag_name(&args.dag);
    match &args.run_id {
        None => stop_all(&name),
        Some(id) => {
            let store = open_store()?;
            let run = wharf_control::stop_run(&store, &name, id)?;
            eprintln!("stopping run {} of {name}", run.run_id);
            wait(&store, &name, vec![run], ExitCode::Success)
        }
    }
}

/// Stops every running run of the DAG `name` and waits for them to end.
pub(crate) fn stop_all(name: &str) -> Result<ExitCode> {
    let store = open_store()?;
    // Runs waiting in a queue are taken out: they never start.
    for run in store.queued(Some(name)).unwrap_or_default() {
        if store.dequeue(run.key, "dequeued: stopped").unwrap_or(false) {
            eprintln!("dequeued run {} of {name}", run.run_id);
        }
    }
    let signalled = wharf_control::stop_dag(&store, name)?;
    if signalled.is_empty() {
        eprintln!("no run of `{name}` is running");
        return Ok(ExitCode::Success);
    }
    let mut code = ExitCode::Success;
    let mut stopping = Vec::new();
    for (run, result) in signalled {
        match result {
            Ok(()) => {
                eprintln!("stopping run {} of {name}", run.run_id);
                stopping.push(run);
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::Failure;
            }
        }
    }
    wait(&store, name, stopping, code)
}

/// Waits for the runs being stopped to be recorded as ended.
fn wait(
    store: &wharf_store::Store,
    name: &str,
    stopping: Vec<wharf_store::RunRecord>,
    mut code: ExitCode,
) -> Result<ExitCode> {
    for (run_id, status) in wharf_control::wait_ended(store, &stopping, WAIT)? {
        match status {
            Some(s) => eprintln!("run {run_id} of {name}: {s}"),
            None => {
                eprintln!("error: run {run_id} of {name} did not end in time");
                code = ExitCode::Failure;
            }
        }
    }
    Ok(code)
}
