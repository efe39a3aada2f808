//! What the pages' forms do, one function an action. Each says where the browser goes
//! next (a path under the base path) or why it could not be done, in words.

use std::path::Path;

use axum::http::StatusCode;
use wharf_store::{Status, Store};

use super::{Chrome, Edit, Reply, State, form_field, render, start_params};

/// Where an action leads: the page to show next, or why it was not done.
pub(super) type Done = Result<String, String>;

/// The DAG an action is about.
pub(super) struct At<'a> {
    pub home: &'a Path,
    /// Its file, and the file's name in the folder (the pages' paths use it).
    pub file: &'a Path,
    pub file_name: &'a str,
    /// The name its runs are kept under.
    pub name: String,
}

impl At<'_> {
    /// The DAG in the file, when it is valid.
    fn dag(&self) -> Option<wharf_spec::Dag> {
        wharf_spec::load_file(self.file).ok()?.dag
    }

    /// The DAG's name (the file's name when it is not valid).
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run_page(&self, run_id: &str) -> String {
        format!("/dags/{}/runs/{run_id}", self.file_name)
    }
}

/// `save`: the YAML replaces the file when it is a valid DAG; an invalid one comes back
/// with its errors, to fix (the file is as it was).
pub(super) fn save(
    state: &State,
    file_name: &str,
    body: &[u8],
    failed: impl Fn(String) -> Reply,
) -> Reply {
    use crate::api::dags::{Unsaved, save_spec};
    let spec = form_field(body, "spec").unwrap_or_default();
    match save_spec(&state.config.dags, file_name, &spec) {
        Ok(()) => super::redirect(&format!("{}/dags/{file_name}", state.config.base_path)),
        Err(Unsaved::Invalid(errors)) => render(
            StatusCode::BAD_REQUEST,
            &Edit {
                base: Chrome::of(&state.config),
                file: file_name.to_owned(),
                spec,
                errors,
            },
        ),
        Err(Unsaved::NoFile(reply)) => *reply,
        Err(Unsaved::Refused(why) | Unsaved::Failed(why)) => failed(why),
    }
}

/// `delete`: the DAG's file removed (its runs stay in the history).
pub(super) fn delete(at: &At<'_>) -> Done {
    std::fs::remove_file(at.file)
        .map_err(|e| format!("cannot remove {}: {e}", at.file.display()))?;
    // Its webhook goes with it: a later file of that name does not inherit the token.
    if let Some(stem) = at.file.file_stem().and_then(|s| s.to_str())
        && let Ok(store) = Store::open(at.home)
    {
        let _ = store.delete_webhook(stem);
    }
    Ok("/".to_owned())
}

/// `webhook`: the DAG's webhook made, given a new token, disabled, enabled or removed
/// (the form's `do`); a token made is given back, to be shown once.
pub(super) fn webhook(at: &At<'_>, body: &[u8]) -> Result<Option<String>, String> {
    let what = form_field(body, "do").unwrap_or_default();
    let store = Store::open(at.home).map_err(|e| e.to_string())?;
    crate::api::webhooks::manage(&store, at.file_name, &what)
}

/// `suspend` / `resume`: the scheduler skips the DAG's slots, or starts them again.
pub(super) fn suspend(at: &At<'_>, suspended: bool) -> Done {
    Store::open(at.home)
        .and_then(|s| s.set_suspended(&at.name(), suspended))
        .map(|()| "/".to_owned())
        .map_err(|e| e.to_string())
}

/// `approve` (with `inputs` as `NAME=value` words) or `reject` (with a `reason`) of a
/// waiting step of run `run`.
pub(super) fn decide(at: &At<'_>, approve: bool, body: &[u8]) -> Done {
    let run = form_field(body, "run").unwrap_or_default();
    let step = form_field(body, "step").unwrap_or_default();
    let ask = if approve && form_field(body, "task").is_some() {
        // A human task's form: a field per input; one left empty is not given.
        let inputs = form_urlencoded::parse(body)
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("field.")?.to_owned();
                (!v.is_empty()).then(|| (name, serde_json::Value::String(v.into_owned())))
            })
            .collect();
        crate::api::runs::Ask::Approve(inputs)
    } else if approve {
        let text = form_field(body, "inputs").unwrap_or_default();
        let words = shell_words::split(&text)
            .map_err(|_| "the inputs have an unmatched quote".to_owned())?;
        let mut inputs = Vec::new();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return Err(format!("`{word}` is not NAME=value"));
            };
            inputs.push((key.to_owned(), serde_json::Value::String(value.to_owned())));
        }
        crate::api::runs::Ask::Approve(inputs)
    } else {
        crate::api::runs::Ask::Reject(form_field(body, "reason").filter(|r| !r.is_empty()))
    };
    crate::api::runs::decide(at.home, &at.name(), &run, &step, ask)
        .map(|id| at.run_page(&id))
        .map_err(|(_, why)| why)
}

