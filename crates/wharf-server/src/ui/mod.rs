//! The web UI: server-rendered pages that read without JavaScript, from auto-escaping
//! templates (`templates/`, checked when the crate compiles); the stylesheet and the small
//! script that follows live logs are embedded assets. Actions (start, stop, retry) are
//! forms that POST, accepted only from the server's own pages, and done through run
//! control; a refusal is a page that says why.

mod account;
mod actions;
mod graph;
mod pages;

use std::path::Path;

use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use wharf_store::Store;

use crate::{Shared, State, blocking};

type Reply = Response;

const STYLE: &str = include_str!("../../assets/wharf.css");
const LIVE_SCRIPT: &str = include_str!("../../assets/live.js");
const UI_SCRIPT: &str = include_str!("../../assets/ui.js");

/// What every page shows around its content: the base path (what `{{ base }}` prints,
/// in links), the navigation bar's title and colour, and which actions it offers.
#[derive(Clone)]
pub(crate) struct Chrome {
    path: String,
    pub title: String,
    /// The navigation bar's colour, when configured (else the theme's).
    pub color: Option<String>,
    /// `permissions.runDAGs`: Start, Stop, Retry, Suspend and the decisions are offered.
    pub can_run: bool,
    /// `permissions.writeDAGs`: DAGs are created, edited and deleted from the pages.
    pub can_write: bool,
    /// The signed-in user's name, with built-in users.
    pub user: Option<String>,
    /// The signed-in user is an admin (the users page is offered).
    pub admin: bool,
    /// The navigation is offered: not on the sign-in page of a server with built-in
    /// users (its links would lead back to it).
    pub nav: bool,
}

impl Chrome {
    pub(crate) fn of(config: &crate::Config) -> Self {
        let who = crate::users::current().filter(|_| config.builtin.is_some());
        let role = who.as_ref().map(|w| w.role);
        Self {
            nav: config.builtin.is_none() || who.is_some(),
            user: who.map(|w| w.name),
            admin: role == Some(crate::users::Role::Admin),
            path: config.base_path.clone(),
            title: config
                .navbar_title
                .clone()
                .unwrap_or_else(|| "wharf".into()),
            color: config.navbar_color.clone(),
            can_run: config.run_dags && role.is_none_or(crate::users::Role::can_run),
            can_write: config.write_dags && role.is_none_or(crate::users::Role::can_write),
        }
    }
}

impl std::fmt::Display for Chrome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

/// A status as people read it: `partially succeeded`, `not started`.
pub(crate) fn human(status: &str) -> String {
    status.replace('_', " ")
}

