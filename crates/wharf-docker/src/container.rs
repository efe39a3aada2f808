//! A step in a container of its own, the way `docker run` does it, or in a running
//! container through `docker exec`.
//!
//! New container: pull (per policy) → create → attach → start → copy the attached stream
//! to the step's logs until it ends → wait for the exit code → inspect (was it killed for
//! memory?) → remove when `autoRemove`. Attaching before the start loses nothing the
//! container writes first (and asking the attach to replay the log as well would repeat
//! it); the attached stream ends only after the last
//! byte; the container is removed only once both are read. The daemon's own `AutoRemove`
//! is never used: it could remove the container before its exit code is read.
//!
//! Stop: the step's signal to the container (or to the exec's process), the grace period,
//! SIGKILL; then the container is removed when `autoRemove` is set.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ExecConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions, RemoveContainerOptions,
    StopContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use wharf_engine::{ContainerJob, Exit, StepJob};
use wharf_spec::VolumeSource;

use crate::{describe, image, status_of};

/// Containers created ahead for the steps that come next (`Executor::prepare`), by run
/// and step; each is the creation, still going on or done.
#[derive(Default)]
pub(crate) struct Prepared(std::sync::Mutex<HashMap<(String, String), Creation>>);

/// The creation of a container ahead: its container and settings once made (None when
/// it could not be).
pub(crate) type Creation = tokio::task::JoinHandle<Option<Ahead>>;

/// A container created ahead, and what it was created from: its settings and the image
/// its tag named then.
pub(crate) struct Ahead {
    id: String,
    body: ContainerCreateBody,
    image_id: Option<String>,
}

impl Prepared {
    /// The run's and step's names a container of `job` is prepared under.
    fn key(job: &StepJob) -> Option<(String, String)> {
        let wharf_engine::Work::Container(c) = &job.work else {
            return None;
        };
        let run = c
            .labels
            .iter()
            .find(|(k, _)| k == wharf_engine::labels::RUN)?;
        Some((run.1.clone(), job.step_name.clone()))
    }

    /// Creates the container of `job` in the background, when creating it is all that
    /// comes before its start: an image that is pulled only when missing (the create
    /// says so), no name of its own, one command.
    pub fn create(&self, client: &crate::Client, job: StepJob) {
        let wharf_engine::Work::Container(c) = &job.work else {
            return;
        };
        let cfg = &c.config;
        let simple = cfg.backend == wharf_spec::Backend::Local
            && cfg.pull == wharf_spec::PullPolicy::Missing
            && cfg.platform.is_none()
            && cfg.container_name.is_none()
            && c.more.is_empty();
        let (Some(key), Some(image), true) = (Self::key(&job), cfg.image.as_deref(), simple) else {
            return;
        };
        let Ok(body) = create_body(&job, c, image) else {
            return;
        };
        let Ok(mut prepared) = self.0.lock() else {
            return;
        };
        if prepared.contains_key(&key) {
            return;
        }
        let client = client.clone();
        let task = tokio::spawn(async move {
            let docker = client.get().await.ok()?;
            let created = docker
                .create_container(None::<CreateContainerOptions>, body.clone())
                .await
                .ok()?;
            let image_id = docker
                .inspect_container(&created.id, None)
                .await
                .ok()
                .and_then(|c| c.image);
            Some(Ahead {
                id: created.id,
                body,
                image_id,
            })
        });
        prepared.insert(key, task);
    }

    /// The creation prepared for `job`'s step, taken (a later attempt creates its own).
    pub fn take(&self, job: &StepJob) -> Option<Creation> {
        let key = Self::key(job)?;
        self.0.lock().ok()?.remove(&key)
    }

