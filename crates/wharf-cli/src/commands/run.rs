//! `wharf run` and `wharf retry`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;
use wharf_engine::{Control, Event, RunRequest, Status};
use wharf_store::{NewRun, Store};

use crate::ExitCode;
use crate::args::{DequeueArgs, EnqueueArgs, RestartArgs, RetryArgs, RunArgs};
use crate::commands::{checked_name, dag_name, find_run, load, open_store_reaping, valid};
use crate::error::{Error, Result};
use crate::progress::{Progress, TICK};
use crate::term::Term;

pub(crate) fn run(args: &RunArgs, term: &Term) -> Result<ExitCode> {
    let file = dag_file(&args.dag)?;
    // An earlier run the new one starts from (`--from-run-id`: the DAG's own, found under
    // the name it was kept under; `--dag-of-run NAME:ID`, from the API or the pages).
    // (The file is read for its name only then: a large DAG is not loaded twice.)
    let earlier: Option<(String, &str)> = match (&args.from_run_id, args.dag_of_run.as_deref()) {
        (Some(id), _) => Some((
            args.name.clone().unwrap_or_else(|| dag_name(&args.dag)),
            id.as_str(),
        )),
        (None, Some(run)) => run.rsplit_once(':').map(|(n, id)| (n.to_owned(), id)),
        (None, None) => None,
    };
    let given = || given_params(args.params_text.as_deref(), &args.params);
    // That run's DAG as it ran it; with `--from-run-id`, its params too.
    let (params, kept) = match earlier {
        Some((name, id)) => {
            let store = crate::commands::open_store()?;
            let run = find_run(&store, &name, Some(id))?;
            let kept = store.spec_of(run.key).ok().flatten();
            let params = if args.from_run_id.is_some() {
                run.params
            } else {
                given()?
            };
            (params, kept)
        }
        None => (given()?, None),
    };
    let record = if args.enqueued {
        Record::Enqueued
    } else {
        Record::New(args.trigger.as_deref().unwrap_or("cli"))
    };
    // `--default-working-dir`: relative to where wharf is started; it must be there.
    let default_dir = match &args.default_working_dir {
        Some(dir) => {
            let dir = std::env::current_dir()
                .map_err(|e| Error::Usage(format!("cannot read the current directory: {e}")))?
                .join(dir);
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "--default-working-dir: {} is not a directory",
                    dir.display()
                )));
            }
            Some(dir)
        }
        None => None,
    };
    if args.outputs_from.is_some() && args.only.is_empty() {
        return Err(Error::Usage(
            "--outputs-from requires --only: it gives the selected steps what an earlier run made"
                .into(),
        ));
    }
    start(
        &Source {
            file: &file,
            kept,
            default_dir: default_dir.as_deref(),
            only: &args.only,
            outputs_from: args.outputs_from.as_deref(),
        },
        args.run_id.as_deref(),
        args.name.as_deref(),
        &params,
        args.verbose,
        term,
        record,
    )
}

/// What a run runs: the DAG file, or the text of it an earlier run kept.
pub(crate) struct Source<'a> {
    pub file: &'a Path,
    pub kept: Option<String>,
    /// Where the steps work when the DAG names no working directory.
    pub default_dir: Option<&'a Path>,
    /// `--only`: the steps to run (the others skipped), and `--outputs-from`: the earlier
    /// run whose outputs and work files they start from.
    pub only: &'a [String],
    pub outputs_from: Option<&'a str>,
}

impl<'a> Source<'a> {
    pub(crate) fn file(file: &'a Path) -> Self {
        Self {
            file,
            kept: None,
            default_dir: None,
            only: &[],
            outputs_from: None,
        }
    }
}

/// Where a run's record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// This process records the run, started by what is named (`cli`, `api`, ...).
    New(&'a str),
    /// `wharf enqueue` recorded it and handed it to this process.
    Enqueued,
}

/// The params given for a run: `-p TEXT` (shell words, or JSON as Dagu takes it), then
/// those after `--`.
fn given_params(text: Option<&str>, after: &[String]) -> Result<Vec<String>> {
    let mut params = match text {
        Some(text) => {
            wharf_spec::params::words(text).map_err(|_| Error::ParamsText(text.to_owned()))?
        }
        None => Vec::new(),
    };
    params.extend(after.iter().cloned());
    Ok(params)
}

