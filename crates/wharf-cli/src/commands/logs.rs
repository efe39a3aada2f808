//! `wharf logs`: a step's stdout or stderr, byte for byte.

use std::io::Write as _;

use crate::ExitCode;
use crate::args::LogsArgs;
use crate::commands::{dag_name, find_run, open_store};
use crate::error::{Error, Result};

pub(crate) fn run(args: &LogsArgs) -> Result<ExitCode> {
    let store = open_store()?;
    let name = dag_name(&args.dag);
    let run = find_run(&store, &name, args.run_id.as_deref())?;
    let attempts = store.attempts(run.key, &args.step)?;
    let chosen = match args.attempt {
        Some(n) => attempts.iter().find(|a| a.attempt == n),
        None => attempts.last(),
    };
    let Some(attempt) = chosen else {
        let steps = store.steps(run.key).unwrap_or_default();
        let (step, run_id) = (args.step.clone(), run.run_id.clone());
        return Err(if steps.iter().any(|s| s.name == args.step) {
            match args.attempt {
                Some(attempt) => Error::NoAttempt {
                    step,
                    attempt,
                    run_id,
                },
                None => Error::DidNotRun { step, run_id },
            }
        } else {
            let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
            Error::NoSuchStep {
                dag: name,
                run_id,
                step,
                steps: names.join(", "),
            }
        });
    };
    let path = if args.stderr {
        &attempt.stderr
    } else {
        &attempt.stdout
    };
    // A stream the step never wrote to has no file: its log is empty.
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ExitCode::Success),
        Err(e) => {
            return Err(Error::Output(std::io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", path.display()),
            )));
        }
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = std::io::copy(&mut file, &mut out).and_then(|_| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Error::Output(e));
    }
    Ok(ExitCode::Success)
}