    /// Removes the containers prepared for the run `run_id` that no step took.
    pub async fn discard(&self, client: &crate::Client, run_id: &str) {
        let left: Vec<Creation> = match self.0.lock() {
            Ok(mut prepared) => prepared
                .extract_if(|(run, _), _| run == run_id)
                .map(|(_, task)| task)
                .collect(),
            Err(_) => return,
        };
        // A run that prepared nothing has nothing to ask the engine (nor a connection to it).
        if left.is_empty() {
            return;
        }
        let Ok(docker) = client.get().await else {
            return;
        };
        for task in left {
            if let Ok(Some(ahead)) = task.await {
                let _ = remove_now(docker, &ahead.id).await;
            }
        }
    }
}

/// Removes a container (and its anonymous volumes) at once, running or not.
async fn remove_now(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    docker.remove_container(id, Some(options)).await
}

/// Whether the image `tag` names now is the one the container made ahead was made of.
async fn same_image(docker: &Docker, tag: &str, made: &Ahead) -> bool {
    let Some(made_of) = &made.image_id else {
        return false;
    };
    matches!(docker.inspect_image(tag).await, Ok(now) if now.id.as_ref() == Some(made_of))
}

pub(crate) async fn run(
    docker: &Docker,
    auths: &crate::Auths,
    job: &StepJob,
    removals: &crate::Removals,
    ahead: Option<Creation>,
) -> Exit {
    let c = match crate::container_of(job) {
        Ok(c) => c,
        Err(exit) => return *exit,
    };
    let cfg = &c.config;
    if let Some(name) = &cfg.container_name {
        match docker.inspect_container(name, None).await {
            Ok(info) if info.state.as_ref().and_then(|s| s.running).unwrap_or(false) => {
                return exec_all(docker, job, c, name).await;
            }
            Ok(_) if cfg.image.is_some() => {
                (job.notice)(format!(
                    "removing the stopped container {name} to create it again"
                ));
                let options = RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                };
                if let Err(e) = docker.remove_container(name, Some(options)).await {
                    return Exit::error(format!(
                        "cannot remove the stopped container {name}: {}",
                        describe(&e)
                    ));
                }
            }
            Ok(_) => return Exit::error(format!("the container {name} is not running")),
            Err(e) if status_of(&e) == Some(404) && cfg.image.is_some() => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Exit::error(format!(
                    "the container {name} does not exist, and the step has no `image` to create it"
                ));
            }
            Err(e) => {
                return Exit::error(format!(
                    "cannot inspect the container {name}: {}",
                    describe(&e)
                ));
            }
        }
    }
    let Some(image) = cfg.image.as_deref() else {
        return Exit::error("the step has neither `image` nor a running `containerName`");
    };
    let platform = cfg.platform.as_ref().map(ToString::to_string);
    let notice = |m: String| (job.notice)(m);
    let activity = |m: Option<String>| (job.activity)(m);
    // With `missing` and no platform to match, creating is the check: the image is pulled
    // only when the daemon says it has none (one round trip less per step).
    let check_first = !(cfg.pull == wharf_spec::PullPolicy::Missing && platform.is_none());
    if check_first
        && let Err(e) = image::ensure(
            docker,
            auths,
            image,
            cfg.pull,
            platform.as_deref(),
            &notice,
            &activity,
        )
        .await
    {
        return Exit {
            code: Some(125),
            ..Exit::error(e)
        };
    }
    if let Some(n) = crate::bind_notice(&cfg.volumes) {
        (job.notice)(n);
    }
    let mut body = match create_body(job, c, image) {
        Ok(b) => b,
        Err(e) => {
            return Exit {
                code: Some(125),
                ..Exit::error(e)
            };
        }
    };
    // Several commands: the container stays up (wharf's helper, or the image's `sh`, waits
    // for the end) and each command is exec'd into it.
    let helper = if c.more.is_empty() {
        None
    } else {
        let helper = keeps_alive_with_helper(docker, image, platform.as_deref()).await;
        let (entrypoint, cmd) = crate::shared::keepalive(helper);
        body.entrypoint = Some(entrypoint);
        body.cmd = Some(cmd);
        body.attach_stdout = Some(false);
        body.attach_stderr = Some(false);
        Some(helper)
    };
    // A container created ahead from the same settings and the image its tag still names
    // is this step's; one the outputs of the steps before changed, or whose tag a step
    // before moved to another image (a `docker build -t` of it), is removed.
    if let Some(task) = ahead
        && let Ok(Some(made)) = task.await
    {
        if helper.is_none() && made.body == body && same_image(docker, image, &made).await {
            let exit = run_created(docker, job, &made.id).await;
            remove_after(docker, job, removals, cfg.auto_remove, made.id);
            return exit;
        }
        remove_after(docker, job, removals, true, made.id);
    }
    let options = CreateContainerOptions {
        name: cfg.container_name.clone(),
        platform: platform.clone().unwrap_or_default(),
    };
    let mut created = docker
        .create_container(Some(options.clone()), body.clone())
        .await;
    if !check_first && matches!(&created, Err(e) if status_of(e) == Some(404)) {
        if let Err(e) =
            image::ensure(docker, auths, image, cfg.pull, None, &notice, &activity).await
        {
            return Exit {
                code: Some(125),
                ..Exit::error(e)
            };
        }
        created = docker.create_container(Some(options), body).await;
    }
    let id = match created {
        Ok(created) => created.id,
        Err(e) => {
            let why = match status_of(&e) {
                Some(404) => format!("image {image} not found"),
                Some(409) => format!("the container name is in use: {}", describe(&e)),
                _ => describe(&e),
            };
            return Exit {
                code: Some(125),
                ..Exit::error(format!("cannot create the container: {why}"))
            };
        }
    };
    let exit = match helper {
        None => run_created(docker, job, &id).await,
        Some(helper) => {
            let exit = run_kept_up(docker, job, c, &id, helper).await;
            if !cfg.auto_remove {
                // Kept, as a single-command container is kept: stopped.
                let options = StopContainerOptions {
                    t: Some(0),
                    ..Default::default()
                };
                let _ = docker.stop_container(&id, Some(options)).await;
            }
            exit
        }
    };
    remove_after(docker, job, removals, cfg.auto_remove, id);
    exit
}

