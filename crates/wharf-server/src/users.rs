//! Built-in users (`auth.mode: builtin`, as Dagu names it): people sign in with a name
//! and a password and get a session, programs call with API keys, and each of them has a
//! role that bounds what the server does for them:
//!
//! | role | reads | starts, stops, retries, decides | edits DAG files | users and API keys |
//! |---|---|---|---|---|
//! | `viewer` | yes | no | no | no |
//! | `operator` | yes | yes | no | no |
//! | `manager` | yes | yes | yes | no |
//! | `admin` | yes | yes | yes | yes |
//!
//! (`permissions.writeDAGs` and `permissions.runDAGs` still bound everyone.)
//!
//! A session is a JWT signed with HMAC-SHA256, with Dagu's claims (`uid`, `username`,
//! `role`, `exp`), given by `POST /auth/login` or kept by the pages in an `HttpOnly`,
//! `SameSite=Strict` cookie. It names its user, who is looked up at every request: a
//! deleted or disabled user is out at once, a changed role counts at once, and a changed
//! password ends the sessions made before (the session carries a digest of the hash it
//! was made with). Passwords are kept as bcrypt hashes, as Dagu keeps them, so a Dagu
//! installation's users (`paths.usersDir`) are carried over with their passwords the
//! first time the server starts. An API key is 32 random bytes; the store keeps its
//! SHA-256.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};
use wharf_store::{ApiKey, Store, User};

use crate::api::answer;
use crate::{error, rfc3339};

/// The cookie the pages keep a session in.
pub(crate) const SESSION_COOKIE: &str = "wharf_session";
/// How an API key starts: what it is for, then 64 hex digits of 32 random bytes.
const KEY_PREFIX: &str = "wharf_ak_";
/// How many of a key's characters are kept to tell it apart.
const KEY_SHOWN: usize = 13;
/// bcrypt's cost for new passwords (Dagu's).
const BCRYPT_COST: u32 = 12;
const MIN_PASSWORD: usize = 8;
/// bcrypt reads no further than this.
const MAX_PASSWORD: usize = 72;
/// A bcrypt hash checked when no user has the name given, so that a wrong name takes as
/// long as a wrong password.
const DUMMY_HASH: &str = "$2y$12$OkVtzTypljKIgLXQQeloNumKy4pmcnVVdPh4syWJxii.hDYmwobku";

/// What a person or program may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Viewer,
    Operator,
    Manager,
    Admin,
}

impl Role {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "viewer" => Self::Viewer,
            "operator" => Self::Operator,
            "manager" => Self::Manager,
            "admin" => Self::Admin,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Manager => "manager",
            Self::Admin => "admin",
        }
    }

    /// Starts, stops, retries, queues and decides runs.
    pub(crate) fn can_run(self) -> bool {
        self >= Self::Operator
    }

    /// Creates, edits and deletes DAG files.
    pub(crate) fn can_write(self) -> bool {
        self >= Self::Manager
    }
}

const ROLES: &str = "admin, manager, operator or viewer";

/// Who a request comes from.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    /// The user's id; empty for an API key or the server's own token.
    pub id: String,
    /// The user's name, the API key's name, or `token`.
    pub name: String,
    pub role: Role,
}

tokio::task_local! {
    /// Who the request being answered comes from (set by the guard).
    pub(crate) static REQUEST_WHO: Option<Who>;
}

thread_local! {
    /// The same, on the blocking thread that renders the request's page.
    static PAGE_WHO: RefCell<Option<Who>> = const { RefCell::new(None) };
}

/// Who the current request comes from, on its task or on the blocking thread working for
/// it (see [`crate::blocking`]).
pub(crate) fn current() -> Option<Who> {
    REQUEST_WHO
        .try_with(Clone::clone)
        .ok()
        .flatten()
        .or_else(|| PAGE_WHO.with(|w| w.borrow().clone()))
}

/// Runs `f` on this thread as working for `who`.
pub(crate) fn working_for<T>(who: Option<Who>, f: impl FnOnce() -> T) -> T {
    PAGE_WHO.with(|w| *w.borrow_mut() = who);
    let out = f();
    PAGE_WHO.with(|w| *w.borrow_mut() = None);
    out
}

