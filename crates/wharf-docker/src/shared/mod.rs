//! The DAG-level `container`: one container for the whole run, its steps run in it through
//! `docker exec`.
//!
//! Start: image per `pullPolicy` → create (env, binds, ports, network, user, working
//! directory, restart policy, labels; the main process per `startup`) → copy the helper
//! (`/.wharf/init`, see `init/main.rs`) into it → start → readiness (`running`, or
//! `healthy`, then `logPattern`), at most [`ready_limit`]. The container's events (one
//! stream, from its creation on) tell when it dies, how its health changes and how each
//! exec ended; nothing is polled.
//!
//! A step: exec `/.wharf/init run TOKEN argv...` with the step's env and working
//! directory; the helper runs the program in a process group of its own and ends what is
//! left of the group with it. The stream is copied to the logs until it ends; the exit
//! code is the exec's (its inspect, or its `exec_die` event). Stopping a step execs
//! `/.wharf/init signal SIGNAL TOKEN`, which signals the step's process group inside the
//! container: the step's signal, then SIGKILL after the grace period; the container
//! stays.
//!
//! Without the helper (the image is for another architecture than wharf's, or the
//! container is one wharf did not create: `exec`), `keepalive` runs the image's `sh`, a
//! step's argv is exec'd as it is, and a stop signals the exec's process on the host.
//!
//! Finish: the container is removed (`keepalive` needs no grace: the helper exits on
//! SIGTERM; the image's own main process gets `docker stop` with the grace period first),
//! unless `keepContainer`; a container wharf did not create is never touched.

mod exec;
mod ready;

use ready::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, ExecConfig, HealthConfig, HostConfig, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use wharf_engine::{BoxFuture, Executor, Exit, SharedContainer, SharedSetup, StepJob, labels};
use wharf_spec::{Startup, VolumeSource, WaitFor};

use crate::container::{pump, short};
use crate::{Client, describe, image, status_of};

/// The helper, built for the architecture wharf is built for (empty when there is none).
static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wharf-init"));
const INIT_PATH: &str = "/.wharf/init";
/// A label on containers that hold the helper.
const INIT_LABEL: &str = "wharf.init";

