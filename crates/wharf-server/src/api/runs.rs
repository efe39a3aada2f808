//! The endpoints of runs: lists, details, stop, retry, logs and outputs.

use std::path::Path;

use axum::http::StatusCode;
use serde_json::Value;

use super::shapes::*;
use super::*;

/// Lines shown when a log request names no window.
const DEFAULT_TAIL: usize = 10_000;
/// The most a single line keeps (a longer one is cut, marked with `…`).
const MAX_LINE: usize = 16 * 1024;

pub(super) fn all_runs(home: &Path, query: &str) -> Reply {
    let store = or_reply!(open(home));
    let name = query_param(query, "name");
    let number = |key: &str| -> Result<Option<i64>, Box<Reply>> {
        match query_param(query, key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                Box::new(bad_request(format!("`{key}` is a whole number, not `{v}`")))
            }),
        }
    };
    let status = or_reply!(number("status"));
    let from = or_reply!(number("fromDate"));
    let to = or_reply!(number("toDate"));
    let run_id = query_param(query, "dagRunId").filter(|i| !i.is_empty() && i != "latest");
    let filtered = status.is_some() || from.is_some() || to.is_some() || run_id.is_some();
    // With filters the newest 200 of the runs that pass them, not of all runs.
    let runs = match store.recent_runs(name.as_deref(), if filtered { 100_000 } else { 200 }) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let runs: Vec<_> = runs
        .into_iter()
        .filter(|r| status.is_none_or(|s| run_status(r.status).0 == s))
        .filter(|r| from.is_none_or(|f| r.created_at >= f.saturating_mul(1000)))
        .filter(|r| to.is_none_or(|t| r.created_at <= t.saturating_mul(1000)))
        .filter(|r| run_id.as_deref().is_none_or(|i| r.run_id == i))
        .take(200)
        .collect();
    answer(
        StatusCode::OK,
        &Runs {
            runs: runs.iter().map(RunSummary::of).collect(),
        },
    )
}

pub(super) fn runs_of(home: &Path, name: &str) -> Reply {
    let store = or_reply!(open(home));
    let runs = store.history(name, 200).unwrap_or_default();
    answer(
        StatusCode::OK,
        &Runs {
            runs: runs.iter().map(RunSummary::of).collect(),
        },
    )
}

pub(super) fn run_details(home: &Path, name: &str, id: &str) -> Reply {
    let store = or_reply!(open(home));
    match find(&store, name, id) {
        Ok(run) => answer(
            StatusCode::OK,
            &RunDetailsAnswer {
                details: RunDetails::of(&store, &run),
            },
        ),
        Err(r) => *r,
    }
}

pub(super) fn stop_run(home: &Path, name: &str, id: &str) -> Reply {
    let store = or_reply!(open(home));
    let _ = store.reap_dead();
    let run = or_reply!(find(&store, name, id));
    match wharf_control::stop_run(&store, name, &run.run_id) {
        Ok(_) => answer(StatusCode::OK, &Empty {}),
        Err(e) => control_error(&e),
    }
}

/// `GET /dag-runs/{name}/{id}/spec`: the YAML of the run's DAG file as the run ran it (as
/// the file is now, for a run from before wharf kept it), credentials redacted as every
/// spec the API shows.
pub(super) fn run_spec(home: &Path, name: &str, id: &str) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find(&store, name, id));
    if let Ok(Some(text)) = store.spec_of(run.key) {
        return answer(
            StatusCode::OK,
            &RunSpec {
                spec: wharf_spec::redact::source(&text),
            },
        );
    }
    match wharf_spec::load_file(&run.file) {
        Ok(loaded) => answer(
            StatusCode::OK,
            &RunSpec {
                spec: wharf_spec::redact::source(&loaded.source),
            },
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "the DAG file of run {} of {name} is gone: {}",
                run.run_id,
                run.file.display()
            ),
        ),
        Err(e) => internal(format!("cannot read {}: {e}", run.file.display())),
    }
}

