//! The `/api/v2` endpoints, with the shapes of Dagu 1.x's OpenAPI document
//! (`dag-v1-api.yaml`): field names, status integers and labels, `{code, message}` errors.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use wharf_spec::Dag;
use wharf_store::{RunRecord, Status, StepRecord, Store};

use crate::{Shared, blocking, error, json, rfc3339};

type Reply = Response;

/// The value of a `Result<T, Box<Reply>>`, or (from the enclosing handler) the reply.
macro_rules! answer {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

/// The `/api/v2` endpoints. Handlers read files and the store, so they run on the
/// blocking pool and open the store per request (SQLite in WAL mode: readers never wait
/// for the writing runs).
pub(crate) fn router() -> Router<Shared> {
    /// A handler of the blocking pool with the server's DAGs folder and home.
    macro_rules! on_pool {
        ($state:ident, |$dags:ident, $home:ident| $body:expr) => {{
            let s = $state;
            blocking(move || {
                let ($dags, $home) = (&s.config.dags, &s.config.home);
                let _ = (&$dags, &$home);
                $body
            })
            .await
        }};
    }
    type Q = RawQuery;
    Router::new()
        .route("/health", get(health))
        .route(
            "/dags",
            get(|State(s): State<Shared>, RawQuery(q): Q| async move {
                on_pool!(s, |dags, home| list_dags(dags, home, &q.unwrap_or_default()))
            })
            .post(|State(s): State<Shared>, body: Bytes| async move {
                on_pool!(s, |dags, home| create_dag(dags, &body))
            }),
        )
        .route(
            "/dags/validate",
            post(|State(s): State<Shared>, body: Bytes| async move {
                on_pool!(s, |dags, home| validate_spec(dags, &body))
            }),
        )
        .route(
            "/dags/{name}",
            get(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| get_dag(dags, home, &name))
            })
            .delete(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| delete_dag(dags, &name))
            }),
        )
        .route(
            "/dags/{name}/spec",
            get(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| get_spec(dags, &name))
            })
            .put(
                |State(s): State<Shared>, UrlPath(name): UrlPath<String>, body: Bytes| async move {
                    on_pool!(s, |dags, home| put_spec(dags, &name, &body))
                },
            ),
        )
        .route(
            "/dags/{name}/start",
            post(
                |State(s): State<Shared>, UrlPath(name): UrlPath<String>, body: Bytes| async move {
                    on_pool!(s, |dags, home| start(dags, home, &name, &body))
                },
            ),
        )
        .route(
            "/dags/{name}/stop-all",
            post(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| stop_all(dags, home, &name))
            }),
        )
        .route(
            "/dags/{name}/dag-runs",
            get(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| dag_runs_of_file(dags, home, &name))
            }),
        )
        .route(
            "/dags/{name}/dag-runs/{id}",
            get(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| with_dag_name(dags, &name, |dag| run_details(home, dag, &id)))
                },
            ),
        )
        .route(
            "/dag-runs",
            get(|State(s): State<Shared>, RawQuery(q): Q| async move {
                on_pool!(s, |dags, home| all_runs(home, &q.unwrap_or_default()))
            }),
        )
        .route(
            "/dag-runs/{name}",
            get(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| runs_of(home, &name))
            }),
        )
        .route(
            "/dag-runs/{name}/{id}",
            get(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| run_details(home, &name, &id))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/stop",
            post(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| stop_run(home, &name, &id))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/retry",
            post(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| retry_run(home, &name, &id))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/log",
            get(
                |State(s): State<Shared>,
                 UrlPath((name, id)): UrlPath<(String, String)>,
                 RawQuery(q): Q| async move {
                    on_pool!(s, |dags, home| run_log(home, &name, &id, &q.unwrap_or_default()))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/steps/{step}/log",
            get(
                |State(s): State<Shared>,
                 UrlPath((name, id, step)): UrlPath<(String, String, String)>,
                 RawQuery(q): Q| async move {
                    on_pool!(s, |dags, home| step_log(home, &name, &id, &step, &q.unwrap_or_default()))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/outputs",
            get(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| outputs(home, &name, &id))
                },
            ),
        )
        .fallback(unknown)
        .method_not_allowed_fallback(unknown)
}

async fn health(State(s): State<Shared>) -> Reply {
    json(
        StatusCode::OK,
        &json!({
            "status": "healthy",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": s.started.elapsed().as_secs(),
            "timestamp": rfc3339(wharf_store::now_ms()),
        }),
    )
}

/// A path the API does not serve: 501 when it is part of the Dagu API, else 404.
async fn unknown(method: Method, uri: Uri) -> Reply {
    let path = uri.path();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The path as the API sees it (after `/api/v2`).
    let inner = match seg.iter().position(|s| *s == "v2") {
        Some(i) if i > 0 && seg[i - 1] == "api" => &seg[i + 1..],
        _ => &seg[..],
    };
    if known_elsewhere(inner) {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "internal_error",
            format!("{method} {path} is part of the Dagu API that wharf does not implement"),
        );
    }
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {method} {path}"),
    )
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
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The value of `key` in a query string (`application/x-www-form-urlencoded`).
pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
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
            let mut r = Response::new(axum::body::Body::empty());
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
    let singleton = body.get("singleton").and_then(Value::as_bool) == Some(true);
    let started = wharf_control::start(
        home,
        &wharf_control::Start {
            file: &file,
            dag: &dag.name,
            run_id: &run_id,
            params: &params,
            singleton,
        },
    );
    match started {
        // Answered once the run is recorded: a client may ask for it right away.
        Ok(()) => json(StatusCode::OK, &json!({"dagRunId": run_id})),
        Err(e) => control_error(&e),
    }
}

/// A run-control error as the API's `{code, message}`.
fn control_error(e: &wharf_control::Error) -> Reply {
    use wharf_control::Error as E;
    match e {
        E::AlreadyRunning(_) | E::RunIdTaken { .. } | E::StillRunning { .. } => {
            error(StatusCode::CONFLICT, "already_exists", e.to_string())
        }
        E::NotRunning { .. } => error(StatusCode::BAD_REQUEST, "not_running", e.to_string()),
        _ => internal(e),
    }
}

/// `params` as Dagu clients send it: shell words (`A=1 B="two words"`), or a JSON object
/// or list.
pub(crate) fn parse_params(text: &str) -> Vec<String> {
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

fn stop_all(dags: &Path, home: &Path, file_name: &str) -> Reply {
    with_dag_name(dags, file_name, |name| {
        let store = answer!(open(home));
        match wharf_control::stop_dag(&store, name) {
            Ok(runs) => {
                let errors: Vec<String> = runs
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().err().map(ToString::to_string))
                    .collect();
                json(StatusCode::OK, &json!({"errors": errors}))
            }
            Err(e) => internal(e),
        }
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
    match wharf_control::stop_run(&store, name, &run.run_id) {
        Ok(_) => json(StatusCode::OK, &json!({})),
        Err(e) => control_error(&e),
    }
}

fn retry_run(home: &Path, name: &str, id: &str) -> Reply {
    let store = answer!(open(home));
    let run = answer!(find(&store, name, id));
    match wharf_control::retry(home, &run) {
        Ok(()) => json(StatusCode::OK, &json!({})),
        Err(e) => control_error(&e),
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