/// Keeps the run under `name` instead of the DAG's own name; another name than the DAG's
/// must be one a DAG file could be named.
fn keep_as(dag: &mut wharf_spec::Dag, name: Option<&str>) -> Result<()> {
    if let Some(name) = name.filter(|n| *n != dag.name) {
        dag.name = checked_name(name)?;
    }
    Ok(())
}

/// The id a new run gets: the one given (checked), or a new one.
pub(crate) fn run_id_of(given: Option<&str>) -> Result<String> {
    match given {
        Some(id) if !wharf_engine::valid_run_id(id) => Err(Error::RunId(id.to_owned())),
        Some(id) => Ok(id.to_owned()),
        None => Ok(wharf_engine::new_run_id()),
    }
}

/// `wharf enqueue`: a run recorded (`queued` when its queue has no place) and handed to a
/// process of its own that waits for its place and runs it ([`wharf_control::enqueue`]).
pub(crate) fn enqueue(args: &EnqueueArgs, term: &Term) -> Result<ExitCode> {
    let file = dag_file(&args.dag)?;
    let params = given_params(args.params_text.as_deref(), &args.params)?;
    let mut dag = valid(load(&file, term)?, &file)?;
    keep_as(&mut dag, args.name.as_deref())?;
    if let Some(queue) = &args.queue {
        if !wharf_spec::is_portable_name(queue) {
            return Err(Error::Usage(format!(
                "invalid queue `{queue}`: letters, digits, `_`, `-` and `.` only"
            )));
        }
        dag.queue = Some(queue.clone());
    }
    wharf_spec::params::check(&dag, &params).map_err(|source| Error::Params {
        file: file.display().to_string(),
        source,
    })?;
    let run_id = run_id_of(args.run_id.as_deref())?;
    let home = wharf_store::default_home();
    let file = std::path::absolute(&file).unwrap_or(file);
    let store = crate::commands::open_store()?;
    let (log_base, place) = wharf_engine::placement(&dag);
    let new = NewRun {
        dag: &dag.name,
        run_id: &run_id,
        file: &file,
        params: &params,
        log_base: log_base.as_deref(),
        parent: None,
        queue: place.as_ref().map(|(q, n)| (q.as_str(), *n)),
    };
    let status = wharf_control::enqueue(&store, &home, &new, false)?;
    println!("{run_id}");
    eprintln!("run {run_id} of {}: {status}", dag.name);
    Ok(ExitCode::Success)
}

fn record_error(e: wharf_store::Error) -> Error {
    match e {
        e @ wharf_store::Error::RunIdTaken { .. } => Error::RunIdTaken(e),
        source => Error::Record {
            what: "the run",
            source,
        },
    }
}

/// `wharf dequeue`: a queued run taken out of its queue (it ends `aborted`).
pub(crate) fn dequeue(args: &DequeueArgs) -> Result<ExitCode> {
    let store = crate::commands::open_store()?;
    let (name, id) = match (&args.dag_run, &args.run_id) {
        (Some(both), _) => match both.split_once(':') {
            Some((d, i)) => (d.to_owned(), Some(i.to_owned())),
            None => (dag_name(both), None),
        },
        (None, id) => (dag_name(&args.dag), id.clone()),
    };
    let record = |e| Error::Record {
        what: "the queue",
        source: e,
    };
    let run = match id {
        Some(id) => find_run(&store, &name, Some(&id))?,
        // The DAG's oldest queued run; else, as Dagu's `dequeue QUEUE`, the oldest run
        // waiting in the queue of that name.
        None => {
            let queued = store.queued(None).map_err(record)?;
            let of_queue = |r: &&wharf_store::RunRecord| r.queue.as_deref() == Some(&args.dag);
            match queued
                .iter()
                .find(|r| r.dag == name)
                .or_else(|| queued.iter().find(of_queue))
            {
                Some(run) => run.clone(),
                None => {
                    eprintln!("no run of `{name}` is queued, nor any run in a queue of that name");
                    return Ok(ExitCode::Failure);
                }
            }
        }
    };
    let name = run.dag.clone();
    if !store.dequeue(run.key, "dequeued").map_err(record)? {
        eprintln!(
            "run {} of {name} is not queued (it is {})",
            run.run_id, run.status
        );
        return Ok(ExitCode::Failure);
    }
    eprintln!("dequeued run {} of {name}", run.run_id);
    Ok(ExitCode::Success)
}

