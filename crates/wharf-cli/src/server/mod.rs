//! `wharf server`: the REST API (compatible with Dagu 1.x's `/api/v2` for the endpoints
//! wharf implements) over HTTP/1.1.
//!
//! Runs started through the API are `wharf run` processes of their own, in a process group
//! of their own: they write the same store as runs started on the command line, and a
//! restart of the server neither stops nor loses them.

mod api;
mod live;
mod scheduler;
mod ui;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};

use crate::ExitCode;

/// Where the server listens and what it serves.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub host: String,
    pub port: u16,
    /// The DAG files (`*.yaml`, `*.yml`).
    pub dags: PathBuf,
    /// A prefix for every path (`/wharf` serves the API at `/wharf/api/v2`).
    pub base_path: String,
    pub home: PathBuf,
    /// Requests need `Authorization: Bearer TOKEN` (when set).
    pub token: Option<String>,
    /// Requests need basic authentication as this user (when set).
    pub basic: Option<(String, String)>,
    /// Host names (besides loopback names and IP addresses) that requests may name in
    /// their `Host` header; `*` allows any.
    pub allowed_hosts: Vec<String>,
}

impl Config {
    /// Flags over environment (`WHARF_HOST`, `WHARF_PORT`, `WHARF_DAGS`,
    /// `WHARF_BASE_PATH`, `WHARF_AUTH_TOKEN`, `WHARF_AUTH_BASIC_USERNAME`,
    /// `WHARF_AUTH_BASIC_PASSWORD`) over `$WHARF_HOME/config.yaml` over defaults
    /// (127.0.0.1, 8080, `$WHARF_HOME/dags`, no prefix, no authentication).
    pub fn from_args(args: &crate::args::ServerArgs) -> Result<Self, String> {
        let home = wharf_store::default_home();
        let file = home.join("config.yaml");
        let settings = match std::fs::read_to_string(&file) {
            Ok(text) => {
                wharf_spec::flat_settings(&text).map_err(|e| format!("{}: {e}", file.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        const KNOWN: &[&str] = &[
            "host",
            "port",
            "dags",
            "basePath",
            "auth.token",
            "auth.basic.username",
            "auth.basic.password",
            "allowedHosts",
        ];
        if let Some((k, _)) = settings.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "{}: unknown setting `{k}` (known: {})",
                file.display(),
                KNOWN.join(", ")
            ));
        }
        let from_file = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let setting = |env_key: &str, file_key: &str| {
            std::env::var(env_key)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| from_file(file_key))
        };
        let port = match (&args.port, setting("WHARF_PORT", "port")) {
            (Some(p), _) => *p,
            (None, Some(p)) => p
                .parse()
                .map_err(|_| format!("the port is not a port number: {p}"))?,
            (None, None) => 8080,
        };
        let base = args
            .base_path
            .clone()
            .or_else(|| setting("WHARF_BASE_PATH", "basePath"))
            .unwrap_or_default();
        let base_path = match base.trim_end_matches('/') {
            "" => String::new(),
            b if b.starts_with('/') => b.to_owned(),
            b => format!("/{b}"),
        };
        let basic = match (
            setting("WHARF_AUTH_BASIC_USERNAME", "auth.basic.username"),
            setting("WHARF_AUTH_BASIC_PASSWORD", "auth.basic.password"),
        ) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err("basic authentication needs both a username and a password".into()),
        };
        let host = args
            .host
            .clone()
            .or_else(|| setting("WHARF_HOST", "host"))
            .unwrap_or_else(|| "127.0.0.1".into());
        let mut allowed_hosts: Vec<String> = setting("WHARF_ALLOWED_HOSTS", "allowedHosts")
            .unwrap_or_default()
            .split([',', ' '])
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        allowed_hosts.push(host.to_ascii_lowercase());
        Ok(Self {
            host,
            allowed_hosts,
            port,
            dags: args
                .dags
                .clone()
                .or_else(|| setting("WHARF_DAGS", "dags").map(PathBuf::from))
                .unwrap_or_else(|| home.join("dags")),
            base_path,
            home,
            token: setting("WHARF_AUTH_TOKEN", "auth.token"),
            basic,
        })
    }

    /// Whether a request's `Host` names this server. A page on another site that rebinds
    /// its own name to this machine's address (DNS rebinding) sends its own name here, so
    /// only names this server is known by pass: loopback names, IP addresses (which no
    /// rebinding can produce), and the configured ones.
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed == "*" || *allowed == name)
    }

    fn auth_required(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// Whether the `Authorization` header carries the configured token or user.
    fn authorized(&self, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        if let (Some(token), Some(given)) = (&self.token, header.strip_prefix("Bearer ")) {
            return same(token.as_bytes(), given.trim().as_bytes());
        }
        if let (Some((user, password)), Some(given)) = (&self.basic, header.strip_prefix("Basic "))
            && let Some((u, p)) = wharf_spec::decode_basic(given.trim())
        {
            return same(user.as_bytes(), u.as_bytes()) & same(password.as_bytes(), p.as_bytes());
        }
        false
    }
}

