//! Human tasks (Dagu 2.x `action: human.task`) from the outside: the ones a run waits on,
//! and their completion. A task's form is the one of the DAG as the run ran it (kept in
//! the store), not the file as it is now.

use wharf_spec::form::Given;
use wharf_spec::{Dag, HumanTask, Step};
use wharf_store::{Completion, RunRecord, Status, Store};

/// A human task a run waits on.
#[derive(Debug, Clone)]
pub struct OpenTask {
    /// The step's id (what completes it).
    pub id: String,
    /// Its prompt, as resolved when it opened.
    pub prompt: String,
    /// Its form as JSON Schema, when it asks for more than an acknowledgement.
    pub form: Option<serde_json::Value>,
}

/// The DAG of `run` as it ran (its own, or the local DAG of its file it ran).
pub fn dag_of(store: &Store, run: &RunRecord) -> Result<Dag, String> {
    let loaded = match store.spec_of(run.key).ok().flatten() {
        Some(kept) => wharf_spec::load_str(kept, &run.file),
        None => wharf_spec::load_file(&run.file)
            .map_err(|e| format!("cannot read the DAG {}: {e}", run.file.display()))?,
    };
    let Some(dag) = loaded.dag else {
        return Err(format!(
            "the DAG of run {} cannot be read: {}",
            run.run_id,
            loaded
                .diagnostics
                .first()
                .map_or_else(String::new, |d| d.message.clone())
        ));
    };
    if dag.name == run.dag {
        return Ok(dag);
    }
    dag.locals
        .into_iter()
        .find(|l| l.name == run.dag)
        .ok_or_else(|| format!("the DAG of run {} has no DAG `{}`", run.run_id, run.dag))
}

/// The human task `id` of `dag`.
pub fn task_of<'a>(dag: &'a Dag, id: &str) -> Option<(&'a Step, &'a HumanTask)> {
    dag.steps.iter().find_map(|s| match &s.executor {
        wharf_spec::Executor::HumanTask(t) if s.id.as_deref() == Some(id) => Some((s, &**t)),
        _ => None,
    })
}

/// The human tasks `run` waits on, in the order of its steps.
pub fn open_tasks(store: &Store, run: &RunRecord) -> Vec<OpenTask> {
    let Ok(steps) = store.steps(run.key) else {
        return Vec::new();
    };
    let waiting: Vec<_> = steps
        .iter()
        .filter(|s| s.status == Status::Waiting && s.handler.is_none())
        .collect();
    if waiting.is_empty() {
        return Vec::new();
    }
    let Ok(dag) = dag_of(store, run) else {
        return Vec::new();
    };
    waiting
        .into_iter()
        .filter_map(|record| {
            let step = dag.step(&record.name)?;
            let wharf_spec::Executor::HumanTask(task) = &step.executor else {
                return None;
            };
            let prompt = record
                .error
                .as_deref()
                .and_then(|e| e.strip_prefix(crate::step::WAITING_FOR_INPUT))
                .map_or_else(|| task.prompt.clone(), str::to_owned);
            Some(OpenTask {
                id: step.id.clone().unwrap_or_else(|| step.name.clone()),
                prompt,
                form: task.form.as_ref().map(wharf_spec::form::Form::to_json),
            })
        })
        .collect()
}

/// Records the answer `given` to the human task `id` of `run` (see [`Completion`]): the
/// answer made canonical against the task's form and within the DAG's
/// `max_output_size`, then the step `succeeded` with its outputs, at once. The error
/// names the task and what is wrong.
pub fn complete(
    store: &Store,
    run: &RunRecord,
    id: &str,
    given: Given,
) -> Result<Completion, String> {
    let id = id.trim();
    let dag = dag_of(store, run)?;
    let Some((step, task)) = task_of(&dag, id) else {
        return Err(format!(
            "run {} of `{}` has no human task `{id}`",
            run.run_id, run.dag
        ));
    };
    let answer = match &task.form {
        None => {
            let empty = match &given {
                Given::Text(pairs) => pairs.is_empty(),
                Given::Json(map) => map.is_empty(),
            };
            if !empty {
                return Err(format!(
                    "human task `{id}` does not accept input: it asks for an acknowledgement only"
                ));
            }
            serde_json::Map::new()
        }
        Some(form) => form
            .canonical(given)
            .map_err(|why| format!("human task `{id}`: {why}"))?,
    };
    let answer = serde_json::Value::Object(answer);
    let outputs = crate::step::task_outputs(step, task, &answer);
    let max = dag.max_output_size.unwrap_or(1024 * 1024);
    let outputs_size: usize = outputs.iter().map(|o| o.value.len()).sum();
    if u64::try_from(answer.to_string().len().max(outputs_size)).unwrap_or(u64::MAX) > max {
        return Err(format!(
            "human task `{id}`: the answer is over the maximum size of {max} bytes (`max_output_size`)"
        ));
    }
    store
        .complete_task(run.key, &step.name, &answer, &outputs)
        .map_err(|e| format!("human task `{id}`: the answer cannot be recorded: {e}"))
}

/// The human task of `dag`, if it has one: such a DAG runs only as a run of its own, not
/// as a sub-DAG.
pub fn has_human_task(dag: &Dag) -> Option<&Step> {
    dag.steps
        .iter()
        .find(|s| matches!(s.executor, wharf_spec::Executor::HumanTask(_)))
}

/// The error a sub-DAG with a human task gets, before anything of it starts.
pub fn refused_as_child(dag: &Dag, step: &Step) -> String {
    format!(
        "the DAG `{}` has a human task (`{}`): human tasks are not permitted in child DAGs; run it as a DAG of its own",
        dag.name,
        step.id.as_deref().unwrap_or(&step.name)
    )
}
