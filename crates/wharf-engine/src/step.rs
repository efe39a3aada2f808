//! One step from start to end: its environment, preconditions, attempts (retries and
//! repeats), timeout and output.

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
    pub vars: Resolved,
    pub stop: CancellationToken,
    pub grace: Duration,
    pub events: UnboundedSender<Event>,
    /// Attempts already made (a retried run numbers on).
    pub attempts_before: u32,
    pub executor: Arc<dyn Executor>,
    /// The DAG-level container's `env`, expanded (for steps that run in it).
    pub container_env: Arc<Vec<(String, String)>>,
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
}

impl StepOutcome {
    fn aborted(exit_code: Option<i32>) -> Self {
        Self {
            status: Status::Aborted,
            exit_code,
            continued: false,
            output: None,
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

    fn finish(
        &self,
        started: Instant,
        attempts: u32,
        outcome: StepOutcome,
        error: Option<String>,
        stderr: Option<PathBuf>,
    ) -> StepOutcome {
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

/// What a step needs for each of its attempts: resolved once, before the first.
struct Prepared {
    vars: Resolved,
    dir: std::path::PathBuf,
    shell: Vec<String>,
    /// The step's variables as its process gets them (without the attempt's own).
    env: Vec<(String, String)>,
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
    Exec(crate::ExecJob),
    Container,
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
    stderr: std::path::PathBuf,
}

/// Runs the step; records and reports its result.
pub(crate) async fn run(ctx: StepCtx) -> StepOutcome {
    let started = Instant::now();
    let dag = Arc::clone(&ctx.dag);
    let step = ctx.step.get(&dag);
    let fail = |ctx: &StepCtx, error: String| {
        let outcome = StepOutcome {
            status: Status::Failed,
            exit_code: None,
            continued: step.continue_on.failure,
            output: None,
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
    if !step.preconditions.is_empty() {
        let expand = |t: &str| p.expand(t);
        match condition::check(&step.preconditions, &p.shell, &p.env, &p.dir, &expand).await {
            Ok(None) => {}
            Ok(Some(why)) => {
                let outcome = StepOutcome {
                    status: Status::Skipped,
                    exit_code: None,
                    continued: false,
                    output: None,
                };
                let why = format!("precondition not met: {why}");
                return ctx.finish(started, ctx.attempts_before, outcome, Some(why), None);
            }
            Err(e) => return fail(&ctx, format!("precondition: {e}")),
        }
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
        if let Some(o) = &done.output {
            let (run, o) = (ctx.run, o.clone());
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
    let mut vars = ctx.vars.clone();
    if in_shared {
        for (name, value) in ctx.container_env.iter() {
            vars.set(name, value.clone(), Origin::Env);
        }
    }
    for var in &step.env {
        let env_now = env_pairs(&vars);
        let expand_now = |t: &str| vars.expand(t, &vars::host);
        let value = vars::evaluate_sync(&var.value, &expand_now, &env_now, &dag.working_dir)
            .map_err(|e| format!("env {}: {e}", var.name))?;
        vars.set(&var.name, value, Origin::Env);
    }
    let expand = |text: &str| vars.expand(text, &vars::host);
    let dir = match &step.dir {
        Some(d) => wharf_spec::formats::resolve_path(&dag.working_dir, &expand(d)),
        None => dag.working_dir.clone(),
    };
    // The DAG's own folder was checked when the run started.
    if on_host && step.dir.is_some() && !dir.is_dir() {
        return Err(format!(
            "the working directory {} does not exist",
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
    let plan = if in_shared {
        Plan::Exec(exec_job(step, dag, &expand)?)
    } else if on_host {
        Plan::Host(program_of(step, ctx, &expand)?)
    } else {
        Plan::Container
    };
    Ok(Prepared {
        vars,
        dir,
        shell,
        env,
        plan,
    })
}

/// One attempt: its job, the executor's run of it within the step's timeout, its output.
async fn run_attempt(
    ctx: &StepCtx,
    step: &Step,
    dag: &Dag,
    p: &Prepared,
    attempt: u32,
) -> Result<Attempted, String> {
    let base = format!(
        "{}-{}.{attempt}",
        ctx.position,
        wharf_store::safe_name(&step.name)
    );
    let stdout = ctx.log_dir.join(format!("{base}.stdout"));
    let stderr = ctx.log_dir.join(format!("{base}.stderr"));
    let _ = ctx.events.send(Event::StepStarted {
        name: step.name.clone(),
        attempt,
        handler: ctx.step.handler(),
    });
    let stop = ctx.stop.child_token();
    let job = job_of(ctx, step, dag, p, attempt, (&stdout, &stderr), &stop)?;
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
    let max_output = dag.max_output_size.unwrap_or(1024 * 1024);
    let captured = capture(&exit.stdout_head, max_output);
    let mut error =
        describe_failure(&exit, timed_out, timeout).map(|e| with_stderr_tail(e, &stderr));
    let mut output = None;
    if exit.succeeded()
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
    Ok(Attempted {
        code: exit.recorded_code(),
        timed_out,
        error,
        captured,
        output,
        stderr,
    })
}

/// The executor's job for one attempt; the attempt is recorded when it starts.
fn job_of(
    ctx: &StepCtx,
    step: &Step,
    dag: &Dag,
    p: &Prepared,
    attempt: u32,
    (stdout, stderr): (&std::path::Path, &std::path::Path),
    stop: &tokio_util::sync::CancellationToken,
) -> Result<StepJob, String> {
    let record = AttemptRecord {
        attempt,
        started_at: now_ms(),
        finished_at: None,
        exit_code: None,
        stdout: stdout.to_path_buf(),
        stderr: stderr.to_path_buf(),
        pgid: None,
    };
    let mut env = p.env.clone();
    env.push((
        "DAG_RUN_STEP_STDOUT_FILE".into(),
        stdout.to_string_lossy().into_owned(),
    ));
    env.push((
        "DAG_RUN_STEP_STDERR_FILE".into(),
        stderr.to_string_lossy().into_owned(),
    ));
    let expand = |t: &str| p.expand(t);
    let work = match &p.plan {
        Plan::Host(program) => Work::Host(LocalCommand {
            shell: p.shell.clone(),
            program: program.clone(),
        }),
        Plan::Exec(e) => Work::Exec(e.clone()),
        Plan::Container => match container_job(step, dag, ctx, &expand) {
            Some(c) => Work::Container(Box::new(c)),
            None => return Err("the step has no container to run in".into()),
        },
    };
    let (run, name) = (ctx.run, step.name.clone());
    let on_spawn: Option<Arc<dyn Fn(i32) + Send + Sync>> = if matches!(work, Work::Host(_)) {
        // The attempt is recorded once its process runs, with its process group.
        let store = Arc::clone(&ctx.store);
        Some(Arc::new(move |pgid| {
            let record = AttemptRecord {
                pgid: Some(pgid),
                ..record.clone()
            };
            let name = name.clone();
            store.record("the attempt", move |s| s.start_attempt(run, &name, &record));
        }))
    } else {
        // No local process to report its start: the attempt is recorded now.
        ctx.record("the attempt", move |s| s.start_attempt(run, &name, &record));
        None
    };
    let redirect = |path: &Option<String>| {
        path.as_ref()
            .map(|f| wharf_spec::formats::resolve_path(&dag.working_dir, &expand(f)))
    };
    Ok(StepJob {
        dag_name: dag.name.clone(),
        step_name: step.name.clone(),
        attempt,
        env,
        positional: p.vars.positional.clone(),
        dir: p.dir.clone(),
        work,
        activity: {
            let (events, name) = (ctx.events.clone(), step.name.clone());
            Arc::new(move |text| {
                let _ = events.send(Event::Activity {
                    name: name.clone(),
                    text,
                });
            })
        },
        notice: {
            let (events, name) = (ctx.events.clone(), step.name.clone());
            let run_log = ctx.run_log.clone();
            Arc::new(move |m| {
                let text = format!("{name}: {m}");
                crate::dispatcher::append_run_log(&run_log, &format!("note: {text}"));
                let _ = events.send(Event::Notice(text));
            })
        },
        stdout: stdout.to_path_buf(),
        stderr: stderr.to_path_buf(),
        redirect_stdout: redirect(&step.stdout),
        redirect_stderr: redirect(&step.stderr),
        stop: stop.clone(),
        signal: step
            .signal_on_stop
            .and_then(|s| nix::sys::signal::Signal::try_from(s.number).ok())
            .unwrap_or(nix::sys::signal::Signal::SIGTERM),
        grace: ctx.grace,
        capture_stdout: (step.output.is_some() || !step.continue_on.output.is_empty())
            .then_some(dag.max_output_size.unwrap_or(1024 * 1024)),
        on_spawn,
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
    if done.error.is_none() {
        return StepOutcome {
            status: Status::Succeeded,
            exit_code: done.code,
            continued: false,
            output: done.output.clone(),
        };
    }
    let c = &step.continue_on;
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
        output: None,
    }
}

/// The named variables for the step's process. Positional params are not variables: they
/// reach the shell as its own `$1`, `$2`, ...
fn env_pairs(vars: &Resolved) -> Vec<(String, String)> {
    vars::step_env(vars)
}

/// The step's shell: its own, the DAG's, `$SHELL`, or `sh`.
fn shell_of(step: &Step, dag: &Dag, expand: &(dyn Fn(&str) -> String + Sync)) -> Vec<String> {
    let shell: Vec<String> = step
        .shell
        .as_ref()
        .or(dag.shell.as_ref())
        .map(|words| words.iter().map(|w| expand(w)).collect())
        .or_else(|| {
            std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty())
                .map(|s| vec![s])
        })
        .unwrap_or_else(|| vec!["sh".into()]);
    if shell.is_empty() {
        vec!["sh".into()]
    } else {
        shell
    }
}

/// What the shell runs: the command line, or the script (with `command` as its
/// interpreter when both are given).
fn program_of(
    step: &Step,
    ctx: &StepCtx,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<Program, String> {
    let line = step.command.as_ref().map(|c| match c {
        // A string is shell words: the shell expands its variables itself (from the
        // environment), which keeps quoting right.
        CommandSpec::Line(line) => line.clone(),
        // A list is argv: its items are expanded here and quoted for the shell.
        CommandSpec::Argv(argv) => shell_words::join(argv.iter().map(|a| expand(a))),
    });
    let Some(script) = &step.script else {
        return line
            .map(Program::Line)
            .ok_or_else(|| "the step has nothing to run".to_owned());
    };
    let file = ctx.log_dir.join(format!(
        "{}-{}.script",
        ctx.position,
        wharf_store::safe_name(&step.name)
    ));
    std::fs::write(&file, script)
        .map_err(|e| format!("cannot write the script to {}: {e}", file.display()))?;
    match line {
        Some(line) => Ok(Program::Line(format!(
            "{line} {}",
            shell_words::quote(&file.to_string_lossy())
        ))),
        None if script.starts_with("#!") => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("cannot make the script executable: {e}"))?;
            Ok(Program::Executable(file))
        }
        None => Ok(Program::Script(file)),
    }
}

/// What a step in the DAG-level container execs there. A list `command` is argv; a string
/// is split into words like a shell would, without one (images need not have a shell),
/// unless the step or DAG names a `shell`, which then runs the line. A `script` is fed to
/// the `command` (or its `#!` interpreter, or the shell) on stdin.
fn exec_job(
    step: &Step,
    dag: &Dag,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<crate::ExecJob, String> {
    let shell: Option<Vec<String>> = step
        .shell
        .as_ref()
        .or(dag.shell.as_ref())
        .map(|words| words.iter().map(|w| expand(w)).collect())
        .filter(|w: &Vec<String>| !w.is_empty());
    let words = |line: &str| -> Vec<String> {
        shell_words::split(line)
            .unwrap_or_else(|_| line.split_whitespace().map(str::to_owned).collect())
            .iter()
            .map(|w| expand(w))
            .collect()
    };
    let command = step.command.as_ref().map(|c| match c {
        CommandSpec::Argv(argv) => argv.iter().map(|a| expand(a)).collect::<Vec<_>>(),
        CommandSpec::Line(line) => match &shell {
            Some(sh) if step.script.is_none() => {
                let mut argv = sh.clone();
                argv.extend(["-c".to_owned(), line.clone()]);
                argv
            }
            _ => words(line),
        },
    });
    let (argv, stdin) = match (&step.script, command) {
        (None, Some(argv)) => (argv, None),
        (None, None) => return Err("the step has nothing to run".into()),
        (Some(script), Some(argv)) => (argv, Some(script.clone())),
        (Some(script), None) => {
            let interpreter = script
                .strip_prefix("#!")
                .and_then(|rest| rest.lines().next())
                .map(|line| {
                    line.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter(|w| !w.is_empty());
            let argv = interpreter
                .or(shell)
                .unwrap_or_else(|| vec!["sh".to_owned()]);
            (argv, Some(script.clone()))
        }
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err("the step's command is empty".into());
    }
    let container_dir = dag
        .container
        .as_ref()
        .and_then(|c| c.working_dir.as_deref());
    let working_dir = step.dir.as_deref().map(|d| {
        let d = expand(d);
        match container_dir {
            Some(base) if !d.starts_with('/') => {
                format!("{}/{d}", base.trim_end_matches('/'))
            }
            _ => d,
        }
    });
    Ok(crate::ExecJob {
        argv,
        stdin,
        working_dir,
    })
}

/// The attempt's stdout, trimmed, for `output:` (an error past `maxOutputSize`).
fn capture(head: &[u8], max: u64) -> Result<String, String> {
    if head.len() as u64 > max {
        return Err(format!(
            "the step's output is larger than maxOutputSize ({max} bytes)"
        ));
    }
    Ok(String::from_utf8_lossy(head).trim().to_owned())
}

fn describe_failure(exit: &Exit, timed_out: bool, timeout: Option<Duration>) -> Option<String> {
    let timed_out_text = || format!("timed out after {}s", timeout.map_or(0, |t| t.as_secs()));
    if let Some(e) = &exit.error {
        return Some(if timed_out {
            format!("{}; {e}", timed_out_text())
        } else {
            e.clone()
        });
    }
    if timed_out {
        return Some(timed_out_text());
    }
    match (exit.code, exit.signal) {
        (Some(0), _) => None,
        (Some(code), _) => Some(format!("exit code {code}")),
        (None, Some(sig)) => Some(format!("killed by signal {sig}")),
        (None, None) => Some("ended without an exit code".into()),
    }
}

/// A failure's message, ending with the last line the step wrote to stderr.
fn with_stderr_tail(message: String, stderr: &std::path::Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(stderr) else {
        return message;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    match text.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
        Some(last) => {
            let last: String = last.chars().take(300).collect();
            format!("{message}: {last}")
        }
        None => message,
    }
}

/// An attempt told to stop: its executor signals it, waits the grace period, kills it, and
/// reports how it ended. When that does not happen in time (what the step runs on does not
/// answer, as a Docker daemon that hangs), the attempt is given up: a stop or a timeout
/// ends the step whatever the executor waits for.
async fn stopping(
    running: &mut std::pin::Pin<&mut impl Future<Output = Exit>>,
    grace: Duration,
) -> Exit {
    let bound = grace * 2 + STOP_MARGIN;
    match tokio::time::timeout(bound, running).await {
        Ok(exit) => exit,
        Err(_) => Exit {
            stopped: true,
            ..Exit::error(format!(
                "the step did not end within {}s of being told to stop, so wharf stopped waiting for it; `wharf cleanup` removes what it left",
                bound.as_secs()
            ))
        },
    }
}

/// How long past twice its grace period an attempt that was told to stop may take to end.
const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The wait before the n-th retry or repeat (n ≥ 1).
fn backoff(interval_sec: u64, factor: Option<f64>, max_sec: Option<u64>, n: u32) -> Duration {
    let base = Duration::from_secs(interval_sec);
    let Some(factor) = factor else { return base };
    let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = (interval_sec as f64) * factor.powi(exponent);
    let secs = max_sec.map_or(secs, |m| secs.min(m as f64));
    Duration::from_secs_f64(secs.clamp(0.0, 365.0 * 86400.0))
}

async fn repeat_condition(
    r: &wharf_spec::RepeatPolicy,
    code: Option<i32>,
    shell: &[String],
    env: &[(String, String)],
    dir: &std::path::Path,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<bool, String> {
    match (&r.condition, &r.expected) {
        (Some(c), Some(e)) => condition::matches(c, e, env, dir, expand).await,
        // A command: its variables are the shell's to expand, from the environment.
        (Some(c), None) => condition::run_ok(c, shell, env, dir).await,
        (None, _) => Ok(code.is_some_and(|c| r.exit_codes.contains(&c))),
    }
}

/// The container settings of a step with its own container, `${VAR}` expanded.
fn container_job(
    step: &Step,
    dag: &Dag,
    ctx: &StepCtx,
    expand: &dyn Fn(&str) -> String,
) -> Option<crate::ContainerJob> {
    let wharf_spec::Executor::Docker(config) = &step.executor else {
        return None;
    };
    let mut config = (**config).clone();
    let ex = |v: &Option<String>| v.as_deref().map(expand);
    config.image = ex(&config.image);
    config.container_name = ex(&config.container_name);
    config.working_dir = ex(&config.working_dir);
    config.exec.user = ex(&config.exec.user);
    config.exec.working_dir = ex(&config.exec.working_dir);
    for var in &mut config.exec.env {
        var.value = expand(&var.value);
    }
    for v in &mut config.volumes {
        if let wharf_spec::VolumeSource::Bind(source) = &v.source {
            let absolute = wharf_spec::formats::resolve_path(&dag.working_dir, &expand(source));
            v.source = wharf_spec::VolumeSource::Bind(absolute.to_string_lossy().into_owned());
        }
    }
    let argv = step.command.as_ref().map(|c| match c {
        CommandSpec::Argv(argv) => argv.iter().map(|a| expand(a)).collect(),
        CommandSpec::Line(line) => {
            let words = shell_words::split(line).unwrap_or_else(|_| vec![line.clone()]);
            words.iter().map(|w| expand(w)).collect()
        }
    });
    let mut labels = crate::labels::owner(&dag.name, &ctx.run_id, &step.name);
    labels.push((
        crate::labels::AUTO_REMOVE.to_owned(),
        config.auto_remove.to_string(),
    ));
    Some(crate::ContainerJob {
        config,
        argv,
        labels,
    })
}
