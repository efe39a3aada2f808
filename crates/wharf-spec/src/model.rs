//! The typed model of a DAG file, after decoding and validation.
//!
//! Strings that may hold `${VAR}` references are kept as written: they are expanded at run
//! time (see [`crate::expand`]), when params, outputs and the environment are known.

use std::path::PathBuf;

use crate::diag::Span;

#[derive(Debug, Clone)]
pub struct Dag {
    /// `name:` or, by default, the file stem.
    pub name: String,
    /// The dialect the file was read in.
    pub dialect: crate::Dialect,
    /// Dagu 2.x `params[].eval`: a param's value made when the run starts (references
    /// and variables put in, commands in backticks or `$(...)` run), unless the run is
    /// given one; its `default` when the commands fail.
    pub param_evals: Vec<(String, String)>,
    /// Dagu 2.x dependencies that references make (`${steps.ID.outputs.NAME}` in a step
    /// of a graph makes it depend on `ID`): producer, consumer, the field, as
    /// `steps[1].run`. They are in the consumer's `depends` too.
    pub inferred: Vec<(String, String, String)>,
    /// Dagu 2.x steps' `dependencies`: the files of the working directory (paths and
    /// globs) copied into the run's own work directory, where its steps run.
    pub dependencies: Vec<String>,
    /// The file the DAG was read from (as given, made absolute).
    pub file: PathBuf,
    pub description: Option<String>,
    pub kind: DagType,
    /// `workingDir` resolved against the file's folder; the file's folder by default.
    pub working_dir: PathBuf,
    pub env: Vec<EnvVar>,
    /// The dotenv files to read, in order; `.env` first unless `dotenv: []`.
    pub dotenv: Vec<String>,
    pub params: Vec<Param>,
    /// `params: {schema, values}`: the schema the params of a run are checked against
    /// (`params` then holds the `values`).
    pub params_schema: Option<crate::params::ParamsSchema>,
    pub steps: Vec<Step>,
    pub handlers: Handlers,
    pub container: Option<Container>,
    pub registry_auths: Option<RegistryAuths>,
    pub preconditions: Vec<Condition>,
    pub timeout_sec: Option<u64>,
    pub delay_sec: Option<u64>,
    pub max_active_steps: Option<usize>,
    pub max_cleanup_time_sec: Option<u64>,
    pub hist_retention_days: Option<u64>,
    /// Dagu 2.6+ `hist_retention_runs`: the newest N runs are kept, older ones removed when
    /// a run starts (runs going on are never removed).
    pub hist_retention_runs: Option<u64>,
    /// Dagu 2.3+ root `retry_policy`: the scheduler runs a failed run again (its failed
    /// steps and what follows them) after a delay, up to `limit` times.
    pub retry: Option<DagRetry>,
    /// Dagu 2.x `catchup_window`: slots missed while no scheduler ran, this far back, are
    /// run when one runs again (one a minute, oldest first).
    pub catchup_window: Option<std::time::Duration>,
    /// Dagu 2.x `overlap_policy`: what a catch-up slot does while the DAG still runs.
    pub overlap_policy: OverlapPolicy,
    pub max_output_size: Option<u64>,
    pub schedule: Schedule,
    pub tags: Vec<String>,
    /// `group`: the heading the DAG is listed under in the web UI and the API.
    pub group: Option<String>,
    pub log_dir: Option<String>,
    pub shell: Option<Vec<String>>,
    /// `logOutput`: where a step's stderr goes, unless the step says otherwise.
    pub log_output: LogOutput,
    /// `skipIfSuccessful`: a scheduled slot starts no run when the DAG succeeded since the
    /// slot before it.
    pub skip_if_successful: bool,
    /// `secrets`: variables whose values are read when a run starts and never shown.
    pub secrets: Vec<Secret>,
    /// `runConfig`: what a run started from the web UI or the API may choose.
    pub run_config: RunConfig,
    /// `smtp`: the server of `mail` steps and notifications.
    pub smtp: Option<Smtp>,
    /// `otel`: where the run's trace goes (None, or not `enabled`: nowhere).
    pub otel: Option<Otel>,
    /// `ssh`: the defaults of `ssh` steps; with it, steps that name no executor run there.
    pub ssh: Option<SshStep>,
    /// Dagu 2.x `redis:`: connection settings every `redis.*` step starts from.
    pub redis: Option<serde_json::Value>,
    /// Dagu 2.x `s3:`: the bucket and connection settings every `s3.*` step starts from.
    pub s3: serde_json::Map<String, serde_json::Value>,
    /// `mailOn`: which ends of the run send a notification.
    pub mail_on: MailOn,
    /// `errorMail`: the notification of a failure (and of a step's `mailOnError`).
    pub error_mail: Option<MailConfig>,
    /// `infoMail`: the notification of a success.
    pub info_mail: Option<MailConfig>,
    /// `waitMail`: the notification of a run waiting for a person.
    pub wait_mail: Option<MailConfig>,
    /// `maxActiveRuns`: how many runs of the DAG (of its `queue`) run at once; more wait,
    /// `queued`. None (or 0 or less): no limit.
    pub max_active_runs: Option<u32>,
    /// `queue`: the named queue the DAG's runs take their place in (with `maxActiveRuns`
    /// as its size, 1 by default).
    pub queue: Option<String>,
    /// `restartWaitSec`: how long `wharf restart` waits between the stop and the start.
    pub restart_wait_sec: Option<u64>,
    /// `workingDir` was written (a sub-DAG without it works where its parent works).
    pub working_dir_set: bool,
    /// The DAGs of the file's later documents (`---`), which `call` names.
    pub locals: Vec<Dag>,
}

/// `runConfig`: limits on runs started from the web UI and the API (the command line,
/// run by the DAG's operators, is not limited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `disableParamEdit`: such runs take the DAG's own params; others are refused.
    pub disable_param_edit: bool,
    /// `disableRunIdEdit`: such runs get a new run id; a chosen one is refused.
    pub disable_run_id_edit: bool,
}

/// One of `secrets`: `name` gets the value that `provider` finds under `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub provider: SecretProvider,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretProvider {
    /// `key` names a variable of wharf's environment.
    Env,
    /// `key` is a file (relative to the DAG's working directory); its content, without
    /// the line break at its end.
    File,
}

