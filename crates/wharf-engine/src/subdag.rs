//! Steps that run another DAG (`call`): one child run per call, or one per item of
//! `parallel`. A child run is a run like any other (its own id, record, logs), made in
//! this process and linked to the run and step that started it; it stops when its parent
//! step is stopped (the run is stopped, or the step times out).
//!
//! The step's stdout is the result as JSON, which `output:` captures: for one child
//! `{"name", "params", "status", "outputs": {NAME: value}}`; for `parallel`
//! `{"summary": {"total", "succeeded", "failed"}, "results": [...], "outputs": [...]}`.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wharf_spec::Dag;
use wharf_store::{NewRun, Parent, RunKey, Status};

use crate::executor::{BoxFuture, Exit, StepJob, Work};
use crate::{Control, Executor, RunRequest, SharedFactory};

/// What a sub-DAG step runs: the child DAG and, per child run, its params.
pub struct SubDagJob {
    pub dag: Arc<Dag>,
    pub children: Vec<Vec<String>>,
    /// `parallel`: the result is the collection of the children's.
    pub parallel: bool,
    /// A Dagu 2.x `foreach`: each child is an item's body; the result is the items'.
    pub foreach: Option<wharf_spec::Foreach>,
    pub max_concurrent: usize,
}

/// What child runs of a run share: where runs are recorded, the parent run, the chain of
/// DAGs above, the executors for their containers.
pub(crate) struct SubDagExecutor {
    pub home: PathBuf,
    /// The run's recorder: the child runs' records are made and written through it (one
    /// connection for the whole tree, no two writers waiting on each other).
    pub store: crate::SharedStore,
    pub run: RunKey,
    pub root: RunKey,
    /// The DAGs from the root down to this run's, for the cycle check.
    pub chain: Vec<(PathBuf, String)>,
    pub docker: Option<Arc<dyn Executor>>,
    pub builtin: Option<Arc<dyn Executor>>,
    pub notifier: Option<Arc<dyn crate::Notifier>>,
    pub new_shared: Option<SharedFactory>,
    /// A retry of the run (`wharf retry`): when it started. The step's children made
    /// before it are looked at first: one that succeeded is kept, one that did not is
    /// retried in place (its own failed part), and only items without one get a new run.
    pub retry_from: Option<i64>,
}

/// A child run made before a retry, and what becomes of it.
enum Earlier {
    Keep(wharf_store::RunRecord),
    Retry(wharf_store::RunRecord),
}

/// How one child run ended.
struct ChildResult {
    run_id: String,
    params: Vec<String>,
    status: Status,
    error: Option<String>,
    outputs: Map<String, Value>,
}

