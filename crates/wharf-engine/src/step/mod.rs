//! One step from start to end: its environment, preconditions, attempts (retries and
//! repeats), timeout and output.

mod ending;
mod plan;

pub(crate) use plan::expand_smtp;

use ending::*;
use plan::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use wharf_spec::env::{Origin, Resolved};
use wharf_spec::{CommandSpec, Dag, RepeatMode, Step};
use wharf_store::{AttemptRecord, OutputRecord, RunKey, Status, now_ms};

use crate::executor::{Exit, LocalCommand, Program, StepJob, Work};
use crate::local::pause;
use crate::{Event, Executor, SharedStore, StepReport, condition, vars};

/// Which step of the DAG.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StepRef {
    Main(usize),
    Handler(&'static str),
}

impl StepRef {
    pub fn get(self, dag: &Dag) -> &Step {
        match self {
            Self::Main(i) => &dag.steps[i],
            Self::Handler(event) => dag
                .handlers
                .iter()
                .find(|(e, _)| *e == event)
                .map(|(_, s)| s)
                .unwrap_or(&dag.steps[0]),
        }
    }

    pub fn handler(self) -> Option<&'static str> {
        match self {
            Self::Main(_) => None,
            Self::Handler(e) => Some(e),
        }
    }
}

pub(crate) struct StepCtx {
    pub dag: Arc<Dag>,
    pub step: StepRef,
    /// The step's place in the run, for its log file names.
    pub position: usize,
    pub store: SharedStore,
    pub run: RunKey,
    pub run_id: String,
    pub log_dir: PathBuf,
    pub run_log: PathBuf,
    /// The run's variables when the step starts (earlier outputs included).
    pub vars: Arc<Resolved>,
    pub stop: CancellationToken,
    pub grace: Duration,
    pub events: UnboundedSender<Event>,
    /// Attempts already made (a retried run numbers on).
    pub attempts_before: u32,
    pub executor: Arc<dyn Executor>,
    /// The DAG-level container's `env`, expanded (for steps that run in it).
    pub container_env: Arc<Vec<(String, String)>>,
    /// The run's secrets, hidden in logs and recorded outputs.
    pub mask: Arc<wharf_spec::env::Mask>,
    /// The last attempt's number and exit code, recorded with the step's result (one
    /// transaction instead of two).
    pub pending_attempt: std::sync::Mutex<Option<(u32, Option<i32>)>>,
}

impl StepCtx {
    /// Ends the step as stopped (`aborted`).
    fn stopped(
        &self,
        started: Instant,
        attempt: u32,
        code: Option<i32>,
        stderr: Option<PathBuf>,
    ) -> StepOutcome {
        self.finish(
            started,
            attempt,
            StepOutcome::aborted(code),
            Some("stopped".into()),
            stderr,
        )
    }

    /// Records the end of an attempt that is not the step's last.
    fn flush_attempt(&self) {
        let pending = self.pending_attempt.lock().ok().and_then(|mut p| p.take());
        if let Some((attempt, code)) = pending {
            let name = &self.step.get(&self.dag).name;
            let (run, name) = (self.run, name.clone());
            self.record("the attempt's end", move |s| {
                s.finish_attempt(run, &name, attempt, code)
            });
        }
    }
}

pub(crate) struct StepOutcome {
    pub status: Status,
    pub exit_code: Option<i32>,
    /// The step failed but its `continueOn` lets the run go on.
    pub continued: bool,
    pub output: Option<OutputRecord>,
    /// Further variables the step sets (an approval's inputs).
    pub more: Vec<OutputRecord>,
    /// The last attempt's stdout and stderr logs, when it ran.
    pub logs: Option<(PathBuf, PathBuf)>,
}

impl StepOutcome {
    fn aborted(exit_code: Option<i32>) -> Self {
        Self {
            status: Status::Aborted,
            exit_code,
            continued: false,
            output: None,
            more: Vec::new(),
            logs: None,
        }
    }
}

impl StepCtx {
    fn record(
        &self,
        what: &'static str,
        f: impl Fn(&wharf_store::Store) -> wharf_store::Result<()> + Send + 'static,
    ) {
        self.store.record(what, f);
    }