impl SecretProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::File => "file",
        }
    }
}

/// `logOutput`: a step's stdout and stderr in two logs (`separate`) or in one (`merged`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOutput {
    #[default]
    Separate,
    Merged,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DagType {
    #[default]
    Chain,
    Graph,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    /// As written; expanded when the run starts.
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// `NAME=value` params are named; the others are positional only.
    pub name: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, Default)]
pub struct Schedule {
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub restart: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Handlers {
    pub init: Option<Box<Step>>,
    pub success: Option<Box<Step>>,
    pub failure: Option<Box<Step>>,
    /// `abort`, or its older name `cancel`.
    pub abort: Option<Box<Step>>,
    pub exit: Option<Box<Step>>,
    /// Runs when the run stops to wait for an approval.
    pub wait: Option<Box<Step>>,
}

impl Handlers {
    /// The handlers that are set, with the name of the event they answer.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Step)> {
        [
            ("init", &self.init),
            ("success", &self.success),
            ("failure", &self.failure),
            ("abort", &self.abort),
            ("wait", &self.wait),
            ("exit", &self.exit),
        ]
        .into_iter()
        .filter_map(|(event, step)| step.as_deref().map(|s| (event, s)))
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    /// The name was made up by wharf (string steps, maps without `name`).
    pub generated_name: bool,
    pub id: Option<String>,
    pub description: Option<String>,
    /// `dir` / `workingDir`, as written.
    pub dir: Option<String>,
    pub command: Option<CommandSpec>,
    pub script: Option<String>,
    pub shell: Option<Vec<String>>,
    /// `shellPackages`: what `nix-shell` makes available to the step (`-p` each).
    pub shell_packages: Vec<String>,
    /// `call` (or `run`): the step runs another DAG as a child run (or one per item).
    pub call: Option<Box<Call>>,
    pub env: Vec<EnvVar>,
    /// The step's dependencies after the chain/graph rules are applied.
    pub depends: Vec<String>,
    /// Boxed, as most steps have none: a DAG of thousands of steps holds them all.
    pub output: Option<Box<Output>>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// `continueOn`; None when it lets nothing go on ([`Step::continue_on`] reads it).
    pub continue_on: Option<Box<ContinueOn>>,
    pub retry: Option<Box<RetryPolicy>>,
    pub repeat: Option<Box<RepeatPolicy>>,
    pub preconditions: Vec<Condition>,
    pub timeout_sec: Option<u64>,
    pub signal_on_stop: Option<Signal>,
    /// The step's own `logOutput`; the DAG's when `None`.
    pub log_output: Option<LogOutput>,
    pub executor: Executor,
    /// `mailOnError`: a failure of this step sends the `errorMail` notification.
    pub mail_on_error: bool,
    /// Dagu 2.x `approval`: once the step succeeds, the run waits for a person to approve
    /// it (its inputs become variables of the steps after it) or reject it.
    pub approval: Option<Box<Approval>>,
    /// Dagu 2.x `outputs`: the values the step publishes through `DAGU_OUTPUT_FILE`, for
    /// `${steps.ID.outputs.NAME}` in the steps after it.
    pub outputs: Vec<DeclaredOutput>,
    /// Dagu 2.x object-form `output` and `stdout.outputs`: values published once the step
    /// succeeded.
    pub publish: Option<Box<Publish>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// A string: shell words, run through the shell on the host.
    Line(String),
    /// A list (Dagu 1.29+): several commands, run one after the other in the step; the
    /// first that fails fails the step.
    Lines(Vec<String>),
    /// A command with its `args`: argv as given.
    Argv(Vec<String>),
}

impl CommandSpec {
    /// The command as one line of shell words (list items are quoted as needed).
    pub fn to_line(&self) -> String {
        match self {
            Self::Line(line) => line.clone(),
            Self::Lines(lines) => lines.join(" && "),
            Self::Argv(argv) => shell_words::join(argv),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub name: String,
    /// The key in the run's outputs; the name by default.
    pub key: Option<String>,
    pub omit: bool,
}

impl Step {
    /// What lets the run go on past this step (nothing, when it has no `continueOn`).
    pub fn continue_on(&self) -> &ContinueOn {
        static NOTHING: ContinueOn = ContinueOn {
            failure: false,
            skipped: false,
            exit_codes: Vec::new(),
            output: Vec::new(),
            mark_success: false,
        };
        self.continue_on.as_deref().unwrap_or(&NOTHING)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContinueOn {
    pub failure: bool,
    pub skipped: bool,
    pub exit_codes: Vec<i32>,
    /// Texts (or `re:` regexes) that, found in the output, let the run go on.
    pub output: Vec<String>,
    pub mark_success: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub limit: u32,
    pub interval_sec: u64,
    /// Exit codes that trigger a retry; all non-zero ones when empty.
    pub exit_codes: Vec<i32>,
    pub backoff: Option<f64>,
    pub max_interval_sec: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatMode {
    /// `repeat: true`: repeat until the limit (or forever).
    Always,
    /// Repeat while the condition holds (or while the exit code is one of `exitCode`).
    While,
    /// Repeat until the condition holds (or until the exit code is one of `exitCode`).
    Until,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RepeatPolicy {
    pub mode: RepeatMode,
    pub interval_sec: u64,
    pub limit: Option<u32>,
    pub condition: Option<String>,
    pub expected: Option<String>,
    pub exit_codes: Vec<i32>,
    pub backoff: Option<f64>,
    pub max_interval_sec: Option<u64>,
}

/// A precondition: a command that must succeed, or a value (`condition`, evaluated with
/// `${VAR}` and backticks) that must match `expected` (text, or a regex with `re:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Command {
        command: String,
        negate: bool,
        /// Dagu 2.x: its references are put in before the shell runs it.
        resolved: bool,
    },
    Match {
        condition: String,
        expected: String,
        negate: bool,
        how: MatchHow,
    },
}

/// How a condition's value is made before it is compared with `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchHow {
    /// Dagu 1.x: variables expanded, backticks run; `expected` expanded too.
    #[default]
    Expanded,
    /// Dagu 2.x `condition`: only its references put in (`$NAME`, `$(...)` and backticks
    /// are text); `expected` literal.
    Resolved,
    /// Dagu 2.x `eval`: references, then variables, then its commands (backticks, as
    /// `$(...)` is rewritten) run; `expected` literal.
    Evaluated,
}

/// A signal named in the file (`SIGTERM`, `TERM`, `15`), kept as its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub number: i32,
    pub name: &'static str,
}

#[derive(Debug, Clone)]
pub enum Executor {
    /// On the host through the shell (or in the DAG-level container, when the DAG has one
    /// and the executor was not named explicitly).
    Local {
        explicit: bool,
    },
    Docker(Box<DockerStep>),
    /// `hitl`: the step waits for a person to approve or reject it.
    Approval(Box<Approval>),
    /// `jq`: a filter (`command`) over JSON (`script`), run in the engine.
    Jq(Box<JqStep>),
    /// `http`: a request (`command: METHOD URL`), sent by the engine.
    Http(Box<HttpStep>),
    /// `mail`: a message sent through the DAG's `smtp` server.
    Mail(Box<MailStep>),
    /// `ssh`: the command runs on another machine (the DAG's `ssh` under the step's own).
    Ssh(Box<SshStep>),
    /// Dagu 2.x `file.*` actions: an operation on local files, done by the engine.
    File(Box<FileStep>),
    /// `archive` (`action: archive.*`): a zip, tar or tar.gz archive made, unpacked or
    /// listed by the engine (`command: create`, `extract` or `list`).
    Archive(Box<ArchiveStep>),
    /// Dagu 2.x `dag.enqueue`: a run of another DAG put in its queue, not waited for.
    Enqueue(Box<EnqueueStep>),
    /// Dagu 2.x `log.write`, `outputs.write` and `noop`: done by the engine.
    Emit(Box<Emit>),
    /// Dagu 2.x `wait.*`: the step waits, in wharf, for a time, a file or an HTTP answer.
    Wait(Box<WaitStep>),
    /// `type: sqlite` / `type: postgres` (`action: sqlite.query`, `postgres.import`, …):
    /// SQL run, or a file imported, by the engine over its own connection.
    Sql(Box<SqlStep>),
    /// Dagu 2.x `redis.<command>`: one command (or a pipeline, or a Lua script) sent to
    /// a Redis server by the engine.
    Redis(Box<RedisStep>),
    /// Dagu 2.x `git.checkout`: a repository cloned, or fetched and checked out, at a path.
    GitCheckout(Box<GitCheckout>),
    /// Dagu 2.x `template.render`: a Go text/template rendered by the engine.
    Template(Box<TemplateStep>),
    /// Dagu 2.x `data.convert` and `data.pick`: structured data re-encoded, or a value
    /// picked out of it, by the engine.
    Data(Box<DataStep>),
    /// `type: sftp` (`action: sftp.upload`, `sftp.download`): a file or folder copied to or
    /// from another machine over SSH.
    Sftp(Box<SftpStep>),
    /// Dagu 2.x `router.route`: its targets (which depend on it) run when their pattern
    /// matches the value; the step itself reports the decision.
    Router(Box<RouterStep>),
    /// Dagu 2.x `human.task`: the step runs nothing; it waits for a person to complete
    /// it (`wharf human-task complete`, the web UI), with the answers its form asks for.
    HumanTask(Box<HumanTask>),
    /// Dagu 2.x `s3.upload`, `s3.download`, `s3.list`, `s3.delete`: objects moved to, from
    /// or within an S3-compatible store by the engine.
    S3(Box<S3Step>),
    /// Dagu 2.x `git.worktree.add` and `git.worktree.remove`: a linked worktree of the
    /// repository the step's working directory is in, made or removed by `git`.
    GitWorktree(Box<GitWorktree>),
    /// Dagu 2.x `state.get`, `state.set`, `state.delete`, `state.list`, `state.diff`: JSON
    /// values kept across runs in the installation's store.
    State(Box<StateStep>),
}

/// A `state.*` action and its `with` (snake_case keys; strings may hold variables).
#[derive(Debug, Clone, PartialEq)]
pub struct StateStep {
    pub op: StateOp,
    pub with: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateOp {
    Get,
    Set,
    Delete,
    List,
    Diff,
}

impl StateOp {
    pub const ALL: [Self; 5] = [Self::Get, Self::Set, Self::Delete, Self::List, Self::Diff];

    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::List => "list",
            Self::Diff => "diff",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The keys of its `with` besides `scope` and `namespace` (snake_case).
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Get => &["key", "default", "required"],
            Self::Set => &["key", "value", "expected_version", "create_only"],
            Self::Delete => &["key"],
            Self::List => &["prefix", "limit", "include_values"],
            Self::Diff => &["key", "value", "expected_version", "update"],
        }
    }

    /// The fields of its result, each an output of the step.
    pub fn outputs(self) -> &'static [&'static str] {
        match self {
            Self::Get => &[
                "operation",
                "scope",
                "namespace",
                "key",
                "found",
                "version",
                "hash",
                "value",
            ],
            Self::Set => &[
                "operation",
                "scope",
                "namespace",
                "key",
                "version",
                "hash",
                "created",
            ],
            Self::Delete => &["operation", "scope", "namespace", "key", "deleted"],
            Self::List => &["operation", "scope", "namespace", "prefix", "entries"],
            Self::Diff => &[
                "operation",
                "scope",
                "namespace",
                "key",
                "changed",
                "foundPrevious",
                "previousVersion",
                "version",
                "hash",
                "previous",
                "current",
            ],
        }
    }
}

/// `git.worktree.add` (`add`) or `git.worktree.remove` and its `with` (snake_case keys,
/// strings may hold variables).
#[derive(Debug, Clone, PartialEq)]
pub struct GitWorktree {
    pub add: bool,
    pub with: serde_json::Map<String, serde_json::Value>,
}

/// An `s3.*` action and its `with` (snake_case keys, strings may hold variables), read
/// over the DAG's `s3:` when the step runs.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Step {
    pub op: S3Op,
    pub with: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Op {
    Upload,
    Download,
    List,
    Delete,
}

impl S3Op {
    pub fn name(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Download => "download",
            Self::List => "list",
            Self::Delete => "delete",
        }
    }
}

