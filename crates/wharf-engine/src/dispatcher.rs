//! The dispatcher: one per run, the only owner of the run's state.
//!
//! It starts every step whose dependencies are done (within `maxActiveSteps`), and then
//! waits for the first of: a step task ends, the run is asked to stop, the run's deadline
//! passes. A stop cancels the token every step's token descends from; the step tasks stop
//! their attempts themselves (signal, grace, kill) and report `aborted`. Steps never
//! started stay `not_started`. Handlers run after the steps, also after a stop, under a
//! token that only a forced stop cancels.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wharf_spec::env::{Origin, Resolved};
use wharf_spec::{Dag, Param};
use wharf_store::Status;

use crate::step::{self, StepCtx, StepOutcome, StepRef};
use crate::{
    Control, Event, Executor, LocalExecutor, RunRequest, RunSummary, SharedStore, condition, vars,
};

/// The state of a step in the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Waiting,
    Running,
    Done { status: Status, continued: bool },
}

/// Where a run's main steps stand between events: for each step, the steps that depend
/// on it and how many of its own dependencies are not done yet; the steps that can start
/// (in file order); the steps done whose dependents are still to be looked at.
struct Frontier {
    dependents: Vec<Vec<usize>>,
    left: Vec<usize>,
    ready: std::collections::BTreeSet<usize>,
    done: std::collections::VecDeque<usize>,
}

impl Frontier {
    fn new(deps: &[Vec<usize>], slots: &[Slot]) -> Self {
        let dependents = wharf_spec::dependents(deps);
        let left = deps.iter().map(Vec::len).collect();
        let ready = (0..deps.len())
            .filter(|&i| deps[i].is_empty() && slots[i] == Slot::Waiting)
            .collect();
        // Steps kept from an earlier run (a retry) are done from the start.
        let done = (0..slots.len())
            .filter(|&i| matches!(slots[i], Slot::Done { .. }))
            .collect();
        Self {
            dependents,
            left,
            ready,
            done,
        }
    }
}

struct Dispatcher {
    dag: Arc<Dag>,
    store: SharedStore,
    req_run: wharf_store::RunKey,
    run_id: String,
    log_dir: std::path::PathBuf,
    run_log: std::path::PathBuf,
    events: UnboundedSender<Event>,
    /// Shared with the steps that run: a step's context takes it as it is when the step
    /// starts, and an output set later makes the dispatcher's own copy.
    vars: Arc<Resolved>,
    grace: Duration,
    local: Arc<dyn Executor>,
    docker: Arc<dyn Executor>,
    shared: Arc<dyn Executor>,
    /// Runs the steps that `call` another DAG.
    subdag: Arc<dyn Executor>,
    /// Runs `jq`, `http` and `mail` steps.
    builtin: Arc<dyn Executor>,
    notifier: Option<Arc<dyn crate::Notifier>>,
    /// Mail being sent about failed steps (`mailOnError`): the run ends after them.
    mails: Vec<tokio::task::JoinHandle<()>>,
    /// The DAG-level container, when the DAG has one and a step or handler runs in it.
    container: Option<Arc<dyn crate::SharedContainer>>,
    /// `container.env`, expanded: steps in the container get it under their own env.
    container_env: Arc<Vec<(String, String)>>,
    attempts_before: std::collections::HashMap<String, u32>,
    /// The run's secrets, hidden wherever the run writes.
    mask: Arc<wharf_spec::env::Mask>,
    /// Why the run cannot start (a secret that cannot be read, params its schema refuses,
    /// sub-DAGs that call each other, files its work directory cannot have): it fails
    /// before any step.
    setup_error: Option<String>,
    /// The steps that wait for an approval when the steps are done (`DAG_WAITING_STEPS`).
    waiting: Vec<String>,
}

/// What a run reads from its record before it starts: for a retry, the attempts its
/// steps made and the logs of the steps it keeps.
#[derive(Default)]
pub(crate) struct Prior {
    /// What started the run, as recorded (`cli`, `schedule`, `queue`, `retry`, ...).
    trigger: Option<String>,
    attempts: std::collections::HashMap<String, u32>,
    /// A kept step's last stdout and stderr logs.
    kept_logs: std::collections::HashMap<String, (std::path::PathBuf, std::path::PathBuf)>,
}

impl Prior {
    pub(crate) fn read(store: &wharf_store::Store, req: &RunRequest) -> Self {
        let mut prior = Self {
            trigger: store
                .run_by_key(req.run)
                .ok()
                .flatten()
                .and_then(|r| r.trigger),
            ..Self::default()
        };
        let Some(resume) = &req.resume else {
            return prior;
        };
        for st in store.steps(req.run).unwrap_or_default() {
            prior.attempts.insert(st.name, st.attempts);
        }
        for (name, _, _) in &resume.kept {
            if let Some(last) = store
                .attempts(req.run, name)
                .ok()
                .and_then(|a| a.last().cloned())
            {
                prior
                    .kept_logs
                    .insert(name.clone(), (last.stdout, last.stderr));
            }
        }
        prior
    }
}

/// Runs the DAG to its end; the run must exist in the store (`create_run`/`reopen_run`).
pub async fn execute(
    store: wharf_store::Store,
    req: RunRequest,
    events: UnboundedSender<Event>,
    control: Control,
) -> RunSummary {
    let home = store.home().to_path_buf();
    let prior = Prior::read(&store, &req);
    let recorder: SharedStore = Arc::new(crate::recorder::Recorder::start(store, events.clone()));
    let summary = run(Arc::clone(&recorder), home, prior, req, events, control).await;
    recorder.close();
    summary
}