/// The longest wait for readiness: 120 s (`WHARF_READY_TIMEOUT` in seconds overrides it).
fn ready_limit() -> Duration {
    std::env::var("WHARF_READY_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs)
}

/// The Docker name of the machine's architecture, as images name theirs.
fn own_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether wharf's helper runs in a container of the platform asked for, or else of the
/// image's architecture (it is built for this machine's).
pub(crate) fn helper_runs(platform: Option<&str>, image_arch: Option<&str>) -> bool {
    let arch = platform
        .and_then(|p| p.split('/').nth(1))
        .or(image_arch)
        .unwrap_or("");
    !INIT.is_empty() && (arch.is_empty() || arch == own_arch())
}

/// The Entrypoint and Cmd that keep a container up until it is stopped: wharf's helper,
/// or the image's `sh`.
pub(crate) fn keepalive(helper: bool) -> (Vec<String>, Vec<String>) {
    if helper {
        (vec![INIT_PATH.to_owned()], vec!["keepalive".to_owned()])
    } else {
        (
            vec!["sh".to_owned()],
            vec![
                "-c".to_owned(),
                "trap 'exit 0' TERM INT HUP; while :; do sleep 3600 & wait $!; done".to_owned(),
            ],
        )
    }
}

/// The DAG-level container of one run.
pub struct SharedExecutor {
    client: Client,
    auths: Arc<crate::Auths>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The container, once created or found.
    container: Option<Arc<Running>>,
    /// Why there is no ready container.
    failure: Option<String>,
}

struct Running {
    id: String,
    /// Its name, for messages.
    name: String,
    /// `/.wharf/init` is in it.
    helper: bool,
    /// wharf created it (or reuses one it created): it is removed at the end unless kept.
    owned: bool,
    keep: bool,
    startup: Startup,
    grace: Duration,
    ready: std::sync::atomic::AtomicBool,
    /// `exec`: the user, working directory and env of every exec.
    exec_user: Option<String>,
    exec_dir: Option<String>,
    exec_env: Vec<String>,
    watch: Arc<Watch>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Copies the container's own output to the run's log folder.
    logger: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Running {
    /// A container wharf created (or kept earlier) for this run, not ready yet.
    fn owned(id: String, name: String, helper: bool, setup: &SharedSetup) -> Self {
        Self {
            id,
            name,
            helper,
            owned: true,
            keep: setup.config.keep_container,
            startup: setup.config.startup,
            grace: setup.grace,
            ready: false.into(),
            exec_user: None,
            exec_dir: None,
            exec_env: Vec::new(),
            watch: Arc::default(),
            watcher: Mutex::new(None),
            logger: Mutex::new(None),
        }
    }
}

impl SharedExecutor {
    pub fn new(client: Client, auths: Arc<crate::Auths>) -> Self {
        Self {
            client,
            auths,
            state: Mutex::new(State::default()),
        }
    }

    fn running(&self) -> Result<Arc<Running>, String> {
        let state = self.state.lock().map_err(|_| "internal error".to_owned())?;
        match (&state.container, &state.failure) {
            (Some(c), None) if c.ready.load(Ordering::SeqCst) => Ok(Arc::clone(c)),
            (_, Some(why)) => Err(format!("the DAG-level container is not running: {why}")),
            _ => Err("the DAG-level container is not running".into()),
        }
    }

    async fn start_inner(&self, docker: &Docker, setup: &SharedSetup) -> Result<(), String> {
        let cfg = &setup.config;
        if let Some(name) = &cfg.exec {
            let running = self.attach_existing(docker, name, setup).await?;
            running.ready.store(true, Ordering::SeqCst);
            self.set(running);
            return Ok(());
        }
        let Some(image) = cfg.image.as_deref() else {
            return Err("the container has no `image`".into());
        };
        if let Some(name) = &cfg.name
            && let Some(running) = self.reuse(docker, name, image, setup).await?
        {
            self.set(Arc::clone(&running));
            let is_running = docker
                .inspect_container(&running.id, None)
                .await
                .ok()
                .and_then(|i| i.state)
                .and_then(|s| s.running)
                .unwrap_or(false);
            copy_logs(docker, &running, setup, Some(unix_now()));
            if !is_running {
                docker
                    .start_container(&running.id, None)
                    .await
                    .map_err(|e| format!("cannot start the container {name}: {}", describe(&e)))?;
            }
            ready(docker, &running, setup).await?;
            running.ready.store(true, Ordering::SeqCst);
            return Ok(());
        }

        let platform = cfg.platform.as_ref().map(ToString::to_string);
        let notice = |m: String| (setup.notice)(m);
        let activity = |m: Option<String>| (setup.activity)(m);
        let local = image::ensure(
            docker,
            &self.auths,
            image,
            cfg.pull_policy,
            platform.as_deref(),
            &notice,
            &activity,
        )
        .await?;
        let details = match local {
            Some(d) => d,
            None => docker
                .inspect_image(image)
                .await
                .map_err(|e| format!("cannot inspect the image {image}: {}", describe(&e)))?,
        };
        let helper = helper_runs(platform.as_deref(), details.architecture.as_deref());
        if let Some(n) = crate::bind_notice(&cfg.volumes) {
            (setup.notice)(n);
        }
        let body = create_body(setup, image, helper)?;
        let options = CreateContainerOptions {
            name: cfg.name.clone(),
            platform: platform.unwrap_or_default(),
        };
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match status_of(&e) {
                Some(409) => format!(
                    "the container name `{}` is taken: {}",
                    cfg.name.as_deref().unwrap_or_default(),
                    describe(&e)
                ),
                _ => format!("cannot create the container: {}", describe(&e)),
            })?;
        let name = cfg
            .name
            .clone()
            .unwrap_or_else(|| short(&created.id).into());
        let running = Arc::new(Running::owned(created.id.clone(), name, helper, setup));
        // Recorded before anything else can fail: `finish` removes it on every path.
        self.set(Arc::clone(&running));
        watch(docker, &running);
        if helper {
            let tar = helper_tar();
            let options = UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            };
            docker
                .upload_to_container(&created.id, Some(options), bollard::body_full(tar.into()))
                .await
                .map_err(|e| {
                    format!(
                        "cannot copy wharf's helper into the container: {}",
                        describe(&e)
                    )
                })?;
        }
        if let Err(e) = docker.start_container(&created.id, None).await {
            return Err(format!("the container did not start: {}", describe(&e)));
        }
        // From its start on (the daemon keeps the log): nothing it writes is missed. (A
        // follow asked for before the start would end at once.)
        copy_logs(docker, &running, setup, None);
        ready(docker, &running, setup).await?;
        running.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn set(&self, running: Arc<Running>) {
        if let Ok(mut state) = self.state.lock() {
            state.container = Some(running);
        }
    }

    /// `name` exists already: reused when wharf created it for this DAG and image and kept
    /// it (`keepContainer`); otherwise an error that says what is in the way.
    async fn reuse(
        &self,
        docker: &Docker,
        name: &str,
        image: &str,
        setup: &SharedSetup,
    ) -> Result<Option<Arc<Running>>, String> {
        let info = match docker.inspect_container(name, None).await {
            Ok(info) => info,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot inspect the container {name}: {}",
                    describe(&e)
                ));
            }
        };
        let id = info.id.clone().unwrap_or_default();
        let config = info.config.clone().unwrap_or_default();
        let found = config.labels.clone().unwrap_or_default();
        let get = |k: &str| found.get(k).map(String::as_str).unwrap_or_default();
        let ours = get(labels::DAG) == setup.dag_name
            && get(labels::IMAGE) == image
            && get(labels::KEEP) == "true";
        if !ours {
            let whose = if found.contains_key(labels::DAG) {
                format!(
                    "created by wharf for the DAG `{}` from {}",
                    get(labels::DAG),
                    config.image.as_deref().unwrap_or("?")
                )
            } else {
                format!(
                    "not created by wharf; image {}",
                    config.image.as_deref().unwrap_or("?")
                )
            };
            return Err(format!(
                "the container name `{name}` is taken by container {} ({whose}); remove it with `docker rm -f {name}`, or choose another `container.name`",
                short(&id)
            ));
        }
        (setup.notice)(format!(
            "reusing the container {name} ({}) kept by an earlier run",
            short(&id)
        ));
        let running = Arc::new(Running::owned(
            id,
            name.to_owned(),
            get(INIT_LABEL) == "true",
            setup,
        ));
        watch(docker, &running);
        Ok(Some(running))
    }

    /// `exec: NAME`: a container someone else runs; waits until it runs.
    async fn attach_existing(
        &self,
        docker: &Docker,
        name: &str,
        setup: &SharedSetup,
    ) -> Result<Arc<Running>, String> {
        let cfg = &setup.config;
        let running = Arc::new(Running {
            owned: false,
            keep: true,
            startup: Startup::Entrypoint,
            exec_user: cfg.user.clone(),
            exec_dir: cfg.working_dir.clone(),
            exec_env: setup.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ..Running::owned(name.to_owned(), name.to_owned(), false, setup)
        });
        watch(docker, &running);
        let limit = ready_limit();
        let check = async {
            loop {
                let notified = running.watch.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match docker.inspect_container(name, None).await {
                    Ok(info) if info.state.as_ref().and_then(|s| s.running) == Some(true) => {
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) if status_of(&e) == Some(404) => {}
                    Err(e) => {
                        return Err(format!(
                            "cannot inspect the container {name}: {}",
                            describe(&e)
                        ));
                    }
                }
                // The next event of the container (its start) is the time to look again.
                notified.await;
            }
        };
        tokio::select! {
            r = check => r.map(|()| running),
            () = tokio::time::sleep(limit) => Err(format!(
                "the container {name} was not running after {}s",
                limit.as_secs()
            )),
            () = setup.stop.cancelled() => Err("stopped".into()),
        }
    }

    async fn finish_inner(&self) {
        let running = self.state.lock().ok().and_then(|mut s| s.container.take());
        let Some(c) = running else { return };
        if let Some(w) = c.watcher.lock().ok().and_then(|mut w| w.take()) {
            w.abort();
        }
        let logger = c.logger.lock().ok().and_then(|mut l| l.take());
        let kept = c.keep && c.ready.load(Ordering::SeqCst);
        let Ok(docker) = self.client.get().await else {
            return;
        };
        if !c.owned || kept {
            if let Some(l) = logger {
                l.abort();
            }
            return;
        }
        // The keepalive helper exits on SIGTERM at once: removing is all it takes. The
        // image's own main process gets `docker stop` and the grace period first.
        let helper_keepalive = c.helper && c.startup == Startup::Keepalive;
        if !helper_keepalive {
            let options = StopContainerOptions {
                t: Some(i32::try_from(c.grace.as_secs()).unwrap_or(i32::MAX)),
                ..Default::default()
            };
            // The daemon answers a stop once the grace period is over: it may take that long.
            let _ = docker
                .clone()
                .with_timeout(c.grace + crate::request_timeout())
                .stop_container(&c.id, Some(options))
                .await;
        }
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        if let Err(e) = docker.remove_container(&c.id, Some(options)).await
            && status_of(&e) != Some(404)
        {
            eprintln!(
                "warning: cannot remove the container {}: {}",
                c.name,
                describe(&e)
            );
        }
        // The log stream ends with the container: the copy has all of it then.
        if let Some(mut l) = logger
            && tokio::time::timeout(Duration::from_secs(5), &mut l)
                .await
                .is_err()
        {
            l.abort();
        }
    }
}