/// `wharf suspend` / `wharf resume`.
pub(crate) fn suspend(dag: &str, suspended: bool) -> Result<ExitCode> {
    let name = dag_name(dag);
    let store = crate::commands::open_store()?;
    store
        .set_suspended(&name, suspended)
        .map_err(|source| Error::Record {
            what: "the suspension",
            source,
        })?;
    eprintln!(
        "{name}: {}",
        if suspended {
            "suspended (the scheduler skips its slots)"
        } else {
            "resumed"
        }
    );
    Ok(ExitCode::Success)
}

/// `wharf restart`: the DAG's running runs stopped (as `wharf stop` does), then a new run
/// with the params of its latest run.
pub(crate) fn restart(args: &RestartArgs, term: &Term) -> Result<ExitCode> {
    let name = dag_name(&args.dag);
    if crate::commands::stop::stop_all(&name)? != ExitCode::Success {
        return Ok(ExitCode::Failure);
    }
    let store = crate::commands::open_store()?;
    let latest = store.latest_run(&name).map_err(|source| Error::Record {
        what: "the latest run",
        source,
    })?;
    drop(store);
    // The new run is kept under the name the latest was (`wharf run --name`).
    let (file, params, kept_as) = match latest {
        Some(run) if run.file.is_file() => (run.file, run.params, Some(run.dag)),
        Some(run) => (dag_file(&args.dag)?, run.params, Some(run.dag)),
        None => (dag_file(&args.dag)?, Vec::new(), None),
    };
    // `restartWaitSec`: a pause between the stop and the new start.
    let wait = wharf_spec::load_file(&file)
        .ok()
        .and_then(|l| l.dag)
        .and_then(|d| d.restart_wait_sec)
        .unwrap_or(0);
    if wait > 0 {
        eprintln!("waiting {wait}s before the new start (restartWaitSec)");
        std::thread::sleep(std::time::Duration::from_secs(wait));
    }
    start(
        &Source::file(&file),
        args.run_id.as_deref(),
        kept_as.as_deref(),
        &params,
        args.verbose,
        term,
        Record::New(args.trigger.as_deref().unwrap_or("cli")),
    )
}

