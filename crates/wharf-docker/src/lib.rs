//! wharf's Docker executors: the only crate that talks to Docker.
//!
//! One client per process, connected on first use (a run without container steps never
//! touches Docker): `DOCKER_HOST` (unix socket, tcp with `DOCKER_TLS_VERIFY` and
//! `DOCKER_CERT_PATH`, or ssh), else the Docker context (`DOCKER_CONTEXT`, the Docker
//! config's `currentContext`), else the default socket (see `remote`), and the API version
//! negotiated with the daemon (Docker Engine 20.10 speaks API 1.41).

mod auth;
mod cleanup;
mod container;
mod image;
mod nodes;
mod remote;
mod shared;
mod swarm;

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use tokio::sync::OnceCell;
use wharf_engine::{BoxFuture, Executor, Exit, StepJob};

pub use auth::Auths;
pub use cleanup::{Leftover, remove_leftovers};
pub use nodes::{SwarmJob, SwarmNode, swarm_nodes};

pub use shared::SharedExecutor;

/// What went wrong talking to Docker, in words a person reads.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect to Docker at {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("cannot reach Docker at {host}: {reason}")]
    Reach { host: String, reason: String },
    #[error("cannot list the containers: {0}")]
    List(String),
    #[error("cannot clean up the container {id}: {reason}")]
    Cleanup { id: String, reason: String },
}

/// The connection to the Docker daemon, made on first use.
#[derive(Clone, Default)]
pub struct Client {
    docker: Arc<OnceCell<Result<Docker, DockerError>>>,
}

impl Client {
    pub fn new() -> Self {
        Self::default()
    }

    /// The connected client, or why there is none.
    pub async fn get(&self) -> Result<&Docker, DockerError> {
        self.docker
            .get_or_init(connect)
            .await
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Where the daemon is, as the user configured it (and the context it came from).
pub(crate) fn docker_host() -> String {
    match remote::endpoint() {
        Ok(at) => at.to_string(),
        Err(_) => std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
    }
}

/// How long one request may wait for the daemon's answer (its status and headers; a
/// stream's content, such as a step's output, comes as long as the step runs). Past it,
/// the daemon is taken as not answering. `WHARF_DOCKER_TIMEOUT` (seconds) sets it.
pub fn request_timeout() -> Duration {
    std::env::var("WHARF_DOCKER_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

async fn connect() -> Result<Docker, DockerError> {
    let at = remote::endpoint().map_err(|reason| DockerError::Connect {
        host: "the chosen Docker context".into(),
        reason,
    })?;
    let host = at.to_string();
    let docker = remote::client(&at, request_timeout().as_secs())
        .map_err(|reason| DockerError::Connect {
            host: host.clone(),
            reason,
        })?
        .with_request_modifier(auth::fix_registry_auth)
        .with_timeout(request_timeout());
    docker.negotiate_version().await.map_err(|e| {
        let reason = if unreachable(&e) {
            cause(&e)
        } else {
            describe(&e)
        };
        DockerError::Reach { host, reason }
    })
}

/// Whether the error says the daemon could not be reached or stopped answering (as
/// opposed to an answer that refuses something).
pub(crate) fn unreachable(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::RequestTimeoutError
            | E::HyperLegacyError { .. }
            | E::HyperResponseError { .. }
            | E::IOError { .. }
            | E::SocketNotFoundError(_)
    )
}

/// A Docker error as a person reads it: the daemon's message when it sent one, or that
/// Docker stopped answering, where, and the underlying reason.
pub(crate) fn describe(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        E::DockerStreamError { error } => error.trim().to_owned(),
        E::DockerContainerWaitError { error, .. } => error.trim().to_owned(),
        E::RequestTimeoutError => format!(
            "Docker at {} did not answer within {} s",
            docker_host(),
            request_timeout().as_secs()
        ),
        other if unreachable(other) => {
            format!(
                "Docker at {} stopped answering: {}",
                docker_host(),
                cause(other)
            )
        }
        other => other.to_string(),
    }
}

/// The innermost cause of an error: what happened (refused, reset, closed), without the
/// layers of the HTTP client's own wording.
fn cause(e: &bollard::errors::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// Whether wharf itself runs in a container (Docker leaves `/.dockerenv` there).
pub(crate) fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
}

/// What a user of wharf-in-a-container must know about a bind mount: its source is a
/// path on the Docker host.
pub(crate) fn bind_notice(volumes: &[wharf_spec::Volume]) -> Option<String> {
    let sources: Vec<&str> = volumes
        .iter()
        .filter_map(|v| match &v.source {
            wharf_spec::VolumeSource::Bind(p) => Some(p.as_str()),
            wharf_spec::VolumeSource::Named(_) => None,
        })
        .collect();
    if sources.is_empty() || !in_container() {
        return None;
    }
    Some(format!(
        "wharf runs in a container: the bind-mount source{} {} {} paths on the Docker host, not in wharf's container (mount the DAGs folder at the same path in both)",
        if sources.len() == 1 { "" } else { "s" },
        sources.join(", "),
        if sources.len() == 1 { "is a" } else { "are" }
    ))
}

/// The status code of a daemon's error answer.
pub(crate) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The container settings of a step with a container of its own, its `stdout:`/`stderr:`
/// files made ready; or the step's failure.
pub(crate) fn container_of(job: &StepJob) -> Result<&wharf_engine::ContainerJob, Box<Exit>> {
    let wharf_engine::Work::Container(c) = &job.work else {
        return Err(Box::new(Exit::error("the step has no container settings")));
    };
    job.prepare_redirects()
        .map_err(|e| Box::new(Exit::error(e)))?;
    Ok(c)
}

/// Container removals still going on.
#[derive(Default)]
pub(crate) struct Removals(std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);

impl Removals {
    pub fn push(&self, task: tokio::task::JoinHandle<()>) {
        if let Ok(mut tasks) = self.0.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }

    async fn wait(&self) {
        let tasks = self
            .0
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Runs steps that have a container of their own (`executor: {type: docker}`).
pub struct DockerExecutor {
    client: Client,
    auths: Arc<Auths>,
    removals: Removals,
    prepared: container::Prepared,
}

impl DockerExecutor {
    pub fn new(client: Client, auths: Arc<Auths>) -> Self {
        Self {
            client,
            auths,
            removals: Removals::default(),
            prepared: container::Prepared::default(),
        }
    }
}

impl Executor for DockerExecutor {
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let docker = match self.client.get().await {
                Ok(d) => d,
                Err(e) => return Exit::error(e.to_string()),
            };
            // The backends: a container of this engine, or a job of its swarm. Another
            // cluster is another module with the same `run`.
            match &job.work {
                wharf_engine::Work::Container(c)
                    if c.config.backend == wharf_spec::Backend::Swarm =>
                {
                    swarm::run(docker, &self.auths, job, &self.removals).await
                }
                _ => {
                    let ahead = self.prepared.take(job);
                    container::run(docker, &self.auths, job, &self.removals, ahead).await
                }
            }
        })
    }

    fn prepare(&self, job: StepJob) {
        self.prepared.create(&self.client, job);
    }

    fn discard<'a>(&'a self, run_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.prepared.discard(&self.client, run_id))
    }

    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.removals.wait())
    }
}