/// Removes the step's container (when `remove`) in the background: logs and exit code
/// are read, the removal can go on while the next step starts. The run waits for it
/// before it ends (`Executor::settle`).
fn remove_after(
    docker: &Docker,
    job: &StepJob,
    removals: &crate::Removals,
    remove: bool,
    id: String,
) {
    if remove {
        let (docker, notice) = (docker.clone(), job.notice.clone());
        removals.push(tokio::spawn(async move {
            if let Err(e) = remove_now(&docker, &id).await
                && status_of(&e) != Some(404)
            {
                notice(format!(
                    "cannot remove the container {}: {}",
                    short(&id),
                    describe(&e)
                ));
            }
        }));
    }
}

/// Whether wharf's helper can keep a container of `image` up (it is built for this
/// machine's architecture); otherwise the image's `sh` does.
async fn keeps_alive_with_helper(docker: &Docker, image: &str, platform: Option<&str>) -> bool {
    let image_arch = match platform.and_then(|p| p.split('/').nth(1)) {
        Some(_) => None,
        None => docker
            .inspect_image(image)
            .await
            .ok()
            .and_then(|d| d.architecture),
    };
    crate::shared::helper_runs(platform, image_arch.as_deref())
}

/// Starts a created container that stays up, then execs the step's commands into it.
async fn run_kept_up(
    docker: &Docker,
    job: &StepJob,
    c: &ContainerJob,
    id: &str,
    helper: bool,
) -> Exit {
    if helper {
        let options = UploadToContainerOptions {
            path: "/".into(),
            ..Default::default()
        };
        let tar = crate::shared::helper_tar();
        if let Err(e) = docker
            .upload_to_container(id, Some(options), bollard::body_full(tar.into()))
            .await
        {
            return Exit {
                code: Some(125),
                ..Exit::error(format!(
                    "cannot copy wharf's helper into the container: {}",
                    describe(&e)
                ))
            };
        }
    }
    if let Err(e) = docker.start_container(id, None).await {
        return Exit {
            code: Some(125),
            ..Exit::error(format!("the container did not start: {}", describe(&e)))
        };
    }
    exec_all(docker, job, c, id).await
}

