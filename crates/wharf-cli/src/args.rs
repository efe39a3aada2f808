use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// wharf runs workflows written as YAML DAG files (Dagu's 1.x or 2.x dialect), on the host or in
/// Docker containers.
#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    about = "Runs workflows written as YAML DAG files (Dagu's 1.x or 2.x dialect), on the host or in Docker containers",
    propagate_version = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Read DAG files as Dagu 1.x or 2.x (by default each file's keys say which).
    #[arg(long, global = true, value_name = "1|2", value_parser = ["1", "2"])]
    pub dialect: Option<String>,
}

/// The commands of `wharf --help`, by what they are for (a command missing here is listed
/// under "Other commands").
const GROUPS: &[(&str, &[&str])] = &[
    (
        "Run DAGs",
        &[
            "run",
            "exec",
            "enqueue",
            "dequeue",
            "stop",
            "restart",
            "retry",
            "human-task",
            "dry",
        ],
    ),
    (
        "Look at DAGs and runs",
        &["ls", "ps", "status", "history", "logs", "validate"],
    ),
    (
        "Serve and schedule",
        &["server", "scheduler", "start-all", "suspend", "resume"],
    ),
    (
        "Maintain",
        &[
            "rm",
            "cleanup",
            "migrate",
            "config",
            "version",
            "completions",
            "man",
        ],
    ),
];

