//! The `/api/v2` endpoints, with the shapes of Dagu 1.x's OpenAPI document
//! (`dag-v1-api.yaml`): field names, status integers and labels, `{code, message}` errors.

use std::path::{Path, PathBuf};

use hyper::body::Bytes;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use wharf_spec::Dag;
use wharf_store::{RunRecord, Status, StepRecord, Store};

use super::{Body, State, error, json};
use crate::time::rfc3339;

pub(crate) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Bytes,
}

type Reply = Response<Body>;

/// The value of a `Result<T, Box<Reply>>`, or (from the enclosing handler) the reply.
macro_rules! answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

pub(crate) async fn route(state: &State, home: &Path, req: ApiRequest) -> Reply {
    if req.method == Method::GET && req.path.trim_end_matches('/') == "/health" {
        return json(
            StatusCode::OK,
            &json!({
                "status": "healthy",
                "version": env!("CARGO_PKG_VERSION"),
                "uptime": state.started.elapsed().as_secs(),
                "timestamp": rfc3339(wharf_store::now_ms()),
            }),
        );
    }
    let dags = state.config.dags.clone();
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        route_blocking(&dags, &home, &req.method, &req.path, &req.query, &req.body)
    })
    .await
    .unwrap_or_else(|_| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request failed",
        )
    })
}

/// Answers one API request (all but `/health`); reads files and the store, so it runs on
/// the blocking pool.
pub(crate) fn route_blocking(
    dags: &Path,
    home: &Path,
    method: &Method,
    path: &str,
    query: &str,
    body: &Bytes,
) -> Reply {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.clone(), seg.as_slice()) {
        (Method::GET, ["dags"]) => list_dags(dags, home, query),
        (Method::POST, ["dags"]) => create_dag(dags, body),
        (Method::POST, ["dags", "validate"]) => validate_spec(dags, body),
        (Method::GET, ["dags", name]) => get_dag(dags, home, name),
        (Method::DELETE, ["dags", name]) => delete_dag(dags, name),
        (Method::GET, ["dags", name, "spec"]) => get_spec(dags, name),
        (Method::PUT, ["dags", name, "spec"]) => put_spec(dags, name, body),
        (Method::POST, ["dags", name, "start"]) => start(dags, home, name, body),
        (Method::POST, ["dags", name, "stop-all"]) => stop_all(dags, home, name),
        (Method::GET, ["dags", name, "dag-runs"]) => dag_runs_of_file(dags, home, name),
        (Method::GET, ["dags", name, "dag-runs", id]) => {
            with_dag_name(dags, name, |dag| run_details(home, dag, id))
        }
        (Method::GET, ["dag-runs"]) => all_runs(home, query),
        (Method::GET, ["dag-runs", name]) => runs_of(home, name),
        (Method::GET, ["dag-runs", name, id]) => run_details(home, name, id),
        (Method::POST, ["dag-runs", name, id, "stop"]) => stop_run(home, name, id),
        (Method::POST, ["dag-runs", name, id, "retry"]) => retry_run(home, name, id),
        (Method::GET, ["dag-runs", name, id, "log"]) => run_log(home, name, id, query),
        (Method::GET, ["dag-runs", name, id, "steps", step, "log"]) => {
            step_log(home, name, id, step, query)
        }
        (Method::GET, ["dag-runs", name, id, "outputs"]) => outputs(home, name, id),
        (_, p) if known_elsewhere(p) => error(
            StatusCode::NOT_IMPLEMENTED,
            "internal_error",
            format!("{method} {path} is part of the Dagu API that wharf does not implement"),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint: {method} /api/v2{path}"),
        ),
    }
}

/// Paths of the Dagu API that wharf does not serve (they answer 501, not 404).
fn known_elsewhere(path: &[&str]) -> bool {
    matches!(
        path,
        ["auth", ..]
            | ["users", ..]
            | ["api-keys", ..]
            | ["workers"]
            | ["queues"]
            | ["services", ..]
            | ["metrics"]
            | ["webhooks", ..]
            | ["dags", "search"]
            | ["dags", "tags"]
            | ["dags", _, "enqueue" | "suspend" | "rename" | "webhook", ..]
            | ["dag-runs", "enqueue"]
            | [
                "dag-runs",
                _,
                _,
                "spec" | "reschedule" | "sub-dag-runs" | "dequeue"
            ]
            | ["dag-runs", _, _, "sub-dag-runs", ..]
            | [
                "dag-runs",
                _,
                _,
                "steps",
                _,
                "status" | "approve" | "reject"
            ]
    )
}

pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(&v.replace('+', " ")))
    })
}

fn bad_request(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn not_found(message: impl Into<String>) -> Reply {
    error(StatusCode::NOT_FOUND, "not_found", message)
}

fn internal(e: impl std::fmt::Display) -> Reply {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        e.to_string(),
    )
}

/// A DAG's file name (the file's stem) as the API allows it: letters, digits, `_`, `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The file of DAG `name` in the DAGs folder (`.yaml`, else `.yml`), whether it exists.
fn dag_file(dags: &Path, name: &str) -> Result<PathBuf, Box<Reply>> {
    if !valid_name(name) {
        return Err(Box::new(bad_request(format!(
            "invalid DAG name `{name}`: letters, digits, `_` and `-` only"
        ))));
    }
    let yml = dags.join(format!("{name}.yml"));
    if yml.is_file() {
        return Ok(yml);
    }
    Ok(dags.join(format!("{name}.yaml")))
}

pub(crate) fn existing_dag_file(dags: &Path, name: &str) -> Result<PathBuf, Box<Reply>> {
    let file = dag_file(dags, name)?;
    if file.is_file() {
        Ok(file)
    } else {
        Err(Box::new(not_found(format!(
            "no DAG `{name}` in {}",
            dags.display()
        ))))
    }
}

/// The DAG files of the folder, sorted by name.
pub(crate) fn dag_files(dags: &Path) -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dags)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let ext = path.extension()?.to_str()?;
            if !matches!(ext, "yaml" | "yml") || !path.is_file() {
                return None;
            }
            let stem = path.file_stem()?.to_str()?.to_owned();
            valid_name(&stem).then_some((stem, path))
        })
        .collect();
    files.sort_by_key(|(n, _)| n.to_lowercase());
    files
}

/// Diagnostics as the API's `errors` strings: `LINE:COL: message`.
fn diagnostics(loaded: &wharf_spec::Loaded) -> Vec<String> {
    loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| match d.span {
            Some(s) => format!("{}:{}: {}", s.start.line, s.start.col, d.message),
            None => d.message.clone(),
        })
        .collect()
}

fn open(home: &Path) -> Result<Store, Box<Reply>> {
    Store::open(home).map_err(|e| Box::new(internal(e)))
}

/// Status integers of a run (DAG-run) and of a node.
fn run_status(s: Status) -> (i64, &'static str) {
    match s {
        Status::NotStarted => (0, "not_started"),
        Status::Running => (1, "running"),
        Status::Failed => (2, "failed"),
        Status::Aborted => (3, "aborted"),
        Status::Succeeded => (4, "succeeded"),
        Status::PartiallySucceeded => (6, "partially_succeeded"),
        // A run whose preconditions failed: nothing ran; Dagu has no own word for it.
        Status::Skipped => (4, "succeeded"),
    }
}

fn node_status(s: Status) -> (i64, &'static str) {
    match s {
        Status::Skipped => (5, "skipped"),
        other => run_status(other),
    }
}

fn time_or_dash(ms: Option<i64>) -> String {
    ms.map(rfc3339).unwrap_or_else(|| "-".into())
}