/// `action: human.task` and its `with`: what the person is asked (variables resolved
/// when the task opens) and, if anything is to be given, the form of the answer. Each
/// field of the form is an output of the step, `${steps.ID.outputs.FIELD}`.
#[derive(Debug, Clone, PartialEq)]
pub struct HumanTask {
    pub prompt: String,
    pub form: Option<crate::form::Form>,
}

/// `action: redis.<command>` and its `with`, as written (strings may hold variables): the
/// step's connection settings over the DAG's `redis:`, read when the step runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisStep {
    /// The command, upper case (`GET`, `HSET`).
    pub command: String,
    pub with: serde_json::Map<String, serde_json::Value>,
}

/// `action: git.checkout` and its `with`. Strings may hold variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GitCheckout {
    /// A URL or a local path.
    pub repository: String,
    /// Where the checkout is (relative to the step's working directory).
    pub path: String,
    /// A branch, a tag or a commit; the repository's default branch when None.
    pub reference: Option<String>,
    /// Commits of history fetched (0: all).
    pub depth: u64,
    /// Local changes at `path` are discarded rather than failing the step.
    pub force: bool,
    /// HTTPS: a token, or a user name and password.
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// SSH: a private key file.
    pub ssh_key_path: Option<String>,
}

/// `action: template.render` and its `with`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateStep {
    /// The template's text (never expanded: only its `{{ }}` are evaluated), or
    /// `template_ref`: one `${...}` reference whose value is the text.
    pub template: Option<String>,
    pub template_ref: Option<String>,
    /// What the template sees as `.`; its strings are expanded.
    pub data: serde_json::Value,
    /// A file the result goes to (relative to the step's working directory), not stdout.
    pub output: Option<String>,
}