/// Runs the DAG with its writes going through `store` (the run's own recorder, or, for
/// a sub-DAG run, its root's, so that the runs of a tree share one connection).
pub(crate) async fn run(
    store: SharedStore,
    home: std::path::PathBuf,
    prior: Prior,
    req: RunRequest,
    events: UnboundedSender<Event>,
    control: Control,
) -> RunSummary {
    let started = Instant::now();
    let mut dag = Arc::clone(&req.dag);
    let _ = events.send(Event::RunStarted {
        dag: dag.name.clone(),
        run_id: req.run_id.clone(),
        log_dir: req.log_dir.clone(),
    });
    let run_log = req.log_dir.join("run.log");
    let mut log = RunLog::open(&run_log);
    log.line(format_args!("run {} of {} started", req.run_id, dag.name));

    // The run's variables: dotenv, env, params (backticks substituted), kept outputs.
    let overrides: Vec<Param> = req
        .params
        .iter()
        .map(|w| wharf_spec::formats::param_word(w))
        .collect();
    let dir = dag.working_dir.clone();
    // A 2.x file's `env` and params may read the run's identity (`${run.id}`, `${dag.name}`).
    let v2 = dag.dialect == wharf_spec::Dialect::V2;
    let host = |name: &str| match name.strip_prefix("context.").unwrap_or(name) {
        "run.id" if v2 => Some(req.run_id.clone()),
        "dag.name" if v2 => Some(dag.name.clone()),
        _ => vars::host(name),
    };
    let mut resolved = wharf_spec::env::resolve_with(&dag, &overrides, &host, &mut |r, text| {
        let expand = |t: &str| r.expand(t, &host);
        if text.contains('`') {
            // A 2.x param's `eval` sees wharf's whole environment, as its `${env.X}`
            // does; the run's values come after it.
            let env = if v2 {
                std::env::vars().chain(vars::step_env(r)).collect()
            } else {
                vars::step_env(r)
            };
            vars::evaluate_sync(text, &expand, &env, &dir)
        } else {
            Ok(expand(text))
        }
    });
    // Secrets win over env and params (a step's env and outputs win over them).
    let (mask, secret_error) = match wharf_spec::env::read_secrets(&dag, &vars::host) {
        Ok(secrets) => {
            for (name, value) in &secrets {
                resolved.set(name, value.clone(), Origin::Secret);
            }
            let mask = wharf_spec::env::Mask::new(secrets.into_iter().map(|(_, v)| v));
            (mask, None)
        }
        Err(e) => (wharf_spec::env::Mask::default(), Some(e.to_string())),
    };
    // Params a schema refuses fail the run as an unreadable secret does; so do sub-DAGs
    // that call each other in a cycle.
    let above = req
        .lineage
        .as_ref()
        .map(|l| l.chain.clone())
        .unwrap_or_default();
    let setup_error = resolved.params_error.take().or(secret_error).or_else(|| {
        wharf_spec::calls::check(&dag, &above, Some(&crate::installation::dags_dir(&home))).err()
    });
    // The run's context for Dagu 2.x references (dotted: references, not variables).
    let started_at = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    resolved.set("run.started_at", started_at, Origin::Output);
    if let Some((_, root)) = above.first() {
        resolved.set("run.root_name", root.clone(), Origin::Output);
    }
    // `${trigger.type}` in Dagu 2.x's words.
    let trigger = match (req.lineage.is_some(), prior.trigger.as_deref()) {
        (true, _) => "subdag",
        (_, Some("schedule")) => "scheduler",
        (_, Some("retry")) => "retry",
        (_, Some("missed" | "catchup")) => "catchup",
        (_, Some("webhook")) => "webhook",
        (_, Some(_)) => "manual",
        (_, None) => "unknown",
    };
    resolved.set("trigger.type", trigger.to_owned(), Origin::Output);
    // `${run.scheduled_at}`: the slot a scheduled run is named after
    // (`scheduled-YYYYMMDDTHHMMZ`, `restart-...`).
    if matches!(trigger, "scheduler" | "catchup")
        && let Some(slot) = req
            .run_id
            .strip_prefix("scheduled-")
            .or_else(|| req.run_id.strip_prefix("restart-"))
        && let Ok(at) = jiff::civil::DateTime::strptime("%Y%m%dT%H%MZ", slot)
    {
        resolved.set(
            "run.scheduled_at",
            at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            Origin::Output,
        );
    }
    let mut chain = above;
    chain.push(wharf_spec::calls::identity(&dag));
    let subdag = crate::subdag::SubDagExecutor {
        home,
        store: Arc::clone(&store),
        run: req.run,
        root: req.lineage.as_ref().map_or(req.run, |l| l.root),
        chain,
        docker: req.docker.clone(),
        builtin: req.builtin.clone(),
        notifier: req.notifier.clone(),
        new_shared: req.new_shared.clone(),
        retry_from: req.resume.is_some().then(wharf_store::now_ms),
    };
    for note in std::mem::take(&mut resolved.notes) {
        log.line(format_args!("note: {note}"));
        let _ = events.send(Event::Notice(note));
    }
    let attempts_before = prior.attempts;
    if let Some(resume) = &req.resume {
        for o in &resume.outputs {
            resolved.set(&o.name, o.value.clone(), Origin::Output);
        }
        // The references of kept steps (`${id.exitCode}`, `${id.stdout}`, ...) are as
        // their run left them.
        for (name, _, code) in &resume.kept {
            let Some(step) = dag.steps.iter().find(|s| &s.name == name) else {
                continue;
            };
            let output = step
                .output
                .as_ref()
                .and_then(|o| resolved.get(&o.name).map(str::to_owned));
            set_references(
                &mut resolved,
                step,
                *code,
                output.as_deref(),
                prior.kept_logs.get(name),
            );
        }
    }

    // Dagu 2.x `dependencies`: the run works on a snapshot of the files its steps name,
    // in a directory of its own, where its steps run.
    let mut workspace_error = None;
    // Dagu 2.x: this dispatch of the run is an attempt of its own (`${attempt.id}`; a
    // retry is another), and the run has a work directory of its own (`${paths.work_dir}`,
    // `DAG_RUN_WORK_DIR`), where `dependencies` are put.
    if dag.dialect == wharf_spec::Dialect::V2 {
        resolved.set("attempt.id", crate::new_run_id(), Origin::Output);
    }
    let dag = if dag.dependencies.is_empty() {
        if dag.dialect == wharf_spec::Dialect::V2 {
            let work = crate::workspace::dir_of(&req.log_dir);
            match std::fs::create_dir_all(&work) {
                Ok(()) => {
                    let dir = work.to_string_lossy().into_owned();
                    resolved.set("DAG_RUN_WORK_DIR", dir.clone(), Origin::Output);
                    resolved.set("paths.work_dir", dir, Origin::Output);
                    // A sub-DAG that names no working directory works in its own.
                    if req.lineage.is_some() && !dag.working_dir_set {
                        let mut moved = (*dag).clone();
                        moved.working_dir = work;
                        dag = Arc::new(moved);
                    }
                }
                Err(e) => {
                    workspace_error = Some(format!(
                        "cannot make the run's work directory {}: {e}",
                        work.display()
                    ));
                }
            }
        }
        dag
    } else {
        let work = crate::workspace::dir_of(&req.log_dir);
        match crate::workspace::snapshot(&dag.working_dir, &dag.dependencies, &work) {
            Ok(()) => {
                let dir = work.to_string_lossy().into_owned();
                resolved.set("DAG_RUN_WORK_DIR", dir.clone(), Origin::Output);
                resolved.set("paths.work_dir", dir, Origin::Output);
                let mut moved = (*dag).clone();
                moved.working_dir = work;
                Arc::new(moved)
            }
            Err(e) => {
                workspace_error = Some(e);
                dag
            }
        }
    };
    let setup_error = setup_error.or(workspace_error);
    let mut d = Dispatcher {
        dag: Arc::clone(&dag),
        store: Arc::clone(&store),
        req_run: req.run,
        run_id: req.run_id.clone(),
        log_dir: req.log_dir.clone(),
        run_log,
        events: events.clone(),
        vars: Arc::new(resolved),
        grace: dag
            .max_cleanup_time_sec
            .map_or(crate::DEFAULT_GRACE, Duration::from_secs),
        local: Arc::new(LocalExecutor),
        docker: req.docker.clone().unwrap_or_else(|| {
            Arc::new(crate::executor::Unavailable(
                "Docker steps cannot run here: no Docker executor".into(),
            ))
        }),
        shared: match &req.shared {
            Some(shared) => Arc::clone(shared) as Arc<dyn Executor>,
            None => Arc::new(crate::executor::Unavailable(
                "the DAG-level container cannot run here: no Docker executor".into(),
            )),
        },
        subdag: Arc::new(subdag),
        builtin: req.builtin.clone().unwrap_or_else(|| {
            Arc::new(crate::executor::Unavailable(
                "jq, http and mail steps cannot run here".into(),
            ))
        }),
        notifier: req.notifier.clone(),
        mails: Vec::new(),
        container: req.shared.clone().filter(|_| uses_container(&dag)),
        container_env: Arc::new(Vec::new()),
        attempts_before,
        mask: Arc::new(mask),
        setup_error,
        waiting: Vec::new(),
    };
    d.declare_steps(&req);
    // The steps are in the record before any of them starts: a run killed at any moment
    // after this shows them (and `wharf cleanup` finds what they started).
    store.flushed().await;

    let (mut status, mut error) = d.run_all(&req, &control, &mut log).await;
    // Worktrees the run made to be removed when it ends (`git.worktree.add` `cleanup`).
    let vars = d.vars.clone();
    let problems = crate::worktrees::clean_up(&dag, &store, d.req_run, status, |t| {
        vars.expand(t, &crate::vars::host)
    })
    .await;
    if !problems.is_empty() {
        for p in &problems {
            append_run_log(&d.run_log, p);
            let _ = events.send(Event::Notice(p.clone()));
        }
        if matches!(status, Status::Succeeded | Status::PartiallySucceeded) {
            status = Status::Failed;
            error = Some(problems.join("; "));
        }
    }
    if let Some(container) = &d.container {
        container.finish().await;
    }
    d.docker.discard(&d.run_id).await;
    d.docker.settle().await;
    let (run, err) = (d.req_run, error.clone());
    store.record("the run's result", move |s| {
        s.finish_run(run, status, err.as_deref())
    });
    // Everything the run did is in the store before anyone is told it ended.
    store.flushed().await;
    let (status, error) = match store.failure() {
        // A run whose record is incomplete did not succeed, whatever its steps did.
        Some(why) if !matches!(status, Status::Failed | Status::Aborted) => {
            (Status::Failed, Some(why))
        }
        _ => (status, error),
    };
    for mail in std::mem::take(&mut d.mails) {
        let _ = mail.await;
    }
    if let Some(config) = crate::notify::at_end(&dag, status).cloned() {
        let vars = d.vars.clone();
        let failed = crate::notify::send(
            d.notifier.clone(),
            Arc::clone(&store),
            d.req_run,
            Arc::clone(&dag),
            config,
            (req.run_id.clone(), status, d.run_log.clone()),
            move |t| vars.expand(t, &crate::vars::host),
        )
        .await;
        if let Some(why) = failed {
            let _ = events.send(Event::Notice(why));
        }
    }
    if req.lineage.is_none()
        && let Some(otel) = dag.otel.as_ref().filter(|o| o.enabled)
    {
        let vars = d.vars.clone();
        let sent = crate::trace::send(
            req.tracer.clone(),
            Arc::clone(&store),
            d.req_run,
            &dag,
            otel,
            move |t| vars.expand(t, &crate::vars::host),
        )
        .await;
        match sent {
            Ok(said) => append_run_log(&d.run_log, &said),
            Err(why) => {
                append_run_log(&d.run_log, &why);
                let _ = events.send(Event::Notice(why));
            }
        }
    }
    log.line(format_args!(
        "run finished: {status}{}",
        error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    ));
    let duration = started.elapsed();
    let _ = events.send(Event::RunFinished {
        status,
        duration,
        error: error.clone(),
    });
    RunSummary {
        status,
        duration,
        error,
    }
}

