//! The scheduler: at the start of every minute, each DAG of the folder whose `schedule`
//! matches that minute gets a run.
//!
//! A DAG's `schedule.start` slots start runs, its `schedule.stop` slots stop its running
//! runs, its `schedule.restart` slots restart it (stop, `restartWaitSec`, a new run).
//!
//! Each action at a slot is claimed in the store first, so that however many schedulers
//! run on one home (or one restarts within the minute), one acts. A slot's run has the id
//! `scheduled-YYYYMMDDTHHMMZ` (the slot in UTC). While a run of the DAG is still going,
//! the slot is recorded as a `skipped` run with that id instead.
//!
//! The store keeps the last minute a scheduler looked at, so slots that passed while no
//! scheduler ran are known: the latest of a DAG's missed slots still runs when it is
//! within the catch-up window (`scheduler.catchupWindow`, none by default), and the
//! others are recorded as one skipped run (`missed-FIRST-LAST`) that says how many were
//! missed. Times and daylight-saving changes are as `wharf_spec::cron` says: a skipped
//! time runs once after the gap, a repeated one once.

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
    /// `schedule.stop`: how many running runs were told to stop.
    Stopped(usize),
    /// `schedule.restart`: the run that replaces the stopped ones (started after
    /// `restartWaitSec`).
    Restarted(String),
    /// Slots missed while no scheduler ran, recorded as one skipped run (its id, how many).
    Missed(String, usize),
    Started(String),
    Skipped(String),
    AlreadyThere(String),
    /// `skipIfSuccessful`: the run (named) succeeded since the previous slot.
    AlreadySucceeded(String),
    /// The DAG is suspended: the slot is recorded as a skipped run.
    Suspended(String),
    /// `retry_policy`: the failed run (named) retried, the retry's number.
    Retried(String, u64),
}

/// Acts on the slot `slot` (a minute) for every DAG of the folder whose schedule names
/// it, after the slots missed since the last scheduler's tick.
pub(crate) fn tick(
    config: &Config,
    slot: Timestamp,
) -> Vec<(String, Result<Fired, ScheduleError>)> {
    let store = match Store::open(&config.home) {
        Ok(store) => store,
        Err(e) => return vec![("(the store)".into(), Err(e.into()))],
    };
    let _ = store.reap_dead();
    wharf_control::advance_parked(&store, &config.home, wharf_engine::queue_size_of);
    let previous = match store.advance_scheduler(slot.as_millisecond()) {
        Ok(previous) => previous.and_then(|ms| Timestamp::from_millisecond(ms).ok()),
        Err(e) => return vec![("(the store)".into(), Err(e.into()))],
    };
    let mut done = Vec::new();
    for (file_name, path) in crate::api::dag_files(&config.dags) {
        let Ok(loaded) = wharf_spec::load_file(&path) else {
            continue;
        };
        let Some(dag) = loaded.dag else { continue };
        let at = |exprs: &[String]| {
            exprs
                .iter()
                .any(|expr| Cron::parse(expr).is_ok_and(|c| c.fires_at(slot)))
        };
        if let Some(since) = previous {
            for result in catch_up(config, &store, &dag, &path, since, slot) {
                done.push((file_name.clone(), result));
            }
        }
        if dag.catchup_window.is_some()
            && let Some(result) = catch_up_one(config, &store, &dag, &path)
        {
            done.push((file_name.clone(), result));
        }
        if at(&dag.schedule.stop) {
            done.push((file_name.clone(), stop(&store, &dag, slot)));
        }
        if at(&dag.schedule.restart) {
            done.push((
                file_name.clone(),
                restart(config, &store, &dag, &path, slot),
            ));
        }
        if at(&dag.schedule.start) {
            done.push((file_name, fire(config, &dag, &path, slot, "schedule")));
        }
    }
    done
}

/// How many missed slots are looked at, at most, per DAG (a minutely schedule and a
/// scheduler down for two months).
const MAX_MISSED: usize = 100_000;

