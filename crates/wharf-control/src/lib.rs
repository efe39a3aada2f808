//! Run control, in one place for every caller (the command line, the API, the UI, the
//! scheduler): start a run as a process of its own and wait until it is recorded, stop
//! the runs of a DAG or one run (the runs of dead processes reaped first), start a retry,
//! and wait for runs to end.
//!
//! A run is always a `wharf run` (or `wharf retry`) process: the store is the only state
//! shared between the processes, so runs outlive whoever started them, and every kind of
//! caller sees every run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wharf_store::{RunRecord, Status, Store};

/// What went wrong controlling a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] wharf_store::Error),
    #[error("cannot start `wharf {what}`: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("run {run_id} ended before it started ({status})")]
    EndedEarly { run_id: String, status: String },
    #[error("run {run_id} did not start within {secs}s")]
    NotStarted { run_id: String, secs: u64 },
    #[error("run {run_id} of {dag} is not running ({status})")]
    NotRunning {
        dag: String,
        run_id: String,
        status: Status,
    },
    #[error("run {run_id} of {dag} is still running")]
    StillRunning { dag: String, run_id: String },
    #[error("the DAG `{0}` is already running")]
    AlreadyRunning(String),
    #[error("the DAG `{dag}` has a run `{run_id}` already")]
    RunIdTaken { dag: String, run_id: String },
    #[error("run {run_id} has no process to signal")]
    NoProcess { run_id: String },
    #[error("cannot signal the process of run {run_id} (pid {pid}): {source}")]
    Signal {
        run_id: String,
        pid: i32,
        source: nix::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// How long a start waits for the new process to record its run.
const START_LIMIT: Duration = Duration::from_secs(10);

/// The `wharf` binary that runs runs: this one.
fn wharf_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wharf"))
}

/// `wharf ARGS` as a process of its own: its own process group, no terminal, output
/// discarded (a run records everything in the store).
fn detached(home: &Path, args: &[String]) -> Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(wharf_exe())
        .args(args)
        .env("WHARF_HOME", home)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Spawn {
            what: args.first().cloned().unwrap_or_default(),
            source,
        })
}

/// Reaps a detached process in the background when it ends.
fn reap_in_background(mut child: std::process::Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// A run to start.
pub struct Start<'a> {
    pub file: &'a Path,
    pub dag: &'a str,
    pub run_id: &'a str,
    /// Params given for the run (data: never evaluated).
    pub params: &'a [String],
    /// Refused when a run of the DAG is going.
    pub singleton: bool,
    /// What starts it, as the run records it (`api`, `ui`, `schedule`).
    pub trigger: &'a str,
    /// An earlier run (its name and id) whose DAG, as that run ran it, the new run runs
    /// instead of the file as it is now (a run started again from another).
    pub as_run: Option<(&'a str, &'a str)>,
}

