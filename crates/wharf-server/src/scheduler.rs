//! The scheduler: at the start of every minute, each DAG of the folder whose `schedule`
//! matches that minute gets a run.
//!
//! A slot's run has the id `scheduled-YYYYMMDDTHHMMZ` (the slot in UTC): a scheduler that
//! restarts within the minute finds the run and does not start it twice, and no slot
//! needs remembering elsewhere. While a run of the DAG is still going, the slot is
//! recorded as a `skipped` run with that id instead. Slots that passed while no scheduler
//! ran are not made up for (as cron does). Times and daylight-saving changes are as
//! `wharf_spec::cron` says: a skipped time runs once after the gap, a repeated one once.

use std::path::Path;

use jiff::Timestamp;
use wharf_spec::cron::Cron;
use wharf_store::{NewRun, Status, Store};

use crate::Config;

/// The first minute after `after` that the expression names.
pub(crate) fn next_after(expr: &str, after: Timestamp) -> Option<Timestamp> {
    Cron::parse(expr).ok()?.next_after(after)
}

/// The next run of a DAG by any of its expressions.
pub(crate) fn next_run(dag: &wharf_spec::Dag, after: Timestamp) -> Option<Timestamp> {
    dag.schedule
        .start
        .iter()
        .filter_map(|e| next_after(e, after))
        .min()
}

fn slot_id(slot: Timestamp) -> String {
    format!("scheduled-{}", slot.strftime("%Y%m%dT%H%MZ"))
}

/// Why a slot's run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Store(#[from] wharf_store::Error),
    #[error(transparent)]
    Control(#[from] wharf_control::Error),
}

/// What happened to a DAG at a slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Fired {
    Started(String),
    Skipped(String),
    AlreadyThere(String),
    /// `skipIfSuccessful`: the run (named) succeeded since the previous slot.
    AlreadySucceeded(String),
    /// The DAG is suspended: the slot is recorded as a skipped run.
    Suspended(String),
}

/// Starts the runs of the slot `slot` (a minute): every DAG of the folder whose schedule
/// matches it.
pub(crate) fn tick(
    config: &Config,
    slot: Timestamp,
) -> Vec<(String, Result<Fired, ScheduleError>)> {
    let mut done = Vec::new();
    for (file_name, path) in crate::api::dag_files(&config.dags) {
        let Ok(loaded) = wharf_spec::load_file(&path) else {
            continue;
        };
        let Some(dag) = loaded.dag else { continue };
        let due = dag
            .schedule
            .start
            .iter()
            .any(|expr| Cron::parse(expr).is_ok_and(|c| c.fires_at(slot)));
        if due {
            done.push((file_name, fire(config, &dag, &path, slot)));
        }
    }
    done
}

fn fire(
    config: &Config,
    dag: &wharf_spec::Dag,
    file: &Path,
    slot: Timestamp,
) -> Result<Fired, ScheduleError> {
    let run_id = slot_id(slot);
    let store = Store::open(&config.home)?;
    let _ = store.reap_dead();
    if store.run(&dag.name, &run_id)?.is_some() {
        return Ok(Fired::AlreadyThere(run_id));
    }
    if dag.skip_if_successful
        && let Some(run) = succeeded_since_previous_slot(&store, dag, slot)?
    {
        return Ok(Fired::AlreadySucceeded(run));
    }
    if store.is_suspended(&dag.name)? {
        record_skipped(&store, dag, file, &run_id, "the DAG is suspended")?;
        return Ok(Fired::Suspended(run_id));
    }
    if let Some(previous) = store.running(Some(&dag.name))?.first() {
        let why = format!("run {} was still running", previous.run_id);
        record_skipped(&store, dag, file, &run_id, &why)?;
        return Ok(Fired::Skipped(run_id));
    }
    let args = vec![
        "run".to_owned(),
        file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        run_id.clone(),
    ];
    // Until the run is recorded, another scheduler (or this one, restarted) could start
    // the slot again: launch waits for the record (the new process writes it first thing).
    wharf_control::launch(&store, &config.home, &args, &dag.name, &run_id)?;
    Ok(Fired::Started(run_id))
}

