//! Webhooks (Dagu 1.29+): one per DAG file, whose token starts a run of it without the
//! server's own credentials. `POST /webhooks/{fileName}` with `Authorization: Bearer
//! TOKEN` enqueues a run with the request's `payload` as its `WEBHOOK_PAYLOAD` param; the
//! rest manages the webhooks (`/webhooks`, `/dags/{fileName}/webhook[/regenerate|/toggle]`)
//! behind the server's credentials. A token is shown once, when it is made; the store
//! keeps its SHA-256 and its first characters.

use std::path::Path;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use wharf_store::Webhook;

use super::dags::{Enqueue, checked_run_id, control_error, enqueue_run, runnable};
use super::*;

/// How a token starts: what it is for, then 64 hex digits of 32 random bytes.
const TOKEN_PREFIX: &str = "wharf_wh_";
/// How many of a token's characters are kept to tell it apart.
const SHOWN: usize = 12;
/// The most a payload may be, as JSON.
const MAX_PAYLOAD: usize = 1024 * 1024;

/// `WebhookDetails`.
#[derive(Serialize)]
pub(crate) struct Details {
    id: String,
    #[serde(rename = "dagName")]
    dag_name: String,
    #[serde(rename = "tokenPrefix")]
    token_prefix: String,
    enabled: bool,
    #[serde(rename = "createdAt")]
    created_at: String,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "lastUsedAt", skip_serializing_if = "Option::is_none")]
    last_used_at: Option<String>,
}

impl Details {
    fn of(w: &Webhook) -> Self {
        Self {
            id: w.id.clone(),
            dag_name: w.dag.clone(),
            token_prefix: w.token_prefix.clone(),
            enabled: w.enabled,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            last_used_at: w.last_used_at.map(rfc3339),
        }
    }
}

/// `WebhookCreateResponse`: the webhook and its whole token, this once.
#[derive(Serialize)]
struct Created {
    webhook: Details,
    token: String,
}

/// Makes the webhook of `file_name` (`create`) or gives it a new token (the old one stops
/// working): the webhook and its whole token; None when it has one already (`create`) or
/// has none (a new token).
fn issue(
    store: &wharf_store::Store,
    file_name: &str,
    create: bool,
) -> Result<Option<(Webhook, String)>, String> {
    let (digest, prefix, token) = random_token().ok_or("no random bytes for a webhook token")?;
    let made = if create {
        store.create_webhook(file_name, &wharf_engine::new_run_id(), &digest, &prefix)
    } else {
        store.set_webhook_token(file_name, &digest, &prefix)
    };
    Ok(made.map_err(|e| e.to_string())?.map(|w| (w, token)))
}

/// A new token, and what the store keeps of it (its SHA-256 and its start).
fn random_token() -> Option<(String, String, String)> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let prefix = token[..SHOWN].to_owned();
    Some((sha256(&token), prefix, token))
}