/// `POST /dag-runs/{name}/{id}/reschedule`: a new run of the run's DAG (as the run ran it)
/// with its params;
/// `dagRunId` chooses the new run's id, `dagName` another name to keep it under.
pub(super) fn reschedule_run(home: &Path, name: &str, id: &str, body: &Bytes) -> Reply {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        or_reply!(body_json(body))
    };
    let store = or_reply!(open(home));
    let run = or_reply!(find(&store, name, id));
    let loaded = match wharf_spec::load_file(&run.file) {
        Ok(loaded) => loaded,
        Err(e) => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "the DAG file of run {} of {name} cannot be read ({}): {e}",
                    run.run_id,
                    run.file.display()
                ),
            );
        }
    };
    let Some(dag) = loaded.dag.as_ref() else {
        return bad_request(format!(
            "the DAG file {} is invalid now: {}",
            run.file.display(),
            diagnostics(&loaded).join("; ")
        ));
    };
    let new_name = or_reply!(super::dags::kept_name(&body, &run.dag));
    let run_id = or_reply!(super::dags::chosen_run_id(dag, &body));
    let started = wharf_control::start(
        home,
        &wharf_control::Start {
            file: &run.file,
            dag: &new_name,
            run_id: &run_id,
            params: &run.params,
            singleton: false,
            trigger: "api",
            as_run: Some((&run.dag, &run.run_id)),
        },
    );
    if let Err(e) = started {
        return control_error(&e);
    }
    let queued = store
        .run(&new_name, &run_id)
        .ok()
        .flatten()
        .is_some_and(|r| r.status == wharf_store::Status::Queued);
    answer(StatusCode::OK, &Rescheduled { run_id, queued })
}

/// `POST /dag-runs/{name}/{id}/retry`, with `stepName` to run that step alone again (and
/// with `downstream: true` the steps after it too).
pub(super) fn retry_run(home: &Path, name: &str, id: &str, body: &Bytes) -> Reply {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return bad_request(format!("the body is not JSON: {e}")),
        }
    };
    let step = body
        .get("stepName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let store = or_reply!(open(home));
    let run = or_reply!(find(&store, name, id));
    if let Some(step) = step
        && !store
            .steps(run.key)
            .unwrap_or_default()
            .iter()
            .any(|s| s.name == step)
    {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {} of {name} has no step `{step}`", run.run_id),
        );
    }
    let downstream = body.get("downstream").and_then(Value::as_bool) == Some(true);
    match wharf_control::retry(home, &run, step, downstream) {
        Ok(()) => answer(StatusCode::OK, &Empty {}),
        Err(e) => control_error(&e),
    }
}

/// A log file as the API's `Log` object, with `tail`/`head`/`offset`/`limit` in lines
/// (by default the last 10 000). The file is read line by line and only the window is
/// kept, so a log of any size takes little memory.
pub(super) fn log_reply(path: &Path, query: &str) -> Reply {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return internal(format!("cannot read the log: {e}")),
    };
    let num = |k: &str| query_param(query, k).and_then(|v| v.parse::<usize>().ok());
    enum Window {
        Tail(usize),
        Range(usize, usize),
    }
    let window = if let Some(t) = num("tail") {
        Window::Tail(t)
    } else if let Some(h) = num("head") {
        Window::Range(0, h)
    } else if num("offset").is_some() || num("limit").is_some() {
        let offset = num("offset").unwrap_or(1).max(1) - 1;
        Window::Range(
            offset,
            offset.saturating_add(num("limit").unwrap_or(usize::MAX)),
        )
    } else {
        Window::Tail(DEFAULT_TAIL)
    };
    let mut kept: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut total = 0usize;
    let mut ends_with_newline = false;
    let mut first_kept = 0usize;
    // Lines cut to MAX_LINE in the window, each with its index there.
    let mut cut: Vec<usize> = Vec::new();
    if let Some(file) = file {
        let mut reader = std::io::BufReader::new(file);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            ends_with_newline = buf.last() == Some(&b'\n');
            let body = buf.strip_suffix(b"\n").unwrap_or(&buf);
            let long = body.len() > MAX_LINE;
            let line = if long {
                format!("{}…", String::from_utf8_lossy(&body[..MAX_LINE]))
            } else {
                String::from_utf8_lossy(body).into_owned()
            };
            match window {
                Window::Tail(n) => {
                    kept.push_back(line);
                    if long {
                        cut.push(total);
                    }
                    if kept.len() > n {
                        kept.pop_front();
                        first_kept += 1;
                    }
                }
                Window::Range(a, b) => {
                    if total >= a && total < b {
                        if kept.is_empty() {
                            first_kept = total;
                        }
                        kept.push_back(line);
                        if long {
                            cut.push(total);
                        }
                    }
                }
            }
            total += 1;
        }
    }
    let last_kept = first_kept + kept.len();
    let mut content = kept.into_iter().collect::<Vec<_>>().join("\n");
    if last_kept == total && ends_with_newline && !content.is_empty() {
        content.push('\n');
    }
    answer(
        StatusCode::OK,
        &Log {
            content,
            line_count: last_kept - first_kept,
            total_lines: total,
            // A line cut short means the answer is not all of the log.
            has_more: last_kept < total || first_kept > 0 || cut.iter().any(|i| *i >= first_kept),
            is_estimate: false,
        },
    )
}