/// The pages, the forms they post, and their assets.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(|Extract(s): Extract<Shared>, RawQuery(q): RawQuery| async move {
                blocking(move || pages::dag_list(&s, &q.unwrap_or_default())).await
            }),
        )
        .route(
            "/dags/{name}",
            get(
                |Extract(s): Extract<Shared>, UrlPath(name): UrlPath<String>, RawQuery(q): RawQuery| async move {
                    blocking(move || {
                        let selected = crate::api::query_param(&q.unwrap_or_default(), "run");
                        pages::dag_page(&s, &name, selected.as_deref())
                    })
                    .await
                },
            ),
        )
        .route(
            "/dags/{name}/runs/{id}",
            get(
                |Extract(s): Extract<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    blocking(move || pages::run_page(&s, &name, &id, None)).await
                },
            ),
        )
        .route(
            "/dags/{name}/runs/{id}/sub/{sub}",
            get(
                |Extract(s): Extract<Shared>,
                 UrlPath((name, id, sub)): UrlPath<(String, String, String)>| async move {
                    blocking(move || pages::run_page(&s, &name, &id, Some(&sub))).await
                },
            ),
        )
        .route(
            "/dags/{name}/{action}",
            post(
                |Extract(s): Extract<Shared>,
                 UrlPath((name, action)): UrlPath<(String, String)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    if !crate::guard::same_origin(&headers) {
                        return say(
                            &s,
                            StatusCode::FORBIDDEN,
                            "Refused",
                            "Actions are accepted only from this server's own pages.",
                        );
                    }
                    if !matches!(
                        action.as_str(),
                        "start"
                            | "stop"
                            | "retry"
                            | "approve"
                            | "reject"
                            | "suspend"
                            | "resume"
                            | "save"
                            | "delete"
                            | "rerun"
                            | "dequeue"
                            | "mark"
                            | "enqueue"
                            | "webhook"
                    ) {
                        return not_found(&s, &format!("no action {action}"));
                    }
                    blocking(move || action_post(&s, &name, &action, &body)).await
                },
            ),
        )
        .merge(account::router())
        .route("/assets/wharf.css", get(|| async { asset(STYLE, "text/css") }))
        .route(
            "/assets/live.js",
            get(|| async { asset(LIVE_SCRIPT, "text/javascript") }),
        )
        .route(
            "/assets/ui.js",
            get(|| async { asset(UI_SCRIPT, "text/javascript") }),
        )
        .route(
            "/runs",
            get(|Extract(s): Extract<Shared>, RawQuery(q): RawQuery| async move {
                blocking(move || pages::runs_page(&s, &q.unwrap_or_default())).await
            }),
        )
        .route(
            "/new-dag",
            post(
                |Extract(s): Extract<Shared>, headers: HeaderMap, body: Bytes| async move {
                    if !crate::guard::same_origin(&headers) {
                        return not_found(&s, "actions are accepted only from this server's own pages");
                    }
                    blocking(move || new_dag(&s, &body)).await
                },
            ),
        )
        .route(
            "/dashboard",
            get(|Extract(s): Extract<Shared>, RawQuery(q): RawQuery| async move {
                blocking(move || pages::dashboard(&s, &q.unwrap_or_default())).await
            }),
        )
        .route(
            "/system",
            get(|Extract(s): Extract<Shared>, RawQuery(q): RawQuery| async move {
                let nodes = crate::system::swarm_nodes(&s.docker).await;
                blocking(move || pages::system_page(&s, &q.unwrap_or_default(), nodes)).await
            }),
        )
        .route(
            "/queues",
            get(|Extract(s): Extract<Shared>| async move {
                blocking(move || pages::queues_page(&s)).await
            }),
        )
        .route(
            "/dags/{name}/runs/{id}/steps/{step}/log",
            get(
                |Extract(s): Extract<Shared>,
                 UrlPath((name, id, step)): UrlPath<(String, String, String)>,
                 RawQuery(q): RawQuery| async move {
                    blocking(move || whole_log(&s, (&name, &id, &step), &q.unwrap_or_default())).await
                },
            ),
        )
}

fn asset(text: &'static str, kind: &'static str) -> Reply {
    let mut r = Response::new(Body::from(text));
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// A template as a page.
fn render(status: StatusCode, page: &impl Template) -> Reply {
    match page.render() {
        Ok(html) => {
            let mut r = Response::new(Body::from(html));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => crate::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("the page failed: {e}"),
        ),
    }
}

/// A spec that was not saved: its errors, and the text as it was sent, to fix.
#[derive(Template)]
#[template(path = "edit.html")]
struct Edit {
    base: Chrome,
    file: String,
    spec: String,
    errors: Vec<String>,
}

/// `POST /new-dag` (`name`): a new DAG file with one step, opened to be edited.
fn new_dag(state: &State, body: &[u8]) -> Reply {
    let base = &state.config.base_path;
    let name = form_field(body, "name").unwrap_or_default();
    let name = name.trim();
    let refused = |why: String| {
        render(
            StatusCode::BAD_REQUEST,
            &Message {
                base: Chrome::of(&state.config),
                title: "Could not create the DAG".into(),
                class: "err",
                message: why,
                back: Some(format!("{base}/")),
            },
        )
    };
    let Ok(file) = crate::api::dag_file(&state.config.dags, name) else {
        return refused(format!(
            "`{name}` cannot be a DAG's name: letters, digits, `_` and `-` (at most 128)"
        ));
    };
    if file.exists() || file.with_extension("yml").exists() {
        return refused(format!("the DAG `{name}` exists already"));
    }
    let created = std::fs::create_dir_all(&state.config.dags).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
            .and_then(|mut f| {
                std::io::Write::write_all(
                    &mut f,
                    b"steps:\n  - name: hello\n    command: echo hello\n",
                )
            })
    });
    match created {
        Ok(()) => redirect(&format!("{base}/dags/{name}#definition")),
        Err(e) => refused(format!("cannot write {}: {e}", file.display())),
    }
}

/// A page that says one thing.
#[derive(Template)]
#[template(path = "message.html")]
struct Message {
    base: Chrome,
    title: String,
    class: &'static str,
    message: String,
    back: Option<String>,
}

fn not_found(state: &State, what: &str) -> Reply {
    say(state, StatusCode::NOT_FOUND, "Not found", what)
}