impl Executor for SharedExecutor {
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let c = match self.running() {
                Ok(c) => c,
                Err(e) => return Exit::error(e),
            };
            let docker = match self.client.get().await {
                Ok(d) => d,
                Err(e) => return Exit::error(e.to_string()),
            };
            self.exec(docker, &c, job).await
        })
    }
}

impl SharedContainer for SharedExecutor {
    fn start<'a>(
        &'a self,
        setup: &'a SharedSetup,
    ) -> BoxFuture<'a, Result<(), wharf_engine::NotReady>> {
        Box::pin(async move {
            let result = async {
                let docker = self.client.get().await.map_err(|e| e.to_string())?;
                tokio::select! {
                    r = self.start_inner(docker, setup) => r,
                    () = setup.stop.cancelled() => Err("stopped".into()),
                }
            }
            .await;
            (setup.activity)(None);
            if let Err(e) = &result
                && let Ok(mut state) = self.state.lock()
            {
                state.failure = Some(e.clone());
            }
            result.map_err(wharf_engine::NotReady)
        })
    }

    fn finish(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.finish_inner())
    }
}

/// The create call's body for the shared container.
fn create_body(
    setup: &SharedSetup,
    image: &str,
    helper: bool,
) -> Result<ContainerCreateBody, String> {
    let cfg = &setup.config;
    let mut labels: HashMap<String, String> = setup.labels.iter().cloned().collect();
    labels.insert(INIT_LABEL.into(), helper.to_string());
    let (entrypoint, cmd) = match cfg.startup {
        Startup::Keepalive => {
            let (entrypoint, cmd) = keepalive(helper);
            (Some(entrypoint), Some(cmd))
        }
        Startup::Entrypoint => (None, None),
        // The command is the main process: the image's ENTRYPOINT does not wrap it.
        Startup::Command => (Some(Vec::new()), Some(cfg.command.clone())),
    };
    let mut exposed: Vec<String> = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &cfg.ports {
        let key = format!("{}/{}", p.container_port, p.protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let binding = PortBinding {
            host_ip: p.host_ip.clone(),
            host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
        };
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(binding);
    }
    let binds: Vec<String> = cfg
        .volumes
        .iter()
        .map(|v| {
            let source = match &v.source {
                VolumeSource::Bind(p) | VolumeSource::Named(p) => p,
            };
            let mode = if v.read_only { ":ro" } else { "" };
            format!("{source}:{}{mode}", v.target)
        })
        .collect();
    let network_mode = cfg.network.as_ref().map(wharf_spec::Network::mode);
    let endpoints = match &cfg.network {
        Some(wharf_spec::Network::Custom(name)) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(name.clone(), EndpointSettings::default())])),
        }),
        _ => None,
    };
    let restart_policy = cfg.restart_policy.map(|r| RestartPolicy {
        name: Some(match r {
            wharf_spec::RestartPolicy::No => RestartPolicyNameEnum::NO,
            wharf_spec::RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
            wharf_spec::RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
        }),
        maximum_retry_count: None,
    });
    Ok(ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(setup.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: cfg.user.clone(),
        working_dir: cfg.working_dir.clone(),
        entrypoint,
        cmd,
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: cfg.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            start_period: nanos(h.start_period),
            retries: h.retries.map(i64::from),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            network_mode,
            restart_policy,
            ..Default::default()
        }),
        networking_config: endpoints,
        ..Default::default()
    })
}