/// A format `data.convert` and `data.pick` read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Json,
    Yaml,
    Csv,
    Tsv,
    Text,
}

impl DataFormat {
    pub const ALL: [(&'static str, DataFormat); 5] = [
        ("json", DataFormat::Json),
        ("yaml", DataFormat::Yaml),
        ("csv", DataFormat::Csv),
        ("tsv", DataFormat::Tsv),
        ("text", DataFormat::Text),
    ];
}

/// Where `data.*` reads its data.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// `with.data` as text, parsed as `from` says.
    Text(String),
    /// `with.data` written as YAML structure (for `json`/`yaml`: used as it is).
    Value(serde_json::Value),
    /// `with.input`: a file (relative to the step's working directory).
    File(String),
}

/// `action: data.convert` / `data.pick` and its `with`. Strings may hold variables.
#[derive(Debug, Clone, PartialEq)]
pub struct DataStep {
    /// `data.pick` (else `data.convert`).
    pub pick: bool,
    pub from: DataFormat,
    /// What is written (`data.pick`: JSON unless set).
    pub to: Option<DataFormat>,
    pub source: DataSource,
    /// `data.pick`: a jq path (`.a.b[0]`).
    pub select: Option<String>,
    /// `data.pick`: the value as plain text, not encoded.
    pub raw: bool,
    /// CSV/TSV input: the first line names the columns (true unless set false).
    pub has_header: bool,
    /// CSV/TSV output: a first line with the columns' names (true unless set false).
    pub headers: bool,
    pub delimiter: Option<char>,
    /// CSV/TSV: the columns' names (input without a header) or order (output).
    pub columns: Vec<String>,
}

/// `type: sftp` and its `config`: the connection (as an `ssh` step's, the DAG's `ssh`
/// under the step's own) and what goes where. Strings may hold variables.
#[derive(Debug, Clone, Default)]
pub struct SftpStep {
    pub ssh: SshStep,
    /// Local `source` to remote `destination`; else remote to local.
    pub upload: bool,
    /// A file or a folder (copied whole); local paths are relative to the step's working
    /// directory. A missing one fails the step when it runs.
    pub source: Option<String>,
    pub destination: Option<String>,
}

/// `action: router.route` and its `with`.
#[derive(Debug, Clone, Default)]
pub struct RouterStep {
    /// What the patterns are matched against; references are put in when it runs.
    pub value: String,
    /// Each pattern (an exact text, `re:REGEX` or `num:OP NUMBER`) with the steps it
    /// sends the run to, as written.
    pub routes: Vec<(String, Vec<String>)>,
}

/// `overlap_policy`: what a catch-up slot does when a run of the DAG is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverlapPolicy {
    /// It is dropped (recorded as skipped), and the next one is taken at the next tick.
    #[default]
    Skip,
    /// It waits for the next tick.
    All,
    /// Only the newest missed slot is caught up, waiting like `all`.
    Latest,
}

/// A DAG's own `retry_policy` (not a step's): how the scheduler retries its failed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DagRetry {
    /// Retries the scheduler makes at most (0: none).
    pub limit: u64,
    /// Seconds after the failure before the first retry (60 unless set).
    pub interval_sec: u64,
    /// Each next delay is the last times this (1: the same delay every time).
    pub backoff: f64,
    /// The longest delay, in seconds (3600 unless set).
    pub max_interval_sec: u64,
}

impl DagRetry {
    /// The delay before retry number `done + 1`, in seconds.
    pub fn delay_sec(&self, done: u64) -> u64 {
        let factor = self.backoff.powi(i32::try_from(done).unwrap_or(i32::MAX));
        let delay = (self.interval_sec as f64) * factor;
        if !delay.is_finite() || delay >= self.max_interval_sec as f64 {
            self.max_interval_sec
        } else {
            delay.round() as u64
        }
    }
}

/// The database a SQL step talks to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqlEngine {
    #[default]
    Sqlite,
    Postgres,
}

impl SqlEngine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How a SQL step writes the rows its statements return.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SqlFormat {
    /// One JSON object a row, a line each.
    #[default]
    Jsonl,
    /// One JSON array of the rows.
    Json,
    /// Comma-separated values (a header line with `headers: true`).
    Csv,
}

/// A SQL step's parameters: a list bound in order (`?` for SQLite, `$1`… for PostgreSQL)
/// or a mapping bound by name (`:name`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SqlParams {
    #[default]
    None,
    Positional(Vec<serde_json::Value>),
    Named(Vec<(String, serde_json::Value)>),
}