/// Gives back to the system the memory the DAG's load used and freed (the file's YAML
/// tree, the decoder's scratch): glibc keeps freed memory inside its heap, where a file of
/// thousands of steps left megabytes that the run then held to its end.
fn release_load_memory() {
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only hands the allocator's free pages back to the system.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Starts a run of the DAG file `file` and runs it to its end.
/// `name`: the name the run is kept under, instead of the DAG's own.
pub(crate) fn start(
    source: &Source<'_>,
    run_id: Option<&str>,
    name: Option<&str>,
    params: &[String],
    verbose: bool,
    term: &Term,
    record: Record<'_>,
) -> Result<ExitCode> {
    let file = source.file;
    let loaded = crate::commands::load_as_ran(source.kept.clone(), file, term)?;
    // The DAG as the run runs it, kept with the run (its credentials redacted: a retry
    // takes them from the file): a retry runs it again as it was.
    let text = wharf_spec::redact::source(&loaded.source);
    let mut dag = valid(loaded, file)?;
    release_load_memory();
    keep_as(&mut dag, name)?;
    if let Some(dir) = source.default_dir.filter(|_| !dag.working_dir_set) {
        dag.working_dir = dir.to_path_buf();
    }
    let selected = only_steps(&dag, source.only)?;
    let run_id = run_id_of(run_id)?;
    wharf_spec::params::check(&dag, params).map_err(|source| Error::Params {
        file: file.display().to_string(),
        source,
    })?;
    let (store, dead) = open_store_reaping()?;
    // `--outputs-from`: the earlier run, found before this one is recorded.
    let earlier = match source.outputs_from {
        Some(from) => Some(find_run(&store, &dag.name, Some(from))?),
        None => None,
    };
    if let Some(days) = dag.hist_retention_days {
        let cutoff =
            wharf_store::now_ms() - i64::try_from(days).unwrap_or(0).saturating_mul(86_400_000);
        if let Err(e) = store.purge(&dag.name, cutoff) {
            eprintln!("warning: cannot remove old runs: {e}");
        }
    }
    if let Some(runs) = dag.hist_retention_runs {
        // The run about to start is one of the runs kept.
        let keep = usize::try_from(runs)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        if let Err(e) = store.purge_beyond(&dag.name, keep) {
            eprintln!("warning: cannot remove old runs: {e}");
        }
    }
    let (log_base, mut place) = wharf_engine::placement(&dag);
    let (run, status) = match record {
        Record::New(trigger) => {
            let new = NewRun {
                dag: &dag.name,
                run_id: &run_id,
                file: &dag.file,
                params,
                log_base: log_base.as_deref(),
                parent: None,
                queue: place.as_ref().map(|(q, n)| (q.as_str(), *n)),
            };
            let (run, status) = store.create_run_queued(&new).map_err(record_error)?;
            if let Err(e) = store.set_trigger(run, trigger) {
                eprintln!("warning: cannot record what started the run: {e}");
            }
            (run, status)
        }
        Record::Enqueued => {
            let found = store.run(&dag.name, &run_id).map_err(record_error)?;
            let Some(found) =
                found.filter(|r| matches!(r.status, Status::Queued | Status::Running))
            else {
                eprintln!(
                    "run {run_id} of {} is no longer queued: nothing to run",
                    dag.name
                );
                return Ok(ExitCode::Failure);
            };
            store
                .hand_over(found.key, std::process::id())
                .map_err(record_error)?;
            // The queue it was enqueued to, which need not be its DAG's own.
            place = found
                .queue
                .clone()
                .map(|q| (q, wharf_engine::queue_size_of(&found).unwrap_or(1)));
            (found.key, found.status)
        }
    };
    if let Err(e) = store.keep_spec(run, &text) {
        eprintln!("warning: cannot keep the DAG the run runs: {e}");
    }
    if status == Status::Queued
        && let Some((queue, size)) = &place
    {
        eprintln!(
            "run {run_id} of {} is queued: at most {size} run(s) of `{queue}` run at once",
            dag.name
        );
        if let Some(why) = wait_for_place(&store, run, queue, *size)? {
            eprintln!("run {run_id} of {} did not start: {why}", dag.name);
            return Ok(ExitCode::Failure);
        }
    }
    let log_dir = store.log_dir(log_base.as_deref(), &dag.name, &run_id);
    let home = store.home().to_path_buf();
    // `--only`: the other steps are kept as skipped; `--outputs-from`: an earlier run's
    // outputs and work files are the selected steps' to start from.
    let resume = match selected {
        Some(selected) => {
            let mut outputs = Vec::new();
            if let Some(earlier) = &earlier {
                outputs = store.outputs(earlier.key).map_err(record_error)?;
                if let Err(e) = wharf_engine::carry_over(&earlier.log_dir, &log_dir) {
                    eprintln!(
                        "warning: --outputs-from {}: its work files are not carried over: {e}",
                        earlier.run_id
                    );
                }
            }
            let kept = dag
                .steps
                .iter()
                .filter(|s| !selected.contains(&s.name))
                .map(|s| (s.name.clone(), Status::Skipped, None))
                .collect();
            Some(wharf_engine::Resume {
                kept,
                outputs,
                only: true,
            })
        }
        None => None,
    };
    let request = RunRequest {
        dag: Arc::new(dag),
        run,
        run_id,
        log_dir,
        params: params.to_vec(),
        resume,
        docker: None,
        builtin: None,
        notifier: None,
        tracer: None,
        shared: None,
        new_shared: None,
        lineage: None,
    };
    let code = execute(store, request, term, verbose, dead > 0);
    if let Some((queue, size)) = &place {
        // Its place is free: the run first in line gets it now.
        if let Ok(store) = wharf_store::Store::open(&home) {
            wharf_control::advance_queue(&store, &home, queue, *size);
        }
    }
    code
}

/// The names of the steps `--only` selects (by name or id); None without it.
fn only_steps(dag: &wharf_spec::Dag, only: &[String]) -> Result<Option<Vec<String>>> {
    if only.is_empty() {
        return Ok(None);
    }
    let mut names = Vec::new();
    for wanted in only.iter().map(|w| w.trim()).filter(|w| !w.is_empty()) {
        let Some(step) = dag
            .steps
            .iter()
            .find(|s| s.name == wanted || s.id.as_deref() == Some(wanted))
        else {
            let known: Vec<&str> = dag.steps.iter().map(|s| s.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--only: unknown step \"{wanted}\" in {}; its steps are {}",
                dag.name,
                known.join(", ")
            )));
        };
        names.push(step.name.clone());
    }
    Ok(Some(names))
}

