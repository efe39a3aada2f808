//! Live step logs as Server-Sent Events: `GET /dags/NAME/runs/ID/steps/STEP/events`
//! (`?stream=stderr` for stderr). The log file is followed in chunks of at most 64 KiB, so
//! a log of any size streams through a little memory; each line becomes a `data:` line,
//! and an `end` event (with the step's status) closes the stream once the step is over and
//! everything it wrote was sent.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use wharf_store::{Status, Store};

use super::{Body, State, error};

const CHUNK: usize = 64 * 1024;
/// How often the file and the step's status are looked at while nothing comes.
const PAUSE: Duration = Duration::from_millis(200);

pub(crate) fn events(
    state: &State,
    file_name: &str,
    run_id: &str,
    step: &str,
    stderr: bool,
) -> Response<Body> {
    let Ok(file) = super::api::existing_dag_file(&state.config.dags, file_name) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no DAG {file_name}"),
        );
    };
    let dag = wharf_spec::load_file(&file)
        .ok()
        .and_then(|l| l.dag)
        .map_or_else(|| file_name.to_owned(), |d| d.name);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let home = state.config.home.clone();
    let (run_id, step) = (run_id.to_owned(), step.to_owned());
    tokio::task::spawn_blocking(move || follow(&home, &dag, &run_id, &step, stderr, &tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(http_body_util::StreamBody::new(stream).boxed());
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
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

fn send(tx: &tokio::sync::mpsc::Sender<Bytes>, text: String) -> bool {
    tx.blocking_send(Bytes::from(text)).is_ok()
}

/// `data:` lines for complete lines of `pending`; what is left stays there.
fn lines_out(pending: &mut Vec<u8>, flush: bool) -> Option<String> {
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
    let mut event = String::new();
    // A `\r` ends a line in an event stream as `\n` does: a bare one inside a line is
    // sent as a line break, never as the end of a field, so output cannot write events.
    for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
        for piece in line.strip_suffix('\r').unwrap_or(line).split('\r') {
            event.push_str("data: ");
            event.push_str(piece);
            event.push('\n');
        }
    }
    event.push('\n');
    Some(event)
}

fn follow(
    home: &Path,
    dag: &str,
    run_id: &str,
    step: &str,
    stderr: bool,
    tx: &tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut offset = 0u64;
    let mut pending = Vec::new();
    let mut quiet = Duration::ZERO;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let (path, over) = match lookup(home, dag, run_id, step, stderr) {
            Ok(Some(found)) => found,
            Ok(None) => (PathBuf::new(), None),
            Err(e) => {
                let e = e.replace(['\r', '\n'], " ");
                let _ = send(tx, format!("event: error\ndata: {e}\n\n"));
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
            let _ = send(tx, format!("event: end\ndata: {}\n\n", status.as_str()));
            return;
        }
        if read_any {
            quiet = Duration::ZERO;
            continue;
        }
        std::thread::sleep(PAUSE);
        quiet += PAUSE;
        if quiet >= Duration::from_secs(15) {
            quiet = Duration::ZERO;
            if !send(tx, ": still here\n\n".into()) {
                return;
            }
        }
    }
}
