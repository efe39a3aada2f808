//! The endpoints of DAGs: list, create, check, read, edit, delete, start, stop, runs.

use std::path::Path;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::Value;
use wharf_store::StepRecord;

use super::shapes::*;
use super::*;

pub(super) fn list_dags(dags: &Path, home: &Path, query: &str) -> Reply {
    let store = or_reply!(open(home));
    let name_filter = query_param(query, "name").map(|n| n.to_lowercase());
    let tag_filter = query_param(query, "tag");
    let page = query_param(query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let per_page = query_param(query, "perPage")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(100);
    let by_next_run = match query_param(query, "sort").as_deref() {
        None | Some("name") => false,
        Some("nextRun") => true,
        Some(other) => return bad_request(format!("`sort` is name or nextRun, not `{other}`")),
    };
    let descending = match query_param(query, "order").as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return bad_request(format!("`order` is asc or desc, not `{other}`")),
    };
    let now = jiff::Timestamp::now();
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (file_name, path) in dag_files(dags) {
        let loaded = match wharf_spec::load_file(&path) {
            Ok(l) => l,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let errs = diagnostics(&loaded);
        let dag_name = loaded
            .dag
            .as_ref()
            .map_or(file_name.clone(), |d| d.name.clone());
        if let Some(f) = &name_filter
            && !dag_name.to_lowercase().contains(f.as_str())
            && !file_name.to_lowercase().contains(f.as_str())
        {
            continue;
        }
        if let Some(t) = &tag_filter
            && !loaded.dag.as_ref().is_some_and(|d| d.tags.contains(t))
        {
            continue;
        }
        let latest = store
            .latest_run(&dag_name)
            .ok()
            .flatten()
            .map_or_else(|| RunSummary::none(&dag_name), |r| RunSummary::of(&r));
        let suspended = store.is_suspended(&dag_name).unwrap_or(false);
        // The next scheduled run is worked out only when the list is sorted by it.
        let next = loaded
            .dag
            .as_ref()
            .filter(|_| by_next_run)
            .and_then(|d| crate::scheduler::next_run(d, now));
        let key = dag_name.to_lowercase();
        let dag = match loaded.dag.as_ref() {
            Some(d) => DagOrName::Dag(DagShape::of(d)),
            None => DagOrName::Name { name: dag_name },
        };
        items.push((
            key,
            next,
            DagFile {
                file_name,
                dag,
                latest,
                suspended,
                errors: errs,
            },
        ));
    }
    // By name (letters of either case together), or by the next scheduled run (DAGs
    // without one last, in either order).
    items.sort_by(|a, b| {
        let by_name = a.0.cmp(&b.0);
        let order = if by_next_run {
            match (a.1, b.1) {
                (Some(x), Some(y)) => x.cmp(&y).then(by_name),
                (Some(_), None) => return std::cmp::Ordering::Less,
                (None, Some(_)) => return std::cmp::Ordering::Greater,
                (None, None) => by_name,
            }
        } else {
            by_name
        };
        if descending { order.reverse() } else { order }
    });
    let items: Vec<DagFile> = items.into_iter().map(|(_, _, f)| f).collect();
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let dags: Vec<DagFile> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    answer(
        StatusCode::OK,
        &DagList {
            dags,
            errors,
            pagination: Pagination {
                total_records: total,
                current_page: page,
                total_pages: pages,
                next_page: if page < pages { page + 1 } else { 0 },
                prev_page: page.saturating_sub(1),
            },
        },
    )
}

pub(super) fn create_dag(dags: &Path, body: &Bytes) -> Reply {
    let body = or_reply!(body_json(body));
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad_request("`name` is required");
    };
    let file = or_reply!(dag_file(dags, name));
    if file.exists() {
        return error(
            StatusCode::CONFLICT,
            "already_exists",
            format!("the DAG `{name}` exists already"),
        );
    }
    let spec = body
        .get("spec")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| "steps:\n  - echo hello\n".to_owned());
    let loaded = check_spec(dags, name, &spec);
    let errs = diagnostics(&loaded);
    if !errs.is_empty() {
        return bad_request(format!("the spec is invalid: {}", errs.join("; ")));
    }
    match std::fs::write(&file, spec) {
        Ok(()) => answer(
            StatusCode::CREATED,
            &Named {
                name: name.to_owned(),
            },
        ),
        Err(e) => internal(format!("cannot write {}: {e}", file.display())),
    }
}

