//! `wharf logs`: a step's stdout or stderr, byte for byte.

use std::io::Write as _;

use crate::ExitCode;
use crate::args::LogsArgs;
use crate::commands::{dag_name, find_run, open_store};

pub(crate) fn run(args: &LogsArgs) -> ExitCode {
    let Some(store) = open_store() else {
        return ExitCode::Failure;
    };
    let name = dag_name(&args.dag);
    let Some(run) = find_run(&store, &name, args.run_id.as_deref()) else {
        return ExitCode::Usage;
    };
    let attempts = match store.attempts(run.key, &args.step) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Failure;
        }
    };
    let chosen = match args.attempt {
        Some(n) => attempts.iter().find(|a| a.attempt == n),
        None => attempts.last(),
    };
    let Some(attempt) = chosen else {
        let steps = store.steps(run.key).unwrap_or_default();
        if steps.iter().any(|s| s.name == args.step) {
            match args.attempt {
                Some(n) => eprintln!(
                    "error: the step `{}` has no attempt {n} in run {}",
                    args.step, run.run_id
                ),
                None => eprintln!(
                    "error: the step `{}` did not run in run {} (no output)",
                    args.step, run.run_id
                ),
            }
        } else {
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            eprintln!(
                "error: run {} of {name} has no step `{}`; its steps: {}",
                run.run_id,
                args.step,
                names.join(", ")
            );
        }
        return ExitCode::Usage;
    };
    let path = if args.stderr {
        &attempt.stderr
    } else {
        &attempt.stdout
    };
    // A stream the step never wrote to has no file: its log is empty.
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return ExitCode::Success,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::Failure;
        }
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = std::io::copy(&mut file, &mut out).and_then(|_| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: {e}");
        return ExitCode::Failure;
    }
    ExitCode::Success
}