impl Executor for SubDagExecutor {
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let Work::SubDag(sub) = &job.work else {
                return Exit::error("a sub-DAG step without its sub-DAG");
            };
            // A target made of variables is known only now: the chain is checked again.
            let id = wharf_spec::calls::identity(&sub.dag);
            if self.chain.contains(&id) || self.chain.len() >= wharf_spec::calls::MAX_DEPTH {
                let names: Vec<&str> = self.chain.iter().map(|(_, n)| n.as_str()).collect();
                return Exit::error(format!(
                    "the sub-DAG `{}` is not run: {} → {} would be a cycle or deeper than {} levels",
                    sub.dag.name,
                    names.join(" → "),
                    sub.dag.name,
                    wharf_spec::calls::MAX_DEPTH
                ));
            }
            let mut results = self.children(job, sub).await;
            let each = sub
                .foreach
                .as_ref()
                .map(|f| foreach_result(f, &mut results));
            let failed: Vec<&ChildResult> = results
                .iter()
                .filter(|r| {
                    !matches!(
                        r.status,
                        Status::Succeeded | Status::PartiallySucceeded | Status::Waiting
                    )
                })
                .collect();
            let waiting: Vec<&ChildResult> = results
                .iter()
                .filter(|r| r.status == Status::Waiting)
                .collect();
            let result = if let Some(each) = each {
                each
            } else if sub.parallel {
                let succeeded = results.len() - failed.len();
                json!({
                    "summary": {"total": results.len(), "succeeded": succeeded, "failed": failed.len()},
                    "results": results.iter().map(|r| json!({
                        "dagRunId": r.run_id,
                        "params": r.params.join(" "),
                        "status": r.status.as_str(),
                        "outputs": r.outputs,
                    })).collect::<Vec<_>>(),
                    "outputs": results.iter().map(|r| Value::Object(r.outputs.clone())).collect::<Vec<_>>(),
                })
            } else {
                let r = results.first();
                json!({
                    "name": sub.dag.name,
                    "dagRunId": r.map(|r| r.run_id.as_str()),
                    "params": r.map(|r| r.params.join(" ")),
                    "status": r.map(|r| r.status.as_str()),
                    "outputs": r.map(|r| Value::Object(r.outputs.clone())),
                })
            };
            let text = format!("{result}\n");
            let mut exit = Exit::default();
            if let Err(e) = std::fs::write(&job.stdout, text.as_bytes()) {
                return Exit::error(format!("cannot write the sub-DAG's result: {e}"));
            }
            if let Some(limit) = job.capture_stdout {
                let keep = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
                exit.stdout_head = text.as_bytes()[..text.len().min(keep)].to_vec();
            }
            if job.stop.is_cancelled() {
                exit.stopped = true;
            }
            if failed.is_empty() && !waiting.is_empty() {
                // The children that wait are taken up again with the run, once approved.
                exit.waiting = true;
                let ids: Vec<&str> = waiting.iter().map(|r| r.run_id.as_str()).collect();
                exit.error = Some(format!(
                    "the sub-DAG run {} of `{}` waits for an approval",
                    ids.join(", "),
                    sub.dag.name
                ));
            } else if failed.is_empty() && (!results.is_empty() || sub.foreach.is_some()) {
                // `parallel` needs items; a `foreach` of none did all it had to.
                exit.code = Some(0);
                exit.partial = results
                    .iter()
                    .any(|r| r.status == Status::PartiallySucceeded);
            } else {
                exit.code = Some(1);
                let why: Vec<String> = failed
                    .iter()
                    .map(|r| {
                        format!(
                            "run {} of `{}` {}{}",
                            r.run_id,
                            sub.dag.name,
                            r.status,
                            r.error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                let message = if sub.foreach.is_some() {
                    format!(
                        "{} of {} items failed: {}",
                        failed.len(),
                        results.len(),
                        why.join("; ")
                    )
                } else if sub.parallel {
                    format!(
                        "{} of {} sub-DAG runs did not succeed: {}",
                        failed.len(),
                        results.len(),
                        why.join("; ")
                    )
                } else {
                    format!("the sub-DAG {}", why.join("; "))
                };
                exit.error = Some(message);
            }
            exit
        })
    }
}

