//! `wharf cleanup`: what crashed runs left behind.

use crate::ExitCode;
use crate::commands::open_store;
use crate::error::Result;

pub(crate) fn run() -> Result<ExitCode> {
    // Opening the store marks the runs of dead processes failed and kills what is left of
    // their steps' processes, and says so.
    open_store()?;
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