/// The DAG's start slots strictly between `since` and `now`, missed while no scheduler
/// ran: the latest one started when it is within the catch-up window, the others recorded.
fn catch_up(
    config: &Config,
    store: &Store,
    dag: &wharf_spec::Dag,
    file: &Path,
    since: Timestamp,
    now: Timestamp,
) -> Vec<Result<Fired, ScheduleError>> {
    let mut missed: Vec<Timestamp> = Vec::new();
    let mut at = since;
    while missed.len() < MAX_MISSED {
        let Some(next) = next_run(dag, at).filter(|t| *t < now) else {
            break;
        };
        missed.push(next);
        at = next;
    }
    let Some(&latest) = missed.last() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(own) = dag.catchup_window {
        // The DAG's own window: every missed slot within it is caught up, one a tick,
        // oldest first (`latest`: the newest alone); older ones are recorded below.
        let window = jiff::SignedDuration::try_from(own).unwrap_or_default();
        let (recent, old): (Vec<Timestamp>, Vec<Timestamp>) = missed
            .iter()
            .partition(|t| now.duration_since(**t) <= window);
        let mut recent: Vec<i64> = recent.iter().map(|t| t.as_millisecond()).collect();
        if dag.overlap_policy == wharf_spec::OverlapPolicy::Latest {
            recent = recent.split_off(recent.len().saturating_sub(1));
        }
        let keep = recent.len().saturating_sub(MAX_CATCHUP);
        if let Err(e) = store.buffer_catchup(&dag.name, &recent[keep..]) {
            out.push(Err(e.into()));
        }
        missed = old;
        if missed.is_empty() {
            return out;
        }
    }
    let window = jiff::SignedDuration::try_from(config.catchup_window).unwrap_or_default();
    let late = now.duration_since(latest);
    if dag.catchup_window.is_none() && !window.is_zero() && late <= window {
        missed.pop();
        out.push(fire(config, dag, file, latest, "catchup"));
    }
    if let (Some(first), Some(last)) = (missed.first(), missed.last()) {
        let id = format!(
            "missed-{}-{}",
            first.strftime("%Y%m%dT%H%MZ"),
            last.strftime("%Y%m%dT%H%MZ")
        );
        let result = (|| {
            if !store.claim_slot(&dag.name, first.as_millisecond(), "missed")? {
                return Ok(Fired::AlreadyThere(id.clone()));
            }
            let why = format!(
                "{} slot(s) from {} to {} were missed: no scheduler ran then{}",
                missed.len(),
                first.strftime("%Y-%m-%d %H:%M UTC"),
                last.strftime("%Y-%m-%d %H:%M UTC"),
                if window.is_zero() {
                    " (scheduler.catchupWindow is not set, so missed slots do not run)".to_owned()
                } else {
                    format!(
                        " (later than scheduler.catchupWindow, {}s)",
                        config.catchup_window.as_secs()
                    )
                }
            );
            record_skipped(store, dag, file, &id, &why)?;
            Ok(Fired::Missed(id.clone(), missed.len()))
        })();
        out.push(result);
    }
    out
}

/// How many missed slots a DAG's `catchup_window` keeps, at most (the newest).
const MAX_CATCHUP: usize = 1000;

/// A DAG with its own `catchup_window`: the oldest slot waiting to be caught up is run
/// now. While a run of the DAG still goes, `skip` drops it (recorded as skipped) and
/// `all` and `latest` keep it for the next tick.
fn catch_up_one(
    config: &Config,
    store: &Store,
    dag: &wharf_spec::Dag,
    file: &Path,
) -> Option<Result<Fired, ScheduleError>> {
    let result = (|| {
        let Some(slot) = store.next_catchup(&dag.name)? else {
            return Ok(None);
        };
        let busy = !store.running(Some(&dag.name))?.is_empty();
        if busy && dag.overlap_policy != wharf_spec::OverlapPolicy::Skip {
            return Ok(None);
        }
        if !store.take_catchup(&dag.name, slot)? {
            return Ok(None);
        }
        let at = Timestamp::from_millisecond(slot).unwrap_or_else(|_| Timestamp::now());
        fire(config, dag, file, at, "catchup").map(Some)
    })();
    result.transpose()
}