/// The step's command, then each of `more` once the one before it succeeded, exec'd into
/// the running container `target`.
async fn exec_all(docker: &Docker, job: &StepJob, c: &ContainerJob, target: &str) -> Exit {
    let Some(first) = &c.argv else {
        return Exit::error(format!(
            "a step that runs in the container {target} needs a `command`"
        ));
    };
    let mut exit = exec_into(docker, job, c, first, target).await;
    for argv in &c.more {
        if !exit.succeeded() || job.stop.is_cancelled() {
            break;
        }
        exit = exec_into(docker, job, c, argv, target).await;
    }
    exit
}

pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

async fn run_created(docker: &Docker, job: &StepJob, id: &str) -> Exit {
    let attach = AttachContainerOptions {
        stream: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let attached = match docker.attach_container(id, Some(attach)).await {
        Ok(a) => a,
        Err(e) => {
            return Exit {
                code: Some(125),
                ..Exit::error(format!("cannot attach to the container: {}", describe(&e)))
            };
        }
    };
    if let Err(e) = docker.start_container(id, None).await {
        let message = describe(&e);
        let lower = message.to_lowercase();
        // As `docker run` reports them: the command cannot be found (127) or run (126).
        let code = if lower.contains("not found") || lower.contains("no such file") {
            127
        } else if lower.contains("permission denied") || lower.contains("cannot execute") {
            126
        } else {
            125
        };
        return Exit {
            code: Some(code),
            ..Exit::error(format!("the container did not start: {message}"))
        };
    }
    let kill = |signal: String| async move {
        let _ = docker
            .kill_container(id, Some(KillContainerOptions { signal }))
            .await;
    };
    let pumped = pump(attached.output, job, kill).await;
    let stopped = pumped.stopped;
    let (code, lost) = match wait_exit(docker, id).await {
        Ok(code) => (code, None),
        Err(e) => (None, Some(e)),
    };
    let mut exit = pumped.exit(code);
    if exit.error.is_none() {
        exit.error = lost;
    }
    if code == Some(137) && !stopped && exit.error.is_none() {
        exit.error = oom_message(docker, id).await;
    }
    exit
}

/// Why a container that nobody stopped died of SIGKILL (137), when memory is the reason.
/// The daemon learns of an OOM kill from an event that can come after the exit, so it is
/// asked for a while; a container with a memory limit that it never confirms is most
/// likely out of memory all the same, and is called that, with the limit.
async fn oom_message(docker: &Docker, id: &str) -> Option<String> {
    let mut limit = 0;
    for _ in 0..30 {
        let info = docker.inspect_container(id, None).await.ok();
        limit = info
            .as_ref()
            .and_then(|i| i.host_config.as_ref())
            .and_then(|h| h.memory)
            .unwrap_or(0);
        if info
            .and_then(|i| i.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false)
        {
            return Some("out of memory: the container was killed for exceeding its memory limit (exit code 137)".into());
        }
        if limit == 0 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(format!(
        "killed (exit code 137), most likely out of memory: the container's memory limit is {limit} bytes"
    ))
}

/// The container's exit code; an error when Docker stopped answering before it told.
async fn wait_exit(docker: &Docker, id: &str) -> Result<Option<i32>, String> {
    let options = WaitContainerOptions {
        condition: "not-running".into(),
    };
    match docker.wait_container(id, Some(options)).next().await {
        Some(Ok(r)) => Ok(i32::try_from(r.status_code).ok()),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            Ok(i32::try_from(code).ok())
        }
        _ => match docker.inspect_container(id, None).await {
            Ok(info) => Ok(info
                .state
                .and_then(|s| s.exit_code)
                .and_then(|c| i32::try_from(c).ok())),
            Err(e) if crate::unreachable(&e) => Err(format!("{} while the step ran", describe(&e))),
            Err(_) => Ok(None),
        },
    }
}

/// What copying a step's output came to.
pub(crate) struct Pumped {
    /// The start of stdout (for `output:`).
    pub head: Vec<u8>,
    /// The step was stopped.
    pub stopped: bool,
    /// Why the output is incomplete: a log that could not be written.
    pub problem: Option<String>,
}

impl Pumped {
    /// The exit of a step whose output came to this, with `code`.
    pub fn exit(self, code: Option<i32>) -> Exit {
        Exit {
            code,
            stopped: self.stopped,
            stdout_head: self.head,
            error: self.problem,
            ..Exit::default()
        }
    }
}

/// Copies the attached stream to the logs until it ends; stops the work (`kill` with the
/// step's signal, then SIGKILL after the grace period) when the step is stopped.
pub(crate) async fn pump<S, K, F>(mut stream: S, job: &StepJob, kill: K) -> Pumped
where
    S: Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    K: Fn(String) -> F,
    F: std::future::Future<Output = ()>,
{
    let mut output = wharf_engine::StepOutput::new(job);
    let mut stopped = false;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::select! {
            item = stream.next() => item,
            () = job.stop.cancelled(), if !stopped => {
                stopped = true;
                kill(job.signal.as_str().to_owned()).await;
                deadline = Some(tokio::time::Instant::now() + job.grace);
                continue;
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                kill("SIGKILL".to_owned()).await;
                deadline = None;
                continue;
            }
        };
        match next {
            Some(Ok(LogOutput::StdOut { message })) | Some(Ok(LogOutput::Console { message })) => {
                output.stdout(&message).await;
            }
            Some(Ok(LogOutput::StdErr { message })) => output.stderr(&message).await,
            Some(Ok(LogOutput::StdIn { .. })) => {}
            // A stream that ends in an error (a TLS peer that closes without notice, a cut
            // connection) ends the output; how the step ended is asked of the daemon next,
            // and that says whether Docker is still there.
            Some(Err(_)) | None => break,
        }
    }
    let (head, problem) = output.finish().await;
    Pumped {
        head,
        stopped,
        problem,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The body of the container create call: the step's raw `container`/`host`/`network`
/// objects, with what wharf sets on top (image, command, environment, labels, binds).
fn create_body(
    job: &StepJob,
    c: &ContainerJob,
    image: &str,
) -> Result<ContainerCreateBody, String> {
    let cfg = &c.config;
    let mut config: Map<String, Value> = cfg.container.clone();
    config.insert("Image".into(), Value::String(image.to_owned()));
    if let Some(argv) = &c.argv {
        config.insert("Cmd".into(), Value::from(argv.clone()));
    }
    if let Some(dir) = &cfg.working_dir {
        config.insert("WorkingDir".into(), Value::String(dir.clone()));
    }
    // The step's variables first, then the raw `container.env`, which wins.
    let mut env: Vec<Value> = job
        .env
        .iter()
        .map(|(k, v)| Value::String(format!("{k}={v}")))
        .collect();
    if let Some(Value::Array(own)) = config.get("Env") {
        env.extend(own.iter().cloned());
    }
    config.insert("Env".into(), Value::Array(env));
    let mut labels = match config.remove("Labels") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in &c.labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    config.insert("Labels".into(), Value::Object(labels));
    config.insert("AttachStdout".into(), Value::Bool(true));
    config.insert("AttachStderr".into(), Value::Bool(true));

    let mut host: Map<String, Value> = cfg.host.clone();
    if !cfg.volumes.is_empty() {
        let mut binds = match host.remove("Binds") {
            Some(Value::Array(b)) => b,
            _ => Vec::new(),
        };
        for v in &cfg.volumes {
            let source = match &v.source {
                VolumeSource::Bind(path) | VolumeSource::Named(path) => path.clone(),
            };
            let mode = if v.read_only { ":ro" } else { "" };
            binds.push(Value::String(format!("{source}:{}{mode}", v.target)));
        }
        host.insert("Binds".into(), Value::Array(binds));
    }
    if !host.is_empty() {
        config.insert("HostConfig".into(), Value::Object(host));
    }
    if !cfg.network.is_empty() {
        config.insert(
            "NetworkingConfig".into(),
            Value::Object(cfg.network.clone()),
        );
    }
    serde_json::from_value(Value::Object(config))
        .map_err(|e| format!("the container settings do not fit the Docker API: {e}"))
}

/// `containerName` of a running container: the step's command through `docker exec`.
/// One command (`argv`) exec'd into the running container `name`.
async fn exec_into(
    docker: &Docker,
    job: &StepJob,
    c: &ContainerJob,
    argv: &[String],
    name: &str,
) -> Exit {
    let exec = &c.config.exec;
    let mut env: Vec<String> = job.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(exec.env.iter().map(|v| format!("{}={}", v.name, v.value)));
    let config = ExecConfig {
        cmd: Some(argv.to_vec()),
        env: Some(env),
        user: exec.user.clone(),
        working_dir: exec.working_dir.clone(),
        privileged: Some(exec.privileged),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let id = match docker.create_exec(name, config).await {
        Ok(r) => r.id,
        Err(e) => {
            return Exit {
                code: Some(125),
                ..Exit::error(format!("cannot exec in {name}: {}", describe(&e)))
            };
        }
    };
    let output = match docker
        .start_exec(
            &id,
            Some(StartExecOptions {
                detach: false,
                ..Default::default()
            }),
        )
        .await
    {
        Ok(StartExecResults::Attached { output, .. }) => output,
        Ok(StartExecResults::Detached) => return Exit::error("the exec started detached"),
        Err(e) => {
            return Exit {
                code: Some(125),
                ..Exit::error(format!("cannot exec in {name}: {}", describe(&e)))
            };
        }
    };
    let exec_id = id.clone();
    // Docker has no call to stop an exec: its process is signalled on the host.
    let kill = |signal: String| {
        let exec_id = exec_id.clone();
        async move {
            if let Ok(info) = docker.inspect_exec(&exec_id).await
                && let (Some(pid), Ok(sig)) = (
                    info.pid.and_then(|p| i32::try_from(p).ok()),
                    signal.parse::<nix::sys::signal::Signal>(),
                )
                && pid > 0
            {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
            }
        }
    };
    let pumped = pump(output, job, kill).await;
    let code = exec_exit_code(docker, name, &id).await;
    pumped.exit(code)
}

/// The exit code of an exec whose output has ended: its inspect, or, while the daemon
/// still marks it running, its `exec_die` event (asked again every 2 s in case the event
/// stream broke).
async fn exec_exit_code(docker: &Docker, container: &str, exec_id: &str) -> Option<i32> {
    let inspect = || async {
        match docker.inspect_exec(exec_id).await {
            Ok(info) if info.running == Some(false) => {
                Some(info.exit_code.and_then(|c| i32::try_from(c).ok()))
            }
            Ok(_) => None,
            Err(_) => Some(None),
        }
    };
    if let Some(code) = inspect().await {
        return code;
    }
    // From a second back: the event may have come between the stream's end and now.
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(1))
        .unwrap_or(0);
    let options = bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        filters: Some(std::collections::HashMap::from([
            ("container".to_owned(), vec![container.to_owned()]),
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["exec_die".to_owned()]),
        ])),
        ..Default::default()
    };
    let mut events = docker.events(Some(options));
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => {
                    let attributes = event.actor.and_then(|a| a.attributes).unwrap_or_default();
                    if attributes.get("execID").map(String::as_str) == Some(exec_id) {
                        return attributes
                            .get("exitCode")
                            .and_then(|c| c.parse::<i32>().ok());
                    }
                }
                _ => return inspect().await.flatten(),
            },
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                if let Some(code) = inspect().await {
                    return code;
                }
            }
        }
    }
}
