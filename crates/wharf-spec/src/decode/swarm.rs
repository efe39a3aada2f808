//! The Swarm backend's settings: `backend`, `placement`, `resources`, and what a step on
//! Swarm cannot have (settings of one engine's containers), refused where it is written.

use std::sync::RwLock;

use super::keys::Keys;
use super::{Decoder, Fields};
use crate::diag::{Diagnostic, Span};
use crate::model::*;
use crate::yaml::Node;

static DEFAULT: RwLock<Option<Backend>> = RwLock::new(None);

/// Sets the backend of the docker steps of this process's DAGs that name none, and whose
/// DAG names none (the installation's `docker.backend`).
pub fn set_default_backend(backend: Option<Backend>) {
    *DEFAULT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = backend;
}

pub(crate) fn default_backend() -> Option<Backend> {
    *DEFAULT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `backend: local | swarm`.
pub(crate) fn backend(d: &mut Decoder, node: &Node) -> Option<Backend> {
    let text = d.string(node, "`backend`")?;
    match text.trim() {
        "local" => Some(Backend::Local),
        "swarm" => Some(Backend::Swarm),
        other => {
            d.enum_error(node, "backend", other, &["local", "swarm"]);
            None
        }
    }
}

/// `workerSelector`: the workers a DAG or a step runs on. wharf's workers are the nodes of
/// the swarm its Docker engine manages (the API's `/workers`), so labels select Swarm
/// nodes: the steps that make a container run as Swarm jobs constrained to nodes with all
/// of them; `local` keeps the steps on wharf's own engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    Local,
    Labels(Vec<(String, String)>),
}

pub(crate) fn worker_selector(d: &mut Decoder, node: &Node) -> Option<Selector> {
    let help = "`workerSelector: {gpu: \"true\"}` (the labels of a Swarm node: `docker node update --label-add gpu=true NODE`), or `local`";
    if let Some(map) = node.as_map() {
        let mut labels = Vec::new();
        for e in map {
            let key = e.key.as_str().unwrap_or_default().trim().to_owned();
            let value = match &e.value.kind {
                crate::yaml::Kind::Scalar(s) if !e.value.is_null() => s.text.trim().to_owned(),
                _ => String::new(),
            };
            let bad = |t: &str| {
                t.is_empty() || t.contains(|c: char| c.is_whitespace() || c == '=' || c == '!')
            };
            if bad(&key) || bad(&value) {
                d.diags.push(
                    Diagnostic::error(e.key.span, format!("`workerSelector` label `{key}: {value}` is not a node label (a name and a value, neither empty nor with spaces, `=` or `!`)"))
                        .with_help(help),
                );
                continue;
            }
            labels.push((key, value));
        }
        return (!labels.is_empty()).then_some(Selector::Labels(labels));
    }
    match node.as_str().map(str::trim) {
        Some("local") => Some(Selector::Local),
        _ => {
            d.diags.push(
                Diagnostic::error(
                    node.at(),
                    format!(
                        "`workerSelector` must be a mapping of node labels or `local`, found {}",
                        node.describe()
                    ),
                )
                .with_help(help),
            );
            None
        }
    }
}

/// The backend a selector gives the steps that make a container.
pub(crate) fn selected_backend(selector: &Selector) -> Backend {
    match selector {
        Selector::Local => Backend::Local,
        Selector::Labels(_) => Backend::Swarm,
    }
}

/// A step under a label selector: a Swarm job constrained to nodes with those labels, or
/// (one that makes no container of its own) an error at `span`.
pub(crate) fn select_nodes(d: &mut Decoder, selector: &Selector, step: &mut Step, span: Span) {
    let Selector::Labels(labels) = selector else {
        return;
    };
    match &mut step.executor {
        Executor::Docker(s) if s.backend == Backend::Swarm && s.image.is_some() => {
            for (k, v) in labels {
                let c = format!("node.labels.{k} == {v}");
                if !s.swarm.constraints.contains(&c) {
                    s.swarm.constraints.push(c);
                }
            }
        }
        Executor::Docker(_) => d.diags.push(
            Diagnostic::error(span, format!("`workerSelector` sends {} to a Swarm node with its labels, but it runs in a container of wharf's own engine", named(step)))
                .with_help("give its container an `image` and no `backend: local`, or give the step `workerSelector: local`"),
        ),
        _ => d.diags.push(
            Diagnostic::error(span, format!("`workerSelector` sends {} to a Swarm node with its labels, and only a step in a container of its own can go there: this one runs on this machine", named(step)))
                .with_help("give the step a `container: {image: ...}` (it runs as a Swarm job on such a node), or `workerSelector: local` to run it here"),
        ),
    }
}

