//! Live step logs as Server-Sent Events: `GET /dags/NAME/runs/ID/steps/STEP/events`
//! (`?stream=stderr` for stderr). The log file is followed in chunks of at most 64 KiB, so
//! a log of any size streams through a little memory; each line becomes a `data:` line,
//! and an `end` event (with the step's status) closes the stream once the step is over and
//! everything it wrote was sent.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::mpsc::Sender;
use wharf_store::{Status, Store};

use crate::{Shared, error};

const CHUNK: usize = 64 * 1024;
/// How often the file and the step's status are looked at while nothing comes.
const PAUSE: Duration = Duration::from_millis(200);

pub(crate) fn router() -> Router<Shared> {
    Router::new().route(
        "/dags/{file}/runs/{id}/steps/{step}/events",
        get(
            |State(s): State<Shared>,
             UrlPath((file, id, step)): UrlPath<(String, String, String)>,
             RawQuery(q): RawQuery| async move {
                let stderr = crate::api::query_param(&q.unwrap_or_default(), "stream").as_deref()
                    == Some("stderr");
                events(&s, &file, &id, &step, stderr)
            },
        ),
    )
}

fn events(
    state: &crate::State,
    file_name: &str,
    run_id: &str,
    step: &str,
    stderr: bool,
) -> Response {
    let Some(page) = crate::api::page_dag(&state.config.dags, &state.config.home, file_name) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no DAG {file_name}"),
        );
    };
    let dag = page.name;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(4);
    let home = state.config.home.clone();
    let (run_id, step) = (run_id.to_owned(), step.to_owned());
    tokio::task::spawn_blocking(move || follow(&home, &dag, &run_id, &step, stderr, &tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The step's log file and whether the step is over; None while it has not started.
fn lookup(
    home: &Path,
    dag: &str,
    run_id: &str,
    step: &str,
    stderr: bool,
) -> Result<Option<(PathBuf, Option<Status>)>, String> {
    let store = Store::open(home).map_err(|e| e.to_string())?;
    let run = if run_id == "latest" {
        store.latest_run(dag)
    } else {
        store.run(dag, run_id)
    }
    .map_err(|e| e.to_string())?
    .ok_or_else(|| format!("no run {run_id} of {dag}"))?;
    let steps = store.steps(run.key).map_err(|e| e.to_string())?;
    let Some(record) = steps.iter().find(|s| s.name == step) else {
        // A run records its steps right after it starts.
        if run.status == Status::Running {
            return Ok(None);
        }
        return Err(format!("no step {step} in run {}", run.run_id));
    };
    let attempts = store.attempts(run.key, step).map_err(|e| e.to_string())?;
    let over = !matches!(record.status, Status::Running | Status::NotStarted)
        || run.status != Status::Running;
    let Some(last) = attempts.last() else {
        return Ok(over.then(|| (PathBuf::new(), Some(record.status))));
    };
    let path = if stderr { &last.stderr } else { &last.stdout };
    Ok(Some((path.clone(), over.then_some(record.status))))
}

fn send(tx: &Sender<Event>, event: Event) -> bool {
    tx.blocking_send(event).is_ok()
}

/// An event of the complete lines of `pending` (all of it when `flush`); what is left
/// stays there. A `\r` ends a line in an event stream as `\n` does: a bare one inside a
/// line is sent as a line break, never as the end of a field, so output cannot write
/// events of its own.
fn lines_out(pending: &mut Vec<u8>, flush: bool) -> Option<Event> {
    let cut = if flush {
        pending.len()
    } else {
        pending.iter().rposition(|b| *b == b'\n').map(|i| i + 1)?
    };
    if cut == 0 {
        return None;
    }
    let chunk: Vec<u8> = pending.drain(..cut).collect();
    let text = String::from_utf8_lossy(&chunk);
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .flat_map(|line| line.strip_suffix('\r').unwrap_or(line).split('\r'))
        .collect();
    Some(Event::default().data(lines.join("\n")))
}

fn follow(home: &Path, dag: &str, run_id: &str, step: &str, stderr: bool, tx: &Sender<Event>) {
    let mut offset = 0u64;
    let mut pending = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let (path, over) = match lookup(home, dag, run_id, step, stderr) {
            Ok(Some(found)) => found,
            Ok(None) => (PathBuf::new(), None),
            Err(e) => {
                let e = e.replace(['\r', '\n'], " ");
                let _ = send(tx, Event::default().event("error").data(e));
                return;
            }
        };
        // Everything the file holds now, in chunks.
        let mut read_any = false;
        if let Ok(mut f) = std::fs::File::open(&path)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            loop {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        read_any = true;
                        offset += n as u64;
                        pending.extend_from_slice(&buf[..n]);
                        if let Some(event) = lines_out(&mut pending, false)
                            && !send(tx, event)
                        {
                            return; // The browser went away.
                        }
                    }
                }
            }
        }
        if let Some(status) = over
            && !read_any
        {
            if let Some(event) = lines_out(&mut pending, true) {
                let _ = send(tx, event);
            }
            let _ = send(tx, Event::default().event("end").data(status.as_str()));
            return;
        }
        if read_any {
            continue;
        }
        // The browser went away (the stream's keep-alive finds that out).
        if tx.is_closed() {
            return;
        }
        std::thread::sleep(PAUSE);
    }
}
