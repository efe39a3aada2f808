//! A step as a Docker Swarm job: one service in `replicated-job` mode with one task that
//! is never restarted, made on the engine wharf talks to (a manager of the swarm). An
//! engine older than API 1.43 (Docker 24) leaves the task and its container behind when
//! a `replicated-job` service is removed (moby/moby#44312), so there the job is a
//! `replicated` service of one task with the restart condition `none`: it runs once, the
//! same way, and its removal takes its container with it.
//!
//! create the service (with the registry's credentials) → follow its logs into the
//! step's log files while its task's state is asked with a bounded back-off (25 ms
//! growing to 150 ms; Swarm sends no event for a task) → once the task is over, the logs
//! written since the last entry followed (none lost, none twice) → its exit code is the
//! step's → the service is removed (in the background, waited for before the run ends).
//! A stop or a timeout removes the service at once: Swarm stops the task with its stop
//! signal and grace period, which the step's `signalOnStop` and `maxCleanUpTimeSec` set.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ServiceSpec, Task, TaskState};
use bollard::query_parameters::{ListTasksOptions, LogsOptions};
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use wharf_engine::{ContainerJob, Exit, StepJob, StepOutput};
use wharf_spec::VolumeSource;

use crate::describe;

/// How long the task's state may go unasked at most: what a job's end waits to be seen
/// (a task costs the manager one small request this often).
const LOOK_AT_MOST: Duration = Duration::from_millis(150);

/// What a Swarm job ran on, for the step's record.
pub(crate) struct Placed {
    pub node: String,
    pub task: String,
}

pub(crate) async fn run(
    docker: &Docker,
    auths: &crate::Auths,
    job: &StepJob,
    removals: &crate::Removals,
) -> Exit {
    let c = match crate::container_of(job) {
        Ok(c) => c,
        Err(exit) => return *exit,
    };
    let Some(image) = c.config.image.as_deref() else {
        return Exit::error("a step on the Swarm backend needs `image`");
    };
    let version = docker.client_version();
    let job_mode = (version.major_version, version.minor_version) >= (1, 43);
    let spec = match service_spec(job, c, image, job_mode) {
        Ok(s) => s,
        Err(e) => {
            return Exit {
                code: Some(125),
                ..Exit::error(e)
            };
        }
    };
    let credentials = match auths.lookup(image).await {
        Ok(l) => l.found.map(|f| f.credentials),
        Err(e) => {
            return Exit {
                code: Some(125),
                ..Exit::error(e)
            };
        }
    };
    let id = match docker.create_service(spec, credentials).await {
        Ok(created) => created.id.unwrap_or_default(),
        Err(e) => {
            let message = describe(&e);
            let why = if message.contains("not a swarm manager") || message.contains("swarm mode") {
                format!(
                    "the Docker engine at {} is not a manager of a swarm: {message}",
                    crate::docker_host()
                )
            } else {
                message
            };
            return Exit {
                code: Some(125),
                ..Exit::error(format!("cannot create the Swarm job: {why}"))
            };
        }
    };
    let exit = follow(docker, job, &id).await;
    let docker = docker.clone();
    let notice = job.notice.clone();
    removals.push(tokio::spawn(async move {
        remove(&docker, &id, &*notice).await;
    }));
    exit
}

/// Removes the service `id` (its task's container goes with it).
pub(crate) async fn remove(docker: &Docker, id: &str, notice: &(dyn Fn(String) + Send + Sync)) {
    if let Err(e) = docker.delete_service(id).await
        && crate::status_of(&e) != Some(404)
    {
        notice(format!(
            "cannot remove the Swarm service {}: {}",
            crate::container::short(id),
            describe(&e)
        ));
    }
}