pub(super) fn validate_spec(dags: &Path, body: &Bytes) -> Reply {
    let body = or_reply!(body_json(body));
    let Some(spec) = body.get("spec").and_then(Value::as_str) else {
        return bad_request("`spec` is required");
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| valid_name(n))
        .unwrap_or("dag");
    let loaded = check_spec(dags, name, spec);
    let errs = diagnostics(&loaded);
    answer(
        StatusCode::OK,
        &Validation {
            valid: errs.is_empty(),
            errors: errs,
            dag: loaded.dag.as_ref().map(DagDetails::of),
        },
    )
}

pub(super) fn get_dag(dags: &Path, home: &Path, name: &str) -> Reply {
    let file = or_reply!(existing_dag_file(dags, name));
    let store = or_reply!(open(home));
    let loaded = match wharf_spec::load_file(&file) {
        Ok(l) => l,
        Err(e) => return internal(format!("cannot read {}: {e}", file.display())),
    };
    let dag_name = loaded
        .dag
        .as_ref()
        .map_or(name.to_owned(), |d| d.name.clone());
    let latest = match store.latest_run(&dag_name) {
        Ok(Some(r)) => RunDetails::of(&store, &r),
        _ => RunDetails::none(&dag_name),
    };
    answer(
        StatusCode::OK,
        &DagAnswer {
            dag: loaded.dag.as_ref().map(DagDetails::of),
            latest,
            suspended: store.is_suspended(&dag_name).unwrap_or(false),
            local_dags: Vec::new(),
            errors: diagnostics(&loaded),
        },
    )
}

pub(super) fn delete_dag(dags: &Path, home: &Path, name: &str) -> Reply {
    let file = or_reply!(existing_dag_file(dags, name));
    match std::fs::remove_file(&file) {
        Ok(()) => {
            // Its webhook goes with it: a later file of that name does not inherit the token.
            if let Ok(store) = open(home) {
                let _ = store.delete_webhook(name);
            }
            let mut r = Response::new(axum::body::Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => internal(format!("cannot remove {}: {e}", file.display())),
    }
}

pub(super) fn get_spec(dags: &Path, name: &str) -> Reply {
    let file = or_reply!(existing_dag_file(dags, name));
    let loaded = match wharf_spec::load_file(&file) {
        Ok(l) => l,
        Err(e) => return internal(format!("cannot read {}: {e}", file.display())),
    };
    answer(
        StatusCode::OK,
        &Spec {
            spec: wharf_spec::redact::source(&loaded.source),
            errors: diagnostics(&loaded),
            dag: loaded.dag.as_ref().map(DagDetails::of),
        },
    )
}

pub(super) fn put_spec(dags: &Path, name: &str, body: &Bytes) -> Reply {
    let body = or_reply!(body_json(body));
    let Some(spec) = body.get("spec").and_then(Value::as_str) else {
        return bad_request("`spec` is required");
    };
    match save_spec(dags, name, spec) {
        Ok(()) => answer(StatusCode::OK, &Errors { errors: Vec::new() }),
        Err(Unsaved::NoFile(reply)) => *reply,
        Err(Unsaved::Refused(why)) => bad_request(why),
        Err(Unsaved::Invalid(errs)) => {
            // Nothing is written: the file keeps working.
            #[derive(serde::Serialize)]
            struct Invalid {
                code: &'static str,
                message: String,
                details: Errors,
            }
            answer(
                StatusCode::BAD_REQUEST,
                &Invalid {
                    code: "bad_request",
                    message: format!(
                        "the spec is invalid; the file was not changed: {}",
                        errs.join("; ")
                    ),
                    details: Errors { errors: errs },
                },
            )
        }
        Err(Unsaved::Failed(why)) => internal(why),
    }
}

/// Why a spec was not saved (the file is as it was).
pub(crate) enum Unsaved {
    NoFile(Box<Reply>),
    /// A `<redacted>` with no value to keep, and the like.
    Refused(String),
    /// The spec's diagnostics.
    Invalid(Vec<String>),
    Failed(String),
}

/// Replaces DAG `name`'s file with `spec` when it is a valid DAG. The spec was shown
/// redacted: what still says `<redacted>` keeps the file's value.
pub(crate) fn save_spec(dags: &Path, name: &str, spec: &str) -> Result<(), Unsaved> {
    let file = existing_dag_file(dags, name).map_err(Unsaved::NoFile)?;
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    let restored = wharf_spec::redact::restore(spec, &old)
        .map_err(|e| Unsaved::Refused(format!("the file was not changed: {e}")))?;
    let loaded = check_spec(dags, name, &restored);
    let errs = diagnostics(&loaded);
    if !errs.is_empty() {
        return Err(Unsaved::Invalid(errs));
    }
    // Written beside and renamed: a reader never sees half a file.
    let tmp = file.with_extension("yaml.tmp");
    std::fs::write(&tmp, &restored)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| Unsaved::Failed(format!("cannot write {}: {e}", file.display())))
}

/// Whether a run starts now (its process recorded before the answer) or is enqueued (the
/// answer comes once it is recorded; its process starts on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Start,
    Enqueue,
}