/// The built-in users' settings and the key that signs sessions.
pub(crate) struct Builtin {
    key: ring::hmac::Key,
    ttl: Duration,
    /// Password checks at once (each takes a bcrypt's time of a core).
    checks: tokio::sync::Semaphore,
}

/// The user as the API shows it (`User`).
#[derive(Serialize)]
struct UserShape {
    id: String,
    username: String,
    role: String,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
}

impl UserShape {
    fn of(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            role: u.role.clone(),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

/// The API key as the API shows it (`APIKey`).
#[derive(Serialize)]
struct KeyShape {
    id: String,
    name: String,
    description: String,
    role: String,
    #[serde(rename = "keyPrefix")]
    key_prefix: String,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "createdBy")]
    created_by: String,
    #[serde(rename = "lastUsedAt", skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

impl KeyShape {
    fn of(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            description: k.description.clone(),
            role: k.role.clone(),
            key_prefix: k.key_prefix.clone(),
            created_at: rfc3339(k.created_at),
            updated_at: rfc3339(k.updated_at),
            created_by: k.created_by.clone(),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

impl Builtin {
    /// Readies the built-in users: the first time, carries over a Dagu installation's
    /// users, or else makes the first admin; and the key that signs sessions.
    pub(crate) fn start(config: &crate::config::BuiltinAuth, home: &Path) -> Result<Self, String> {
        let store = Store::open(home).map_err(|e| e.to_string())?;
        if store.user_count().map_err(|e| e.to_string())? == 0
            && let Some(dir) = &config.users_dir
        {
            let carried = carry_over(&store, dir)?;
            if carried > 0 {
                eprintln!(
                    "wharf: carried over {carried} user(s) from {} (with their passwords)",
                    dir.display()
                );
            }
        }
        if store.user_count().map_err(|e| e.to_string())? == 0 {
            first_admin(&store, config, home)?;
        }
        let secret = match &config.token_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => store
                .secret("session", || random_bytes().unwrap_or_default().to_vec())
                .map_err(|e| e.to_string())?,
        };
        if secret.len() < 16 {
            return Err(
                "the secret that signs sessions (auth.builtin.token.secret) must be at least 16 characters"
                    .into(),
            );
        }
        Ok(Self {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            ttl: config.token_ttl,
            checks: tokio::sync::Semaphore::new(2),
        })
    }

    /// A session for `user`: the token and when it ends (ms since the epoch).
    fn session(&self, user: &User) -> (String, i64) {
        let now = wharf_store::now_ms() / 1000;
        let exp = now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            "sub": user.id,
            "iat": now,
            "exp": exp,
            "uid": user.id,
            "username": user.username,
            "role": user.role,
            "ph": hash_digest(&user.password_hash),
        });
        let body = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{body}");
        let tag = ring::hmac::sign(&self.key, signed.as_bytes());
        (
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())),
            exp * 1000,
        )
    }

    /// The user a session token names, when it is signed by this server, has not ended,
    /// and its user is still there, enabled, with the password it was made with.
    fn session_user(&self, store: &Store, token: &str) -> Option<User> {
        let (signed, tag) = token.rsplit_once('.')?;
        let (head, body) = signed.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        ring::hmac::verify(&self.key, signed.as_bytes(), &tag).ok()?;
        let head: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).ok()?).ok()?;
        if head.get("alg").and_then(Value::as_str) != Some("HS256") {
            return None;
        }
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let exp = claims.get("exp").and_then(Value::as_i64)?;
        if exp * 1000 <= wharf_store::now_ms() {
            return None;
        }
        let id = claims.get("uid").and_then(Value::as_str)?;
        let user = store.user(id).ok()??;
        let made_with = claims.get("ph").and_then(Value::as_str);
        if user.disabled || made_with.is_some_and(|d| d != hash_digest(&user.password_hash)) {
            return None;
        }
        Some(user)
    }

    /// Who a request's credentials name: a session (`Authorization: Bearer`, or the
    /// pages' cookie) or an API key. Reads the store: call off the event loop.
    pub(crate) fn identify(&self, home: &Path, headers: &HeaderMap) -> Option<Who> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let cookie = session_cookie(headers);
        let store = Store::open(home).ok()?;
        if let Some(key) = bearer.filter(|b| b.starts_with(KEY_PREFIX)) {
            let found = store.api_key_by_digest(&sha256_hex(key)).ok()??;
            let _ = store.api_key_used(&found.id);
            return Some(Who {
                id: String::new(),
                role: Role::parse(&found.role)?,
                name: found.name,
            });
        }
        let user = self.session_user(&store, bearer.or(cookie.as_deref())?)?;
        Some(Who {
            role: Role::parse(&user.role)?,
            id: user.id,
            name: user.username,
        })
    }

    /// Checks a name and password; the user when they match and the user is enabled.
    /// Waits its turn: at most two checks run at once.
    async fn check(
        &self,
        home: &Path,
        username: String,
        password: String,
    ) -> Result<User, Refusal> {
        let _turn = self
            .checks
            .acquire()
            .await
            .map_err(|_| internal("closed"))?;
        let home = home.to_path_buf();
        let found = tokio::task::spawn_blocking(move || {
            let store = Store::open(&home).map_err(|e| e.to_string())?;
            let user = store.user_named(&username).map_err(|e| e.to_string())?;
            let hash = user
                .as_ref()
                .map_or(DUMMY_HASH, |u| u.password_hash.as_str());
            let matches = bcrypt::verify(&password, hash).unwrap_or(false);
            Ok::<_, String>(user.filter(|_| matches))
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(internal)?;
        match found {
            None => Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid username or password",
            )),
            Some(u) if u.disabled => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("the user `{}` is disabled", u.username),
            )),
            Some(u) => Ok(u),
        }
    }

    /// `POST /auth/login`: `{token, expiresAt, user}`.
    pub(crate) async fn login(&self, home: &Path, body: &[u8]) -> Response {
        let [username, password] = match texts(body, ["username", "password"]) {
            Ok(t) => t,
            Err(r) => return r.into_response(),
        };
        if username.is_empty() || password.is_empty() {
            return bad("`username` and `password` are required").into_response();
        }
        match self.check(home, username, password).await {
            Ok(user) => {
                let (token, expires) = self.session(&user);
                answer(
                    StatusCode::OK,
                    &json!({"token": token, "expiresAt": rfc3339(expires), "user": UserShape::of(&user)}),
                )
            }
            Err(r) => r.into_response(),
        }
    }

    /// The pages' sign-in: the cookie's value and how long it lasts, or why not.
    pub(crate) async fn sign_in(
        &self,
        home: &Path,
        username: String,
        password: String,
    ) -> Result<(String, u64), Refusal> {
        let user = self.check(home, username, password).await?;
        Ok((self.session(&user).0, self.ttl.as_secs()))
    }

    /// `POST /auth/change-password` (`{currentPassword, newPassword}`) for `who`.
    pub(crate) async fn change_password(&self, home: &Path, who: &Who, body: &[u8]) -> Response {
        let [current, new] = match texts(body, ["currentPassword", "newPassword"]) {
            Ok(t) => t,
            Err(r) => return r.into_response(),
        };
        match self.set_own_password(home, who, current, new).await {
            Ok(()) => answer(StatusCode::OK, &json!({"message": "password changed"})),
            Err(r) => r.into_response(),
        }
    }

    /// Changes `who`'s password when `current` is it.
    pub(crate) async fn set_own_password(
        &self,
        home: &Path,
        who: &Who,
        current: String,
        new: String,
    ) -> Result<(), Refusal> {
        if who.id.is_empty() {
            return Err(bad(
                "only a signed-in user has a password to change (not an API key)",
            ));
        }
        password_ok(&new).map_err(bad)?;
        let store = Store::open(home).map_err(|e| internal(e.to_string()))?;
        let Ok(Some(user)) = store.user(&who.id) else {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "no such user",
            ));
        };
        if let Err(r) = self.check(home, user.username, current).await {
            return Err(if r.status == StatusCode::UNAUTHORIZED {
                Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the current password is not right",
                )
            } else {
                r
            });
        }
        let (id, home) = (who.id.clone(), home.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let store = Store::open(&home).map_err(|e| internal(e.to_string()))?;
            set_password(&store, &id, &new)
        })
        .await
        .map_err(|e| internal(e.to_string()))?
    }
}