fn nanos(d: Option<std::time::Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn unix_now() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
        .unwrap_or(0)
}

/// Copies the container's own stdout and stderr (its main process: the image's
/// entrypoint, `command`) to `container.stdout`/`container.stderr` in the run's log
/// folder, from `since` (seconds) or from its start, until the container stops.
fn copy_logs(docker: &Docker, c: &Running, setup: &SharedSetup, since: Option<i32>) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        since: since.unwrap_or(0),
        ..Default::default()
    };
    let mut stream = docker.logs(&c.id, Some(options));
    let mut out =
        wharf_engine::LazyLog::masked(setup.log_dir.join("container.stdout"), &setup.mask);
    let mut err =
        wharf_engine::LazyLog::masked(setup.log_dir.join("container.stderr"), &setup.mask);
    let task = tokio::spawn(async move {
        while let Some(Ok(chunk)) = stream.next().await {
            match chunk {
                bollard::container::LogOutput::StdErr { message } => err.write(&message).await,
                other => out.write(&other.into_bytes()).await,
            }
        }
        out.flush().await;
        err.flush().await;
    });
    if let Ok(mut l) = c.logger.lock() {
        *l = Some(task);
    }
}

/// A tar archive holding the helper at `.wharf/init` (mode 0755, owned by root).
pub(crate) fn helper_tar() -> Vec<u8> {
    let entry = |path: &str, mode: u32, size: usize, kind: tar::EntryType| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size as u64);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        (header, path.to_owned())
    };
    let mut archive = tar::Builder::new(Vec::with_capacity(INIT.len() + 4 * 512));
    let (mut dir, dir_path) = entry(".wharf/", 0o755, 0, tar::EntryType::Directory);
    let (mut init, init_path) = entry(".wharf/init", 0o755, INIT.len(), tar::EntryType::Regular);
    // Writing into memory cannot fail.
    let _ = archive.append_data(&mut dir, dir_path, std::io::empty());
    let _ = archive.append_data(&mut init, init_path, INIT);
    archive.into_inner().unwrap_or_default()
}