    /// Records and reports the step's result. A step with a Dagu 2.x `approval` that
    /// succeeded waits for a person instead (its outputs are recorded already).
    fn finish(
        &self,
        started: Instant,
        attempts: u32,
        outcome: StepOutcome,
        error: Option<String>,
        stderr: Option<PathBuf>,
    ) -> StepOutcome {
        let step = self.step.get(&self.dag);
        match &step.approval {
            Some(approval) if outcome.status == Status::Succeeded => {
                let waiting = StepOutcome {
                    status: Status::Waiting,
                    continued: false,
                    ..outcome
                };
                let why = waiting_for(self, approval, &waiting);
                self.finish_as(started, attempts, waiting, Some(why), stderr)
            }
            _ => self.finish_as(started, attempts, outcome, error, stderr),
        }
    }

    fn finish_as(
        &self,
        started: Instant,
        attempts: u32,
        outcome: StepOutcome,
        error: Option<String>,
        stderr: Option<PathBuf>,
    ) -> StepOutcome {
        let mut outcome = outcome;
        outcome.logs = stderr
            .as_ref()
            .map(|e| (e.with_extension("stdout"), e.clone()));
        let step = self.step.get(&self.dag);
        let attempt = self.pending_attempt.lock().ok().and_then(|mut p| p.take());
        let (run, name, status, code, err) = (
            self.run,
            step.name.clone(),
            outcome.status,
            outcome.exit_code,
            error.clone(),
        );
        self.record("the step's result", move |s| {
            s.finish_step(run, &name, attempt, status, code, err.as_deref())
        });
        let _ = self.events.send(Event::StepFinished(StepReport {
            name: step.name.clone(),
            handler: self.step.handler(),
            status: outcome.status,
            exit_code: outcome.exit_code,
            attempts,
            duration: started.elapsed(),
            error,
            stderr,
        }));
        outcome
    }
}

/// The exit code of an attempt that timed out.
const TIMED_OUT_CODE: i32 = 124;

/// What a step needs for each of its attempts: resolved once, before the first.
struct Prepared {
    vars: Resolved,
    dir: std::path::PathBuf,
    shell: Vec<String>,
    /// The step's variables as its process gets them (without the attempt's own),
    /// shared by its attempts' jobs.
    env: Arc<[(String, String)]>,
    plan: Plan,
}

impl Prepared {
    fn expand(&self, text: &str) -> String {
        self.vars.expand(text, &vars::host)
    }
}

/// What the step runs: a shell program on the host, what it execs in the DAG-level
/// container, or a container of its own (its command, or the image's own CMD).
enum Plan {
    Host(Program),
    /// `jq`, `http`, `mail`: the job is made (its variables expanded) per attempt.
    Builtin,
    Exec(crate::ExecJob),
    Container,
    SubDag(Arc<crate::subdag::SubDagJob>),
}

/// How one attempt ended, as the step sees it.
struct Attempted {
    code: Option<i32>,
    timed_out: bool,
    /// Why the attempt failed, if it did.
    error: Option<String>,
    /// The start of stdout as text (or why it is not usable as an output).
    captured: Result<String, String>,
    output: Option<OutputRecord>,
    /// Further variables: a step's declared outputs (Dagu 2.x), an approval's inputs.
    more: Vec<OutputRecord>,
    stderr: std::path::PathBuf,
    /// A sub-DAG that waits for an approval.
    waiting: bool,
    /// Sub-DAG runs of which one partially succeeded and none failed.
    partial: bool,
}

