//! What the engine asks of an executor: run one attempt of a step and say how it ended.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs attempts of steps. The local shell executor is one; the Docker executors are the
/// others.
pub trait Executor: Send + Sync {
    /// Runs one attempt. When `job.stop` is cancelled the executor stops the attempt: the
    /// step's signal, then, after `job.grace`, a kill; it returns once the attempt's
    /// processes are gone and its output is in the log files.
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit>;

    /// Gets ready for `job`, the first attempt of a step whose dependencies still run (a
    /// container created while they run). `run` takes what was made when its job turns
    /// out the same; `discard` removes what no attempt took. The default does nothing.
    fn prepare(&self, _job: StepJob) {}

    /// Removes what `prepare` made for the run `run_id` that no attempt took (a step that
    /// never ran, a run stopped); the run calls it before it ends.
    fn discard<'a>(&'a self, _run_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    /// Waits for work an executor finishes after its attempts reported (removing
    /// containers); the run calls it before it ends.
    fn settle(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// The variables of an attempt's process: the step's, which its attempts share, then the
/// attempt's own (its log files); of two of the same name the later one counts.
#[derive(Clone, Debug, Default)]
pub struct StepEnv {
    step: Arc<[(String, String)]>,
    attempt: Vec<(String, String)>,
}

impl StepEnv {
    pub fn new(step: Arc<[(String, String)]>, attempt: Vec<(String, String)>) -> Self {
        Self { step, attempt }
    }

    /// Every variable, in the order they are set.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &(String, String)> {
        self.step.iter().chain(&self.attempt)
    }

    /// The value the process gets for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One attempt of a step, with everything resolved: variables expanded, paths absolute.
pub struct StepJob {
    pub dag_name: String,
    pub step_name: String,
    pub attempt: u32,
    /// Variables for the step's process (on top of the host environment).
    pub env: StepEnv,
    /// `$1`, `$2`, ...
    pub positional: Vec<String>,
    pub dir: PathBuf,
    /// What the attempt runs.
    pub work: Work,
    /// The run's secrets: hidden in the logs and in the `stdout:`/`stderr:` files.
    pub mask: Arc<wharf_spec::env::Mask>,
    /// The attempt's log files.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Keep the first N bytes of stdout (and one more, to tell "too long") in
    /// `Exit::stdout_head`, for `output:` and `continueOn.output`.
    pub capture_stdout: Option<u64>,
    /// The step's `stdout:`/`stderr:` files, written as well as the logs.
    pub redirect_stdout: Option<PathBuf>,
    pub redirect_stderr: Option<PathBuf>,
    /// Cancelled to stop the attempt.
    pub stop: CancellationToken,
    pub signal: Signal,
    pub grace: Duration,
    /// Tells the user something about the attempt that is not its output (a pull).
    pub notice: Arc<dyn Fn(String) + Send + Sync>,
    /// What the attempt is busy with before its command runs (pull progress), shown
    /// beside the running step on a terminal; None when that is over.
    pub activity: Arc<dyn Fn(Option<String>) + Send + Sync>,
    /// Called with the pid (= process group) of the attempt's process once it runs.
    pub on_spawn: Option<Arc<dyn Fn(i32) + Send + Sync>>,
}

impl StepJob {
    /// The step's `stdout:`/`stderr:` files, made empty (their folders created) before
    /// the attempt writes to them.
    pub fn prepare_redirects(&self) -> Result<(), String> {
        for path in [&self.redirect_stdout, &self.redirect_stderr]
            .into_iter()
            .flatten()
        {
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            std::fs::File::create(path).map_err(|e| {
                format!("cannot open {} for the step's output: {e}", path.display())
            })?;
        }
        Ok(())
    }
}

/// How a command is given to the shell.
#[derive(Debug, Clone)]
pub enum Program {
    /// `shell [args] -c LINE $0 $1 ...`.
    Line(String),
    /// `shell [args] FILE $1 ...`: a script written to a file.
    Script(PathBuf),
    /// `FILE $1 ...`: a script with its own `#!` line.
    Executable(PathBuf),
}

/// What an attempt runs: each kind of step its own way.
pub enum Work {
    /// A command through a shell, on the host.
    Host(LocalCommand),
    /// A container of the step's own.
    Container(Box<ContainerJob>),
    /// A program run in the DAG-level container, through `docker exec`.
    Exec(ExecJob),
    /// Another DAG, as one child run or one per `parallel` item.
    SubDag(Arc<crate::subdag::SubDagJob>),
    /// A step wharf runs in its own process (`jq`, `http`, `mail`).
    Builtin(Box<BuiltinJob>),
}

/// A `jq`, `http` or `mail` step, its variables expanded.
#[derive(Debug, Clone)]
pub enum BuiltinJob {
    /// `wait.*`: its texts expanded; relative paths are of `dir`.
    Wait {
        wait: wharf_spec::WaitStep,
        dir: PathBuf,
    },
    /// The filter over the JSON text `input`.
    Jq {
        filter: String,
        input: String,
        raw: bool,
    },
    /// The request `METHOD URL` with its settings.
    Http {
        method: String,
        url: String,
        config: wharf_spec::HttpStep,
    },
    /// The message, through the DAG's `smtp` (None: the DAG has none); attachments are
    /// relative to `dir`.
    Mail {
        smtp: Option<wharf_spec::Smtp>,
        mail: wharf_spec::MailStep,
        dir: PathBuf,
    },
    /// `dag.enqueue`: a run of the DAG in `file` with `params`, put in its queue.
    Enqueue {
        file: PathBuf,
        /// The DAG's name, and the queue its runs wait in (None: not limited);
        /// `queue_given`: the step named it, instead of the DAG's own.
        name: String,
        queue: Option<String>,
        queue_given: bool,
        /// Each run's params: one run, or one per `parallel` item.
        runs: Vec<Vec<String>>,
        /// `parallel`: the result is the runs'.
        parallel: bool,
        /// The installation whose store the run goes to.
        home: PathBuf,
    },
    /// `log.write`, `outputs.write` (into the step's `DAGU_OUTPUT_FILE`) or `noop`, its
    /// strings expanded.
    Emit(wharf_spec::Emit),
    /// A `file.*` action, its strings expanded; relative paths are relative to `dir`.
    File {
        file: wharf_spec::FileStep,
        dir: PathBuf,
    },
    /// An `archive` step (`op`: `create`, `extract` or `list`), its strings expanded;
    /// relative paths are relative to `dir`.
    Archive {
        archive: wharf_spec::ArchiveStep,
        op: String,
        dir: PathBuf,
    },
    /// `router.route`: the value (resolved) and the routes, a `num:` threshold resolved.
    Router {
        value: String,
        routes: Vec<(String, Vec<String>)>,
    },
    /// A `sqlite` or `postgres` step, its strings expanded (the SQL in `sql.query`, None
    /// for an import); relative paths are relative to `dir`.
    Sql {
        sql: wharf_spec::SqlStep,
        dir: PathBuf,
    },
    /// `redis.<command>`: the command and its settings (the DAG's `redis:` under the
    /// step's `with`), strings expanded.
    Redis {
        command: String,
        with: serde_json::Value,
    },
    /// `git.worktree.add`/`remove`, strings expanded, in the repository of `dir`; `run`
    /// and `step` name a branch the step makes when `with` names none.
    GitWorktree {
        add: bool,
        with: serde_json::Map<String, serde_json::Value>,
        dir: PathBuf,
        run: String,
        step: String,
    },
    /// `state.*`: its `with`, strings expanded; `dag` and `root` name the namespaces of
    /// the `dag` and `root_dag` scopes, `by` who writes (a JSON object: DAG, run, step);
    /// the entries are in the store of the installation at `home`.
    State {
        op: wharf_spec::StateOp,
        with: serde_json::Map<String, serde_json::Value>,
        dag: String,
        root: String,
        by: String,
        home: PathBuf,
    },
    /// `s3.*`: the DAG's `s3:` under the step's `with`, strings expanded; local paths are
    /// relative to `dir`.
    S3 {
        op: wharf_spec::S3Op,
        with: serde_json::Map<String, serde_json::Value>,
        dir: PathBuf,
    },
    /// `git.checkout`, its strings expanded; the path is relative to `dir`.
    GitCheckout {
        git: wharf_spec::GitCheckout,
        dir: PathBuf,
    },
    /// `template.render`: the text (a `template_ref` resolved), the data expanded; the
    /// output file is relative to `dir`.
    Template {
        template: wharf_spec::TemplateStep,
        dir: PathBuf,
    },
    /// `data.convert` / `data.pick`, its data expanded; a file is relative to `dir`.
    Data {
        data: wharf_spec::DataStep,
        dir: PathBuf,
    },
    /// `sftp`: `source` copied to `destination` (local to remote when `upload`) over the
    /// connection `config` (the step's `ssh` over the DAG's, expanded); local paths and
    /// key files are relative to `dir`.
    Sftp {
        config: wharf_spec::SshStep,
        upload: bool,
        source: Option<String>,
        destination: Option<String>,
        dir: PathBuf,
    },
    /// `command` (or `script`, fed to the remote shell) on another machine; `config` is
    /// the step's `ssh` over the DAG's, expanded; key files are relative to `dir`.
    Ssh {
        config: wharf_spec::SshStep,
        command: String,
        script: Option<String>,
        dir: PathBuf,
    },
}

/// A mail about a run (`mailOn`, `mailOnError`), made by the engine and sent by a
/// [`Notifier`].
#[derive(Debug, Clone)]
pub struct Notification {
    pub smtp: wharf_spec::Smtp,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// HTML.
    pub body: String,
    pub attachments: Vec<PathBuf>,
}

/// Sends the mail about runs.
pub trait Notifier: Send + Sync {
    fn send<'a>(&'a self, mail: &'a Notification) -> BoxFuture<'a, Result<(), String>>;
}

/// The shell and program of a step on the host.
pub struct LocalCommand {
    /// The shell and its arguments (`["sh"]`, `["bash", "-e"]`).
    pub shell: Vec<String>,
    pub program: Program,
}

/// How an attempt ended.
#[derive(Debug, Clone, Default)]
pub struct Exit {
    /// The exit code, when the process exited.
    pub code: Option<i32>,
    /// The signal that ended the process.
    pub signal: Option<i32>,
    /// The attempt was stopped (stop request or timeout).
    pub stopped: bool,
    /// The attempt could not run, or the executor failed: why.
    pub error: Option<String>,
    /// The start of stdout, when the job asked for it (`capture_stdout`).
    pub stdout_head: Vec<u8>,
    /// The attempt ran another DAG, which stopped to wait for an approval: the step
    /// waits too (it is taken up again with the run).
    pub waiting: bool,
    /// The attempt ran other DAGs, none failed and one partially succeeded: so did the
    /// step (Dagu's node status `partially_succeeded`).
    pub partial: bool,
    /// Where the attempt ran, when not on this machine (`swarm node N, task T`).
    pub ran_on: Option<String>,
}

impl Exit {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn succeeded(&self) -> bool {
        self.code == Some(0) && self.error.is_none() && !self.stopped
    }

    /// The exit code to record: the code, or 128 + the signal, as shells report it.
    pub fn recorded_code(&self) -> Option<i32> {
        self.code.or(self.signal.map(|s| 128 + s))
    }
}

/// What a container step needs beyond a local one.
#[derive(Debug, Clone)]
pub struct ContainerJob {
    /// The step's `executor.config`, strings expanded, volume sources made absolute.
    pub config: wharf_spec::DockerStep,
    /// `command` as argv (a string is split into shell words), expanded; None: the image's
    /// own CMD.
    pub argv: Option<Vec<String>>,
    /// For a list of commands: the ones after the first. The container then stays up and
    /// each command is exec'd into it once the one before it succeeded.
    pub more: Vec<Vec<String>>,
    /// Labels for every container created: the DAG, the run, the step, the owner process.
    pub labels: Vec<(String, String)>,
}

/// What a step in the DAG-level container runs there, through `docker exec`.
#[derive(Debug, Clone)]
pub struct ExecJob {
    /// The program and its arguments, expanded.
    pub argv: Vec<String>,
    /// For a list of commands: the ones after the first, each run once the one before it
    /// succeeded.
    pub more: Vec<Vec<String>>,
    /// Fed to the program's stdin (a `script`).
    pub stdin: Option<String>,
    /// The step's `dir`/`workingDir`, absolute in the container; None: the container's.
    pub working_dir: Option<String>,
}

/// The DAG-level `container` of a run: started before the first step that runs in it,
/// stopped and removed after the last step and handler. Its attempts run through
/// `docker exec`.
pub trait SharedContainer: Executor {
    /// Creates (or finds) and starts the container, and waits until it is ready; the
    /// error says why it is not. Returns early with an error when `setup.stop` is
    /// cancelled.
    fn start<'a>(&'a self, setup: &'a SharedSetup) -> BoxFuture<'a, Result<(), NotReady>>;

    /// Stops and removes the container unless it is kept (`keepContainer`). Called once
    /// the run is over, on every path, whether `start` succeeded or not.
    fn finish(&self) -> BoxFuture<'_, ()>;
}

/// Why the DAG-level container did not become ready (the state it was in, its health, the
/// last lines of its log, or that Docker could not be reached).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

/// The DAG-level container's settings for one run, `${VAR}` expanded.
pub struct SharedSetup {
    pub dag_name: String,
    /// Strings expanded, bind-mount sources absolute.
    pub config: wharf_spec::Container,
    /// `container.env`, expanded.
    pub env: Vec<(String, String)>,
    /// Labels for the container (as for step containers).
    pub labels: Vec<(String, String)>,
    /// The run's log folder: the container's own output goes to `container.stdout` and
    /// `container.stderr` there.
    pub log_dir: std::path::PathBuf,
    /// The run's secrets, hidden in the container's logs.
    pub mask: Arc<wharf_spec::env::Mask>,
    /// The stop grace period (`maxCleanUpTimeSec`), for `startup: entrypoint|command`.
    pub grace: Duration,
    /// Cancelled when the run is stopped (or times out) while the container starts.
    pub stop: CancellationToken,
    pub notice: Arc<dyn Fn(String) + Send + Sync>,
    pub activity: Arc<dyn Fn(Option<String>) + Send + Sync>,
}

/// An executor for steps that cannot run here: every attempt fails with the reason.
pub struct Unavailable(pub String);

impl Executor for Unavailable {
    fn run<'a>(&'a self, _job: &'a StepJob) -> BoxFuture<'a, Exit> {
        let message = self.0.clone();
        Box::pin(async move { Exit::error(message) })
    }
}