/// A page that says one thing: a refusal (`class` `err`) unless `status` is 404.
fn say(state: &State, status: StatusCode, title: &str, message: &str) -> Reply {
    render(
        status,
        &Message {
            base: Chrome::of(&state.config),
            title: title.into(),
            class: if status == StatusCode::NOT_FOUND {
                ""
            } else {
                "err"
            },
            message: message.into(),
            back: None,
        },
    )
}

/// `text` as one segment of a URL's path: every byte but the unreserved ones
/// percent-encoded, so `#`, `?` and `/` in a step's name stay part of the segment.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The end of a log file (about the last 64 KiB, from the start of a line), as text.
pub(crate) fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    if start == 0 {
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    // Not from the middle of a line: the cut line is left out.
    let skip = bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&bytes[skip..]).into_owned();
    format!(
        "[... {} bytes before: the whole log is linked above]\n{text}",
        start + skip as u64
    )
}

/// A step's whole log as text (`?stream=stderr` for stderr; `&download=1` as a file),
/// streamed from the file.
fn whole_log(state: &State, (file_name, id, step): (&str, &str, &str), query: &str) -> Reply {
    let Some(page) = crate::api::page_dag(&state.config.dags, &state.config.home, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    let name = page.name;
    let Ok(store) = Store::open(&state.config.home) else {
        return not_found(state, "the store cannot be opened");
    };
    let Ok(Some(run)) = store.run(&name, id) else {
        return not_found(state, &format!("no run {id} of {name}"));
    };
    let Some(last) = store
        .attempts(run.key, step)
        .ok()
        .and_then(|a| a.last().cloned())
    else {
        return not_found(state, &format!("the step {step} has no log"));
    };
    let stderr = crate::api::query_param(query, "stream").as_deref() == Some("stderr");
    let path = if stderr { last.stderr } else { last.stdout };
    let Ok(f) = std::fs::File::open(&path) else {
        return not_found(state, &format!("the step {step} wrote nothing there"));
    };
    // What the file holds now (a running step's log goes on growing past it).
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(f), len);
    let stream = tokio_util::io::ReaderStream::new(reader);
    let mut r = Response::new(Body::from_stream(stream));
    let headers = r.headers_mut();
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if crate::api::query_param(query, "download").is_some() {
        let fname = wharf_store::safe_name(&format!(
            "{name}-{id}-{step}.{}",
            if stderr { "err" } else { "out" }
        ));
        if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{fname}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    r
}

/// The params of the start form: `args` (the positional ones, as shell words), a field
/// `p.NAME` per named param (a credential's left empty keeps its default), and `params`
/// (more, as shell words or JSON, as the API takes them).
fn start_params(dag: &wharf_spec::Dag, body: &[u8]) -> Result<Vec<String>, String> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let mut words = Vec::new();
    if let Some((_, args)) = fields.iter().find(|(k, _)| k == "args") {
        words.extend(shell_words::split(args).map_err(|_| {
            format!("the positional params have a quote that is not closed: {args}")
        })?);
    }
    for (key, value) in &fields {
        let Some(name) = key.strip_prefix("p.") else {
            continue;
        };
        let secret = wharf_spec::redact::param(&format!("{name}=x")) != format!("{name}=x");
        if secret && value.is_empty() {
            continue;
        }
        words.push(format!("{name}={value}"));
    }
    let mut params = crate::api::dags::checked_words(dag, words)?;
    if let Some((_, text)) = fields.iter().find(|(k, _)| k == "params")
        && !text.trim().is_empty()
    {
        params.extend(crate::api::dags::checked_params(dag, text)?);
    }
    Ok(params)
}

/// A form field from an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], key: &str) -> Option<String> {
    crate::api::query_param(&String::from_utf8_lossy(body), key)
}