/// The text fields `keys` of a JSON body ("" for one not given or not text).
fn texts<const N: usize>(body: &[u8], keys: [&str; N]) -> Result<[String; N], Refusal> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    Ok(keys.map(|k| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }))
}

/// Whether `text` can be a password: 8 to 72 bytes.
fn password_ok(text: &str) -> Result<(), String> {
    if text.len() < MIN_PASSWORD {
        return Err(format!("a password is at least {MIN_PASSWORD} characters"));
    }
    if text.len() > MAX_PASSWORD {
        return Err(format!(
            "a password is at most {MAX_PASSWORD} bytes (bcrypt reads no further)"
        ));
    }
    Ok(())
}

/// Whether `text` can be a user's name: 1 to 64 characters, none of them a control or
/// a space at either end.
fn username_ok(text: &str) -> Result<(), String> {
    if text.is_empty() || text.chars().count() > 64 {
        return Err("a username is 1 to 64 characters".into());
    }
    if text.chars().any(char::is_control) || text.trim() != text {
        return Err("a username has no control characters and no spaces at its ends".into());
    }
    Ok(())
}

/// Gives the user `id` the password `new` (checked here).
pub(crate) fn set_password(store: &Store, id: &str, new: &str) -> Result<(), Refusal> {
    password_ok(new).map_err(bad)?;
    let hash = bcrypt::hash(new, BCRYPT_COST).map_err(|e| internal(e.to_string()))?;
    match store.update_user(id, None, None, Some(&hash), None) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(not_found(format!("no user with the id `{id}`"))),
        Err(e) => Err(internal(e.to_string())),
    }
}