/// `type: sqlite` / `type: postgres` and its `config` (`with` of `action: sqlite.*`,
/// `postgres.*`). Strings may hold variables; relative paths are of the step's working
/// directory.
#[derive(Debug, Clone, Default)]
pub struct SqlStep {
    pub engine: SqlEngine,
    /// The SQL (`command`, `script` or `with.query`): one statement or several, each
    /// ended by `;`. None for an import.
    pub query: Option<String>,
    /// The connection string; a missing one fails the step when it runs.
    pub dsn: Option<String>,
    pub params: SqlParams,
    /// Seconds the statements (or the import) may take: 60 unless set.
    pub timeout: u64,
    /// The statements in one transaction, rolled back when one fails.
    pub transaction: bool,
    /// `default`, `read_committed`, `repeatable_read` or `serializable`.
    pub isolation_level: Option<String>,
    pub format: SqlFormat,
    /// CSV: a first line with the columns' names.
    pub headers: bool,
    /// CSV: what a NULL is written as (nothing unless set).
    pub null_string: Option<String>,
    /// Rows written at most (0: all); the statements still run whole.
    pub max_rows: u64,
    /// The rows go to this file instead of stdout.
    pub output_file: Option<String>,
    /// PostgreSQL: a named advisory lock held while the statements run.
    pub advisory_lock: Option<String>,
    /// SQLite: an exclusive lock on `DATABASE.lock` held while connected.
    pub file_lock: bool,
    /// SQLite: `:memory:` opened in shared-cache mode.
    pub shared_memory: bool,
    pub import: Option<Box<SqlImport>>,
}

/// What an import does when a row is already there (its key taken).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnConflict {
    #[default]
    Error,
    Ignore,
    Replace,
}

/// `import:` of a SQL step: a CSV, TSV or JSONL file loaded into a table.
#[derive(Debug, Clone, Default)]
pub struct SqlImport {
    pub input_file: String,
    pub table: String,
    /// `csv`, `tsv` or `jsonl`; else from the file's extension.
    pub format: Option<String>,
    /// CSV/TSV: the first line names the columns (true unless set false).
    pub has_header: bool,
    /// CSV/TSV: one character; `,` for CSV and a tab for TSV unless set.
    pub delimiter: Option<String>,
    /// The table's columns the fields go to (else the header's, or the table's order).
    pub columns: Vec<String>,
    /// Field texts read as NULL (`""`, `NULL`, `null`, `\\N` unless set).
    pub null_values: Option<Vec<String>>,
    /// Rows a single INSERT carries (1000 unless set).
    pub batch_size: u64,
    pub on_conflict: OnConflict,
    /// PostgreSQL: the column(s) of the unique key a conflict is on.
    pub conflict_target: Option<String>,
    /// PostgreSQL, `on_conflict: replace`: the columns updated (all imported ones unless set).
    pub update_columns: Vec<String>,
    /// Data rows skipped first.
    pub skip_rows: u64,
    /// Data rows imported at most (0: all).
    pub max_rows: u64,
    /// Rows read and counted, nothing written.
    pub dry_run: bool,
}

/// What a `wait.*` step waits for. Texts may hold variables; durations are Go's
/// (`500ms`, `30s`, `1m30s`).
#[derive(Debug, Clone)]
pub enum WaitStep {
    /// `wait.duration`: `with.duration`.
    Duration(String),
    /// `wait.until`: an RFC 3339 time (one in the past ends the step at once).
    Until(String),
    /// `wait.file`: until `path` (relative to the step's working directory) exists, or
    /// with `state: missing`, is gone; looked at every `poll_interval`.
    File {
        path: String,
        missing: bool,
        poll: String,
    },
    /// `wait.http`: until `url` answers with `status`, asked every `poll_interval`, each
    /// request given `request_timeout`; no answer or another status is "not yet".
    Http(Box<WaitHttp>),
}

#[derive(Debug, Clone)]
pub struct WaitHttp {
    pub method: String,
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub poll: String,
    pub request_timeout: String,
}

/// What an `Emit` step does.
#[derive(Debug, Clone)]
pub enum Emit {
    /// `log.write`: the message on stdout (with a newline at its end).
    Log(String),
    /// `outputs.write`: each value published as the step's output of that name.
    Outputs(Vec<(String, String)>),
    /// `noop`: nothing; it succeeds.
    Noop,
}

/// `action: dag.enqueue` and its `with`: the DAG and the params of its run.
#[derive(Debug, Clone, Default)]
pub struct EnqueueStep {
    /// A DAG's name in the DAGs folder, or a file path (relative to this file's folder).
    pub dag: String,
    pub params: CallParams,
    /// `parallel`: one run enqueued per item (`${ITEM}` in `params`).
    pub parallel: Option<Parallel>,
    /// `queue`: the queue the runs wait in, instead of their DAG's own.
    pub queue: Option<String>,
}

/// `type: archive` (`action: archive.OP`) and its `config`: paths relative to the step's
/// working directory; every string may hold variables.
#[derive(Debug, Clone, Default)]
pub struct ArchiveStep {
    /// The archive (extract, list), or the file or folder to put in one (create).
    pub source: Option<String>,
    /// The folder to extract into (the working directory when none), or the archive made.
    pub destination: Option<String>,
    /// `zip`, `tar` or `tar.gz` (`tgz`); else from the destination's name (create) or
    /// the archive's first bytes (extract, list).
    pub format: Option<String>,
    /// `compressionLevel`: 0 (none) to 9 (most); -1 or none: the library's default.
    pub compression_level: Option<i64>,
    pub overwrite: bool,
    /// `stripComponents`: leading folders dropped from each entry's path (extract).
    pub strip_components: usize,
    /// `preservePaths: false`: every file lands in the destination by its own name.
    pub preserve_paths: bool,
    /// Globs over entry paths (`**` any folders, `*` and `?` within one).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// Create: a symbolic link's target goes in, not the link.
    pub follow_symlinks: bool,
    /// Every entry read back whole (after create; before extract and list).
    pub verify_integrity: bool,
    /// Counts reported, nothing written.
    pub dry_run: bool,
    /// A file that cannot be extracted or added is reported in `errors`, the rest goes on.
    pub continue_on_error: bool,
    /// Each entry named on stderr as it is handled.
    pub verbose: bool,
}