fn params_json(params: &[String]) -> String {
    Value::from(
        params
            .iter()
            .map(|p| wharf_spec::redact::param(p))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

fn run_summary(run: &RunRecord) -> Value {
    let (status, label) = run_status(run.status);
    json!({
        "rootDAGRunName": run.dag,
        "rootDAGRunId": run.run_id,
        "dagRunId": run.run_id,
        "name": run.dag,
        "status": status,
        "statusLabel": label,
        "queuedAt": rfc3339(run.created_at),
        "startedAt": time_or_dash(run.started_at),
        "finishedAt": time_or_dash(run.finished_at),
        "log": run.log_dir.join("run.log").to_string_lossy(),
        "params": params_json(&run.params),
        "workerId": "local",
    })
}

fn step_json(dag: Option<&Dag>, name: &str) -> Value {
    let Some(step) = dag.and_then(|d| {
        d.steps
            .iter()
            .chain(d.handlers.iter().map(|(_, s)| s))
            .find(|s| s.name == name)
    }) else {
        return json!({"name": name});
    };
    let mut v = json!({
        "name": step.name,
        "depends": step.depends,
    });
    if let Some(c) = &step.command {
        let (command, args) = match c {
            wharf_spec::CommandSpec::Argv(a) => (
                a.first().cloned().unwrap_or_default(),
                a[1.min(a.len())..].to_vec(),
            ),
            wharf_spec::CommandSpec::Line(l) => (l.clone(), Vec::new()),
        };
        v["commands"] = json!([{"command": command, "args": args}]);
    }
    if let Some(d) = &step.description {
        v["description"] = json!(d);
    }
    if let Some(d) = &step.dir {
        v["dir"] = json!(d);
    }
    if let Some(s) = &step.script {
        v["script"] = json!(s);
    }
    if let Some(o) = &step.output {
        v["output"] = json!(o.name);
    }
    if let Some(t) = step.timeout_sec {
        v["timeoutSec"] = json!(t);
    }
    v
}

fn node_json(store: &Store, run: &RunRecord, dag: Option<&Dag>, s: &StepRecord) -> Value {
    let (status, label) = node_status(s.status);
    let last = store
        .attempts(run.key, &s.name)
        .ok()
        .and_then(|a| a.into_iter().last());
    let (stdout, stderr) = last
        .map(|a| {
            (
                a.stdout.to_string_lossy().into_owned(),
                a.stderr.to_string_lossy().into_owned(),
            )
        })
        .unwrap_or_default();
    let mut v = json!({
        "step": step_json(dag, &s.name),
        "stdout": stdout,
        "stderr": stderr,
        "startedAt": time_or_dash(s.started_at),
        "finishedAt": time_or_dash(s.finished_at),
        "status": status,
        "statusLabel": label,
        "retryCount": s.attempts.saturating_sub(1),
        "doneCount": u32::from(s.status == Status::Succeeded),
    });
    if let Some(e) = &s.error {
        v["error"] = json!(e);
    }
    v
}

fn run_details_json(store: &Store, run: &RunRecord) -> Value {
    let dag = wharf_spec::load_file(&run.file).ok().and_then(|l| l.dag);
    let steps = store.steps(run.key).unwrap_or_default();
    let mut v = run_summary(run);
    v["nodes"] = steps
        .iter()
        .filter(|s| s.handler.is_none())
        .map(|s| node_json(store, run, dag.as_ref(), s))
        .collect();
    for s in steps.iter().filter(|s| s.handler.is_some()) {
        let key = match s.handler.as_deref() {
            Some("exit") => "onExit",
            Some("success") => "onSuccess",
            Some("failure") => "onFailure",
            Some("abort") => "onCancel",
            _ => continue,
        };
        v[key] = node_json(store, run, dag.as_ref(), s);
    }
    v
}

/// The run `id` (`latest`: the newest) of DAG `name`.
fn find(store: &Store, name: &str, id: &str) -> Result<RunRecord, Box<Reply>> {
    let found = if id == "latest" {
        store.latest_run(name)
    } else {
        store.run(name, id)
    };
    match found {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Box::new(not_found(format!(
            "the DAG `{name}` has no run `{id}`"
        )))),
        Err(e) => Err(Box::new(internal(e))),
    }
}

fn dag_json(dag: &Dag) -> Value {
    let schedule: Vec<Value> = dag
        .schedule
        .start
        .iter()
        .map(|e| json!({"expression": e}))
        .collect();
    let params: Vec<String> = dag
        .params
        .iter()
        .map(|p| match &p.name {
            Some(n) => wharf_spec::redact::param(&format!("{n}={}", p.value)),
            None => p.value.clone(),
        })
        .collect();
    json!({
        "name": dag.name,
        "schedule": schedule,
        "description": dag.description.clone().unwrap_or_default(),
        "params": params,
        "defaultParams": params.join(" "),
        "tags": dag.tags,
    })
}

fn dag_details_json(dag: &Dag) -> Value {
    let mut v = dag_json(dag);
    v["steps"] = dag
        .steps
        .iter()
        .map(|s| step_json(Some(dag), &s.name))
        .collect();
    v["env"] = dag
        .env
        .iter()
        .map(|e| {
            let value = if wharf_spec::redact::is_secret_key(&e.name) {
                wharf_spec::redact::REDACTED
            } else {
                e.value.as_str()
            };
            json!(format!("{}={value}", e.name))
        })
        .collect();
    if let Some(t) = dag.timeout_sec {
        v["timeoutSec"] = json!(t);
    }
    v
}

/// A run that never was: what the API shows for a DAG without runs (status 0, and `-`
/// for the id and the times: the document's pattern allows no empty id).
fn no_run(name: &str) -> Value {
    json!({
        "rootDAGRunName": name,
        "rootDAGRunId": "-",
        "dagRunId": "-",
        "name": name,
        "status": 0,
        "statusLabel": "not_started",
        "startedAt": "-",
        "finishedAt": "-",
        "log": "",
    })
}

fn list_dags(dags: &Path, home: &Path, query: &str) -> Reply {
    let store = answer!(open(home));
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
            .map_or_else(|| no_run(&dag_name), |r| run_summary(&r));
        let dag = loaded
            .dag
            .as_ref()
            .map_or_else(|| json!({"name": dag_name}), dag_json);
        items.push(json!({
            "fileName": file_name,
            "dag": dag,
            "latestDAGRun": latest,
            "suspended": false,
            "errors": errs,
        }));
    }
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "dags": shown,
            "errors": errors,
            "pagination": {
                "totalRecords": total,
                "currentPage": page,
                "totalPages": pages,
                "nextPage": if page < pages { page + 1 } else { 0 },
                "prevPage": page.saturating_sub(1),
            },
        }),
    )
}