/// `start`: a new run with the form's params.
/// `start` or `enqueue`: a new run with the form's params and run id (a new one when the
/// field is empty); enqueued, it waits for a place in its queue.
pub(super) fn start(at: &At<'_>, body: &[u8], enqueue: bool) -> Done {
    let Some(dag) = at.dag() else {
        return Err(format!("the DAG `{}` is invalid", at.file_name));
    };
    let params = start_params(&dag, body)?;
    let chosen =
        serde_json::json!({"dagRunId": form_field(body, "run_id").unwrap_or_default().trim()});
    let run_id = crate::api::dags::chosen_run_id(&dag, &chosen).map_err(|_| {
        if dag.run_config.disable_run_id_edit {
            format!(
                "the DAG `{}` does not take a chosen run id (its runConfig has disableRunIdEdit)",
                dag.name
            )
        } else {
            "a run id is letters, digits, `_` and `-` only".to_owned()
        }
    })?;
    if !enqueue {
        return new_run_as(at, &dag.name, &params, &run_id);
    }
    let store = Store::open(at.home).map_err(|e| e.to_string())?;
    let (log_base, place) = wharf_engine::placement(&dag);
    let new = wharf_store::NewRun {
        dag: &dag.name,
        run_id: &run_id,
        file: at.file,
        params: &params,
        log_base: log_base.as_deref(),
        parent: None,
        queue: place.as_ref().map(|(q, n)| (q.as_str(), *n)),
    };
    wharf_control::enqueue(&store, at.home, &new, false).map_err(|e| e.to_string())?;
    Ok(at.run_page(&run_id))
}

/// A new run of the DAG, started from the pages; its page.
fn new_run_as(at: &At<'_>, dag: &str, params: &[String], run_id: &str) -> Done {
    started(at, dag, params, run_id, None)
}

/// A new run started from the pages (the DAG as the run `as_run` ran it, when given).
fn started(
    at: &At<'_>,
    dag: &str,
    params: &[String],
    run_id: &str,
    as_run: Option<(&str, &str)>,
) -> Done {
    wharf_control::start(
        at.home,
        &wharf_control::Start {
            file: at.file,
            dag,
            run_id,
            params,
            singleton: false,
            trigger: "ui",
            as_run,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(at.run_page(run_id))
}

/// The actions on one run (`run`, the latest by default): `stop`, `retry` (with `step`,
/// that step alone; with `downstream` too, the steps after it as well), `mark` (`step`
/// recorded as `status`, succeeded or failed), `rerun` (a new run with its params), `dequeue`.
pub(super) fn on_run(at: &At<'_>, action: &str, body: &[u8]) -> Done {
    let name = at.name();
    let wanted = form_field(body, "run").unwrap_or_else(|| "latest".into());
    let store = Store::open(at.home).map_err(|e| e.to_string())?;
    let found = if wanted == "latest" {
        store.latest_run(&name)
    } else {
        store.run(&name, &wanted)
    };
    let Ok(Some(run)) = found else {
        return Err(format!("the DAG `{name}` has no run `{wanted}`"));
    };
    match action {
        "dequeue" => match store.dequeue(run.key, "dequeued from the web UI") {
            Ok(true) => Ok("/queues".to_owned()),
            Ok(false) => Err(format!(
                "run {} is not queued (it is {})",
                run.run_id, run.status
            )),
            Err(e) => Err(e.to_string()),
        },
        // Run again as new: the run's params and its DAG as it ran it.
        "rerun" => started(
            at,
            &name,
            &run.params,
            &wharf_engine::new_run_id(),
            Some((&run.dag, &run.run_id)),
        ),
        "mark" => {
            let step = form_field(body, "step").unwrap_or_default();
            let status = match form_field(body, "status").as_deref() {
                Some("succeeded") => Status::Succeeded,
                Some("failed") => Status::Failed,
                other => {
                    return Err(format!(
                        "a step is marked succeeded or failed, not {other:?}"
                    ));
                }
            };
            if matches!(run.status, Status::Running | Status::Queued) {
                return Err(format!(
                    "run {} is {}: a step is marked once the run has ended",
                    run.run_id, run.status
                ));
            }
            match store.set_step_status(run.key, &step, status) {
                Ok(true) => Ok(at.run_page(&run.run_id)),
                Ok(false) => Err(format!("run {} has no step `{step}`", run.run_id)),
                Err(e) => Err(e.to_string()),
            }
        }
        "stop" => wharf_control::stop_run(&store, &name, &run.run_id)
            .map(|_| at.run_page(&run.run_id))
            .map_err(|e| e.to_string()),
        _ => {
            let step = form_field(body, "step").filter(|s| !s.is_empty());
            if step.is_none() && run.status == Status::Succeeded {
                return Err(format!(
                    "run {} succeeded: it has no failed or stopped step to run again (start a new run instead)",
                    run.run_id
                ));
            }
            let downstream = form_field(body, "downstream").is_some();
            wharf_control::retry(at.home, &run, step.as_deref(), downstream)
                .map(|()| at.run_page(&run.run_id))
                .map_err(|e| e.to_string())
        }
    }
}