/// The name in a `Host` header: without its port, an IPv6 address without brackets.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

pub(crate) struct State {
    pub config: Config,
    pub started: Instant,
}

pub(crate) fn serve(args: &crate::args::ServerArgs, with_scheduler: bool) -> ExitCode {
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&config.dags) {
        eprintln!(
            "error: cannot create the DAGs folder {}: {e}",
            config.dags.display()
        );
        return ExitCode::Failure;
    }
    let Some(runtime) = crate::commands::runtime() else {
        return ExitCode::Failure;
    };
    runtime.block_on(async move {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr}: {e}");
                return ExitCode::Failure;
            }
        };
        let local: SocketAddr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], config.port)));
        eprintln!(
            "wharf server on http://{local}{}/ (API at {}/api/v2, DAGs in {})",
            config.base_path,
            config.base_path,
            config.dags.display()
        );
        if with_scheduler {
            tokio::spawn(scheduler::run(config.clone()));
        }
        let state = Arc::new(State {
            config,
            started: Instant::now(),
        });
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = &mut stop => {
                    eprintln!("wharf server stopped (runs it started go on)");
                    return ExitCode::Success;
                }
            };
            let Ok((stream, _)) = accepted else { continue };
            // Past the limit, a new connection is closed at once rather than queued.
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                drop(stream);
                continue;
            };
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(respond(state, req).await) }
                });
                // A connection that sends no complete request head within the limit (a
                // half-open one, or one idle between requests) is closed.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                drop(permit);
            });
        }
    })
}

/// Connections served at once.
const MAX_CONNECTIONS: usize = 512;
/// How long a connection may take to send a request's head, or stay idle between requests.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a request's body may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `wharf scheduler`.
pub(crate) fn schedule(args: &crate::args::SchedulerArgs) -> ExitCode {
    let server_args = crate::args::ServerArgs {
        host: None,
        port: None,
        dags: args.dags.clone(),
        base_path: None,
    };
    let config = match Config::from_args(&server_args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Usage;
        }
    };
    if let Some(at) = &args.once_at {
        let Ok(slot) = at.parse::<jiff::Timestamp>() else {
            eprintln!("error: `{at}` is not an RFC 3339 time (e.g. 2026-11-28T10:15:00Z)");
            return ExitCode::Usage;
        };
        let mut failed = false;
        for (dag, result) in scheduler::tick(&config, slot) {
            match result {
                Ok(fired) => println!("{dag}: {fired:?}"),
                Err(e) => {
                    failed = true;
                    eprintln!("{dag}: {e}");
                }
            }
        }
        return if failed {
            ExitCode::Failure
        } else {
            ExitCode::Success
        };
    }
    let Some(runtime) = crate::commands::runtime() else {
        return ExitCode::Failure;
    };
    runtime.block_on(async move {
        tokio::select! {
            () = scheduler::run(config) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("wharf scheduler stopped (runs it started go on)"),
        }
    });
    ExitCode::Success
}

/// A response body.
pub(crate) type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(full(value.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `{code, message}` with a status.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json(
        status,
        &serde_json::json!({"code": code, "message": message.into()}),
    )
}

/// The most a request body may be.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Every answer: the request's, with the headers that keep the pages from being framed
/// by another site and from being sniffed as another type.
async fn respond(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let mut r = handle(state, req).await;
    let headers = r.headers_mut();
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        headers.insert(name, hyper::header::HeaderValue::from_static(value));
    }
    r
}

