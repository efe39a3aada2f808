//! What can go wrong in a command, and the one map from that to the exit code (SPEC §7):
//! a wrong call or an invalid file is 2, anything else that stops a command is 1.

use std::path::PathBuf;

use crate::ExitCode;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    /// The file was read and its diagnostics shown: it is not a DAG.
    #[error("{file}: invalid ({errors}); nothing ran")]
    Invalid { file: String, errors: String },
    #[error("invalid run id `{0}`: use letters, digits, `-`, `_` and `.` (at most 128)")]
    RunId(String),
    #[error("`--params` has an unmatched quote: {0}")]
    ParamsText(String),
    /// Params the DAG's params schema refuses.
    #[error("{file}: {source}; nothing ran")]
    Params {
        file: String,
        source: wharf_spec::params::ParamsError,
    },
    #[error("the DAG `{dag}` has no run `{run_id}`")]
    NoSuchRun { dag: String, run_id: String },
    #[error("the DAG `{0}` has no runs")]
    NoRuns(String),
    #[error("run {run_id} of {dag} is still running")]
    StillRunning { dag: String, run_id: String },
    #[error("the step `{step}` has no attempt {attempt} in run {run_id}")]
    NoAttempt {
        step: String,
        attempt: u32,
        run_id: String,
    },
    #[error("the step `{step}` did not run in run {run_id} (no output)")]
    DidNotRun { step: String, run_id: String },
    #[error("run {run_id} of {dag} has no step `{step}`; its steps: {steps}")]
    NoSuchStep {
        dag: String,
        run_id: String,
        step: String,
        steps: String,
    },
    #[error("`{0}` is not an RFC 3339 time (e.g. 2026-11-28T10:15:00Z)")]
    Time(String),
    /// An option's value that is not one it takes.
    #[error("{0}")]
    Usage(String),
    #[error("cannot open the run records in {}: {source}", home.display())]
    OpenStore {
        home: PathBuf,
        source: wharf_store::Error,
    },
    #[error("{0}")]
    RunIdTaken(wharf_store::Error),
    #[error("cannot record {what}: {source}")]
    Record {
        what: &'static str,
        source: wharf_store::Error,
    },
    #[error(transparent)]
    Store(#[from] wharf_store::Error),
    #[error(transparent)]
    Control(#[from] wharf_control::Error),
    #[error(transparent)]
    Config(#[from] wharf_server::ConfigError),
    #[error(transparent)]
    Serve(#[from] wharf_server::ServeError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The engine's task ended without finishing the run (it panicked).
    #[error("the run's engine stopped unexpectedly: {0}")]
    Engine(String),
    #[error("{0}")]
    Output(std::io::Error),
}

impl Error {
    /// The exit code of a command that ends with this error.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::Invalid { .. }
            | Self::RunId(_)
            | Self::Params { .. }
            | Self::ParamsText(_)
            | Self::NoSuchRun { .. }
            | Self::NoRuns(_)
            | Self::StillRunning { .. }
            | Self::NoAttempt { .. }
            | Self::DidNotRun { .. }
            | Self::NoSuchStep { .. }
            | Self::Time(_)
            | Self::Usage(_)
            | Self::RunIdTaken(_)
            | Self::Config(_)
            | Self::Read { .. } => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }

    /// Says it on stderr (a file's summary line as it is, the rest as `error: ...`).
    pub(crate) fn report(&self) {
        match self {
            Self::Invalid { .. } => eprintln!("{self}"),
            _ => eprintln!("error: {self}"),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;
