//! The API's answers as types, with the field names and shapes of the Dagu 1.x OpenAPI
//! document (`dag-v1-api.yaml`): what a handler can answer is what these can say.

use serde::Serialize;
use serde_json::Value;
use wharf_spec::Dag;
use wharf_store::{RunRecord, Status, StepRecord, Store};

use crate::rfc3339;

/// `{code, message}`.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: String,
}

#[derive(Serialize)]
pub(crate) struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub uptime: u64,
    pub timestamp: String,
}

/// Status integers of a run (DAG-run) and of a node.
pub(crate) fn run_status(s: Status) -> (i64, &'static str) {
    match s {
        Status::NotStarted => (0, "not_started"),
        Status::Running => (1, "running"),
        Status::Failed => (2, "failed"),
        Status::Aborted => (3, "aborted"),
        Status::Succeeded => (4, "succeeded"),
        Status::PartiallySucceeded => (6, "partially_succeeded"),
        Status::Queued => (5, "queued"),
        Status::Waiting => (7, "waiting"),
        Status::Rejected => (8, "rejected"),
        // A run whose preconditions failed: nothing ran; Dagu has no own word for it.
        Status::Skipped => (4, "succeeded"),
    }
}

pub(crate) fn node_status(s: Status) -> (i64, &'static str) {
    match s {
        Status::Skipped => (5, "skipped"),
        other => run_status(other),
    }
}

fn time_or_dash(ms: Option<i64>) -> String {
    ms.map(rfc3339).unwrap_or_else(|| "-".into())
}