/// Runs the step; records and reports its result.
pub(crate) async fn run(ctx: StepCtx) -> StepOutcome {
    let started = Instant::now();
    let dag = Arc::clone(&ctx.dag);
    let step = ctx.step.get(&dag);
    if let wharf_spec::Executor::Approval(approval) = &step.executor {
        return approval_step(&ctx, step, approval, started).await;
    }
    if let wharf_spec::Executor::HumanTask(task) = &step.executor {
        return human_task(&ctx, step, &dag, task, started).await;
    }
    if step.approval.is_some()
        && let Some(decided) = decided_step(&ctx, step, started).await
    {
        return decided;
    }
    let fail = |ctx: &StepCtx, error: String| {
        let outcome = StepOutcome {
            continued: step.continue_on().failure,
            ..bare(Status::Failed)
        };
        ctx.finish(started, ctx.attempts_before, outcome, Some(error), None)
    };
    if !step.preconditions.is_empty() {
        let (run, name) = (ctx.run, step.name.clone());
        ctx.record("the step's start", move |s| s.start_step(run, &name));
    }
    let p = match prepare(&ctx, step, &dag) {
        Ok(p) => p,
        Err(e) => return fail(&ctx, e),
    };
    match preconditions(&ctx, step, &p, started).await {
        Ok(None) => {}
        Ok(Some(skipped)) => return skipped,
        Err(e) => return fail(&ctx, e),
    }
    let mut attempt = ctx.attempts_before;
    let (mut retries, mut repeats) = (0u32, 0u32);
    loop {
        attempt += 1;
        let mut done = match run_attempt(&ctx, step, &dag, &p, attempt).await {
            Ok(done) => done,
            Err(e) => return fail(&ctx, e),
        };
        if let Ok(mut pending) = ctx.pending_attempt.lock() {
            *pending = Some((attempt, done.code));
        }
        if ctx.stop.is_cancelled() && !done.timed_out {
            return ctx.stopped(started, attempt, done.code, Some(done.stderr));
        }
        if let Some(interval) = again(step, &p, &mut done, &mut retries, &mut repeats).await {
            ctx.flush_attempt();
            if pause(interval, &ctx.stop).await {
                continue;
            }
            return ctx.stopped(started, attempt, done.code, Some(done.stderr));
        }
        for o in done.output.iter().chain(&done.more) {
            // The record never holds a secret (the next steps get the value as it is).
            let (run, mut o) = (ctx.run, o.clone());
            o.value = ctx.mask.text(&o.value);
            ctx.record("the step's output", move |s| s.set_output(run, &o));
        }
        let outcome = outcome_of(step, &done);
        return ctx.finish(started, attempt, outcome, done.error, Some(done.stderr));
    }
}