/// `action: file.OP` and its `with`: paths relative to the step's working directory.
#[derive(Debug, Clone, Default)]
pub struct FileStep {
    pub op: FileOp,
    /// `artifact.*`: paths are in the run's artifacts folder, and may not leave it.
    pub artifact: bool,
    pub path: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub content: Option<String>,
    /// Permission bits, written in octal (`"0640"`).
    pub mode: Option<u32>,
    pub overwrite: bool,
    /// Write to a file beside it, then rename (true unless set false).
    pub atomic: bool,
    pub create_dirs: bool,
    pub dry_run: bool,
    /// `file.read` with `format: json`: the content with its metadata.
    pub json: bool,
    /// `file.read`: a larger file fails (0: no limit).
    pub max_bytes: u64,
    pub missing_ok: bool,
    pub recursive: bool,
    /// `file.list`: a glob over the paths below `path`.
    pub pattern: Option<String>,
    pub include_dirs: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileOp {
    #[default]
    Stat,
    Read,
    Write,
    Copy,
    Move,
    Delete,
    Mkdir,
    List,
}

impl FileOp {
    pub const ALL: [(&'static str, FileOp); 8] = [
        ("stat", FileOp::Stat),
        ("read", FileOp::Read),
        ("write", FileOp::Write),
        ("copy", FileOp::Copy),
        ("move", FileOp::Move),
        ("delete", FileOp::Delete),
        ("mkdir", FileOp::Mkdir),
        ("list", FileOp::List),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("stat", |(n, _)| n)
    }
}

/// `type: ssh` (and the DAG-level `ssh:`): where and as whom a command runs. A step's
/// keys win over the DAG's.
#[derive(Debug, Clone, Default)]
pub struct SshStep {
    pub user: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// A private key file; the usual ones in `~/.ssh` when neither it nor `password` is set.
    pub key: Option<String>,
    pub password: Option<String>,
    /// Check the server's key against `knownHostFile` (true unless set false).
    pub strict_host_key: Option<bool>,
    pub known_host_file: Option<String>,
    /// The remote shell a `script` is fed to (`sh` by default).
    pub shell: Option<String>,
}

impl SshStep {
    /// `self` with the keys it does not set taken from `defaults` (the DAG's `ssh`).
    pub fn over(&self, defaults: Option<&SshStep>) -> SshStep {
        let Some(d) = defaults else {
            return self.clone();
        };
        SshStep {
            user: self.user.clone().or_else(|| d.user.clone()),
            host: self.host.clone().or_else(|| d.host.clone()),
            port: self.port.or(d.port),
            key: self.key.clone().or_else(|| d.key.clone()),
            password: self.password.clone().or_else(|| d.password.clone()),
            strict_host_key: self.strict_host_key.or(d.strict_host_key),
            known_host_file: self
                .known_host_file
                .clone()
                .or_else(|| d.known_host_file.clone()),
            shell: self.shell.clone().or_else(|| d.shell.clone()),
        }
    }
}

impl Executor {
    /// Whether the engine runs the step itself (no process, no container).
    pub fn is_builtin(&self) -> bool {
        matches!(
            self,
            Self::Jq(_)
                | Self::Http(_)
                | Self::Mail(_)
                | Self::Ssh(_)
                | Self::File(_)
                | Self::Archive(_)
                | Self::Enqueue(_)
                | Self::Emit(_)
                | Self::Wait(_)
                | Self::Sql(_)
                | Self::Data(_)
                | Self::Template(_)
                | Self::GitCheckout(_)
                | Self::Redis(_)
                | Self::Sftp(_)
                | Self::Router(_)
                | Self::S3(_)
                | Self::GitWorktree(_)
                | Self::State(_)
        )
    }
}

/// `type: jq`: its options.
#[derive(Debug, Clone, Default)]
pub struct JqStep {
    /// `raw: true`: strings printed without quotes (`jq -r`).
    pub raw: bool,
}

/// `type: http`: the request beyond its method and URL (`command`).
#[derive(Debug, Clone, Default)]
pub struct HttpStep {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
    /// Seconds until the whole exchange is given up (no limit when None).
    pub timeout: Option<u64>,
    /// Only the body on a success (the status line and headers too otherwise).
    pub silent: bool,
    /// The answer as JSON: `{status_code, headers, body}` (`json: true` or `format: json`).
    pub json: bool,
    /// The request and the answer's head written to stderr.
    pub debug: bool,
    /// TLS certificates are not checked.
    pub skip_tls_verify: bool,
}

/// `type: mail`: the message.
#[derive(Debug, Clone, Default)]
pub struct MailStep {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub message: String,
    /// Files attached (relative to the step's working directory).
    pub attachments: Vec<String>,
}

/// `smtp:`: the server mail goes through.
#[derive(Debug, Clone, Default)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// `errorMail:` / `infoMail:`: who a notification goes to.
#[derive(Debug, Clone, Default)]
pub struct MailConfig {
    pub from: String,
    pub to: Vec<String>,
    /// Put before the subject (`[ALERT]`).
    pub prefix: String,
    /// The steps' logs attached.
    pub attach_logs: bool,
}

/// What a Dagu 2.x step publishes once it succeeded, each value also readable as
/// `${steps.ID.outputs.NAME}`.
#[derive(Debug, Clone, Default)]
pub struct Publish {
    /// Object-form `output`: the whole object is `${ID.output}` (its fields
    /// `${ID.output.NAME...}`); kept with the step, not among the run's outputs.
    pub output: Vec<(String, Published)>,
    /// `stdout.outputs`: the step's outputs for the run and its caller (`${ID.outputs.NAME}`).
    pub outputs: Vec<(String, Published)>,
    /// `stdout.outputs: {decode: json}` without `fields`: every key of the decoded object
    /// is an output.
    pub outputs_all: Option<Decode>,
}

impl Publish {
    /// Whether the step publishes an output of this name (any name when it publishes
    /// every key of its stdout).
    pub fn names(&self, name: &str) -> bool {
        self.outputs_all.is_some()
            || self
                .output
                .iter()
                .chain(&self.outputs)
                .any(|(n, _)| n == name)
    }