/// The command line, its `--help` grouping the commands by what they are for.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let width = cmd
        .get_subcommands()
        .map(|c| c.get_name().len())
        .max()
        .unwrap_or(0);
    let line = |c: &clap::Command| {
        let about = c.get_about().map(|a| a.to_string()).unwrap_or_default();
        let about = about.lines().next().unwrap_or_default().to_owned();
        let alias: Vec<&str> = c.get_visible_aliases().collect();
        let name = if alias.is_empty() {
            c.get_name().to_owned()
        } else {
            format!("{} ({})", c.get_name(), alias.join(", "))
        };
        format!("  {name:<w$}  {about}\n", w = width + 8)
    };
    let mut text = String::new();
    for (heading, names) in GROUPS {
        text.push_str(&format!("{heading}:\n"));
        for name in *names {
            if let Some(c) = cmd.get_subcommands().find(|c| c.get_name() == *name) {
                text.push_str(&line(c));
            }
        }
        text.push('\n');
    }
    let other: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|c| {
            c.get_name() != "help" && !GROUPS.iter().any(|(_, n)| n.contains(&c.get_name()))
        })
        .collect();
    if !other.is_empty() {
        text.push_str("Other commands:\n");
        for c in other {
            text.push_str(&line(c));
        }
        text.push('\n');
    }
    let template = format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{text}Options:\n{{options}}{{after-help}}"
    );
    cmd.help_template(template)
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a DAG: exit 0 when the run succeeded, 1 when it failed or was stopped, 2 when the
    /// file is invalid.
    #[command(visible_alias = "start")]
    Run(RunArgs),
    /// Run one command as a run of its own, without a DAG file (`wharf exec -- make test`):
    /// the run is named `exec-COMMAND` and kept like any other.
    Exec(ExecArgs),
    /// Check DAG files without running anything; exit 0 when all are valid, 2 otherwise.
    Validate(ValidateArgs),
    /// Show what a run would do: steps in order, where each runs, and the environment.
    Dry(DryArgs),
    /// The DAGs of the DAGs folder: name, schedule, and (asked) last run and next start.
    Ls(LsArgs),
    /// The runs running now, with their process.
    Ps(PsArgs),
    /// The latest (or a given) run of a DAG and its steps.
    Status(StatusArgs),
    /// The runs of a DAG, newest first.
    History(HistoryArgs),
    /// A step's stdout (or stderr), exactly as the step wrote it.
    Logs(LogsArgs),
    /// Stop the running runs of a DAG.
    Stop(StopArgs),
    /// Run a finished run again: its failed and stopped steps and everything after them
    /// (or, with `--step`, that step alone).
    Retry(RetryArgs),
    /// Stop the DAG's running runs, then start it again with the params of its latest run.
    Restart(RestartArgs),
    /// Start a run in the background: it runs when its queue has a place
    /// (`maxActiveRuns`, `queue`), `queued` until then.
    Enqueue(EnqueueArgs),
    /// Take a queued run out of its queue (the oldest of the DAG or of the queue named, or
    /// the one given).
    Dequeue(DequeueArgs),
    /// Suspend a DAG: the scheduler skips its slots (and records them skipped).
    Suspend(DagArg),
    /// Resume a suspended DAG: the scheduler starts its slots again.
    Resume(DagArg),
    /// Mark runs whose process died as failed and remove what they left behind; with
    /// `--retention-days`, also remove the records and logs of old runs.
    Cleanup(CleanupArgs),
    /// Remove a DAG's run history (`-H`, or only its runs older than `-t`), its file (`-d`),
    /// or both; runs going on are never removed.
    Rm(RmArgs),
    /// Carry a Dagu installation over: `wharf migrate history` keeps its runs (with their
    /// steps, outputs and logs) in wharf's records.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// The human tasks (Dagu 2.x `action: human.task`) a run waits on: `wharf human-task
    /// complete` gives one its answer; `wharf status` shows the open ones.
    #[command(subcommand)]
    HumanTask(HumanTaskCommand),
    /// Where wharf finds and keeps everything: its home, configuration, base
    /// configuration, DAGs folder, run records and logs.
    Config,
    /// Print wharf's version.
    Version,
    /// Print a completion script for a shell (`source <(wharf completions bash)`).
    Completions(CompletionsArgs),
    /// Print wharf's manual page, or a command's (roff: `wharf man run | man -l -`).
    Man(ManArgs),
    /// Serve the web UI and the REST API (Dagu-compatible `/api/v2`) for the DAGs of a
    /// folder.
    Server(ServerArgs),
    /// Start the runs of the folder's DAGs at the times of their `schedule`.
    Scheduler(SchedulerArgs),
    /// The server and the scheduler in one process.
    StartAll(ServerArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// The folder of DAG files (`WHARF_DAGS`; `$WHARF_HOME/dags` by default).
    #[arg(long, short = 'd', value_name = "DIR")]
    pub dags: Option<PathBuf>,
    /// Start the runs of one slot (an RFC 3339 time, e.g. `2026-11-28T10:15:00Z`) and exit,
    /// instead of running on.
    #[arg(long, value_name = "TIME")]
    pub once_at: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The address to listen on (`WHARF_HOST`; 127.0.0.1 by default).
    #[arg(long, short = 's', value_name = "HOST")]
    pub host: Option<String>,
    /// The port (`WHARF_PORT`; 8080 by default; 0 picks a free one).
    #[arg(long, short, value_name = "PORT")]
    pub port: Option<u16>,
    /// The folder of DAG files (`WHARF_DAGS`; `$WHARF_HOME/dags` by default).
    #[arg(long, short = 'd', value_name = "DIR")]
    pub dags: Option<PathBuf>,
    /// A path prefix for everything served (`WHARF_BASE_PATH`), e.g. `/wharf`.
    #[arg(long, value_name = "PATH")]
    pub base_path: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The DAG: the path of its file, or its name in the DAGs folder (`$WHARF_DAGS`, else
    /// `dags` in wharf's home).
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// The id of the run (letters, digits, `-`, `_`, `.`); a new UUID by default.
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// The name the run is kept under, instead of the DAG's own.
    #[arg(long, short = 'N', value_name = "NAME")]
    pub name: Option<String>,
    /// Run the DAG again with the params of this earlier run of it (a new run).
    #[arg(long, value_name = "ID", conflicts_with_all = ["params_text", "params"])]
    pub from_run_id: Option<String>,
    /// Print the steps' output as it comes.
    #[arg(long, short)]
    pub verbose: bool,
    /// Params for the run as one text of shell words (`-p "ENV=prod app"`), before any
    /// given after `--`.
    #[arg(long = "params", short = 'p', value_name = "PARAMS")]
    pub params_text: Option<String>,
    /// Params for the run: `NAME=value` or positional words (after `--`).
    #[arg(last = true, value_name = "PARAMS")]
    pub params: Vec<String>,
    /// Where the steps work when the DAG names no working directory (instead of its
    /// file's folder).
    #[arg(long, value_name = "DIR")]
    pub default_working_dir: Option<PathBuf>,
    /// Run only these steps (names or ids; several, or separated by commas): the others
    /// are recorded skipped and hold none of them back.
    #[arg(long, value_name = "STEP", value_delimiter = ',')]
    pub only: Vec<String>,
    /// With --only: the outputs of an earlier run of the DAG, and the files it left in
    /// its work directory, are the new run's to start from.
    #[arg(long, value_name = "RUN_ID")]
    pub outputs_from: Option<String>,
    /// The run was recorded by `wharf enqueue`, which hands it to this process.
    #[arg(long, hide = true)]
    pub enqueued: bool,
    /// What starts the run, as it is recorded (`api`, `ui`, `schedule`; `cli` by default).
    #[arg(long, hide = true, value_name = "WHAT")]
    pub trigger: Option<String>,
    /// Run the DAG as this earlier run ran it (`NAME:ID`), with the params given (a run
    /// started again from the API or the pages).
    #[arg(
        long,
        hide = true,
        value_name = "NAME:ID",
        conflicts_with = "from_run_id"
    )]
    pub dag_of_run: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// The command and its arguments (best after `--`), run through the shell as one step.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
    /// The DAG name the run is kept under (`exec-` and the command's name by default).
    #[arg(long, short = 'N', value_name = "NAME")]
    pub name: Option<String>,
    /// The id of the run; a new UUID by default.
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// An environment variable for the command, `KEY=VALUE`; repeatable.
    #[arg(long, short = 'E', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A dotenv file to load before the command runs; repeatable.
    #[arg(long, value_name = "FILE")]
    pub dotenv: Vec<PathBuf>,
    /// The directory the command runs in (the current one by default).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The shell that runs the command (as a DAG's `shell`).
    #[arg(long, value_name = "SHELL")]
    pub shell: Option<String>,
    /// A base configuration to inherit instead of the installation's `base.yaml`.
    #[arg(long, value_name = "FILE")]
    pub base: Option<PathBuf>,
    /// Accepted for Dagu's command line and refused: the command runs on this machine.
    #[arg(long, value_name = "KEY=VALUE")]
    pub worker_label: Vec<String>,
    /// Print the command's output as it comes.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DagArg {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
}

