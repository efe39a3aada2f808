//! The web UI: server-rendered HTML that reads without JavaScript. Actions (start, stop,
//! retry) are forms that POST, accepted only from the same origin.

use std::fmt::Write as _;
use std::path::Path;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, RawQuery, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use wharf_store::{Status, Store};

use crate::{Shared, State, blocking, rfc3339};

type Reply = Response;

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.7em 1.4em;display:flex;gap:1.2em;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:1.2em 1.4em;max-width:1200px}
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.4em 0 .5em}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0001}
th,td{text-align:left;padding:.45em .7em;border-bottom:1px solid #e6e8ec;vertical-align:top}
th{font-weight:600;color:#55607a;font-size:.9em}
a{color:#2457c5}
.st{display:inline-block;padding:.05em .55em;border-radius:1em;font-size:.85em;font-weight:600}
.succeeded{background:#d7f3df;color:#17663a}.failed{background:#fde0de;color:#a3261b}
.running{background:#dde9ff;color:#1f4fb8}.aborted{background:#ffe9cc;color:#8a4b00}
.skipped,.not_started{background:#eceef2;color:#5b6475}.partially_succeeded{background:#fff3c4;color:#7a5d00}
pre{background:#fff;border:1px solid #e6e8ec;padding:.7em;overflow:auto;max-height:28em;font-size:.85em}
form.inline{display:inline}button{font:inherit;padding:.3em .9em;border-radius:.3em;border:1px solid #9aa3b5;background:#fff;cursor:pointer}
button.primary{background:#2457c5;color:#fff;border-color:#2457c5}
input[type=text]{font:inherit;padding:.3em .5em;border:1px solid #c3c9d5;border-radius:.3em}
.muted{color:#6b7487}.err{color:#a3261b}
.grid td.cell{width:1.2em;padding:0}.grid span{display:block;width:1em;height:1em;margin:.2em;border-radius:.2em}
svg text{font:13px system-ui,sans-serif}
"#;

/// `text` as one segment of a URL's path: every byte but the unreserved ones
/// percent-encoded, so `#`, `?` and `/` in a step's name stay part of the segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(state: &State, title: &str, body: &str) -> Reply {
    let base = &state.config.base_path;
    let html = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>{} · wharf</title><style>{STYLE}</style></head><body><header><a href=\"{base}/\">wharf</a><span class=muted>workflows</span></header><main>{body}</main></body></html>",
        escape(title)
    );
    html_reply(StatusCode::OK, html)
}

fn html_reply(status: StatusCode, html: String) -> Reply {
    let mut r = Response::new(Body::from(html));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn status_badge(s: Status) -> String {
    format!("<span class=\"st {0}\">{0}</span>", s.as_str())
}

fn not_found(state: &State, what: &str) -> Reply {
    let mut r = page(
        state,
        "not found",
        &format!("<h1>Not found</h1><p>{}</p>", escape(what)),
    );
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// The pages, and the forms they post.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/",
            get(|Extract(s): Extract<Shared>, RawQuery(q): RawQuery| async move {
                blocking(move || dag_list(&s, &s.config.home, &q.unwrap_or_default())).await
            }),
        )
        .route(
            "/dags/{name}",
            get(
                |Extract(s): Extract<Shared>, UrlPath(name): UrlPath<String>, RawQuery(q): RawQuery| async move {
                    blocking(move || {
                        let selected = crate::api::query_param(&q.unwrap_or_default(), "run");
                        dag_page(&s, &s.config.home, &name, selected.as_deref())
                    })
                    .await
                },
            ),
        )
        .route(
            "/dags/{name}/runs/{id}",
            get(
                |Extract(s): Extract<Shared>, UrlPath((name, id)): UrlPath<(String, String)>| async move {
                    blocking(move || run_page(&s, &s.config.home, &name, &id)).await
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
                        return html_reply(
                            StatusCode::FORBIDDEN,
                            "<p>Actions are accepted only from this server's own pages.</p>".into(),
                        );
                    }
                    if !matches!(action.as_str(), "start" | "stop" | "retry") {
                        return not_found(&s, &format!("no action {action}"));
                    }
                    blocking(move || action_post(&s, &name, &action, &body)).await
                },
            ),
        )
}

fn dag_list(state: &State, home: &Path, query: &str) -> Reply {
    let base = &state.config.base_path;
    let name_filter = crate::api::query_param(query, "name").unwrap_or_default();
    let tag_filter = crate::api::query_param(query, "tag").unwrap_or_default();
    let store = Store::open(home).ok();
    let mut rows = String::new();
    let mut count = 0;
    for (file_name, path) in crate::api::dag_files(&state.config.dags) {
        let loaded = wharf_spec::load_file(&path).ok();
        let dag = loaded.as_ref().and_then(|l| l.dag.as_ref());
        let name = dag.map_or(file_name.clone(), |d| d.name.clone());
        if !name_filter.is_empty() && !name.to_lowercase().contains(&name_filter.to_lowercase()) {
            continue;
        }
        let tags: Vec<String> = dag.map(|d| d.tags.clone()).unwrap_or_default();
        if !tag_filter.is_empty() && !tags.contains(&tag_filter) {
            continue;
        }
        count += 1;
        let latest = store
            .as_ref()
            .and_then(|s| s.latest_run(&name).ok().flatten());
        let (status, when) = match &latest {
            Some(r) => (
                status_badge(r.status),
                r.started_at.map(rfc3339).unwrap_or_default(),
            ),
            None => ("<span class=muted>never run</span>".into(), String::new()),
        };
        let errors = loaded.as_ref().map_or(0, wharf_spec::Loaded::errors);
        let invalid = if errors > 0 {
            format!(" <span class=err>({errors} errors)</span>")
        } else {
            String::new()
        };
        let schedule = dag
            .map(|d| {
                let exprs = d.schedule.start.join(", ");
                match crate::scheduler::next_run(d, jiff::Timestamp::now()) {
                    Some(next) => format!("{exprs} (next {})", next.strftime("%Y-%m-%dT%H:%MZ")),
                    None => exprs,
                }
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            rows,
            "<tr><td><a href=\"{base}/dags/{f}\">{n}</a>{invalid}</td><td>{status}</td><td>{when}</td><td>{sched}</td><td>{tags}</td></tr>",
            f = escape(&file_name),
            n = escape(&name),
            sched = escape(&schedule),
            tags = escape(&tags.join(", ")),
        );
    }
    let body = format!(
        "<h1>DAGs</h1><form method=get><input type=text name=name placeholder=name value=\"{nf}\"> <input type=text name=tag placeholder=tag value=\"{tf}\"> <button>Filter</button></form><p class=muted>{count} DAGs in {dir}</p><table><tr><th>DAG</th><th>last run</th><th>started</th><th>schedule (next run, UTC)</th><th>tags</th></tr>{rows}</table>",
        nf = escape(&name_filter),
        tf = escape(&tag_filter),
        dir = escape(&state.config.dags.display().to_string()),
    );
    page(state, "DAGs", &body)
}

/// The DAG's steps as an SVG picture: one column per dependency level, arrows for the
/// dependencies, each box coloured by the step's status in `statuses`.
fn graph_svg(dag: &wharf_spec::Dag, statuses: &[(String, Status)]) -> String {
    let n = dag.steps.len();
    let deps = wharf_spec::dependency_indices(dag);
    let mut level = vec![0usize; n];
    for i in wharf_spec::execution_order(dag) {
        level[i] = deps[i].iter().map(|&j| level[j] + 1).max().unwrap_or(0);
    }
    let mut rows_in_level: Vec<usize> = Vec::new();
    let mut pos = vec![(0usize, 0usize); n];
    for i in 0..n {
        let l = level[i];
        if rows_in_level.len() <= l {
            rows_in_level.resize(l + 1, 0);
        }
        pos[i] = (l, rows_in_level[l]);
        rows_in_level[l] += 1;
    }
    let (w, h, gap_x, gap_y) = (170, 34, 60, 18);
    let width = rows_in_level.len() * (w + gap_x) + 20;
    let height = rows_in_level.iter().max().copied().unwrap_or(1) * (h + gap_y) + 20;
    let xy = |i: usize| {
        let (l, r) = pos[i];
        (10 + l * (w + gap_x), 10 + r * (h + gap_y))
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=img aria-label=\"the DAG's steps\"><defs><marker id=a viewBox=\"0 0 10 10\" refX=10 refY=5 markerWidth=7 markerHeight=7 orient=auto><path d=\"M0 0L10 5L0 10z\" fill=\"#8a93a6\"/></marker></defs>"
    );
    for (i, ds) in deps.iter().enumerate() {
        for &j in ds {
            let (x1, y1) = xy(j);
            let (x2, y2) = xy(i);
            let _ = write!(
                svg,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{x2}\" y2=\"{}\" stroke=\"#8a93a6\" marker-end=\"url(#a)\"/>",
                x1 + w,
                y1 + h / 2,
                y2 + h / 2
            );
        }
    }
    for (i, step) in dag.steps.iter().enumerate() {
        let status = statuses
            .iter()
            .find(|(n, _)| *n == step.name)
            .map_or(Status::NotStarted, |(_, s)| *s);
        let (fill, stroke) = match status {
            Status::Succeeded => ("#d7f3df", "#2e9e5b"),
            Status::Failed => ("#fde0de", "#d0443a"),
            Status::Running => ("#dde9ff", "#3a6fe0"),
            Status::Aborted => ("#ffe9cc", "#d98a1f"),
            Status::PartiallySucceeded => ("#fff3c4", "#c9a400"),
            Status::Skipped | Status::NotStarted => ("#f1f2f5", "#a7afbf"),
        };
        let (x, y) = xy(i);
        let label: String = step.name.chars().take(22).collect();
        let _ = write!(
            svg,
            "<g><title>{name}: {st}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=6 fill=\"{fill}\" stroke=\"{stroke}\"/><text x=\"{}\" y=\"{}\">{}</text></g>",
            x + 10,
            y + 22,
            escape(&label),
            name = escape(&step.name),
            st = status.as_str(),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A DAG's page; the picture shows the run `selected` (`?run=ID`), or the latest.
fn dag_page(state: &State, home: &Path, file_name: &str, selected: Option<&str>) -> Reply {
    let base = &state.config.base_path;
    let Ok(file) = crate::api::existing_dag_file(&state.config.dags, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    let Ok(loaded) = wharf_spec::load_file(&file) else {
        return not_found(state, &format!("cannot read {}", file.display()));
    };
    let name = loaded
        .dag
        .as_ref()
        .map_or(file_name.to_owned(), |d| d.name.clone());
    let store = Store::open(home).ok();
    let runs = store
        .as_ref()
        .and_then(|s| s.history(&name, 20).ok())
        .unwrap_or_default();
    let mut body = format!("<h1>{}</h1>", escape(&name));
    if let Some(d) = loaded.dag.as_ref().and_then(|d| d.description.as_ref()) {
        let _ = write!(body, "<p>{}</p>", escape(d));
    }
    let default_params = loaded
        .dag
        .as_ref()
        .map(|d| {
            d.params
                .iter()
                .filter_map(|p| match &p.name {
                    // A credential's default is not shown (the run uses it unless given).
                    Some(n) => {
                        let word = format!("{n}={}", p.value);
                        (wharf_spec::redact::param(&word) == word).then_some(word)
                    }
                    None => Some(p.value.clone()),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let _ = write!(
        body,
        "<form method=post action=\"{base}/dags/{f}/start\"><input type=text name=params size=40 placeholder=\"params: NAME=value ...\" value=\"{p}\"> <button class=primary>Start</button> </form>",
        f = escape(file_name),
        p = escape(&default_params)
    );
    if let Some(dag) = &loaded.dag {
        let shown = match selected {
            Some(id) => runs.iter().find(|r| r.run_id == id),
            None => runs.first(),
        };
        let statuses: Vec<(String, Status)> = match (shown, &store) {
            (Some(r), Some(s)) => s
                .steps(r.key)
                .unwrap_or_default()
                .into_iter()
                .map(|st| (st.name, st.status))
                .collect(),
            _ => Vec::new(),
        };
        let caption = match shown {
            Some(r) => format!(
                "<p class=muted>as in run {} ({})</p>",
                escape(&r.run_id),
                r.status.as_str()
            ),
            None => String::new(),
        };
        let _ = write!(body, "<h2>Steps</h2>{caption}{}", graph_svg(dag, &statuses));
    }
    body.push_str("<h2>Runs</h2>");
    if runs.is_empty() {
        body.push_str("<p class=muted>No runs yet.</p>");
    } else {
        let mut table = String::from("<table class=grid><tr><th>step</th>");
        for r in runs.iter().rev() {
            let _ = write!(
                table,
                "<th class=cell><a href=\"{base}/dags/{f}/runs/{id}\" title=\"{id} {st}\">·</a></th>",
                f = escape(file_name),
                id = escape(&r.run_id),
                st = r.status.as_str()
            );
        }
        table.push_str("</tr>");
        let per_run: Vec<Vec<wharf_store::StepRecord>> = runs
            .iter()
            .rev()
            .map(|r| {
                store
                    .as_ref()
                    .and_then(|s| s.steps(r.key).ok())
                    .unwrap_or_default()
            })
            .collect();
        let step_names: Vec<String> = loaded
            .dag
            .as_ref()
            .map(|d| d.steps.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        for step in &step_names {
            let _ = write!(table, "<tr><td>{}</td>", escape(step));
            for steps in &per_run {
                let st = steps
                    .iter()
                    .find(|s| &s.name == step)
                    .map_or(Status::NotStarted, |s| s.status);
                let _ = write!(
                    table,
                    "<td class=cell><span class=\"{0}\" title=\"{0}\"></span></td>",
                    st.as_str()
                );
            }
            table.push_str("</tr>");
        }
        table.push_str("</table>");
        body.push_str(&table);
        body.push_str(
            "<table><tr><th>run</th><th>status</th><th>started</th><th>finished</th></tr>",
        );
        for r in &runs {
            let _ = write!(
                body,
                "<tr><td><a href=\"{base}/dags/{f}/runs/{id}\">{id}</a> <a class=muted href=\"{base}/dags/{f}?run={id}\">(picture)</a></td><td>{st}</td><td>{s}</td><td>{e}</td></tr>",
                f = escape(file_name),
                id = escape(&r.run_id),
                st = status_badge(r.status),
                s = r.started_at.map(rfc3339).unwrap_or_default(),
                e = r.finished_at.map(rfc3339).unwrap_or_default(),
            );
        }
        body.push_str("</table>");
    }
    let shown = file.display().to_string();
    let _ = write!(
        body,
        "<h2>Definition</h2><p class=muted>{}</p>",
        escape(&shown)
    );
    if !loaded.diagnostics.is_empty() {
        let _ = write!(
            body,
            "<pre class=err>{}</pre>",
            escape(&loaded.render(&shown, false))
        );
    }
    let _ = write!(
        body,
        "<pre>{}</pre>",
        escape(&wharf_spec::redact::source(&loaded.source))
    );
    page(state, &name, &body)
}

/// Follows the logs of running steps (`pre[data-live]`) through Server-Sent Events; when
/// one ends, the page is loaded again for the new state (and every second while the run
/// has no step recorded yet).
const LIVE_SCRIPT: &str = "<script>var live=document.querySelectorAll('pre[data-live]');if(!live.length)setTimeout(function(){location.reload()},1000);live.forEach(function(pre){var es=new EventSource(pre.dataset.live),first=true;es.onmessage=function(e){if(first){pre.textContent='';first=false}pre.textContent+=e.data+'\\n';pre.scrollTop=pre.scrollHeight};es.addEventListener('end',function(){es.close();setTimeout(function(){location.reload()},300)})})</script>";

/// The end of a log file (the last 64 KiB), as text.
fn log_tail(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        format!("[... {start} bytes before]\n{text}")
    } else {
        text
    }
}

fn run_page(state: &State, home: &Path, file_name: &str, id: &str) -> Reply {
    let base = &state.config.base_path;
    let Ok(file) = crate::api::existing_dag_file(&state.config.dags, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    let name = wharf_spec::load_file(&file)
        .ok()
        .and_then(|l| l.dag)
        .map_or_else(|| file_name.to_owned(), |d| d.name);
    let Ok(store) = Store::open(home) else {
        return not_found(state, "the store cannot be opened");
    };
    let run = if id == "latest" {
        store.latest_run(&name)
    } else {
        store.run(&name, id)
    };
    let Ok(Some(run)) = run else {
        return not_found(state, &format!("no run {id} of {name}"));
    };
    let steps = store.steps(run.key).unwrap_or_default();
    let f = escape(file_name);
    let rid = escape(&run.run_id);
    let mut body = format!(
        "<h1><a href=\"{base}/dags/{f}\">{n}</a> · run {rid}</h1><p>{st} started {s} {e}</p>",
        n = escape(&name),
        st = status_badge(run.status),
        s = run.started_at.map(rfc3339).unwrap_or_default(),
        e = run
            .finished_at
            .map(|t| format!("finished {}", rfc3339(t)))
            .unwrap_or_default(),
    );
    if let Some(err) = &run.error {
        let _ = write!(body, "<p class=err>{}</p>", escape(err));
    }
    if run.status == Status::Running {
        let _ = write!(
            body,
            "<form class=inline method=post action=\"{base}/dags/{f}/stop\"><input type=hidden name=run value=\"{rid}\"><button>Stop</button></form>"
        );
    } else {
        let _ = write!(
            body,
            "<form class=inline method=post action=\"{base}/dags/{f}/retry\"><input type=hidden name=run value=\"{rid}\"><button>Retry</button></form>"
        );
    }
    // The timeline: each step's bar within the run's span.
    let t0 = run.started_at.unwrap_or(run.created_at);
    let t1 = run
        .finished_at
        .unwrap_or_else(wharf_store::now_ms)
        .max(t0 + 1);
    let span = (t1 - t0) as f64;
    body.push_str("<h2>Steps</h2><table><tr><th>step</th><th>status</th><th style=\"width:40%\">timeline</th><th>exit</th><th>error</th></tr>");
    for s in &steps {
        let (a, b) = (
            s.started_at.unwrap_or(t0),
            s.finished_at
                .unwrap_or(if s.started_at.is_some() { t1 } else { t0 }),
        );
        let left = ((a - t0) as f64 / span * 100.0).clamp(0.0, 100.0);
        let width = (((b - a) as f64 / span) * 100.0)
            .clamp(0.0, 100.0 - left)
            .max(0.5);
        let label = match s.handler.as_deref() {
            Some(h) => format!("{} (on {h})", s.name),
            None => s.name.clone(),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"#log-{anchor}\">{n}</a></td><td>{st}</td><td><div style=\"position:relative;height:1em;background:#eef0f4\"><div class=\"{cls}\" style=\"position:absolute;left:{left:.1}%;width:{width:.1}%;height:100%\"></div></div></td><td>{code}</td><td>{err}</td></tr>",
            anchor = escape(&s.name),
            n = escape(&label),
            st = status_badge(s.status),
            cls = s.status.as_str(),
            code = s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            err = escape(s.error.as_deref().unwrap_or_default()),
        );
    }
    body.push_str("</table><h2>Logs</h2>");
    let running = run.status == Status::Running;
    for s in &steps {
        let attempts = store.attempts(run.key, &s.name).unwrap_or_default();
        let live = running && matches!(s.status, Status::Running | Status::NotStarted);
        let (out, err) = match attempts.last() {
            Some(last) => (log_tail(&last.stdout), log_tail(&last.stderr)),
            None if live => (String::new(), String::new()),
            None => continue,
        };
        let live_attr = if live {
            format!(
                " data-live=\"{base}/dags/{f}/runs/{rid}/steps/{}/events\"",
                escape(&path_segment(&s.name))
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<h3 id=\"log-{0}\">{0}</h3><pre data-step=\"{0}\"{live_attr}>{1}</pre>",
            escape(&s.name),
            escape(&out)
        );
        if !err.is_empty() {
            let _ = write!(body, "<pre class=err>{}</pre>", escape(&err));
        }
    }
    if running {
        // Reading needs no script; this only follows the running steps' logs (Server-Sent
        // Events) and shows the new state when a step ends.
        body.push_str(LIVE_SCRIPT);
    }
    page(state, &format!("{name} {}", run.run_id), &body)
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
    let dags = &state.config.dags;
    let home = &state.config.home;
    let back = format!("{base}/dags/{file_name}");
    let failed = |why: String| {
        let body = format!(
            "<h1>Could not {action}</h1><p class=err>{}</p><p><a href=\"{}\">Back to the DAG</a></p>",
            escape(&why),
            escape(&back)
        );
        let mut r = page(state, action, &body);
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    let Ok(file) = crate::api::existing_dag_file(dags, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    let loaded = wharf_spec::load_file(&file).ok();
    let dag = loaded.as_ref().and_then(|l| l.dag.as_ref());
    let name = dag.map_or_else(|| file_name.to_owned(), |d| d.name.clone());
    let run = match action {
        "start" => {
            let Some(dag) = dag else {
                return failed(format!("the DAG `{file_name}` is invalid"));
            };
            let params =
                crate::api::dags::parse_params(&form_field(body, "params").unwrap_or_default());
            if params.iter().any(|p| p.contains('\0')) {
                return failed("params must not contain a NUL character".into());
            }
            let run_id = wharf_engine::new_run_id();
            let started = wharf_control::start(
                home,
                &wharf_control::Start {
                    file: &file,
                    dag: &dag.name,
                    run_id: &run_id,
                    params: &params,
                    singleton: false,
                },
            );
            if let Err(e) = started {
                return failed(e.to_string());
            }
            run_id
        }
        other => {
            let wanted = form_field(body, "run").unwrap_or_else(|| "latest".into());
            let store = match Store::open(home) {
                Ok(s) => s,
                Err(e) => return failed(e.to_string()),
            };
            let found = if wanted == "latest" {
                store.latest_run(&name)
            } else {
                store.run(&name, &wanted)
            };
            let Ok(Some(run)) = found else {
                return failed(format!("the DAG `{name}` has no run `{wanted}`"));
            };
            let done = if other == "stop" {
                wharf_control::stop_run(&store, &name, &run.run_id).map(|_| ())
            } else {
                wharf_control::retry(home, &run)
            };
            if let Err(e) = done {
                return failed(e.to_string());
            }
            run.run_id
        }
    };
    redirect(&format!("{base}/dags/{file_name}/runs/{run}"))
}
