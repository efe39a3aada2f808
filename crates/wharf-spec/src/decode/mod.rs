//! From the YAML node tree to the typed [`Dag`], collecting every problem on the way.
//!
//! Each decoding function returns what it could make of its node and pushes diagnostics
//! for the rest, so that one pass reports all errors of a file. Checks that need the
//! whole DAG (names, dependencies, cycles) come after, in [`crate::graph`].
//!
//! - `keys`: the key tables of each mapping;
//! - `reader`: [`Decoder`], a mapping's fields and the scalar readers;
//! - `values`: exit codes, `env`, `params`, conditions;
//! - this module: the DAG's own fields, its schedule and handlers;
//! - `step`: steps, their policies and executors;
//! - `docker`: the Docker settings of a step, the DAG-level container and the raw Docker
//!   API objects;
//! - `auth`: `registryAuths`.

mod auth;
mod builtin;
mod data;
mod docker;
mod keys;
mod reader;
mod router;
mod sql;
pub(crate) mod state;
mod step;
mod swarm;
mod values;

pub(crate) use keys::is_dialect_key;
pub(crate) use reader::snake_to_camel;
pub use swarm::set_default_backend;

use std::path::Path;

pub(crate) use reader::{Decoder, Fields};

pub(crate) use step::{Depends, RawStep};

use crate::diag::Diagnostic;
use crate::formats;
use crate::model::*;
use crate::yaml::Node;
use keys::*;

