//! Which dialect a DAG file is written in, Dagu 1.x or Dagu 2.x, and the 2.x forms
//! rewritten, in the file's tree, into the ones the decoder reads (the same `Dag` for
//! both; each rewritten node keeps the line and column it was written at).
//!
//! The rule, per file (its first document and its local DAGs together):
//! - 2.x: a snake_case key (`working_dir`, `retry_policy`), `run:` holding a command (a
//!   line with a space, several lines, a list), `action:`, `with:`, `consts:`,
//!   `defaults:`, `labels:`, a step's `outputs:`, a param declared as `{name: …}`;
//! - 1.x: a camelCase key (`workingDir`, `retryPolicy`), `executor:`;
//! - both: an error naming a key of each;
//! - neither: 1.x, as wharf has always read it (where the two would differ, a `run: NAME`
//!   of one word, a warning says how it was read);
//! - `--dialect 1|2` (`WHARF_DIALECT`, `dialect` in config.yaml) decides for a file both
//!   could read.

use std::sync::RwLock;

use crate::diag::{Diagnostic, Span};
use crate::yaml::{Entry, Kind, Node, Scalar};

/// The dialect of a DAG file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Dagu 1.x (camelCase keys, `command`, `executor`, `call`).
    #[default]
    V1,
    /// Dagu 2.x (snake_case keys, `run`, `action` + `with`, namespaced references).
    V2,
}

impl Dialect {
    pub fn label(self) -> &'static str {
        match self {
            Self::V1 => "Dagu 1.x",
            Self::V2 => "Dagu 2.x",
        }
    }
}

static CHOSEN: RwLock<Option<Dialect>> = RwLock::new(None);

/// Reads every DAG file of this process in `dialect` (None: each file says).
pub fn set_dialect(dialect: Option<Dialect>) {
    *CHOSEN
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = dialect;
}

/// The dialect every DAG file of this process is read in, if one was chosen.
pub fn chosen() -> Option<Dialect> {
    *CHOSEN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A key that says which dialect a file is in, and where.
struct Marker {
    key: String,
    span: Span,
}

#[derive(Default)]
struct Markers {
    v1: Option<Marker>,
    v2: Option<Marker>,
    /// A one-word `run:`: a sub-DAG in 1.x, a command in 2.x.
    ambiguous_run: Option<Marker>,
}

/// The dialect `source`'s own keys say it is in (None: they do not say, or the text is
/// not YAML), whatever dialect was chosen.
pub fn marked(source: &str) -> Option<Dialect> {
    let doc = crate::yaml::load(source).ok()?;
    marked_nodes(doc.root.iter().chain(&doc.others))
}

/// The dialect the keys of these documents say they are in (None: they do not say, or
/// say both).
pub(crate) fn marked_nodes<'a>(docs: impl IntoIterator<Item = &'a Node>) -> Option<Dialect> {
    let mut m = Markers::default();
    for node in docs {
        scan_root(node, &mut m);
    }
    match (&m.v1, &m.v2) {
        (Some(_), None) => Some(Dialect::V1),
        (None, Some(_)) => Some(Dialect::V2),
        _ => None,
    }
}

/// Writes the dialect's own keys of a DAG document (where `scan_root` looks: the DAG's
/// fields, its steps' and handlers', their `container`, `retryPolicy`, `continueOn`,
/// `repeatPolicy`, `runConfig`) in the spelling of `to`: camelCase for 1.x, snake_case
/// for 2.x. What only one dialect has (`executor`, `action`) is left as it is.
pub(crate) fn respell(root: &mut Node, to: Dialect) {
    respell_keys(root, to);
    let Kind::Map(entries) = &mut root.kind else {
        return;
    };
    for e in entries {
        match e.key.as_str().unwrap_or_default() {
            "steps" => match &mut e.value.kind {
                Kind::Seq(steps) => steps.iter_mut().for_each(|s| respell_step(s, to)),
                Kind::Map(steps) => steps
                    .iter_mut()
                    .for_each(|s| respell_step(&mut s.value, to)),
                Kind::Scalar(_) => {}
            },
            "handlerOn" | "handler_on" => {
                if let Kind::Map(hs) = &mut e.value.kind {
                    hs.iter_mut().for_each(|h| respell_step(&mut h.value, to));
                }
            }
            "container" | "retryPolicy" | "retry_policy" | "runConfig" | "run_config" => {
                respell_keys(&mut e.value, to);
            }
            _ => {}
        }
    }
}

fn respell_step(step: &mut Node, to: Dialect) {
    if let Kind::Seq(group) = &mut step.kind {
        group.iter_mut().for_each(|s| respell_step(s, to));
        return;
    }
    respell_keys(step, to);
    if let Kind::Map(entries) = &mut step.kind {
        for e in entries {
            if matches!(
                e.key.as_str(),
                Some(
                    "container"
                        | "retryPolicy"
                        | "retry_policy"
                        | "continueOn"
                        | "continue_on"
                        | "repeatPolicy"
                        | "repeat_policy"
                )
            ) {
                respell_keys(&mut e.value, to);
            }
        }
    }
}

/// The keys of one mapping that are the dialect's own, in the spelling of `to`.
fn respell_keys(node: &mut Node, to: Dialect) {
    let Kind::Map(entries) = &mut node.kind else {
        return;
    };
    for e in entries {
        let Kind::Scalar(k) = &mut e.key.kind else {
            continue;
        };
        let key = k.text.clone();
        match to {
            Dialect::V2 if camel(&key) && crate::decode::is_dialect_key(&key) => {
                k.text = to_snake(&key);
            }
            Dialect::V1
                if snake(&key)
                    && crate::decode::is_dialect_key(&crate::decode::snake_to_camel(&key)) =>
            {
                k.text = crate::decode::snake_to_camel(&key);
            }
            _ => {}
        }
    }
}

/// Decides the dialect of the documents and rewrites the 2.x forms of each; the local DAGs
/// the rewriting makes (a `foreach` body) go to `made`. Problems go to `diags`.
pub(crate) fn read(
    docs: &mut [&mut Node],
    made: &mut Vec<Node>,
    diags: &mut Vec<Diagnostic>,
    extras: &mut Vec<Extras>,
    caller: Option<Dialect>,
) -> Dialect {
    let mut m = Markers::default();
    for doc in docs.iter() {
        scan_root(doc, &mut m);
    }
    let dialect = match (chosen(), &m.v1, &m.v2) {
        (Some(d), _, _) => d,
        (None, Some(one), Some(two)) => {
            // One key in both spellings is told about as that (the decoder says it).
            if crate::decode::snake_to_camel(&two.key) == one.key {
                return Dialect::V1;
            }
            diags.push(
                Diagnostic::error(
                    two.span,
                    format!(
                        "this file mixes Dagu 1.x and Dagu 2.x: `{}` (line {}) is 1.x, `{}` is 2.x",
                        one.key, one.span.start.line, two.key
                    ),
                )
                .with_help("write it in one dialect: 2.x keys are snake_case (`working_dir`), 1.x keys camelCase (`workingDir`)"),
            );
            // Read as wharf always read it, so the rest of what is said is as before.
            Dialect::V1
        }
        (None, None, Some(_)) => Dialect::V2,
        // A sub-DAG of a 2.x DAG whose keys do not tell: its one-word `run:` is a command.
        (None, None, None) if caller == Some(Dialect::V2) && m.ambiguous_run.is_some() => {
            Dialect::V2
        }
        (None, _, None) => {
            if let Some(run) = &m.ambiguous_run {
                diags.push(
                    Diagnostic::warning(
                        run.span,
                        format!("`run: {}` is read as Dagu 1.x: a call of the DAG `{}`", run.key, run.key),
                    )
                    .with_help("in Dagu 2.x `run:` is a command: write `call:` for a sub-DAG, or choose 2.x with `--dialect 2`"),
                );
            }
            Dialect::V1
        }
    };
    if dialect == Dialect::V2 {
        for (i, doc) in docs.iter_mut().enumerate() {
            if i == 0
                && let Some(e) = doc
                    .as_map()
                    .and_then(|m| m.iter().find(|e| e.key.as_str() == Some("name")))
            {
                diags.push(
                    Diagnostic::warning(
                        e.key.span,
                        "since Dagu 2.15 the first document has no `name`: the DAG is named by its file",
                    )
                    .with_help("wharf uses this `name`; remove it to read the file as Dagu 2.15 does"),
                );
            }
            let mut doc_extras = Extras::default();
            rewrite_root(doc, made, diags, &mut doc_extras);
            extras.push(doc_extras);
        }
    }
    dialect
}

/// Keys of the 1.x dialect that are camelCase (a file with one is 1.x).
fn camel(key: &str) -> bool {
    key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key.chars().any(|c| c.is_ascii_uppercase())
        && !key.contains('_')
}