/// The service's spec: the step's container as a Swarm task.
fn service_spec(
    job: &StepJob,
    c: &ContainerJob,
    image: &str,
    job_mode: bool,
) -> Result<ServiceSpec, String> {
    let cfg = &c.config;
    let raw = &cfg.container;
    let get = |key: &str| raw.get(key).cloned();
    let labels: Map<String, Value> = raw
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .chain(
            c.labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
        )
        .collect();
    // The step's variables first, then the raw `container.env`, which wins.
    let mut env: Vec<Value> = job
        .env
        .iter()
        .map(|(k, v)| Value::String(format!("{k}={v}")))
        .collect();
    if let Some(Value::Array(own)) = raw.get("Env") {
        env.extend(own.iter().cloned());
    }
    let mut spec = Map::new();
    spec.insert("Image".into(), Value::String(image.to_owned()));
    spec.insert("Labels".into(), Value::Object(labels.clone()));
    spec.insert("Env".into(), Value::Array(env));
    // The docker step keeps the image's ENTRYPOINT and makes the command its CMD: in a
    // Swarm task, `Command` is the entrypoint and `Args` the CMD.
    if let Some(entrypoint) = get("Entrypoint") {
        spec.insert("Command".into(), entrypoint);
    }
    match &c.argv {
        Some(argv) => {
            spec.insert("Args".into(), Value::from(argv.clone()));
        }
        None => {
            if let Some(cmd) = get("Cmd") {
                spec.insert("Args".into(), cmd);
            }
        }
    }
    if let Some(dir) = cfg
        .working_dir
        .clone()
        .map(Value::String)
        .or_else(|| get("WorkingDir"))
    {
        spec.insert("Dir".into(), dir);
    }
    for (from, to) in [("User", "User"), ("Hostname", "Hostname"), ("Tty", "TTY")] {
        if let Some(v) = get(from) {
            spec.insert(to.into(), v);
        }
    }
    spec.insert(
        "StopSignal".into(),
        get("StopSignal").unwrap_or_else(|| Value::String(job.signal.as_str().to_owned())),
    );
    spec.insert(
        "StopGracePeriod".into(),
        json!(i64::try_from(job.grace.as_nanos()).unwrap_or(i64::MAX)),
    );
    let mut mounts: Vec<Value> = cfg
        .volumes
        .iter()
        .map(|v| {
            let (kind, source) = match &v.source {
                VolumeSource::Bind(p) => ("bind", p),
                VolumeSource::Named(n) => ("volume", n),
            };
            json!({"Type": kind, "Source": source, "Target": v.target, "ReadOnly": v.read_only})
        })
        .collect();
    for bind in cfg
        .host
        .get("Binds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let mut parts = bind.split(':');
        let (source, target) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let kind = if source.starts_with('/') {
            "bind"
        } else {
            "volume"
        };
        mounts.push(json!({"Type": kind, "Source": source, "Target": target, "ReadOnly": parts.next() == Some("ro")}));
    }
    if !mounts.is_empty() {
        spec.insert("Mounts".into(), Value::Array(mounts));
    }
    let swarm = &cfg.swarm;
    let amount = |a: &wharf_spec::Amount, memory: Option<&Value>, cpus: Option<&Value>| {
        let mut m = Map::new();
        if let Some(v) = a.memory.map(Value::from).or_else(|| memory.cloned()) {
            m.insert("MemoryBytes".into(), v);
        }
        if let Some(v) = a.nano_cpus.map(Value::from).or_else(|| cpus.cloned()) {
            m.insert("NanoCPUs".into(), v);
        }
        m
    };
    let limits = amount(
        &swarm.limits,
        cfg.host.get("Memory"),
        cfg.host.get("NanoCpus"),
    );
    let reservations = amount(&swarm.reservations, None, None);
    let mut placement = Map::new();
    if !swarm.constraints.is_empty() {
        placement.insert("Constraints".into(), Value::from(swarm.constraints.clone()));
    }
    if !swarm.spread.is_empty() {
        let prefs: Vec<Value> = swarm
            .spread
            .iter()
            .map(|s| json!({"Spread": {"SpreadDescriptor": s}}))
            .collect();
        placement.insert("Preferences".into(), Value::Array(prefs));
    }
    if let Some(p) = &cfg.platform {
        placement.insert(
            "Platforms".into(),
            json!([{"OS": p.os, "Architecture": p.arch}]),
        );
    }
    let networks: Vec<Value> = networks_of(cfg)
        .into_iter()
        .map(|n| json!({"Target": n}))
        .collect();
    let mut task = Map::new();
    task.insert("ContainerSpec".into(), Value::Object(spec));
    task.insert(
        "RestartPolicy".into(),
        json!({"Condition": "none", "MaxAttempts": 0}),
    );
    task.insert(
        "Resources".into(),
        json!({"Limits": limits, "Reservations": reservations}),
    );
    if !placement.is_empty() {
        task.insert("Placement".into(), Value::Object(placement));
    }
    if !networks.is_empty() {
        task.insert("Networks".into(), Value::Array(networks));
    }
    let service = json!({
        "Name": service_name(job),
        "Labels": labels,
        "TaskTemplate": task,
        "Mode": if job_mode {
            json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}})
        } else {
            json!({"Replicated": {"Replicas": 1}})
        },
    });
    serde_json::from_value(service)
        .map_err(|e| format!("the step's settings do not fit a Swarm service: {e}"))
}

/// The overlay networks the job joins: the step's `network` by name, the keys of its raw
/// `network.EndpointsConfig`.
fn networks_of(cfg: &wharf_spec::DockerStep) -> Vec<String> {
    let mut names: Vec<String> = cfg
        .network
        .get("EndpointsConfig")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(mode) = cfg.host.get("NetworkMode").and_then(Value::as_str)
        && !matches!(mode, "bridge" | "host" | "none" | "default")
        && !mode.starts_with("container:")
        && !names.iter().any(|n| n == mode)
    {
        names.push(mode.to_owned());
    }
    names
}