impl Dispatcher {
    fn declare_steps(&self, req: &RunRequest) {
        let mut names: Vec<(String, Option<&'static str>)> = self
            .dag
            .steps
            .iter()
            .map(|s| (s.name.clone(), None))
            .collect();
        names.extend(
            self.dag
                .handlers
                .iter()
                .map(|(event, s)| (s.name.clone(), Some(event))),
        );
        let run = self.req_run;
        let kept: HashSet<String> = req
            .resume
            .as_ref()
            .map(|r| r.kept.iter().map(|(n, _, _)| n.clone()).collect())
            .unwrap_or_default();
        let resume = req.resume.is_some();
        let not_selected: Vec<String> = match &req.resume {
            Some(r) if r.only => r.kept.iter().map(|(n, _, _)| n.clone()).collect(),
            _ => Vec::new(),
        };
        self.store.record("the run's steps", move |s| {
            let list: Vec<(&str, Option<&str>)> =
                names.iter().map(|(n, h)| (n.as_str(), *h)).collect();
            s.add_steps(run, &list)?;
            if resume {
                for (name, _) in names.iter().filter(|(n, _)| !kept.contains(n)) {
                    s.reset_step(run, name)?;
                }
            }
            for name in &not_selected {
                s.finish_step(
                    run,
                    name,
                    None,
                    Status::Skipped,
                    None,
                    Some("not selected (--only)"),
                )?;
            }
            Ok(())
        });
    }

    /// `mailOnError`: the `errorMail` notification of a failed step, sent beside the run
    /// (which waits for it before it ends).
    fn mail_step_failure(&mut self) {
        let Some(config) = self.dag.error_mail.clone() else {
            append_run_log(
                &self.run_log,
                "mail: no notification sent for the failed step: the DAG has no `errorMail`",
            );
            return;
        };
        let vars = self.vars.clone();
        let events = self.events.clone();
        let task = crate::notify::send(
            self.notifier.clone(),
            Arc::clone(&self.store),
            self.req_run,
            Arc::clone(&self.dag),
            config,
            (self.run_id.clone(), Status::Running, self.run_log.clone()),
            move |t| vars.expand(t, &crate::vars::host),
        );
        self.mails.push(tokio::spawn(async move {
            if let Some(why) = task.await {
                let _ = events.send(Event::Notice(why));
            }
        }));
    }

    /// The steps and handlers; the run's status and error.
    async fn run_all(
        &mut self,
        req: &RunRequest,
        control: &Control,
        log: &mut RunLog,
    ) -> (Status, Option<String>) {
        let dag = Arc::clone(&self.dag);
        let stop = control.stop.child_token();
        let deadline = dag
            .timeout_sec
            .filter(|t| *t > 0)
            .map(|t| tokio::time::Instant::now() + Duration::from_secs(t));

        if !dag.working_dir.is_dir() {
            let error = format!(
                "the working directory {} does not exist",
                dag.working_dir.display()
            );
            return (Status::Failed, Some(error));
        }
        if let Some(error) = self.setup_error.clone() {
            return (Status::Failed, Some(error));
        }
        // DAG preconditions: not met, nothing runs.
        if !dag.preconditions.is_empty() {
            let env = vars::step_env(&self.vars);
            match condition::check(
                &dag.preconditions,
                &["sh".to_owned()],
                &env,
                &dag.working_dir,
                &self.vars,
            )
            .await
            {
                Ok(None) => {}
                // As in Dagu: the run is cancelled (aborted), and its abort and exit
                // handlers run.
                Ok(Some(why)) => {
                    let why = format!("precondition not met: {why}");
                    log.line(&why);
                    return self
                        .finish_with_handlers(Status::Aborted, Some(why), control, log)
                        .await;
                }
                // A precondition that could not be evaluated (a command substitution
                // that failed, a value that is no number for `num:`) fails the run: its
                // failure and exit handlers run.
                Err(e) => {
                    let why = format!("precondition: {e}");
                    log.line(&why);
                    return self
                        .finish_with_handlers(Status::Failed, Some(why), control, log)
                        .await;
                }
            }
        }
        if let Some(delay) = dag.delay_sec.filter(|d| *d > 0) {
            log.line(format_args!("waiting {delay}s (delaySec)"));
            if !crate::local::pause(Duration::from_secs(delay), &stop).await {
                return self
                    .finish_with_handlers(Status::Aborted, Some("stopped".into()), control, log)
                    .await;
            }
        }

        if self.container.is_some()
            && let Err((status, error)) = self.start_container(&stop, deadline, log).await
        {
            return self
                .finish_with_handlers(status, Some(error), control, log)
                .await;
        }

        // init handler: a failure fails the run before any step.
        if dag.handlers.init.is_some() {
            let outcome = self
                .run_handler("init", Status::Running, control, log)
                .await;
            if !matches!(
                outcome.status,
                Status::Succeeded | Status::PartiallySucceeded
            ) {
                let status = if control.stop.is_cancelled() {
                    Status::Aborted
                } else {
                    Status::Failed
                };
                return self
                    .finish_with_handlers(
                        status,
                        Some("the init handler failed".into()),
                        control,
                        log,
                    )
                    .await;
            }
        }

        let (status, error) = self.run_steps(req, control, &stop, deadline, log).await;
        self.finish_with_handlers(status, error, control, log).await
    }

    /// The steps: each starts once its dependencies are done (within `maxActiveSteps`),
    /// until all are done, the run is stopped, the deadline passes, or the record cannot
    /// be written; the run's status from theirs.
    async fn run_steps(
        &mut self,
        req: &RunRequest,
        control: &Control,
        stop: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
        log: &mut RunLog,
    ) -> (Status, Option<String>) {
        let dag = Arc::clone(&self.dag);
        let n = dag.steps.len();
        let index: std::collections::HashMap<&str, usize> = dag
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let deps = wharf_spec::dependency_indices(&dag);
        let mut slots = vec![Slot::Waiting; n];
        if let Some(resume) = &req.resume {
            for (name, status, _) in &resume.kept {
                if let Some(&i) = index.get(name.as_str()) {
                    // A step not selected with `--only` holds back none of the others.
                    slots[i] = Slot::Done {
                        status: *status,
                        continued: resume.only,
                    };
                }
            }
        }
        let max_active = dag
            .max_active_steps
            .filter(|m| *m > 0)
            .unwrap_or(usize::MAX);
        let mut running: JoinSet<(usize, StepOutcome)> = JoinSet::new();
        // Steps with a container of their own: each is prepared (created) once, ahead.
        let ahead: Vec<usize> = (0..n)
            .filter(|&i| {
                matches!(
                    dag.placement(&dag.steps[i]),
                    wharf_spec::Placement::OwnContainer { .. }
                ) && dag.steps[i].call.is_none()
            })
            .collect();
        let mut foreseen = vec![false; n];
        let mut frontier = Frontier::new(&deps, &slots);
        let mut stopping: Option<String> = None;
        // The record could not be written: the run stops, and fails.
        let mut unrecorded = false;
        loop {
            if stopping.is_none() {
                self.settle_blocked(&mut slots, &deps, &mut frontier);
                while running.len() < max_active {
                    let Some(i) = frontier.ready.pop_first() else {
                        break;
                    };
                    if slots[i] != Slot::Waiting {
                        continue;
                    }
                    slots[i] = Slot::Running;
                    let ctx = self.step_ctx(StepRef::Main(i), i + 1, stop.child_token());
                    // Boxed apart from the task: the step's future is a few KiB, and the
                    // task's cell (aligned to a cache line) is then small to allocate.
                    let step = Box::pin(step::run(ctx));
                    running.spawn(async move { (i, step.await) });
                }
                self.prepare_ahead(&ahead, &slots, &deps, &mut foreseen);
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = running.join_next() => {
                    match joined {
                        Ok((i, outcome)) => {
                            log.line(format_args!("step {} {}", dag.steps[i].name, outcome.status));
                            for o in outcome.output.iter().chain(&outcome.more) {
                                Arc::make_mut(&mut self.vars).set(&o.name, o.value.clone(), Origin::Output);
                            }
                            set_references(
                                Arc::make_mut(&mut self.vars),
                                &dag.steps[i],
                                outcome.exit_code,
                                outcome.output.as_ref().map(|o| o.value.as_str()),
                                outcome.logs.as_ref(),
                            );
                            if outcome.status == Status::Failed && dag.steps[i].mail_on_error {
                                self.mail_step_failure();
                            }
                            slots[i] = Slot::Done { status: outcome.status, continued: outcome.continued };
                            frontier.done.push_back(i);
                        }
                        Err(e) => {
                            let _ = self.events.send(Event::Notice(format!("a step task failed: {e}")));
                        }
                    }
                }
                () = std::future::ready(()), if stopping.is_none() && self.store.failure().is_some() => {
                    let why = self.store.failure().unwrap_or_default();
                    log.line(format_args!("stopping: {why}"));
                    stopping = Some(why);
                    unrecorded = true;
                    stop.cancel();
                }
                () = control.stop.cancelled(), if stopping.is_none() => {
                    stopping = Some("stopped".into());
                    log.line("stop requested");
                }
                () = sleep_until(deadline), if stopping.is_none() && deadline.is_some() => {
                    let secs = dag.timeout_sec.unwrap_or_default();
                    stopping = Some(format!("the DAG timed out after {secs}s"));
                    log.line(format_args!("timed out after {secs}s (timeoutSec)"));
                    stop.cancel();
                }
            }
        }

        let statuses: Vec<(Status, bool)> = slots
            .iter()
            .map(|s| match s {
                Slot::Done { status, continued } => (*status, *continued),
                _ => (Status::NotStarted, false),
            })
            .collect();
        self.waiting = statuses
            .iter()
            .zip(&dag.steps)
            .filter(|((s, _), _)| *s == Status::Waiting)
            .map(|(_, step)| step.name.clone())
            .collect();
        verdict(&dag, &statuses, stopping, unrecorded)
    }

    /// The containers of the steps that come next, created while the steps they wait for
    /// run (a few at a time): their create is off the run's critical path. The executor
    /// uses one only if the step's job is still the same when it starts (no output of
    /// the steps before it changed it), and removes those no step took.
    fn prepare_ahead(
        &self,
        ahead: &[usize],
        slots: &[Slot],
        deps: &[Vec<usize>],
        foreseen: &mut [bool],
    ) {
        const AT_MOST: usize = 4;
        let mut room = AT_MOST.saturating_sub(
            ahead
                .iter()
                .filter(|&&i| foreseen[i] && slots[i] == Slot::Waiting)
                .count(),
        );
        for &i in ahead {
            if room == 0 {
                break;
            }
            if foreseen[i]
                || slots[i] != Slot::Waiting
                || !deps[i]
                    .iter()
                    .all(|&j| matches!(slots[j], Slot::Running | Slot::Done { .. }))
            {
                continue;
            }
            foreseen[i] = true;
            let ctx = self.step_ctx(StepRef::Main(i), i + 1, CancellationToken::new());
            if let Some(job) = step::foresee(&ctx) {
                self.docker.prepare(job);
                room -= 1;
            }
        }
    }

    /// Takes in the steps done since the last look: the steps after them that can never
    /// run are settled (after a failed step without `continueOn` they stay `not_started`;
    /// after a skipped one without `continueOn.skipped` they are skipped), and those whose
    /// dependencies are all done become ready. Each step done costs the edges out of it.
    fn settle_blocked(&self, slots: &mut [Slot], deps: &[Vec<usize>], frontier: &mut Frontier) {
        while let Some(j) = frontier.done.pop_front() {
            for &i in &frontier.dependents[j] {
                frontier.left[i] -= 1;
                if slots[i] != Slot::Waiting {
                    continue;
                }
                let mut verdict = None;
                for &j in &deps[i] {
                    let Slot::Done { status, continued } = slots[j] else {
                        continue;
                    };
                    let dep = &self.dag.steps[j];
                    match status {
                        Status::Failed if !continued => verdict = Some(Status::NotStarted),
                        Status::Aborted
                        | Status::NotStarted
                        | Status::Waiting
                        | Status::Rejected => verdict = Some(Status::NotStarted),
                        Status::Skipped
                            if !dep.continue_on().skipped && !continued && verdict.is_none() =>
                        {
                            verdict = Some(Status::Skipped)
                        }
                        _ => {}
                    }
                }
                if let Some(status) = verdict {
                    slots[i] = Slot::Done {
                        status,
                        continued: false,
                    };
                    frontier.done.push_back(i);
                    if status == Status::Skipped {
                        let name = &self.dag.steps[i].name;
                        let (run, owned) = (self.req_run, name.clone());
                        self.store.record("a skipped step", move |s| {
                            s.finish_step(
                                run,
                                &owned,
                                None,
                                Status::Skipped,
                                None,
                                Some("a step it depends on was skipped"),
                            )
                        });
                        let _ = self.events.send(Event::StepFinished(crate::StepReport {
                            name: name.clone(),
                            handler: None,
                            status,
                            exit_code: None,
                            attempts: 0,
                            duration: Duration::ZERO,
                            error: Some("a step it depends on was skipped".into()),
                            stderr: None,
                        }));
                    }
                } else if frontier.left[i] == 0 {
                    frontier.ready.insert(i);
                }
            }
        }
    }

    async fn finish_with_handlers(
        &mut self,
        status: Status,
        error: Option<String>,
        control: &Control,
        log: &mut RunLog,
    ) -> (Status, Option<String>) {
        let mut status = status;
        let mut error = error;
        let event = match status {
            Status::Aborted => Some("abort"),
            Status::Failed | Status::Rejected => Some("failure"),
            Status::Succeeded | Status::PartiallySucceeded => Some("success"),
            Status::Waiting => Some("wait"),
            _ => None,
        };
        // A run that waits has not ended: its exit handler runs when it does.
        let exit = (status != Status::Waiting).then_some("exit");
        for event in event.into_iter().chain(exit) {
            let set = self.dag.handlers.iter().any(|(e, _)| e == event);
            if !set || control.force.is_cancelled() {
                continue;
            }
            let outcome = self.run_handler(event, status, control, log).await;
            if !matches!(
                outcome.status,
                Status::Succeeded | Status::PartiallySucceeded
            ) && status != Status::Aborted
            {
                status = Status::Failed;
                error.get_or_insert_with(|| format!("the {event} handler failed"));
            }
        }
        (status, error)
    }

    /// Runs a handler; `status` is the run's at that point (`DAG_RUN_STATUS`).
    async fn run_handler(
        &mut self,
        event: &'static str,
        status: Status,
        control: &Control,
        log: &mut RunLog,
    ) -> StepOutcome {
        let position = self.dag.steps.len()
            + 1
            + ["init", "success", "failure", "abort", "wait", "exit"]
                .iter()
                .position(|e| *e == event)
                .unwrap_or(0);
        log.line(format_args!("handler {event} started"));
        let mut ctx = self.step_ctx(
            StepRef::Handler(event),
            position,
            control.force.child_token(),
        );
        let vars = Arc::make_mut(&mut ctx.vars);
        vars.set("DAG_RUN_STATUS", status.as_str().to_owned(), Origin::Env);
        if event == "wait" {
            vars.set("DAG_WAITING_STEPS", self.waiting.join(","), Origin::Env);
        }
        let outcome = step::run(ctx).await;
        log.line(format_args!("handler {event} {}", outcome.status));
        if let Some(o) = &outcome.output {
            Arc::make_mut(&mut self.vars).set(&o.name, o.value.clone(), Origin::Output);
        }
        outcome
    }

    /// Starts the DAG-level container and waits until it is ready; on failure, the run's
    /// status and error.
    async fn start_container(
        &mut self,
        stop: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
        log: &mut RunLog,
    ) -> Result<(), (Status, String)> {
        let Some(container) = self.container.clone() else {
            return Ok(());
        };
        let Some(spec) = self.dag.container.as_ref() else {
            return Ok(());
        };
        let expand = |t: &str| self.vars.expand(t, &vars::host);
        let mut config = spec.clone();
        let ex = |v: &Option<String>| v.as_deref().map(expand);
        config.exec = ex(&config.exec);
        config.name = ex(&config.name);
        config.image = ex(&config.image);
        config.user = ex(&config.user);
        config.working_dir = ex(&config.working_dir);
        config.command = config.command.iter().map(|c| expand(c)).collect();
        if let Some(wharf_spec::Network::Custom(n) | wharf_spec::Network::Container(n)) =
            config.network.as_mut()
        {
            *n = expand(n);
        }
        for v in &mut config.volumes {
            v.source = match &v.source {
                wharf_spec::VolumeSource::Bind(source) => {
                    let path =
                        wharf_spec::formats::resolve_path(&self.dag.working_dir, &expand(source));
                    wharf_spec::VolumeSource::Bind(path.to_string_lossy().into_owned())
                }
                wharf_spec::VolumeSource::Named(name) => {
                    wharf_spec::VolumeSource::Named(expand(name))
                }
            };
        }
        // Top to bottom: an entry reads the entries before it, then the run's values.
        let v2 = self.dag.dialect == wharf_spec::Dialect::V2;
        let env = vars::chained_env(
            spec.env.iter().map(|v| (v.name.clone(), v.value.clone())),
            v2,
            &|t: &str| {
                let t = expand(t);
                if v2 {
                    wharf_spec::expand::references(&t, |n| self.vars.lookup(n))
                } else {
                    t
                }
            },
        );
        self.container_env = Arc::new(env.clone());
        let what = config
            .exec
            .clone()
            .or_else(|| config.name.clone())
            .or_else(|| config.image.clone())
            .unwrap_or_default();
        let mut labels =
            crate::labels::owner(&self.dag.name, &self.run_id, crate::labels::SHARED_STEP);
        labels.extend([
            (
                crate::labels::AUTO_REMOVE.to_owned(),
                (!config.keep_container).to_string(),
            ),
            (
                crate::labels::KEEP.to_owned(),
                config.keep_container.to_string(),
            ),
            (
                crate::labels::IMAGE.to_owned(),
                config.image.clone().unwrap_or_default(),
            ),
        ]);
        let starting = stop.child_token();
        let setup = crate::SharedSetup {
            dag_name: self.dag.name.clone(),
            config,
            env,
            labels,
            log_dir: self.log_dir.clone(),
            mask: Arc::clone(&self.mask),
            grace: self.grace,
            stop: starting.clone(),
            notice: {
                let (events, run_log) = (self.events.clone(), self.run_log.clone());
                Arc::new(move |m| {
                    let text = format!("container: {m}");
                    append_run_log(&run_log, &format!("note: {text}"));
                    let _ = events.send(Event::Notice(text));
                })
            },
            activity: {
                let (events, name) = (self.events.clone(), format!("container {what}"));
                Arc::new(move |text| {
                    let _ = events.send(Event::Activity {
                        name: name.clone(),
                        text,
                    });
                })
            },
        };
        let _ = self
            .events
            .send(Event::ContainerStarting { what: what.clone() });
        log.line(format_args!("starting the container {what}"));
        let began = Instant::now();
        let mut timed_out = false;
        let result = {
            let start = container.start(&setup);
            tokio::pin!(start);
            loop {
                tokio::select! {
                    r = &mut start => break r,
                    () = sleep_until(deadline), if deadline.is_some() && !timed_out => {
                        timed_out = true;
                        starting.cancel();
                    }
                }
            }
        };
        let error = result.err().map(|e| e.to_string());
        let _ = self.events.send(Event::ContainerReady {
            what: what.clone(),
            duration: began.elapsed(),
            error: error.clone(),
        });
        match error {
            None => {
                log.line(format_args!("the container {what} is ready"));
                Ok(())
            }
            Some(e) => {
                log.line(format_args!("the container {what} did not start: {e}"));
                if timed_out {
                    let secs = self.dag.timeout_sec.unwrap_or_default();
                    Err((Status::Aborted, format!("the DAG timed out after {secs}s")))
                } else if stop.is_cancelled() {
                    Err((Status::Aborted, "stopped".into()))
                } else {
                    Err((
                        Status::Failed,
                        format!("the DAG-level container did not start: {e}"),
                    ))
                }
            }
        }
    }

    fn step_ctx(&self, step: StepRef, position: usize, stop: CancellationToken) -> StepCtx {
        let name = &step.get(&self.dag).name;
        StepCtx {
            dag: Arc::clone(&self.dag),
            step,
            position,
            store: Arc::clone(&self.store),
            run: self.req_run,
            run_id: self.run_id.clone(),
            log_dir: self.log_dir.clone(),
            run_log: self.run_log.clone(),
            vars: Arc::clone(&self.vars),
            stop,
            grace: self.grace,
            events: self.events.clone(),
            attempts_before: self.attempts_before.get(name).copied().unwrap_or(0),
            container_env: Arc::clone(&self.container_env),
            mask: Arc::clone(&self.mask),
            executor: match self.dag.placement(step.get(&self.dag)) {
                _ if step.get(&self.dag).call.is_some() => Arc::clone(&self.subdag),
                wharf_spec::Placement::Host => Arc::clone(&self.local),
                wharf_spec::Placement::Engine => Arc::clone(&self.builtin),
                wharf_spec::Placement::OwnContainer { .. } => Arc::clone(&self.docker),
                wharf_spec::Placement::SharedContainer => Arc::clone(&self.shared),
            },
            pending_attempt: std::sync::Mutex::new(None),
        }
    }
}

/// Whether the run starts a DAG-level container.
fn uses_container(dag: &Dag) -> bool {
    // Started even when no step runs in it: a DAG-level container is also the service
    // (a database, say) that host steps talk to, as in Dagu.
    dag.container.is_some()
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Appends a line to `run.log` (for notices from step tasks, which do not hold the
/// dispatcher's handle on it).
pub(crate) fn append_run_log(path: &Path, text: &str) {
    RunLog::open(path).line(text);
}

/// `run.log`: what the engine did, a line each, with the time.
struct RunLog {
    file: Option<std::fs::File>,
    /// The line being written, kept for the next.
    line: String,
}

impl RunLog {
    fn open(path: &Path) -> Self {
        Self {
            file: std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok(),
            line: String::new(),
        }
    }

    fn line(&mut self, text: impl std::fmt::Display) {
        use std::fmt::Write as _;
        if let Some(f) = self.file.as_mut() {
            self.line.clear();
            let _ = writeln!(self.line, "{} {text}", wharf_store::now_ms());
            // One write per line, so concurrent readers never see half a line.
            let _ = f.write_all(self.line.as_bytes());
        }
    }
}

/// The run's status from its steps' (each with whether it was continued past), and why
/// it did not succeed.
fn verdict(
    dag: &wharf_spec::Dag,
    statuses: &[(Status, bool)],
    stopping: Option<String>,
    unrecorded: bool,
) -> (Status, Option<String>) {
    if let Some(reason) = stopping {
        let status = if unrecorded {
            Status::Failed
        } else {
            Status::Aborted
        };
        (status, Some(reason))
    } else if let Some(((_, _), step)) = statuses
        .iter()
        .zip(&dag.steps)
        .find(|((s, _), _)| *s == Status::Rejected)
    {
        (
            Status::Rejected,
            Some(format!("step `{}` was rejected", step.name)),
        )
    } else if !statuses.iter().any(|(s, c)| *s == Status::Failed && !c)
        && let Some(((_, _), step)) = statuses
            .iter()
            .zip(&dag.steps)
            .find(|((s, _), _)| *s == Status::Waiting)
    {
        // The run stops here; an approval takes it up again (as a retry does).
        (
            Status::Waiting,
            Some(match step.executor {
                wharf_spec::Executor::HumanTask(_) => format!(
                    "human task `{}` waits for a person",
                    step.id.as_deref().unwrap_or(&step.name)
                ),
                _ => format!("step `{}` waits for approval", step.name),
            }),
        )
    } else if statuses.iter().any(|(s, c)| *s == Status::Failed && !c)
        || statuses.iter().any(|(s, _)| *s == Status::NotStarted)
    {
        let failed: Vec<&str> = statuses
            .iter()
            .zip(&dag.steps)
            .filter(|((s, c), _)| *s == Status::Failed && !c)
            .map(|(_, step)| step.name.as_str())
            .collect();
        let error = match failed.as_slice() {
            [] => "steps did not run".to_owned(),
            [one] => format!("step `{one}` failed"),
            many => format!(
                "steps {} failed",
                many.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        (Status::Failed, Some(error))
    } else if statuses
        .iter()
        .any(|(s, _)| matches!(s, Status::Failed | Status::PartiallySucceeded))
    {
        (Status::PartiallySucceeded, None)
    } else {
        (Status::Succeeded, None)
    }
}

/// `${id.exitCode}` (`${id.exit_code}`), `${id.output}`, `${id.stdout}` and `${id.stderr}`
/// (the paths of its logs, made empty when the step printed nothing) of a step with an
/// `id`, for the steps after it.
fn set_references(
    vars: &mut wharf_spec::env::Resolved,
    step: &wharf_spec::Step,
    exit_code: Option<i32>,
    output: Option<&str>,
    logs: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) {
    let Some(id) = &step.id else { return };
    if let Some(code) = exit_code {
        vars.set(&format!("{id}.exitCode"), code.to_string(), Origin::Output);
        // Dagu 2.x's spelling.
        vars.set(&format!("{id}.exit_code"), code.to_string(), Origin::Output);
    }
    // `${id.output}`: what `output: NAME` captured (its JSON fields read as
    // `${id.output.field}`).
    if let Some(value) = output {
        vars.set(&format!("{id}.output"), value.to_owned(), Origin::Output);
    }
    if let Some((stdout, stderr)) = logs {
        // Logs are made when output comes; a step that printed nothing still has a log
        // the steps after it can read.
        for log in [stdout, stderr] {
            if !log.exists() {
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log);
            }
        }
        vars.set(
            &format!("{id}.stdout"),
            stdout.to_string_lossy().into_owned(),
            Origin::Output,
        );
        vars.set(
            &format!("{id}.stderr"),
            stderr.to_string_lossy().into_owned(),
            Origin::Output,
        );
    }
}