/// Waits in the queue until the run is first in line and a place is free (it is then
/// `running`); None then, or why it left the queue (dequeued, stopped while waiting).
fn wait_for_place(
    store: &Store,
    run: wharf_store::RunKey,
    queue: &str,
    size: u32,
) -> Result<Option<String>> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = crate::commands::runtime()?;
    runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        // SIGCONT: a run of the queue ended (`wharf_control::wake_queue`); look again now.
        let mut woken = signal(SignalKind::from_raw(
            nix::sys::signal::Signal::SIGCONT as i32,
        ))
        .ok();
        // Told when a place frees (SIGCONT), a waiting run looks by itself only now and then
        // (for places freed by a run whose process was killed).
        let first = std::time::Duration::from_millis(50);
        let mut pause = first;
        loop {
            match store.take_place(run, queue, size) {
                Ok(true) => return Ok(None),
                Ok(false) => {}
                Err(wharf_store::Error::NotQueued(status)) => {
                    return Ok(Some(format!("it was taken out of the queue ({status})")));
                }
                Err(source) => {
                    return Err(Error::Record {
                        what: "the run's place in its queue",
                        source,
                    });
                }
            }
            let signalled = async {
                match (&mut interrupt, &mut terminate) {
                    (Some(i), Some(t)) => tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} },
                    _ => std::future::pending().await,
                }
            };
            let wake = async {
                match &mut woken {
                    Some(w) => {
                        w.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = signalled => {
                    let _ = store.dequeue(run, "dequeued: stopped while it waited for its place");
                    return Ok(Some("stopped while it waited in the queue".to_owned()));
                }
                () = wake => pause = first,
                () = tokio::time::sleep(pause) => {
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
            }
        }
    })
}