/// The step's variables (the run's, the DAG-level container's for a step in it, its own
/// `env`, then `DAG_*`), its working directory and shell, and what it runs.
fn prepare(ctx: &StepCtx, step: &Step, dag: &Dag) -> Result<Prepared, String> {
    let placement = dag.placement(step);
    let on_host = placement == wharf_spec::Placement::Host;
    let in_shared = placement == wharf_spec::Placement::SharedContainer;
    let mut vars = Resolved::clone(&ctx.vars);
    if in_shared {
        for (name, value) in ctx.container_env.iter() {
            vars.set(name, value.clone(), Origin::Env);
        }
    }
    for var in &step.env {
        let env_now = env_pairs(&vars);
        let expand_now = |t: &str| vars.expand(t, &vars::host);
        // Dagu 2.x runs no command in `env`.
        let value = if dag.dialect == wharf_spec::Dialect::V2 {
            vars.expand_unquoted(&var.value, &vars::host)
        } else {
            vars::evaluate_sync(&var.value, &expand_now, &env_now, &dag.working_dir)
                .map_err(|e| format!("env {}: {e}", var.name))?
        };
        vars.set(&var.name, value, Origin::Env);
    }
    // The run's context for `${dag.name}`, `${run.id}`, `${step.name}`, `${paths.log_file}`
    // (dotted: references, not variables of the process).
    for (name, value) in [
        ("dag.name", dag.name.clone()),
        ("run.id", ctx.run_id.clone()),
        ("step.name", step.name.clone()),
        ("paths.log_file", ctx.run_log.to_string_lossy().into_owned()),
    ] {
        vars.set(name, value, Origin::Output);
    }
    if let Some(id) = &step.id {
        vars.set("step.id", id.clone(), Origin::Output);
    }
    // The run's artifacts folder (Dagu 2.x): `artifact.*` actions and `stdout.artifact`
    // write there, and a step's process finds it in `DAG_RUN_ARTIFACTS_DIR`.
    if dag.dialect == wharf_spec::Dialect::V2 {
        let artifacts = artifacts_dir(ctx);
        if let Err(e) = std::fs::create_dir_all(&artifacts) {
            return Err(format!(
                "cannot create the run's artifacts folder {}: {e}",
                artifacts.display()
            ));
        }
        vars.set(
            "DAG_RUN_ARTIFACTS_DIR",
            artifacts.to_string_lossy().into_owned(),
            Origin::Output,
        );
    }
    let expand = |text: &str| vars.expand(text, &vars::host);
    let dir = match &step.dir {
        Some(d) => wharf_spec::formats::resolve_path(&dag.working_dir, &expand(d)),
        None => dag.working_dir.clone(),
    };
    // A step's own working directory is made when it is missing, as Dagu makes it (the
    // DAG's own folder was checked when the run started).
    if on_host
        && step.dir.is_some()
        && !dir.is_dir()
        && let Err(e) = std::fs::create_dir_all(&dir)
    {
        return Err(format!(
            "cannot create the working directory {}: {e}",
            dir.display()
        ));
    }
    let shell = shell_of(step, dag, &expand);
    let mut env = env_pairs(&vars);
    env.push(("DAG_NAME".into(), dag.name.clone()));
    env.push(("DAG_RUN_ID".into(), ctx.run_id.clone()));
    env.push((
        "DAG_RUN_LOG_FILE".into(),
        ctx.run_log.to_string_lossy().into_owned(),
    ));
    env.push(("DAG_RUN_STEP_NAME".into(), step.name.clone()));
    // The run's named params as a JSON object (as Dagu 1.30 gives them).
    let params: serde_json::Map<String, serde_json::Value> = vars
        .vars
        .iter()
        .filter(|v| v.origin == Origin::Param)
        .map(|v| (v.name.clone(), serde_json::Value::String(v.value.clone())))
        .collect();
    let params = serde_json::Value::Object(params).to_string();
    env.push(("DAG_PARAMS_JSON".into(), params.clone()));
    env.push(("DAGU_PARAMS_JSON".into(), params));
    let plan = if placement == wharf_spec::Placement::Engine
        || matches!(step.executor, wharf_spec::Executor::HumanTask(_))
    {
        Plan::Builtin
    } else if let Some(call) = &step.call {
        let dags = crate::installation::dags_dir(ctx.store.home());
        Plan::SubDag(Arc::new(sub_dag_job(call, dag, &vars, Some(&dags))?))
    } else if in_shared {
        Plan::Exec(exec_job(step, dag, &vars, &expand)?)
    } else if on_host {
        Plan::Host(program_of(step, ctx, &vars, &expand)?)
    } else {
        Plan::Container
    };
    Ok(Prepared {
        vars,
        dir,
        shell,
        env: env.into(),
        plan,
    })
}

/// The run's artifacts folder: beside its logs.
pub(crate) fn artifacts_dir(ctx: &StepCtx) -> std::path::PathBuf {
    ctx.log_dir.join("artifacts")
}

/// An attempt's log files: stdout's and stderr's (the same file for `logOutput: merged`).
fn log_paths(
    ctx: &StepCtx,
    step: &Step,
    dag: &Dag,
    attempt: u32,
) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::fmt::Write;
    let name = wharf_store::safe_name(&step.name);
    let mut path = ctx.log_dir.clone().into_os_string();
    path.reserve(name.len() + 32);
    let _ = write!(path, "/{}-{name}.{attempt}.stdout", ctx.position);
    let stdout = std::path::PathBuf::from(path);
    // `logOutput: merged`: both streams go to the one log, in the order they come.
    let merged = step.log_output.unwrap_or(dag.log_output) == wharf_spec::LogOutput::Merged;
    let stderr = if merged {
        stdout.clone()
    } else {
        stdout.with_extension("stderr")
    };
    (stdout, stderr)
}

