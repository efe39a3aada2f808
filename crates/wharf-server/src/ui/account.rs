//! The pages of built-in users: signing in and out, one's own password, and (admins) the
//! users and API keys.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State as Extract};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::get;
use wharf_store::Store;

use super::{Chrome, Reply, form_field, redirect, render};
use crate::users::{self, Role, SESSION_COOKIE, Who};
use crate::{Shared, State, blocking};

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/login",
            get(
                |Extract(s): Extract<Shared>, RawQuery(q): RawQuery| async move {
                    let next = crate::api::query_param(&q.unwrap_or_default(), "next");
                    sign_in_page(&s, StatusCode::OK, next.as_deref(), None)
                },
            )
            .post(
                |Extract(s): Extract<Shared>, headers: HeaderMap, body: Bytes| async move {
                    sign_in(&s, &headers, &body).await
                },
            ),
        )
        .route(
            "/logout",
            axum::routing::post(
                |Extract(s): Extract<Shared>, headers: HeaderMap| async move {
                    if !crate::guard::same_origin(&headers) {
                        return refused(
                            &s,
                            "Actions are accepted only from this server's own pages.",
                        );
                    }
                    let mut r = redirect(&format!("{}/login", s.config.base_path));
                    set_cookie(&mut r, &s, "", 0);
                    r
                },
            ),
        )
        .route(
            "/account",
            get(|Extract(s): Extract<Shared>| async move {
                blocking(move || account_page(&s, StatusCode::OK, None)).await
            })
            .post(
                |Extract(s): Extract<Shared>, headers: HeaderMap, body: Bytes| async move {
                    change_password(&s, &headers, &body).await
                },
            ),
        )
        .route(
            "/users",
            get(|Extract(s): Extract<Shared>| async move {
                blocking(move || users_page(&s, StatusCode::OK, Notice::None)).await
            })
            .post(
                |Extract(s): Extract<Shared>, headers: HeaderMap, body: Bytes| async move {
                    if !crate::guard::same_origin(&headers) {
                        return refused(
                            &s,
                            "Actions are accepted only from this server's own pages.",
                        );
                    }
                    blocking(move || users_action(&s, &body)).await
                },
            ),
        )
}

/// What the pages of built-in users say on a server without them.
const NO_USERS: &str = "This server has no built-in users (auth.mode: builtin turns them on).";

#[derive(Template)]
#[template(path = "login.html")]
struct SignIn {
    base: Chrome,
    next: String,
    error: Option<String>,
}

/// Where to go once signed in: `next` when it is a page of this server, else the DAGs.
fn next_page(state: &State, next: Option<&str>) -> String {
    let base = &state.config.base_path;
    match next {
        Some(n)
            if n.starts_with(&format!("{base}/"))
                && !n.starts_with("//")
                && !n.contains(['\\', '\r', '\n']) =>
        {
            n.to_owned()
        }
        _ => format!("{base}/"),
    }
}

fn sign_in_page(
    state: &State,
    status: StatusCode,
    next: Option<&str>,
    error: Option<String>,
) -> Reply {
    if state.builtin.is_none() {
        return refused(state, NO_USERS);
    }
    render(
        status,
        &SignIn {
            base: Chrome::of(&state.config),
            next: next_page(state, next),
            error,
        },
    )
}

async fn sign_in(state: &Shared, headers: &HeaderMap, body: &[u8]) -> Reply {
    let Some(builtin) = &state.builtin else {
        return sign_in_page(state, StatusCode::NOT_FOUND, None, None);
    };
    let next = form_field(body, "next");
    if !crate::guard::same_origin(headers) {
        return refused(
            state,
            "Signing in is accepted only from this server's own page.",
        );
    }
    let (username, password) = (
        form_field(body, "username").unwrap_or_default(),
        form_field(body, "password").unwrap_or_default(),
    );
    if username.is_empty() || password.is_empty() {
        return sign_in_page(
            state,
            StatusCode::BAD_REQUEST,
            next.as_deref(),
            Some("Give your username and your password.".into()),
        );
    }
    match builtin
        .sign_in(&state.config.home, username, password)
        .await
    {
        Ok((token, seconds)) => {
            let mut r = redirect(&next_page(state, next.as_deref()));
            set_cookie(&mut r, state, &token, seconds);
            r
        }
        Err(r) => {
            let why = if r.status == StatusCode::FORBIDDEN {
                "This user is disabled."
            } else {
                "The username or the password is not right."
            };
            sign_in_page(state, r.status, next.as_deref(), Some(why.into()))
        }
    }
}

