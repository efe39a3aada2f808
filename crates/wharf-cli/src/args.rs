use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// wharf runs workflows written as YAML DAG files (the Dagu 1.x dialect), on the host or in
/// Docker containers.
#[derive(Debug, Parser)]
#[command(name = "wharf", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check DAG files without running anything; exit 0 when all are valid, 2 otherwise.
    Validate(ValidateArgs),
    /// Show what a run would do: steps in order, where each runs, and the environment.
    Dry(DryArgs),
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