/// A readable, unique service name: `wharf-DAG-STEP-` and a random part (Swarm names
/// are at most 63 characters of letters, digits and `-`).
fn service_name(job: &StepJob) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    };
    let mut head = format!("wharf-{}-{}", clean(&job.dag_name), clean(&job.step_name));
    head.truncate(50);
    let tail = wharf_engine::new_run_id().replace('-', "");
    let name = format!(
        "{}-{}",
        head.trim_end_matches('-'),
        &tail[tail.len() - 12..]
    );
    name
}

/// The task of the service, once Swarm has made it.
async fn task_of(docker: &Docker, service: &str) -> Result<Option<Task>, bollard::errors::Error> {
    let filters = HashMap::from([("service".to_owned(), vec![service.to_owned()])]);
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await?;
    Ok(tasks
        .into_iter()
        .max_by_key(|t| t.created_at.clone().map(|d| d.to_string())))
}

fn state_of(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

fn over(state: Option<TaskState>) -> bool {
    matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::SHUTDOWN
                | TaskState::ORPHANED
                | TaskState::REMOVE
        )
    )
}

/// Where the entries of one stream (stdout or stderr) written to the step's files got to:
/// the last entry's time and how many had exactly that time (so the final read skips
/// those and only those). The service's log interleaves the two streams in no strict
/// order of time, but each stream is in order.
#[derive(Default, Clone, Copy)]
struct Mark {
    last: i128,
    at_last: usize,
}

/// The step's output, and where the entries followed got to in each stream.
struct Sink {
    output: StepOutput,
    /// stdout's and stderr's.
    marks: [Mark; 2],
}

impl Sink {
    fn new(job: &StepJob) -> Self {
        Self {
            output: StepOutput::new(job),
            marks: [Mark::default(); 2],
        }
    }

    /// Writes one entry of the service's log (`TIMESTAMP message`). With `again` (the
    /// final read, from the start of the second of the earliest mark), an entry the
    /// followed log wrote already is passed over: one before its stream's mark, or one of
    /// the `again` entries still to skip at the mark's time.
    async fn entry(&mut self, entry: LogOutput, again: Option<&mut [usize; 2]>) {
        let (stderr, bytes) = match entry {
            LogOutput::StdOut { message } | LogOutput::Console { message } => (false, message),
            LogOutput::StdErr { message } => (true, message),
            LogOutput::StdIn { .. } => return,
        };
        let (at, message) = split_time(&bytes);
        let i = usize::from(stderr);
        if let Some(at) = at {
            let mark = &mut self.marks[i];
            if let Some(skips) = again {
                if at < mark.last {
                    return;
                }
                if at == mark.last && skips[i] > 0 {
                    skips[i] -= 1;
                    return;
                }
            }
            if at > mark.last {
                *mark = Mark {
                    last: at,
                    at_last: 1,
                };
            } else if at == mark.last {
                mark.at_last += 1;
            }
        }
        if stderr {
            self.output.stderr(message).await;
        } else {
            self.output.stdout(message).await;
        }
    }

    async fn finish(self) -> (Vec<u8>, Option<String>) {
        self.output.finish().await
    }
}

/// A log entry's leading RFC 3339 time (nanoseconds since the epoch) and its message.
fn split_time(bytes: &[u8]) -> (Option<i128>, &[u8]) {
    let Some(space) = bytes.iter().position(|b| *b == b' ') else {
        return (None, bytes);
    };
    let at = std::str::from_utf8(&bytes[..space])
        .ok()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(jiff::Timestamp::as_nanosecond);
    match at {
        Some(at) => (Some(at), &bytes[space + 1..]),
        None => (None, bytes),
    }
}

fn logs(follow: bool, since: i32) -> LogsOptions {
    LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        timestamps: true,
        since,
        ..Default::default()
    }
}

