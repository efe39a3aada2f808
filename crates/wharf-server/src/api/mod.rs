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
use wharf_store::{RunRecord, Store};

use crate::{Shared, blocking, error, rfc3339};

use dags::*;
use runs::*;

/// A typed answer as JSON.
pub(crate) fn answer<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    let mut r = Response::new(axum::body::Body::from(
        serde_json::to_vec(value).unwrap_or_default(),
    ));
    *r.status_mut() = status;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    r
}

type Reply = Response;

/// The value of a `Result<T, Box<Reply>>`, or (from the enclosing handler) the reply.
macro_rules! or_reply {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

pub(crate) mod dags;
pub(crate) mod runs;
mod shapes;
pub(crate) mod webhooks;

pub(crate) use shapes::ErrorBody;

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
                on_pool!(s, |dags, home| delete_dag(dags, home, &name))
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
                    on_pool!(s, |dags, home| start(dags, home, &name, &body, Mode::Start))
                },
            ),
        )
        .route(
            "/webhooks",
            get(|State(s): State<Shared>| async move {
                on_pool!(s, |dags, home| webhooks::list(home))
            }),
        )
        .route(
            "/webhooks/{name}",
            post(
                |State(s): State<Shared>,
                 UrlPath(name): UrlPath<String>,
                 headers: axum::http::HeaderMap,
                 body: Bytes| async move {
                    let auth = headers
                        .get(axum::http::header::AUTHORIZATION)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_owned);
                    on_pool!(s, |dags, home| webhooks::trigger(
                        dags,
                        home,
                        &name,
                        auth.as_deref(),
                        &body
                    ))
                },
            ),
        )
        .route(
            "/dags/{name}/webhook",
            get(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| webhooks::get(home, &name))
            })
            .post(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| webhooks::create(dags, home, &name))
            })
            .delete(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| webhooks::delete(home, &name))
            }),
        )
        .route(
            "/dags/{name}/webhook/regenerate",
            post(|State(s): State<Shared>, UrlPath(name): UrlPath<String>| async move {
                on_pool!(s, |dags, home| webhooks::regenerate(home, &name))
            }),
        )
        .route(
            "/dags/{name}/webhook/toggle",
            post(
                |State(s): State<Shared>, UrlPath(name): UrlPath<String>, body: Bytes| async move {
                    on_pool!(s, |dags, home| webhooks::toggle(home, &name, &body))
                },
            ),
        )
        .route(
            "/dags/{name}/suspend",
            post(
                |State(s): State<Shared>, UrlPath(name): UrlPath<String>, body: Bytes| async move {
                    on_pool!(s, |dags, home| suspend(dags, home, &name, &body))
                },
            ),
        )
        .route(
            "/dags/{name}/enqueue",
            post(
                |State(s): State<Shared>, UrlPath(name): UrlPath<String>, body: Bytes| async move {
                    on_pool!(s, |dags, home| start(dags, home, &name, &body, Mode::Enqueue))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/dequeue",
            get(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| dequeue(home, &name, &id))
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
            })
            .post(|State(s): State<Shared>, body: Bytes| async move {
                on_pool!(s, |dags, home| start_spec(home, &body, Mode::Start))
            }),
        )
        .route(
            "/dag-runs/enqueue",
            post(|State(s): State<Shared>, body: Bytes| async move {
                on_pool!(s, |dags, home| start_spec(home, &body, Mode::Enqueue))
            }),
        )
        .route(
            "/dags/search",
            get(|State(s): State<Shared>, RawQuery(q): Q| async move {
                on_pool!(s, |dags, home| search(dags, &q.unwrap_or_default()))
            }),
        )
        .route(
            "/dags/tags",
            get(|State(s): State<Shared>| async move { on_pool!(s, |dags, home| tags(dags)) }),
        )
        .route(
            "/dags/{name}/rename",
            post(
                |State(s): State<Shared>, UrlPath(name): UrlPath<String>, body: Bytes| async move {
                    on_pool!(s, |dags, home| rename(dags, home, &name, &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/steps/{step}/status",
            axum::routing::patch(
                |State(s): State<Shared>,
                 UrlPath((name, id, step)): UrlPath<(String, String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| set_step_status(home, (&name, &id, None, &step), &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs/{sub}/steps/{step}/status",
            axum::routing::patch(
                |State(s): State<Shared>,
                 UrlPath((name, id, sub, step)): UrlPath<(String, String, String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| set_step_status(
                        home,
                        (&name, &id, Some(&sub), &step),
                        &body
                    ))
                },
            ),
        )
        .route(
            "/metrics",
            get(|State(s): State<Shared>| async move {
                let uptime = s.started.elapsed();
                let scheduler = s.with_scheduler;
                on_pool!(s, |dags, home| metrics(dags, home, uptime, scheduler))
            }),
        )
        .route(
            "/queues",
            get(|State(s): State<Shared>| async move { on_pool!(s, |dags, home| queues(home)) }),
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
            "/dag-runs/{name}/{id}/spec",
            get(
                |State(s): State<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    on_pool!(s, |dags, home| run_spec(home, &name, &id))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/reschedule",
            post(
                |State(s): State<Shared>,
                 UrlPath((name, id)): UrlPath<(String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| reschedule_run(home, &name, &id, &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/retry",
            post(
                |State(s): State<Shared>,
                 UrlPath((name, id)): UrlPath<(String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| retry_run(home, &name, &id, &body))
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
            "/dag-runs/{name}/{id}/steps/{step}/approve",
            post(
                |State(s): State<Shared>,
                 UrlPath((name, id, step)): UrlPath<(String, String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| approve(home, (&name, &id, None), &step, &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/steps/{step}/reject",
            post(
                |State(s): State<Shared>,
                 UrlPath((name, id, step)): UrlPath<(String, String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| reject(home, (&name, &id, None), &step, &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs/{sub}/steps/{step}/approve",
            post(
                |State(s): State<Shared>,
                 UrlPath((name, id, sub, step)): UrlPath<(String, String, String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| approve(home, (&name, &id, Some(&sub)), &step, &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs/{sub}/steps/{step}/reject",
            post(
                |State(s): State<Shared>,
                 UrlPath((name, id, sub, step)): UrlPath<(String, String, String, String)>,
                 body: Bytes| async move {
                    on_pool!(s, |dags, home| reject(home, (&name, &id, Some(&sub)), &step, &body))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs",
            get(
                |State(s): State<Shared>,
                 UrlPath((name, id)): UrlPath<(String, String)>,
                 RawQuery(q): Q| async move {
                    on_pool!(s, |dags, home| sub_runs(home, &name, &id, &q.unwrap_or_default()))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs/{sub}",
            get(
                |State(s): State<Shared>,
                 UrlPath((name, id, sub)): UrlPath<(String, String, String)>| async move {
                    on_pool!(s, |dags, home| sub_run_details(home, &name, &id, &sub))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs/{sub}/log",
            get(
                |State(s): State<Shared>,
                 UrlPath((name, id, sub)): UrlPath<(String, String, String)>,
                 RawQuery(q): Q| async move {
                    on_pool!(s, |dags, home| sub_run_log(home, &name, &id, &sub, &q.unwrap_or_default()))
                },
            ),
        )
        .route(
            "/dag-runs/{name}/{id}/sub-dag-runs/{sub}/steps/{step}/log",
            get(
                |State(s): State<Shared>,
                 UrlPath((name, id, sub, step)): UrlPath<(String, String, String, String)>,
                 RawQuery(q): Q| async move {
                    on_pool!(s, |dags, home| sub_step_log(home, (&name, &id, &sub, &step), &q.unwrap_or_default()))
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
        .route(
            "/services/scheduler",
            get(|State(s): State<Shared>| async move {
                on_pool!(s, |dags, home| match crate::system::schedulers(home) {
                    Ok(v) => answer(StatusCode::OK, &v),
                    Err(e) => internal(e),
                })
            }),
        )
        .route(
            "/workers",
            get(|State(s): State<Shared>| async move {
                let nodes = crate::system::swarm_nodes(&s.docker).await;
                answer(StatusCode::OK, &crate::system::workers(&nodes))
            }),
        )
        .route(
            "/services/coordinator",
            // wharf has no coordinator: steps that leave this machine go to a Swarm.
            get(|| async { answer(StatusCode::OK, &json!({"coordinators": []})) }),
        )
        .route(
            "/services/resources/history",
            get(|State(s): State<Shared>, RawQuery(q): Q| async move {
                let q = q.unwrap_or_default();
                let seconds = match query_param(&q, "duration") {
                    None => Ok(3600),
                    Some(d) => crate::system::seconds(&d).ok_or(d),
                };
                match seconds {
                    Ok(secs) => answer(StatusCode::OK, &s.samples.history(secs)),
                    Err(d) => bad_request(format!(
                        "`duration` is a duration such as `30m`, `1h` or `24h`, not `{d}`"
                    )),
                }
            }),
        )
        .route("/auth/login", post(login))
        .route("/auth/me", get(me))
        .route("/auth/change-password", post(change_password))
        .route("/users", get(admin).post(admin))
        .route("/users/{id}", get(admin).patch(admin).delete(admin))
        .route("/users/{id}/reset-password", post(admin))
        .route("/api-keys", get(admin).post(admin))
        .route("/api-keys/{id}", get(admin).patch(admin).delete(admin))
        .fallback(unknown)
        .method_not_allowed_fallback(not_allowed)
}

/// What the user endpoints answer when built-in users are off.
fn users_off(method: &Method, uri: &Uri) -> Reply {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "internal_error",
        format!(
            "{method} {} serves built-in users, which are off on this server (auth.mode: builtin turns them on)",
            uri.path()
        ),
    )
}

/// `POST /auth/login`.
async fn login(State(s): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Reply {
    match &s.builtin {
        Some(b) => b.login(&s.config.home, &body).await,
        None => users_off(&method, &uri),
    }
}

/// `GET /auth/me`.
async fn me(State(s): State<Shared>, method: Method, uri: Uri) -> Reply {
    match (&s.builtin, crate::users::current()) {
        (Some(_), Some(who)) => blocking(move || crate::users::me(&s.config.home, &who)).await,
        _ => users_off(&method, &uri),
    }
}

/// `POST /auth/change-password`.
async fn change_password(State(s): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Reply {
    match (&s.builtin, crate::users::current()) {
        (Some(b), Some(who)) => b.change_password(&s.config.home, &who, &body).await,
        _ => users_off(&method, &uri),
    }
}

/// `/users...` and `/api-keys...` (admins only: the guard sees to it).
async fn admin(State(s): State<Shared>, method: Method, uri: Uri, body: Bytes) -> Reply {
    let (Some(_), Some(who)) = (&s.builtin, crate::users::current()) else {
        return users_off(&method, &uri);
    };
    // The path as the API sees it (the router is nested under `/api/v2` and `/api/v1`).
    let inner = percent_decode(uri.path());
    blocking(move || crate::users::admin_api(&s.config.home, &who, method.as_str(), &inner, &body))
        .await
}

async fn health(State(s): State<Shared>) -> Reply {
    answer(
        StatusCode::OK,
        &shapes::Health {
            status: "healthy",
            version: env!("CARGO_PKG_VERSION"),
            uptime: s.started.elapsed().as_secs(),
            timestamp: rfc3339(wharf_store::now_ms()),
        },
    )
}

/// A path the API does not serve: 501 when it is part of the Dagu API, else 404.
async fn not_allowed(method: Method, uri: Uri) -> Reply {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "bad_request",
        format!("{} does not take {method}", uri.path()),
    )
}

async fn unknown(method: Method, uri: Uri) -> Reply {
    let path = uri.path();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The path as the API sees it (after `/api/v2`, or Dagu 2.x's `/api/v1`).
    let inner = match seg.iter().position(|s| matches!(*s, "v1" | "v2")) {
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
            | ["services", ..]
            | ["dag-runs", _, _, "spec" | "reschedule"]
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
pub(crate) fn dag_file(dags: &Path, name: &str) -> Result<PathBuf, Box<Reply>> {
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

/// The DAG files of the folder whose names the server can serve, sorted by name.
pub(crate) fn dag_files(dags: &Path) -> Vec<(String, PathBuf)> {
    wharf_engine::dag_files(dags)
        .into_iter()
        .filter(|(stem, _)| valid_name(stem))
        .collect()
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

/// The name of the DAG in `file` (whose name in the folder is `file_name`): its `name`,
/// else the file's name (also when the file is not a valid DAG).
pub(crate) fn dag_name_in(file: &Path, file_name: &str) -> String {
    wharf_spec::load_file(file)
        .ok()
        .and_then(|l| l.dag)
        .map_or_else(|| file_name.to_owned(), |d| d.name)
}

/// The DAG a page of the web UI names by `file_name`.
pub(crate) struct PageDag {
    /// Its file: in the folder, or the file its latest run ran.
    pub file: PathBuf,
    /// The name its runs are kept under.
    pub name: String,
    /// The file is the folder's (it can be edited and started from the pages).
    pub in_folder: bool,
}

/// A file of the folder (and the DAG's name in it), or else a DAG whose runs are kept
/// under that name while its file lies elsewhere (a file run from the command line,
/// `wharf exec`, a spec sent to the API): the file of its latest run.
pub(crate) fn page_dag(dags: &Path, home: &Path, file_name: &str) -> Option<PageDag> {
    if let Ok(file) = existing_dag_file(dags, file_name) {
        let name = dag_name_in(&file, file_name);
        return Some(PageDag {
            file,
            name,
            in_folder: true,
        });
    }
    let run = Store::open(home)
        .ok()?
        .latest_run(file_name)
        .ok()
        .flatten()?;
    Some(PageDag {
        file: run.file,
        name: file_name.to_owned(),
        in_folder: false,
    })
}

/// The DAG name inside the file `file_name` of the folder.
fn with_dag_name(dags: &Path, file_name: &str, f: impl FnOnce(&str) -> Reply) -> Reply {
    let file = or_reply!(existing_dag_file(dags, file_name));
    let name = crate::api::dag_name_in(&file, file_name);
    f(&name)
}
