//! Readiness of the DAG-level container, from its event stream (and its log for
//! `logPattern`), and what is said when it never gets ready.

use super::*;

/// What the container's events told.
#[derive(Default)]
pub(super) struct Watch {
    pub(super) seen: Mutex<Seen>,
    pub(super) changed: Notify,
}

#[derive(Default)]
pub(super) struct Seen {
    /// Exit codes of execs that ended, by exec id.
    pub(super) exits: HashMap<String, i64>,
    /// The last `health_status`.
    pub(super) health: Option<String>,
    /// The container died, with this exit code.
    pub(super) died: Option<i64>,
    /// The event stream ended or failed.
    pub(super) lost: bool,
}

impl Watch {
    /// Waits until `pred` holds for what was seen (checked at once, then on every event).
    pub(super) async fn until<T>(&self, pred: impl Fn(&Seen) -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = self.seen.lock().ok().as_deref().and_then(&pred) {
                return v;
            }
            notified.await;
        }
    }
}

/// Follows the container's events (from its creation on, so none is missed) into its
/// [`Watch`].
pub(super) fn watch(docker: &Docker, c: &Arc<Running>) {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(1))
        .unwrap_or(0);
    let options = EventsOptions {
        since: Some(since.to_string()),
        filters: Some(HashMap::from([
            ("container".to_owned(), vec![c.id.clone()]),
            ("type".to_owned(), vec!["container".to_owned()]),
        ])),
        ..Default::default()
    };
    let mut events = docker.events(Some(options));
    let watch = Arc::clone(&c.watch);
    let task = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            let action = event.action.unwrap_or_default();
            let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
            let code = || {
                attributes
                    .get("exitCode")
                    .and_then(|c| c.parse::<i64>().ok())
            };
            if let Ok(mut seen) = watch.seen.lock() {
                match action.as_str() {
                    "exec_die" => {
                        if let Some(id) = attributes.get("execID") {
                            seen.exits.insert(id.clone(), code().unwrap_or(-1));
                        }
                    }
                    "die" => seen.died = Some(code().unwrap_or(-1)),
                    "start" | "restart" => seen.died = None,
                    other => {
                        if let Some(health) = other.strip_prefix("health_status: ") {
                            seen.health = Some(health.trim().to_owned());
                        }
                    }
                }
            }
            watch.changed.notify_waiters();
        }
        if let Ok(mut seen) = watch.seen.lock() {
            seen.lost = true;
        }
        watch.changed.notify_waiters();
    });
    if let Ok(mut w) = c.watcher.lock() {
        *w = Some(task);
    }
}

/// Waits until the container is ready: running (it is, once started), healthy when asked
/// and it has a healthcheck, and its log matched `logPattern`. Fails at once when it exits
/// or turns unhealthy, and after [`ready_limit`].
pub(super) async fn ready(docker: &Docker, c: &Running, setup: &SharedSetup) -> Result<(), String> {
    let cfg = &setup.config;
    let limit = ready_limit();
    let deadline = tokio::time::Instant::now() + limit;
    let info = docker
        .inspect_container(&c.id, None)
        .await
        .map_err(|e| format!("cannot inspect the container: {}", describe(&e)))?;
    let state = info.state.clone().unwrap_or_default();
    if state.running != Some(true) {
        return Err(not_ready(docker, c, "it exited before it was ready").await);
    }
    let has_healthcheck = info
        .config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .is_some_and(|t| !t.is_empty() && t[0] != "NONE");
    let wait_healthy = cfg.wait_for == WaitFor::Healthy && has_healthcheck;
    if cfg.wait_for == WaitFor::Healthy && !has_healthcheck {
        (setup.notice)(format!(
            "warning: `waitFor: healthy`, but the container (image {}) has no healthcheck, from its image or its `healthcheck`: waiting for `running` only",
            cfg.image.as_deref().unwrap_or_default()
        ));
    }
    let initial_health = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .map(|s| s.to_string());
    if let (Ok(mut seen), Some(h)) = (c.watch.seen.lock(), initial_health)
        && seen.health.is_none()
    {
        seen.health = Some(h);
    }

    let waiting = async {
        if wait_healthy {
            c.watch
                .until(|s| {
                    if s.died.is_some() {
                        Some(Err(NotReady::Exited))
                    } else {
                        match s.health.as_deref() {
                            Some("healthy") => Some(Ok(())),
                            Some("unhealthy") => Some(Err(NotReady::Unhealthy)),
                            _ => None,
                        }
                    }
                })
                .await?;
        }
        if let Some(pattern) = cfg.log_pattern.as_deref() {
            let regex = regex::Regex::new(pattern)
                .map_err(|e| NotReady::Other(format!("invalid logPattern: {e}")))?;
            if !log_matches(docker, &c.id, &regex).await {
                return Err(NotReady::Exited);
            }
        }
        Ok(())
    };
    let outcome = tokio::select! {
        o = waiting => o,
        () = tokio::time::sleep_until(deadline) => {
            return Err(timed_out(docker, c, limit).await);
        }
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(NotReady::Exited) => Err(not_ready(docker, c, "it exited before it was ready").await),
        Err(NotReady::Unhealthy) => {
            let check = last_health_output(docker, &c.id).await;
            Err(not_ready(docker, c, &format!("it turned unhealthy{check}")).await)
        }
        Err(NotReady::Other(e)) => Err(e),
    }
}