pub(super) fn run_log(home: &Path, name: &str, id: &str, query: &str) -> Reply {
    let store = or_reply!(open(home));
    match find(&store, name, id) {
        Ok(run) => log_reply(&run.log_dir.join("run.log"), query),
        Err(r) => *r,
    }
}

pub(super) fn step_log(home: &Path, name: &str, id: &str, step: &str, query: &str) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find(&store, name, id));
    last_attempt_log(&store, &run, step, query)
}

/// The log of a step's last attempt (its stderr with `stream=stderr`).
fn last_attempt_log(store: &Store, run: &RunRecord, step: &str, query: &str) -> Reply {
    let attempts = match store.attempts(run.key, step) {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let Some(last) = attempts.last() else {
        return not_found(format!(
            "the step `{step}` did not run in run {}",
            run.run_id
        ));
    };
    let path = if query_param(query, "stream").as_deref() == Some("stderr") {
        &last.stderr
    } else {
        &last.stdout
    };
    log_reply(path, query)
}

/// `TOTAL_COUNT` → `totalCount`; a name with lowercase letters is kept as written.
fn camel_case(name: &str) -> String {
    if name.chars().any(|c| c.is_ascii_lowercase()) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for (i, part) in name.split('_').filter(|p| !p.is_empty()).enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    if out.is_empty() { name.to_owned() } else { out }
}

pub(super) fn outputs(home: &Path, name: &str, id: &str) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find(&store, name, id));
    let outputs: serde_json::Map<String, Value> = store
        .outputs(run.key)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o.omit)
        .map(|o| {
            // As Dagu's outputs.json: a key not given (the variable's name) in camelCase.
            let key = if o.key == o.name {
                camel_case(&o.key)
            } else {
                o.key
            };
            (key, Value::String(o.value))
        })
        .collect();
    answer(
        StatusCode::OK,
        &Outputs {
            metadata: OutputsMetadata {
                dag_name: run.dag.clone(),
                run_id: run.run_id.clone(),
                attempt_id: "1",
                status: run_status(run.status).1,
                completed_at: run.finished_at.map(rfc3339).unwrap_or_default(),
                params: params_json(&run.params),
            },
            outputs,
        },
    )
}

/// A sub-DAG run in the tree of the run `id` of `name`.
fn find_sub(store: &Store, name: &str, id: &str, sub: &str) -> Result<RunRecord, Box<Reply>> {
    let top = find(store, name, id)?;
    let root = top.root.unwrap_or(top.key);
    match store.sub_run(root, sub) {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(Box::new(not_found(format!(
            "run {} of `{name}` has no sub-DAG run `{sub}`",
            top.run_id
        )))),
        Err(e) => Err(Box::new(internal(e))),
    }
}

/// The sub-DAG runs the steps of a run started (or, with `parentSubDAGRunId`, those of
/// one of its sub-DAG runs).
pub(super) fn sub_runs(home: &Path, name: &str, id: &str, query: &str) -> Reply {
    let store = or_reply!(open(home));
    let parent = match query_param(query, "parentSubDAGRunId") {
        Some(sub) => or_reply!(find_sub(&store, name, id, &sub)),
        None => or_reply!(find(&store, name, id)),
    };
    match store.children(parent.key) {
        Ok(children) => answer(
            StatusCode::OK,
            &SubRuns {
                sub_runs: children.iter().map(SubRunDetail::of).collect(),
            },
        ),
        Err(e) => internal(e),
    }
}

pub(super) fn sub_run_details(home: &Path, name: &str, id: &str, sub: &str) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find_sub(&store, name, id, sub));
    answer(
        StatusCode::OK,
        &RunDetailsAnswer {
            details: RunDetails::of(&store, &run),
        },
    )
}

pub(super) fn sub_run_log(home: &Path, name: &str, id: &str, sub: &str, query: &str) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find_sub(&store, name, id, sub));
    log_reply(&run.log_dir.join("run.log"), query)
}

