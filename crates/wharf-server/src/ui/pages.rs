//! The three pages: the DAG list, a DAG, a run. Each gathers what it shows from the files
//! and the store; its template (`templates/`) lays it out and escapes every value.

use askama::Template;
use axum::http::StatusCode;
use wharf_store::{Status, Store};

use super::graph::{self, Graph};
use super::{Reply, not_found, path_segment, render};
use crate::{State, rfc3339};

pub(crate) struct ListRow {
    file: String,
    name: String,
    errors: usize,
    status: Option<&'static str>,
    started: String,
    /// The next scheduled run, for sorting.
    next_ms: Option<i64>,
    /// The latest run's start, for sorting.
    started_ms: i64,
    schedule: String,
    tags: Vec<String>,
    /// The DAG's `group`: the heading it is listed under.
    group: String,
    suspended: bool,
    running: bool,
}

#[derive(Template)]
#[template(path = "dag_list.html")]
struct DagList {
    base: super::Chrome,
    /// How the rows are sorted: `name`, `status` or `started`.
    sort: String,
    /// A run is going: the page follows it (its table refreshed, not the page).
    live: bool,
    name_filter: String,
    tag_filter: String,
    group_filter: String,
    /// `group_filter` as a query value.
    group_query: String,
    dir: String,
    /// The rows under their group's heading (the DAGs without a group first).
    groups: Vec<ListGroup>,
    count: usize,
}

/// DAGs that share a `group`, listed under it.
pub(crate) struct ListGroup {
    /// The group's name; empty for the DAGs that have none.
    name: String,
    /// The group's name as a query value (`?group=...`).
    query: String,
    rows: Vec<ListRow>,
}

pub(crate) fn dag_list(state: &State, query: &str) -> Reply {
    let name_filter = crate::api::query_param(query, "name").unwrap_or_default();
    let tag_filter = crate::api::query_param(query, "tag").unwrap_or_default();
    let group_filter = crate::api::query_param(query, "group").unwrap_or_default();
    let (default_sort, default_desc) = &state.config.dags_sort;
    let sort = match crate::api::query_param(query, "sort").as_deref() {
        Some("name") => "name",
        Some("status") => "status",
        Some("started") => "started",
        Some("next") => "next",
        _ => default_sort.as_str(),
    };
    let descending = match crate::api::query_param(query, "order").as_deref() {
        Some("desc") => true,
        Some("asc") => false,
        _ => *default_desc && crate::api::query_param(query, "sort").is_none(),
    };
    let store = Store::open(&state.config.home).ok();
    let mut rows = Vec::new();
    // DAGs often share a schedule: its next run is computed once per page.
    let now = jiff::Timestamp::now();
    let mut next_runs: std::collections::HashMap<Vec<String>, Option<jiff::Timestamp>> =
        std::collections::HashMap::new();
    for (file_name, path) in crate::api::dag_files(&state.config.dags) {
        let loaded = wharf_spec::load_file(&path).ok();
        let dag = loaded.as_ref().and_then(|l| l.dag.as_ref());
        let name = dag.map_or(file_name.clone(), |d| d.name.clone());
        if !name_filter.is_empty() && !name.to_lowercase().contains(&name_filter.to_lowercase()) {
            continue;
        }
        let tags: Vec<String> = dag.map(|d| d.tags.clone()).unwrap_or_default();
        if !tag_filter.is_empty() && !tags.contains(&tag_filter) {
            continue;
        }
        let group = dag.and_then(|d| d.group.clone()).unwrap_or_default();
        if !group_filter.is_empty() && group != group_filter {
            continue;
        }
        let latest = store
            .as_ref()
            .and_then(|s| s.latest_run(&name).ok().flatten());
        let schedule = dag
            .map(|d| {
                let exprs = d.schedule.start.join(", ");
                let next = *next_runs
                    .entry(d.schedule.start.clone())
                    .or_insert_with(|| crate::scheduler::next_run(d, now));
                match next {
                    Some(next) => format!("{exprs} (next {})", next.strftime("%Y-%m-%dT%H:%MZ")),
                    None => exprs,
                }
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into());
        let next_ms = dag
            .and_then(|d| next_runs.get(&d.schedule.start).copied().flatten())
            .map(|t| t.as_millisecond());
        let suspended = store
            .as_ref()
            .is_some_and(|s| s.is_suspended(&name).unwrap_or(false));
        rows.push(ListRow {
            file: file_name,
            name,
            errors: loaded.as_ref().map_or(0, wharf_spec::Loaded::errors),
            status: latest.as_ref().map(|r| r.status.as_str()),
            started: latest
                .as_ref()
                .and_then(|r| r.started_at)
                .map(rfc3339)
                .unwrap_or_default(),
            started_ms: latest.as_ref().and_then(|r| r.started_at).unwrap_or(0),
            suspended,
            running: latest
                .as_ref()
                .is_some_and(|r| matches!(r.status, Status::Running | Status::Queued)),
            schedule,
            next_ms,
            tags,
            group,
        });
    }
    match sort {
        // Failures first: the statuses that need a look, then the others, never run last.
        "status" => rows.sort_by_key(|r| {
            let rank = match r.status {
                Some("failed" | "rejected") => 0,
                Some("aborted" | "partially_succeeded") => 1,
                Some("running" | "queued" | "waiting") => 2,
                Some(_) => 3,
                None => 4,
            };
            (rank, r.name.to_lowercase())
        }),
        "started" => rows.sort_by_key(|r| std::cmp::Reverse(r.started_ms)),
        // The next scheduled run first; DAGs without a schedule last.
        "next" => rows.sort_by_key(|r| (r.next_ms.is_none(), r.next_ms, r.name.to_lowercase())),
        _ => rows.sort_by_key(|r| r.name.to_lowercase()),
    }
    if descending {
        rows.reverse();
    }
    let live = rows
        .iter()
        .any(|r| matches!(r.status, Some("running" | "queued" | "waiting")));
    let count = rows.len();
    // Groups in name order, each keeping the rows' order; those without a group first.
    let mut groups: std::collections::BTreeMap<String, Vec<ListRow>> =
        std::collections::BTreeMap::new();
    for r in rows {
        groups.entry(r.group.clone()).or_default().push(r);
    }
    render(
        StatusCode::OK,
        &DagList {
            live,
            sort: sort.to_owned(),
            base: super::Chrome::of(&state.config),
            name_filter,
            tag_filter,
            group_query: form_urlencoded::byte_serialize(group_filter.as_bytes()).collect(),
            group_filter,
            dir: state.config.dags.display().to_string(),
            groups: groups
                .into_iter()
                .map(|(name, rows)| ListGroup {
                    query: form_urlencoded::byte_serialize(name.as_bytes()).collect(),
                    name,
                    rows,
                })
                .collect(),
            count,
        },
    )
}

pub(crate) struct RunRow {
    id: String,
    status: &'static str,
    started: String,
    took: String,
    trigger: String,
}

/// How long a run took (`4.2s`, `3m05s`), when it has ended.
fn took(r: &wharf_store::RunRecord) -> String {
    match (r.started_at, r.finished_at) {
        (Some(a), Some(b)) => length(b - a),
        _ => String::new(),
    }
}

/// A length of time in milliseconds as `4.2s` or `3m05s`.
fn length(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
    }
}