/// Keeps `token` in the session cookie for `seconds` (0 clears it).
fn set_cookie(r: &mut Reply, state: &State, token: &str, seconds: u64) {
    let path = match state.config.base_path.as_str() {
        "" => "/",
        p => p,
    };
    let secure = if state.config.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path={path}; Max-Age={seconds}; HttpOnly; SameSite=Strict{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn refused(state: &State, message: &str) -> Reply {
    super::say(state, StatusCode::FORBIDDEN, "Refused", message)
}

#[derive(Template)]
#[template(path = "account.html")]
struct Account {
    base: Chrome,
    name: String,
    role: &'static str,
    /// A user with a password (not an API key, not the server's token).
    has_password: bool,
    error: Option<String>,
}

fn account_page(state: &State, status: StatusCode, error: Option<String>) -> Reply {
    let Some(who) = users::current().filter(|_| state.builtin.is_some()) else {
        return refused(state, NO_USERS);
    };
    render(
        status,
        &Account {
            base: Chrome::of(&state.config),
            name: who.name.clone(),
            role: who.role.as_str(),
            has_password: !who.id.is_empty(),
            error,
        },
    )
}

async fn change_password(state: &Shared, headers: &HeaderMap, body: &[u8]) -> Reply {
    if !crate::guard::same_origin(headers) {
        return refused(
            state,
            "Actions are accepted only from this server's own pages.",
        );
    }
    let (Some(builtin), Some(who)) = (&state.builtin, users::current()) else {
        return refused(state, NO_USERS);
    };
    let current = form_field(body, "current").unwrap_or_default();
    let new = form_field(body, "new").unwrap_or_default();
    if form_field(body, "again").as_deref() != Some(new.as_str()) {
        let s = state.clone();
        return blocking(move || {
            account_page(
                &s,
                StatusCode::BAD_REQUEST,
                Some("The new password and its repetition differ.".into()),
            )
        })
        .await;
    }
    let done = builtin
        .set_own_password(&state.config.home, &who, current, new)
        .await;
    if done.is_ok() {
        // The session was made with the old password: sign in again with the new one.
        let mut r = redirect(&format!("{}/login?changed=1", state.config.base_path));
        set_cookie(&mut r, state, "", 0);
        return r;
    }
    let why = done.err().map(|r| r.message).unwrap_or_default();
    let s = state.clone();
    blocking(move || account_page(&s, StatusCode::BAD_REQUEST, Some(why))).await
}

/// A user as the users page lists it.
struct UserRow {
    id: String,
    name: String,
    role: String,
    created: String,
    disabled: bool,
    me: bool,
}

/// An API key as the users page lists it.
struct KeyRow {
    id: String,
    name: String,
    description: String,
    role: String,
    prefix: String,
    last_used: String,
}

/// What the users page says above its lists.
enum Notice {
    None,
    Done(String),
    Failed(String),
    /// A new API key, shown this once.
    Key(String, String),
}

#[derive(Template)]
#[template(path = "users.html")]
struct Users {
    base: Chrome,
    users: Vec<UserRow>,
    keys: Vec<KeyRow>,
    notice: Notice,
    roles: [&'static str; 4],
}

fn users_page(state: &State, status: StatusCode, notice: Notice) -> Reply {
    if state.builtin.is_none() {
        return refused(state, NO_USERS);
    }
    let me = users::current().map(|w| w.id).unwrap_or_default();
    let store = match Store::open(&state.config.home) {
        Ok(s) => s,
        Err(e) => return refused(state, &e.to_string()),
    };
    let users = store
        .users()
        .unwrap_or_default()
        .into_iter()
        .map(|u| UserRow {
            me: u.id == me,
            id: u.id,
            name: u.username,
            role: u.role,
            created: crate::rfc3339(u.created_at),
            disabled: u.disabled,
        })
        .collect();
    let keys = store
        .api_keys()
        .unwrap_or_default()
        .into_iter()
        .map(|k| KeyRow {
            id: k.id,
            name: k.name,
            description: k.description,
            role: k.role,
            prefix: k.key_prefix,
            last_used: k
                .last_used_at
                .map_or_else(|| "never".into(), crate::rfc3339),
        })
        .collect();
    let shows_key = matches!(notice, Notice::Key(..));
    let mut r = render(
        status,
        &Users {
            base: Chrome::of(&state.config),
            users,
            keys,
            notice,
            roles: ["viewer", "operator", "manager", "admin"],
        },
    );
    if shows_key {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A form of the users page (`do`: `create`, `role`, `reset`, `delete`, `key-create`,
/// `key-delete`), then the page again with what came of it.
fn users_action(state: &State, body: &[u8]) -> Reply {
    if state.builtin.is_none() {
        return refused(state, NO_USERS);
    }
    let who = users::current().unwrap_or(Who {
        id: String::new(),
        name: String::new(),
        role: Role::Viewer,
    });
    let field = |k: &str| form_field(body, k).unwrap_or_default();
    let store = match Store::open(&state.config.home) {
        Ok(s) => s,
        Err(e) => return refused(state, &e.to_string()),
    };
    let role = || {
        Role::parse(&field("role")).ok_or_else(|| {
            format!(
                "`{}` is not a role: admin, manager, operator or viewer",
                field("role")
            )
        })
    };
    let outcome: Result<Notice, String> = (|| match field("do").as_str() {
        "create" => {
            let role = role()?;
            users::make_user(&store, &field("username"), &field("password"), role)
                .map_err(|r| r.message)?;
            Ok(Notice::Done(format!(
                "Made the user `{}`.",
                field("username")
            )))
        }
        "role" => {
            let role = role()?;
            let v = serde_json::json!({"role": role.as_str()});
            users::update_user(&store, &field("id"), &v).map_err(|r| r.message)?;
            Ok(Notice::Done("Changed the user's role.".into()))
        }
        "reset" => {
            users::set_password(&store, &field("id"), &field("password")).map_err(|r| r.message)?;
            Ok(Notice::Done("Set the user's new password.".into()))
        }
        "delete" => {
            users::delete_user(&store, &who, &field("id")).map_err(|r| r.message)?;
            Ok(Notice::Done("Deleted the user.".into()))
        }
        "key-create" => {
            let role = role()?;
            let (key, secret) =
                users::make_key(&store, &who, &field("name"), &field("description"), role)
                    .map_err(|r| r.message)?;
            Ok(Notice::Key(key.name, secret))
        }
        "key-delete" => match store.delete_api_key(&field("id")) {
            Ok(true) => Ok(Notice::Done(
                "Deleted the API key: it no longer works.".into(),
            )),
            Ok(false) => Err("no such API key".into()),
            Err(e) => Err(e.to_string()),
        },
        other => Err(format!("no such action `{other}`")),
    })();
    match outcome {
        Ok(notice) => users_page(state, StatusCode::OK, notice),
        Err(why) => users_page(state, StatusCode::BAD_REQUEST, Notice::Failed(why)),
    }
}