pub(super) fn sub_step_log(
    home: &Path,
    (name, id, sub, step): (&str, &str, &str, &str),
    query: &str,
) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find_sub(&store, name, id, sub));
    last_attempt_log(&store, &run, step, query)
}

/// What the step `step` of a run asks of a person (a `hitl` step's config, a 2.x step's
/// `approval`), as the run's DAG says it.
pub(crate) fn approval_of(
    store: &Store,
    run: &RunRecord,
    step: &str,
) -> Option<wharf_spec::Approval> {
    step_of(store, run, step).as_ref().and_then(approval_in)
}

/// The human task the step `step` of a run is, as the run's DAG says it.
pub(crate) fn task_of(store: &Store, run: &RunRecord, step: &str) -> Option<wharf_spec::HumanTask> {
    match step_of(store, run, step)?.executor {
        wharf_spec::Executor::HumanTask(t) => Some(*t),
        _ => None,
    }
}

fn approval_in(step: &wharf_spec::Step) -> Option<wharf_spec::Approval> {
    match (&step.executor, &step.approval) {
        (wharf_spec::Executor::Approval(a), _) | (_, Some(a)) => Some((**a).clone()),
        // A human task asks for its form's fields.
        (wharf_spec::Executor::HumanTask(t), _) => Some(wharf_spec::Approval {
            prompt: Some(t.prompt.clone()),
            input: t
                .form
                .iter()
                .flat_map(|f| f.properties.iter().map(|(name, _)| name.clone()))
                .collect(),
            required: t.form.iter().flat_map(|f| f.required.clone()).collect(),
        }),
        _ => None,
    }
}

/// The step `step` of the DAG of `run` (the file's own DAG, or one of its local DAGs), as
/// the run ran it (as its file says now, for a run from before wharf kept it).
fn step_of(store: &Store, run: &RunRecord, step: &str) -> Option<wharf_spec::Step> {
    let loaded = match store.spec_of(run.key).ok().flatten() {
        Some(kept) => wharf_spec::load_str(kept, &run.file),
        None => wharf_spec::load_file(&run.file).ok()?,
    };
    let dag = loaded.dag?;
    let dag = if dag.name == run.dag {
        dag
    } else {
        dag.locals.into_iter().find(|l| l.name == run.dag)?
    };
    dag.step(step).cloned()
}

/// What a person decides on a waiting step.
pub(crate) enum Ask {
    /// With the inputs given: text, or (for a human task) typed JSON values.
    Approve(Vec<(String, Value)>),
    Reject(Option<String>),
}

/// Records the decision on the waiting step `step` of a run and takes the run up again
/// (to go on, or to end rejected); the run's id, or why not (the answer's status and the
/// message).
pub(crate) fn decide(
    home: &Path,
    name: &str,
    id: &str,
    step: &str,
    ask: Ask,
) -> Result<String, (StatusCode, String)> {
    decide_in(home, (name, id, None), step, ask)
}

