//! `wharf cleanup`: what crashed runs left behind; `wharf rm`: a DAG's history or file.

use crate::ExitCode;
use crate::args::{CleanupArgs, RmArgs};
use crate::commands::{dag_name, open_store};
use crate::error::{Error, Result};

/// `wharf rm`, as Dagu 2.x has it: the DAG's finished runs (all, or those older than
/// `--older-than`) with their logs, its file, or both. A run that is going on is never
/// removed, and the file is not while the DAG has runs going or waiting.
pub(crate) fn rm(args: &RmArgs) -> Result<ExitCode> {
    if !args.history && !args.definition {
        return Err(Error::Usage(
            "say what to remove: --history (-H), --definition (-d), or both".into(),
        ));
    }
    let name = dag_name(&args.dag);
    let store = open_store()?;
    let record = |what| move |source| Error::Record { what, source };
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removing"
    };
    // A DAG's file stays while a run of it goes on or waits, whatever is asked.
    if args.definition {
        let going = store
            .running(Some(&name))
            .map_err(record("the runs"))?
            .len()
            + store.queued(Some(&name)).map_err(record("the runs"))?.len();
        if going > 0 {
            return Err(Error::Usage(format!(
                "the DAG `{name}` has {going} run(s) going or waiting (`wharf ps -d {name}`): \
                 its file is kept; stop them first"
            )));
        }
    }
    // As Dagu does: without --force, a person says yes on a terminal; nothing is removed
    // otherwise.
    if !args.force && !args.dry_run {
        let what = match (args.history, args.definition) {
            (true, true) => format!("the runs and the file of the DAG \"{name}\""),
            (true, false) => format!("the runs of the DAG \"{name}\""),
            _ => format!("the file of the DAG \"{name}\""),
        };
        if !confirmed(&format!("Remove {what}? [y/N] ")) {
            println!("Cancelled.");
            return Ok(ExitCode::Success);
        }
    }
    if args.history {
        let now = wharf_store::now_ms();
        let cutoff = match &args.older_than {
            Some(t) => now - crate::commands::history::duration_ms(t)?,
            None => now + 1,
        };
        let old = store
            .old_runs(Some(&name), cutoff)
            .map_err(record("the old runs"))?;
        match remove_old(&store, Some(&name), cutoff, args.dry_run)? {
            _ if old.is_empty() => println!("No runs to delete for DAG \"{name}\""),
            Some(removed) => {
                println!("Successfully removed {removed} run(s) for DAG \"{name}\"");
            }
            None => println!(
                "Dry run: Would delete {} run(s) for DAG \"{name}\"",
                old.len()
            ),
        }
    }
    if args.definition {
        let file = crate::commands::run::dag_file(&args.dag)?;
        eprintln!("{verb} {}", file.display());
        if !args.dry_run {
            std::fs::remove_file(&file).map_err(|e| Error::Read {
                path: file.clone(),
                reason: format!("cannot remove it: {e}"),
            })?;
            println!("Successfully deleted DAG definition \"{name}\"");
        }
    }
    Ok(ExitCode::Success)
}

/// Asks on the terminal; false without one (nobody to answer) or without a yes.
fn confirmed(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

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
        // As Dagu does: without -y, a person says yes on a terminal.
        if !args.yes
            && !args.dry_run
            && !confirmed(&format!(
                "Remove the runs {}older than {days} day(s)? [y/N] ",
                dag.as_deref()
                    .map(|d| format!("of \"{d}\" "))
                    .unwrap_or_default()
            ))
        {
            println!("Cancelled.");
            return Ok(ExitCode::Success);
        }
        if let Some(removed) = remove_old(&store, dag.as_deref(), cutoff, args.dry_run)? {
            eprintln!("removed {removed} run(s) older than {days} day(s)");
            println!("Successfully removed {removed} run(s)");
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

/// The finished runs (of `dag`, or all) that started before `cutoff`, told one by one and
/// removed with their logs; how many, unless `dry_run` (which only tells).
fn remove_old(
    store: &wharf_store::Store,
    dag: Option<&str>,
    cutoff: i64,
    dry_run: bool,
) -> Result<Option<usize>> {
    let record = |what| move |source| Error::Record { what, source };
    let old = store
        .old_runs(dag, cutoff)
        .map_err(record("the old runs"))?;
    let verb = if dry_run { "would remove" } else { "removing" };
    for run in &old {
        eprintln!("{verb} run {} of {} ({})", run.run_id, run.dag, run.status);
    }
    if dry_run {
        return Ok(None);
    }
    store
        .remove_runs(&old)
        .map(Some)
        .map_err(record("the removal of old runs"))
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