/// Follows the job to its end: its logs into the step's files, its task's state.
async fn follow(docker: &Docker, job: &StepJob, service: &str) -> Exit {
    let mut sink = Sink::new(job);
    let mut live = docker.service_logs(service, Some(logs(true, 0))).boxed();
    let mut live_open = true;
    let mut wait = Duration::from_millis(25);
    let mut next_look = tokio::time::Instant::now();
    let mut pending_reason: Option<String> = None;
    let mut shown_reason = false;
    let mut none = 0;
    let task = loop {
        tokio::select! {
            entry = live.next(), if live_open => match entry {
                Some(Ok(entry)) => sink.entry(entry, None).await,
                Some(Err(_)) | None => live_open = false,
            },
            () = job.stop.cancelled() => {
                // Swarm stops the task with its stop signal and grace period.
                remove(docker, service, &*job.notice).await;
                let (head, problem) = sink.finish().await;
                let error = pending_reason
                    .map(|why| format!("the job's task was never started: {why}"))
                    .or(problem);
                return Exit { stopped: true, stdout_head: head, error, ..Exit::default() };
            }
            () = tokio::time::sleep_until(next_look) => {
                wait = (wait * 3 / 2).min(LOOK_AT_MOST);
                next_look = tokio::time::Instant::now() + wait;
                match task_of(docker, service).await {
                    Ok(Some(task)) => {
                        let state = state_of(&task);
                        if over(state) {
                            break task;
                        }
                        let err = task.status.as_ref().and_then(|s| s.err.clone()).filter(|e| !e.is_empty());
                        if matches!(state, Some(TaskState::PENDING | TaskState::NEW | TaskState::ALLOCATED))
                            && let Some(err) = err
                        {
                            if !shown_reason {
                                (job.notice)(format!("Swarm has not placed the job yet: {err}"));
                                shown_reason = true;
                            }
                            (job.activity)(Some(format!("waiting for a node: {err}")));
                            pending_reason = Some(err);
                        } else if pending_reason.take().is_some() {
                            (job.activity)(None);
                        }
                    }
                    Ok(None) => {
                        none += 1;
                        if none > 200 {
                            let (head, problem) = sink.finish().await;
                            return Exit { stdout_head: head, ..Exit::error(problem.unwrap_or_else(|| "Swarm made no task for the job".into())) };
                        }
                    }
                    Err(e) if crate::unreachable(&e) => {
                        let (head, _) = sink.finish().await;
                        return Exit { stdout_head: head, ..Exit::error(format!("{} while the job ran", describe(&e))) };
                    }
                    Err(_) => {}
                }
            }
        }
    };
    drop(live);
    (job.activity)(None);
    // What the job wrote after the last entry followed.
    let earliest = sink.marks.iter().map(|m| m.last).min().unwrap_or(0);
    let since = i32::try_from(earliest.div_euclid(1_000_000_000)).unwrap_or(0);
    let mut skips = sink.marks.map(|m| m.at_last);
    let mut rest = docker.service_logs(service, Some(logs(false, since)));
    while let Some(Ok(entry)) = rest.next().await {
        sink.entry(entry, Some(&mut skips)).await;
    }
    let (head, problem) = sink.finish().await;
    let status = task.status.clone().unwrap_or_default();
    let code = status
        .container_status
        .as_ref()
        .and_then(|c| c.exit_code)
        .and_then(|c| i32::try_from(c).ok());
    let state = status.state;
    let why = status.err.filter(|e| !e.is_empty()).or(status.message);
    let error = match state {
        Some(TaskState::COMPLETE) => None,
        Some(TaskState::FAILED) if code.is_some_and(|c| c != 0) => None,
        Some(TaskState::REJECTED) => Some(format!(
            "Swarm rejected the job's task: {}",
            why.unwrap_or_else(|| "no reason given".into())
        )),
        Some(TaskState::ORPHANED) => Some(format!(
            "the job's task was orphaned: the node that ran it left the swarm or stopped answering{}",
            why.map(|w| format!(" ({w})")).unwrap_or_default()
        )),
        other => Some(format!(
            "the job's task ended {}{}",
            other.map_or("without a state".to_owned(), |s| s.to_string()),
            why.map(|w| format!(": {w}")).unwrap_or_default()
        )),
    };
    let ran_on = placed(docker, &task)
        .await
        .map(|p| format!("swarm node {}, task {}", p.node, p.task));
    Exit {
        code: if error.is_some() && code == Some(0) {
            None
        } else {
            code
        },
        stdout_head: head,
        error: error.or(problem),
        ran_on,
        ..Exit::default()
    }
}

/// The node (its hostname) and the task id of a job's task. Node names are asked once.
async fn placed(docker: &Docker, task: &Task) -> Option<Placed> {
    static NAMES: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let node_id = task.node_id.clone()?;
    let known = NAMES.lock().ok().and_then(|n| {
        n.iter()
            .find(|(id, _)| *id == node_id)
            .map(|(_, h)| h.clone())
    });
    let node = match known {
        Some(name) => name,
        None => {
            let name = docker
                .inspect_node(&node_id)
                .await
                .ok()
                .and_then(|n| n.description)
                .and_then(|d| d.hostname)
                .unwrap_or_else(|| node_id.clone());
            if let Ok(mut n) = NAMES.lock() {
                n.push((node_id, name.clone()));
            }
            name
        }
    };
    Some(Placed {
        node,
        task: task.id.clone().unwrap_or_default(),
    })
}