/// [`decide`] for a step of the run `id` of `name`, or of its sub-DAG run `sub`; the
/// root run is taken up again (its step that runs the sub-DAG takes the child up again).
fn decide_in(
    home: &Path,
    (name, id, sub): Target<'_>,
    step: &str,
    ask: Ask,
) -> Result<String, (StatusCode, String)> {
    let store = open(home).map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the run records cannot be opened".to_owned(),
        )
    })?;
    let top = find(&store, name, id).map_err(|_| {
        (
            StatusCode::NOT_FOUND,
            format!("the DAG `{name}` has no run `{id}`"),
        )
    })?;
    let run = match sub {
        None => top.clone(),
        Some(sub) => find_sub(&store, name, id, sub).map_err(|_| {
            (
                StatusCode::NOT_FOUND,
                format!("run {id} of `{name}` has no sub-DAG run `{sub}`"),
            )
        })?,
    };
    let root = match run.root.and_then(|k| store.run_by_key(k).ok().flatten()) {
        Some(root) => root,
        None => top,
    };
    let steps = store
        .steps(run.key)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    match steps.iter().find(|s| s.name == step && s.handler.is_none()) {
        None => {
            return Err((
                StatusCode::NOT_FOUND,
                format!("run {} of `{name}` has no step `{step}`", run.run_id),
            ));
        }
        Some(s) if s.status != wharf_store::Status::Waiting => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "the step `{step}` does not wait for an approval (it is {})",
                    s.status
                ),
            ));
        }
        Some(_) => {}
    }
    let defined = step_of(&store, &run, step);
    if let (Some(d), Ask::Approve(inputs)) = (&defined, &ask)
        && matches!(d.executor, wharf_spec::Executor::HumanTask(_))
    {
        return complete_task(home, &store, &run, d, inputs);
    }
    let decision = match ask {
        Ask::Approve(inputs) => {
            let mut text = Vec::with_capacity(inputs.len());
            for (key, value) in inputs {
                match value {
                    Value::String(v) => text.push((key, v)),
                    _ => {
                        return Err((
                            StatusCode::BAD_REQUEST,
                            format!("the input `{key}` must be text"),
                        ));
                    }
                }
            }
            let inputs = text;
            let approval = defined.as_ref().and_then(approval_in).unwrap_or_default();
            if let Some((key, _)) = inputs.iter().find(|(k, _)| !approval.input.contains(k)) {
                let takes = if approval.input.is_empty() {
                    "none".to_owned()
                } else {
                    approval.input.join(", ")
                };
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("the step `{step}` takes no input `{key}`; it takes: {takes}"),
                ));
            }
            let missing: Vec<&str> = approval
                .required
                .iter()
                .filter(|r| !inputs.iter().any(|(k, v)| k == *r && !v.is_empty()))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("required inputs missing: {}", missing.join(", ")),
                ));
            }
            wharf_store::Decision::Approved(inputs)
        }
        Ask::Reject(reason) => wharf_store::Decision::Rejected(reason),
    };
    store
        .decide(run.key, step, &decision)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // A step that ran before it waited (Dagu 2.x `approval`) is done once approved: the
    // run taken up again keeps it, with its outputs, and runs the steps after it.
    if let wharf_store::Decision::Approved(inputs) = &decision
        && defined.is_some_and(|s| s.approval.is_some())
    {
        store
            .approve_step(run.key, step, inputs)
            .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    wharf_control::retry(home, &root, None, false)
        .map_err(|e| (StatusCode::CONFLICT, e.to_string()))?;
    Ok(run.run_id)
}

/// A human task's answer, as `wharf human-task complete` gives it: recorded with its
/// outputs, and the run taken up again when no task of it waits any more.
fn complete_task(
    home: &Path,
    store: &Store,
    run: &RunRecord,
    step: &wharf_spec::Step,
    inputs: &[(String, Value)],
) -> Result<String, (StatusCode, String)> {
    use wharf_store::Completion;
    let form = match &step.executor {
        wharf_spec::Executor::HumanTask(t) => t.form.as_ref(),
        _ => None,
    };
    let given = if inputs.iter().all(|(_, v)| v.is_string()) {
        // A web form's empty box for a number or a boolean is a field not given (its
        // default, or `required`, then applies), not an error.
        let empty_non_text = |k: &str, v: &str| {
            v.is_empty()
                && form
                    .and_then(|f| f.field(k))
                    .is_some_and(|f| f.ty != wharf_spec::form::ScalarType::String)
        };
        wharf_spec::form::Given::Text(
            inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .filter(|(k, v)| !empty_non_text(k, v))
                .collect(),
        )
    } else {
        wharf_spec::form::Given::Json(inputs.iter().cloned().collect())
    };
    let id = step.id.as_deref().unwrap_or(&step.name);
    let done = wharf_engine::task::complete(store, run, id, given)
        .map_err(|why| (StatusCode::BAD_REQUEST, why))?;
    let resume = match done {
        Completion::Completed { resume, .. } | Completion::Repeated { resume } => resume,
        Completion::Different => {
            return Err((
                StatusCode::CONFLICT,
                format!("human task `{id}` was already completed with a different input"),
            ));
        }
        Completion::RunNotWaiting(status) | Completion::StepNotWaiting(status) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("human task `{id}` is not waiting (it is {status})"),
            ));
        }
    };
    if resume && let Err(e) = wharf_control::retry(home, run, None, false) {
        let _ = store.release_resume(run.key, &step.name);
        return Err((
            StatusCode::CONFLICT,
            format!("human task `{id}` was completed, but its run could not be resumed: {e}"),
        ));
    }
    Ok(run.run_id.clone())
}