/// Decodes the root mapping into a [`Dag`] without steps, and its steps as written (the
/// graph phase names them and links them).
pub(crate) fn dag(
    d: &mut Decoder,
    root: &Node,
    file: &Path,
    default_name: &str,
) -> Option<(Dag, Vec<RawStep>)> {
    let f = d.fields(root, "the DAG", &ROOT_KEYS)?;
    let given = d.opt_string(&f, "name");
    if let (Some(name), Some(node)) = (&given, f.get("name")) {
        check_name(d, name, node);
    }
    let name = given.unwrap_or_else(|| default_name.to_owned());
    let kind = match f.get("type") {
        None => DagType::Chain,
        Some(node) => match node.as_str() {
            Some("chain") => DagType::Chain,
            Some("graph") => DagType::Graph,
            Some("agent") => {
                d.error(
                    node.at(),
                    "`type: agent` is not supported by wharf; use `chain` or `graph`",
                );
                DagType::Chain
            }
            other => {
                d.enum_error(
                    node,
                    "`type`",
                    other.unwrap_or_default(),
                    &["chain", "graph"],
                );
                DagType::Chain
            }
        },
    };
    let working_dir = match d.opt_string(&f, "workingDir") {
        Some(dir) => formats::resolve_path(d.dir, &dir),
        None => d.dir.to_path_buf(),
    };
    let env = f.get("env").map(|n| d.env(n, "`env`")).unwrap_or_default();
    // `.env` is read by default and before the files listed; `dotenv: []` reads none.
    let dotenv = match f.get("dotenv") {
        Some(n) if n.as_seq().is_some_and(<[Node]>::is_empty) => Vec::new(),
        Some(n) => {
            let mut files = vec![".env".to_owned()];
            files.extend(d.strings(n, "`dotenv`").into_iter().filter(|f| f != ".env"));
            files
        }
        None => vec![".env".to_owned()],
    };
    let (params, params_schema) = f
        .get("params")
        .map(|n| d.params_decl(n, &working_dir))
        .unwrap_or_default();
    let shell = f.get("shell").and_then(|n| d.words(n, "`shell`"));
    let tags = match f.get("tags") {
        Some(node) if node.as_seq().is_none() => d
            .string(node, "`tags`")
            .map(|s| {
                s.split(',')
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        Some(node) => d.strings(node, "`tags`"),
        None => Vec::new(),
    };
    let schedule = f
        .get("schedule")
        .map(|n| schedule(d, n))
        .unwrap_or_default();
    let container = f.get("container").and_then(|n| docker::container(d, n));
    // The backend of the docker steps that name none.
    let own_backend = f.get("backend").and_then(|n| swarm::backend(d, n));
    d.backend = own_backend.or_else(swarm::default_backend);
    // `workerSelector`: labels send the steps' containers to Swarm nodes with them,
    // `local` keeps them on wharf's engine.
    let selector = f
        .get("workerSelector")
        .and_then(|n| swarm::worker_selector(d, n));
    if let (Some(sel), Some(span)) = (&selector, f.key_span("workerSelector")) {
        let backend = swarm::selected_backend(sel);
        if own_backend.is_some_and(|b| b != backend) {
            d.error(
                span,
                format!(
                    "`workerSelector` and `backend: {}` disagree on where the steps run; keep one",
                    own_backend.unwrap_or_default().as_str()
                ),
            );
        } else if backend == Backend::Swarm && container.is_some() {
            d.diags.push(
                Diagnostic::error(span, "`workerSelector` sends the steps to Swarm nodes, but the DAG-level `container` is one container on wharf's own engine")
                    .with_help("give the steps their own `container:` (each a Swarm job on such a node), or remove `workerSelector`"),
            );
        }
        d.backend = Some(backend);
    }
    if own_backend == Some(Backend::Swarm)
        && container.is_some()
        && let Some(span) = f.key_span("backend")
    {
        d.diags.push(
            Diagnostic::error(span, "the DAG-level `container` is one container on wharf's own engine, shared by the steps: it cannot be a Swarm job")
                .with_help("give the steps their own `container:` (each a Swarm job), or remove `backend: swarm`"),
        );
    }
    if !f.has("catchupWindow")
        && let Some(span) = f.key_span("overlapPolicy")
    {
        d.warning(
            span,
            "`overlap_policy` says how catch-up slots go: without `catchup_window` it does nothing",
        );
    }
    if f.has("histRetentionDays")
        && let Some(span) = f.key_span("histRetentionRuns")
    {
        d.diags.push(
            Diagnostic::error(span, "keep runs by age or by count, not both").with_help(format!(
                "remove `{}` or `{}`",
                f.written("histRetentionDays"),
                f.written("histRetentionRuns")
            )),
        );
    }
    let registry_auths = f.get("registryAuths").and_then(|n| auth::decode(d, n));
    let max_active_steps = f.get("maxActiveSteps").and_then(|n| {
        let v = d.uint(n, "`maxActiveSteps`", false)?;
        usize::try_from(v).ok()
    });
    let mut dag = Dag {
        param_evals: Vec::new(),
        inferred: Vec::new(),
        dependencies: Vec::new(),
        dialect: crate::Dialect::V1,
        name,
        file: file.to_path_buf(),
        description: d.opt_string(&f, "description"),
        group: d
            .opt_string(&f, "group")
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty()),
        kind,
        working_dir,
        env,
        dotenv,
        params,
        params_schema,
        steps: Vec::new(),
        handlers: Handlers::default(),
        container,
        registry_auths,
        preconditions: d.conditions(&f),
        timeout_sec: d.opt_uint(&f, "timeoutSec"),
        delay_sec: d.opt_uint(&f, "delaySec"),
        max_active_steps,
        max_cleanup_time_sec: d.opt_uint(&f, "maxCleanUpTimeSec"),
        hist_retention_days: d.opt_uint(&f, "histRetentionDays"),
        hist_retention_runs: d.opt_uint(&f, "histRetentionRuns"),
        retry: f.get("retryPolicy").and_then(|n| dag_retry(d, n)),
        redis: f.get("redis").and_then(|n| data::redis_defaults(d, n)),
        s3: f
            .get("s3")
            .and_then(|n| data::s3_fields(d, n, "`s3`", data::S3_CONNECTION))
            .unwrap_or_default(),
        catchup_window: f.get("catchupWindow").and_then(|n| catchup_window(d, n)),
        overlap_policy: f.get("overlapPolicy").map_or(OverlapPolicy::Skip, |n| {
            match n.as_str().map(str::trim) {
                Some("skip") => OverlapPolicy::Skip,
                Some("all") => OverlapPolicy::All,
                Some("latest") => OverlapPolicy::Latest,
                other => {
                    d.enum_error(n, "`overlap_policy`", other.unwrap_or_default(), &["skip", "all", "latest"]);
                    OverlapPolicy::Skip
                }
            }
        }),
        max_output_size: d.opt_uint(&f, "maxOutputSize"),
        schedule,
        tags,
        log_dir: d.opt_string(&f, "logDir"),
        shell,
        log_output: d.log_output(&f).unwrap_or_default(),
        skip_if_successful: d.opt_bool(&f, "skipIfSuccessful").unwrap_or(false),
        smtp: f.get("smtp").and_then(|n| d.smtp(n)),
        otel: f.get("otel").and_then(|n| d.otel(n)),
        ssh: f.get("ssh").map(|n| {
            if let Some(span) = f.key_span("container").filter(|_| f.has("container")) {
                d.error(span, "a DAG with `ssh` cannot have a DAG-level `container`: its steps run on the ssh host");
            }
            d.ssh(n, "`ssh`")
        }),
        mail_on: f.get("mailOn").map(|n| d.mail_on(n)).unwrap_or_default(),
        error_mail: f
            .get("errorMail")
            .and_then(|n| d.mail_config(n, "`errorMail`")),
        info_mail: f
            .get("infoMail")
            .and_then(|n| d.mail_config(n, "`infoMail`")),
        wait_mail: f
            .get("waitMail")
            .and_then(|n| d.mail_config(n, "`waitMail`")),
        working_dir_set: f.has("workingDir"),
        max_active_runs: f.get("maxActiveRuns").and_then(|n| {
            // As Dagu: 0 or a negative number means no limit.
            let text = n.as_str().unwrap_or_default().trim().to_owned();
            match text.parse::<i64>() {
                Ok(v) if v > 0 => u32::try_from(v).ok(),
                Ok(_) => None,
                Err(_) => {
                    d.error(
                        n.at(),
                        format!("`maxActiveRuns` is a whole number; found `{text}`"),
                    );
                    None
                }
            }
        }),
        queue: d
            .opt_string(&f, "queue")
            .map(|q| q.trim().to_owned())
            .filter(|q| !q.is_empty()),
        restart_wait_sec: f
            .get("restartWaitSec")
            .and_then(|n| d.uint(n, "`restartWaitSec`", true)),
        locals: Vec::new(),
        run_config: f
            .get("runConfig")
            .and_then(|n| d.fields(n, "`runConfig`", &RUN_CONFIG_KEYS))
            .map(|rc| RunConfig {
                disable_param_edit: d.opt_bool(&rc, "disableParamEdit").unwrap_or(false),
                disable_run_id_edit: d.opt_bool(&rc, "disableRunIdEdit").unwrap_or(false),
            })
            .unwrap_or_default(),
        secrets: f.get("secrets").map(|n| d.secrets(n)).unwrap_or_default(),
    };
    d.nix_shell = dag.shell.as_deref().is_some_and(formats::is_nix_shell);
    if let Some(handlers) = f.get("handlerOn") {
        dag.handlers = handler_on(d, handlers, dag.container.is_some(), selector.as_ref());
    }
    let shared = dag.container.is_some();
    let mut raw = Vec::new();
    match f.get("steps") {
        Some(steps) => {
            raw = step::steps_of(d, steps, shared);
            // The DAG's selector, for the steps without their own.
            if let Some(sel @ swarm::Selector::Labels(_)) = &selector
                && !shared
            {
                for r in raw.iter_mut().filter(|r| !r.selected) {
                    let span = r.step.span;
                    swarm::select_nodes(d, sel, &mut r.step, span);
                }
            }
        }
        None => {
            let span = f.key_span("steps").unwrap_or(root.at());
            d.diags.push(
                Diagnostic::error(span, "the DAG has no steps")
                    .with_help("add `steps:` with at least one step, e.g. `steps: [echo hello]`"),
            );
        }
    }
    Some((dag, raw))
}

fn schedule(d: &mut Decoder, node: &Node) -> Schedule {
    const KEYS: Keys = Keys {
        known: &["start", "stop", "restart"],
        ignored: &[],
        unsupported: &[],
    };
    let mut s = Schedule::default();
    let check = |d: &mut Decoder, node: &Node, out: &mut Vec<String>| {
        let items: Vec<&Node> = match node.as_seq() {
            Some(items) => items.iter().collect(),
            None => vec![node],
        };
        for item in items {
            let Some(expr) = d.string(item, "a `schedule` entry") else {
                continue;
            };
            if let Err(why) = formats::cron(&expr) {
                d.diags.push(
                    Diagnostic::error(item.at(), format!("invalid cron expression `{expr}`: {why}"))
                        .with_help("write 5 fields: minute hour day-of-month month day-of-week, e.g. `5 4 * * *`"),
                );
            } else {
                out.push(expr);
            }
        }
    };
    if node.as_map().is_some() {
        if let Some(f) = d.fields(node, "`schedule`", &KEYS) {
            for (key, out) in [
                ("start", &mut s.start),
                ("stop", &mut s.stop),
                ("restart", &mut s.restart),
            ] {
                if let Some(n) = f.get(key) {
                    check(d, n, out);
                }
            }
        }
    } else {
        check(d, node, &mut s.start);
    }
    s
}

fn handler_on(
    d: &mut Decoder,
    node: &Node,
    shared: bool,
    selector: Option<&swarm::Selector>,
) -> Handlers {
    let mut h = Handlers::default();
    let Some(f) = d.fields(node, "`handlerOn`", &HANDLER_KEYS) else {
        return h;
    };
    if f.has("abort")
        && f.has("cancel")
        && let Some(span) = f.key_span("cancel")
    {
        d.error(
            span,
            "`cancel` and `abort` name the same handler; set it once (`abort`)",
        );
    }
    let one = |d: &mut Decoder, key: &str, default: &str| -> Option<Box<Step>> {
        let node = f.get(key)?;
        let raw = step::step(d, node, shared)?;
        if !raw.depends.as_ref().is_none_or(|deps| deps.is_empty()) {
            d.warning(
                raw.step.span,
                "a handler has no dependencies; its `depends` is ignored",
            );
        }
        let mut s = raw.step;
        if s.generated_name {
            s.name = default.to_owned();
        }
        if let Some(sel) = selector
            && !raw.selected
            && !shared
        {
            let span = s.span;
            swarm::select_nodes(d, sel, &mut s, span);
        }
        Some(Box::new(s))
    };
    h.init = one(d, "init", "onInit");
    h.success = one(d, "success", "onSuccess");
    h.failure = one(d, "failure", "onFailure");
    h.abort = one(d, "abort", "onCancel").or_else(|| one(d, "cancel", "onCancel"));
    // Runs when the run stops to wait for a person's approval (a `hitl` step).
    h.wait = one(d, "wait", "onWait");
    h.exit = one(d, "exit", "onExit");
    h
}

/// Decodes one YAML value with `f`; what it returned and the diagnostics' messages.
#[cfg(test)]
pub(crate) fn with_node<R>(
    yaml: &str,
    f: impl FnOnce(&mut Decoder, &Node) -> R,
) -> (R, Vec<String>) {
    let doc = crate::yaml::load(yaml).expect("valid YAML");
    let root = doc.root.expect("a document");
    let dir = Path::new("/dags");
    let mut d = Decoder {
        diags: Vec::new(),
        dir,
        nix_shell: false,
        backend: None,
        v2: false,
    };
    let out = f(&mut d, &root);
    (out, d.diags.into_iter().map(|d| d.message).collect())
}

/// A DAG's `name`, as Dagu checks it: at most 40 characters of letters, digits, `_`, `-`
/// and `.` (its runs, logs and paths are keyed by it).
fn check_name(d: &mut Decoder, name: &str, node: &Node) {
    let bad = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
    if let Some(c) = bad {
        d.diags.push(
            Diagnostic::error(
                node.at(),
                format!("the DAG name `{name}` has a character a DAG name cannot have: {c:?}"),
            )
            .with_help("a DAG name is letters, digits, `_`, `-` and `.` (at most 40)"),
        );
    } else if matches!(name, "." | "..") {
        d.error(node.at(), format!("`{name}` cannot be a DAG name"));
    } else if name.len() > crate::DAG_NAME_MAX {
        d.error(
            node.at(),
            format!(
                "the DAG name `{name}` is {} characters long: at most {}",
                name.len(),
                crate::DAG_NAME_MAX
            ),
        );
    }
}

/// `catchup_window`: a duration (`30m`, `6h`, `2d12h`); empty or zero: none.
fn catchup_window(d: &mut Decoder, node: &Node) -> Option<std::time::Duration> {
    let text = node
        .as_str()
        .map(str::to_owned)
        .or_else(|| node.as_int().map(|i| i.to_string()))
        .unwrap_or_default();
    if text.trim().is_empty() {
        return None;
    }
    match formats::go_duration(&text) {
        Some(w) if w.is_zero() => None,
        Some(w) => Some(w),
        None => {
            d.error(
                node.at(),
                format!(
                    "`catchup_window` is a duration such as `30m`, `6h` or `2d12h`, not `{text}`"
                ),
            );
            None
        }
    }
}

/// The DAG's own `retry_policy`: `limit` (required), `intervalSec` (60), `backoff` (true:
/// 2; a number above 1; false or 0: none), `maxIntervalSec` (3600). Numbers may be written
/// as strings; they are read now, not when the run fails.
fn dag_retry(d: &mut Decoder, node: &Node) -> Option<crate::model::DagRetry> {
    const KEYS: Keys = Keys {
        known: &["limit", "intervalSec", "backoff", "maxIntervalSec"],
        ignored: &[],
        unsupported: &[(
            "exitCode",
            "a DAG's `retry_policy` retries whole runs that failed, whatever the exit codes: `exit_code` belongs to a step's `retry_policy`",
        )],
    };
    let f = d.fields(node, "the DAG's `retryPolicy`", &KEYS)?;
    let Some(limit) = f.get("limit") else {
        d.error(node.at(), "the DAG's `retryPolicy` needs `limit`: how many times the scheduler retries a failed run (0: never)");
        return None;
    };
    let limit = d.uint(limit, "`limit`", true)?;
    let positive = |d: &mut Decoder, key: &str, default: u64| match f.get(key) {
        None => Some(default),
        Some(n) => match d.uint(n, &format!("`{}`", f.written(key)), true) {
            Some(0) => {
                d.error(n.at(), format!("`{}` is at least 1 second", f.written(key)));
                None
            }
            other => other,
        },
    };
    let interval_sec = positive(d, "intervalSec", 60)?;
    let max_interval_sec = positive(d, "maxIntervalSec", 3600)?;
    let backoff = match f.get("backoff") {
        None => 1.0,
        Some(n) => match (
            n.as_bool(),
            n.as_str().and_then(|t| t.trim().parse::<f64>().ok()),
        ) {
            (Some(true), _) => 2.0,
            (Some(false), _) => 1.0,
            (None, Some(0.0)) => 1.0,
            (None, Some(b)) if b > 1.0 && b.is_finite() => b,
            _ => {
                d.error(
                    n.at(),
                    "`backoff` is true (each delay twice the last), a number above 1, or false",
                );
                1.0
            }
        },
    };
    Some(crate::model::DagRetry {
        limit,
        interval_sec,
        backoff,
        max_interval_sec,
    })
}

/// An empty `with` where an action has none, placed at the action.
pub(crate) fn empty_with(at: &Node) -> Node {
    Node {
        kind: crate::yaml::Kind::Map(Vec::new()),
        span: at.span,
        key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(yaml: &str) -> (Option<(Dag, Vec<RawStep>)>, Vec<String>) {
        with_node(yaml, |d, n| {
            dag(d, n, Path::new("/dags/nightly.yaml"), "nightly")
        })
    }

    #[test]
    fn the_name_defaults_to_the_file_and_steps_stay_raw() {
        let (decoded, errors) = root("steps:\n  - echo a\n  - name: b\n    command: echo b\n");
        assert!(errors.is_empty(), "{errors:?}");
        let (dag, raw) = decoded.expect("a DAG");
        assert_eq!(dag.name, "nightly");
        assert!(dag.steps.is_empty(), "the graph phase adds them");
        assert_eq!(raw.len(), 2);
        assert!(raw[0].step.generated_name && !raw[1].step.generated_name);
    }

    #[test]
    fn a_dag_without_steps_and_handlers_named_twice_are_errors() {
        let (_, errors) = root("name: x\n");
        assert!(
            errors.iter().any(|e| e.contains("has no steps")),
            "{errors:?}"
        );
        let (_, errors) = root("steps: [echo]\nhandlerOn:\n  abort: echo a\n  cancel: echo c\n");
        assert!(
            errors.iter().any(|e| e.contains("name the same handler")),
            "{errors:?}"
        );
    }

    #[test]
    fn schedules_are_checked_where_written() {
        let (_, errors) = root("schedule: [\"0 1 * * *\", \"61 * * * *\"]\nsteps: [echo]\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("the minute field takes 0-59"),
            "{errors:?}"
        );
    }
}