/// `schedule.stop`: the DAG's running runs are told to stop (they end `aborted`).
fn stop(store: &Store, dag: &wharf_spec::Dag, slot: Timestamp) -> Result<Fired, ScheduleError> {
    if !store.claim_slot(&dag.name, slot.as_millisecond(), "stop")? {
        return Ok(Fired::AlreadyThere(format!("stop at {}", slot_id(slot))));
    }
    let stopped = wharf_control::stop_dag(store, &dag.name)?;
    for (run, result) in &stopped {
        if let Err(e) = result {
            eprintln!("{}: cannot stop run {}: {e}", dag.name, run.run_id);
        }
    }
    Ok(Fired::Stopped(
        stopped.iter().filter(|(_, r)| r.is_ok()).count(),
    ))
}

/// `schedule.restart`: `wharf restart` in the background (it stops the running runs,
/// waits `restartWaitSec`, and starts the new run `restart-YYYYMMDDTHHMMZ`).
fn restart(
    config: &Config,
    store: &Store,
    dag: &wharf_spec::Dag,
    file: &Path,
    slot: Timestamp,
) -> Result<Fired, ScheduleError> {
    let run_id = format!("restart-{}", slot.strftime("%Y%m%dT%H%MZ"));
    if !store.claim_slot(&dag.name, slot.as_millisecond(), "restart")? {
        return Ok(Fired::AlreadyThere(run_id));
    }
    if store.is_suspended(&dag.name)? {
        return Ok(Fired::Suspended(run_id));
    }
    let args = vec![
        "restart".to_owned(),
        file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        run_id.clone(),
        "--trigger".to_owned(),
        "schedule".to_owned(),
    ];
    wharf_control::spawn(&config.home, &args)?;
    Ok(Fired::Restarted(run_id))
}

/// `trigger` is what the run records as having started it: `schedule` for the slot of
/// the minute, `catchup` for one missed while no scheduler ran (`${trigger.type}`).
fn fire(
    config: &Config,
    dag: &wharf_spec::Dag,
    file: &Path,
    slot: Timestamp,
    trigger: &str,
) -> Result<Fired, ScheduleError> {
    let run_id = slot_id(slot);
    let store = Store::open(&config.home)?;
    let _ = store.reap_dead();
    if !store.claim_slot(&dag.name, slot.as_millisecond(), "start")?
        || store.run(&dag.name, &run_id)?.is_some()
    {
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
        "--trigger".to_owned(),
        trigger.to_owned(),
    ];
    // The slot is claimed: launch waits for the record only so that the run can be asked
    // for once the tick is over.
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

/// A DAG's own `retry_policy`: its failed top-level runs (created within
/// `scheduler.retryFailureWindow`) are retried, each once its delay passed since it
/// failed (or since the last retry started), up to `limit` times. Each retry is claimed
/// in the store first, so two schedulers make it once, and a retry started by hand does
/// not count. Returns what was started: (DAG, run, retry number).
pub(crate) fn retry_failed(
    config: &Config,
    now: Timestamp,
) -> Result<Vec<(String, String, u64)>, ScheduleError> {
    if config.retry_failure_window.is_zero() {
        return Ok(Vec::new());
    }
    let store = Store::open(&config.home)?;
    let window = i64::try_from(config.retry_failure_window.as_millis()).unwrap_or(i64::MAX);
    let now_ms = now.as_millisecond();
    let mut started = Vec::new();
    // Each DAG file is read once a scan, however many of its runs failed.
    let mut policies: std::collections::HashMap<std::path::PathBuf, Option<wharf_spec::DagRetry>> =
        std::collections::HashMap::new();
    for (run, done, last) in store.failed_for_retry(now_ms.saturating_sub(window))? {
        let policy = policies.entry(run.file.clone()).or_insert_with(|| {
            wharf_spec::load_file(&run.file)
                .ok()
                .and_then(|l| l.dag)
                .and_then(|d| d.retry)
        });
        let Some(retry) = *policy else {
            continue;
        };
        if done >= retry.limit || store.is_suspended(&run.dag)? {
            continue;
        }
        let failed_at = run
            .finished_at
            .unwrap_or(run.created_at)
            .max(last.unwrap_or(0));
        let delay = i64::try_from(retry.delay_sec(done))
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        if now_ms < failed_at.saturating_add(delay) || !store.claim_auto_retry(run.key, done)? {
            continue;
        }
        let args = vec![
            "retry".to_owned(),
            run.file.to_string_lossy().into_owned(),
            "--run-id".to_owned(),
            run.run_id.clone(),
        ];
        wharf_control::spawn(&config.home, &args)?;
        started.push((run.dag, run.run_id, done + 1));
    }
    Ok(started)
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
    if config.scheduler_port != 0 {
        health(&config.host, config.scheduler_port).await;
    }
    // Said in the store while it runs (the API's and the System page's schedulers), and
    // taken out when it stops.
    let _here = Registered::new(&config.home);
    // The queues' consumer: parked runs get the places that runs whose process was killed
    // held (runs that end the orderly way give their place on at once).
    let home = config.home.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let home = home.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(store) = Store::open(&home)
                    && !store.parked().unwrap_or_default().is_empty()
                {
                    let _ = store.reap_dead();
                    wharf_control::advance_parked(&store, &home, wharf_engine::queue_size_of);
                }
            })
            .await;
        }
    });
    // Failed runs of DAGs with a `retry_policy` of their own, looked at every 5 s.
    let retries = config.clone();
    tokio::spawn(async move {
        loop {
            let config = retries.clone();
            let started =
                tokio::task::spawn_blocking(move || retry_failed(&config, Timestamp::now())).await;
            match started {
                Ok(Ok(started)) => {
                    for (dag, run, n) in started {
                        eprintln!("{dag}: run {run} failed, retry {n} started (retry_policy)");
                    }
                }
                Ok(Err(e)) => eprintln!("cannot retry failed runs: {e}"),
                Err(_) => {}
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
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
                Ok(Fired::Stopped(n)) => eprintln!("{dag}: stop slot, {n} run(s) told to stop"),
                Ok(Fired::Restarted(id)) => eprintln!("{dag}: restart slot, new run {id}"),
                Ok(Fired::Missed(id, n)) => {
                    eprintln!("{dag}: {n} slot(s) missed while no scheduler ran, recorded as {id}")
                }
                Ok(Fired::Retried(id, n)) => {
                    eprintln!("{dag}: run {id} failed, retry {n} started (retry_policy)")
                }
                Err(e) => eprintln!("{dag}: cannot start the scheduled run: {e}"),
            }
        }
    }
}