/// The `/users` and `/api-keys` endpoints (admins only: the guard sees to it), on the
/// blocking pool: `method`, the path after the API's prefix, the body.
pub(crate) fn admin_api(home: &Path, who: &Who, method: &str, path: &str, body: &[u8]) -> Response {
    let store = match Store::open(home) {
        Ok(s) => s,
        Err(e) => return internal(e.to_string()).into_response(),
    };
    let json_body = || -> Result<Value, Refusal> {
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match (method, parts.as_slice()) {
        ("GET", ["users"]) => store
            .users()
            .map(|us| {
                let users: Vec<_> = us.iter().map(UserShape::of).collect();
                answer(StatusCode::OK, &json!({ "users": users }))
            })
            .map_err(|e| internal(e.to_string())),
        ("POST", ["users"]) => json_body().and_then(|v| create_user(&store, &v)),
        ("GET", ["users", id]) => one_user(&store, id)
            .map(|u| answer(StatusCode::OK, &json!({"user": UserShape::of(&u)}))),
        ("PATCH", ["users", id]) => json_body().and_then(|v| update_user(&store, id, &v)),
        ("DELETE", ["users", id]) => delete_user(&store, who, id),
        ("POST", ["users", id, "reset-password"]) => json_body().and_then(|v| {
            let new = text_in(&v, "newPassword")?.unwrap_or_default();
            set_password(&store, id, new)?;
            Ok(answer(
                StatusCode::OK,
                &json!({"message": "password reset"}),
            ))
        }),
        ("GET", ["api-keys"]) => store
            .api_keys()
            .map(|ks| {
                let keys: Vec<_> = ks.iter().map(KeyShape::of).collect();
                answer(StatusCode::OK, &json!({ "apiKeys": keys }))
            })
            .map_err(|e| internal(e.to_string())),
        ("POST", ["api-keys"]) => json_body().and_then(|v| create_key(&store, who, &v)),
        ("GET", ["api-keys", id]) => one_key(&store, id)
            .map(|k| answer(StatusCode::OK, &json!({"apiKey": KeyShape::of(&k)}))),
        ("PATCH", ["api-keys", id]) => json_body().and_then(|v| update_key(&store, id, &v)),
        ("DELETE", ["api-keys", id]) => match store.delete_api_key(id) {
            Ok(true) => Ok(no_content()),
            Ok(false) => Err(not_found(format!("no API key with the id `{id}`"))),
            Err(e) => Err(internal(e.to_string())),
        },
        _ => Err(not_found(format!("no such endpoint: {method} {path}"))),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn one_user(store: &Store, id: &str) -> Result<User, Refusal> {
    store
        .user(id)
        .map_err(|e| internal(e.to_string()))?
        .ok_or_else(|| not_found(format!("no user with the id `{id}`")))
}

fn one_key(store: &Store, id: &str) -> Result<ApiKey, Refusal> {
    store
        .api_key(id)
        .map_err(|e| internal(e.to_string()))?
        .ok_or_else(|| not_found(format!("no API key with the id `{id}`")))
}

/// A role given in a body, when given.
fn role_in(v: &Value) -> Result<Option<Role>, Refusal> {
    match v.get("role") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Role::parse(s)
            .map(Some)
            .ok_or_else(|| bad(format!("`role` is {ROLES}, not `{s}`"))),
        Some(other) => Err(bad(format!("`role` is {ROLES}, not {other}"))),
    }
}

/// A text field given in a body, when given.
fn text_in<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, Refusal> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(format!("`{key}` is text, not {other}"))),
    }
}