pub(super) fn start(dags: &Path, home: &Path, file_name: &str, body: &Bytes, mode: Mode) -> Reply {
    let (file, dag) = or_reply!(runnable(dags, file_name));
    let body = or_reply!(body_json(body));
    let run_id = or_reply!(chosen_run_id(&dag, &body));
    start_run(home, &file, &dag, &run_id, &body, mode)
}

/// The file of the DAG `file_name` of the folder and its DAG, when it is a valid one.
pub(super) fn runnable(
    dags: &Path,
    file_name: &str,
) -> Result<(std::path::PathBuf, wharf_spec::Dag), Box<Reply>> {
    let file = existing_dag_file(dags, file_name)?;
    let loaded = wharf_spec::load_file(&file)
        .map_err(|e| Box::new(internal(format!("cannot read {}: {e}", file.display()))))?;
    let problems = diagnostics(&loaded);
    match loaded.dag {
        Some(dag) => Ok((file, dag)),
        None => Err(Box::new(bad_request(format!(
            "the DAG `{file_name}` is invalid: {}",
            problems.join("; ")
        )))),
    }
}

/// `POST /dag-runs` (and `/dag-runs/enqueue`): a run of a DAG sent as YAML in `spec`,
/// named by its `name` or the body's. The spec is kept as the run's DAG file
/// (`$WHARF_HOME/specs/RUN_ID/NAME.yaml`), so the run can be shown and retried like any.
pub(super) fn start_spec(home: &Path, body: &Bytes, mode: Mode) -> Reply {
    let body = or_reply!(body_json(body));
    let Some(spec) = body.get("spec").and_then(Value::as_str) else {
        return bad_request("the body needs `spec`: the DAG as YAML text");
    };
    let given_name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let probe = wharf_spec::load_str(spec.to_owned(), &home.join("specs/probe/dag.yaml"));
    let Some(probe_dag) = probe.dag.as_ref() else {
        return bad_request(format!(
            "the spec is invalid: {}",
            diagnostics(&probe).join("; ")
        ));
    };
    let name = if spec_names_itself(spec) {
        probe_dag.name.clone()
    } else if !given_name.is_empty() {
        given_name.to_owned()
    } else {
        return bad_request("the spec has no `name`: give one in the spec or as `name`");
    };
    if !wharf_spec::is_dag_name(&name) {
        return bad_request(format!(
            "invalid DAG name `{name}`: at most 40 letters, digits, `_`, `-` and `.`"
        ));
    }
    let run_id = or_reply!(chosen_run_id(probe_dag, &body));
    let dir = home.join("specs").join(wharf_store::safe_name(&run_id));
    let file = dir.join(format!("{name}.yaml"));
    let loaded = wharf_spec::load_str(spec.to_owned(), &file);
    let Some(dag) = loaded.dag.as_ref() else {
        return bad_request(format!(
            "the spec is invalid: {}",
            diagnostics(&loaded).join("; ")
        ));
    };
    if dir.exists() {
        return error(
            StatusCode::CONFLICT,
            "already_exists",
            format!("a run with the id `{run_id}` was already sent as a spec"),
        );
    }
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| wharf_store::write_private(&file, spec.as_bytes()))
    {
        return internal(format!("cannot keep the spec in {}: {e}", file.display()));
    }
    let reply = start_run(home, &file, dag, &run_id, &body, mode);
    if reply.status() != StatusCode::OK {
        let _ = std::fs::remove_dir_all(&dir);
    }
    reply
}

/// Whether a spec sets its own `name` (at the top of its first document).
fn spec_names_itself(spec: &str) -> bool {
    wharf_spec::flat_settings_with_lists(spec).is_ok_and(|s| {
        s.values
            .iter()
            .any(|(k, v)| k == "name" && !v.trim().is_empty())
    })
}