fn redirect(to: &str) -> Reply {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = header::HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A form's action, through run control (as the API's would be); a refusal is a page that
/// says why, with the way back.
fn action_post(state: &State, file_name: &str, action: &str, body: &[u8]) -> Reply {
    let base = &state.config.base_path;
    let failed = |why: String| {
        render(
            StatusCode::BAD_REQUEST,
            &Message {
                base: Chrome::of(&state.config),
                title: format!("Could not {action}"),
                class: "err",
                message: why,
                back: Some(format!("{base}/dags/{file_name}")),
            },
        )
    };
    let Some(page) = crate::api::page_dag(&state.config.dags, &state.config.home, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    if !page.in_folder && matches!(action, "save" | "delete" | "start" | "enqueue" | "webhook") {
        return failed(format!(
            "the file of {} is not in the DAGs folder ({}): its runs are shown here; it is \
             started and edited where it is",
            page.name,
            page.file.display()
        ));
    }
    let at = actions::At {
        home: &state.config.home,
        file: &page.file,
        file_name,
        name: page.name.clone(),
    };
    let done = match action {
        "save" => return actions::save(state, file_name, body, failed),
        "webhook" => match actions::webhook(&at, body) {
            // A new token is shown here, this once: it is kept nowhere to be shown again.
            Ok(Some(token)) => {
                let mut page = render(
                    StatusCode::OK,
                    &Message {
                        base: Chrome::of(&state.config),
                        title: format!("The webhook token of {}", page.name),
                        class: "",
                        message: format!(
                            "Copy this token now, it is shown this once: {token} \u{2014} \
                             call the webhook with POST {base}/api/v2/webhooks/{file_name} and \
                             the header \"Authorization: Bearer TOKEN\"; a JSON body's \
                             `payload` reaches the run as WEBHOOK_PAYLOAD."
                        ),
                        back: Some(format!("{base}/dags/{file_name}")),
                    },
                );
                page.headers_mut().insert(
                    axum::http::header::CACHE_CONTROL,
                    axum::http::HeaderValue::from_static("no-store"),
                );
                return page;
            }
            Ok(None) => Ok(format!("/dags/{file_name}")),
            Err(why) => Err(why),
        },
        "delete" => actions::delete(&at),
        "suspend" | "resume" => actions::suspend(&at, action == "suspend"),
        "approve" | "reject" => actions::decide(&at, action == "approve", body),
        "start" => actions::start(&at, body, false),
        "enqueue" => actions::start(&at, body, true),
        other => actions::on_run(&at, other, body),
    };
    match done {
        Ok(path) => redirect(&format!("{base}{path}")),
        Err(why) => failed(why),
    }
}

#[cfg(test)]
mod tests {
    /// `#rgb` or `#rrggbb` as 0..1 channels.
    fn rgb(hex: &str) -> [f64; 3] {
        let hex = hex.trim_start_matches('#');
        let full: String = if hex.len() == 3 {
            hex.chars().flat_map(|c| [c, c]).collect()
        } else {
            hex.to_owned()
        };
        let channel =
            |i: usize| f64::from(u8::from_str_radix(&full[i..i + 2], 16).expect("hex")) / 255.0;
        [channel(0), channel(2), channel(4)]
    }

    /// WCAG 2 relative luminance and contrast ratio.
    fn contrast(a: &str, b: &str) -> f64 {
        let lum = |c: [f64; 3]| {
            let lin = |v: f64| {
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
        };
        let (x, y) = (lum(rgb(a)), lum(rgb(b)));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    // Every status chip, in the light and the dark theme, is readable (WCAG AA for text:
    // a contrast of 4.5 at least), and no two statuses look alike.
    #[test]
    fn status_colours_are_readable_and_distinct() {
        let css = super::STYLE;
        let statuses = [
            "succeeded",
            "failed",
            "running",
            "aborted",
            "skipped",
            "not_started",
            "queued",
            "partially_succeeded",
            "waiting",
            "rejected",
        ];
        let dark_at = css.find("prefers-color-scheme:dark").expect("a dark theme");
        for (theme, part) in [("light", &css[..dark_at]), ("dark", &css[dark_at..])] {
            let mut seen: Vec<(String, String, &str)> = Vec::new();
            for status in statuses {
                let rule = format!(".{status}{{background:");
                let at = part
                    .find(&rule)
                    .unwrap_or_else(|| panic!("{theme}: no colours for {status}"));
                let rest = &part[at + rule.len()..];
                let bg = rest.split([';', '}']).next().expect("background");
                let fg = rest
                    .split("color:")
                    .nth(1)
                    .and_then(|c| c.split([';', '}']).next())
                    .expect("color");
                // A transparent chip sits on the page's own background.
                let bg = if bg == "transparent" {
                    if theme == "dark" {
                        "#14171d"
                    } else {
                        "#ffffff"
                    }
                } else {
                    bg
                };
                let ratio = contrast(bg, fg);
                assert!(ratio >= 4.5, "{theme} {status}: {fg} on {bg} is {ratio:.2}");
                if let Some((_, _, other)) = seen.iter().find(|(b, f, _)| b == bg && f == fg) {
                    // Rejected and failed share red on purpose only in name: they must differ.
                    panic!("{theme}: {status} looks like {other}");
                }
                seen.push((bg.to_owned(), fg.to_owned(), status));
            }
        }
    }
}