fn body_json(body: &Bytes) -> Result<Value, Box<Reply>> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| Box::new(bad_request(format!("the body is not JSON: {e}"))))
}

fn check_spec(dags: &Path, name: &str, spec: &str) -> wharf_spec::Loaded {
    wharf_spec::load_str(spec.to_owned(), &dags.join(format!("{name}.yaml")))
}

fn create_dag(dags: &Path, body: &Bytes) -> Reply {
    let body = answer!(body_json(body));
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        return bad_request("`name` is required");
    };
    let file = answer!(dag_file(dags, name));
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
        Ok(()) => json(StatusCode::CREATED, &json!({"name": name})),
        Err(e) => internal(format!("cannot write {}: {e}", file.display())),
    }
}

fn validate_spec(dags: &Path, body: &Bytes) -> Reply {
    let body = answer!(body_json(body));
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
    let mut v = json!({"valid": errs.is_empty(), "errors": errs});
    if let Some(dag) = &loaded.dag {
        v["dag"] = dag_details_json(dag);
    }
    json(StatusCode::OK, &v)
}

fn get_dag(dags: &Path, home: &Path, name: &str) -> Reply {
    let file = answer!(existing_dag_file(dags, name));
    let store = answer!(open(home));
    let loaded = match wharf_spec::load_file(&file) {
        Ok(l) => l,
        Err(e) => return internal(format!("cannot read {}: {e}", file.display())),
    };
    let dag_name = loaded
        .dag
        .as_ref()
        .map_or(name.to_owned(), |d| d.name.clone());
    let latest = match store.latest_run(&dag_name) {
        Ok(Some(r)) => run_details_json(&store, &r),
        _ => {
            let mut v = no_run(&dag_name);
            v["nodes"] = json!([]);
            v
        }
    };
    let mut v = json!({
        "latestDAGRun": latest,
        "suspended": false,
        "localDags": [],
        "errors": diagnostics(&loaded),
    });
    if let Some(dag) = &loaded.dag {
        v["dag"] = dag_details_json(dag);
    }
    json(StatusCode::OK, &v)
}

