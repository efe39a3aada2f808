//! How an attempt ends: stopping it within bounds, what its failure is called, what its
//! output holds, and when it goes again.

use super::*;

/// The attempt's stdout, trimmed, for `output:` (an error past `maxOutputSize`).
pub(super) fn capture(head: &[u8], max: u64) -> Result<String, String> {
    if head.len() as u64 > max {
        return Err(format!(
            "the step's output is larger than maxOutputSize ({max} bytes)"
        ));
    }
    Ok(String::from_utf8_lossy(head).trim().to_owned())
}

pub(super) fn describe_failure(
    exit: &Exit,
    timed_out: bool,
    timeout: Option<Duration>,
) -> Option<String> {
    let timed_out_text = || format!("timed out after {}s", timeout.map_or(0, |t| t.as_secs()));
    if let Some(e) = &exit.error {
        return Some(if timed_out {
            format!("{}; {e}", timed_out_text())
        } else {
            e.clone()
        });
    }
    if timed_out {
        return Some(timed_out_text());
    }
    match (exit.code, exit.signal) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exit code {code}")),
        (None, Some(sig)) => Some(format!("killed by signal {sig}")),
        (None, None) => Some("ended without an exit code".into()),
    }
}

/// A failure's message, ending with the last line the step wrote to stderr.
pub(super) fn with_stderr_tail(message: String, stderr: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(stderr) else {
        return message;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        // The message may be that line already (a step wharf runs itself writes its error
        // to stderr too).
        Some(last) if message.ends_with(last) => message,
        Some(last) => {
            let last: String = last.chars().take(300).collect();
            format!("{message}: {last}")
        }
        None => message,
    }
}

/// An attempt told to stop: its executor signals it, waits the grace period, kills it, and
/// reports how it ended. When that does not happen in time (what the step runs on does not
/// answer, as a Docker daemon that hangs), the attempt is given up: a stop or a timeout
/// ends the step whatever the executor waits for.
pub(super) async fn stopping(
    running: &mut std::pin::Pin<&mut impl Future<Output = Exit>>,
    grace: Duration,
) -> Exit {
    let bound = grace * 2 + STOP_MARGIN;
    match tokio::time::timeout(bound, running).await {
        Ok(exit) => exit,
        Err(_) => Exit {
            stopped: true,
            ..Exit::error(format!(
                "the step did not end within {}s of being told to stop, so wharf stopped waiting for it; `wharf cleanup` removes what it left",
                bound.as_secs()
            ))
        },
    }
}

/// How long past twice its grace period an attempt that was told to stop may take to end.
pub(super) const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The wait before the n-th retry or repeat (n ≥ 1).
pub(super) fn backoff(
    interval_sec: u64,
    factor: Option<f64>,
    max_sec: Option<u64>,
    n: u32,
) -> Duration {
    let base = Duration::from_secs(interval_sec);
    let Some(factor) = factor else { return base };
    let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = (interval_sec as f64) * factor.powi(exponent);
    let secs = max_sec.map_or(secs, |m| secs.min(m as f64));
    Duration::from_secs_f64(secs.clamp(0.0, 365.0 * 86400.0))
}