/// A slot the scheduler does not start, recorded as a skipped run that says why.
fn record_skipped(
    store: &Store,
    dag: &wharf_spec::Dag,
    file: &Path,
    run_id: &str,
    why: &str,
) -> Result<(), ScheduleError> {
    let new = NewRun {
        dag: &dag.name,
        run_id,
        file,
        params: &[],
        log_base: None,
        parent: None,
        queue: None,
    };
    let run = store.create_run(&new)?;
    store.finish_run(
        run,
        Status::Skipped,
        Some(&format!("skipped by the scheduler: {why}")),
    )?;
    Ok(())
}

/// `skipIfSuccessful`: the DAG's latest run, when it succeeded and started at or after
/// the slot before `slot` (by any of the DAG's expressions). Runs started by hand count.
fn succeeded_since_previous_slot(
    store: &Store,
    dag: &wharf_spec::Dag,
    slot: Timestamp,
) -> Result<Option<String>, ScheduleError> {
    let previous = dag
        .schedule
        .start
        .iter()
        .filter_map(|e| Cron::parse(e).ok()?.prev_before(slot))
        .max();
    let Some(previous) = previous else {
        return Ok(None);
    };
    let Some(latest) = store.latest_run(&dag.name)? else {
        return Ok(None);
    };
    let since = latest.started_at.unwrap_or(latest.created_at) >= previous.as_millisecond();
    Ok((latest.status == Status::Succeeded && since).then_some(latest.run_id))
}

/// Runs the scheduler until the process ends: a tick at the start of every minute.
pub(crate) async fn run(config: Config) {
    eprintln!(
        "wharf scheduler: DAGs in {}, zone {}",
        config.dags.display(),
        std::env::var("CRON_TZ")
            .or_else(|_| std::env::var("TZ"))
            .unwrap_or_else(|_| "of the system".into())
    );
    loop {
        let now = Timestamp::now();
        let secs = now.as_second();
        let next = Timestamp::from_second(secs - secs.rem_euclid(60) + 60).unwrap_or(now);
        let wait = (next - now)
            .total(jiff::Unit::Millisecond)
            .map_or(60_000.0, |ms| ms.max(0.0));
        tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        let config = config.clone();
        let fired = tokio::task::spawn_blocking(move || tick(&config, next))
            .await
            .unwrap_or_default();
        for (dag, result) in fired {
            match result {
                Ok(Fired::Started(id)) => eprintln!("{dag}: started run {id}"),
                Ok(Fired::Skipped(id)) => {
                    eprintln!("{dag}: slot {id} skipped, the previous run still runs")
                }
                Ok(Fired::AlreadyThere(_)) => {}
                Ok(Fired::AlreadySucceeded(id)) => {
                    eprintln!("{dag}: no run this time, run {id} succeeded since the last one")
                }
                Ok(Fired::Suspended(id)) => {
                    eprintln!("{dag}: slot {id} skipped, the DAG is suspended")
                }
                Err(e) => eprintln!("{dag}: cannot start the scheduled run: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn next_times_in_utc_and_in_a_zone() {
        let utc = |e: &str| format!("CRON_TZ=UTC {e}");
        assert_eq!(
            next_after(&utc("*/15 * * * *"), ts("2026-11-28T10:07:30Z")),
            Some(ts("2026-11-28T10:15:00Z"))
        );
        assert_eq!(
            next_after(&utc("0 9 * * mon"), ts("2026-11-28T10:07:00Z")),
            Some(ts("2026-11-30T09:00:00Z"))
        );
        assert_eq!(
            next_after(&utc("0 0 29 2 *"), ts("2026-11-28T10:07:00Z")),
            Some(ts("2028-02-29T00:00:00Z"))
        );
        assert_eq!(
            next_after("CRON_TZ=Asia/Tokyo 0 9 * * *", ts("2026-11-28T10:07:00Z")),
            Some(ts("2026-11-29T00:00:00Z")),
            "09:00 in Tokyo is 00:00 UTC"
        );
        assert_eq!(
            next_after(&utc("5 10 * * *"), ts("2026-11-28T10:05:00Z")),
            Some(ts("2026-11-29T10:05:00Z")),
            "strictly after"
        );
    }
}