/// The name a request keeps its run under: its `dagName`, else `own` (the DAG's, or the
/// earlier run's); another than `own` must be a DAG name.
pub(crate) fn kept_name(body: &Value, own: &str) -> Result<String, Box<Reply>> {
    match body.get("dagName").and_then(Value::as_str) {
        None | Some("") => Ok(own.to_owned()),
        Some(given) if given == own || wharf_spec::is_dag_name(given) => Ok(given.to_owned()),
        Some(given) => Err(Box::new(bad_request(format!(
            "invalid dagName `{given}`: at most {} letters, digits, `_`, `-` and `.`",
            wharf_spec::DAG_NAME_MAX
        )))),
    }
}

/// The run id a request chose (checked), or a new one.
pub(crate) fn chosen_run_id(dag: &wharf_spec::Dag, body: &Value) -> Result<String, Box<Reply>> {
    match body.get("dagRunId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && dag.run_config.disable_run_id_edit => {
            Err(Box::new(bad_request(format!(
                "the DAG `{}` does not take a chosen dagRunId (its runConfig has disableRunIdEdit); \
                 leave dagRunId out and a new id is given",
                dag.name
            ))))
        }
        Some(id) if !id.is_empty() => checked_run_id(id),
        _ => Ok(wharf_engine::new_run_id()),
    }
}

/// A run id a request chose, if the API takes it.
pub(crate) fn checked_run_id(id: &str) -> Result<String, Box<Reply>> {
    let api_id = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !api_id || !wharf_engine::valid_run_id(id) || id == "latest" || id == "-" {
        return Err(Box::new(bad_request(format!(
            "invalid dagRunId `{id}`: letters, digits, `_` and `-` only"
        ))));
    }
    Ok(id.to_owned())
}

/// Starts run `run_id` of `dag` (read from `file`) with the body's params and singleton.
fn start_run(
    home: &Path,
    file: &Path,
    dag: &wharf_spec::Dag,
    run_id: &str,
    body: &Value,
    mode: Mode,
) -> Reply {
    let run_id = run_id.to_owned();
    let text = match body.get("params") {
        None | Some(Value::Null) => "",
        Some(Value::String(text)) => text.as_str(),
        Some(other) => {
            return bad_request(format!(
                "`params` must be a string (shell words or JSON), found {other}"
            ));
        }
    };
    let params = match checked_params(dag, text) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let singleton = body.get("singleton").and_then(Value::as_bool) == Some(true);
    let name = or_reply!(kept_name(body, &dag.name));
    // `queue`: the queue an enqueued run waits in, instead of the DAG's own.
    let queue = match body.get("queue") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) if q.is_empty() => None,
        Some(Value::String(q)) if mode == Mode::Start => {
            return bad_request(format!(
                "`queue` ({q}) is for a run that is enqueued: send it to .../enqueue"
            ));
        }
        Some(Value::String(q)) if wharf_spec::is_portable_name(q) => Some(q.clone()),
        Some(other) => {
            return bad_request(format!(
                "invalid queue {other}: a name of letters, digits, `_`, `-` and `.`"
            ));
        }
    };
    let started = match mode {
        Mode::Start => wharf_control::start(
            home,
            &wharf_control::Start {
                file,
                dag: &name,
                run_id: &run_id,
                params: &params,
                singleton,
                trigger: "api",
                as_run: None,
            },
        ),
        Mode::Enqueue => {
            let store = or_reply!(open(home));
            let new = Enqueue {
                file,
                dag,
                name: &name,
                run_id: &run_id,
                params: &params,
                queue,
                singleton,
            };
            enqueue_run(&store, home, &new).map(|_| ())
        }
    };
    match started {
        // Answered once the run is recorded: a client may ask for it right away.
        Ok(()) => answer(StatusCode::OK, &Started { run_id }),
        Err(e) => control_error(&e),
    }
}

/// A run to enqueue: run `run_id` of `dag` (read from `file`), kept under `name`.
pub(super) struct Enqueue<'a> {
    pub file: &'a Path,
    pub dag: &'a wharf_spec::Dag,
    pub name: &'a str,
    pub run_id: &'a str,
    pub params: &'a [String],
    /// The queue it waits in, instead of the DAG's own.
    pub queue: Option<String>,
    pub singleton: bool,
}