fn delete_dag(dags: &Path, name: &str) -> Reply {
    let file = answer!(existing_dag_file(dags, name));
    match std::fs::remove_file(&file) {
        Ok(()) => {
            let mut r = Response::new(super::full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Err(e) => internal(format!("cannot remove {}: {e}", file.display())),
    }
}

fn get_spec(dags: &Path, name: &str) -> Reply {
    let file = answer!(existing_dag_file(dags, name));
    let loaded = match wharf_spec::load_file(&file) {
        Ok(l) => l,
        Err(e) => return internal(format!("cannot read {}: {e}", file.display())),
    };
    let mut v =
        json!({"spec": wharf_spec::redact::source(&loaded.source), "errors": diagnostics(&loaded)});
    if let Some(dag) = &loaded.dag {
        v["dag"] = dag_details_json(dag);
    }
    json(StatusCode::OK, &v)
}

fn put_spec(dags: &Path, name: &str, body: &Bytes) -> Reply {
    let file = answer!(existing_dag_file(dags, name));
    let body = answer!(body_json(body));
    let Some(spec) = body.get("spec").and_then(Value::as_str) else {
        return bad_request("`spec` is required");
    };
    // The spec was shown redacted: what still says <redacted> keeps the file's value.
    let old = std::fs::read_to_string(&file).unwrap_or_default();
    let restored = match wharf_spec::redact::restore(spec, &old) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("the file was not changed: {e}")),
    };
    let spec = restored.as_str();
    let loaded = check_spec(dags, name, spec);
    let errs = diagnostics(&loaded);
    if !errs.is_empty() {
        // Nothing is written: the file keeps working.
        return json(
            StatusCode::BAD_REQUEST,
            &json!({
                "code": "bad_request",
                "message": format!("the spec is invalid; the file was not changed: {}", errs.join("; ")),
                "details": {"errors": errs},
            }),
        );
    }
    // Written beside and renamed: a reader never sees half a file.
    let tmp = file.with_extension("yaml.tmp");
    if let Err(e) = std::fs::write(&tmp, spec).and_then(|()| std::fs::rename(&tmp, &file)) {
        return internal(format!("cannot write {}: {e}", file.display()));
    }
    json(StatusCode::OK, &json!({"errors": []}))
}

/// The DAG name inside the file `file_name` of the folder.
fn with_dag_name(dags: &Path, file_name: &str, f: impl FnOnce(&str) -> Reply) -> Reply {
    let file = answer!(existing_dag_file(dags, file_name));
    let name = wharf_spec::load_file(&file)
        .ok()
        .and_then(|l| l.dag)
        .map_or_else(|| file_name.to_owned(), |d| d.name);
    f(&name)
}

fn wharf_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wharf"))
}

/// Starts `wharf ARGS` as a process of its own (own process group, no terminal, output
/// discarded: the run records everything in the store), reaped in the background.
pub(crate) fn spawn_detached(home: &Path, args: &[String]) -> std::io::Result<()> {
    let child = detached(home, args)?;
    reap_in_background(child);
    Ok(())
}

fn detached(home: &Path, args: &[String]) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(wharf_exe())
        .args(args)
        .env("WHARF_HOME", home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
}

