//! What every request goes through before a handler sees it, in this order:
//!
//! 1. the host: exactly one `Host` header naming this server (DNS rebinding), and an
//!    absolute URL in the request line only for that same host;
//! 2. the credentials (token, basic, or a built-in user's session or API key), before
//!    anything of the body is read (a webhook's call brings its own token instead, checked
//!    by its handler; signing in needs none); a page asked for without them leads to the
//!    sign-in page when built-in users are on;
//! 3. `OPTIONS`, answered here: the methods, and no cross-origin permission;
//! 4. the origin: a request that changes something from another site's page is refused;
//! 5. what the request does against what the server and its caller's role allow;
//! 6. the body: at most 4 MB, within 30 s, read whole before the handler runs.
//!
//! The handler then runs as working for the caller (see [`crate::users::current`]).
//!
//! Every answer gets the headers that keep pages from being framed or sniffed.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::host_name;
use crate::users::{Role, Who};
use crate::{Shared, error};

/// The most a request body may be.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How long a request's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The methods every path answers to (OPTIONS lists them).
const ALLOW: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// `app` behind the guard, with the headers of every answer.
pub(crate) fn layer(app: Router, state: Shared) -> Router {
    let headers = [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ];
    let mut app = app.layer(axum::middleware::from_fn_with_state(state, check));
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::overriding(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    app
}

async fn check(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let config = &state.config;
    let (parts, body) = request.into_parts();
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let host = match (hosts.next().map(|h| h.to_str()), hosts.next()) {
        (Some(Ok(host)), None) => host.to_owned(),
        (None, _) => return bad_request("the request has no Host header"),
        _ => return bad_request("the request must have exactly one Host header"),
    };
    if let Some(authority) = parts.uri.authority()
        && !authority.as_str().eq_ignore_ascii_case(&host)
    {
        return bad_request("the host in the request line differs from the Host header");
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
    let path = parts.uri.path();
    let api = path
        .strip_prefix(config.base_path.as_str())
        .and_then(api_path);
    let health = api == Some("/health");
    // A webhook's call carries the webhook's own token instead (checked by its handler).
    let webhook = parts.method == Method::POST
        && api
            .and_then(|p| p.strip_prefix("/webhooks/"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    let builtin = state.builtin.is_some();
    let own = path
        .strip_prefix(config.base_path.as_str())
        .unwrap_or(path)
        .to_owned();
    // With built-in users, signing in (and the sign-in page's stylesheet) needs no session.
    let signing_in = builtin
        && (api == Some("/auth/login")
            || own == "/login"
            || own == "/logout"
            || own.starts_with("/assets/"));
    let mut who = None;
    if config.auth_required() && !health && !webhook && !signing_in {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        if (config.token.is_some() || config.basic.is_some()) && config.authorized(given) {
            // The server's own token or user stands for an admin.
            who = Some(Who {
                id: String::new(),
                name: "token".into(),
                role: Role::Admin,
            });
        } else if builtin {
            let (state, headers) = (state.clone(), parts.headers.clone());
            who = tokio::task::spawn_blocking(move || {
                state
                    .builtin
                    .as_ref()
                    .and_then(|b| b.identify(&state.config.home, &headers))
            })
            .await
            .ok()
            .flatten();
        }
        if who.is_none() {
            if builtin && api.is_none() && parts.method == Method::GET {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                return to_sign_in(&config.base_path, &next);
            }
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(if builtin {
                    "Bearer realm=\"wharf\""
                } else {
                    "Basic realm=\"wharf\""
                }),
            );
            return r;
        }
    }
    if parts.method == Method::OPTIONS {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
        return r;
    }
    // A browser names the page a request comes from: changes only from the server's own.
    if parts.method != Method::GET
        && parts.method != Method::HEAD
        && parts.headers.contains_key(header::ORIGIN)
        && !same_origin(&parts.headers)
    {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests that change something are accepted only from this server's own pages",
        );
    }
    let role = who.as_ref().map(|w| w.role);
    let refused = |why: String| error(StatusCode::FORBIDDEN, "forbidden", why);
    match permission(&parts.method, &own) {
        Some(Permission::Write) if !config.write_dags => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this server does not change DAG files (permissions.writeDAGs is false)",
            );
        }
        Some(Permission::Run) if !config.run_dags => {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this server does not start, stop or change runs (permissions.runDAGs is false)",
            );
        }
        Some(Permission::Write) if role.is_some_and(|r| !r.can_write()) => {
            return refused(format!(
                "your role ({}) does not change DAG files: a manager's or an admin's does",
                role.map_or("", Role::as_str)
            ));
        }
        Some(Permission::Run) if role.is_some_and(|r| !r.can_run()) => {
            return refused(format!(
                "your role ({}) does not start, stop or change runs: an operator's, a manager's or an admin's does",
                role.map_or("", Role::as_str)
            ));
        }
        Some(Permission::Admin) if builtin && role != Some(Role::Admin) => {
            return refused("only an admin manages users and API keys".into());
        }
        _ => {}
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY).collect(),
    )
    .await;
    let bytes = match collected {
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
    crate::users::REQUEST_WHO
        .scope(who, next.run(Request::from_parts(parts, Body::from(bytes))))
        .await
}