/// The file of the DAG `arg` names: `arg` itself when it is a file or a path, else
/// `ARG.yaml` (or `.yml`) in the DAGs folder ([`wharf_engine::dags_dir`]).
pub(crate) fn dag_file(arg: &str) -> Result<PathBuf> {
    let path = Path::new(arg);
    if path.is_file() || arg.contains('/') || arg.ends_with(".yaml") || arg.ends_with(".yml") {
        return Ok(path.to_path_buf());
    }
    let dags = wharf_engine::dags_dir(&wharf_store::default_home());
    ["yaml", "yml"]
        .iter()
        .map(|ext| dags.join(format!("{arg}.{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Read {
            path: path.to_path_buf(),
            reason: format!(
                "no such file, and no `{arg}.yaml` in the DAGs folder {}",
                dags.display()
            ),
        })
}

pub(crate) fn retry(args: &RetryArgs, term: &Term) -> Result<ExitCode> {
    let (store, dead) = open_store_reaping()?;
    let name = dag_name(&args.dag);
    let record = find_run(&store, &name, Some(&args.run_id))?;
    if record.status == Status::Running {
        return Err(Error::StillRunning {
            dag: name,
            run_id: record.run_id,
        });
    }
    // The DAG as the run ran it, kept with it; for a run from before wharf kept them, as
    // it is now: the file given, or the one the run was started from.
    let file = if std::path::Path::new(&args.dag).is_file() {
        args.dag.clone().into()
    } else {
        record.file.clone()
    };
    let loaded =
        crate::commands::load_as_ran(store.spec_of(record.key).ok().flatten(), &file, term)?;
    let mut dag = valid(loaded, &file)?;
    release_load_memory();
    // The run keeps the name it was kept under (`wharf run --name`, a renamed DAG).
    dag.name.clone_from(&record.dag);
    let resume = match &args.step {
        Some(step) => {
            if dag.step(step).is_none() {
                return Err(Error::NoSuchStep {
                    dag: name,
                    run_id: record.run_id,
                    step: step.clone(),
                    steps: dag
                        .steps
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            wharf_engine::resume_step(&store, &dag, &record, step, args.downstream).map(Some)
        }
        None => wharf_engine::resume_of(&store, &dag, &record),
    };
    let Some(resume) = resume.map_err(|source| Error::Record {
        what: "the retry",
        source,
    })?
    else {
        eprintln!(
            "run {} of {name} {}: nothing to retry",
            record.run_id, record.status
        );
        return Ok(ExitCode::Success);
    };
    store
        .reopen_run(record.key)
        .and_then(|()| store.set_trigger(record.key, "retry"))
        .map_err(|source| Error::Record {
            what: "the retry",
            source,
        })?;
    let request = RunRequest {
        dag: Arc::new(dag),
        run: record.key,
        run_id: record.run_id.clone(),
        log_dir: record.log_dir.clone(),
        params: record.params.clone(),
        resume: Some(resume),
        docker: None,
        builtin: None,
        notifier: None,
        tracer: None,
        shared: None,
        new_shared: None,
        lineage: None,
    };
    execute(store, request, term, args.verbose, dead > 0)
}

/// Shows the run's events (`show(Some(event))`), and ticks a few times a second
/// (`show(None)`), until the run finishes; then gives the engine's result. It ends as well
/// when the engine's task ends without finishing the run (a panic in it), even if
/// something else still holds a sender of the events: a run never hangs on its display.
async fn follow<T>(
    mut events: mpsc::UnboundedReceiver<Event>,
    mut engine: tokio::task::JoinHandle<T>,
    mut show: impl FnMut(Shown<'_>),
) -> std::result::Result<T, tokio::task::JoinError> {
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            event = events.recv() => {
                // The events already sent are shown together (a step's end and the next
                // step's start are one write to the terminal, not two).
                let mut next = event;
                let mut finished = next.is_none();
                while let Some(event) = next {
                    show(Shown::Event(&event));
                    if matches!(event, Event::RunFinished { .. }) {
                        finished = true;
                        break;
                    }
                    next = events.try_recv().ok();
                }
                show(Shown::Flush);
                if finished {
                    break;
                }
            }
            ended = &mut engine => {
                // What the engine sent before it ended is still shown.
                while let Ok(event) = events.try_recv() {
                    show(Shown::Event(&event));
                }
                show(Shown::Flush);
                return ended;
            }
            _ = ticker.tick() => show(Shown::Tick),
        }
    }
    engine.await
}

/// What [`follow`] gives its display: an event; the end of the events sent so far (what
/// was drawn for them goes out); a tick of the clock (a few a second).
enum Shown<'a> {
    Event(&'a Event),
    Flush,
    Tick,
}

/// Runs the request on a single-threaded runtime, showing progress, stopping on signals.
/// `found_dead`: runs of dead processes were found, whose containers go first.
fn execute(
    store: Store,
    mut request: RunRequest,
    term: &Term,
    verbose: bool,
    found_dead: bool,
) -> Result<ExitCode> {
    let uses_docker = request
        .dag
        .steps
        .iter()
        .chain(request.dag.handlers.iter().map(|(_, s)| s))
        .any(|s| {
            !matches!(
                request.dag.placement(s),
                wharf_spec::Placement::Host | wharf_spec::Placement::Engine
            )
        })
        || request.dag.container.is_some();
    let client = wharf_docker::Client::new();
    let auths = Arc::new(wharf_docker::Auths::new(
        request.dag.registry_auths.as_ref(),
    ));
    request.builtin = Some(wharf_builtin::executor());
    request.notifier = Some(Arc::new(wharf_builtin::SmtpNotifier));
    request.tracer = Some(Arc::new(wharf_builtin::OtlpExporter));
    request.docker = Some(Arc::new(wharf_docker::DockerExecutor::new(
        client.clone(),
        Arc::clone(&auths),
    )));
    if request.dag.container.is_some() {
        request.shared = Some(Arc::new(wharf_docker::SharedExecutor::new(
            client.clone(),
            Arc::clone(&auths),
        )));
    }
    // Sub-DAGs with a DAG-level container get one of their own per run.
    let (for_children, auths_for_children) = (client.clone(), auths);
    request.new_shared = Some(Arc::new(move || {
        Arc::new(wharf_docker::SharedExecutor::new(
            for_children.clone(),
            Arc::clone(&auths_for_children),
        )) as Arc<dyn wharf_engine::SharedContainer>
    }));
    let runtime = crate::commands::runtime()?;
    let forced = Forced {
        home: store.home().to_path_buf(),
        run: request.run,
    };
    let summary = runtime.block_on(async move {
        // First of all: a stop request from now on ends the run the orderly way.
        let control = Control::default();
        listen_for_signals(control.clone(), forced);
        if uses_docker || found_dead {
            // What crashed runs left behind goes first (it may hold names this run needs).
            crate::commands::cleanup::remove_containers(&client).await;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let engine = tokio::spawn(wharf_engine::execute(store, request, tx, control));
        let mut progress = Progress::new(term);
        let mut tails = crate::commands::run::tails::Tails::new(verbose);
        let ended = follow(rx, engine, |shown| match shown {
            Shown::Event(event) => {
                tails.event(event);
                progress.event(event);
            }
            Shown::Flush => progress.flush(),
            Shown::Tick => {
                tails.poll();
                progress.tick();
            }
        })
        .await;
        progress.finish();
        ended
    });
    let summary = summary.map_err(|e| Error::Engine(e.to_string()))?;
    Ok(match summary.status {
        // A run that waits for an approval did all it could for now.
        Status::Succeeded | Status::PartiallySucceeded | Status::Skipped | Status::Waiting => {
            ExitCode::Success
        }
        _ => ExitCode::Failure,
    })
}

/// What a forced stop needs to end the run itself.
struct Forced {
    home: std::path::PathBuf,
    run: wharf_store::RunKey,
}

/// How long a forced stop waits for the run to end before it ends the process.
const FORCE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Forced {
    /// Ends the process if the run has not ended within [`FORCE_WAIT`] (something it waits
    /// for, such as Docker, does not answer): the run is recorded failed, its processes
    /// are killed, and its containers are left to `wharf cleanup`.
    fn arm(&self) {
        let (home, run) = (self.home.clone(), self.run);
        std::thread::spawn(move || {
            std::thread::sleep(FORCE_WAIT);
            let message = "forced to stop while something the run waited for did not answer; `wharf cleanup` removes its containers";
            eprintln!("error: {message}");
            if let Ok(store) = Store::open(&home) {
                let _ = store.abandon_run(run, message);
            }
            std::process::exit(1);
        });
    }
}

/// The first SIGINT/SIGTERM/SIGHUP stops the run gracefully; a second one forces it.
fn listen_for_signals(control: Control, forced: Forced) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::signal::unix::{SignalKind, signal};
    let count = Arc::new(AtomicUsize::new(0));
    let forced = Arc::new(forced);
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        let (control, count, forced) = (control.clone(), Arc::clone(&count), Arc::clone(&forced));
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let n = count.fetch_add(1, Ordering::SeqCst);
                if n == 0 {
                    eprintln!(
                        "stopping: steps get their stop signal, and are killed after the grace period (again to force)"
                    );
                    control.stop.cancel();
                } else {
                    control.force.cancel();
                    control.stop.cancel();
                    if n == 1 {
                        forced.arm();
                    }
                }
            }
        });
    }
}