fn named(step: &Step) -> String {
    if step.name.is_empty() {
        "the step".to_owned()
    } else {
        format!("the step `{}`", step.name)
    }
}

/// What a container config holds that only one engine's containers have, with where it
/// is written: an error once the step turns out to run on Swarm.
pub(crate) type LocalOnly = Vec<(Span, String)>;

/// `backend`, `placement` and `resources` of a docker step's `config` or a step's
/// `container`; the step's backend resolved (its own, the DAG's, the installation's).
pub(crate) fn settings(d: &mut Decoder, f: &Fields<'_>, local_only: LocalOnly, s: &mut DockerStep) {
    // The DAG's or installation's default applies to steps that make a container from an
    // image; a step that execs into a running container runs where that container is.
    let own = f.get("backend").and_then(|n| backend(d, n));
    s.backend = match own {
        Some(b) => b,
        None if s.image.is_some() => d.backend.unwrap_or_default(),
        None => Backend::Local,
    };
    if let Some(n) = f.get("placement") {
        placement(d, n, &mut s.swarm);
    }
    if let Some(n) = f.get("resources") {
        resources(d, n, &mut s.swarm);
    }
    if s.backend == Backend::Local {
        for key in ["placement", "resources"] {
            if let Some(span) = f.key_span(key) {
                d.diags.push(
                    Diagnostic::error(span, format!("`{key}` is for steps on the Swarm backend"))
                        .with_help("add `backend: swarm` to run the step as a Swarm job, or remove it (on this engine, `host: {Memory, NanoCpus}` limits a container)"),
                );
            }
        }
        return;
    }
    if s.image.is_none()
        && let Some(span) = f.key_span("backend")
    {
        d.diags.push(
            Diagnostic::error(
                span,
                "a step on the Swarm backend needs `image`: Swarm makes a new container for it",
            )
            .with_help(
                "add `image`, or remove `backend: swarm` to run in the container named here",
            ),
        );
    }
    for (span, why) in local_only {
        d.diags.push(
            Diagnostic::error(span, why)
                .with_help("a step on the Swarm backend runs as a job of the swarm; see docs/docker.md, \"Docker Swarm\""),
        );
    }
    if s.container_name.is_some() {
        let span = f
            .key_span("containerName")
            .or_else(|| f.key_span("name"))
            .or_else(|| f.key_span("exec"));
        if let Some(span) = span {
            d.diags.push(
                Diagnostic::error(span, "a step on the Swarm backend cannot name its container or exec into one: Swarm makes and names the job's container")
                    .with_help("remove the name, or run the step with `backend: local`"),
            );
        }
    }
    if !s.auto_remove {
        let span = f
            .key_span("autoRemove")
            .or_else(|| f.key_span("keepContainer"));
        if let Some(span) = span {
            d.diags.push(
                Diagnostic::error(span, "a Swarm job's service is removed once its logs and exit code are read: its container cannot be kept")
                    .with_help("remove it, or run the step with `backend: local`"),
            );
        }
    }
    if s.pull == PullPolicy::Never
        && let Some(span) = f.key_span("pull").or_else(|| f.key_span("pullPolicy"))
    {
        d.diags.push(
            Diagnostic::error(span, "`never` cannot hold on Swarm: each node pulls the image of a task it runs, and uses its own copy when the registry cannot be reached")
                .with_help("use `missing` or `always`"),
        );
    }
    let pinned = s
        .swarm
        .constraints
        .iter()
        .any(|c| c.starts_with("node.hostname") || c.starts_with("node.id"));
    let bind = s
        .volumes
        .iter()
        .any(|v| matches!(v.source, VolumeSource::Bind(_)));
    if bind
        && !pinned
        && let Some(span) = f.key_span("volumes")
    {
        d.diags.push(
            Diagnostic::error(span, "a bind mount on Swarm mounts a path of whichever node runs the task")
                .with_help("pin the step to a node (`placement: {constraints: [\"node.hostname == NAME\"]}`), or use a named volume"),
        );
    }
}

const PLACEMENT_KEYS: Keys = Keys {
    known: &["constraints", "preferences"],
    ignored: &[],
    unsupported: &[],
};