/// The job the step's first attempt would get if it started now, made without recording
/// or writing anything: for its executor to get ready while the steps before it run (a
/// container created ahead). None for a step that cannot be foreseen so: one with
/// preconditions (it may not run), or whose variables run commands.
pub(crate) fn foresee(ctx: &StepCtx) -> Option<StepJob> {
    let dag = Arc::clone(&ctx.dag);
    let step = ctx.step.get(&dag);
    if !step.preconditions.is_empty()
        || step
            .env
            .iter()
            .any(|v| v.value.contains('`') || v.value.contains("$("))
    {
        return None;
    }
    let p = prepare(ctx, step, &dag).ok()?;
    let attempt = ctx.attempts_before + 1;
    let (stdout, stderr) = log_paths(ctx, step, &dag, attempt);
    job_of(ctx, step, &dag, &p, attempt, (&stdout, &stderr), None).ok()
}

/// One attempt: its job, the executor's run of it within the step's timeout, its output.
async fn run_attempt(
    ctx: &StepCtx,
    step: &Step,
    dag: &Dag,
    p: &Prepared,
    attempt: u32,
) -> Result<Attempted, String> {
    let (stdout, stderr) = log_paths(ctx, step, dag, attempt);
    let _ = ctx.events.send(Event::StepStarted {
        name: step.name.clone(),
        attempt,
        handler: ctx.step.handler(),
    });
    let stop = ctx.stop.child_token();
    let job = job_of(ctx, step, dag, p, attempt, (&stdout, &stderr), Some(&stop))?;
    let timeout = step.timeout_sec.filter(|t| *t > 0).map(Duration::from_secs);
    let mut timed_out = false;
    let exit = {
        let running = ctx.executor.run(&job);
        tokio::pin!(running);
        let limit = async {
            match timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            exit = &mut running => exit,
            () = limit => {
                timed_out = true;
                stop.cancel();
                stopping(&mut running, ctx.grace).await
            }
            () = stop.cancelled() => stopping(&mut running, ctx.grace).await,
        }
    };
    if matches!(job.work, crate::Work::Container(_)) {
        let (run, name, ran_on) = (ctx.run, step.name.clone(), exit.ran_on.clone());
        ctx.record("where the step ran", move |s| {
            s.set_ran_on(run, &name, ran_on.as_deref())
        });
    }
    let max_output = dag.max_output_size.unwrap_or(1024 * 1024);
    let captured = capture(&exit.stdout_head, max_output);
    let mut error =
        describe_failure(&exit, timed_out, timeout).map(|e| with_stderr_tail(e, &stderr));
    let mut output = None;
    // A sub-DAG step's result is its output also when a child failed: the summary is
    // what the steps after it (with `continueOn`) look at.
    if (exit.succeeded() || (step.call.is_some() && !exit.stopped))
        && let Some(o) = &step.output
    {
        match &captured {
            Ok(text) => {
                output = Some(OutputRecord {
                    step: step.name.clone(),
                    name: o.name.clone(),
                    key: o.key.clone().unwrap_or_else(|| o.name.clone()),
                    value: text.clone(),
                    omit: o.omit,
                });
            }
            Err(e) => error = Some(e.clone()),
        }
    }
    let mut more = Vec::new();
    if exit.succeeded() && error.is_none() && !step.outputs.is_empty() {
        match read_outputs(step, &outputs_file(&stdout), max_output) {
            Ok(found) => {
                let id = step.id.as_deref().unwrap_or(&step.name);
                for (name, value) in found {
                    let full = format!("steps.{id}.outputs.{name}");
                    more.push(OutputRecord {
                        step: step.name.clone(),
                        name: full.clone(),
                        key: full,
                        value,
                        omit: false,
                    });
                }
            }
            Err(e) => error = Some(e),
        }
    }
    if exit.succeeded()
        && error.is_none()
        && let Some(publish) = &step.publish
    {
        match published(step, publish, p, &exit.stdout_head, &stderr, max_output) {
            Ok(records) => more.extend(records),
            Err(e) => error = Some(e),
        }
    }
    Ok(Attempted {
        more,
        // A step that timed out exits 124, as `timeout(1)` reports it (and Dagu does).
        code: if timed_out {
            Some(TIMED_OUT_CODE)
        } else {
            exit.recorded_code()
        },
        timed_out,
        error,
        captured,
        output,
        stderr,
        waiting: exit.waiting,
        partial: exit.partial,
    })
}