impl SubDagExecutor {
    /// Runs the children, at most `max_concurrent` at once, in the order given; stops
    /// starting new ones once the step is told to stop.
    async fn children(&self, job: &StepJob, sub: &SubDagJob) -> Vec<ChildResult> {
        let mut earlier = self.earlier(job).await;
        let limit = Arc::new(Semaphore::new(sub.max_concurrent.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (index, params) in sub.children.iter().enumerate() {
            // The earlier child of the same item (params), if the run is a retry.
            let before = earlier
                .iter()
                .position(|r| &r.params == params)
                .map(|i| earlier.remove(i));
            let before = before.map(|r| {
                if matches!(r.status, Status::Succeeded | Status::PartiallySucceeded) {
                    Earlier::Keep(r)
                } else {
                    Earlier::Retry(r)
                }
            });
            if let Some(Earlier::Keep(r)) = before {
                let outputs = outputs_of(&self.store, r.key).await;
                set.spawn(async move {
                    (
                        index,
                        ChildResult {
                            run_id: r.run_id,
                            params: r.params,
                            status: r.status,
                            error: r.error,
                            outputs,
                        },
                    )
                });
                continue;
            }
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                break;
            };
            if job.stop.is_cancelled() {
                break;
            }
            let again = match before {
                Some(Earlier::Retry(r)) => Some(r),
                _ => None,
            };
            let child = self.child(job, &sub.dag, params.clone(), again);
            set.spawn(async move {
                let result = child.await;
                drop(permit);
                (index, result)
            });
        }
        let mut results: Vec<(usize, ChildResult)> = Vec::new();
        while let Some(done) = set.join_next().await {
            if let Ok(done) = done {
                results.push(done);
            }
        }
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// The step's child runs made before this retry started (none for a first run).
    async fn earlier(&self, job: &StepJob) -> Vec<wharf_store::RunRecord> {
        let Some(since) = self.retry_from else {
            return Vec::new();
        };
        let (run, step) = (self.run, job.step_name.clone());
        self.store
            .call(move |s| s.children(run))
            .await
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| {
                c.created_at < since && c.parent.as_ref().is_some_and(|(_, name)| *name == step)
            })
            .collect()
    }

    /// One child run: recorded (or, for `again`, an earlier run taken up again to run
    /// its failed part), executed, its outputs read back.
    fn child(
        &self,
        job: &StepJob,
        dag: &Arc<Dag>,
        params: Vec<String>,
        again: Option<wharf_store::RunRecord>,
    ) -> BoxFuture<'static, ChildResult> {
        let home = self.home.clone();
        let recorder = Arc::clone(&self.store);
        let parent = (self.run, self.root, job.step_name.clone());
        let chain = self.chain.clone();
        let dag = Arc::clone(dag);
        let docker = self.docker.clone();
        let builtin = self.builtin.clone();
        let notifier = self.notifier.clone();
        let new_shared = self.new_shared.clone();
        let stop = job.stop.clone();
        Box::pin(async move {
            let run_id = again
                .as_ref()
                .map_or_else(crate::new_run_id, |r| r.run_id.clone());
            let failed = |why: String| ChildResult {
                run_id: run_id.clone(),
                params: params.clone(),
                status: Status::Failed,
                error: Some(why),
                outputs: Map::new(),
            };
            let log_base = dag
                .log_dir
                .as_ref()
                .map(|d| wharf_spec::formats::resolve_path(&dag.working_dir, d));
            let (run_id_for_record, params_for_record) = (run_id.clone(), params.clone());
            let made = recorder.call(
                move |store| -> Result<(RunRequest, crate::dispatcher::Prior), String> {
                    let (run_id, params) = (run_id_for_record, params_for_record);
                    let (run, log_dir, resume) = match &again {
                        Some(earlier) => {
                            let resume = crate::resume_of(store, &dag, earlier)
                                .map_err(|e| format!("cannot read the sub-DAG run: {e}"))?;
                            store.reopen_run(earlier.key).map_err(|e| {
                                format!("cannot record the sub-DAG run's retry: {e}")
                            })?;
                            (earlier.key, earlier.log_dir.clone(), resume)
                        }
                        None => {
                            let new = NewRun {
                                dag: &dag.name,
                                run_id: &run_id,
                                file: &dag.file,
                                params: &params,
                                log_base: log_base.as_deref(),
                                parent: Some(Parent {
                                    run: parent.0,
                                    root: parent.1,
                                    step: &parent.2,
                                }),
                                queue: None,
                            };
                            let run = store
                                .create_run(&new)
                                .map_err(|e| format!("cannot record the sub-DAG run: {e}"))?;
                            (
                                run,
                                store.log_dir(log_base.as_deref(), &dag.name, &run_id),
                                None,
                            )
                        }
                    };
                    let shared = match (&dag.container, &new_shared) {
                        (Some(_), Some(make)) => Some(make()),
                        _ => None,
                    };
                    let request = RunRequest {
                        dag: Arc::clone(&dag),
                        run,
                        run_id: run_id.clone(),
                        log_dir,
                        params: params.clone(),
                        resume,
                        docker,
                        builtin,
                        notifier,
                        tracer: None,
                        shared,
                        new_shared,
                        lineage: Some(crate::Lineage {
                            chain,
                            root: parent.1,
                        }),
                    };
                    let prior = crate::dispatcher::Prior::read(store, &request);
                    Ok((request, prior))
                },
            );
            let (request, prior) = match made.await {
                Some(Ok(made)) => made,
                Some(Err(why)) => return failed(why),
                None => return failed("the run records are not usable".to_owned()),
            };
            let run = request.run;
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            // The child's progress is its own run's record; the parent shows the step.
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let control = Control {
                stop,
                force: CancellationToken::new(),
            };
            let execute: BoxFuture<'static, crate::RunSummary> = Box::pin(crate::dispatcher::run(
                Arc::clone(&recorder),
                home,
                prior,
                request,
                tx,
                control,
            ));
            let summary = execute.await;
            let outputs = outputs_of(&recorder, run).await;
            ChildResult {
                run_id,
                params,
                status: summary.status,
                error: summary.error,
                outputs,
            }
        })
    }
}