fn decided(
    result: Result<String, (StatusCode, String)>,
    step: &str,
    resumed: Option<bool>,
) -> Reply {
    match result {
        Ok(run_id) => answer(
            StatusCode::OK,
            &Decided {
                run_id,
                step: step.to_owned(),
                resumed,
            },
        ),
        Err((StatusCode::NOT_FOUND, message)) => not_found(message),
        Err((StatusCode::BAD_REQUEST, message)) => bad_request(message),
        Err((_, message)) => internal(message),
    }
}

/// A run (`name`, `id`), or one of its sub-DAG runs.
pub(super) type Target<'a> = (&'a str, &'a str, Option<&'a str>);

/// Approves a waiting step with its inputs; the run is taken up again from there.
pub(super) fn approve(home: &Path, target: Target<'_>, step: &str, body: &Bytes) -> Reply {
    let body = or_reply!(body_json(body));
    let inputs = match approval_inputs(&body) {
        Ok(inputs) => inputs,
        Err(why) => return bad_request(why),
    };
    decided(
        decide_in(home, target, step, Ask::Approve(inputs)),
        step,
        Some(true),
    )
}

/// Rejects a waiting step; the run ends `rejected` (its handlers run).
pub(super) fn reject(home: &Path, target: Target<'_>, step: &str, body: &Bytes) -> Reply {
    let body = or_reply!(body_json(body));
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return bad_request("`reason` must be text"),
    };
    decided(
        decide_in(home, target, step, Ask::Reject(reason)),
        step,
        None,
    )
}

/// `inputs` of an approval request: names and values (text, or a human task's typed
/// values).
fn approval_inputs(body: &Value) -> Result<Vec<(String, Value)>, String> {
    let mut inputs = Vec::new();
    if let Some(given) = body.get("inputs").filter(|v| !v.is_null()) {
        let Some(map) = given.as_object() else {
            return Err("`inputs` must be an object of names and text values".to_owned());
        };
        for (key, value) in map {
            inputs.push((key.clone(), value.clone()));
        }
    }
    Ok(inputs)
}

/// Takes a queued run out of its queue (it ends `aborted`); 400 when it is not queued.
pub(super) fn dequeue(home: &Path, name: &str, id: &str) -> Reply {
    let store = or_reply!(open(home));
    let run = or_reply!(find(&store, name, id));
    match store.dequeue(run.key, "dequeued") {
        Ok(true) => answer(StatusCode::OK, &Empty {}),
        Ok(false) => bad_request(format!(
            "run {} of `{name}` is not queued (it is {})",
            run.run_id, run.status
        )),
        Err(e) => internal(e),
    }
}