/// Makes a user; the answer as the API gives it.
pub(crate) fn make_user(
    store: &Store,
    username: &str,
    password: &str,
    role: Role,
) -> Result<User, Refusal> {
    username_ok(username).map_err(bad)?;
    password_ok(password).map_err(bad)?;
    let hash = bcrypt::hash(password, BCRYPT_COST).map_err(|e| internal(e.to_string()))?;
    let now = wharf_store::now_ms();
    let user = User {
        id: uuid(),
        username: username.to_owned(),
        password_hash: hash,
        role: role.as_str().to_owned(),
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    match store.add_user(&user) {
        Ok(true) => Ok(user),
        Ok(false) => Err(conflict(format!(
            "a user named `{username}` exists already"
        ))),
        Err(e) => Err(internal(e.to_string())),
    }
}

fn create_user(store: &Store, v: &Value) -> Result<Response, Refusal> {
    let username = text_in(v, "username")?.unwrap_or_default();
    let password = text_in(v, "password")?.unwrap_or_default();
    let role = role_in(v)?.ok_or_else(|| bad(format!("`role` is required: {ROLES}")))?;
    let user = make_user(store, username, password, role)?;
    Ok(answer(
        StatusCode::CREATED,
        &json!({"user": UserShape::of(&user)}),
    ))
}

/// Whether taking `id`'s admin role away (or the user) leaves no admin.
fn last_admin(store: &Store, id: &str) -> Result<bool, Refusal> {
    let users = store.users().map_err(|e| internal(e.to_string()))?;
    let admins: Vec<_> = users
        .iter()
        .filter(|u| u.role == "admin" && !u.disabled)
        .collect();
    Ok(admins.len() == 1 && admins[0].id == id)
}

pub(crate) fn update_user(store: &Store, id: &str, v: &Value) -> Result<Response, Refusal> {
    let username = text_in(v, "username")?.filter(|u| !u.is_empty());
    if let Some(u) = username {
        username_ok(u).map_err(bad)?;
    }
    let role = role_in(v)?;
    let user = one_user(store, id)?;
    if role.is_some_and(|r| r != Role::Admin) && user.role == "admin" && last_admin(store, id)? {
        return Err(bad(format!(
            "`{}` is the last admin: make another user admin first",
            user.username
        )));
    }
    match store.update_user(id, username, role.map(Role::as_str), None, None) {
        Ok(Some(true)) => {
            one_user(store, id).map(|u| answer(StatusCode::OK, &json!({"user": UserShape::of(&u)})))
        }
        Ok(Some(false)) => Err(conflict(format!(
            "a user named `{}` exists already",
            username.unwrap_or_default()
        ))),
        Ok(None) => Err(not_found(format!("no user with the id `{id}`"))),
        Err(e) => Err(internal(e.to_string())),
    }
}

pub(crate) fn delete_user(store: &Store, who: &Who, id: &str) -> Result<Response, Refusal> {
    if who.id == id {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you cannot delete your own account",
        ));
    }
    let user = one_user(store, id)?;
    if user.role == "admin" && last_admin(store, id)? {
        return Err(bad(format!("`{}` is the last admin", user.username)));
    }
    store.delete_user(id).map_err(|e| internal(e.to_string()))?;
    Ok(no_content())
}

