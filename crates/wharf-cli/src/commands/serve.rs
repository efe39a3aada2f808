//! `wharf server`, `wharf start-all`, `wharf scheduler`: settings from the flags, then the
//! `wharf-server` crate does the work.

use crate::ExitCode;
use crate::args::{SchedulerArgs, ServerArgs};

fn flags(args: &ServerArgs) -> wharf_server::Flags {
    wharf_server::Flags {
        host: args.host.clone(),
        port: args.port,
        dags: args.dags.clone(),
        base_path: args.base_path.clone(),
    }
}

fn config(flags: &wharf_server::Flags) -> Result<wharf_server::Config, ExitCode> {
    wharf_server::Config::load(flags).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::Usage
    })
}

/// `wharf server` (and, with the scheduler, `wharf start-all`).
pub(crate) fn serve(args: &ServerArgs, with_scheduler: bool) -> ExitCode {
    let config = match config(&flags(args)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(runtime) = crate::commands::runtime() else {
        return ExitCode::Failure;
    };
    match runtime.block_on(wharf_server::serve(config, with_scheduler)) {
        Ok(()) => ExitCode::Success,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::Failure
        }
    }
}

/// `wharf scheduler [--once-at TIME]`.
pub(crate) fn schedule(args: &SchedulerArgs) -> ExitCode {
    let config = match config(&wharf_server::Flags {
        dags: args.dags.clone(),
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(at) = &args.once_at {
        let Ok(slot) = at.parse::<jiff::Timestamp>() else {
            eprintln!("error: `{at}` is not an RFC 3339 time (e.g. 2026-11-28T10:15:00Z)");
            return ExitCode::Usage;
        };
        let mut failed = false;
        for (dag, result) in wharf_server::schedule_once(&config, slot) {
            match result {
                Ok(fired) => println!("{dag}: {fired:?}"),
                Err(e) => {
                    failed = true;
                    eprintln!("{dag}: {e}");
                }
            }
        }
        return if failed {
            ExitCode::Failure
        } else {
            ExitCode::Success
        };
    }
    let Some(runtime) = crate::commands::runtime() else {
        return ExitCode::Failure;
    };
    runtime.block_on(wharf_server::run_scheduler(config));
    ExitCode::Success
}