pub(super) async fn repeat_condition(
    r: &wharf_spec::RepeatPolicy,
    code: Option<i32>,
    shell: &[String],
    env: &[(String, String)],
    dir: &std::path::Path,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<bool, String> {
    match (&r.condition, &r.expected) {
        (Some(c), Some(e)) => condition::matches(c, e, env, dir, expand).await,
        // A command: its variables are the shell's to expand, from the environment.
        (Some(c), None) => condition::run_ok(c, shell, env, dir).await,
        (None, _) => Ok(code.is_some_and(|c| r.exit_codes.contains(&c))),
    }
}

/// What a Dagu 2.x step publishes once it succeeded: each value of its object-form
/// `output` and of `stdout.outputs` as `${steps.ID.outputs.NAME}`, and the object-form
/// `output` whole as `${ID.output}` (kept with the step, not among the run's outputs).
pub(super) fn published(
    step: &Step,
    publish: &wharf_spec::Publish,
    p: &Prepared,
    stdout: &[u8],
    stderr_log: &std::path::Path,
    max: u64,
) -> Result<Vec<OutputRecord>, String> {
    use wharf_spec::{Decode, PublishFrom, Published};
    let id = step.id.as_deref().unwrap_or(&step.name);
    let stdout_text = || capture(stdout, max);
    let read = |from: &PublishFrom| -> Result<String, String> {
        match from {
            PublishFrom::Stdout => stdout_text(),
            PublishFrom::Stderr => read_limited(stderr_log, max, "stderr"),
            PublishFrom::File(path) => {
                let path = p.dir.join(p.expand(path));
                read_limited(&path, max, &path.display().to_string())
            }
        }
    };
    let decode = |text: String, how: Decode, what: &str| -> Result<serde_json::Value, String> {
        match how {
            Decode::Text => Ok(serde_json::Value::String(text)),
            Decode::Json => {
                serde_json::from_str(&text).map_err(|e| format!("{what} is not JSON: {e}"))
            }
            Decode::Yaml => wharf_spec::formats::yaml_to_json(&text)
                .map_err(|e| format!("{what} is not YAML: {e}")),
        }
    };
    let value_of = |name: &str, v: &Published, field: &str| -> Result<serde_json::Value, String> {
        match v {
            Published::Value(value) => {
                let mut value = value.clone();
                expand_strings(&mut value, &|t| p.expand(t));
                Ok(value)
            }
            Published::From {
                from,
                decode: how,
                select,
            } => {
                let what = format!(
                    "`{field}.{name}`: the step's {}",
                    match from {
                        PublishFrom::Stdout => "stdout".to_owned(),
                        PublishFrom::Stderr => "stderr".to_owned(),
                        PublishFrom::File(path) => format!("file {path}"),
                    }
                );
                let decoded = decode(read(from)?, *how, &what)?;
                if select.is_empty() {
                    return Ok(decoded);
                }
                wharf_spec::formats::select(&decoded, select)
                    .cloned()
                    .ok_or_else(|| format!("{what} has nothing at the path `select` names"))
            }
        }
    };
    let text_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let record = |name: String, value: String, omit: bool| OutputRecord {
        step: step.name.clone(),
        key: name.clone(),
        name,
        value,
        omit,
    };
    let mut records = Vec::new();
    if !publish.output.is_empty() {
        let mut whole = serde_json::Map::new();
        for (name, v) in &publish.output {
            let value = value_of(name, v, "output")?;
            records.push(record(
                format!("steps.{id}.outputs.{name}"),
                text_of(&value),
                true,
            ));
            whole.insert(name.clone(), value);
        }
        records.push(record(
            format!("{id}.output"),
            serde_json::Value::Object(whole).to_string(),
            true,
        ));
    }
    for (name, v) in &publish.outputs {
        let value = value_of(name, v, "stdout.outputs")?;
        records.push(record(
            format!("steps.{id}.outputs.{name}"),
            text_of(&value),
            false,
        ));
    }
    if let Some(how) = publish.outputs_all {
        let decoded = decode(stdout_text()?, how, "the step's stdout (`stdout.outputs`)")?;
        let serde_json::Value::Object(fields) = decoded else {
            return Err("`stdout.outputs`: the step's stdout is not an object of outputs".into());
        };
        for (name, value) in fields {
            records.push(record(
                format!("steps.{id}.outputs.{name}"),
                text_of(&value),
                false,
            ));
        }
    }
    Ok(records)
}

/// A file's text, up to `max` bytes (an error past it).
fn read_limited(path: &std::path::Path, max: u64, what: &str) -> Result<String, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        // A stream the step never wrote to has no log.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && what == "stderr" => {
            return Ok(String::new());
        }
        Err(e) => return Err(format!("cannot read {what}: {e}")),
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {what}: {e}"))?;
    capture(&bytes, max)
}