/// Makes an API key: it and the whole key, this once.
pub(crate) fn make_key(
    store: &Store,
    who: &Who,
    name: &str,
    description: &str,
    role: Role,
) -> Result<(ApiKey, String), Refusal> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(bad("an API key's `name` is 1 to 100 characters"));
    }
    if description.chars().count() > 500 {
        return Err(bad("an API key's `description` is at most 500 characters"));
    }
    let bytes = random_bytes().ok_or_else(|| internal("no random bytes for an API key"))?;
    let secret = format!("{KEY_PREFIX}{}", hex(&bytes));
    let now = wharf_store::now_ms();
    let key = ApiKey {
        id: uuid(),
        name: name.to_owned(),
        description: description.to_owned(),
        role: role.as_str().to_owned(),
        key_sha256: sha256_hex(&secret),
        key_prefix: secret[..KEY_SHOWN].to_owned(),
        created_by: who.id.clone(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
    };
    match store.add_api_key(&key) {
        Ok(true) => Ok((key, secret)),
        Ok(false) => Err(conflict(format!(
            "an API key named `{name}` exists already"
        ))),
        Err(e) => Err(internal(e.to_string())),
    }
}

fn create_key(store: &Store, who: &Who, v: &Value) -> Result<Response, Refusal> {
    let name = text_in(v, "name")?.unwrap_or_default();
    let description = text_in(v, "description")?.unwrap_or_default();
    let role = role_in(v)?.ok_or_else(|| bad(format!("`role` is required: {ROLES}")))?;
    let (key, secret) = make_key(store, who, name, description, role)?;
    let mut r = answer(
        StatusCode::CREATED,
        &json!({"apiKey": KeyShape::of(&key), "key": secret}),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

fn update_key(store: &Store, id: &str, v: &Value) -> Result<Response, Refusal> {
    let name = text_in(v, "name")?;
    if name.is_some_and(|n| n.trim().is_empty() || n.chars().count() > 100) {
        return Err(bad("an API key's `name` is 1 to 100 characters"));
    }
    let description = text_in(v, "description")?;
    if description.is_some_and(|d| d.chars().count() > 500) {
        return Err(bad("an API key's `description` is at most 500 characters"));
    }
    let role = role_in(v)?;
    match store.update_api_key(id, name, description, role.map(Role::as_str)) {
        Ok(Some(true)) => {
            one_key(store, id).map(|k| answer(StatusCode::OK, &json!({"apiKey": KeyShape::of(&k)})))
        }
        Ok(Some(false)) => Err(conflict(format!(
            "an API key named `{}` exists already",
            name.unwrap_or_default()
        ))),
        Ok(None) => Err(not_found(format!("no API key with the id `{id}`"))),
        Err(e) => Err(internal(e.to_string())),
    }
}

/// `GET /auth/me`.
pub(crate) fn me(home: &Path, who: &Who) -> Response {
    if who.id.is_empty() {
        // An API key or the server's token: no stored user.
        return answer(
            StatusCode::OK,
            &json!({"user": {"id": "", "username": who.name, "role": who.role.as_str(),
                "createdAt": rfc3339(0), "updatedAt": rfc3339(0)}}),
        );
    }
    match Store::open(home).map(|s| s.user(&who.id)) {
        Ok(Ok(Some(u))) => answer(StatusCode::OK, &json!({"user": UserShape::of(&u)})),
        Ok(Ok(None)) => error(StatusCode::UNAUTHORIZED, "unauthorized", "no such user"),
        Ok(Err(e)) | Err(e) => internal(e.to_string()).into_response(),
    }
}

/// Carries over the users of a Dagu installation (one JSON file each, with a bcrypt
/// hash); how many.
fn carry_over(store: &Store, dir: &Path) -> Result<usize, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(format!(
                "cannot read the users folder {}: {e}",
                dir.display()
            ));
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut carried = 0;
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a user (JSON): {e}", file.display()))?;
        let text_of = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let (username, hash, role) = (
            text_of("username"),
            text_of("password_hash"),
            text_of("role"),
        );
        if text_of("auth_provider") == "oidc" || hash.is_empty() {
            eprintln!(
                "wharf: the user `{username}` ({}) signs in through OIDC, which wharf does not support: not carried over",
                file.display()
            );
            continue;
        }
        if username_ok(username).is_err() || Role::parse(role).is_none() || !hash.starts_with("$2")
        {
            return Err(format!(
                "{}: a user needs a `username`, a bcrypt `password_hash` and a `role` ({ROLES})",
                file.display()
            ));
        }
        let time = |k: &str| {
            text_of(k)
                .parse::<jiff::Timestamp>()
                .map_or_else(|_| wharf_store::now_ms(), |t| t.as_millisecond())
        };
        let id = match text_of("id") {
            "" => uuid(),
            id => id.to_owned(),
        };
        let user = User {
            id,
            username: username.to_owned(),
            password_hash: hash.to_owned(),
            role: role.to_owned(),
            disabled: v
                .get("is_disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            created_at: time("created_at"),
            updated_at: time("updated_at"),
        };
        if store.add_user(&user).map_err(|e| e.to_string())? {
            carried += 1;
        }
    }
    Ok(carried)
}

/// Makes the first admin, with the configured password, or with a new one written to a
/// file only its owner reads (never to the terminal or a log).
fn first_admin(
    store: &Store,
    config: &crate::config::BuiltinAuth,
    home: &Path,
) -> Result<(), String> {
    let why = |r: Refusal| format!("cannot make the first admin: {}", r.message);
    match &config.admin_password {
        Some(password) => {
            password_ok(password).map_err(|e| format!("auth.builtin.admin.password: {e}"))?;
            make_user(store, &config.admin_username, password, Role::Admin).map_err(why)?;
            eprintln!(
                "wharf: made the first user, `{}` (admin), with the configured password",
                config.admin_username
            );
        }
        None => {
            let bytes = random_bytes().ok_or("no random bytes for a password")?;
            let password = URL_SAFE_NO_PAD.encode(&bytes[..18]);
            let file = home.join("admin-password");
            // A file left from an earlier store names a password no user has.
            let _ = std::fs::remove_file(&file);
            wharf_store::write_private(&file, format!("{password}\n").as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            make_user(store, &config.admin_username, &password, Role::Admin).map_err(why)?;
            eprintln!(
                "wharf: made the first user, `{}` (admin); its password is in {} (readable by \
                 you alone): sign in, change it, and delete the file",
                config.admin_username,
                file.display()
            );
        }
    }
    Ok(())
}

/// The session in a request's cookie, when it has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == SESSION_COOKIE).then(|| value.to_owned())
        })
}