/// What the web UI does to a DAG's webhook (`create`, `regenerate`, `disable`, `enable`,
/// `delete`); a token made is given back, to be shown this once.
pub(crate) fn manage(
    store: &wharf_store::Store,
    file_name: &str,
    what: &str,
) -> Result<Option<String>, String> {
    let missing = || format!("the DAG `{file_name}` has no webhook");
    match what {
        "create" => issue(store, file_name, true)?
            .map(|(_, token)| Some(token))
            .ok_or_else(|| format!("the DAG `{file_name}` has a webhook already")),
        "regenerate" => issue(store, file_name, false)?
            .map(|(_, token)| Some(token))
            .ok_or_else(missing),
        "disable" | "enable" => store
            .set_webhook_enabled(file_name, what == "enable")
            .map_err(|e| e.to_string())?
            .map(|_| None)
            .ok_or_else(missing),
        "delete" => match store.delete_webhook(file_name).map_err(|e| e.to_string())? {
            true => Ok(None),
            false => Err(missing()),
        },
        other => Err(format!(
            "no webhook action `{other}`: create, regenerate, disable, enable or delete"
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// Whether two digests are equal, in a time that does not tell where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn no_webhook(file_name: &str) -> Reply {
    not_found(format!("no webhook configured for the DAG `{file_name}`"))
}

/// `GET /webhooks`.
pub(super) fn list(home: &Path) -> Reply {
    let store = or_reply!(open(home));
    match store.webhooks() {
        Ok(all) => answer(
            StatusCode::OK,
            &serde_json::json!({ "webhooks": all.iter().map(Details::of).collect::<Vec<_>>() }),
        ),
        Err(e) => internal(e),
    }
}

/// `GET /dags/{fileName}/webhook`.
pub(super) fn get(home: &Path, file_name: &str) -> Reply {
    let store = or_reply!(open(home));
    match store.webhook(file_name) {
        Ok(Some(w)) => answer(StatusCode::OK, &Details::of(&w)),
        Ok(None) => no_webhook(file_name),
        Err(e) => internal(e),
    }
}

/// `POST /dags/{fileName}/webhook`: a webhook for a DAG of the folder, with its token.
pub(super) fn create(dags: &Path, home: &Path, file_name: &str) -> Reply {
    or_reply!(existing_dag_file(dags, file_name));
    let store = or_reply!(open(home));
    match issue(&store, file_name, true) {
        Ok(Some((w, token))) => answer(
            StatusCode::CREATED,
            &Created {
                webhook: Details::of(&w),
                token,
            },
        ),
        Ok(None) => error(
            StatusCode::CONFLICT,
            "already_exists",
            format!(
                "the DAG `{file_name}` has a webhook already (regenerate its token, or delete it first)"
            ),
        ),
        Err(e) => internal(e),
    }
}

/// `POST /dags/{fileName}/webhook/regenerate`: a new token; the old one stops working.
pub(super) fn regenerate(home: &Path, file_name: &str) -> Reply {
    let store = or_reply!(open(home));
    match issue(&store, file_name, false) {
        Ok(Some((w, token))) => answer(
            StatusCode::OK,
            &Created {
                webhook: Details::of(&w),
                token,
            },
        ),
        Ok(None) => no_webhook(file_name),
        Err(e) => internal(e),
    }
}

/// `POST /dags/{fileName}/webhook/toggle` with `{"enabled": BOOL}`.
pub(super) fn toggle(home: &Path, file_name: &str, body: &Bytes) -> Reply {
    let body = or_reply!(body_json(body));
    let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
        return bad_request("the body needs `enabled`: true or false");
    };
    let store = or_reply!(open(home));
    match store.set_webhook_enabled(file_name, enabled) {
        Ok(Some(w)) => answer(StatusCode::OK, &Details::of(&w)),
        Ok(None) => no_webhook(file_name),
        Err(e) => internal(e),
    }
}

/// `DELETE /dags/{fileName}/webhook`.
pub(super) fn delete(home: &Path, file_name: &str) -> Reply {
    let store = or_reply!(open(home));
    match store.delete_webhook(file_name) {
        Ok(true) => {
            let mut r = Response::new(axum::body::Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(false) => no_webhook(file_name),
        Err(e) => internal(e),
    }
}

/// `POST /webhooks/{fileName}`: checks the token, then enqueues a run of the DAG with
/// `WEBHOOK_PAYLOAD` set to the payload as JSON (`{}` without one).
pub(super) fn trigger(
    dags: &Path,
    home: &Path,
    file_name: &str,
    authorization: Option<&str>,
    body: &Bytes,
) -> Reply {
    let store = or_reply!(open(home));
    let webhook = match store.webhook(file_name) {
        Ok(Some(w)) => w,
        Ok(None) => return no_webhook(file_name),
        Err(e) => return internal(e),
    };
    let Some(token) = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid authorization header: send `Authorization: Bearer TOKEN` with the webhook's token",
        );
    };
    if !same(&sha256(token), &webhook.token_sha256) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid webhook token",
        );
    }
    if !webhook.enabled {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the webhook is disabled",
        );
    }
    let body = or_reply!(body_json(body));
    let Value::Object(mut fields) = body else {
        return bad_request(
            "the body must be a JSON object: {\"payload\": {...}, \"dagRunId\": \"...\"}",
        );
    };
    let run_id = match fields.remove("dagRunId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.is_empty() => None,
        Some(Value::String(id)) => Some(id),
        Some(other) => return bad_request(format!("`dagRunId` must be a string, found {other}")),
    };
    // The payload is `payload`; a body without it (and with other fields) is the payload
    // itself, as a caller that posts its event as it is expects.
    let payload = match fields.remove("payload") {
        Some(p @ Value::Object(_)) => p,
        Some(Value::Null) | None if fields.is_empty() => Value::Object(serde_json::Map::new()),
        Some(Value::Null) | None => Value::Object(fields),
        Some(other) => {
            return bad_request(format!("`payload` must be a JSON object, found {other}"));
        }
    };
    let payload = payload.to_string();
    if payload.len() > MAX_PAYLOAD {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request",
            format!("the webhook payload is too large ({MAX_PAYLOAD} bytes at most)"),
        );
    }
    let (file, dag) = or_reply!(runnable(dags, file_name));
    // A chosen id makes the call idempotent (a second one is refused with 409), whatever
    // the DAG's runConfig says of ids chosen by a person.
    let run_id = match run_id {
        Some(id) => or_reply!(checked_run_id(&id)),
        None => wharf_engine::new_run_id(),
    };
    let params = [format!("WEBHOOK_PAYLOAD={payload}")];
    let run = Enqueue {
        file: &file,
        dag: &dag,
        name: &dag.name,
        run_id: &run_id,
        params: &params,
        queue: None,
        singleton: false,
    };
    if let Err(e) = enqueue_run(&store, home, &run) {
        return control_error(&e);
    }
    if let Ok(Some(r)) = store.run(&dag.name, &run_id) {
        let _ = store.set_trigger(r.key, "webhook");
    }
    let _ = store.webhook_used(file_name);
    answer(
        StatusCode::OK,
        &serde_json::json!({ "dagRunId": run_id, "dagName": dag.name }),
    )
}