/// Whether the step goes again after `done` (a retry of a failed attempt, or a repeat),
/// and after how long. A repeat condition that cannot be evaluated fails the step.
async fn again(
    step: &Step,
    p: &Prepared,
    done: &mut Attempted,
    retries: &mut u32,
    repeats: &mut u32,
) -> Option<Duration> {
    let succeeded = done.error.is_none();
    if done.waiting {
        return None;
    }
    if !succeeded && let Some(r) = &step.retry {
        let code_matches =
            r.exit_codes.is_empty() || done.code.is_some_and(|c| r.exit_codes.contains(&c));
        if *retries < r.limit && code_matches {
            *retries += 1;
            return Some(backoff(
                r.interval_sec,
                r.backoff,
                r.max_interval_sec,
                *retries,
            ));
        }
    }
    let r = step.repeat.as_ref()?;
    *repeats += 1;
    let within_limit = r.limit.is_none_or(|l| *repeats < l);
    let by_exit_code = !r.exit_codes.is_empty() && r.condition.is_none();
    if !within_limit || !(succeeded || by_exit_code) {
        return None;
    }
    let repeat = match r.mode {
        RepeatMode::Always => true,
        RepeatMode::While | RepeatMode::Until => {
            let expand = |t: &str| p.expand(t);
            match repeat_condition(r, done.code, &p.shell, &p.env, &p.dir, &expand).await {
                Ok(holds) => (r.mode == RepeatMode::While) == holds,
                Err(e) => {
                    done.error = Some(format!("repeat condition: {e}"));
                    false
                }
            }
        }
    };
    if !repeat {
        return None;
    }
    *retries = 0;
    Some(backoff(
        r.interval_sec,
        r.backoff,
        r.max_interval_sec,
        *repeats,
    ))
}

/// The step's result from its last attempt: succeeded, or failed (continued per
/// `continueOn`, and counted a success with `markSuccess`).
fn outcome_of(step: &Step, done: &Attempted) -> StepOutcome {
    if done.waiting {
        return StepOutcome {
            status: Status::Waiting,
            exit_code: None,
            continued: false,
            output: done.output.clone(),
            more: Vec::new(),
            logs: None,
        };
    }
    if done.error.is_none() {
        return StepOutcome {
            status: if done.partial {
                Status::PartiallySucceeded
            } else {
                Status::Succeeded
            },
            exit_code: done.code,
            continued: false,
            output: done.output.clone(),
            more: done.more.clone(),
            logs: None,
        };
    }
    let c = step.continue_on();
    let output_matches = !c.output.is_empty()
        && done
            .captured
            .as_ref()
            .is_ok_and(|text| c.output.iter().any(|p| condition::text_matches_in(text, p)));
    let continued =
        c.failure || done.code.is_some_and(|code| c.exit_codes.contains(&code)) || output_matches;
    let status = if continued && c.mark_success {
        Status::Succeeded
    } else {
        Status::Failed
    };
    StepOutcome {
        status,
        exit_code: done.code,
        continued,
        // Only a sub-DAG step has an output after a failure (its result summary).
        output: if continued { done.output.clone() } else { None },
        more: Vec::new(),
        logs: None,
    }
}

/// The child DAG of a `call` step and the params of each child run.
fn sub_dag_job(
    call: &wharf_spec::Call,
    dag: &Dag,
    vars: &Resolved,
    dags: Option<&std::path::Path>,
) -> Result<crate::subdag::SubDagJob, String> {
    let target = vars.expand(&call.target, &vars::host);
    let mut child = wharf_spec::calls::resolve(dag, &target, dags)?;
    // A `foreach` body is the DAG's own steps, not a sub-DAG: it works where the DAG does.
    if call.foreach.is_some() && !child.working_dir_set {
        child.working_dir.clone_from(&dag.working_dir);
        child.working_dir_set = true;
    }
    if let Some(task) = crate::task::has_human_task(&child) {
        return Err(crate::task::refused_as_child(&child, task));
    }
    Ok(crate::subdag::SubDagJob {
        dag: Arc::new(child),
        children: crate::subdag::children_of(call, vars)?,
        parallel: call.parallel.is_some(),
        foreach: call.foreach.clone(),
        max_concurrent: call.parallel.as_ref().map_or(1, |p| p.max_concurrent),
    })
}