fn random_bytes() -> Option<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes)
}

/// A random (version 4) UUID, as Dagu gives its users and keys.
fn uuid() -> String {
    let b = random_bytes().unwrap_or_default();
    let h = hex(&b[..16]);
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        (b[8] & 0x3) | 0x8,
        &h[17..20],
        &h[20..32]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

/// What a session carries of the password hash it was made with.
fn hash_digest(hash: &str) -> String {
    sha256_hex(hash)[..16].to_owned()
}

/// Why a request about users or keys is not done: its status, code and message.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.code, self.message)
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn not_found(message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "not_found", message)
}

fn internal(message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
}

fn conflict(message: impl Into<String>) -> Refusal {
    Refusal::new(StatusCode::CONFLICT, "already_exists", message)
}

fn no_content() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_what_they_may_do() {
        assert!(!Role::Viewer.can_run() && !Role::Viewer.can_write());
        assert!(Role::Operator.can_run() && !Role::Operator.can_write());
        assert!(Role::Manager.can_run() && Role::Manager.can_write());
        for r in ["admin", "manager", "operator", "viewer"] {
            assert_eq!(Role::parse(r).map(Role::as_str), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_uuid_is_version_4() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(uuid(), id);
    }

    #[test]
    fn the_dummy_hash_is_a_bcrypt_hash() {
        assert_eq!(
            bcrypt::verify("not the password", DUMMY_HASH).ok(),
            Some(false)
        );
    }

    #[test]
    fn passwords_and_names_are_bounded() {
        assert!(password_ok("short").is_err());
        assert!(password_ok("long enough").is_ok());
        assert!(password_ok(&"x".repeat(73)).is_err());
        assert!(username_ok("").is_err());
        assert!(username_ok(" alice").is_err());
        assert!(username_ok("alice@example.org").is_ok());
    }
}