/// Records the run, `running` when its queue has a place, else `queued`.
pub(super) fn enqueue_run(
    store: &Store,
    home: &Path,
    run: &Enqueue<'_>,
) -> Result<wharf_store::Status, wharf_control::Error> {
    let (log_base, place) = match &run.queue {
        Some(q) => {
            let mut dag = run.dag.clone();
            dag.queue = Some(q.clone());
            wharf_engine::placement(&dag)
        }
        None => wharf_engine::placement(run.dag),
    };
    let new = wharf_store::NewRun {
        dag: run.name,
        run_id: run.run_id,
        file: run.file,
        params: run.params,
        log_base: log_base.as_deref(),
        parent: None,
        queue: place.as_ref().map(|(q, n)| (q.as_str(), *n)),
    };
    wharf_control::enqueue(store, home, &new, run.singleton)
}

/// A run-control error as the API's `{code, message}`.
pub(super) fn control_error(e: &wharf_control::Error) -> Reply {
    use wharf_control::Error as E;
    match e {
        E::AlreadyRunning(_) | E::RunIdTaken { .. } | E::StillRunning { .. } => {
            error(StatusCode::CONFLICT, "already_exists", e.to_string())
        }
        E::NotRunning { .. } => error(StatusCode::BAD_REQUEST, "not_running", e.to_string()),
        _ => internal(e),
    }
}

/// Parameters a caller gave (API or UI) for a run of `dag` ([`wharf_spec::params::words`]),
/// refused when they cannot reach a process or the DAG's params schema refuses them.
pub(crate) fn checked_params(dag: &wharf_spec::Dag, text: &str) -> Result<Vec<String>, String> {
    checked_words(dag, wharf_spec::params::words(text)?)
}

/// Params given as words (`NAME=value` or positional), refused as [`checked_params`] says.
pub(crate) fn checked_words(
    dag: &wharf_spec::Dag,
    params: Vec<String>,
) -> Result<Vec<String>, String> {
    if params.iter().any(|p| p.contains('\0')) {
        return Err("`params` must not contain a NUL character".to_owned());
    }
    if dag.run_config.disable_param_edit && !params.is_empty() && params != own_params(dag) {
        return Err(format!(
            "the DAG `{}` runs with its own params (its runConfig has disableParamEdit); \
             start it without params",
            dag.name
        ));
    }
    wharf_spec::params::check(dag, &params).map_err(|e| e.to_string())?;
    Ok(params)
}

/// The DAG's own params as words (`NAME=value`, or the value of a positional one).
fn own_params(dag: &wharf_spec::Dag) -> Vec<String> {
    dag.params
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{n}={}", p.value),
            None => p.value.clone(),
        })
        .collect()
}

pub(super) fn stop_all(dags: &Path, home: &Path, file_name: &str) -> Reply {
    with_dag_name(dags, file_name, |name| {
        let store = or_reply!(open(home));
        match wharf_control::stop_dag(&store, name) {
            Ok(runs) => {
                let errors: Vec<String> = runs
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
                    .collect();
                answer(StatusCode::OK, &Errors { errors })
            }
            Err(e) => internal(e),
        }
    })
}

pub(super) fn dag_runs_of_file(dags: &Path, home: &Path, file_name: &str) -> Reply {
    with_dag_name(dags, file_name, |name| {
        let store = or_reply!(open(home));
        let runs = store.history(name, 30).unwrap_or_default();
        let details: Vec<RunDetails> = runs.iter().map(|r| RunDetails::of(&store, r)).collect();
        // Per step, its status in each run, oldest first.
        let mut names: Vec<String> = Vec::new();
        let mut per_run: Vec<Vec<StepRecord>> = Vec::new();
        for r in runs.iter().rev() {
            let steps = store.steps(r.key).unwrap_or_default();
            for s in steps.iter().filter(|s| s.handler.is_none()) {
                if !names.contains(&s.name) {
                    names.push(s.name.clone());
                }
            }
            per_run.push(steps);
        }
        let grid: Vec<GridRow> = names
            .iter()
            .map(|n| {
                let history: Vec<i64> = per_run
                    .iter()
                    .map(|steps| {
                        steps
                            .iter()
                            .find(|s| &s.name == n)
                            .map_or(0, |s| node_status(s.status).0)
                    })
                    .collect();
                GridRow {
                    name: n.clone(),
                    history,
                }
            })
            .collect();
        answer(
            StatusCode::OK,
            &RunsOfDag {
                runs: details,
                grid,
            },
        )
    })
}