#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The DAG: the path of its file, or its name in the DAGs folder.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// The id of the run; a new UUID by default.
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// The name the run is kept under, instead of the DAG's own.
    #[arg(long, short = 'N', value_name = "NAME")]
    pub name: Option<String>,
    /// The queue the run waits in, instead of the DAG's own (a global queue of the
    /// configuration, or another).
    #[arg(long, short = 'u', value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Params for the run as one text of shell words, before any given after `--`.
    #[arg(long = "params", short = 'p', value_name = "PARAMS")]
    pub params_text: Option<String>,
    /// Params for the run (after `--`).
    #[arg(last = true, value_name = "PARAMS")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DequeueArgs {
    /// The DAG (its name or the path of its file), or a queue's name.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// The queued run to take out (the DAG's oldest by default).
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// The run as Dagu names it: `DAG:ID`.
    #[arg(long, value_name = "DAG:ID", conflicts_with = "run_id")]
    pub dag_run: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// A command (`run`, `status`, ...): its own page.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
    /// Keep a Dagu installation's finished runs in wharf's records: `wharf history`,
    /// `wharf status`, the API and the web UI show them (`dagu migrate history` took
    /// Dagu's own older records forward; this takes them to wharf). Dagu's files are only
    /// read; runs wharf has already are left as they are, so it can be run again.
    History(MigrateArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum HumanTaskCommand {
    /// Complete a waiting human task with its answer: the step succeeds, its form's fields
    /// become its outputs, and the run goes on once no other task of it waits.
    Complete(CompleteArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CompleteArgs {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// The run that waits (required).
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// The task: its step's `id` (required).
    #[arg(long, value_name = "ID")]
    pub step: Option<String>,
    /// A field of the answer, as text (coerced to the field's type); repeat for more.
    #[arg(long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// The whole answer as a JSON object, its values typed (`{"replicas": 3}`).
    #[arg(long = "inputs-json", value_name = "OBJECT")]
    pub inputs_json: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Dagu's data folder (`paths.dataDir`; by default `$DAGU_DATA_DIR`,
    /// `$DAGU_HOME/data`, or `~/.local/share/dagu/data`).
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
    /// Only say how many runs of each DAG would be carried over.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CleanupArgs {
    /// Remove the runs (records and logs) that started more than N days ago; running
    /// runs are kept. 0 removes every finished run.
    #[arg(long, value_name = "N")]
    pub retention_days: Option<u64>,
    /// Only say which runs would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove without asking (otherwise wharf asks on a terminal, and removes nothing
    /// without one).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only the runs of this DAG (its name or the path of its file).
    #[arg(value_name = "NAME|FILE")]
    pub dag: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// The id of the new run (a new one by default).
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// What starts the run, as it is recorded (`cli` by default).
    #[arg(long, hide = true, value_name = "WHAT")]
    pub trigger: Option<String>,
    /// Print the steps' output as it comes.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The DAG files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DryArgs {
    /// The DAG file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Params for the run: `NAME=value` or positional words (after `--`).
    #[arg(last = true, value_name = "PARAMS")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Only DAGs whose name or file name holds this text.
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Show each DAG's next scheduled start.
    #[arg(long, short = 'n')]
    pub next: bool,
    /// Show each DAG's last run: its status and when it started.
    #[arg(long, short = 'l')]
    pub last: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The DAG: its name (its file in the DAGs folder) or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// Remove its finished runs, with their logs.
    #[arg(long, short = 'H')]
    pub history: bool,
    /// Remove its file.
    #[arg(long, short = 'd')]
    pub definition: bool,
    /// With --history: only runs older than this (`10d`, `24h`, `1w`).
    #[arg(long, short = 't', value_name = "DURATION", requires = "history")]
    pub older_than: Option<String>,
    /// Remove without asking (otherwise wharf asks on a terminal, and removes nothing
    /// without one).
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Only say what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Only the runs of this DAG (its name or the path of its file).
    #[arg(long, short = 'd', value_name = "NAME|FILE")]
    pub dag: Option<String>,
    /// Only runs whose id holds this text.
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// As JSON, on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The DAG: its name or the path of its file (all DAGs when left out).
    #[arg(value_name = "NAME|FILE")]
    pub dag: Option<String>,
    /// How many runs to show.
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: usize,
    /// Only runs with this status (`succeeded` or `success`, `failed`, `aborted`,
    /// `running`, `queued`, `skipped`, `waiting`, `rejected`, `partially_succeeded`);
    /// several separated by commas.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only runs created at or after this time (`2026-11-30` or an RFC 3339 time; UTC).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only runs created before this time (`2026-11-30` or an RFC 3339 time; UTC).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only runs created in this last stretch of time (`30m`, `24h`, `7d`).
    #[arg(long, value_name = "DURATION", conflicts_with = "from")]
    pub last: Option<String>,
    /// Only runs whose id contains this text.
    #[arg(long, value_name = "TEXT")]
    pub run_id: Option<String>,
    /// How to print: a table, JSON or CSV (on stdout).
    #[arg(long, value_enum, default_value = "table")]
    pub format: HistoryFormat,
    /// As JSON, on stdout (the same as `--format json`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum HistoryFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
    /// The step.
    #[arg(long, value_name = "STEP")]
    pub step: String,
    /// The step's stderr instead of its stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Which attempt (1 is the first); the last by default.
    #[arg(long, value_name = "N")]
    pub attempt: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    /// Stop only this run (all running runs of the DAG by default).
    #[arg(long, short = 'r', value_name = "ID")]
    pub run_id: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The DAG: its name or the path of its file.
    #[arg(value_name = "NAME|FILE")]
    pub dag: String,
    #[arg(long, short = 'r', value_name = "ID", required = true)]
    pub run_id: String,
    /// Run only this step again (the others keep their results).
    #[arg(long, value_name = "STEP")]
    pub step: Option<String>,
    /// With --step: run the steps after it again too.
    #[arg(long, requires = "step")]
    pub downstream: bool,
    /// Print the steps' output as it comes.
    #[arg(long, short)]
    pub verbose: bool,
}