/// `placement: {constraints: [EXPR], preferences: [spread=DESCRIPTOR | {spread: DESCRIPTOR}]}`.
fn placement(d: &mut Decoder, node: &Node, out: &mut SwarmSettings) {
    let Some(f) = d.fields(node, "`placement`", &PLACEMENT_KEYS) else {
        return;
    };
    if let Some(n) = f.get("constraints") {
        for item in n.as_seq().map(<[Node]>::iter).into_iter().flatten() {
            let Some(text) = d.string(item, "a placement constraint") else {
                continue;
            };
            let text = text.trim().to_owned();
            let ok = ["==", "!="].iter().any(|op| {
                text.split_once(op)
                    .is_some_and(|(l, r)| !l.trim().is_empty() && !r.trim().is_empty())
            });
            if ok {
                out.constraints.push(text);
            } else {
                d.diags.push(
                    Diagnostic::error(item.at(), format!("`{text}` is not a placement constraint"))
                        .with_help("write ATTRIBUTE == VALUE or ATTRIBUTE != VALUE, e.g. `node.labels.gpu == true`, `node.role == worker`"),
                );
            }
        }
        if n.as_seq().is_none() {
            d.expected(n, "`placement.constraints`", "a list of constraints");
        }
    }
    if let Some(n) = f.get("preferences") {
        let Some(items) = n.as_seq() else {
            d.expected(n, "`placement.preferences`", "a list of preferences");
            return;
        };
        for item in items {
            let descriptor = if item.as_map().is_some() {
                const SPREAD: Keys = Keys {
                    known: &["spread"],
                    ignored: &[],
                    unsupported: &[],
                };
                d.fields(item, "a placement preference", &SPREAD)
                    .and_then(|pf| d.opt_string(&pf, "spread"))
            } else {
                d.string(item, "a placement preference").and_then(|t| {
                    let t = t.trim().to_owned();
                    match t.strip_prefix("spread=") {
                        Some(rest) => Some(rest.trim().to_owned()),
                        None => {
                            d.diags.push(
                                Diagnostic::error(item.at(), format!("`{t}` is not a placement preference"))
                                    .with_help("Swarm has one kind: `spread=node.labels.NAME` (or `{spread: node.labels.NAME}`)"),
                            );
                            None
                        }
                    }
                })
            };
            if let Some(s) = descriptor.filter(|s| !s.is_empty()) {
                out.spread.push(s);
            }
        }
    }
}

const RESOURCES_KEYS: Keys = Keys {
    known: &["limits", "reservations"],
    ignored: &[],
    unsupported: &[],
};
const AMOUNT_KEYS: Keys = Keys {
    known: &["memory", "cpus"],
    ignored: &[],
    unsupported: &[],
};

/// `resources: {limits: {memory: 512m, cpus: 0.5}, reservations: {...}}`.
fn resources(d: &mut Decoder, node: &Node, out: &mut SwarmSettings) {
    let Some(f) = d.fields(node, "`resources`", &RESOURCES_KEYS) else {
        return;
    };
    for (key, amount) in [
        ("limits", &mut out.limits),
        ("reservations", &mut out.reservations),
    ] {
        let Some(n) = f.get(key) else { continue };
        let Some(af) = d.fields(n, &format!("`resources.{key}`"), &AMOUNT_KEYS) else {
            continue;
        };
        if let Some(m) = af.get("memory") {
            let text = m.as_str().unwrap_or_default().trim().to_owned();
            match memory(&text) {
                Some(bytes) => amount.memory = Some(bytes),
                None => d.diags.push(
                    Diagnostic::error(m.at(), format!("`{text}` is not an amount of memory"))
                        .with_help(
                            "bytes, or a number with b, k, m or g: `536870912`, `512m`, `2g`",
                        ),
                ),
            }
        }
        if let Some(c) = af.get("cpus") {
            let text = c.as_str().unwrap_or_default().trim().to_owned();
            match text.parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => {
                    amount.nano_cpus = Some((v * 1e9).round() as i64);
                }
                _ => d.diags.push(
                    Diagnostic::error(c.at(), format!("`{text}` is not a number of CPUs"))
                        .with_help("a number above 0: `0.5`, `2`"),
                ),
            }
        }
    }
}

/// `512m`, `2g`, `1024k`, `100b` or a number of bytes.
fn memory(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let (number, unit) = match lower.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let factor: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v: f64 = number.parse().ok()?;
    let bytes = (v * factor).round();
    (4.0 * 1024.0 * 1024.0..9.0e18)
        .contains(&bytes)
        .then_some(bytes as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_of_memory() {
        assert_eq!(super::memory("512m"), Some(512 * 1024 * 1024));
        assert_eq!(super::memory("2g"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(super::memory("2GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(super::memory("8388608"), Some(8_388_608));
        assert_eq!(super::memory("1k"), None, "below Docker's 4 MiB minimum");
        assert_eq!(super::memory("lots"), None);
    }
}