    /// Whether any value is read from the step's stdout.
    pub fn reads_stdout(&self) -> bool {
        self.outputs_all.is_some()
            || self.output.iter().chain(&self.outputs).any(|(_, p)| {
                matches!(
                    p,
                    Published::From {
                        from: PublishFrom::Stdout,
                        ..
                    }
                )
            })
    }
}

/// One published value: written in the file (its strings expanded), or read from what the
/// step left.
#[derive(Debug, Clone)]
pub enum Published {
    Value(serde_json::Value),
    From {
        from: PublishFrom,
        decode: Decode,
        /// A path into the decoded value (`.a.b[0]`); the whole value when empty.
        select: Vec<PathPart>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishFrom {
    Stdout,
    Stderr,
    /// A file, relative to the step's working directory (variables expanded).
    File(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    Text,
    Json,
    Yaml,
}

/// A part of a `select` path: a field, or an index into a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    Field(String),
    Index(usize),
}

/// A value a step publishes through `DAGU_OUTPUT_FILE` (Dagu 2.x `outputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredOutput {
    pub name: String,
    /// `type: json`: the value must be JSON.
    pub json: bool,
}

/// `otel`: the run's trace (a span for the run, one for each step, a sub-DAG's run under
/// its step), sent over OTLP to a collector when the run ends. Strings may hold
/// variables, resolved with the run's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Otel {
    pub enabled: bool,
    /// `host:port` (OTLP over gRPC), or an `http(s)://` URL ending in `/v1/traces` (OTLP
    /// over HTTP).
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    /// gRPC without TLS; over HTTPS, a certificate that is not checked.
    pub insecure: bool,
    pub timeout: Option<std::time::Duration>,
    /// Resource attributes (`service.name` is `dagu-NAME` unless given).
    pub resource: Vec<(String, serde_json::Value)>,
}

/// `mailOn:`: when the run sends a notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailOn {
    pub failure: bool,
    pub success: bool,
    /// The run waits for a person (a `hitl` step): `waitMail` is sent.
    pub wait: bool,
}

/// `type: hitl`: what the person is asked, and the inputs they give.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    pub prompt: Option<String>,
    /// Inputs the person may give; each becomes a variable of the steps after it.
    pub input: Vec<String>,
    /// Inputs an approval must have.
    pub required: Vec<String>,
}

/// `executor: {type: docker, config: {...}}`.
#[derive(Debug, Clone, Default)]
pub struct DockerStep {
    pub image: Option<String>,
    pub container_name: Option<String>,
    pub pull: PullPolicy,
    pub auto_remove: bool,
    pub platform: Option<Platform>,
    pub working_dir: Option<String>,
    pub volumes: Vec<Volume>,
    /// Raw Docker API objects, keys in the API's casing.
    pub container: serde_json::Map<String, serde_json::Value>,
    pub host: serde_json::Map<String, serde_json::Value>,
    pub network: serde_json::Map<String, serde_json::Value>,
    pub exec: ExecOptions,
    /// The container's `shell` (Dagu 2.x): a command line runs as its last argument
    /// (`[sh, -c]`), not split into words.
    pub shell: Vec<String>,
    /// Where the container runs: the step's `backend`, else the DAG's, else the
    /// installation's (`docker.backend`), else the local engine.
    pub backend: Backend,
    /// `placement` and `resources`: what a Swarm job is given.
    pub swarm: SwarmSettings,
}

/// Where a step's container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The Docker engine wharf talks to (`DOCKER_HOST`, the context, the local socket).
    #[default]
    Local,
    /// A job of the swarm that engine manages (a `replicated-job` service).
    Swarm,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Swarm => "swarm",
        }
    }
}

/// What a step on the Swarm backend asks of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmSettings {
    /// `placement.constraints`: `node.labels.gpu == true`, `node.role != manager`, ...
    pub constraints: Vec<String>,
    /// `placement.preferences`: spread descriptors (`node.labels.zone`).
    pub spread: Vec<String>,
    /// `resources.limits` and `resources.reservations`.
    pub limits: Amount,
    pub reservations: Amount,
}

/// An amount of memory (bytes) and CPU (billionths of a CPU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub env: Vec<EnvVar>,
    pub privileged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    Always,
    #[default]
    Missing,
    Never,
    /// Dagu 2.x `fallback`: pulled as with `always`; when the pull fails, the local image
    /// is used if there is one.
    Fallback,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::Missing => "missing",
            Self::Never => "never",
            Self::Fallback => "fallback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The DAG-level `container`.
#[derive(Debug, Clone, Default)]
pub struct Container {
    /// Exec into this existing container instead of creating one.
    pub exec: Option<String>,
    pub name: Option<String>,
    pub image: Option<String>,
    pub pull_policy: PullPolicy,
    pub env: Vec<EnvVar>,
    pub volumes: Vec<Volume>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub platform: Option<Platform>,
    pub ports: Vec<PortMapping>,
    pub network: Option<Network>,
    pub startup: Startup,
    pub command: Vec<String>,
    pub wait_for: WaitFor,
    pub log_pattern: Option<String>,
    pub restart_policy: Option<RestartPolicy>,
    pub keep_container: bool,
    /// `shell` (Dagu 2.x): the steps' command lines run as its last argument (`[sh,
    /// -c]`; a lone program gets `-c`), not split into words.
    pub shell: Vec<String>,
    /// `healthcheck` (Dagu 2.x): the container's own, over the image's.
    pub healthcheck: Option<Healthcheck>,
}

/// A container's healthcheck, as Docker takes it: `test` (`[NONE]`, `[CMD, prog, args...]`
/// or `[CMD-SHELL, line]`) and its timing (None: Docker's default, or the image's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Option<std::time::Duration>,
    pub timeout: Option<std::time::Duration>,
    pub start_period: Option<std::time::Duration>,
    pub retries: Option<u32>,
}