/// snake_case keys of more than one word (a file with one is 2.x).
fn snake(key: &str) -> bool {
    key.contains('_')
        && !key.starts_with('_')
        && !key.starts_with("x-")
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn note(slot: &mut Option<Marker>, key: &str, span: Span) {
    if slot.is_none() {
        *slot = Some(Marker {
            key: key.to_owned(),
            span,
        });
    }
}

/// Looks at the keys of a mapping whose keys are the dialect's own.
fn scan_keys(node: &Node, m: &mut Markers) {
    for e in node.as_map().unwrap_or_default() {
        let Some(key) = e.key.as_str() else { continue };
        if camel(key) && crate::decode::is_dialect_key(key) {
            note(&mut m.v1, key, e.key.span);
        } else if snake(key) && crate::decode::is_dialect_key(&crate::decode::snake_to_camel(key)) {
            note(&mut m.v2, key, e.key.span);
        }
    }
}

fn scan_root(root: &Node, m: &mut Markers) {
    scan_keys(root, m);
    for e in root.as_map().unwrap_or_default() {
        let key = e.key.as_str().unwrap_or_default();
        match key {
            "consts" | "defaults" | "labels" => note(&mut m.v2, key, e.key.span),
            "steps" => {
                for step in e.value.as_seq().unwrap_or_default() {
                    scan_step(step, m);
                }
                if let Some(map) = e.value.as_map() {
                    for s in map {
                        scan_step(&s.value, m);
                    }
                }
            }
            "handlerOn" | "handler_on" => {
                for h in e.value.as_map().unwrap_or_default() {
                    scan_step(&h.value, m);
                }
            }
            "container" | "retryPolicy" | "retry_policy" | "runConfig" | "run_config" => {
                scan_keys(&e.value, m);
            }
            "params" => {
                for p in e.value.as_seq().unwrap_or_default() {
                    if let Some(map) = p.as_map()
                        && map.iter().any(|x| x.key.as_str() == Some("name"))
                        && let Some(first) = map.first()
                    {
                        note(&mut m.v2, "params: [{name: …}]", first.key.span);
                    }
                }
            }
            _ => {}
        }
    }
}

fn scan_step(step: &Node, m: &mut Markers) {
    let Some(map) = step.as_map() else {
        // A nested list is a group of steps run together.
        for s in step.as_seq().unwrap_or_default() {
            scan_step(s, m);
        }
        return;
    };
    scan_keys(step, m);
    for e in map {
        let key = e.key.as_str().unwrap_or_default();
        match key {
            "action" | "with" | "outputs" | "foreach" | "approval" => {
                note(&mut m.v2, key, e.key.span)
            }
            "executor" => note(&mut m.v1, key, e.key.span),
            // `output` as a mapping of values (Dagu 1.x's is `{name, key, omit}`), and
            // what stdout publishes.
            "output"
                if e.value.as_map().is_some_and(|m| {
                    !m.iter().any(|f| f.key.as_str() == Some("name"))
                        || m.iter()
                            .any(|f| !matches!(f.key.as_str(), Some("name" | "key" | "omit")))
                }) =>
            {
                note(&mut m.v2, "output: {NAME: VALUE}", e.key.span)
            }
            "stdout" | "stderr"
                if e.value.as_map().is_some_and(|m| {
                    m.iter()
                        .any(|f| matches!(f.key.as_str(), Some("outputs" | "artifact")))
                }) =>
            {
                note(&mut m.v2, key, e.key.span)
            }
            "run" => match &e.value.kind {
                Kind::Scalar(s) if !s.text.trim().contains(char::is_whitespace) => {
                    note(&mut m.ambiguous_run, s.text.trim(), e.value.span);
                }
                _ => note(&mut m.v2, "run: COMMAND", e.key.span),
            },
            "container" | "retryPolicy" | "retry_policy" | "continueOn" | "continue_on"
            | "repeatPolicy" | "repeat_policy" => scan_keys(&e.value, m),
            _ => {}
        }
    }
}

fn scalar(text: &str, span: Span) -> Node {
    Node {
        kind: Kind::Scalar(Scalar {
            text: text.to_owned(),
            plain: false,
        }),
        span,
        key: None,
    }
}

fn entry(key: &str, value: Node, span: Span) -> Entry {
    let mut value = value;
    value.key = Some(span);
    Entry {
        key: scalar(key, span),
        value,
        merged: false,
    }
}

/// The 2.x forms of a document, rewritten: `type: graph` unless it says otherwise, the
/// `consts` put in place, params declared as `{name, default}`, each step's 2.x forms.
/// What the reading of a 2.x document found that the model carries besides the decoded
/// keys: each param's `eval`, and the dependencies references make.
#[derive(Default)]
pub(crate) struct Extras {
    pub evals: Vec<(String, String)>,
    pub inferred: Vec<(String, String, String)>,
    /// The steps' `dependencies`, taken out of them (checked).
    pub dependencies: Vec<String>,
}

fn rewrite_root(
    root: &mut Node,
    made: &mut Vec<Node>,
    diags: &mut Vec<Diagnostic>,
    extras: &mut Extras,
) {
    let span = root.span;
    let Kind::Map(entries) = &mut root.kind else {
        return;
    };
    if !entries.iter().any(|e| e.key.as_str() == Some("type")) {
        entries.push(entry("type", scalar("graph", span), span));
    }
    // 2.6: `labels` is the new name of `tags`.
    for e in entries.iter_mut() {
        if e.key.as_str() == Some("labels") {
            e.key = scalar("tags", e.key.span);
        }
    }
    // `defaults`: step fields every step has unless it sets them itself.
    let defaults = entries
        .iter()
        .position(|e| e.key.as_str() == Some("defaults"))
        .map(|at| entries.remove(at));
    if let Some(defaults) = defaults {
        match defaults.value.as_map() {
            Some(fields) => {
                let fields: Vec<Entry> = fields.to_vec();
                if let Some(steps) = entries
                    .iter_mut()
                    .find(|e| e.key.as_str() == Some("steps"))
                    .and_then(|e| match &mut e.value.kind {
                        Kind::Seq(steps) => Some(steps),
                        _ => None,
                    })
                {
                    for step in steps {
                        apply_defaults(step, &fields);
                    }
                }
            }
            None => diags.push(Diagnostic::error(
                defaults.value.at(),
                "`defaults` is a mapping of step fields",
            )),
        }
    }
    // `consts`: literal values, put in place of `${consts.NAME}` everywhere.
    let mut consts: Vec<(String, String)> = Vec::new();
    if let Some(at) = entries
        .iter()
        .position(|e| e.key.as_str() == Some("consts"))
    {
        let e = entries.remove(at);
        consts = read_consts(&e.value, diags);
    }
    // Consts first, everywhere (a `foreach` body, made into a DAG below, included);
    // what is left is a const nobody defines: an error where it is written.
    for e in entries.iter_mut() {
        if !consts.is_empty() {
            put_consts(&mut e.value, &consts);
        }
        scalars(&e.value, &mut |text, span| {
            for r in crate::expand::references_in(text) {
                if let Some(name) = r.strip_prefix("consts.") {
                    diags.push(
                        Diagnostic::error(
                            span,
                            format!("`${{consts.{name}}}`: no const `{name}` is defined"),
                        )
                        .with_help("define it under `consts:` (`- NAME: value`)"),
                    );
                }
            }
        });
    }
    removed_in_2(entries, diags);
    let chain = entries
        .iter()
        .any(|e| e.key.as_str() == Some("type") && e.value.as_str() == Some("chain"));
    for e in entries.iter_mut() {
        match e.key.as_str() {
            Some("params") => rewrite_params(&mut e.value, diags, &mut extras.evals),
            Some("steps") => {
                if let Kind::Seq(steps) = &mut e.value.kind {
                    extras.inferred = infer_depends(steps, chain, diags);
                    for s in steps {
                        take_dependencies(s, &mut extras.dependencies, diags);
                        if let Some(body) = foreach(s, diags) {
                            let mut body = body;
                            let mut inner = Extras::default();
                            rewrite_root(&mut body, made, diags, &mut inner);
                            // A body's files are the run's too.
                            extras.dependencies.extend(inner.dependencies);
                            made.push(body);
                        }
                        rewrite_step(s, diags);
                    }
                }
            }
            Some("handler_on" | "handlerOn") => {
                if let Kind::Map(hs) = &mut e.value.kind {
                    for h in hs {
                        if let Some(at) = human_task_at(&h.value) {
                            diags.push(
                                Diagnostic::error(at, "a handler cannot be a `human.task`")
                                    .with_help("a handler runs as the run ends; a human task waits in the run, among its steps"),
                            );
                        }
                        take_dependencies(&mut h.value, &mut extras.dependencies, diags);
                        rewrite_step(&mut h.value, diags);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `consts: [{NAME: value}, ...]`: literal values in order, each able to use the ones
/// before it (`${consts.NAME}`), none a value of the run (`env`, `params`, `steps`).
fn read_consts(node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<(String, String)> {
    let mut consts: Vec<(String, String)> = Vec::new();
    if node.is_null() {
        return consts;
    }
    let Some(items) = node.as_seq() else {
        diags.push(
            Diagnostic::error(node.at(), "`consts` is a list of `- NAME: value` entries")
                .with_help("a list keeps the order in which a const can use the ones before it: write `consts:` then `  - service: api`"),
        );
        return consts;
    };
    for item in items {
        let Some([c]) = item.as_map() else {
            diags.push(Diagnostic::error(
                item.at(),
                "each const is one `NAME: value` entry",
            ));
            continue;
        };
        let name = c.key.as_str().unwrap_or_default();
        if !is_name(name) {
            diags.push(Diagnostic::error(
                c.key.span,
                format!("`{name}` is not a const name: a letter, then letters, digits and `_`"),
            ));
            continue;
        }
        let Kind::Scalar(v) = &c.value.kind else {
            diags.push(Diagnostic::error(
                c.value.at(),
                "a const is a literal value: a string, a number or a boolean",
            ));
            continue;
        };
        if c.value.is_null()
            || (v.plain
                && matches!(
                    v.text.as_str(),
                    ".nan" | ".NaN" | ".inf" | "-.inf" | ".Inf" | "-.Inf"
                ))
        {
            diags.push(Diagnostic::error(
                c.value.at(),
                "a const is a literal value: a string, a finite number or a boolean",
            ));
            continue;
        }
        let mut value = v.text.clone();
        for r in crate::expand::references_in(&v.text) {
            match r.split_once('.') {
                Some(("consts", other)) => match consts.iter().find(|(n, _)| n == other) {
                    Some((_, earlier)) => {
                        value = value.replace(&format!("${{consts.{other}}}"), earlier);
                    }
                    None => diags.push(Diagnostic::error(
                        c.value.at(),
                        format!("`${{consts.{other}}}`: a const can use only the consts before it"),
                    )),
                },
                Some(("env" | "params" | "steps", _)) => diags.push(Diagnostic::error(
                    c.value.at(),
                    format!(
                        "`${{{r}}}`: a const is known when the file is read, not a value of the run"
                    ),
                )),
                _ => {}
            }
        }
        consts.push((name.to_owned(), value));
    }
    consts
}

/// The dependencies `${steps.ID.outputs.NAME}` references make: a step that reads an
/// output of another depends on it (added to its `depends`; a `foreach` body's reference
/// to a top-level step, to the `foreach` step). In a chain the order already gives an
/// earlier step's outputs; a reference to a later one is an error. Returns (producer,
/// consumer, field) for each dependency added.
fn infer_depends(
    steps: &mut [Node],
    chain: bool,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(String, String, String)> {
    let field = |step: &Node, k: &str| {
        step.as_map()
            .and_then(|m| m.iter().find(|e| e.key.as_str() == Some(k)))
            .and_then(|e| e.value.as_str())
            .map(str::to_owned)
    };
    let ids: Vec<Option<String>> = steps.iter().map(|s| field(s, "id")).collect();
    let mut inferred = Vec::new();
    for (i, step) in steps.iter_mut().enumerate() {
        let Some(me) = field(step, "id").or_else(|| field(step, "name")) else {
            continue;
        };
        let mut found: Vec<(String, String, Span)> = Vec::new();
        for e in step.as_map().unwrap_or_default() {
            let key = e.key.as_str().unwrap_or_default();
            if key == "depends" {
                continue;
            }
            scalars(&e.value, &mut |text, span| {
                for r in crate::expand::references_in(text) {
                    if let ["steps", id, "outputs", _] = r.split('.').collect::<Vec<_>>()[..]
                        && id != me
                        && !found.iter().any(|(p, _, _)| p == id)
                    {
                        found.push((id.to_owned(), key.to_owned(), span));
                    }
                }
            });
        }
        let mut add = Vec::new();
        for (producer, key, span) in found {
            let Some(at) = ids
                .iter()
                .position(|id| id.as_deref() == Some(producer.as_str()))
            else {
                continue;
            };
            if chain {
                if at > i {
                    diags.push(
                        Diagnostic::error(span, format!("`{me}` reads an output of `{producer}`, which comes after it in the chain"))
                            .with_help("a chain runs its steps in order: move the step after it, or write `type: graph`"),
                    );
                }
                continue;
            }
            inferred.push((producer.clone(), me.clone(), format!("steps[{i}].{key}")));
            add.push(producer);
        }
        if add.is_empty() {
            continue;
        }
        let Kind::Map(entries) = &mut step.kind else {
            continue;
        };
        let span = step.span;
        match entries
            .iter_mut()
            .find(|e| e.key.as_str() == Some("depends"))
        {
            Some(d) => {
                let mut list = match &d.value.kind {
                    Kind::Seq(items) => items.clone(),
                    Kind::Scalar(_) if d.value.is_null() => Vec::new(),
                    Kind::Scalar(_) => vec![d.value.clone()],
                    Kind::Map(_) => continue,
                };
                for p in add {
                    if !list.iter().any(|n| n.as_str() == Some(p.as_str())) {
                        list.push(scalar(&p, span));
                    }
                }
                d.value = Node {
                    kind: Kind::Seq(list),
                    span: d.value.span,
                    key: None,
                };
            }
            None => {
                let list = add.iter().map(|p| scalar(p, span)).collect();
                entries.push(entry(
                    "depends",
                    Node {
                        kind: Kind::Seq(list),
                        span,
                        key: None,
                    },
                    span,
                ));
            }
        }
    }
    inferred
}

/// A step's `dependencies` (a path or a glob, or a list of them, relative to the working
/// directory), taken out of it into `into`: literal, relative, not above the working
/// directory, not in `.git`.
fn take_dependencies(step: &mut Node, into: &mut Vec<String>, diags: &mut Vec<Diagnostic>) {
    let Kind::Map(entries) = &mut step.kind else {
        return;
    };
    let Some(at) = entries
        .iter()
        .position(|e| e.key.as_str() == Some("dependencies"))
    else {
        return;
    };
    let e = entries.remove(at);
    let items: Vec<&Node> = match &e.value.kind {
        Kind::Seq(items) => items.iter().collect(),
        Kind::Scalar(_) => vec![&e.value],
        Kind::Map(_) => Vec::new(),
    };
    if items.is_empty() {
        diags.push(Diagnostic::error(
            e.value.at(),
            "`dependencies` is a path or a glob, or a list of them",
        ));
    }
    for item in items {
        let Some(path) = item.as_str().filter(|p| !p.trim().is_empty()) else {
            diags.push(Diagnostic::error(
                item.at(),
                "a dependency is a path or a glob",
            ));
            continue;
        };
        let why = if path.contains("${") {
            Some("`dependencies` are literal: no references")
        } else if path.starts_with('/') || path.starts_with('~') {
            Some("a dependency is relative to the working directory")
        } else if path.split('/').any(|s| s == "..") {
            Some("a dependency cannot be above the working directory (`..`)")
        } else if path.split('/').any(|s| s == ".git") {
            Some("a dependency cannot be in `.git`")
        } else if path.matches('[').count() != path.matches(']').count() {
            Some("the glob has an unclosed `[`")
        } else {
            None
        };
        match why {
            Some(why) => diags.push(Diagnostic::error(item.at(), format!("`{path}`: {why}"))),
            None => {
                if !into.iter().any(|p| p == path) {
                    into.push(path.to_owned());
                }
            }
        }
    }
}

/// Each scalar under `node`, with its place.
fn scalars(node: &Node, f: &mut dyn FnMut(&str, Span)) {
    match &node.kind {
        Kind::Scalar(s) => f(&s.text, node.span),
        Kind::Seq(items) => items.iter().for_each(|i| scalars(i, f)),
        Kind::Map(entries) => entries.iter().for_each(|e| scalars(&e.value, f)),
    }
}

/// What Dagu 2.0 removed or made an error, in a 2.x file: `dir`, `precondition`,
/// `handler_on.cancel`, a container's `work_dir`, `depends` in a `type: chain` DAG; and
/// step ids that are not 2.x ids (a letter, then letters, digits and `_`, at most 40).
fn removed_in_2(root: &[Entry], diags: &mut Vec<Diagnostic>) {
    let renamed = |fields: &[Entry], diags: &mut Vec<Diagnostic>, what: &str| {
        for (old, new) in [("dir", "working_dir"), ("precondition", "preconditions")] {
            if let Some(e) = fields.iter().find(|e| e.key.as_str() == Some(old)) {
                diags.push(
                    Diagnostic::error(e.key.span, format!("{what} has no `{old}` in Dagu 2.x"))
                        .with_help(format!("Dagu 2.0 renamed it: write `{new}`")),
                );
            }
        }
        if let Some(c) = fields
            .iter()
            .find(|e| e.key.as_str() == Some("container"))
            .and_then(|e| e.value.as_map())
            && let Some(e) = c.iter().find(|e| e.key.as_str() == Some("work_dir"))
        {
            diags.push(
                Diagnostic::error(e.key.span, "a container has no `work_dir` in Dagu 2.x")
                    .with_help("Dagu 2.0 renamed it: write `working_dir`"),
            );
        }
    };
    renamed(root, diags, "a DAG");
    let get = |k: &str| root.iter().find(|e| e.key.as_str() == Some(k));
    if let Some(e) = get("steps").filter(|e| e.value.as_map().is_some()) {
        diags.push(
            Diagnostic::error(e.value.at(), "`steps` is a list in Dagu 2.x, not a mapping")
                .with_help("write each step as `- id: NAME` with its fields"),
        );
    }
    let chain = get("type").and_then(|e| e.value.as_str()) == Some("chain");
    let mut steps: Vec<&Node> = get("steps")
        .and_then(|e| e.value.as_seq())
        .map(|s| {
            s.iter()
                .flat_map(|n| n.as_seq().map_or(vec![n], |g| g.iter().collect()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(hs) = get("handler_on").and_then(|e| e.value.as_map()) {
        if let Some(e) = hs.iter().find(|e| e.key.as_str() == Some("cancel")) {
            diags.push(
                Diagnostic::error(e.key.span, "`handler_on` has no `cancel` in Dagu 2.x")
                    .with_help("Dagu 2.0 renamed it: write `abort`"),
            );
        }
        steps.extend(hs.iter().map(|e| &e.value));
    }
    for step in steps {
        let Some(fields) = step.as_map() else {
            continue;
        };
        renamed(fields, diags, "a step");
        let field = |k: &str| fields.iter().find(|e| e.key.as_str() == Some(k));
        if chain && let Some(e) = field("depends") {
            diags.push(
                Diagnostic::error(
                    e.key.span,
                    "a step of a `type: chain` DAG has no `depends` in Dagu 2.x",
                )
                .with_help("a chain runs its steps in order; for dependencies write `type: graph`"),
            );
        }
        const RESERVED: &[&str] = &[
            "env", "params", "args", "stdout", "stderr", "output", "outputs",
        ];
        if let Some(e) = field("id")
            && let Some(id) = e.value.as_str()
            && id != id.to_ascii_lowercase()
            && RESERVED.contains(&id.to_ascii_lowercase().as_str())
        {
            diags.push(
                Diagnostic::error(
                    e.value.at(),
                    format!("`{id}` is a reserved word, not a step id"),
                )
                .with_help(format!("reserved, in any case: {}", RESERVED.join(", "))),
            );
        }
        if let Some(e) = field("id")
            && let Some(id) = e.value.as_str()
            && (!is_name(id) || id.len() > 40)
        {
            diags.push(
                Diagnostic::error(e.value.at(), format!("`{id}` is not a step id of Dagu 2.x"))
                    .with_help("an id is a letter, then letters, digits and `_` (no `-`), at most 40 characters: it is written `${steps.ID.outputs.NAME}`"),
            );
        }
    }
}

/// A `foreach` step: its body becomes a local DAG (`each-ID`), run once per item as
/// `parallel` runs a sub-DAG (`max_concurrent` at once, 10 by default); the step is left
/// with `call`, `parallel` and a `foreach` of its `as`, `key` and `collect`, which the
/// engine uses to put the item in scope (`${foreach.NAME}`, `${foreach.index}`,
/// `${foreach.key}`) and to gather the items' results. Returns the body's document.
fn foreach(step: &mut Node, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    let Kind::Map(entries) = &mut step.kind else {
        return None;
    };
    let at = entries
        .iter()
        .position(|e| e.key.as_str() == Some("foreach"))?;
    let each = entries.remove(at);
    let span = each.key.span;
    for other in ["run", "action", "command", "script", "call", "parallel"] {
        if let Some(e) = entries.iter().find(|e| e.key.as_str() == Some(other)) {
            diags.push(Diagnostic::error(
                e.key.span,
                format!("a `foreach` step has no `{other}`: its body's steps run"),
            ));
            return None;
        }
    }
    let Some(fields) = each.value.as_map() else {
        diags.push(Diagnostic::error(
            each.value.at(),
            "`foreach` is a mapping: `items`, `steps`, and `as`, `key`, `max_concurrent`, `collect`",
        ));
        return None;
    };
    let get = |k: &str| fields.iter().find(|e| e.key.as_str() == Some(k));
    if let Some(at) = get("steps")
        .and_then(|e| e.value.as_seq())
        .and_then(|steps| steps.iter().find_map(human_task_at))
    {
        diags.push(
            Diagnostic::error(at, "`foreach.steps` cannot hold a `human.task`")
                .with_help("a human task waits in the run itself, among its top-level steps"),
        );
    }
    let before = diags.len();
    for e in fields {
        match e.key.as_str().unwrap_or_default() {
            "items" | "steps" | "max_concurrent" => {}
            "as" => match e.value.as_str() {
                Some(name) if is_name(name) && name != "index" && name != "key" => {}
                _ => diags.push(
                    Diagnostic::error(
                        e.value.at(),
                        "`as` names the item: letters, digits and `_`, starting with a letter, not `index` or `key`",
                    )
                    .with_help("`as: episode` makes the item `${foreach.episode}`"),
                ),
            },
            "key" => {
                if e.value.as_str().is_none() {
                    diags.push(Diagnostic::error(
                        e.value.at(),
                        "`key` is a string, such as `${foreach.item.id}`",
                    ));
                }
            }
            "collect" => match e.value.as_map() {
                Some(pairs) => {
                    for p in pairs {
                        let name = p.key.as_str().unwrap_or_default();
                        if !is_name(name) {
                            diags.push(Diagnostic::error(
                                p.key.span,
                                format!("`{name}` is not an output name: letters, digits and `_`, starting with a letter"),
                            ));
                        }
                        if !matches!(p.value.kind, Kind::Scalar(_)) || p.value.is_null() {
                            diags.push(Diagnostic::error(
                                p.value.at(),
                                "a `collect` value is a string, such as `${steps.ID.outputs.NAME}`",
                            ));
                        }
                    }
                }
                None => diags.push(Diagnostic::error(
                    e.value.at(),
                    "`collect` maps output names to strings, such as `markdown: ${steps.summarize.outputs.markdown}`",
                )),
            },
            other => diags.push(Diagnostic::error(
                e.key.span,
                format!("`foreach` has no `{other}`"),
            ).with_help("`foreach` takes `items`, `steps`, `as`, `key`, `max_concurrent` and `collect`")),
        }
    }
    let (Some(items), Some(body)) = (get("items"), get("steps")) else {
        diags.push(Diagnostic::error(
            span,
            "`foreach` needs `items` and `steps`",
        ));
        return None;
    };
    if body.value.as_seq().is_none_or(|s| s.is_empty()) {
        diags.push(Diagnostic::error(
            body.value.at(),
            "`foreach.steps` is a list of one or more steps",
        ));
        return None;
    }
    if diags.len() > before {
        return None;
    }
    let id = entries
        .iter()
        .find(|e| e.key.as_str() == Some("id") || e.key.as_str() == Some("name"))
        .and_then(|e| e.value.as_str())
        .unwrap_or("step")
        .to_owned();
    let name: String = format!("each-{id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let mut parallel = vec![entry("items", items.value.clone(), items.key.span)];
    if let Some(m) = get("max_concurrent") {
        parallel.push(entry("max_concurrent", m.value.clone(), m.key.span));
    }
    let scope: Vec<Entry> = ["as", "key", "collect"]
        .into_iter()
        .filter_map(get)
        .cloned()
        .collect();
    entries.push(entry("call", scalar(&name, span), span));
    entries.push(entry("parallel", map_node(parallel, span), span));
    entries.push(entry("foreach", map_node(scope, span), span));
    Some(map_node(
        vec![
            entry("name", scalar(&name, span), span),
            entry("steps", body.value.clone(), span),
        ],
        span,
    ))
}

/// A name as `as` and `collect` take it: a letter, then letters, digits and `_`.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `defaults` a step does not set itself (a group of steps: each of them).
fn apply_defaults(step: &mut Node, defaults: &[Entry]) {
    match &mut step.kind {
        Kind::Seq(group) => group.iter_mut().for_each(|s| apply_defaults(s, defaults)),
        Kind::Map(fields) => {
            for d in defaults {
                let key = d.key.as_str().unwrap_or_default();
                if !fields.iter().any(|f| f.key.as_str() == Some(key)) {
                    let mut d = d.clone();
                    d.merged = true;
                    fields.push(d);
                }
            }
        }
        Kind::Scalar(_) => {}
    }
}

fn put_consts(node: &mut Node, consts: &[(String, String)]) {
    match &mut node.kind {
        Kind::Scalar(s) => {
            if s.text.contains("${consts.") {
                for (k, v) in consts {
                    s.text = s.text.replace(&format!("${{consts.{k}}}"), v);
                }
            }
        }
        Kind::Seq(items) => items.iter_mut().for_each(|i| put_consts(i, consts)),
        Kind::Map(entries) => entries
            .iter_mut()
            .for_each(|e| put_consts(&mut e.value, consts)),
    }
}

/// `params: [{name: X, default: v, …}]` as `[{X: v}]`; `type`, `enum`, `required`,
/// `description` are checked for their shape (the values given are strings). Each
/// `eval` goes to `evals`, its `$(...)` written with backticks.
fn rewrite_params(node: &mut Node, diags: &mut Vec<Diagnostic>, evals: &mut Vec<(String, String)>) {
    // `params: {type: object, properties: …, required: […]}`: the params schema itself.
    if let Some(fields) = node.as_map()
        && fields.iter().any(|e| {
            e.key.as_str() == Some("properties")
                || (e.key.as_str() == Some("type") && e.value.as_str() == Some("object"))
        })
    {
        let span = node.span;
        let schema = std::mem::replace(node, map_node(Vec::new(), span));
        *node = map_node(vec![entry("schema", schema, span)], span);
        return;
    }
    for item in node.as_seq().unwrap_or_default() {
        let map = item.as_map().unwrap_or_default();
        let get = |k: &str| map.iter().find(|e| e.key.as_str() == Some(k));
        if let (Some(name), Some(eval)) = (
            get("name").and_then(|e| e.value.as_str()),
            get("eval").map(|e| &e.value),
        ) {
            match eval.as_str() {
                Some(text) if !text.trim().is_empty() => {
                    evals.push((name.to_owned(), backticks(text)));
                }
                _ => diags.push(Diagnostic::error(
                    eval.at(),
                    "`eval` is a string: the command whose output is the param's value, such as `$(date +%F)`",
                )),
            }
        }
    }
    let declared = |n: &Node| {
        n.as_map()
            .is_some_and(|m| m.iter().any(|e| e.key.as_str() == Some("name")))
    };
    // All declared: a params schema (types, enums, defaults, what is required), which the
    // params of each run are checked against.
    if let Some(items) = node.as_seq()
        && !items.is_empty()
        && items.iter().all(declared)
    {
        let span = node.span;
        let mut properties = Vec::new();
        let mut required = Vec::new();
        for item in items {
            check_declaration(item, diags);
            let map = item.as_map().unwrap_or_default();
            let get = |k: &str| map.iter().find(|e| e.key.as_str() == Some(k));
            let Some(name) = get("name").and_then(|e| e.value.as_str()) else {
                continue;
            };
            let mut schema = Vec::new();
            // The scalar field's schema, its constraints under their JSON Schema names.
            for (key, as_schema) in [
                ("type", "type"),
                ("default", "default"),
                ("enum", "enum"),
                ("one_of", "oneOf"),
                ("title", "title"),
                ("description", "description"),
                ("minimum", "minimum"),
                ("maximum", "maximum"),
                ("min_length", "minLength"),
                ("max_length", "maxLength"),
                ("pattern", "pattern"),
            ] {
                if let Some(e) = get(key) {
                    schema.push(entry(as_schema, e.value.clone(), e.key.span));
                }
            }
            if get("required").is_some_and(|e| e.value.as_str() == Some("true")) {
                required.push(scalar(name, item.span));
            }
            properties.push(entry(name, map_node(schema, item.span), item.span));
        }
        let mut schema = vec![
            entry("type", scalar("object", span), span),
            entry("properties", map_node(properties, span), span),
        ];
        if !required.is_empty() {
            schema.push(entry(
                "required",
                Node {
                    kind: Kind::Seq(required),
                    span,
                    key: None,
                },
                span,
            ));
        }
        node.kind = Kind::Map(vec![entry("schema", map_node(schema, span), span)]);
        return;
    }
    let Kind::Seq(items) = &mut node.kind else {
        return;
    };
    for item in items.iter_mut() {
        let Some(map) = item.as_map() else { continue };
        let Some(name) = map
            .iter()
            .find(|e| e.key.as_str() == Some("name"))
            .and_then(|e| e.value.as_str().map(str::to_owned))
        else {
            continue;
        };
        check_declaration(item, diags);
        // Beside params written `NAME: value`, a declaration is its name and default: a
        // type or a constraint would not be checked, so it is refused.
        if let Some(e) = map.iter().find(|e| {
            !matches!(
                e.key.as_str(),
                Some("name" | "default" | "description" | "eval")
            )
        }) {
            diags.push(
                Diagnostic::error(
                    e.key.span,
                    format!(
                        "`{}` is checked only when every param is declared with `name`",
                        e.key.as_str().unwrap_or_default()
                    ),
                )
                .with_help("write the other params as `- name: X` with their `default` too"),
            );
        }
        let default = map
            .iter()
            .find(|e| e.key.as_str() == Some("default"))
            .map(|e| e.value.clone())
            .unwrap_or_else(|| scalar("", item.span));
        let span = item.span;
        item.kind = Kind::Map(vec![entry(&name, default, span)]);
    }
}

/// The keys of a param declaration.
fn check_declaration(item: &Node, diags: &mut Vec<Diagnostic>) {
    const KNOWN: &[&str] = &[
        "name",
        "type",
        "default",
        "description",
        "required",
        "enum",
        "eval",
        "title",
        "one_of",
        "minimum",
        "maximum",
        "min_length",
        "max_length",
        "pattern",
    ];
    for e in item.as_map().unwrap_or_default() {
        let key = e.key.as_str().unwrap_or_default();
        if !KNOWN.contains(&key) {
            diags.push(
                Diagnostic::error(e.key.span, format!("a param declaration has no `{key}`"))
                    .with_help(format!("a param is declared with {}", KNOWN.join(", "))),
            );
        }
        if key == "type"
            && let Some(t) = e.value.as_str()
            && !["string", "integer", "number", "boolean"].contains(&t)
        {
            diags.push(Diagnostic::error(
                e.value.at(),
                format!("a param's `type` is string, integer, number or boolean, not `{t}`"),
            ));
        }
    }
}

/// `$(command)` as `` `command` `` (commands are not nested); an unclosed one is left.
pub(crate) fn backticks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        let escaped = rest[..at].ends_with('\\');
        match rest[at + 2..].find(')') {
            Some(end) if !escaped => {
                out.push_str(&rest[..at]);
                out.push('`');
                out.push_str(&rest[at + 2..at + 2 + end]);
                out.push('`');
                rest = &rest[at + 3 + end..];
            }
            _ => {
                out.push_str(&rest[..at + 2]);
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn map_node(entries: Vec<Entry>, span: Span) -> Node {
    Node {
        kind: Kind::Map(entries),
        span,
        key: None,
    }
}

/// A step's 2.x forms as the decoder reads them: `run` (a command, a script, a list of
/// commands) and `with.shell`; `action: exec | docker.run | container.run | dag.run`
/// with its `with`; `with` beside `type` as its `config`.
fn rewrite_step(step: &mut Node, diags: &mut Vec<Diagnostic>) {
    if let Kind::Seq(group) = &mut step.kind {
        for s in group {
            rewrite_step(s, diags);
        }
        return;
    }
    let Kind::Map(entries) = &mut step.kind else {
        return;
    };
    let take = |entries: &mut Vec<Entry>, key: &str| -> Option<Entry> {
        let at = entries.iter().position(|e| e.key.as_str() == Some(key))?;
        Some(entries.remove(at))
    };
    if let Some(own) = entries
        .iter()
        .find(|e| matches!(e.key.as_str(), Some("stdout_outputs" | "stdoutOutputs")))
    {
        diags.push(
            Diagnostic::error(own.key.span, "unknown key `stdout_outputs`")
                .with_help("a step's stdout is published with `stdout: {outputs: ...}`"),
        );
        entries.retain(|e| !matches!(e.key.as_str(), Some("stdout_outputs" | "stdoutOutputs")));
    }
    // A step with only object-form `output` publishes it and runs nothing.
    let runs = [
        "run",
        "action",
        "command",
        "script",
        "call",
        "type",
        "executor",
        "container",
        "foreach",
        "parallel",
    ];
    if entries
        .iter()
        .any(|e| e.key.as_str() == Some("output") && e.value.as_map().is_some())
        && !entries
            .iter()
            .any(|e| e.key.as_str().is_some_and(|k| runs.contains(&k)))
    {
        let span = step.span;
        entries.push(entry("action", scalar("noop", span), span));
    }
    // `stdout: {artifact: PATH}`: the stream goes to a file of the run's artifacts;
    // `stdout: {outputs: ...}`: what the step prints is published.
    for stream in ["stdout", "stderr"] {
        let Some(at) = entries.iter().position(|e| e.key.as_str() == Some(stream)) else {
            continue;
        };
        let e = &mut entries[at];
        let Some(fields) = e.value.as_map() else {
            continue;
        };
        let mut path = None;
        let mut outputs = None;
        for f in fields {
            match (f.key.as_str(), f.value.as_str()) {
                (Some("outputs"), _) if stream == "stdout" => {
                    outputs = Some(f.clone());
                }
                (Some("artifact"), Some(p))
                    if !p.starts_with('/')
                        && !p.starts_with('~')
                        && !p.split('/').any(|s| s == "..")
                        && !p.trim().is_empty() =>
                {
                    path = Some(p.to_owned());
                }
                (Some("artifact"), _) => diags.push(Diagnostic::error(
                    f.value.at(),
                    "`artifact` is a path in the run's artifacts folder: relative, without `..`",
                )),
                (key, _) => diags.push(
                    Diagnostic::error(
                        f.key.span,
                        format!("wharf's `{stream}` has no `{}`", key.unwrap_or_default()),
                    )
                    .with_help(if stream == "stdout" {
                        "`stdout` is a file path, or `{artifact: PATH}` and `outputs`".to_owned()
                    } else {
                        format!("`{stream}` is a file path, or `{{artifact: PATH}}`")
                    }),
                ),
            }
        }
        match path {
            Some(p) => e.value = scalar(&format!("${{DAG_RUN_ARTIFACTS_DIR}}/{p}"), e.value.span),
            None if outputs.is_some() => {
                entries.remove(at);
            }
            None => {}
        }
        if let Some(o) = outputs {
            entries.push(entry("stdout_outputs", o.value, o.key.span));
        }
    }
    let action = take(entries, "action");
    let with = take(entries, "with");
    if let Some(run) = take(entries, "run") {
        let span = run.key.span;
        match &run.value.kind {
            Kind::Scalar(s) if s.text.contains('\n') => {
                entries.push(entry("script", run.value.clone(), span));
            }
            Kind::Scalar(s) if s.text.trim().is_empty() => {
                diags.push(Diagnostic::error(run.value.at(), "`run` is empty"));
            }
            Kind::Scalar(_) => entries.push(entry("command", run.value.clone(), span)),
            Kind::Seq(items) => {
                // Each item a command line: a scalar as text, a one-key mapping as
                // `key: value` (YAML read `- echo: hi` as one); empty ones are skipped.
                let (mut lines, mut bad) = (Vec::new(), false);
                for item in items {
                    let text = match &item.kind {
                        Kind::Scalar(s) => Some(s.text.clone()),
                        Kind::Map(m) if m.len() == 1 && matches!(m[0].value.kind, Kind::Scalar(_)) => {
                            Some(format!(
                                "{}: {}",
                                m[0].key.as_str().unwrap_or_default(),
                                m[0].value.as_str().unwrap_or_default()
                            ))
                        }
                        _ => None,
                    };
                    match text.filter(|t| !t.contains('\n')) {
                        None => {
                            bad = true;
                            diags.push(Diagnostic::error(item.at(), "each item of a `run` list is one command line"));
                        }
                        Some(t) if t.trim().is_empty() => {}
                        Some(t) => lines.push(scalar(&t, item.span)),
                    }
                }
                if lines.is_empty() && !bad {
                    diags.push(Diagnostic::error(run.value.at(), "`run` has no command: every item is empty"));
                }
                let list = Node { kind: Kind::Seq(lines), span: run.value.span, key: None };
                entries.push(entry("command", list, span));
            }
            Kind::Map(_) => diags.push(
                Diagnostic::error(run.value.at(), "`run` is a command line, a script or a list of command lines")
                    .with_help("for a program and its arguments without a shell, use `action: exec` with `with: {command, args}`"),
            ),
        }
        if let Some(with) = with {
            const RUN_WITH: &[&str] = &["shell", "shell_args", "shell_packages"];
            let mut shell: Vec<Node> = Vec::new();
            for w in with.value.as_map().unwrap_or_default() {
                match w.key.as_str().unwrap_or_default() {
                    "shell" => shell.insert(0, w.value.clone()),
                    "shell_args" => match &w.value.kind {
                        Kind::Seq(args) => shell.extend(args.iter().cloned()),
                        _ => shell.push(w.value.clone()),
                    },
                    "shell_packages" => {
                        entries.push(entry("shell_packages", w.value.clone(), w.key.span))
                    }
                    other => diags.push(
                        Diagnostic::error(
                            w.key.span,
                            format!("a `run` step takes no `with.{other}`"),
                        )
                        .with_help(format!(
                            "`with` of a `run` step takes {}",
                            RUN_WITH.join(", ")
                        )),
                    ),
                }
            }
            if !shell.is_empty() {
                let words = Node {
                    kind: Kind::Seq(shell),
                    span: with.value.span,
                    key: None,
                };
                entries.push(entry("shell", words, with.key.span));
            }
        }
        if let Some(a) = action {
            diags.push(
                Diagnostic::error(a.key.span, "a step has `run` or `action`, not both").with_help(
                    "`run` is a shell command; `action` a named step type with its `with`",
                ),
            );
        }
        return;
    }
    let Some(action) = action else {
        if let Some(with) = with {
            // 2.6: `with` is the new name of `config`.
            entries.push(entry("config", with.value, with.key.span));
        }
        return;
    };
    let name = action.value.as_str().unwrap_or_default().trim().to_owned();
    let span = action.key.span;
    let with_value = with.map(|w| w.value);
    let field = |key: &str| {
        with_value
            .as_ref()
            .and_then(|w| w.as_map())
            .and_then(|m| m.iter().find(|e| e.key.as_str() == Some(key)))
            .map(|e| e.value.clone())
    };
    match name.as_str() {
        "exec" => {
            match field("command") {
                Some(c) => entries.push(entry("command", c, span)),
                None => diags.push(Diagnostic::error(span, "`action: exec` needs `with.command`: the program to run")),
            }
            if let Some(args) = field("args") {
                entries.push(entry("args", args, span));
            } else if entries.iter().any(|e| e.key.as_str() == Some("command")) {
                entries.push(entry("args", Node { kind: Kind::Seq(Vec::new()), span, key: None }, span));
            }
        }
        "docker.run" | "container.run" => {
            let Some(mut with) = with_value else {
                diags.push(Diagnostic::error(span, format!("`action: {name}` needs `with` with at least `image`")));
                return;
            };
            // `with.command` is the step's command.
            if let Kind::Map(ws) = &mut with.kind
                && let Some(at) = ws.iter().position(|e| e.key.as_str() == Some("command"))
            {
                let c = ws.remove(at);
                entries.push(entry("command", c.value, c.key.span));
            }
            // `with` is the docker step's settings (image, container_name, pull,
            // auto_remove, working_dir, volumes, exec, and the raw Docker objects).
            put_executor(entries, "docker", with, span);
        }
        "dag.run" => {
            match field("dag") {
                Some(d) => entries.push(entry("call", d, span)),
                None => diags.push(Diagnostic::error(span, "`action: dag.run` needs `with.dag`: the DAG to run")),
            }
            if let Some(p) = field("params") {
                entries.push(entry("params", p, span));
            }
        }
        "http.request" | "ssh.run" | "mail.send" | "jq.filter" => {
            builtin_action(&name, span, with_value, entries, diags);
        }
        wait if wait.starts_with("wait.") => {
            // The kind of wait goes with `with` as the `wait` step's config.
            let op = wait.trim_start_matches("wait.");
            let op = vec![entry("op", scalar(op, action.value.span), span)];
            put_with(entries, diags, wait, with_value, op, "wait", span);
        }
        "log.write" | "outputs.write" | "noop" => {
            if let Some(config) = emit_action(&name, span, with_value, entries, diags) {
                put_executor(entries, "emit", config, span);
            }
        }
        "dag.enqueue" => {
            let mut with = with_value.unwrap_or_else(|| map_node(Vec::new(), span));
            // `parallel` enqueues one run per item: it goes with the action's settings.
            if let Some(at) = entries
                .iter()
                .position(|e| e.key.as_str() == Some("parallel"))
                && let Kind::Map(fields) = &mut with.kind
            {
                fields.push(entries.remove(at));
            }
            put_executor(entries, "enqueue", with, span);
        }
        redis if redis.starts_with("redis.") && redis.len() > 6 => {
            // The command goes with `with` as the `redis` step's config.
            let command = redis.trim_start_matches("redis.").to_ascii_uppercase();
            let command = vec![entry("action_command", scalar(&command, action.value.span), span)];
            put_with(entries, diags, redis, with_value, command, "redis", span);
        }
        "git.checkout" => {
            let with = with_value.unwrap_or_else(|| map_node(Vec::new(), span));
            put_executor(entries, "git-checkout", with, span);
        }
        "template.render" => {
            let with = with_value.unwrap_or_else(|| map_node(Vec::new(), span));
            put_executor(entries, "template", with, span);
        }
        "data.convert" | "data.pick" => {
            let op = name.trim_start_matches("data.");
            let op = vec![entry("op", scalar(op, action.value.span), span)];
            put_with(entries, diags, &name, with_value, op, "data", span);
        }
        "sftp.upload" | "sftp.download" => {
            // The direction goes with `with` as the `sftp` step's config.
            let op = name.trim_start_matches("sftp.");
            let op = vec![entry("op", scalar(op, action.value.span), span)];
            put_with(entries, diags, &name, with_value, op, "sftp", span);
        }
        "router.route" => {
            let with = with_value.unwrap_or_else(|| map_node(Vec::new(), span));
            put_executor(entries, "router", with, span);
        }
        "git.worktree.add" | "git.worktree.remove" => {
            let add = name == "git.worktree.add";
            // The outputs are the action's own: declared here, written by the step.
            if let Some(own) = entries.iter().find(|e| e.key.as_str() == Some("outputs")) {
                diags.push(
                    Diagnostic::error(own.key.span, format!("a `{name}` step's outputs are the action's own"))
                        .with_help("remove `outputs`; read them as `${steps.ID.outputs.path}`, `branch`, ..."),
                );
                return;
            }
            let outputs: &[(&str, &str)] = if add {
                &[
                    ("path", "string"),
                    ("branch", "string"),
                    ("commit", "string"),
                    ("worktree_created", "json"),
                    ("branch_created", "json"),
                ]
            } else {
                &[
                    ("path", "string"),
                    ("branch", "string"),
                    ("worktree_removed", "json"),
                    ("branch_deleted", "json"),
                ]
            };
            let declared = outputs
                .iter()
                .map(|(n, t)| {
                    map_node(
                        vec![entry("name", scalar(n, span), span), entry("type", scalar(t, span), span)],
                        span,
                    )
                })
                .collect();
            entries.push(entry("outputs", Node { kind: Kind::Seq(declared), span, key: None }, span));
            let op = if add { "add" } else { "remove" };
            let op = vec![entry("op", scalar(op, action.value.span), span)];
            put_with(entries, diags, &name, with_value, op, "git-worktree", span);
        }
        state if state.starts_with("state.") => {
            let Some(op) = crate::model::StateOp::parse(&state["state.".len()..]) else {
                diags.push(
                    Diagnostic::error(action.value.at(), format!("wharf has no action `{state}`"))
                        .with_help("the state actions are state.get, state.set, state.delete, state.list and state.diff"),
                );
                return;
            };
            // The fields of its result are the step's outputs: declared here, written by
            // the step.
            if let Some(own) = entries.iter().find(|e| e.key.as_str() == Some("outputs")) {
                diags.push(
                    Diagnostic::error(own.key.span, format!("a `{state}` step's outputs are the action's own"))
                        .with_help(format!(
                            "remove `outputs`; read them as `${{steps.ID.outputs.{}}}`, ...",
                            op.outputs()[4]
                        )),
                );
                return;
            }
            // (A step without an `id` has nobody to read them: it only prints its result.)
            if entries.iter().any(|e| e.key.as_str() == Some("id")) {
                let declared = op
                    .outputs()
                    .iter()
                    .map(|n| map_node(vec![entry("name", scalar(n, span), span)], span))
                    .collect();
                entries.push(entry("outputs", Node { kind: Kind::Seq(declared), span, key: None }, span));
            }
            let op = vec![entry("op", scalar(op.name(), action.value.span), span)];
            put_with(entries, diags, state, with_value, op, "state", span);
        }
        "s3.upload" | "s3.download" | "s3.list" | "s3.delete" => {
            // The operation goes with `with` as the `s3` step's config.
            let op = name.trim_start_matches("s3.");
            let op = vec![entry("op", scalar(op, action.value.span), span)];
            put_with(entries, diags, &name, with_value, op, "s3", span);
        }
        "human.task" => {
            let with = human_task(span, with_value, entries, diags);
            put_executor(entries, "human-task", with, span);
        }
        "sqlite.query" | "sqlite.import" | "postgres.query" | "postgres.import" => {
            // The engine and the operation go with `with` as the SQL step's config.
            let (engine, op) = name.split_once('.').unwrap_or_default();
            let op = vec![entry("op", scalar(op, action.value.span), span)];
            put_with(entries, diags, &name, with_value, op, engine, span);
        }
        "archive.create" | "archive.extract" | "archive.list" => {
            // The operation is the step's command; `with` is the `archive` step's config.
            let op = name.trim_start_matches("archive.");
            entries.push(entry("command", scalar(op, action.value.span), span));
            let with = with_value.unwrap_or_else(|| map_node(Vec::new(), span));
            put_executor(entries, "archive", with, span);
        }
        file if file.starts_with("file.") || file.starts_with("artifact.") => {
            // `with` and the action's name (`op`, and whether it is an artifact's) are the
            // `file` step's config.
            let (family, op) = file.split_once('.').unwrap_or_default();
            let mut added = vec![entry("op", scalar(op, action.value.span), span)];
            if family == "artifact" {
                added.push(entry("artifact", scalar("true", span), span));
            }
            put_with(entries, diags, file, with_value, added, "file", span);
        }
        other => diags.push(
            Diagnostic::error(action.value.at(), format!("wharf has no action `{other}`"))
                .with_help("wharf runs `run` (a shell command) and the actions exec, docker.run, container.run, dag.run, dag.enqueue, http.request, ssh.run, mail.send, jq.filter, log.write, outputs.write, noop, wait.* (duration, until, file, http), file.* (stat, read, write, copy, move, delete, mkdir, list), artifact.* (write, read, list), archive.* (create, extract, list), sqlite.* and postgres.* (query, import), sftp.upload, sftp.download, data.convert, data.pick, template.render, git.checkout, redis.<command>, s3.upload, s3.download, s3.list, s3.delete, git.worktree.add, git.worktree.remove, state.get, state.set, state.delete, state.list, state.diff, router.route and human.task"),
        ),
    }
}

/// Step fields a human task cannot have: it runs nothing, once, and publishes its form's
/// fields. (A DAG's `defaults` of them do not reach it.)
const NOT_FOR_HUMAN_TASKS: &[&str] = &[
    "type",
    "exec",
    "command",
    "script",
    "call",
    "config",
    "llm",
    "messages",
    "params",
    "routes",
    "value",
    "shell",
    "shell_args",
    "shell_packages",
    "container",
    "worker_selector",
    "retry_policy",
    "repeat_policy",
    "timeout_sec",
    "signal_on_stop",
    "foreach",
    "parallel",
    "approval",
    "stdout",
    "stderr",
    "log_output",
    "output",
    "output_schema",
    "outputs",
    "mail_on_error",
];

/// `action: human.task`: checked (an `id`, `with.prompt`, none of the fields of a step
/// that runs something); its `with` for the `human-task` step, whose decoding reads the
/// form.
fn human_task(
    span: Span,
    with: Option<Node>,
    entries: &mut Vec<Entry>,
    diags: &mut Vec<Diagnostic>,
) -> Node {
    // What `defaults` gave the step that only a process has is not the task's.
    entries.retain(|e| {
        !(e.merged && NOT_FOR_HUMAN_TASKS.contains(&e.key.as_str().unwrap_or_default()))
    });
    for e in entries.iter() {
        let key = e.key.as_str().unwrap_or_default();
        if NOT_FOR_HUMAN_TASKS.contains(&key) {
            diags.push(
                Diagnostic::error(e.key.span, format!("a `human.task` step has no `{key}`"))
                    .with_help("a human task runs nothing: it waits for a person, and its form's fields are its outputs"),
            );
        }
    }
    if !entries.iter().any(|e| e.key.as_str() == Some("id")) {
        diags.push(
            Diagnostic::error(span, "a `human.task` step needs an `id`")
                .with_help("the task is completed by its id (`wharf human-task complete --step ID`), and its answers are `${steps.ID.outputs.FIELD}`"),
        );
    }
    let empty = map_node(Vec::new(), span);
    let Some(with) = with.filter(|w| !w.is_null()) else {
        diags.push(
            Diagnostic::error(span, "`action: human.task` needs `with.prompt`")
                .with_help("what the person is asked, e.g. `with: {prompt: Confirm that maintenance has started}`"),
        );
        return empty;
    };
    let Some(fields) = with.as_map() else {
        diags.push(Diagnostic::error(
            with.at(),
            "`with` of `action: human.task` is a mapping: `prompt` and `form`",
        ));
        return empty;
    };
    let mut prompt = None;
    for f in fields {
        match f.key.as_str().unwrap_or_default() {
            "prompt" => prompt = Some(&f.value),
            "form" => {}
            "push_back" => diags.push(
                Diagnostic::error(f.key.span, "wharf does not send a human task's work back (`with.push_back`)")
                    .with_help("complete the task, or reject it from the web UI; a retry of the run from an earlier step runs it again"),
            ),
            other => diags.push(
                Diagnostic::error(f.key.span, format!("`action: human.task` has no `with.{other}`"))
                    .with_help("`with` of a human task takes `prompt` and `form`"),
            ),
        }
    }
    match prompt {
        Some(p) if p.as_str().is_some_and(|t| !t.trim().is_empty()) => {}
        Some(p) => diags.push(Diagnostic::error(
            p.at(),
            "`with.prompt` is text: what the person is asked",
        )),
        None => diags.push(
            Diagnostic::error(with.at(), "`action: human.task` needs `with.prompt`")
                .with_help("what the person is asked, e.g. `prompt: Choose the release target`"),
        ),
    }
    with
}

/// Where a step (or a step of a group) is a human task: the span of its `action`.
fn human_task_at(step: &Node) -> Option<Span> {
    match &step.kind {
        Kind::Seq(group) => group.iter().find_map(human_task_at),
        Kind::Map(fields) => fields
            .iter()
            .find(|e| {
                e.key.as_str() == Some("action")
                    && e.value.as_str().map(str::trim) == Some("human.task")
            })
            .map(|e| e.value.span),
        Kind::Scalar(_) => None,
    }
}

/// `log.write` (`with.message`), `outputs.write` (`with.values`, each declared as an
/// output of the step: a value that is not a scalar is published as JSON) and `noop`
/// (no `with`), checked: the `emit` step's config.
fn emit_action(
    name: &str,
    span: Span,
    with: Option<Node>,
    entries: &mut Vec<Entry>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Node> {
    let fields: Vec<Entry> = match &with {
        None => Vec::new(),
        Some(w) if w.is_null() => Vec::new(),
        Some(w) => match w.as_map() {
            Some(m) => m.to_vec(),
            None => {
                diags.push(Diagnostic::error(
                    w.at(),
                    format!("`with` of `action: {name}` is a mapping"),
                ));
                return None;
            }
        },
    };
    let takes: &[&str] = match name {
        "log.write" => &["message"],
        "outputs.write" => &["values"],
        _ => &[],
    };
    for f in &fields {
        let key = f.key.as_str().unwrap_or_default();
        if !takes.contains(&key) {
            let help = if takes.is_empty() {
                format!("`{name}` takes no `with`")
            } else {
                format!("`{name}` takes `with.{}`", takes.join("`, `with."))
            };
            diags.push(
                Diagnostic::error(f.key.span, format!("`{name}` has no `with.{key}`"))
                    .with_help(help),
            );
        }
    }
    let get = |k: &str| fields.iter().find(|e| e.key.as_str() == Some(k));
    match name {
        "log.write" => match get("message").map(|e| &e.value) {
            Some(m) if m.as_str().is_some_and(|t| !t.is_empty()) => {
                Some(map_node(vec![entry("log", m.clone(), span)], span))
            }
            Some(m) => {
                diags.push(Diagnostic::error(
                    m.at(),
                    "`with.message` is a non-empty string",
                ));
                None
            }
            None => {
                diags.push(Diagnostic::error(span, "`log.write` needs `with.message`"));
                None
            }
        },
        "outputs.write" => {
            let Some(values) = get("values") else {
                diags.push(Diagnostic::error(
                    span,
                    "`outputs.write` needs `with.values`: the outputs by name",
                ));
                return None;
            };
            let Some(pairs) = values.value.as_map().filter(|m| !m.is_empty()) else {
                diags.push(Diagnostic::error(
                    values.value.at(),
                    "`with.values` is a mapping of one or more output names to values",
                ));
                return None;
            };
            let mut published = Vec::new();
            let mut declared = Vec::new();
            for p in pairs {
                let key = p.key.as_str().unwrap_or_default();
                if key.trim().is_empty() {
                    diags.push(Diagnostic::error(
                        p.key.span,
                        "an output name of `with.values` is empty",
                    ));
                    continue;
                }
                let (value, kind) = match &p.value.kind {
                    Kind::Scalar(s) if p.value.is_null() => (String::new(), "string"),
                    Kind::Scalar(s) => (s.text.clone(), "string"),
                    _ => (p.value.to_json().to_string(), "json"),
                };
                published.push(entry(key, scalar(&value, p.value.span), p.key.span));
                declared.push(map_node(
                    vec![
                        entry("name", scalar(key, p.key.span), p.key.span),
                        entry("type", scalar(kind, p.key.span), p.key.span),
                    ],
                    p.key.span,
                ));
            }
            if let Some(own) = entries.iter().find(|e| e.key.as_str() == Some("outputs")) {
                diags.push(
                    Diagnostic::error(
                        own.key.span,
                        "an `outputs.write` step's outputs are the names of `with.values`",
                    )
                    .with_help("remove `outputs`"),
                );
                return None;
            }
            entries.push(entry(
                "outputs",
                Node {
                    kind: Kind::Seq(declared),
                    span,
                    key: None,
                },
                span,
            ));
            Some(map_node(
                vec![entry("values", map_node(published, span), span)],
                span,
            ))
        }
        _ => Some(map_node(
            vec![entry("noop", scalar("true", span), span)],
            span,
        )),
    }
}

/// `http.request`, `ssh.run`, `mail.send`, `jq.filter`: the `http`, `ssh`, `mail` and `jq`
/// steps, their `with` as their `config` (what the request, the remote command or the
/// filter is taken out into the step's `command`, `script`).
fn builtin_action(
    name: &str,
    span: Span,
    with: Option<Node>,
    entries: &mut Vec<Entry>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut with = with.unwrap_or_else(|| map_node(Vec::new(), span));
    let Kind::Map(fields) = &mut with.kind else {
        diags.push(Diagnostic::error(
            with.at(),
            format!("`with` of `action: {name}` is a mapping"),
        ));
        return;
    };
    let mut take = |key: &str| {
        fields
            .iter()
            .position(|e| e.key.as_str() == Some(key))
            .map(|at| fields.remove(at))
    };
    let kind = match name {
        "http.request" => {
            let method = take("method");
            let url = take("url");
            match (&method, &url) {
                (Some(me), Some(ue)) => match (me.value.as_str(), ue.value.as_str()) {
                    (Some(m), Some(u)) if !m.trim().is_empty() && !u.trim().is_empty() => {
                        let line = format!("{} {}", m.trim(), u.trim());
                        entries.push(entry("command", scalar(&line, ue.value.span), span));
                    }
                    _ => diags.push(Diagnostic::error(
                        span,
                        "`with.method` and `with.url` are non-empty strings",
                    )),
                },
                (None, _) => diags.push(Diagnostic::error(
                    span,
                    "`action: http.request` needs `with.method` (GET, POST, …)",
                )),
                (_, None) => diags.push(Diagnostic::error(
                    span,
                    "`action: http.request` needs `with.url`",
                )),
            }
            "http"
        }
        "ssh.run" => {
            match (take("command"), take("script")) {
                (Some(c), None) => entries.push(entry("command", c.value, c.key.span)),
                (None, Some(sc)) => entries.push(entry("script", sc.value, sc.key.span)),
                (Some(c), Some(_)) => diags.push(Diagnostic::error(c.key.span, "`with` of `ssh.run` has `command` or `script`, not both")),
                (None, None) => diags.push(Diagnostic::error(span, "`action: ssh.run` needs `with.command` (or `with.script`): what runs on the host")),
            }
            "ssh"
        }
        "mail.send" => "mail",
        _ => {
            match take("filter") {
                Some(f) => entries.push(entry("command", f.value, f.key.span)),
                None => diags.push(Diagnostic::error(
                    span,
                    "`action: jq.filter` needs `with.filter`",
                )),
            }
            match take("data") {
                Some(d) if d.value.as_str().is_some_and(|t| t.starts_with("file://")) => diags
                    .push(
                        Diagnostic::error(
                            d.value.at(),
                            "wharf reads `jq.filter` data written in the file, not `file://`",
                        )
                        .with_help("put the JSON in `with.data`"),
                    ),
                Some(d) => {
                    let text = match d.value.as_str() {
                        Some(t) => t.to_owned(),
                        None => d.value.to_json().to_string(),
                    };
                    entries.push(entry("script", scalar(&text, d.value.span), d.key.span));
                }
                None => diags.push(Diagnostic::error(
                    span,
                    "`action: jq.filter` needs `with.data`: the JSON to filter",
                )),
            }
            for refused in ["input", "args"] {
                if let Some(e) = take(refused) {
                    diags.push(
                        Diagnostic::error(
                            e.key.span,
                            format!("wharf's `jq.filter` takes no `with.{refused}`"),
                        )
                        .with_help("give the JSON in `with.data`, the filter in `with.filter`"),
                    );
                }
            }
            "jq"
        }
    };
    put_executor(entries, kind, with, span);
}

/// The step's `executor` of the type `kind` with `config`: what an action maps onto.
/// `with` of `action: NAME` (empty when left out) with `added` in it, as the config of a
/// `kind` step; a `with` that is not a mapping is told.
fn put_with(
    entries: &mut Vec<Entry>,
    diags: &mut Vec<Diagnostic>,
    name: &str,
    with: Option<Node>,
    added: Vec<Entry>,
    kind: &str,
    span: Span,
) {
    let mut with = with.unwrap_or_else(|| map_node(Vec::new(), span));
    match &mut with.kind {
        Kind::Map(fields) => {
            fields.extend(added);
            put_executor(entries, kind, with, span);
        }
        _ => diags.push(Diagnostic::error(
            with.at(),
            format!("`with` of `action: {name}` is a mapping"),
        )),
    }
}

fn put_executor(entries: &mut Vec<Entry>, kind: &str, config: Node, span: Span) {
    let executor = map_node(
        vec![
            entry("type", scalar(kind, span), span),
            entry("config", config, span),
        ],
        span,
    );
    entries.push(entry("executor", executor, span));
}

/// A diagnostic of a 2.x file in 2.x words: the decoder's camelCase key names in
/// snake_case, `command`/`script` as `run`.
pub(crate) fn speak_v2(message: &str) -> String {
    if message.contains("Dagu 1.x") {
        return message.to_owned();
    }
    let message = message.replace("neither `command` nor `script`", "no `run` and no `action`");
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(open) = rest.find('`') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let word = &after[..close];
        let spoken = match word {
            "command" | "script" => "run".to_owned(),
            w if w.starts_with("command:") => format!("run:{}", &w["command:".len()..]),
            "call" => "action: dag.run".to_owned(),
            // Only the language's own keys: a step's or a DAG's name stays as written.
            w if camel(w)
                && w.chars().all(|c| c.is_ascii_alphanumeric())
                && crate::decode::is_dialect_key(w) =>
            {
                to_snake(w)
            }
            w => w.to_owned(),
        };
        out.push('`');
        out.push_str(&spoken);
        out.push('`');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn to_snake(word: &str) -> String {
    let mut out = String::new();
    for c in word.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `name` is a field of the step's human-task form (each field is an output).
fn form_field(step: &crate::Step, name: &str) -> bool {
    match &step.executor {
        crate::Executor::HumanTask(t) => t.form.as_ref().is_some_and(|f| f.field(name).is_some()),
        _ => false,
    }
}

/// Notices about the references of a 2.x DAG that cannot resolve: a param nobody
/// declares, a step or an output that does not exist, a step's own output, a step
/// output read in a handler. They are left as written when the step runs (an undefined
/// const is an error, told where the consts are put in).
pub(crate) fn notices(dag: &crate::Dag) -> Vec<Diagnostic> {
    let mut params: Vec<String> = dag.params.iter().filter_map(|p| p.name.clone()).collect();
    if let Some(props) = dag
        .params_schema
        .as_ref()
        .and_then(|s| s.json.get("properties"))
        .and_then(|p| p.as_object())
    {
        params.extend(props.keys().cloned());
    }
    let mut out = Vec::new();
    // A reference to another step's output made that step a dependency when the file
    // was read (`infer_depends`), so every output here comes from upstream.
    for step in &dag.steps {
        for text in texts_of(step) {
            for reference in crate::expand::references_in(text) {
                let parts: Vec<&str> = reference.split('.').collect();
                let why = match parts.as_slice() {
                    ["params", name] if !params.iter().any(|p| p == name) => {
                        Some(format!("no param `{name}` is declared"))
                    }
                    ["steps", id, "outputs", name] => {
                        match dag.steps.iter().find(|s| s.id.as_deref() == Some(*id)) {
                            None => Some(format!("no step has the id `{id}`")),
                            Some(s) if s.name == step.name => {
                                Some("a step cannot read its own output".to_owned())
                            }
                            // A sub-DAG's outputs are named only when it has run.
                            Some(s)
                                if s.call.is_none()
                                    && !s.outputs.iter().any(|o| o.name == *name)
                                    && !s.publish.as_ref().is_some_and(|p| p.names(name))
                                    && !form_field(s, name) =>
                            {
                                Some(format!("the step `{id}` declares no output `{name}`"))
                            }
                            Some(_) => None,
                        }
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    out.push(Diagnostic::warning(
                        step.span,
                        format!("`${{{reference}}}`: {why}; it is left as written"),
                    ));
                }
            }
        }
    }
    // A handler is no step of the graph: it reads no step's outputs.
    let h = &dag.handlers;
    for handler in [&h.init, &h.success, &h.failure, &h.abort, &h.exit, &h.wait]
        .into_iter()
        .flatten()
    {
        for text in texts_of(handler) {
            for reference in crate::expand::references_in(text) {
                if reference.starts_with("steps.") {
                    out.push(Diagnostic::warning(
                        handler.span,
                        format!("`${{{reference}}}`: a handler reads no step's outputs; it is left as written"),
                    ));
                }
            }
        }
    }
    out
}

/// The texts of a step that its references are written in: its command, script,
/// working directory and `env` values.
fn texts_of(step: &crate::Step) -> Vec<&str> {
    use crate::CommandSpec;
    let mut texts: Vec<&str> = Vec::new();
    match &step.command {
        Some(CommandSpec::Line(l)) => texts.push(l),
        Some(CommandSpec::Lines(ls) | CommandSpec::Argv(ls)) => {
            texts.extend(ls.iter().map(String::as_str))
        }
        None => {}
    }
    texts.extend(step.script.as_deref());
    texts.extend(step.dir.as_deref());
    texts.extend(step.env.iter().map(|e| e.value.as_str()));
    texts
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_stay_as_written() {
        assert_eq!(
            super::speak_v2("`buildImage` depends on `workingDir`"),
            "`buildImage` depends on `working_dir`"
        );
    }

    #[test]
    fn messages_speak_two() {
        assert_eq!(
            super::speak_v2(
                "the step has neither `command` nor `script`; `retryPolicy` needs `limit`; add `command: ...`"
            ),
            "the step has no `run` and no `action`; `retry_policy` needs `limit`; add `run: ...`"
        );
    }
}