/// A finished run's outputs by variable name (`omit` left out).
async fn outputs_of(store: &crate::SharedStore, run: RunKey) -> Map<String, Value> {
    store
        .call(move |s| s.outputs(run))
        .await
        .and_then(Result::ok)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| !o.omit)
        .map(|o| (o.name, Value::String(o.value)))
        .collect()
}

/// A JSON value as `${...}` puts it in: a string as it is, anything else as JSON text.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The most items a `foreach` (or `parallel`) expands to, as in Dagu.
const MAX_ITEMS: usize = 1000;

/// The params of each item's run of a `foreach` body: the item (`foreach.NAME`, an
/// object or list as compact JSON), its index and its key. The items are a list, or text
/// that is a JSON array once expanded; keys are unique and not empty.
fn foreach_children(
    items: &wharf_spec::ParallelItems,
    each: &wharf_spec::Foreach,
    vars: &wharf_spec::env::Resolved,
) -> Result<Vec<Vec<String>>, String> {
    let items: Vec<Value> = match items {
        wharf_spec::ParallelItems::List(items) => items.clone(),
        wharf_spec::ParallelItems::Text(text) => {
            let text = vars.expand(text, &crate::vars::host);
            match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Array(items)) => items,
                _ => {
                    return Err(format!(
                        "`foreach.items` is not a JSON array once resolved: {}",
                        cut(&text, 200)
                    ));
                }
            }
        }
    };
    if items.len() > MAX_ITEMS {
        return Err(format!(
            "`foreach` has {} items; at most {MAX_ITEMS} are run",
            items.len()
        ));
    }
    let item_var = format!("{FOREACH}.{}", each.name);
    let mut keys = std::collections::HashSet::new();
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let text = text_of(item);
            let mut scope = vars.clone();
            scope.set(&item_var, text.clone(), wharf_spec::env::Origin::Output);
            scope.set(
                &format!("{FOREACH}.index"),
                index.to_string(),
                wharf_spec::env::Origin::Output,
            );
            let key = match &each.key {
                Some(k) => scope.expand(k, &crate::vars::host),
                None => index.to_string(),
            };
            if key.is_empty() {
                return Err(format!("`foreach.key` of item {index} is empty"));
            }
            if !keys.insert(key.clone()) {
                return Err(format!(
                    "`foreach.key` is `{key}` for more than one item: keys are unique"
                ));
            }
            Ok(vec![
                format!("{item_var}={text}"),
                format!("{FOREACH}.index={index}"),
                format!("{FOREACH}.key={key}"),
            ])
        })
        .collect()
}

/// The namespace of a `foreach` item's scope in its body.
const FOREACH: &str = "foreach";

