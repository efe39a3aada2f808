//! What a retry of a finished run keeps and what it runs again.

use std::collections::HashSet;

use wharf_spec::Dag;
use wharf_store::{RunRecord, Status, Store};

use crate::Resume;

/// The part of `run` a retry keeps (steps that succeeded or were skipped and are not
/// after a step that runs again, with their outputs); None when every step is kept.
pub fn resume_of(
    store: &Store,
    dag: &Dag,
    run: &RunRecord,
) -> Result<Option<Resume>, wharf_store::Error> {
    let steps = store.steps(run.key)?;
    let rerun = steps_to_rerun(dag, &steps);
    if rerun.is_empty() {
        return Ok(None);
    }
    keeping(store, dag, run, &steps, &rerun).map(Some)
}

/// A retry of `run` that runs the step `step` again (`wharf retry --step`), alone or with
/// every step after it (`downstream`, `--downstream`): every other step keeps its result
/// and outputs.
pub fn resume_step(
    store: &Store,
    dag: &Dag,
    run: &RunRecord,
    step: &str,
    downstream: bool,
) -> Result<Resume, wharf_store::Error> {
    let steps = store.steps(run.key)?;
    let mut rerun: HashSet<String> = [step.to_owned()].into();
    if downstream {
        add_downstream(dag, &mut rerun);
    }
    keeping(store, dag, run, &steps, &rerun)
}

fn keeping(
    store: &Store,
    dag: &Dag,
    run: &RunRecord,
    steps: &[wharf_store::StepRecord],
    rerun: &HashSet<String>,
) -> Result<Resume, wharf_store::Error> {
    let kept: Vec<(String, Status, Option<i32>)> = steps
        .iter()
        .filter(|s| {
            s.handler.is_none() && !rerun.contains(s.name.as_str()) && dag.step(&s.name).is_some()
        })
        .map(|s| (s.name.clone(), s.status, s.exit_code))
        .collect();
    let kept_names: HashSet<&str> = kept.iter().map(|(n, _, _)| n.as_str()).collect();
    let outputs = store
        .outputs(run.key)?
        .into_iter()
        .filter(|o| kept_names.contains(o.step.as_str()))
        .collect();
    Ok(Resume {
        kept,
        outputs,
        only: false,
    })
}

/// The steps a retry runs again: those that did not succeed (or were skipped), and every
/// step after one of them.
fn steps_to_rerun(dag: &Dag, records: &[wharf_store::StepRecord]) -> HashSet<String> {
    let status = |name: &str| {
        records
            .iter()
            .find(|r| r.name == name && r.handler.is_none())
            .map(|r| r.status)
    };
    let mut rerun: HashSet<String> = dag
        .steps
        .iter()
        .filter(|s| {
            !matches!(
                status(&s.name),
                Some(Status::Succeeded | Status::PartiallySucceeded | Status::Skipped)
            )
        })
        .map(|s| s.name.clone())
        .collect();
    add_downstream(dag, &mut rerun);
    rerun
}

/// Adds to `rerun` every step after one of its steps.
fn add_downstream(dag: &Dag, rerun: &mut HashSet<String>) {
    loop {
        let before = rerun.len();
        for s in &dag.steps {
            if s.depends.iter().any(|d| rerun.contains(d)) {
                rerun.insert(s.name.clone());
            }
        }
        if rerun.len() == before {
            return;
        }
    }
}