impl Healthcheck {
    /// Docker's `HealthConfig` (durations in nanoseconds).
    pub fn to_docker(&self) -> serde_json::Value {
        let ns = |d: Option<std::time::Duration>| {
            d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        };
        let mut m = serde_json::Map::new();
        m.insert("Test".into(), self.test.clone().into());
        for (key, value) in [
            ("Interval", ns(self.interval)),
            ("Timeout", ns(self.timeout)),
            ("StartPeriod", ns(self.start_period)),
            ("Retries", self.retries.map(i64::from)),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), v.into());
            }
        }
        serde_json::Value::Object(m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub source: VolumeSource,
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host path as written: absolute, `.`-relative (to the DAG's working directory) or
    /// `~`-relative.
    Bind(String),
    Named(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: Option<String>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    Bridge,
    Host,
    None,
    Container(String),
    Custom(String),
}

impl Network {
    /// The value of HostConfig.NetworkMode.
    pub fn mode(&self) -> String {
        match self {
            Self::Bridge => "bridge".into(),
            Self::Host => "host".into(),
            Self::None => "none".into(),
            Self::Container(c) => format!("container:{c}"),
            Self::Custom(n) => n.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Always => "always",
            Self::UnlessStopped => "unless-stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Startup {
    #[default]
    Keepalive,
    Entrypoint,
    Command,
}

impl Startup {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keepalive => "keepalive",
            Self::Entrypoint => "entrypoint",
            Self::Command => "command",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitFor {
    #[default]
    Running,
    Healthy,
}

impl WaitFor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Healthy => "healthy",
        }
    }
}

/// `registryAuths`. Values are kept as written (they may hold `${VAR}`) and are secrets:
/// never print them.
#[derive(Debug, Clone)]
pub enum RegistryAuths {
    /// One string with a whole Docker config JSON (`{"auths": {...}}`).
    Config(String),
    PerRegistry(Vec<(String, RegistryAuth)>),
}

#[derive(Debug, Clone)]
pub enum RegistryAuth {
    UserPassword {
        username: String,
        password: String,
    },
    /// base64 of `user:password`.
    Auth(String),
    /// A string: base64 `user:password`, or a JSON object with username/password/auth.
    Encoded(String),
}

/// Where a step's command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement<'a> {
    Host,
    /// In wharf's own process (`jq`, `http`, `mail`): no process, no container.
    Engine,
    /// A container of its own, created from `image` (or exec into `container_name`).
    OwnContainer {
        image: Option<&'a str>,
        container_name: Option<&'a str>,
    },
    /// The DAG-level container, through `docker exec`.
    SharedContainer,
}

impl Dag {
    /// The queue a run takes a place in and its size: the named `queue`, else the DAG's
    /// own when it has a `maxActiveRuns`; None when its runs are not limited.
    pub fn queue_place(&self) -> Option<(String, u32)> {
        match (&self.queue, self.max_active_runs) {
            (Some(q), n) => Some((q.clone(), n.unwrap_or(1))),
            (None, Some(n)) => Some((self.name.clone(), n)),
            (None, None) => None,
        }
    }

    pub fn placement<'a>(&self, step: &'a Step) -> Placement<'a> {
        if step.call.is_some()
            || matches!(
                step.executor,
                Executor::Approval(_) | Executor::HumanTask(_)
            )
        {
            // A sub-DAG step runs no process of its own: its child run places its steps.
            return Placement::Host;
        }
        if step.executor.is_builtin() {
            return Placement::Engine;
        }
        match (&step.executor, &self.container) {
            (Executor::Local { explicit: true }, _) => Placement::Host,
            // A docker step that names its own image or container runs there, also in a
            // DAG with a DAG-level container (as in Dagu: the step's own wins).
            (Executor::Docker(d), Some(_)) if d.image.is_some() || d.container_name.is_some() => {
                Placement::OwnContainer {
                    image: d.image.as_deref(),
                    container_name: d.container_name.as_deref(),
                }
            }
            (_, Some(_)) => Placement::SharedContainer,
            (
                Executor::Local { .. }
                | Executor::Approval(_)
                | Executor::HumanTask(_)
                | Executor::Jq(_)
                | Executor::Http(_)
                | Executor::Mail(_)
                | Executor::Ssh(_)
                | Executor::File(_)
                | Executor::Archive(_)
                | Executor::Enqueue(_)
                | Executor::Emit(_)
                | Executor::Wait(_)
                | Executor::Sql(_)
                | Executor::Data(_)
                | Executor::Template(_)
                | Executor::GitCheckout(_)
                | Executor::Redis(_)
                | Executor::Sftp(_)
                | Executor::Router(_)
                | Executor::S3(_)
                | Executor::GitWorktree(_)
                | Executor::State(_),
                None,
            ) => Placement::Host,
            (Executor::Docker(d), None) => Placement::OwnContainer {
                image: d.image.as_deref(),
                container_name: d.container_name.as_deref(),
            },
        }
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// `call: NAME` (or `run:`): a step that runs another DAG as a child run.
#[derive(Debug, Clone)]
pub struct Call {
    /// A DAG's name (a document of this file, or `NAME.yaml` in this file's folder) or a
    /// file path (relative to this file's folder).
    pub target: String,
    /// `params` for the child, as written (expanded when the step starts).
    pub params: CallParams,
    /// `parallel`: one child run per item.
    pub parallel: Option<Parallel>,
    /// Dagu 2.x `foreach`: the child is the step's body, run once per item of
    /// `parallel`, with the item in scope.
    pub foreach: Option<Foreach>,
}

/// Dagu 2.x `foreach`, beside the `parallel` that runs its body per item: how the body
/// names the item, each item's key, and what is collected from each item's body.
#[derive(Debug, Clone, Default)]
pub struct Foreach {
    /// `as`: `${foreach.NAME}` is the item (`item` when not set).
    pub name: String,
    /// `key`: each item's key, as written (the item's index when not set).
    pub key: Option<String>,
    /// `collect`: output name and expression, resolved once an item's body succeeded.
    pub collect: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub enum CallParams {
    #[default]
    None,
    /// `params: "X=1 Y='two words'"`: shell words.
    Line(String),
    /// `params: {X: 1}` or `[{X: 1}, ...]`: each value as written.
    Pairs(Vec<(String, String)>),
}

/// `parallel`: the items, and how many children run at once.
#[derive(Debug, Clone)]
pub struct Parallel {
    pub items: ParallelItems,
    /// `maxConcurrent` (default 10).
    pub max_concurrent: usize,
}

#[derive(Debug, Clone)]
pub enum ParallelItems {
    /// Written in the file: strings, numbers or objects.
    List(Vec<serde_json::Value>),
    /// A reference such as `${ITEMS}`: a JSON array (or words) when the step starts.
    Text(String),
}
