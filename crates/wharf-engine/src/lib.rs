//! wharf's run engine.
//!
//! A run is one [`dispatcher`] that owns the run's state (each step's status, the run's
//! variables and outputs) and reacts to three kinds of events: a step task finished, the
//! run was asked to stop, the run's deadline passed. Each step runs as its own task
//! ([`step`]): preconditions, attempts with retries and repeats, its timeout; an attempt is
//! handed to an [`Executor`] (the local shell executor here, the Docker ones elsewhere).
//! Everything that happens is written to the store as it happens and sent as an [`Event`]
//! to whoever shows progress.

mod condition;
mod dispatcher;
mod executor;
mod installation;
mod local;
mod notify;
mod recorder;
mod resume;
mod spawn;
mod step;
mod subdag;
pub mod task;
mod trace;
mod vars;
mod workspace;
pub use workspace::carry_over;
mod worktrees;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use dispatcher::execute;
pub use executor::{
    BoxFuture, BuiltinJob, ContainerJob, ExecJob, Executor, Exit, LocalCommand, NotReady,
    Notification, Notifier, Program, SharedContainer, SharedSetup, StepEnv, StepJob, Work,
};
pub use installation::{
    GlobalQueue, Installation, dag_files, dags_dir, global_queues, placement, queue_place,
    queue_size_of,
};
pub use local::{LazyLog, LocalExecutor, StepOutput};
pub use resume::{resume_of, resume_step};
pub use subdag::SubDagJob;
use tokio_util::sync::CancellationToken;
pub use trace::{TraceExporter, TraceTarget};
use wharf_spec::Dag;
pub use wharf_store::{RunKey, Status, Store};
pub use worktrees::git;

/// The default grace period between the stop signal and the kill (SPEC §3).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The labels wharf puts on every container it creates, so that `wharf cleanup` can find
/// what a crashed run left behind.
pub mod labels {
    pub const DAG: &str = "wharf.dag";
    pub const RUN: &str = "wharf.run";
    pub const STEP: &str = "wharf.step";
    pub const PID: &str = "wharf.pid";
    pub const PID_START: &str = "wharf.pid-start";
    pub const HOST: &str = "wharf.host";
    /// `true` when the step asked for its container to be removed (`autoRemove`).
    pub const AUTO_REMOVE: &str = "wharf.auto-remove";
    /// `true` on a DAG-level container with `keepContainer: true`: never cleaned up.
    pub const KEEP: &str = "wharf.keep";
    /// The image a DAG-level container was created from, as written.
    pub const IMAGE: &str = "wharf.image";
    /// The step name in the labels of a DAG-level container.
    pub const SHARED_STEP: &str = "(container)";

    /// The labels that tie a container to its run and to the process running it.
    pub fn owner(dag: &str, run_id: &str, step: &str) -> Vec<(String, String)> {
        let pid = std::process::id();
        let start = i32::try_from(pid)
            .ok()
            .and_then(wharf_store::process_start)
            .unwrap_or(0);
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        vec![
            (DAG.to_owned(), dag.to_owned()),
            (RUN.to_owned(), run_id.to_owned()),
            (STEP.to_owned(), step.to_owned()),
            (PID.to_owned(), pid.to_string()),
            (PID_START.to_owned(), start.to_string()),
            (HOST.to_owned(), host),
        ]
    }
}

/// A new run id: a UUID v7 (time-ordered).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether `id` may name a run (it becomes a folder name and a URL path segment).
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}

/// What to run.
pub struct RunRequest {
    pub dag: Arc<Dag>,
    /// The run as created in the store (`Store::create_run`, or reopened for a retry).
    pub run: RunKey,
    pub run_id: String,
    pub log_dir: PathBuf,
    /// Params given for this run (`NAME=value` or positional words).
    pub params: Vec<String>,
    /// A retry: the steps that keep their result, with the outputs they made.
    pub resume: Option<Resume>,
    /// Runs the steps that have a container of their own (`executor: docker`); None when
    /// the caller has no Docker executor (such steps then fail and say so).
    pub docker: Option<Arc<dyn Executor>>,
    /// Runs `jq`, `http` and `mail` steps; None: such steps fail and say so.
    pub builtin: Option<Arc<dyn Executor>>,
    /// Sends the mail about runs (`mailOn`, `mailOnError`); None: none is sent (and the
    /// run log says so when one was asked for).
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Sends the run's trace (`otel`) when it ends; None: none is sent (and the run log
    /// says so when one was asked for). Sub-DAG runs are in their root run's trace.
    pub tracer: Option<Arc<dyn TraceExporter>>,
    /// The DAG-level container, for a DAG that has one; None: its steps fail and say why.
    pub shared: Option<Arc<dyn SharedContainer>>,
    /// Makes the DAG-level container of a sub-DAG run (for sub-DAGs that have one).
    pub new_shared: Option<SharedFactory>,
    /// A sub-DAG run: the DAGs above it and the run at the top.
    pub lineage: Option<Lineage>,
}

/// Makes a DAG-level container executor for one run.
pub type SharedFactory = Arc<dyn Fn() -> Arc<dyn SharedContainer> + Send + Sync>;

/// Where a sub-DAG run sits in its tree.
#[derive(Debug, Clone)]
pub struct Lineage {
    /// The DAGs from the root run's down to the parent's (file and name).
    pub chain: Vec<(PathBuf, String)>,
    /// The run at the top of the tree.
    pub root: RunKey,
}

/// The part of an earlier run that a retry keeps.
#[derive(Debug, Default)]
pub struct Resume {
    /// Steps that keep their status, with it and their exit code.
    pub kept: Vec<(String, Status, Option<i32>)>,
    /// Their outputs: (step, name, key, value, omit).
    pub outputs: Vec<wharf_store::OutputRecord>,
    /// A new run of only some steps (`wharf run --only`): the kept steps were not
    /// selected; they are recorded skipped and hold back none of the selected ones.
    pub only: bool,
}

/// How a run can be stopped from outside.
#[derive(Clone, Default)]
pub struct Control {
    /// Cancelled to stop the run: running steps get their signal, then a kill after the
    /// grace period; handlers still run.
    pub stop: CancellationToken,
    /// Cancelled to stop at once: handlers too, no grace.
    pub force: CancellationToken,
}

/// What happened, for progress displays.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        dag: String,
        run_id: String,
        log_dir: PathBuf,
    },
    StepStarted {
        name: String,
        attempt: u32,
        handler: Option<&'static str>,
    },
    StepFinished(StepReport),
    /// The DAG-level container is being started (`what`: its image or name).
    ContainerStarting {
        what: String,
    },
    /// The DAG-level container is ready, or (error) it is not and the run ends.
    ContainerReady {
        what: String,
        duration: Duration,
        error: Option<String>,
    },
    /// Something worth telling that is not a step's result (a store write failed, ...).
    Notice(String),
    /// What a running step is busy with before its command runs (a pull's progress);
    /// None when it is over. Worth showing only where it can be redrawn.
    Activity {
        name: String,
        text: Option<String>,
    },
    RunFinished {
        status: Status,
        duration: Duration,
        error: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub name: String,
    pub handler: Option<&'static str>,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub attempts: u32,
    pub duration: Duration,
    pub error: Option<String>,
    /// The stderr log of the last attempt (for showing its tail).
    pub stderr: Option<PathBuf>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub status: Status,
    pub duration: Duration,
    pub error: Option<String>,
}

/// The run's handle on the store: writes go through the recorder's thread.
pub type SharedStore = Arc<recorder::Recorder>;