pub(crate) mod tails {
    //! `--verbose`: the steps' output, printed as it is written to their logs.
    use std::collections::HashMap;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::PathBuf;

    use wharf_engine::Event;

    pub(crate) struct Tails {
        on: bool,
        /// Log file → bytes already shown, and the step it belongs to.
        files: HashMap<PathBuf, (u64, String, bool)>,
        log_dir: Option<PathBuf>,
    }

    impl Tails {
        pub fn new(on: bool) -> Self {
            Self {
                on,
                files: HashMap::new(),
                log_dir: None,
            }
        }

        pub fn event(&mut self, event: &Event) {
            if !self.on {
                return;
            }
            match event {
                Event::RunStarted { log_dir, .. } => self.log_dir = Some(log_dir.clone()),
                Event::StepStarted { .. } | Event::StepFinished(_) | Event::RunFinished { .. } => {
                    self.poll()
                }
                Event::Notice(_)
                | Event::Activity { .. }
                | Event::ContainerStarting { .. }
                | Event::ContainerReady { .. } => {}
            }
        }

        pub fn poll(&mut self) {
            if !self.on {
                return;
            }
            let Some(dir) = &self.log_dir else { return };
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let is_err = name.ends_with(".stderr");
                    if !(is_err || name.ends_with(".stdout")) {
                        continue;
                    }
                    let step = name.split_once('-').map(|(_, rest)| rest).unwrap_or(&name);
                    let step = step.rsplitn(3, '.').nth(2).unwrap_or(step).to_owned();
                    self.files.entry(path).or_insert((0, step, is_err));
                }
            }
            let mut out = std::io::stdout().lock();
            for (path, (seen, step, is_err)) in &mut self.files {
                let Ok(mut f) = std::fs::File::open(path) else {
                    continue;
                };
                if f.seek(SeekFrom::Start(*seen)).is_err() {
                    continue;
                }
                let mut buf = Vec::new();
                let _ = f.read_to_end(&mut buf);
                // Only whole lines, so two steps' lines never interleave mid-line.
                let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
                    continue;
                };
                *seen += (end + 1) as u64;
                for line in String::from_utf8_lossy(&buf[..=end]).lines() {
                    let stream = if *is_err { "!" } else { "|" };
                    let _ = writeln!(out, "{step} {stream} {line}");
                }
            }
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Shown, follow};
    use std::time::Duration;
    use tokio::sync::mpsc;
    use wharf_engine::{Event, Status};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    }

    fn finished() -> Event {
        Event::RunFinished {
            status: Status::Succeeded,
            duration: Duration::from_millis(1),
            error: None,
        }
    }

    /// Follows an engine made of `body` (given the events' sender) while a second sender
    /// stays held throughout, as a task or a thread of a run may hold one; gives the
    /// engine's result and the events shown, as text.
    fn follow_engine<T, F>(
        body: impl FnOnce(mpsc::UnboundedSender<Event>) -> F,
    ) -> (Result<T, tokio::task::JoinError>, Vec<String>)
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + Send + 'static,
    {
        runtime().block_on(async {
            let (tx, rx) = mpsc::unbounded_channel();
            let _held = tx.clone();
            let engine = tokio::spawn(body(tx));
            let mut shown = Vec::new();
            let keep = |event: Shown<'_>| match event {
                Shown::Event(event) => shown.push(format!("{event:?}")),
                Shown::Flush => shown.push("flush".into()),
                Shown::Tick => {}
            };
            let result = tokio::time::timeout(Duration::from_secs(10), follow(rx, engine, keep))
                .await
                .expect("the display ended instead of waiting for events forever");
            (result, shown)
        })
    }

    #[test]
    fn the_display_ends_with_the_run_and_gives_the_engines_result() {
        let (result, shown) = follow_engine(|tx| async move {
            tx.send(Event::Notice("one".into())).expect("sent");
            tx.send(finished()).expect("sent");
            7
        });
        assert_eq!(result.expect("the engine's result"), 7);
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(shown[0].contains("one"), "{shown:?}");
        assert_eq!(shown[2], "flush", "{shown:?}");
    }

    #[test]
    fn events_sent_together_are_shown_in_order_then_written_once() {
        let (result, shown) = follow_engine(|tx| async move {
            for text in ["a", "b", "c"] {
                tx.send(Event::Notice(text.into())).expect("sent");
            }
            tokio::task::yield_now().await;
            tx.send(Event::Notice("d".into())).expect("sent");
            tx.send(finished()).expect("sent");
        });
        result.expect("the engine ended");
        let order: Vec<&str> = shown
            .iter()
            .map(|s| match s.as_str() {
                "flush" => "flush",
                s if s.contains("\"a\"") => "a",
                s if s.contains("\"b\"") => "b",
                s if s.contains("\"c\"") => "c",
                s if s.contains("\"d\"") => "d",
                _ => "finished",
            })
            .collect();
        assert_eq!(
            order,
            ["a", "b", "c", "flush", "d", "finished", "flush"],
            "{shown:?}"
        );
    }

    #[test]
    fn a_panic_in_the_engine_ends_the_display_even_while_a_sender_is_held() {
        let (result, shown) = follow_engine(|tx| async move {
            tx.send(Event::Notice("before the panic".into()))
                .expect("sent");
            tokio::task::yield_now().await;
            panic!("the engine failed");
        });
        let error = result.expect_err("the engine's task panicked");
        assert!(error.is_panic(), "{error}");
        assert!(
            shown.iter().any(|e| e.contains("before the panic")),
            "{shown:?}"
        );
    }
}