pub(super) enum NotReady {
    Exited,
    Unhealthy,
    Other(String),
}

/// Follows the container's log (from its start) until a line matches; false when the log
/// ends first (the container stopped).
pub(super) async fn log_matches(docker: &Docker, id: &str, regex: &regex::Regex) -> bool {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stream = docker.logs(id, Some(options));
    let mut line: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        for &b in chunk.into_bytes().iter() {
            if b == b'\n' {
                if regex.is_match(&String::from_utf8_lossy(&line)) {
                    return true;
                }
                line.clear();
            } else if line.len() < 64 * 1024 {
                line.push(b);
            }
        }
        // A line still being written counts too (a prompt without a newline).
        if !line.is_empty() && regex.is_match(&String::from_utf8_lossy(&line)) {
            return true;
        }
    }
    false
}

/// The readiness error: why, the container's state, and the end of its log.
pub(super) async fn not_ready(docker: &Docker, c: &Running, why: &str) -> String {
    format!("{why}; {}", state_and_log(docker, c).await)
}

pub(super) async fn timed_out(docker: &Docker, c: &Running, limit: Duration) -> String {
    format!(
        "not ready after {}s; {}",
        limit.as_secs(),
        state_and_log(docker, c).await
    )
}

/// `state: exited (code 3), health: unhealthy; its log ends with: ...`
pub(super) async fn state_and_log(docker: &Docker, c: &Running) -> String {
    let state = docker
        .inspect_container(&c.id, None)
        .await
        .ok()
        .and_then(|i| i.state);
    let mut text = match &state {
        Some(s) => {
            let status = s
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            match (status.as_str(), s.exit_code) {
                ("exited" | "dead", Some(code)) => {
                    format!("last state: {status} (exit code {code})")
                }
                _ => format!("last state: {status}"),
            }
        }
        None => "last state: unknown (the container is gone)".to_owned(),
    };
    if let Some(h) = state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
    {
        text.push_str(&format!(", health: {h}"));
    }
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: "5".into(),
        ..Default::default()
    };
    let mut logs = docker.logs(&c.id, Some(options));
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = logs.next().await {
        bytes.extend_from_slice(&chunk.into_bytes());
    }
    let tail: Vec<String> = String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect())
        .collect();
    if tail.is_empty() {
        text.push_str("; its log is empty");
    } else {
        text.push_str(&format!("; its log ends with: {}", tail.join(" | ")));
    }
    text
}

/// `: OUTPUT` of the last healthcheck, when it said something.
pub(super) async fn last_health_output(docker: &Docker, id: &str) -> String {
    docker
        .inspect_container(id, None)
        .await
        .ok()
        .and_then(|i| i.state)
        .and_then(|s| s.health)
        .and_then(|h| h.log)
        .and_then(|log| log.last().cloned())
        .map(|entry| {
            let out = entry.output.unwrap_or_default();
            let out = out.trim();
            match (out.is_empty(), entry.exit_code) {
                (false, _) => format!(
                    " (healthcheck: {})",
                    out.chars().take(200).collect::<String>()
                ),
                (true, Some(code)) => format!(" (healthcheck exit code {code})"),
                (true, None) => String::new(),
            }
        })
        .unwrap_or_default()
}