#[derive(Template)]
#[template(path = "dag_page.html")]
struct DagPage {
    base: super::Chrome,
    /// A run is going: the page follows it (its runs and picture refreshed).
    live: bool,
    file: String,
    name: String,
    /// Its file is not the folder's (its runs came from the command line, `wharf exec`
    /// or the API): shown, not started or edited here.
    outside: bool,
    /// The file is a DAG: it can start (an invalid one is shown, not offered to start).
    valid: bool,
    description: Option<String>,
    /// The DAG's `group` and its tags, with the list's query for each.
    group: Option<(String, String)>,
    tags: Vec<String>,
    default_params: String,
    /// `runConfig.disableParamEdit`: the form shows the params and sends none.
    params_fixed: bool,
    /// The DAG's runConfig keeps the run id from being chosen.
    run_id_fixed: bool,
    /// The start form's fields: each named param with its default (a credential's not
    /// shown), and the positional ones as one text.
    param_fields: Vec<ParamField>,
    positional: String,
    graph: Option<Graph>,
    runs: Vec<RunRow>,
    /// The runs of the grid, newest first (as the table below): id, status, and a
    /// short label (its start, `MM-DD HH:MM` UTC).
    grid_runs: Vec<(String, &'static str, String)>,
    /// Per step, its status in each run of the grid.
    grid: Vec<(String, Vec<&'static str>)>,
    path: String,
    diagnostics: Option<String>,
    yaml: String,
    /// The DAG's webhook, when it has one.
    webhook: Option<WebhookRow>,
}

/// A DAG's webhook as its page shows it (never its token).
pub(crate) struct WebhookRow {
    prefix: String,
    enabled: bool,
    /// When it last started a run (RFC 3339), or empty.
    last_used: String,
}

/// A DAG's page; the picture shows the run `selected` (`?run=ID`), or the latest.
pub(crate) fn dag_page(state: &State, file_name: &str, selected: Option<&str>) -> Reply {
    let Some(page) = crate::api::page_dag(&state.config.dags, &state.config.home, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    let file = page.file;
    let Ok(loaded) = wharf_spec::load_file(&file) else {
        return not_found(state, &format!("cannot read {}", file.display()));
    };
    let dag = loaded.dag.as_ref();
    let name = if page.in_folder {
        dag.map_or(file_name.to_owned(), |d| d.name.clone())
    } else {
        page.name
    };
    let store = Store::open(&state.config.home).ok();
    let runs = store
        .as_ref()
        .and_then(|s| s.history(&name, 20).ok())
        .unwrap_or_default();
    let webhook = store
        .as_ref()
        .filter(|_| page.in_folder)
        .and_then(|s| s.webhook(file_name).ok().flatten())
        .map(|w| WebhookRow {
            prefix: w.token_prefix,
            enabled: w.enabled,
            last_used: w.last_used_at.map(rfc3339).unwrap_or_default(),
        });
    let steps_of = |r: &wharf_store::RunRecord| {
        store
            .as_ref()
            .and_then(|s| s.steps(r.key).ok())
            .unwrap_or_default()
    };
    let graph = dag.map(|d| {
        let shown = match selected {
            Some(id) => runs.iter().find(|r| r.run_id == id),
            None => runs.first(),
        };
        // A handler's status is keyed `on EVENT` (its name may be a step's too).
        let statuses: Vec<(String, Status)> = shown
            .map(|r| {
                steps_of(r)
                    .into_iter()
                    .map(|s| match s.handler {
                        Some(event) => (format!("on {event}"), s.status),
                        None => (s.name, s.status),
                    })
                    .collect()
            })
            .unwrap_or_default();
        graph::of(
            d,
            &statuses,
            shown.map(|r| (r.run_id.clone(), r.status.as_str())),
        )
    });
    let per_run: Vec<Vec<wharf_store::StepRecord>> = runs.iter().map(steps_of).collect();
    let grid = dag
        .map(|d| {
            // The handlers' rows after the steps' (a handler that did not run shows as
            // not started).
            d.steps
                .iter()
                .chain(d.handlers.iter().map(|(_, s)| s))
                .map(|step| {
                    let cells = per_run
                        .iter()
                        .map(|steps| {
                            steps
                                .iter()
                                .find(|s| s.name == step.name)
                                .map_or(Status::NotStarted, |s| s.status)
                                .as_str()
                        })
                        .collect();
                    (step.name.clone(), cells)
                })
                .collect()
        })
        .unwrap_or_default();
    let shown_path = file.display().to_string();
    render(
        StatusCode::OK,
        &DagPage {
            base: super::Chrome::of(&state.config),
            live: runs
                .iter()
                .any(|r| matches!(r.status, Status::Running | Status::Queued)),
            file: file_name.to_owned(),
            outside: !page.in_folder,
            valid: dag.is_some(),
            description: dag.and_then(|d| d.description.clone()),
            group: dag.and_then(|d| d.group.clone()).map(|g| {
                let query = form_urlencoded::byte_serialize(g.as_bytes()).collect();
                (g, query)
            }),
            tags: dag.map(|d| d.tags.clone()).unwrap_or_default(),
            default_params: dag.map(shown_params).unwrap_or_default(),
            params_fixed: dag.is_some_and(|d| d.run_config.disable_param_edit),
            run_id_fixed: dag.is_some_and(|d| d.run_config.disable_run_id_edit),
            param_fields: dag.map(param_fields).unwrap_or_default(),
            positional: dag
                .map(|d| {
                    d.params
                        .iter()
                        .filter(|p| p.name.is_none())
                        .map(|p| shell_words::quote(&p.value).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
            graph,
            grid_runs: runs
                .iter()
                .map(|r| {
                    let label = r
                        .started_at
                        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                        .map(|t| t.strftime("%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "-".into());
                    (r.run_id.clone(), r.status.as_str(), label)
                })
                .collect(),
            grid,
            runs: runs
                .iter()
                .map(|r| RunRow {
                    id: r.run_id.clone(),
                    status: r.status.as_str(),
                    started: r.started_at.map(rfc3339).unwrap_or_default(),
                    took: took(r),
                    trigger: r.trigger.clone().unwrap_or_default(),
                })
                .collect(),
            diagnostics: (!loaded.diagnostics.is_empty())
                .then(|| loaded.render(&shown_path, false)),
            yaml: wharf_spec::redact::source(&loaded.source),
            path: shown_path,
            name,
            webhook,
        },
    )
}

/// A named param's field in the start form.
pub(crate) struct ParamField {
    name: String,
    value: String,
    /// A credential: its default is not shown; left empty, the run keeps it.
    secret: bool,
    /// The values the param's schema allows (`enum`), offered as a choice.
    choices: Vec<String>,
}

fn param_fields(dag: &wharf_spec::Dag) -> Vec<ParamField> {
    dag.params
        .iter()
        .filter_map(|p| {
            let name = p.name.clone()?;
            let word = format!("{name}={}", p.value);
            let secret = wharf_spec::redact::param(&word) != word;
            Some(ParamField {
                value: if secret {
                    String::new()
                } else {
                    p.value.clone()
                },
                name,
                secret,
                choices: Vec::new(),
            })
        })
        .chain(schema_fields(dag))
        .collect()
}

/// A field for each property of the DAG's params schema (a Dagu 2.x file's declared
/// params, or `params: {schema: …}`): its default, its `enum` as a choice.
fn schema_fields(dag: &wharf_spec::Dag) -> Vec<ParamField> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let Some(props) = dag
        .params_schema
        .as_ref()
        .and_then(|s| s.json.get("properties"))
        .and_then(serde_json::Value::as_object)
    else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(name, _)| !dag.params.iter().any(|p| p.name.as_deref() == Some(name)))
        .map(|(name, prop)| {
            let value = prop.get("default").map(text).unwrap_or_default();
            let word = format!("{name}={value}");
            let secret = wharf_spec::redact::param(&word) != word;
            ParamField {
                name: name.clone(),
                value: if secret { String::new() } else { value },
                secret,
                choices: prop
                    .get("enum")
                    .and_then(serde_json::Value::as_array)
                    .map(|a| a.iter().map(text).collect())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The DAG's params for the start form: a credential's default is not shown (the run uses
/// it unless one is given).
fn shown_params(dag: &wharf_spec::Dag) -> String {
    dag.params
        .iter()
        .filter_map(|p| match &p.name {
            Some(n) => {
                let word = format!("{n}={}", p.value);
                (wharf_spec::redact::param(&word) == word).then_some(word)
            }
            None => Some(p.value.clone()),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) struct StepRow {
    name: String,
    label: String,
    status: &'static str,
    left: String,
    width: String,
    /// How long it ran, and when (from the timeline's start), once it has started.
    took: String,
    /// Where it ran, when not on this machine.
    ran_on: Option<String>,
    when: String,
    exit: String,
    error: String,
    /// A step that waits for an approval (on a root run's page): the inputs it takes.
    approval: Option<String>,
    /// A human task that waits (on a root run's page): its form's fields.
    task: Option<Vec<TaskField>>,
}

/// A field of a waiting human task's form, as the page asks for it.
pub(crate) struct TaskField {
    name: String,
    /// Its title and what it takes (type, bounds).
    label: String,
    /// `select` (choices, booleans) or an `<input>` type (`number`, `text`).
    kind: &'static str,
    /// The choices of a `select`, the first one empty when the field has no default.
    choices: Vec<String>,
    /// What the page shows first: the field's default.
    value: String,
    required: bool,
}

/// The fields of a human task's form, as the run's page asks for them.
fn task_fields(form: &wharf_spec::form::Form) -> Vec<TaskField> {
    use wharf_spec::form::{ScalarType, scalar_text};
    form.properties
        .iter()
        .map(|(name, f)| {
            let required = form.required.contains(name);
            let mut choices: Vec<String> = match (&f.allowed, f.one_of.is_empty(), f.ty) {
                (Some(values), _, _) => values.iter().map(scalar_text).collect(),
                (None, false, _) => f.one_of.iter().map(|c| scalar_text(&c.value)).collect(),
                (None, true, ScalarType::Boolean) => vec!["true".into(), "false".into()],
                (None, true, _) => Vec::new(),
            };
            let value = f.default.as_ref().map(scalar_text).unwrap_or_default();
            // Without a default, nothing is chosen for the person (a required one must be).
            if !choices.is_empty() && f.default.is_none() {
                choices.insert(0, String::new());
            }
            let kind = match f.ty {
                _ if !choices.is_empty() => "select",
                ScalarType::Integer | ScalarType::Number => "number",
                _ => "text",
            };
            let mut what = vec![f.ty.as_str().to_owned()];
            if let Some(min) = f.minimum {
                what.push(format!(">= {min}"));
            }
            if let Some(max) = f.maximum {
                what.push(format!("<= {max}"));
            }
            if let Some(p) = &f.pattern {
                what.push(format!("matching {p}"));
            }
            TaskField {
                name: name.clone(),
                label: format!(
                    "{}{} ({})",
                    f.title.as_deref().unwrap_or(name),
                    if required { " *" } else { "" },
                    what.join(", ")
                ),
                kind,
                choices,
                value,
                required,
            }
        })
        .collect()
}

pub(crate) struct StepLog {
    name: String,
    stdout: String,
    stderr: String,
    /// The whole log's page (and `&download=1` for a file), stdout and stderr.
    href: String,
    /// The live log's URL, while the step may still write.
    live: Option<String>,
}

#[derive(Template)]
#[template(path = "run_page.html")]
struct RunPage {
    base: super::Chrome,
    file: String,
    name: String,
    run_id: String,
    status: &'static str,
    started: String,
    finished: Option<String>,
    error: Option<String>,
    /// The timeline's scale: its start and its length, as people read them.
    axis: (String, String),
    running: bool,
    /// Nothing to retry.
    succeeded: bool,
    /// The params it ran with (credentials redacted).
    params: Vec<String>,
    /// The outputs its steps made.
    outputs: Vec<(String, String)>,
    steps: Vec<StepRow>,
    logs: Vec<StepLog>,
    /// The sub-DAG runs the steps started.
    subs: Vec<SubLink>,
    /// For a sub-DAG run: the run that started it (its name and page) and the step.
    parent: Option<(String, String, String)>,
    /// The DAG as the run ran it (credentials redacted), when it was kept.
    spec: Option<String>,
}

/// A sub-DAG run on its parent's page.
struct SubLink {
    step: String,
    name: String,
    run_id: String,
    status: &'static str,
    href: String,
}

/// A run's page; with `sub`, the page of one of the sub-DAG runs in its tree.
pub(crate) fn run_page(state: &State, file_name: &str, id: &str, sub: Option<&str>) -> Reply {
    let base = &state.config.base_path;
    let Some(page) = crate::api::page_dag(&state.config.dags, &state.config.home, file_name) else {
        return not_found(state, &format!("no DAG {file_name}"));
    };
    let name = page.name;
    let Ok(store) = Store::open(&state.config.home) else {
        return not_found(state, "the store cannot be opened");
    };
    let run = if id == "latest" {
        store.latest_run(&name)
    } else {
        store.run(&name, id)
    };
    let Ok(Some(top)) = run else {
        return not_found(state, &format!("no run {id} of {name}"));
    };
    let top_page = format!("{base}/dags/{file_name}/runs/{}", top.run_id);
    let (run, name, parent) = match sub {
        None => (top, name, None),
        Some(sub) => {
            let Ok(Some(run)) = store.sub_run(top.root.unwrap_or(top.key), sub) else {
                return not_found(
                    state,
                    &format!("no sub-DAG run {sub} under run {id} of {name}"),
                );
            };
            let parent = run.parent.as_ref().and_then(|(key, step)| {
                let p = store.run_by_key(*key).ok().flatten()?;
                let href = if p.key == top.key {
                    top_page.clone()
                } else {
                    format!("{top_page}/sub/{}", p.run_id)
                };
                Some((format!("{} {}", p.dag, p.run_id), href, step.clone()))
            });
            let name = run.dag.clone();
            (run, name, parent)
        }
    };
    let subs = store
        .children(run.key)
        .unwrap_or_default()
        .into_iter()
        .map(|c| SubLink {
            step: c
                .parent
                .as_ref()
                .map(|(_, s)| s.clone())
                .unwrap_or_default(),
            href: format!("{top_page}/sub/{}", c.run_id),
            name: c.dag,
            run_id: c.run_id,
            status: c.status.as_str(),
        })
        .collect();
    let steps = store.steps(run.key).unwrap_or_default();
    // A sub-DAG run is stopped or retried through its root run; its page is not live.
    let running = run.status == Status::Running && sub.is_none();
    // The timeline: each step's bar within the run's span, from its first step's start
    // (a retried run started again later; the steps it kept ran before that).
    let t0 = steps
        .iter()
        .filter_map(|s| s.started_at)
        .chain(run.started_at)
        .min()
        .unwrap_or(run.created_at);
    let t1 = run
        .finished_at
        .unwrap_or_else(wharf_store::now_ms)
        .max(t0 + 1);
    let span = (t1 - t0) as f64;
    let rows = steps
        .iter()
        .map(|s| {
            let a = s.started_at.unwrap_or(t0);
            let b = s
                .finished_at
                .unwrap_or(if s.started_at.is_some() { t1 } else { t0 });
            let left = ((a - t0) as f64 / span * 100.0).clamp(0.0, 100.0);
            let width = (((b - a) as f64 / span) * 100.0)
                .clamp(0.0, 100.0 - left)
                .max(0.5);
            StepRow {
                name: s.name.clone(),
                label: match s.handler.as_deref() {
                    Some(h) => format!("{} (on {h})", s.name),
                    None => s.name.clone(),
                },
                status: s.status.as_str(),
                left: format!("{left:.1}"),
                width: format!("{width:.1}"),
                took: s.started_at.map(|_| length(b - a)).unwrap_or_default(),
                ran_on: s.ran_on.clone(),
                when: s
                    .started_at
                    .map(|_| format!("from +{} to +{}", length(a - t0), length(b - t0)))
                    .unwrap_or_default(),
                exit: s.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                error: s.error.clone().unwrap_or_default(),
                task: (s.status == Status::Waiting && sub.is_none())
                    .then(|| crate::api::runs::task_of(&store, &run, &s.name))
                    .flatten()
                    .map(|t| t.form.as_ref().map(task_fields).unwrap_or_default()),
                approval: (s.status == Status::Waiting && sub.is_none()).then(|| {
                    crate::api::runs::approval_of(&store, &run, &s.name)
                        .map(|a| {
                            a.input
                                .iter()
                                .map(|i| format!("{i}="))
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default()
                }),
            }
        })
        .collect();
    let logs = steps
        .iter()
        .filter_map(|s| {
            let attempts = store.attempts(run.key, &s.name).unwrap_or_default();
            let live = running && matches!(s.status, Status::Running | Status::NotStarted);
            let (stdout, stderr) = match attempts.last() {
                // A merged log (`logOutput: merged`) is shown once.
                Some(last) if last.stderr == last.stdout => {
                    (super::log_tail(&last.stdout), String::new())
                }
                Some(last) => (super::log_tail(&last.stdout), super::log_tail(&last.stderr)),
                None if live => (String::new(), String::new()),
                None => return None,
            };
            Some(StepLog {
                href: format!(
                    "{base}/dags/{file_name}/runs/{}/steps/{}/log",
                    run.run_id,
                    path_segment(&s.name)
                ),
                name: s.name.clone(),
                stdout,
                stderr,
                live: live.then(|| {
                    format!(
                        "{base}/dags/{file_name}/runs/{}/steps/{}/events",
                        run.run_id,
                        path_segment(&s.name)
                    )
                }),
            })
        })
        .collect();
    render(
        StatusCode::OK,
        &RunPage {
            base: super::Chrome::of(&state.config),
            file: file_name.to_owned(),
            name,
            run_id: run.run_id.clone(),
            status: run.status.as_str(),
            started: run.started_at.map(rfc3339).unwrap_or_default(),
            finished: run.finished_at.map(rfc3339),
            error: run.error.clone(),
            axis: (rfc3339(t0), {
                let ms = t1 - t0;
                if ms < 60_000 {
                    format!("{:.1}s", ms as f64 / 1000.0)
                } else {
                    format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000)
                }
            }),
            running,
            succeeded: run.status == Status::Succeeded,
            params: run
                .params
                .iter()
                .map(|p| wharf_spec::redact::param(p))
                .collect(),
            outputs: store
                .outputs(run.key)
                .unwrap_or_default()
                .into_iter()
                .filter(|o| !o.omit)
                .map(|o| {
                    let shown = wharf_spec::redact::param(&format!("{}={}", o.name, o.value));
                    let value = shown
                        .split_once('=')
                        .map(|(_, v)| v.to_owned())
                        .unwrap_or_default();
                    (o.name, value)
                })
                .collect(),
            steps: rows,
            logs,
            subs,
            parent,
            spec: store
                .spec_of(run.key)
                .ok()
                .flatten()
                .map(|text| wharf_spec::redact::source(&text)),
        },
    )
}

/// A run in the list of all runs.
pub(crate) struct AnyRun {
    file: String,
    name: String,
    id: String,
    status: &'static str,
    started: String,
    took: String,
    trigger: String,
}

#[derive(Template)]
#[template(path = "runs.html")]
struct RunsPage {
    base: super::Chrome,
    status: String,
    dag: String,
    statuses: Vec<&'static str>,
    runs: Vec<AnyRun>,
    page: usize,
    more: bool,
    query: String,
}

const PER_PAGE: usize = 50;

/// `/runs`: the runs of every DAG, newest first, by status and DAG, a page at a time.
pub(crate) fn runs_page(state: &State, query: &str) -> Reply {
    let status = crate::api::query_param(query, "status").unwrap_or_default();
    let dag = crate::api::query_param(query, "dag").unwrap_or_default();
    let page = crate::api::query_param(query, "page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let store = Store::open(&state.config.home).ok();
    // One more than the page, to know whether there is a next one.
    let mut found = store
        .as_ref()
        .and_then(|s| {
            s.runs_page(
                (!dag.is_empty()).then_some(dag.as_str()),
                Status::parse(&status),
                None,
                ((page - 1) * PER_PAGE, PER_PAGE + 1),
            )
            .ok()
        })
        .unwrap_or_default();
    let more = found.len() > PER_PAGE;
    found.truncate(PER_PAGE);
    let mut files = FileIndex::new(state);
    let runs = found.iter().map(|r| any_run(r, &mut files)).collect();
    let query = format!(
        "status={}&dag={}",
        path_segment(&status),
        path_segment(&dag)
    );
    render(
        StatusCode::OK,
        &RunsPage {
            base: super::Chrome::of(&state.config),
            status,
            dag,
            statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
            runs,
            page,
            more,
            query,
        },
    )
}

/// The DAG file of a DAG name (a run names its DAG; its page, the file): the file of that
/// stem when there is one, else found by reading the folder's files (once a page).
struct FileIndex<'a> {
    state: &'a State,
    by_name: Option<std::collections::HashMap<String, String>>,
}

impl<'a> FileIndex<'a> {
    fn new(state: &'a State) -> Self {
        Self {
            state,
            by_name: None,
        }
    }

    fn file_of(&mut self, name: &str) -> String {
        let dags = &self.state.config.dags;
        if crate::api::existing_dag_file(dags, name).is_ok() {
            return name.to_owned();
        }
        let map = self.by_name.get_or_insert_with(|| {
            crate::api::dag_files(dags)
                .into_iter()
                .map(|(file, path)| {
                    let name = crate::api::dag_name_in(&path, &file);
                    (name, file)
                })
                .collect()
        });
        map.get(name).cloned().unwrap_or_else(|| name.to_owned())
    }
}

fn any_run(r: &wharf_store::RunRecord, files: &mut FileIndex<'_>) -> AnyRun {
    AnyRun {
        file: files.file_of(&r.dag),
        name: r.dag.clone(),
        id: r.run_id.clone(),
        status: r.status.as_str(),
        started: r.started_at.map(rfc3339).unwrap_or_default(),
        took: took(r),
        trigger: r.trigger.clone().unwrap_or_default(),
    }
}

/// A run on the dashboard's timeline: where it starts (percent of the period).
pub(crate) struct Tick {
    left: String,
    status: &'static str,
    title: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    base: super::Chrome,
    period: &'static str,
    periods: Vec<&'static str>,
    counts: Vec<(&'static str, usize)>,
    total: usize,
    ticks: Vec<Tick>,
    failures: Vec<AnyRun>,
    recent: Vec<AnyRun>,
}

/// `/dashboard?period=24h|7d|30d`: the runs of the period counted by status, on a
/// timeline, the failed ones first, then the latest.
pub(crate) fn dashboard(state: &State, query: &str) -> Reply {
    let period = match crate::api::query_param(query, "period").as_deref() {
        Some("7d") => "7d",
        Some("30d") => "30d",
        _ => "24h",
    };
    let span_ms: i64 = match period {
        "7d" => 7 * 86_400_000,
        "30d" => 30 * 86_400_000,
        _ => 86_400_000,
    };
    let now = wharf_store::now_ms();
    let since = now - span_ms;
    let store = Store::open(&state.config.home).ok();
    let store = store.as_ref();
    let order = [
        Status::Failed,
        Status::Aborted,
        Status::Rejected,
        Status::Running,
        Status::Queued,
        Status::Waiting,
        Status::PartiallySucceeded,
        Status::Succeeded,
        Status::Skipped,
    ];
    let by_status = store
        .and_then(|s| s.status_counts_since(since).ok())
        .unwrap_or_default();
    let counts: Vec<(&'static str, usize)> = order
        .iter()
        .filter_map(|st| {
            let n = by_status
                .iter()
                .find(|(s, _)| s == st)
                .map_or(0, |(_, n)| *n);
            (n > 0).then(|| (st.as_str(), usize::try_from(n).unwrap_or(0)))
        })
        .collect();
    let total = counts.iter().map(|(_, n)| n).sum();
    // The timeline draws the newest 2000 runs of the period at most.
    let shown = store
        .and_then(|s| s.runs_page(None, None, Some(since), (0, 2000)).ok())
        .unwrap_or_default();
    let ticks = shown
        .iter()
        .map(|r| Tick {
            left: format!(
                "{:.2}",
                ((r.created_at - since) as f64 / span_ms as f64 * 100.0).clamp(0.0, 99.6)
            ),
            status: r.status.as_str(),
            title: format!(
                "{} {}: {}",
                r.dag,
                r.run_id,
                r.status.as_str().replace('_', " ")
            ),
        })
        .collect();
    let mut files = FileIndex::new(state);
    let mut failed: Vec<wharf_store::RunRecord> = Vec::new();
    for st in [Status::Failed, Status::Aborted, Status::Rejected] {
        failed.extend(
            store
                .and_then(|s| s.runs_page(None, Some(st), Some(since), (0, 20)).ok())
                .unwrap_or_default(),
        );
    }
    failed.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    failed.truncate(20);
    let failures = failed.iter().map(|r| any_run(r, &mut files)).collect();
    let recent = shown
        .iter()
        .take(20)
        .map(|r| any_run(r, &mut files))
        .collect();
    render(
        StatusCode::OK,
        &Dashboard {
            base: super::Chrome::of(&state.config),
            period,
            periods: vec!["24h", "7d", "30d"],
            counts,
            total,
            ticks,
            failures,
            recent,
        },
    )
}

/// A queue on the queues page.
pub(crate) struct QueueRow {
    name: String,
    size: u32,
    /// DAG, run id and the DAG's file (for links and actions).
    running: Vec<(String, String, String)>,
    queued: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "queues.html")]
struct QueuesPage {
    base: super::Chrome,
    queues: Vec<QueueRow>,
}

/// `/queues`: each queue with its running and waiting runs.
pub(crate) fn queues_page(state: &State) -> Reply {
    let store = Store::open(&state.config.home).ok();
    let runs = store
        .as_ref()
        .and_then(|s| s.in_queues().ok())
        .unwrap_or_default();
    let mut queues: Vec<QueueRow> = wharf_engine::global_queues()
        .into_iter()
        .map(|q| QueueRow {
            name: q.name,
            size: q.max_concurrency,
            running: Vec::new(),
            queued: Vec::new(),
        })
        .collect();
    let mut files = FileIndex::new(state);
    for run in runs {
        let Some(queue) = run.queue.clone() else {
            continue;
        };
        let i = match queues.iter().position(|q| q.name == queue) {
            Some(i) => i,
            None => {
                queues.push(QueueRow {
                    name: queue,
                    size: wharf_engine::queue_size_of(&run).unwrap_or(1),
                    running: Vec::new(),
                    queued: Vec::new(),
                });
                queues.len() - 1
            }
        };
        let entry = (run.dag.clone(), run.run_id.clone(), files.file_of(&run.dag));
        if run.status == Status::Queued {
            queues[i].queued.push(entry);
        } else {
            queues[i].running.push(entry);
        }
    }
    render(
        StatusCode::OK,
        &QueuesPage {
            base: super::Chrome::of(&state.config),
            queues,
        },
    )
}

/// A scheduler as the System page lists it.
pub(crate) struct SchedulerRow {
    id: String,
    host: String,
    active: bool,
    started: String,
    seen: String,
}

/// A node of the swarm as the System page lists it.
pub(crate) struct NodeRow {
    name: String,
    role: String,
    state: String,
    health: &'static str,
    labels: Vec<String>,
    /// wharf's jobs there: DAG, run, step.
    jobs: Vec<(String, String, String)>,
}

/// One of the System page's charts: its points in a 600x120 box.
pub(crate) struct Chart {
    title: &'static str,
    now: String,
    points: String,
    low: String,
    high: String,
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    base: super::Chrome,
    nodes: Vec<NodeRow>,
    /// Why no Swarm nodes are shown.
    no_nodes: Option<String>,
    schedulers: Vec<SchedulerRow>,
    charts: Vec<Chart>,
    spans: Vec<(&'static str, u64)>,
    window: u64,
    window_label: String,
    interval: String,
}

/// `GET /system` (`?duration=1h|6h|24h`): the schedulers and the machine's resources.
pub(crate) fn system_page(
    state: &State,
    query: &str,
    nodes: Result<Vec<wharf_docker::SwarmNode>, String>,
) -> Reply {
    let spans = vec![("1h", 3600), ("6h", 6 * 3600), ("24h", 24 * 3600)];
    let asked = crate::api::query_param(query, "duration");
    let window = asked
        .as_deref()
        .and_then(crate::system::seconds)
        .unwrap_or(3600);
    let schedulers = Store::open(&state.config.home)
        .and_then(|s| s.services("scheduler"))
        .unwrap_or_default()
        .into_iter()
        .map(|s| SchedulerRow {
            id: s.id,
            host: s.host,
            active: s.active,
            started: rfc3339(s.started_at),
            seen: rfc3339(s.seen_at),
        })
        .collect();
    let points = state.samples.last(window);
    let now = wharf_store::now_ms() / 1000;
    let span = i64::try_from(window).unwrap_or(3600);
    let chart = |title: &'static str, unit: &str, f: fn(&crate::system::Point) -> f64, top: f64| {
        let high = points.iter().map(f).fold(top, f64::max).ceil();
        let line: Vec<String> = points
            .iter()
            .map(|p| {
                let x = (p.at - (now - span)) as f64 * 600.0 / span as f64;
                let y = 120.0 - f(p) * 120.0 / high;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        Chart {
            title,
            now: points
                .last()
                .map(|p| format!("{:.1}{unit}", f(p)))
                .unwrap_or_else(|| "-".into()),
            points: line.join(" "),
            low: format!("0{unit}"),
            high: format!("{high:.0}{unit}"),
        }
    };
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let charts = vec![
        chart("CPU", "%", |p| p.cpu, 100.0),
        chart("Memory", "%", |p| p.memory, 100.0),
        chart("Disk", "%", |p| p.disk, 100.0),
        chart("Load", "", |p| p.load, cores),
    ];
    let (interval, _) = state.config.monitoring;
    let (nodes, no_nodes) = match nodes {
        Ok(nodes) => (
            nodes
                .iter()
                .map(|n| NodeRow {
                    name: n.hostname.clone(),
                    role: n.role.clone(),
                    state: format!("{}, {}", n.state, n.availability),
                    health: crate::system::health(n),
                    labels: n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    jobs: n
                        .jobs
                        .iter()
                        .map(|j| (j.dag.clone(), j.run_id.clone(), j.step.clone()))
                        .collect(),
                })
                .collect(),
            None,
        ),
        Err(why) => (Vec::new(), Some(why)),
    };
    render(
        StatusCode::OK,
        &SystemPage {
            nodes,
            no_nodes,
            base: super::Chrome::of(&state.config),
            schedulers,
            charts,
            window_label: asked.unwrap_or_else(|| "1h".into()),
            spans,
            window,
            interval: format!("{} s", interval.as_secs()),
        },
    )
}