/// The reason a step waits: its approval's prompt, which may name the step's own outputs
/// (a 2.x `approval` after its step ran; a `hitl` step has none).
fn waiting_for(ctx: &StepCtx, approval: &wharf_spec::Approval, done: &StepOutcome) -> String {
    let mut vars = Resolved::clone(&ctx.vars);
    for o in done.output.iter().chain(&done.more) {
        vars.set(&o.name, o.value.clone(), Origin::Output);
    }
    let prompt = approval
        .prompt
        .as_deref()
        .map(|p| vars.expand(p, &vars::host))
        .unwrap_or_else(|| "approve or reject".to_owned());
    format!("waiting for approval: {prompt}")
}

/// A step with a Dagu 2.x `approval` that ran and waited, then was rejected: taken up
/// again, it is `rejected` without running. (Approved, it is kept as succeeded by the run
/// taken up again, and does not come here; with no decision, or approved and run again
/// by a retry, it runs and waits again.)
async fn decided_step(ctx: &StepCtx, step: &Step, started: Instant) -> Option<StepOutcome> {
    let (run, name) = (ctx.run, step.name.clone());
    let decision = ctx
        .store
        .call(move |s| s.decision(run, &name).ok().flatten())
        .await??;
    let wharf_store::Decision::Rejected(reason) = decision else {
        return None;
    };
    Some(rejected(ctx, started, reason))
}

/// A step a person rejected (with their reason): it, and so the run, is `rejected`.
fn rejected(ctx: &StepCtx, started: Instant, reason: Option<String>) -> StepOutcome {
    let why = match reason {
        Some(r) if !r.is_empty() => format!("rejected: {r}"),
        _ => "rejected".to_owned(),
    };
    ctx.finish_as(
        started,
        ctx.attempts_before,
        bare(Status::Rejected),
        Some(why),
        None,
    )
}

/// A step that waits for a person (`hitl`, `human.task`) starts: recorded, and the
/// decision taken on it, if one was.
async fn person_decision(ctx: &StepCtx, step: &Step) -> Option<wharf_store::Decision> {
    let (run, name) = (ctx.run, step.name.clone());
    ctx.record("the step's start", move |s| s.start_step(run, &name));
    let name = step.name.clone();
    ctx.store
        .call(move |s| s.decision(run, &name))
        .await
        .and_then(Result::ok)
        .flatten()
}

/// The step's preconditions: None when they are met (or it has none), the step's
/// `skipped` outcome when one is not, the error when one cannot be checked.
async fn preconditions(
    ctx: &StepCtx,
    step: &Step,
    p: &Prepared,
    started: Instant,
) -> Result<Option<StepOutcome>, String> {
    if step.preconditions.is_empty() {
        return Ok(None);
    }
    match condition::check(&step.preconditions, &p.shell, &p.env, &p.dir, &p.vars).await {
        Ok(None) => Ok(None),
        Ok(Some(why)) => Ok(Some(ctx.finish(
            started,
            ctx.attempts_before,
            bare(Status::Skipped),
            Some(format!("precondition not met: {why}")),
            None,
        ))),
        Err(e) => Err(format!("precondition: {e}")),
    }
}

/// An outcome that is its status alone: no exit code, no output.
fn bare(status: Status) -> StepOutcome {
    StepOutcome {
        status,
        exit_code: None,
        continued: false,
        output: None,
        more: Vec::new(),
        logs: None,
    }
}

/// What the step's record says of a waiting human task: its prompt, as resolved when it
/// opened, after this.
pub const WAITING_FOR_INPUT: &str = "waiting for a person: ";