/// At most `n` characters of `text`, marked when cut.
fn cut(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The result of a `foreach` step: per item its index, key, status and collected
/// outputs (or error), and the collected outputs of those that succeeded. An item whose
/// `collect` cannot be resolved failed.
fn foreach_result(each: &wharf_spec::Foreach, results: &mut [ChildResult]) -> Value {
    let param = |r: &ChildResult, name: &str| -> String {
        let prefix = format!("{FOREACH}.{name}=");
        r.params
            .iter()
            .find_map(|p| p.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_owned()
    };
    let mut items = Vec::new();
    let mut outputs = Vec::new();
    for r in results.iter_mut() {
        let index: u64 = param(r, "index").parse().unwrap_or_default();
        let key = param(r, "key");
        let mut entry = json!({"index": index, "key": key, "status": r.status.as_str()});
        if matches!(r.status, Status::Succeeded | Status::PartiallySucceeded) {
            let mut scope = wharf_spec::env::Resolved::default();
            for p in &r.params {
                if let Some((name, value)) = p.split_once('=') {
                    scope.set(name, value.to_owned(), wharf_spec::env::Origin::Output);
                }
            }
            for (name, value) in &r.outputs {
                let text = text_of(value);
                scope.set(name, text, wharf_spec::env::Origin::Output);
            }
            let mut collected = Map::new();
            let mut missing = None;
            for (name, expr) in &each.collect {
                let value = wharf_spec::expand::references(expr, |n| scope.lookup(n));
                if let Some(left) = wharf_spec::expand::references_in(&value)
                    .into_iter()
                    .find(|r| r.starts_with("steps.") || r.starts_with("foreach."))
                {
                    missing = Some(format!("`collect.{name}`: `${{{left}}}` has no value"));
                    break;
                }
                collected.insert(name.clone(), Value::String(value));
            }
            match missing {
                Some(why) => {
                    r.status = Status::Failed;
                    r.error = Some(why);
                }
                None => {
                    entry["outputs"] = Value::Object(collected.clone());
                    outputs.push(Value::Object(collected));
                }
            }
        }
        if !matches!(r.status, Status::Succeeded | Status::PartiallySucceeded) {
            entry["status"] = json!(r.status.as_str());
            if let Some(e) = &r.error {
                entry["error"] = json!(e);
            }
        }
        items.push(entry);
    }
    let succeeded = outputs.len();
    json!({
        "summary": {"total": results.len(), "succeeded": succeeded, "failed": results.len() - succeeded},
        "items": items,
        "outputs": outputs,
    })
}

/// The params of each child of a `call` step: its `params` expanded (per item for
/// `parallel`, with `${ITEM}` the item: a string as it is, anything else as JSON, so
/// `${ITEM.field}` reads an object's field).
pub(crate) fn children_of(
    call: &wharf_spec::Call,
    vars: &wharf_spec::env::Resolved,
) -> Result<Vec<Vec<String>>, String> {
    let params_with = |vars: &wharf_spec::env::Resolved| -> Result<Vec<String>, String> {
        let expand = |t: &str| vars.expand(t, &crate::vars::host);
        Ok(match &call.params {
            wharf_spec::CallParams::None => Vec::new(),
            wharf_spec::CallParams::Line(line) => shell_words::split(&expand(line))
                .map_err(|_| format!("`params` has an unmatched quote once expanded: {line}"))?,
            wharf_spec::CallParams::Pairs(pairs) => pairs
                .iter()
                .map(|(name, value)| format!("{name}={}", expand(value)))
                .collect(),
        })
    };
    let Some(parallel) = &call.parallel else {
        return Ok(vec![params_with(vars)?]);
    };
    if let Some(each) = &call.foreach {
        return foreach_children(&parallel.items, each, vars);
    }
    let items: Vec<Value> = match &parallel.items {
        wharf_spec::ParallelItems::List(items) => items.clone(),
        wharf_spec::ParallelItems::Text(text) => {
            let text = vars.expand(text, &crate::vars::host);
            match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Array(items)) => items,
                _ => text
                    .split(|c: char| c.is_whitespace() || c == ',')
                    .filter(|w| !w.is_empty())
                    .map(|w| Value::String(w.to_owned()))
                    .collect(),
            }
        }
    };
    items
        .iter()
        .map(|item| {
            let mut vars = vars.clone();
            let text = text_of(item);
            vars.set("ITEM", text.clone(), wharf_spec::env::Origin::Output);
            let mut params = params_with(&vars)?;
            if matches!(call.params, wharf_spec::CallParams::None) {
                // With no `params`, the item is the child's one positional param.
                params.push(text);
            }
            Ok(params)
        })
        .collect()
}