/// To the sign-in page, which comes back to `next` (a path of this server) once signed in.
fn to_sign_in(base: &str, next: &str) -> Response {
    let target = format!(
        "{base}/login?next={}",
        percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(&target) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// What a request needs leave for: changing DAG files, acting on runs, or managing users
/// and API keys.
#[derive(Debug, PartialEq, Eq)]
enum Permission {
    Write,
    Run,
    Admin,
}

/// The leave `path` (under the base path) needs for `method`: reads need none, except a
/// dequeue (a GET in Dagu's API).
fn permission(method: &Method, path: &str) -> Option<Permission> {
    let api = api_path(path);
    let admin = match api {
        Some(p) => {
            p == "/users"
                || p.starts_with("/users/")
                || p == "/api-keys"
                || p.starts_with("/api-keys/")
        }
        None => path == "/users" || path.starts_with("/users/"),
    };
    if admin {
        return Some(Permission::Admin);
    }
    // Signing in and out, and one's own password.
    if matches!(api, Some("/auth/login" | "/auth/change-password"))
        || (api.is_none() && matches!(path, "/login" | "/logout" | "/account"))
    {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        return path.ends_with("/dequeue").then_some(Permission::Run);
    }
    // The pages' forms that change DAG files.
    if api.is_none()
        && (path == "/new-dag"
            || (path.starts_with("/dags/")
                && (path.ends_with("/save") || path.ends_with("/delete"))))
    {
        return Some(Permission::Write);
    }
    match api {
        Some("/dags/validate") => None,
        // A webhook starts runs: managing one is acting on runs, not on the DAG's file.
        Some(p)
            if p.starts_with("/dags/") && (p.ends_with("/webhook") || p.contains("/webhook/")) =>
        {
            Some(Permission::Run)
        }
        Some("/dags") if method == Method::POST => Some(Permission::Write),
        Some(p) if method == Method::DELETE && p.starts_with("/dags/") => Some(Permission::Write),
        Some(p) if method == Method::PUT && p.ends_with("/spec") => Some(Permission::Write),
        Some(p) if p.starts_with("/dags/") && p.ends_with("/rename") => Some(Permission::Write),
        _ => Some(Permission::Run),
    }
}

/// A path of the API as the API sees it: after `/api/v2` (Dagu 1.x) or `/api/v1` (the
/// same API as Dagu 2.x names it).
fn api_path(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v2")
        .or_else(|| path.strip_prefix("/api/v1"))
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Whether a request names this server as its origin: its `Origin` (or, without one, its
/// `Referer`) has the host of its `Host` header.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let authority = from
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
    !host.is_empty() && authority == host
}