/// This process's entry among the installation's schedulers: made, renewed every 30 s,
/// removed when dropped (the scheduler stops).
struct Registered {
    home: std::path::PathBuf,
    id: Option<String>,
    beat: Option<tokio::task::JoinHandle<()>>,
}

impl Registered {
    fn new(home: &std::path::Path) -> Self {
        let id = Store::open(home)
            .and_then(|s| s.register_service("scheduler"))
            .ok();
        let beat = id.clone().map(|id| {
            let home = home.to_path_buf();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    let (home, id) = (home.clone(), id.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        Store::open(&home).and_then(|s| s.service_seen(&id))
                    })
                    .await;
                }
            })
        });
        Self {
            home: home.to_path_buf(),
            id,
            beat,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(beat) = self.beat.take() {
            beat.abort();
        }
        if let Some(id) = &self.id {
            let _ = Store::open(&self.home).and_then(|s| s.remove_service(id));
        }
    }
}

/// The scheduler's health check, as Dagu's (`scheduler.port`, 8090 by default): `GET
/// /health` answers `{"status":"healthy"}` while the scheduler runs, for a supervisor's
/// probe. A port that cannot be had is said, and the scheduler runs on without it.
async fn health(host: &str, port: u16) {
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "wharf scheduler: no health check on {host}:{port} ({e}); set scheduler.port \
                 (WHARF_SCHEDULER_PORT) to another port, or 0 for none"
            );
            return;
        }
    };
    let at = listener
        .local_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    eprintln!("wharf scheduler: health check on {at} (GET /health)");
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(|| async {
            crate::api::answer(
                axum::http::StatusCode::OK,
                &serde_json::json!({"status": "healthy"}),
            )
        }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
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