/// Held while a run is started, until its record exists: a singleton's check and the run
/// it lets start are one step for this process.
static STARTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts the run as a process of its own and waits until the store has it (the new
/// process records it first thing), so a caller can ask for it right away.
pub fn start(home: &Path, start: &Start<'_>) -> Result<()> {
    let _one_at_a_time = STARTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = Store::open(home)?;
    if start.singleton {
        let _ = store.reap_dead();
        if !store.running(Some(start.dag))?.is_empty() || !store.queued(Some(start.dag))?.is_empty()
        {
            return Err(Error::AlreadyRunning(start.dag.to_owned()));
        }
    }
    if store.run(start.dag, start.run_id)?.is_some() {
        return Err(Error::RunIdTaken {
            dag: start.dag.to_owned(),
            run_id: start.run_id.to_owned(),
        });
    }
    let mut args = vec![
        "run".to_owned(),
        start.file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        start.run_id.to_owned(),
        // The name the run is kept under (the DAG's own, or another given for it).
        "--name".to_owned(),
        start.dag.to_owned(),
        "--trigger".to_owned(),
        start.trigger.to_owned(),
    ];
    if let Some((dag, id)) = start.as_run {
        args.push("--dag-of-run".to_owned());
        args.push(format!("{dag}:{id}"));
    }
    if !start.params.is_empty() {
        args.push("--".into());
        args.extend(start.params.iter().cloned());
    }
    launch(&store, home, &args, start.dag, start.run_id)
}

/// Starts `wharf ARGS` detached and waits until the store has the run `run_id` of `dag`,
/// or the process ends without recording it.
pub fn launch(store: &Store, home: &Path, args: &[String], dag: &str, run_id: &str) -> Result<()> {
    let child = detached(home, args)?;
    if until_recorded(
        child,
        run_id,
        || Ok(store.run(dag, run_id)?.is_some()),
        false,
    )? {
        Ok(())
    } else {
        Err(Error::NotStarted {
            run_id: run_id.to_owned(),
            secs: START_LIMIT.as_secs(),
        })
    }
}

/// Waits until `seen` finds in the store what the detached `child` was started to record:
/// true once it does, false when `START_LIMIT` passed first; an error when the child ended
/// without it (unless `success_will_do` and it exited 0). The child is reaped either way.
fn until_recorded(
    mut child: std::process::Child,
    run_id: &str,
    seen: impl Fn() -> Result<bool>,
    success_will_do: bool,
) -> Result<bool> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if seen()? {
            reap_in_background(child);
            return Ok(true);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have recorded it just before it ended.
            if seen()? || (success_will_do && status.success()) {
                return Ok(true);
            }
            return Err(Error::EndedEarly {
                run_id: run_id.to_owned(),
                status: status.to_string(),
            });
        }
        if Instant::now() > deadline {
            reap_in_background(child);
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Enqueues a run: records it, `running` when its queue has a free place (its process
/// started here) or `queued` and parked (no process: it is started when a place frees,
/// by [`advance_queue`]). With `singleton`, refused while a run of the DAG runs or waits.
pub fn enqueue(
    store: &Store,
    home: &Path,
    new: &wharf_store::NewRun<'_>,
    singleton: bool,
) -> Result<Status> {
    let _one_at_a_time = STARTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if singleton {
        let _ = store.reap_dead();
        if !store.running(Some(new.dag))?.is_empty() || !store.queued(Some(new.dag))?.is_empty() {
            return Err(Error::AlreadyRunning(new.dag.to_owned()));
        }
    }
    let (run, status) = store.create_run_queued(new).map_err(|e| match e {
        wharf_store::Error::RunIdTaken { dag, run_id } => Error::RunIdTaken { dag, run_id },
        e => e.into(),
    })?;
    store.set_trigger(run, "queue")?;
    if status == Status::Queued {
        store.park(run)?;
        // A place may have freed since the record was made.
        if let Some((queue, limit)) = new.queue {
            advance_queue(store, home, queue, limit);
        }
        return Ok(status);
    }
    let Some(record) = store.run_by_key(run)? else {
        return Ok(status);
    };
    start_taken(store, home, &record)?;
    Ok(status)
}

/// Gives the free places of `queue` (of `limit`) to the runs first in line: a parked run's
/// process is started here, a waiting run's process is told to look (SIGCONT, which a
/// process that does not wait for it ignores; a pid taken by another process since is not
/// signalled). Called when a run of the queue ends, a run is enqueued, and by the
/// scheduler now and then.
pub fn advance_queue(store: &Store, home: &Path, queue: &str, limit: u32) {
    let Ok(next) = store.next_in_line(queue, limit) else {
        return;
    };
    for run in next {
        match run {
            wharf_store::InLine::Taken(record) => {
                let _ = start_taken(store, home, &record);
            }
            wharf_store::InLine::Waiting(pid, start) => {
                if start.is_some() && wharf_store::process_start(pid) == start {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGCONT,
                    );
                }
            }
        }
    }
}

/// [`advance_queue`] for every queue that has parked runs; `size` tells a queue's size
/// from one of its runs (its DAG's `maxActiveRuns`, or the global queue's).
pub fn advance_parked(store: &Store, home: &Path, size: impl Fn(&RunRecord) -> Option<u32>) {
    for run in store.parked().unwrap_or_default() {
        if let (Some(queue), Some(limit)) = (&run.queue, size(&run)) {
            advance_queue(store, home, queue, limit);
        }
    }
}

/// Starts the process of a run this process owns (`running`, just taken from its queue or
/// recorded) and hands the run to it. The record is this process's until the new one has
/// it: if this one ends first, the run is reaped (its process is gone) rather than left
/// to nobody. A process that cannot start fails the run.
fn start_taken(store: &Store, home: &Path, run: &RunRecord) -> Result<()> {
    let mut args = vec![
        "run".to_owned(),
        run.file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        run.run_id.clone(),
        // The name the run is kept under (`--name`, or a DAG renamed since).
        "--name".to_owned(),
        run.dag.clone(),
        "--enqueued".to_owned(),
    ];
    if !run.params.is_empty() {
        args.push("--".into());
        args.extend(run.params.iter().cloned());
    }
    match detached(home, &args) {
        Ok(child) => {
            store.hand_over(run.key, child.id())?;
            reap_in_background(child);
            Ok(())
        }
        Err(e) => {
            let _ = store.finish_run(
                run.key,
                Status::Failed,
                Some(&format!("its process could not start: {e}")),
            );
            Err(e)
        }
    }
}

/// Starts `wharf ARGS` detached, without waiting for anything it records.
pub fn spawn(home: &Path, args: &[String]) -> Result<()> {
    reap_in_background(detached(home, args)?);
    Ok(())
}

/// Starts `wharf retry` of a finished run, detached.
/// With `step`, that step alone is run again (`wharf retry --step`), or with `downstream`
/// that step and every step after it.
pub fn retry(home: &Path, run: &RunRecord, step: Option<&str>, downstream: bool) -> Result<()> {
    if run.status == Status::Running {
        return Err(Error::StillRunning {
            dag: run.dag.clone(),
            run_id: run.run_id.clone(),
        });
    }
    let mut args = vec![
        "retry".to_owned(),
        run.file.to_string_lossy().into_owned(),
        "--run-id".to_owned(),
        run.run_id.clone(),
    ];
    if let Some(step) = step {
        args.push("--step".into());
        args.push(step.to_owned());
        if downstream {
            args.push("--downstream".into());
        }
    }
    // Returns once the store shows the retry (the run reopened by its new process), so a
    // page loaded next follows it.
    let store = Store::open(home)?;
    let before = (run.status, run.pid, run.finished_at);
    let child = detached(home, &args)?;
    let changed = || {
        Ok(store
            .run(&run.dag, &run.run_id)?
            .is_none_or(|r| (r.status, r.pid, r.finished_at) != before))
    };
    until_recorded(child, &run.run_id, changed, true).map(|_| ())
}

/// Asks the process running `run` to stop it (SIGTERM, as `wharf stop` and a terminal's
/// Ctrl-C do): its steps get their stop signal, the grace period, the kill, the handlers.
pub fn signal(run: &RunRecord) -> Result<()> {
    let Some(pid) = run.pid.filter(|p| *p > 0) else {
        return Err(Error::NoProcess {
            run_id: run.run_id.clone(),
        });
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(|source| Error::Signal {
        run_id: run.run_id.clone(),
        pid,
        source,
    })
}

/// Stops one run of a DAG: the runs of dead processes are reaped first, so a run whose
/// process is gone is not signalled (its pid may be another process's now).
pub fn stop_run(store: &Store, dag: &str, run_id: &str) -> Result<RunRecord> {
    let _ = store.reap_dead();
    let run = store.run(dag, run_id)?.ok_or_else(|| Error::NotRunning {
        dag: dag.to_owned(),
        run_id: run_id.to_owned(),
        status: Status::NotStarted,
    })?;
    if run.status != Status::Running {
        return Err(Error::NotRunning {
            dag: dag.to_owned(),
            run_id: run.run_id,
            status: run.status,
        });
    }
    signal(&run)?;
    Ok(run)
}

/// Stops every running run of a DAG (the dead ones reaped first); each run signalled, or
/// why it could not be.
pub fn stop_dag(store: &Store, dag: &str) -> Result<Vec<(RunRecord, Result<()>)>> {
    let _ = store.reap_dead();
    Ok(store
        .running(Some(dag))?
        .into_iter()
        .map(|run| {
            let result = signal(&run);
            (run, result)
        })
        .collect())
}

/// Waits until each run is recorded as ended (reaping dead ones meanwhile), at most
/// `limit`; each run with how it ended, or None when it did not end in time.
pub fn wait_ended(
    store: &Store,
    runs: &[RunRecord],
    limit: Duration,
) -> Result<Vec<(String, Option<Status>)>> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::with_capacity(runs.len());
    for run in runs {
        let ended = loop {
            match store.run(&run.dag, &run.run_id)? {
                Some(r) if r.status.is_final() => break Some(r.status),
                Some(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                    let _ = store.reap_dead();
                }
                _ => break None,
            }
        };
        out.push((run.run_id.clone(), ended));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_is_not_running_is_not_signalled() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("store");
        let e = stop_run(&store, "d", "nope").expect_err("no such run");
        assert!(matches!(e, Error::NotRunning { .. }), "{e}");
        let runs = stop_dag(&store, "d").expect("stop");
        assert!(runs.is_empty());
    }
}