/// A run's params as the document has them: a JSON list in a string, credentials hidden.
pub(crate) fn params_json(params: &[String]) -> String {
    Value::from(
        params
            .iter()
            .map(|p| wharf_spec::redact::param(p))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// `DAGRunSummary`.
#[derive(Serialize)]
pub(crate) struct RunSummary {
    #[serde(rename = "rootDAGRunName")]
    pub root_name: String,
    #[serde(rename = "rootDAGRunId")]
    pub root_id: String,
    #[serde(rename = "dagRunId")]
    pub run_id: String,
    pub name: String,
    pub status: i64,
    #[serde(rename = "statusLabel")]
    pub status_label: &'static str,
    #[serde(rename = "queuedAt", skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    #[serde(rename = "startedAt")]
    pub started_at: String,
    #[serde(rename = "finishedAt")]
    pub finished_at: String,
    pub log: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
    #[serde(rename = "workerId", skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<&'static str>,
    #[serde(rename = "parentDAGRunName", skip_serializing_if = "Option::is_none")]
    pub parent_name: Option<String>,
    #[serde(rename = "parentDAGRunId", skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

impl RunSummary {
    pub fn of(run: &RunRecord) -> Self {
        let (status, label) = run_status(run.status);
        Self {
            root_name: run.dag.clone(),
            root_id: run.run_id.clone(),
            run_id: run.run_id.clone(),
            name: run.dag.clone(),
            status,
            status_label: label,
            queued_at: Some(rfc3339(run.created_at)),
            started_at: time_or_dash(run.started_at),
            finished_at: time_or_dash(run.finished_at),
            log: run.log_dir.join("run.log").to_string_lossy().into_owned(),
            params: Some(params_json(&run.params)),
            worker_id: Some("local"),
            parent_name: None,
            parent_id: None,
        }
    }

    /// A run with its place in its tree: a sub-DAG run names its root and parent runs.
    pub fn in_tree(store: &Store, run: &RunRecord) -> Self {
        let mut summary = Self::of(run);
        if let Some(root) = run.root.and_then(|k| store.run_by_key(k).ok().flatten()) {
            summary.root_name = root.dag;
            summary.root_id = root.run_id;
        }
        if let Some(parent) = run
            .parent
            .as_ref()
            .and_then(|(k, _)| store.run_by_key(*k).ok().flatten())
        {
            summary.parent_name = Some(parent.dag);
            summary.parent_id = Some(parent.run_id);
        }
        summary
    }

    /// A run that never was: what the API shows for a DAG without runs (status 0, and `-`
    /// for the id and the times: the document's pattern allows no empty id).
    pub fn none(name: &str) -> Self {
        Self {
            root_name: name.to_owned(),
            root_id: "-".into(),
            run_id: "-".into(),
            name: name.to_owned(),
            status: 0,
            status_label: "not_started",
            queued_at: None,
            started_at: "-".into(),
            finished_at: "-".into(),
            log: String::new(),
            params: None,
            worker_id: None,
            parent_name: None,
            parent_id: None,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Command {
    pub command: String,
    pub args: Vec<String>,
}

/// `Step`.
#[derive(Serialize, Default)]
pub(crate) struct StepShape {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depends: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<Command>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(rename = "timeoutSec", skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<u64>,
}

impl StepShape {
    /// The step `name` of the DAG, or just its name when the DAG (as it is now) has none.
    pub fn of(dag: Option<&Dag>, name: &str) -> Self {
        let Some(step) = dag.and_then(|d| {
            d.steps
                .iter()
                .chain(d.handlers.iter().map(|(_, s)| s))
                .find(|s| s.name == name)
        }) else {
            return Self {
                name: name.to_owned(),
                ..Self::default()
            };
        };
        let commands = step.command.as_ref().map(|c| match c {
            wharf_spec::CommandSpec::Argv(a) => vec![Command {
                command: a.first().cloned().unwrap_or_default(),
                args: a[1.min(a.len())..].to_vec(),
            }],
            wharf_spec::CommandSpec::Line(l) => vec![Command {
                command: l.clone(),
                args: Vec::new(),
            }],
            wharf_spec::CommandSpec::Lines(lines) => lines
                .iter()
                .map(|l| Command {
                    command: l.clone(),
                    args: Vec::new(),
                })
                .collect(),
        });
        Self {
            name: step.name.clone(),
            depends: Some(step.depends.clone()),
            commands,
            description: step.description.clone(),
            dir: step.dir.clone(),
            script: step.script.clone(),
            output: step.output.as_ref().map(|o| o.name.clone()),
            timeout_sec: step.timeout_sec,
        }
    }
}

/// `Node`: a step of a run.
#[derive(Serialize)]
pub(crate) struct Node {
    pub step: StepShape,
    pub stdout: String,
    pub stderr: String,
    #[serde(rename = "startedAt")]
    pub started_at: String,
    #[serde(rename = "finishedAt")]
    pub finished_at: String,
    pub status: i64,
    #[serde(rename = "statusLabel")]
    pub status_label: &'static str,
    #[serde(rename = "retryCount")]
    pub retry_count: u32,
    #[serde(rename = "doneCount")]
    pub done_count: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The sub-DAG runs the step started.
    #[serde(rename = "subRuns", skip_serializing_if = "Vec::is_empty")]
    pub sub_runs: Vec<SubRun>,
    /// Where the step ran when not on this machine (a Swarm job's node and task).
    #[serde(rename = "ranOn", skip_serializing_if = "Option::is_none")]
    pub ran_on: Option<String>,
}

/// `SubDAGRun`.
#[derive(Serialize)]
pub(crate) struct SubRun {
    #[serde(rename = "dagRunId")]
    pub run_id: String,
    pub params: String,
}

/// `SubDAGRunDetail`.
#[derive(Serialize)]
pub(crate) struct SubRunDetail {
    #[serde(rename = "dagRunId")]
    pub run_id: String,
    pub params: String,
    pub status: i64,
    #[serde(rename = "statusLabel")]
    pub status_label: &'static str,
    #[serde(rename = "startedAt")]
    pub started_at: String,
    #[serde(rename = "finishedAt")]
    pub finished_at: String,
}

impl SubRunDetail {
    pub fn of(run: &RunRecord) -> Self {
        let (status, label) = run_status(run.status);
        Self {
            run_id: run.run_id.clone(),
            params: params_json(&run.params),
            status,
            status_label: label,
            started_at: time_or_dash(run.started_at),
            finished_at: time_or_dash(run.finished_at),
        }
    }
}

impl Node {
    pub fn of(store: &Store, run: &RunRecord, dag: Option<&Dag>, s: &StepRecord) -> Self {
        let (status, label) = node_status(s.status);
        let (stdout, stderr) = store
            .attempts(run.key, &s.name)
            .ok()
            .and_then(|a| a.into_iter().last())
            .map(|a| {
                (
                    a.stdout.to_string_lossy().into_owned(),
                    a.stderr.to_string_lossy().into_owned(),
                )
            })
            .unwrap_or_default();
        Self {
            step: StepShape::of(dag, &s.name),
            stdout,
            stderr,
            started_at: time_or_dash(s.started_at),
            finished_at: time_or_dash(s.finished_at),
            status,
            status_label: label,
            retry_count: s.attempts.saturating_sub(1),
            done_count: u32::from(s.status == Status::Succeeded),
            error: s.error.clone(),
            ran_on: s.ran_on.clone(),
            sub_runs: store
                .children(run.key)
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.parent.as_ref().is_some_and(|(_, step)| *step == s.name))
                .map(|c| SubRun {
                    params: params_json(&c.params),
                    run_id: c.run_id,
                })
                .collect(),
        }
    }
}

/// `DAGRunDetails`: the summary, its steps and its handlers.
#[derive(Serialize)]
pub(crate) struct RunDetails {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub nodes: Vec<Node>,
    #[serde(rename = "onExit", skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<Node>,
    #[serde(rename = "onSuccess", skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Node>,
    #[serde(rename = "onFailure", skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Node>,
    #[serde(rename = "onCancel", skip_serializing_if = "Option::is_none")]
    pub on_cancel: Option<Node>,
}

impl RunDetails {
    pub fn of(store: &Store, run: &RunRecord) -> Self {
        // A sub-DAG may be a later document of its file: the DAG of that name.
        let dag = wharf_spec::load_file(&run.file)
            .ok()
            .and_then(|l| l.dag)
            .and_then(|d| {
                if d.name == run.dag {
                    Some(d)
                } else {
                    d.locals.into_iter().find(|l| l.name == run.dag)
                }
            });
        let steps = store.steps(run.key).unwrap_or_default();
        let handler = |event: &str| {
            steps
                .iter()
                .find(|s| s.handler.as_deref() == Some(event))
                .map(|s| Node::of(store, run, dag.as_ref(), s))
        };
        Self {
            summary: RunSummary::in_tree(store, run),
            nodes: steps
                .iter()
                .filter(|s| s.handler.is_none())
                .map(|s| Node::of(store, run, dag.as_ref(), s))
                .collect(),
            on_exit: handler("exit"),
            on_success: handler("success"),
            on_failure: handler("failure"),
            on_cancel: handler("abort"),
        }
    }

    /// A DAG that never ran: no run, no steps.
    pub fn none(name: &str) -> Self {
        Self {
            summary: RunSummary::none(name),
            nodes: Vec::new(),
            on_exit: None,
            on_success: None,
            on_failure: None,
            on_cancel: None,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Schedule {
    pub expression: String,
}

/// `DAG`.
#[derive(Serialize)]
pub(crate) struct DagShape {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub name: String,
    pub schedule: Vec<Schedule>,
    pub description: String,
    pub params: Vec<String>,
    #[serde(rename = "defaultParams")]
    pub default_params: String,
    pub tags: Vec<String>,
    #[serde(rename = "runConfig", skip_serializing_if = "Option::is_none")]
    pub run_config: Option<RunConfigShape>,
}

/// `RunConfig`.
#[derive(Serialize)]
pub(crate) struct RunConfigShape {
    #[serde(rename = "disableParamEdit")]
    pub disable_param_edit: bool,
    #[serde(rename = "disableRunIdEdit")]
    pub disable_run_id_edit: bool,
}

impl DagShape {
    pub fn of(dag: &Dag) -> Self {
        let params: Vec<String> = dag
            .params
            .iter()
            .map(|p| match &p.name {
                Some(n) => wharf_spec::redact::param(&format!("{n}={}", p.value)),
                None => p.value.clone(),
            })
            .collect();
        Self {
            group: dag.group.clone(),
            name: dag.name.clone(),
            schedule: dag
                .schedule
                .start
                .iter()
                .map(|e| Schedule {
                    expression: e.clone(),
                })
                .collect(),
            description: dag.description.clone().unwrap_or_default(),
            default_params: params.join(" "),
            params,
            tags: dag.tags.clone(),
            run_config: (dag.run_config != wharf_spec::RunConfig::default()).then_some(
                RunConfigShape {
                    disable_param_edit: dag.run_config.disable_param_edit,
                    disable_run_id_edit: dag.run_config.disable_run_id_edit,
                },
            ),
        }
    }
}

/// A DAG of the list: its shape, or only its name when the file is invalid.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum DagOrName {
    Dag(DagShape),
    Name { name: String },
}

/// `DAGDetails`.
#[derive(Serialize)]
pub(crate) struct DagDetails {
    #[serde(flatten)]
    pub dag: DagShape,
    pub steps: Vec<StepShape>,
    pub env: Vec<String>,
    #[serde(rename = "timeoutSec", skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<u64>,
}

impl DagDetails {
    pub fn of(dag: &Dag) -> Self {
        Self {
            dag: DagShape::of(dag),
            steps: dag
                .steps
                .iter()
                .map(|s| StepShape::of(Some(dag), &s.name))
                .collect(),
            env: dag
                .env
                .iter()
                .map(|e| {
                    let value = if wharf_spec::redact::is_secret_key(&e.name) {
                        wharf_spec::redact::REDACTED
                    } else {
                        e.value.as_str()
                    };
                    format!("{}={value}", e.name)
                })
                .collect(),
            timeout_sec: dag.timeout_sec,
        }
    }
}

/// An item of the DAG list.
#[derive(Serialize)]
pub(crate) struct DagFile {
    #[serde(rename = "fileName")]
    pub file_name: String,
    pub dag: DagOrName,
    #[serde(rename = "latestDAGRun")]
    pub latest: RunSummary,
    pub suspended: bool,
    pub errors: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Pagination {
    #[serde(rename = "totalRecords")]
    pub total_records: usize,
    #[serde(rename = "currentPage")]
    pub current_page: usize,
    #[serde(rename = "totalPages")]
    pub total_pages: usize,
    #[serde(rename = "nextPage")]
    pub next_page: usize,
    #[serde(rename = "prevPage")]
    pub prev_page: usize,
}

#[derive(Serialize)]
pub(crate) struct DagList {
    pub dags: Vec<DagFile>,
    pub errors: Vec<String>,
    pub pagination: Pagination,
}

/// `GET /dags/{fileName}`.
#[derive(Serialize)]
pub(crate) struct DagAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagDetails>,
    #[serde(rename = "latestDAGRun")]
    pub latest: RunDetails,
    pub suspended: bool,
    #[serde(rename = "localDags")]
    pub local_dags: Vec<String>,
    pub errors: Vec<String>,
}

/// `POST /dags/validate`.
#[derive(Serialize)]
pub(crate) struct Validation {
    pub valid: bool,
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagDetails>,
}

/// `GET /dags/{fileName}/spec`.
#[derive(Serialize)]
pub(crate) struct Spec {
    pub spec: String,
    pub errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagDetails>,
}

#[derive(Serialize)]
pub(crate) struct Named {
    pub name: String,
}

#[derive(Serialize)]
pub(crate) struct Started {
    #[serde(rename = "dagRunId")]
    pub run_id: String,
}

/// A run started again from an earlier one (`reschedule`).
#[derive(Serialize)]
pub(crate) struct Rescheduled {
    #[serde(rename = "dagRunId")]
    pub run_id: String,
    /// It waits for a place in its queue rather than running.
    pub queued: bool,
}

/// The YAML of the DAG a run ran.
#[derive(Serialize)]
pub(crate) struct RunSpec {
    pub spec: String,
}

#[derive(Serialize)]
pub(crate) struct Errors {
    pub errors: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Empty {}

#[derive(Serialize)]
pub(crate) struct GridRow {
    pub name: String,
    pub history: Vec<i64>,
}

/// `GET /dags/{fileName}/dag-runs`.
#[derive(Serialize)]
pub(crate) struct RunsOfDag {
    #[serde(rename = "dagRuns")]
    pub runs: Vec<RunDetails>,
    #[serde(rename = "gridData")]
    pub grid: Vec<GridRow>,
}

#[derive(Serialize)]
pub(crate) struct Runs {
    #[serde(rename = "dagRuns")]
    pub runs: Vec<RunSummary>,
}

#[derive(Serialize)]
pub(crate) struct RunDetailsAnswer {
    #[serde(rename = "dagRunDetails")]
    pub details: RunDetails,
}

/// `Log`.
#[derive(Serialize)]
pub(crate) struct Log {
    pub content: String,
    #[serde(rename = "lineCount")]
    pub line_count: usize,
    #[serde(rename = "totalLines")]
    pub total_lines: usize,
    #[serde(rename = "hasMore")]
    pub has_more: bool,
    #[serde(rename = "isEstimate")]
    pub is_estimate: bool,
}

#[derive(Serialize)]
pub(crate) struct OutputsMetadata {
    #[serde(rename = "dagName")]
    pub dag_name: String,
    #[serde(rename = "dagRunId")]
    pub run_id: String,
    #[serde(rename = "attemptId")]
    pub attempt_id: &'static str,
    pub status: &'static str,
    #[serde(rename = "completedAt")]
    pub completed_at: String,
    pub params: String,
}

#[derive(Serialize)]
pub(crate) struct Outputs {
    pub metadata: OutputsMetadata,
    pub outputs: serde_json::Map<String, Value>,
}

/// The answer of `GET /dag-runs/{name}/{id}/sub-dag-runs`.
#[derive(Serialize)]
pub(crate) struct SubRuns {
    #[serde(rename = "subRuns")]
    pub sub_runs: Vec<SubRunDetail>,
}

/// `ApproveStepResponse` (and, without `resumed`, `RejectStepResponse`).
#[derive(Serialize)]
pub(crate) struct Decided {
    #[serde(rename = "dagRunId")]
    pub run_id: String,
    #[serde(rename = "stepName")]
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed: Option<bool>,
}

/// `QueuesResponse`.
#[derive(Serialize)]
pub(crate) struct Queues {
    pub queues: Vec<Queue>,
    pub summary: QueuesSummary,
}

/// `Queue`: a global queue, or a DAG's own (`dag-based`).
#[derive(Serialize)]
pub(crate) struct Queue {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "maxConcurrency")]
    pub max_concurrency: u32,
    pub running: Vec<RunSummary>,
    pub queued: Vec<RunSummary>,
}

/// `QueuesSummary`.
#[derive(Serialize)]
pub(crate) struct QueuesSummary {
    #[serde(rename = "totalQueues")]
    pub total_queues: usize,
    #[serde(rename = "totalRunning")]
    pub total_running: usize,
    #[serde(rename = "totalQueued")]
    pub total_queued: usize,
    /// The places of all the queues.
    #[serde(rename = "totalCapacity")]
    pub total_capacity: u64,
    /// The share of the places taken, in percent.
    #[serde(rename = "utilizationPercentage")]
    pub utilization: f64,
}

/// `searchDAGs`' answer.
#[derive(Serialize)]
pub(crate) struct Search {
    pub results: Vec<SearchResult>,
    pub errors: Vec<String>,
}

/// `SearchResultItem`.
#[derive(Serialize)]
pub(crate) struct SearchResult {
    pub name: String,
    pub dag: DagShape,
    pub matches: Vec<SearchMatch>,
}

/// `SearchDAGsMatchItem`.
#[derive(Serialize)]
pub(crate) struct SearchMatch {
    pub line: String,
    #[serde(rename = "lineNumber")]
    pub line_number: usize,
    #[serde(rename = "startLine")]
    pub start_line: usize,
}

/// `ListTagResponse`.
#[derive(Serialize)]
pub(crate) struct Tags {
    pub tags: Vec<String>,
    pub errors: Vec<String>,
}
