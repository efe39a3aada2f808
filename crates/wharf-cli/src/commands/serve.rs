//! `wharf server`, `wharf start-all`, `wharf scheduler`: settings from the flags, then the
//! `wharf-server` crate does the work.

use crate::ExitCode;
use crate::args::{SchedulerArgs, ServerArgs};
use crate::error::{Error, Result};

fn flags(args: &ServerArgs) -> wharf_server::Flags {
    wharf_server::Flags {
        host: args.host.clone(),
        port: args.port,
        dags: args.dags.clone(),
        base_path: args.base_path.clone(),
    }
}

/// `wharf server` (and, with the scheduler, `wharf start-all`).
pub(crate) fn serve(args: &ServerArgs, with_scheduler: bool) -> Result<ExitCode> {
    let config = wharf_server::Config::load(&flags(args))?;
    for note in &config.notes {
        eprintln!("warning: {note}");
    }
    let runtime = crate::commands::runtime()?;
    runtime.block_on(wharf_server::serve(config, with_scheduler))?;
    Ok(ExitCode::Success)
}

/// `wharf scheduler [--once-at TIME]`.
pub(crate) fn schedule(args: &SchedulerArgs) -> Result<ExitCode> {
    let config = wharf_server::Config::load(&wharf_server::Flags {
        dags: args.dags.clone(),
        ..Default::default()
    })?;
    if let Some(at) = &args.once_at {
        let slot = at
            .parse::<jiff::Timestamp>()
            .map_err(|_| Error::Time(at.clone()))?;
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
        return Ok(if failed {
            ExitCode::Failure
        } else {
            ExitCode::Success
        });
    }
    crate::commands::runtime()?.block_on(wharf_server::run_scheduler(config));
    Ok(ExitCode::Success)
}