/// A Dagu 2.x `human.task`: completed (its answer's fields become its outputs), rejected
/// (from the web UI), or else opened: its preconditions checked, its prompt resolved, and
/// the step `waiting` (the run stops there; the completion takes it up again). It runs
/// nothing.
async fn human_task(
    ctx: &StepCtx,
    step: &Step,
    dag: &Dag,
    task: &wharf_spec::HumanTask,
    started: Instant,
) -> StepOutcome {
    let run = ctx.run;
    match person_decision(ctx, step).await {
        Some(wharf_store::Decision::Completed(answer)) => {
            let mut done = bare(Status::Succeeded);
            done.more = task_outputs(step, task, &answer);
            for o in &done.more {
                let record = o.clone();
                ctx.record("a human task's answer", move |s| s.set_output(run, &record));
            }
            return ctx.finish(started, ctx.attempts_before, done, None, None);
        }
        Some(wharf_store::Decision::Rejected(reason)) => return rejected(ctx, started, reason),
        Some(wharf_store::Decision::Approved(_)) | None => {}
    }
    let fail = |error: String| {
        let failed = StepOutcome {
            continued: step.continue_on().failure,
            ..bare(Status::Failed)
        };
        ctx.finish(started, ctx.attempts_before, failed, Some(error), None)
    };
    let p = match prepare(ctx, step, dag) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match preconditions(ctx, step, &p, started).await {
        Ok(None) => {}
        Ok(Some(skipped)) => return skipped,
        Err(e) => return fail(e),
    }
    let prompt = p.expand(&task.prompt);
    let why = format!("{WAITING_FOR_INPUT}{prompt}");
    ctx.finish(
        started,
        ctx.attempts_before,
        bare(Status::Waiting),
        Some(why),
        None,
    )
}

/// The outputs a human task's canonical answer makes: `${steps.ID.outputs.FIELD}` for
/// each field of its form the answer holds.
pub fn task_outputs(
    step: &Step,
    task: &wharf_spec::HumanTask,
    answer: &serde_json::Value,
) -> Vec<OutputRecord> {
    let (Some(form), Some(answer)) = (&task.form, answer.as_object()) else {
        return Vec::new();
    };
    let id = step.id.as_deref().unwrap_or(&step.name);
    form.outputs(answer)
        .into_iter()
        .map(|(name, value)| {
            let full = format!("steps.{id}.outputs.{name}");
            OutputRecord {
                step: step.name.clone(),
                name: full.clone(),
                key: full,
                value,
                omit: false,
            }
        })
        .collect()
}

/// A `hitl` step: approved (its inputs become variables of the steps after it), rejected,
/// or, with no decision yet, waiting (the run stops there; an approval takes it up again).
async fn approval_step(
    ctx: &StepCtx,
    step: &Step,
    approval: &wharf_spec::Approval,
    started: Instant,
) -> StepOutcome {
    let run = ctx.run;
    match person_decision(ctx, step).await {
        Some(wharf_store::Decision::Approved(inputs)) => {
            let mut done = bare(Status::Succeeded);
            for (key, value) in inputs {
                let o = OutputRecord {
                    step: step.name.clone(),
                    name: key.clone(),
                    key,
                    value,
                    omit: false,
                };
                let record = o.clone();
                ctx.record("an approval's input", move |s| s.set_output(run, &record));
                done.more.push(o);
            }
            ctx.finish(started, ctx.attempts_before, done, None, None)
        }
        Some(wharf_store::Decision::Rejected(reason)) => rejected(ctx, started, reason),
        // A human task's answer on a `hitl` step (the DAG changed under the run): no inputs.
        Some(wharf_store::Decision::Completed(_)) => ctx.finish(
            started,
            ctx.attempts_before,
            bare(Status::Succeeded),
            None,
            None,
        ),
        None => {
            let waiting = bare(Status::Waiting);
            let why = waiting_for(ctx, approval, &waiting);
            ctx.finish(started, ctx.attempts_before, waiting, Some(why), None)
        }
    }
}