fn reap_in_background(mut child: std::process::Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// Starts `wharf ARGS` detached and waits until the store has the run `run_id` of `dag`
/// (the new process records it first thing), or the process ends without recording it.
pub(crate) fn launch(
    store: &Store,
    home: &Path,
    args: &[String],
    dag: &str,
    run_id: &str,
) -> Result<(), String> {
    let mut child = detached(home, args).map_err(|e| format!("cannot start the run: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if store.run(dag, run_id).ok().flatten().is_some() {
            reap_in_background(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have recorded the run just before it ended.
            if store.run(dag, run_id).ok().flatten().is_some() {
                return Ok(());
            }
            return Err(format!("run {run_id} ended before it started ({status})"));
        }
        if std::time::Instant::now() > deadline {
            reap_in_background(child);
            return Err(format!("run {run_id} did not start within 10s"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Held while a run is started, until its record exists.
static STARTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start(dags: &Path, home: &Path, file_name: &str, body: &Bytes) -> Reply {
    let file = answer!(existing_dag_file(dags, file_name));
    let body = answer!(body_json(body));
    let loaded = match wharf_spec::load_file(&file) {
        Ok(l) => l,
        Err(e) => return internal(format!("cannot read {}: {e}", file.display())),
    };
    let Some(dag) = loaded.dag.as_ref() else {
        return bad_request(format!(
            "the DAG `{file_name}` is invalid: {}",
            diagnostics(&loaded).join("; ")
        ));
    };
    let run_id = match body.get("dagRunId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => {
            let api_id = id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !api_id || !wharf_engine::valid_run_id(id) || id == "latest" || id == "-" {
                return bad_request(format!(
                    "invalid dagRunId `{id}`: letters, digits, `_` and `-` only"
                ));
            }
            id.to_owned()
        }
        _ => wharf_engine::new_run_id(),
    };
    let params = match body.get("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => parse_params(text),
        Some(other) => {
            return bad_request(format!(
                "`params` must be a string (shell words or JSON), found {other}"
            ));
        }
    };
    if params.iter().any(|p| p.contains('\0')) {
        return bad_request("`params` must not contain a NUL character");
    }
    // One start at a time: a singleton's check and the run it lets start are one step,
    // so concurrent starts of a singleton start exactly one run.
    let _one_at_a_time = STARTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = answer!(open(home));
    if body.get("singleton").and_then(Value::as_bool) == Some(true) {
        let _ = store.reap_dead();
        if store
            .running(Some(&dag.name))
            .map(|r| !r.is_empty())
            .unwrap_or(false)
        {
            return error(
                StatusCode::CONFLICT,
                "already_exists",
                format!("the DAG `{}` is already running", dag.name),
            );
        }
    }
    if let Ok(Some(_)) = store.run(&dag.name, &run_id) {
        return error(
            StatusCode::CONFLICT,
            "already_exists",
            format!("the DAG `{}` has a run `{run_id}` already", dag.name),
        );
    }
    let mut args = vec![
        "run".to_owned(),
        file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        run_id.clone(),
    ];
    if !params.is_empty() {
        args.push("--".into());
        args.extend(params);
    }
    // Answer once the run is recorded: a client may ask for it right away.
    if let Err(e) = launch(&store, home, &args, &dag.name, &run_id) {
        return internal(e);
    }
    json(StatusCode::OK, &json!({"dagRunId": run_id}))
}

/// `params` as Dagu clients send it: shell words (`A=1 B="two words"`), or a JSON object
/// or list.
fn parse_params(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        match v {
            Value::Object(m) => {
                return m
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect();
            }
            Value::Array(items) => {
                return items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect();
            }
            _ => {}
        }
    }
    shell_words::split(trimmed)
        .unwrap_or_else(|_| trimmed.split_whitespace().map(str::to_owned).collect())
}

/// SIGTERM to the process running `run` (the same as `wharf stop`).
fn signal_run(run: &RunRecord) -> Result<(), String> {
    let Some(pid) = run.pid.filter(|p| *p > 0) else {
        return Err(format!("run {} has no process", run.run_id));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|e| format!("cannot stop run {}: {e}", run.run_id))
}

fn stop_all(dags: &Path, home: &Path, file_name: &str) -> Reply {
    with_dag_name(dags, file_name, |name| {
        let store = answer!(open(home));
        let _ = store.reap_dead();
        let errors: Vec<String> = store
            .running(Some(name))
            .unwrap_or_default()
            .iter()
            .filter_map(|r| signal_run(r).err())
            .collect();
        json(StatusCode::OK, &json!({"errors": errors}))
    })
}

fn dag_runs_of_file(dags: &Path, home: &Path, file_name: &str) -> Reply {
    with_dag_name(dags, file_name, |name| {
        let store = answer!(open(home));
        let runs = store.history(name, 30).unwrap_or_default();
        let details: Vec<Value> = runs.iter().map(|r| run_details_json(&store, r)).collect();
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
        let grid: Vec<Value> = names
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
                json!({"name": n, "history": history})
            })
            .collect();
        json(
            StatusCode::OK,
            &json!({"dagRuns": details, "gridData": grid}),
        )
    })
}

fn all_runs(home: &Path, query: &str) -> Reply {
    let store = answer!(open(home));
    let name = query_param(query, "name");
    let runs = match store.recent_runs(name.as_deref(), 200) {
        Ok(r) => r,
        Err(e) => return internal(e),
    };
    let list: Vec<Value> = runs.iter().map(run_summary).collect();
    json(StatusCode::OK, &json!({"dagRuns": list}))
}

fn runs_of(home: &Path, name: &str) -> Reply {
    let store = answer!(open(home));
    let list: Vec<Value> = store
        .history(name, 200)
        .unwrap_or_default()
        .iter()
        .map(run_summary)
        .collect();
    json(StatusCode::OK, &json!({"dagRuns": list}))
}

fn run_details(home: &Path, name: &str, id: &str) -> Reply {
    let store = answer!(open(home));
    match find(&store, name, id) {
        Ok(run) => json(
            StatusCode::OK,
            &json!({"dagRunDetails": run_details_json(&store, &run)}),
        ),
        Err(r) => *r,
    }
}

fn stop_run(home: &Path, name: &str, id: &str) -> Reply {
    let store = answer!(open(home));
    let _ = store.reap_dead();
    let run = answer!(find(&store, name, id));
    if run.status != Status::Running {
        return error(
            StatusCode::BAD_REQUEST,
            "not_running",
            format!(
                "run {} of {name} is not running ({})",
                run.run_id, run.status
            ),
        );
    }
    match signal_run(&run) {
        Ok(()) => json(StatusCode::OK, &json!({})),
        Err(e) => internal(e),
    }
}

fn retry_run(home: &Path, name: &str, id: &str) -> Reply {
    let store = answer!(open(home));
    let run = answer!(find(&store, name, id));
    if run.status == Status::Running {
        return error(
            StatusCode::CONFLICT,
            "already_exists",
            format!("run {} of {name} is still running", run.run_id),
        );
    }
    let args = vec![
        "retry".to_owned(),
        run.file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        run.run_id.clone(),
    ];
    match spawn_detached(home, &args) {
        Ok(()) => json(StatusCode::OK, &json!({})),
        Err(e) => internal(format!("cannot start the retry: {e}")),
    }
}

/// Lines shown when a log request names no window.
const DEFAULT_TAIL: usize = 10_000;
/// The most a single line keeps (a longer one is cut, marked with `…`).
const MAX_LINE: usize = 16 * 1024;

/// A log file as the API's `Log` object, with `tail`/`head`/`offset`/`limit` in lines
/// (by default the last 10 000). The file is read line by line and only the window is
/// kept, so a log of any size takes little memory.
fn log_reply(path: &Path, query: &str) -> Reply {
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
    json(
        StatusCode::OK,
        &json!({
            "content": content,
            "lineCount": last_kept - first_kept,
            "totalLines": total,
            // A line cut short means the answer is not all of the log.
            "hasMore": last_kept < total || first_kept > 0 || cut.iter().any(|i| *i >= first_kept),
            "isEstimate": false,
        }),
    )
}

fn run_log(home: &Path, name: &str, id: &str, query: &str) -> Reply {
    let store = answer!(open(home));
    match find(&store, name, id) {
        Ok(run) => log_reply(&run.log_dir.join("run.log"), query),
        Err(r) => *r,
    }
}

fn step_log(home: &Path, name: &str, id: &str, step: &str, query: &str) -> Reply {
    let store = answer!(open(home));
    let run = answer!(find(&store, name, id));
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

fn outputs(home: &Path, name: &str, id: &str) -> Reply {
    let store = answer!(open(home));
    let run = answer!(find(&store, name, id));
    let outputs: serde_json::Map<String, Value> = store
        .outputs(run.key)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o.omit)
        .map(|o| (o.key, Value::String(o.value)))
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "metadata": {
                "dagName": run.dag,
                "dagRunId": run.run_id,
                "attemptId": "1",
                "status": run_status(run.status).1,
                "completedAt": run.finished_at.map(rfc3339).unwrap_or_default(),
                "params": params_json(&run.params),
            },
            "outputs": outputs,
        }),
    )
}