/// `POST /dags/{fileName}/suspend` `{suspend}`: the scheduler skips a suspended DAG's slots.
pub(super) fn suspend(dags: &Path, home: &Path, file_name: &str, body: &Bytes) -> Reply {
    let file = or_reply!(existing_dag_file(dags, file_name));
    let body = or_reply!(body_json(body));
    let Some(suspend) = body.get("suspend").and_then(Value::as_bool) else {
        return bad_request("`suspend` must be true or false");
    };
    let name = crate::api::dag_name_in(&file, file_name);
    let store = or_reply!(open(home));
    match store.set_suspended(&name, suspend) {
        Ok(()) => answer(StatusCode::OK, &Empty {}),
        Err(e) => internal(e),
    }
}

/// `GET /dags/search?q=TEXT`: the DAGs whose file holds the text (case-insensitive), with
/// each matching line (credentials redacted, as the spec is shown).
pub(super) fn search(dags: &Path, query: &str) -> Reply {
    let Some(q) = query_param(query, "q").filter(|q| !q.trim().is_empty()) else {
        return bad_request("`q` is required: the text to look for");
    };
    let needle = q.to_lowercase();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (file_name, path) in dag_files(dags) {
        let loaded = match wharf_spec::load_file(&path) {
            Ok(l) => l,
            Err(e) => {
                errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let text = wharf_spec::redact::source(&loaded.source);
        let matches: Vec<SearchMatch> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.to_lowercase().contains(&needle))
            .map(|(i, l)| SearchMatch {
                line: l.to_owned(),
                line_number: i + 1,
                start_line: (i + 1).saturating_sub(2).max(1),
            })
            .collect();
        if matches.is_empty() {
            continue;
        }
        match &loaded.dag {
            Some(dag) => results.push(SearchResult {
                name: dag.name.clone(),
                dag: DagShape::of(dag),
                matches,
            }),
            None => errors.push(format!("{file_name}: the DAG is invalid")),
        }
    }
    answer(StatusCode::OK, &Search { results, errors })
}

/// `GET /dags/tags`: every tag of the folder's DAGs, once each, in order.
pub(super) fn tags(dags: &Path) -> Reply {
    let mut tags = std::collections::BTreeSet::new();
    let mut errors = Vec::new();
    for (_, path) in dag_files(dags) {
        match wharf_spec::load_file(&path) {
            Ok(loaded) => {
                if let Some(dag) = loaded.dag {
                    tags.extend(dag.tags);
                }
            }
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    answer(
        StatusCode::OK,
        &Tags {
            tags: tags.into_iter().collect(),
            errors,
        },
    )
}

/// `POST /dags/{fileName}/rename` with `{newFileName}`: the file renamed; a DAG named by
/// its file takes its runs to the new name.
pub(super) fn rename(dags: &Path, home: &Path, file_name: &str, body: &Bytes) -> Reply {
    let file = or_reply!(existing_dag_file(dags, file_name));
    let body = or_reply!(body_json(body));
    let Some(new) = body.get("newFileName").and_then(Value::as_str) else {
        return bad_request("`newFileName` is required");
    };
    let new = new.trim_end_matches(".yaml").trim_end_matches(".yml");
    if !super::valid_name(new) {
        return bad_request(format!(
            "invalid DAG name `{new}`: letters, digits, `_` and `-` (at most 128)"
        ));
    }
    if new == file_name {
        return bad_request("the new name is the DAG's name already");
    }
    let target = dags.join(format!("{new}.yaml"));
    if target.exists() || dags.join(format!("{new}.yml")).exists() {
        return error(
            StatusCode::CONFLICT,
            "already_exists",
            format!("a DAG `{new}` exists already"),
        );
    }
    let named =
        wharf_spec::flat_settings_with_lists(&std::fs::read_to_string(&file).unwrap_or_default())
            .is_ok_and(|s| {
                s.values
                    .iter()
                    .any(|(k, v)| k == "name" && !v.trim().is_empty())
            });
    let store = or_reply!(open(home));
    if !named
        && !store
            .running(Some(file_name))
            .unwrap_or_default()
            .is_empty()
    {
        return error(
            StatusCode::CONFLICT,
            "already_running",
            format!("the DAG `{file_name}` has a run going: rename it once that ends"),
        );
    }
    if let Err(e) = std::fs::rename(&file, &target) {
        return internal(format!("cannot rename {}: {e}", file.display()));
    }
    if !named && let Err(e) = store.rename_dag(file_name, new) {
        return internal(format!("the file is renamed, its runs are not: {e}"));
    }
    if let Err(e) = store.rename_webhook(file_name, new) {
        return internal(format!("the file is renamed, its webhook is not: {e}"));
    }
    answer(StatusCode::OK, &serde_json::json!({}))
}