/// `GET /queues`: each queue with the runs that hold its places and those that wait, the
/// installation's global queues included when empty.
pub(super) fn queues(home: &Path) -> Reply {
    let store = or_reply!(open(home));
    let runs = match store.in_queues() {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let globals = wharf_engine::global_queues();
    let mut queues: Vec<Queue> = globals
        .iter()
        .map(|g| Queue {
            name: g.name.clone(),
            kind: "global",
            max_concurrency: g.max_concurrency,
            running: Vec::new(),
            queued: Vec::new(),
        })
        .collect();
    for run in &runs {
        let Some(name) = &run.queue else { continue };
        let i = match queues.iter().position(|q| q.name == *name) {
            Some(i) => i,
            None => {
                // A DAG's own queue: its size is the DAG's (read from the run's file).
                let size = wharf_engine::queue_size_of(run).unwrap_or(1);
                queues.push(Queue {
                    name: name.clone(),
                    kind: "dag-based",
                    max_concurrency: size,
                    running: Vec::new(),
                    queued: Vec::new(),
                });
                queues.len() - 1
            }
        };
        let summary = RunSummary::of(run);
        if run.status == wharf_store::Status::Queued {
            queues[i].queued.push(summary);
        } else {
            queues[i].running.push(summary);
        }
    }
    let total_running: usize = queues.iter().map(|q| q.running.len()).sum();
    let total_capacity: u64 = queues.iter().map(|q| u64::from(q.max_concurrency)).sum();
    let utilization = if total_capacity == 0 {
        0.0
    } else {
        (total_running as f64 * 100.0 / total_capacity as f64).min(100.0)
    };
    let summary = QueuesSummary {
        total_queues: queues.len(),
        total_running,
        total_queued: queues.iter().map(|q| q.queued.len()).sum(),
        total_capacity,
        utilization,
    };
    answer(StatusCode::OK, &Queues { queues, summary })
}

/// `PATCH /dag-runs/{name}/{id}/steps/{step}/status` with `{status}` (a node status
/// number): a finished run's step marked by hand (a retry then takes it as it is marked).
/// `PATCH /dag-runs/{name}/{id}/steps/{step}/status` (and, with `sub`, the same for a step
/// of a sub-DAG run in the run's tree).
pub(super) fn set_step_status(
    home: &Path,
    (name, id, sub, step): (&str, &str, Option<&str>, &str),
    body: &Bytes,
) -> Reply {
    let body: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("the body is not JSON: {e}")),
    };
    use wharf_store::Status as S;
    let status = match body.get("status").and_then(Value::as_i64) {
        Some(0) => S::NotStarted,
        Some(2) => S::Failed,
        Some(3) => S::Aborted,
        Some(4) => S::Succeeded,
        Some(5) => S::Skipped,
        Some(6) => S::PartiallySucceeded,
        Some(8) => S::Rejected,
        Some(1 | 7) => {
            return bad_request(
                "a step is made running or waiting by its run, not by hand (give 0, 2, 3, 4, 5, 6 or 8)",
            );
        }
        _ => return bad_request("`status` is a node status number: 0, 2, 3, 4, 5, 6 or 8"),
    };
    let store = or_reply!(open(home));
    let top = or_reply!(find(&store, name, id));
    if matches!(top.status, S::Running | S::Queued) {
        return bad_request(format!(
            "run {} of {name} is {}: a step's status is set once the run has ended",
            top.run_id, top.status
        ));
    }
    let run = match sub {
        Some(sub) => or_reply!(find_sub(&store, name, id, sub)),
        None => top,
    };
    if matches!(run.status, S::Running | S::Queued) {
        return bad_request(format!(
            "the sub-DAG run {} is {}: a step's status is set once it has ended",
            run.run_id, run.status
        ));
    }
    match store.set_step_status(run.key, step, status) {
        Ok(true) => answer(StatusCode::OK, &serde_json::json!({})),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {} of {} has no step `{step}`", run.run_id, run.dag),
        ),
        Err(e) => internal(e),
    }
}

/// `GET /metrics`: Prometheus text, with the names Dagu uses.
pub(crate) fn metrics(
    dags: &Path,
    home: &Path,
    uptime: std::time::Duration,
    scheduler: bool,
) -> Reply {
    let store = or_reply!(open(home));
    let counts = store.status_counts_since(i64::MIN).unwrap_or_default();
    let count = |s: wharf_store::Status| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[String]| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
    };
    metric(
        "dagu_info",
        "gauge",
        "Build information",
        &[format!(
            "dagu_info{{version=\"{}\",server=\"wharf\"}} 1",
            env!("CARGO_PKG_VERSION")
        )],
    );
    metric(
        "dagu_uptime_seconds",
        "gauge",
        "Time since the server started",
        &[format!("dagu_uptime_seconds {}", uptime.as_secs())],
    );
    metric(
        "dagu_dag_runs_currently_running",
        "gauge",
        "Runs running now",
        &[format!(
            "dagu_dag_runs_currently_running {}",
            count(wharf_store::Status::Running)
        )],
    );
    metric(
        "dagu_dag_runs_queued_total",
        "gauge",
        "Runs waiting in a queue",
        &[format!(
            "dagu_dag_runs_queued_total {}",
            count(wharf_store::Status::Queued)
        )],
    );
    let by_status: Vec<String> = counts
        .iter()
        .filter(|(s, _)| s.is_final())
        .map(|(s, n)| {
            let label = match s {
                wharf_store::Status::Succeeded => "success",
                wharf_store::Status::Failed => "error",
                other => other.as_str(),
            };
            format!("dagu_dag_runs_total{{status=\"{label}\"}} {n}")
        })
        .collect();
    metric(
        "dagu_dag_runs_total",
        "counter",
        "Runs by how they ended",
        &by_status,
    );
    metric(
        "dagu_dags_total",
        "gauge",
        "DAGs in the folder",
        &[format!("dagu_dags_total {}", dag_files(dags).len())],
    );
    metric(
        "dagu_scheduler_running",
        "gauge",
        "Whether this server runs the scheduler",
        &[format!("dagu_scheduler_running {}", u8::from(scheduler))],
    );
    let mut r = axum::response::Response::new(axum::body::Body::from(text));
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
