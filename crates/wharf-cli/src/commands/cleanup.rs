//! `wharf cleanup`: what crashed runs left behind.

use crate::ExitCode;
use crate::args::CleanupArgs;
use crate::commands::open_store;
use crate::error::{Error, Result};

pub(crate) fn run(args: &CleanupArgs) -> Result<ExitCode> {
    // Opening the store marks the runs of dead processes failed and kills what is left of
    // their steps' processes, and says so.
    let store = open_store()?;
    if let Some(days) = args.retention_days {
        let cutoff = wharf_store::now_ms()
            - i64::try_from(days)
                .unwrap_or(i64::MAX / 86_400_000)
                .saturating_mul(86_400_000);
        let dag = args.dag.as_deref().map(crate::commands::dag_name);
        let old = store
            .old_runs(dag.as_deref(), cutoff)
            .map_err(|source| Error::Record {
                what: "the old runs",
                source,
            })?;
        for run in &old {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removing"
            };
            eprintln!("{verb} run {} of {} ({})", run.run_id, run.dag, run.status);
        }
        if !args.dry_run {
            let removed = store.remove_runs(&old).map_err(|source| Error::Record {
                what: "the removal of old runs",
                source,
            })?;
            eprintln!("removed {removed} run(s) older than {days} day(s)");
        }
        return Ok(ExitCode::Success);
    }
    let runtime = crate::commands::runtime()?;
    let client = wharf_docker::Client::new();
    let ok = runtime.block_on(remove_containers(&client));
    eprintln!("cleanup done");
    Ok(if ok {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// Removes the containers of runs whose wharf process is gone, telling what it removed.
/// False when Docker could not be asked.
pub(crate) async fn remove_containers(client: &wharf_docker::Client) -> bool {
    let docker = match client.get().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("note: containers were not checked: {e}");
            return false;
        }
    };
    match wharf_docker::remove_leftovers(docker).await {
        Ok(removed) => {
            for c in removed {
                eprintln!(
                    "{} container {} (step {} of run {} of {}), left by a wharf process that is gone",
                    if c.removed {
                        "removed"
                    } else {
                        "stopped (kept: autoRemove is false)"
                    },
                    &c.id[..c.id.len().min(12)],
                    c.step,
                    c.run_id,
                    c.dag
                );
            }
            true
        }
        Err(e) => {
            eprintln!("warning: cannot remove leftover containers: {e}");
            false
        }
    }
}