/// The methods every path answers to (OPTIONS lists them).
const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let config = &state.config;
    // The host first: nothing else is looked at for a request to a name this server is not.
    let mut hosts = parts.headers.get_all(hyper::header::HOST).iter();
    let host = match (hosts.next().map(|h| h.to_str()), hosts.next()) {
        (Some(Ok(host)), None) => host.to_owned(),
        (None, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request has no Host header",
            );
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request must have exactly one Host header",
            );
        }
    };
    if let Some(authority) = parts.uri.authority()
        && !authority.as_str().eq_ignore_ascii_case(&host)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the host in the request line differs from the Host header",
        );
    }
    if !config.host_allowed(&host) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "forbidden",
            format!(
                "this server does not answer to the host `{}`; add it to `allowedHosts` \
                 (WHARF_ALLOWED_HOSTS) if it is a name of this server",
                host_name(&host)
            ),
        );
    }
    let path = parts.uri.path().to_owned();
    let health = path == format!("{}/api/v2/health", config.base_path);
    // Credentials before the body: an unauthenticated client cannot make the server read
    // (or wait for) anything more.
    if config.auth_required()
        && !health
        && !config.authorized(
            parts
                .headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok()),
        )
    {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "authentication required",
        );
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Basic realm=\"wharf\""),
        );
        return r;
    }
    if parts.method == hyper::Method::OPTIONS {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static(ALLOW),
        );
        return r;
    }
    // A browser names the page a request comes from: changes only from the server's own.
    if parts.method != hyper::Method::GET
        && parts.method != hyper::Method::HEAD
        && parts.headers.contains_key(hyper::header::ORIGIN)
        && !same_origin(&parts.headers)
    {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests that change something are accepted only from this server's own pages",
        );
    }
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_request",
                "the request body is too large (4 MB at most)",
            );
        }
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "bad_request",
                "the request body did not arrive in time",
            );
        }
    };
    // HEAD is GET without the body (hyper sends no body for it).
    if parts.method == hyper::Method::HEAD {
        parts.method = hyper::Method::GET;
    }
    let Some(rest) = path.strip_prefix(state.config.base_path.as_str()) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such page: {path}"),
        );
    };
    let query = parts.uri.query().unwrap_or_default().to_owned();
    match rest.strip_prefix("/api/v2") {
        Some(api_path) => {
            let store_home = state.config.home.clone();
            let request = api::ApiRequest {
                method: parts.method.clone(),
                path: api_path.to_owned(),
                query,
                body,
            };
            api::route(&state, &store_home, request).await
        }
        None => {
            let segments: Vec<String> = rest
                .split('/')
                .filter(|s| !s.is_empty())
                .map(api::percent_decode)
                .collect();
            if parts.method == hyper::Method::GET
                && let [dags, file, runs, id, steps, step, events] = segments.as_slice()
                && (dags, runs, steps, events)
                    == (
                        &"dags".into(),
                        &"runs".into(),
                        &"steps".into(),
                        &"events".into(),
                    )
            {
                let stderr = api::query_param(&query, "stream").as_deref() == Some("stderr");
                return live::events(&state, file, id, step, stderr);
            }
            let request = ui::UiRequest {
                method: parts.method.clone(),
                path: if rest.is_empty() {
                    "/".into()
                } else {
                    rest.to_owned()
                },
                query,
                body,
                same_origin: same_origin(&parts.headers),
            };
            tokio::task::spawn_blocking(move || ui::route(&state, &request))
                .await
                .unwrap_or_else(|_| {
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "the page failed",
                    )
                })
        }
    }
}

/// Whether a request names this server as its origin: its `Origin` (or, without one, its
/// `Referer`) has the host of its `Host` header.
fn same_origin(headers: &hyper::HeaderMap) -> bool {
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let from = headers
        .get(hyper::header::ORIGIN)
        .or_else(|| headers.get(hyper::header::REFERER))
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let authority = from
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
    !host.is_empty() && authority == host
}
