//! Steps: a command or a mapping, and what a step may say (policies, conditions, output,
//! executor).

use super::keys::*;
use super::{Decoder, Fields};
use crate::diag::{Diagnostic, Span};
use crate::formats;
use crate::model::*;
use crate::yaml::{Kind, Node};

/// `depends` as written: None when absent, else each name with its position.
pub(crate) type Depends = Option<Vec<(String, Span)>>;

/// A step as decoded, before the chain/graph rules give it its final dependencies.
pub(crate) struct RawStep {
    pub step: Step,
    /// `depends` as written: None when absent, with the span of each name.
    pub depends: Depends,
    /// The index of the `steps` item the step came from (parallel groups share one).
    pub item: usize,
    /// It has a `workerSelector` of its own (the DAG's does not apply to it).
    pub selected: bool,
}

pub(crate) fn steps_of(d: &mut Decoder, node: &Node, shared: bool) -> Vec<RawStep> {
    // Sized once: a step is large, and a file may hold thousands.
    let count = match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .map(|i| i.as_seq().map_or(1, <[Node]>::len))
            .sum(),
        Kind::Map(entries) => entries.len(),
        Kind::Scalar(_) => 0,
    };
    let mut out = Vec::with_capacity(count);
    match &node.kind {
        Kind::Seq(items) => {
            if items.is_empty() {
                d.error(node.at(), "the DAG has no steps: `steps` is an empty list");
            }
            for (index, item) in items.iter().enumerate() {
                match &item.kind {
                    Kind::Seq(group) => {
                        if group.is_empty() {
                            d.error(item.at(), "a parallel group must hold at least one step");
                        }
                        for member in group {
                            if member.as_seq().is_some() {
                                d.error(
                                    member.at(),
                                    "a parallel group holds steps, not another list",
                                );
                                continue;
                            }
                            if let Some(mut raw) = step(d, member, shared) {
                                raw.item = index;
                                out.push(raw);
                            }
                        }
                    }
                    _ => {
                        if let Some(mut raw) = step(d, item, shared) {
                            raw.item = index;
                            out.push(raw);
                        }
                    }
                }
            }
        }
        Kind::Map(entries) => {
            // `steps` as a mapping of names to steps.
            for (index, entry) in entries.iter().enumerate() {
                let name = entry.key.as_str().unwrap_or_default().to_owned();
                if let Some(mut raw) = step(d, &entry.value, shared) {
                    if raw.step.generated_name {
                        raw.step.name = name;
                        raw.step.generated_name = false;
                        raw.step.span = entry.key.span;
                    } else if raw.step.name != name {
                        d.error(
                            raw.step.span,
                            format!(
                                "the step `{name}` is named `{}` inside; use one name",
                                raw.step.name
                            ),
                        );
                    }
                    raw.item = index;
                    out.push(raw);
                }
            }
        }
        Kind::Scalar(_) => d.expected(node, "`steps`", "a list of steps"),
    }
    out
}

/// One step: a string (a command) or a mapping.
pub(crate) fn step(d: &mut Decoder, node: &Node, shared: bool) -> Option<RawStep> {
    if let Kind::Scalar(_) = node.kind {
        let command = d.string(node, "a step")?;
        return Some(RawStep {
            step: Step {
                name: String::new(),
                generated_name: true,
                id: None,
                description: None,
                dir: None,
                command: Some(CommandSpec::Line(command)),
                script: None,
                mail_on_error: false,
                approval: None,
                outputs: Vec::new(),
                publish: None,
                shell: None,
                shell_packages: Vec::new(),
                call: None,
                env: Vec::new(),
                depends: Vec::new(),
                output: None,
                stdout: None,
                stderr: None,
                continue_on: None,
                retry: None,
                repeat: None,
                preconditions: Vec::new(),
                timeout_sec: None,
                signal_on_stop: None,
                log_output: None,
                executor: Executor::Local { explicit: false },
                span: node.at(),
            },
            depends: None,
            item: 0,
            selected: false,
        });
    }
    let f = d.fields(node, "a step", &STEP_KEYS)?;
    // Names and ids are trimmed, as Dagu trims them.
    let name = d.opt_string(&f, "name").map(|n| n.trim().to_owned());
    if let (Some(n), Some(span)) = (&name, f.get("name").map(|n| n.at())) {
        if n.is_empty() {
            d.error(span, "a step name must not be empty");
        } else if n.chars().count() > MAX_NAME {
            d.error(
                span,
                format!(
                    "a step name is at most {MAX_NAME} characters; this one has {}",
                    n.chars().count()
                ),
            );
        }
    }
    let id = d.opt_string(&f, "id").map(|i| i.trim().to_owned());
    if let (Some(id), Some(span)) = (&id, f.get("id").map(|n| n.at())) {
        check_id(d, id, span);
    }
    let id_for_outputs = id.clone();
    let span = f.get("name").map_or(node.at(), |n| n.at());
    if f.has("dir")
        && f.has("workingDir")
        && let Some(span) = f.key_span("workingDir")
    {
        d.error(span, "`dir` and `workingDir` are the same setting; set one");
    }
    let dir = d
        .opt_string(&f, "dir")
        .or_else(|| d.opt_string(&f, "workingDir"));
    let command = command_of(d, &f);
    let depends = f.get("depends").map(|n| match &n.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|i| d.string(i, "an item of `depends`").map(|s| (s, i.span)))
            .collect(),
        Kind::Map(_) => {
            d.expected(n, "`depends`", "a step name or a list of step names");
            Vec::new()
        }
        _ => d
            .string(n, "`depends`")
            .map(|s| vec![(s, n.at())])
            .unwrap_or_default(),
    });
    // A step's own `workerSelector` decides the backend of its container, as a DAG's
    // `backend` would.
    let selector = f
        .get("workerSelector")
        .and_then(|n| super::swarm::worker_selector(d, n));
    let dag_backend = d.backend;
    if let Some(sel) = &selector {
        d.backend = Some(super::swarm::selected_backend(sel));
    }
    let executor = executor(d, &f, shared);
    d.backend = dag_backend;
    let script = d.opt_string(&f, "script");
    if let (Executor::Docker(_), Some(span)) = (&executor, f.key_span("script")) {
        // As Dagu: a container step runs its image's program with `command`; a script
        // would be accepted and never run.
        d.diags.push(
            Diagnostic::error(span, "`script` does not run in a docker step")
                .with_help("give the container its program with `command`, or run the script on the host or in the DAG-level `container`"),
        );
    }
    let shell = f.get("shell").and_then(|n| d.words(n, "`shell`"));
    let shell_packages = match f.get("shellPackages") {
        None => Vec::new(),
        Some(node) => {
            let packages = d.strings(node, "`shellPackages`");
            let nix = shell.as_deref().map_or(d.nix_shell, formats::is_nix_shell);
            if matches!(executor, Executor::Docker(_))
                || (shared && matches!(executor, Executor::Local { explicit: false }))
            {
                d.error(node.at(), "`shellPackages` does not apply to a step in a container: install the packages in its image");
            } else if !nix {
                d.diags.push(
                    Diagnostic::error(
                        node.at(),
                        "`shellPackages` needs `shell: nix-shell` (the step's or the DAG's)",
                    )
                    .with_help(
                        "add `shell: nix-shell` to the step, or install the packages on the host",
                    ),
                );
            }
            packages
        }
    };
    let call = call(d, &f, &executor);
    let runs_something = f.has("command") || f.has("script") || call.is_some();
    if !runs_something && !f.rejected && matches!(executor, Executor::Local { .. }) {
        let mut diag = Diagnostic::error(span, "the step has neither `command` nor `script`");
        diag = diag.with_help("add `command: ...` with what the step runs");
        d.diags.push(diag);
    }
    // Dagu 2.x: `output` as a mapping of values (not `{name, key, omit}`) publishes them.
    let (output, published) = match f.get("output") {
        Some(n) if d.v2 && is_object_output(n) => (None, output_object(d, n)),
        Some(n) => (output(d, n), Vec::new()),
        None => (None, Vec::new()),
    };
    let (stdout_outputs, outputs_all) = f
        .get("stdoutOutputs")
        .map(|n| stdout_outputs(d, n))
        .unwrap_or_default();
    let publish = (!published.is_empty() || !stdout_outputs.is_empty() || outputs_all.is_some())
        .then(|| {
            Box::new(Publish {
                output: published,
                outputs: stdout_outputs,
                outputs_all,
            })
        });
    let signal_on_stop = f.get("signalOnStop").and_then(|n| {
        let text = d.string(n, "`signalOnStop`")?;
        let sig = formats::signal(&text);
        if sig.is_none() {
            d.diags.push(
                Diagnostic::error(n.at(), format!("`signalOnStop` names no signal: `{text}`"))
                    .with_help("use a signal name such as SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 or SIGKILL"),
            );
        }
        sig
    });
    let step = Step {
        generated_name: name.is_none(),
        name: name.unwrap_or_default(),
        id,
        description: d.opt_string(&f, "description"),
        dir,
        command,
        script,
        shell,
        shell_packages,
        call: call.map(Box::new),
        env: f
            .get("env")
            .map(|n| d.env(n, "the step's `env`"))
            .unwrap_or_default(),
        depends: Vec::new(),
        output: output.map(Box::new),
        stdout: d.opt_string(&f, "stdout"),
        stderr: d.opt_string(&f, "stderr"),
        continue_on: f
            .get("continueOn")
            .map(|n| continue_on(d, n))
            .filter(|c| *c != ContinueOn::default())
            .map(Box::new),
        retry: f.get("retryPolicy").and_then(|n| retry(d, n)).map(Box::new),
        repeat: f
            .get("repeatPolicy")
            .and_then(|n| repeat(d, n))
            .map(Box::new),
        preconditions: d.conditions(&f),
        timeout_sec: d.opt_uint(&f, "timeoutSec"),
        signal_on_stop,
        log_output: d.log_output(&f),
        executor,
        mail_on_error: d.opt_bool(&f, "mailOnError").unwrap_or(false),
        approval: f.get("approval").and_then(|n| {
            if d.v2 {
                Some(Box::new(approval_fields(d, Some(n), "`approval`")))
            } else {
                d.diags.push(
                    Diagnostic::error(n.at(), "`approval` on a step is Dagu 2.x (2.2 and later)")
                        .with_help("in a Dagu 1.x file a person approves in a step of its own: `type: hitl`"),
                );
                None
            }
        }),
        outputs: f
            .get("outputs")
            .or_else(|| {
                // `outputs:` with nothing is no declaration at all: refused, as an empty list.
                if let Some(at) = f.key_span("outputs") {
                    d.error(at, "`outputs` must be a non-empty list of outputs (`- name: NAME`), found nothing");
                }
                None
            })
            .map(|n| {
                declared_outputs(
                    d,
                    n,
                    f.key_span("outputs").unwrap_or(span),
                    id_for_outputs.as_deref(),
                )
            })
            .unwrap_or_default(),
        publish,
        span,
    };
    builtin_needs(d, &step, node);
    let mut step = step;
    if let (Some(sel), Some(at)) = (&selector, f.key_span("workerSelector")) {
        super::swarm::select_nodes(d, sel, &mut step, at);
    }
    Some(RawStep {
        step,
        depends,
        item: 0,
        selected: selector.is_some(),
    })
}

/// What a `jq` or `http` step cannot run without.
fn builtin_needs(d: &mut Decoder, step: &Step, node: &Node) {
    let line = step.command.as_ref().map(CommandSpec::to_line);
    match &step.executor {
        Executor::Jq(_) => {
            if line.as_deref().is_none_or(|l| l.trim().is_empty()) {
                d.diags.push(
                    Diagnostic::error(node.at(), "a `jq` step needs its filter as `command`")
                        .with_help("e.g. `command: .items[].name` with the JSON in `script`"),
                );
            }
            if step.script.is_none() {
                d.diags.push(
                    Diagnostic::error(node.at(), "a `jq` step needs its JSON input as `script`")
                        .with_help("e.g. `script: '{\"items\": []}'`, or `script: ${DATA}`"),
                );
            }
        }
        Executor::Archive(_) => {
            // The operation is the command (it may come from a variable).
            let op = line.as_deref().map(str::trim).unwrap_or_default();
            if op.is_empty() || (!op.contains('$') && !matches!(op, "create" | "extract" | "list"))
            {
                d.diags.push(
                    Diagnostic::error(
                        node.at(),
                        "an `archive` step's `command` is `create`, `extract` or `list`",
                    )
                    .with_help("e.g. `command: extract` with `config: {source: data.tar.gz, destination: ./data}`"),
                );
            }
            if step.script.is_some() {
                d.error(node.at(), "an `archive` step takes no `script`");
            }
        }
        Executor::Http(_) => {
            let ok = line
                .as_deref()
                .and_then(|l| l.trim().split_once(' '))
                .is_some_and(|(m, u)| !m.is_empty() && !u.trim().is_empty());
            if !ok {
                d.diags.push(
                    Diagnostic::error(node.at(), "an `http` step needs `command: METHOD URL`")
                        .with_help("e.g. `command: GET https://example.com/health`"),
                );
            }
            if step.script.is_some() {
                d.error(
                    node.at(),
                    "an `http` step takes its body from `config.body`, not `script`",
                );
            }
        }
        Executor::Sql(sql) => {
            let written = [
                sql.query.is_some(),
                step.command.is_some(),
                step.script.is_some(),
            ];
            if written.iter().filter(|w| **w).count() > 1 {
                d.diags.push(
                    Diagnostic::error(
                        node.at(),
                        format!(
                            "a `{}` step has its SQL in one place: `command`, `script` or the config's `query`",
                            sql.engine.name()
                        ),
                    )
                    .with_help("several statements go in one text, each ended by `;`"),
                );
            }
        }
        _ => {}
    }
}

/// Whether a 2.x `output` mapping is the object form (values to publish), not Dagu 1.x's
/// `{name, key, omit}`.
fn is_object_output(node: &Node) -> bool {
    node.as_map().is_some_and(|entries| {
        !(entries.iter().any(|e| e.key.as_str() == Some("name"))
            && entries
                .iter()
                .all(|e| matches!(e.key.as_str(), Some("name" | "key" | "omit"))))
    })
}

/// The name of a published output (an entry's key), checked.
fn output_name<'n>(d: &mut Decoder, e: &'n crate::yaml::Entry) -> Option<&'n str> {
    let name = e.key.as_str().unwrap_or_default();
    if formats::is_var_name(name) {
        return Some(name);
    }
    d.error(
        e.key.span,
        format!("an output's name is letters, digits and `_`, found `{name}`"),
    );
    None
}

/// Object-form `output` (Dagu 2.x): each entry a value, written or read from the step's
/// stdout, stderr or a file.
fn output_object(d: &mut Decoder, node: &Node) -> Vec<(String, Published)> {
    let mut out = Vec::new();
    let before = d.diags.len();
    for e in node.as_map().unwrap_or_default() {
        let Some(name) = output_name(d, e) else {
            continue;
        };
        if let Some(p) = published(d, &e.value, Decode::Text) {
            out.push((name.to_owned(), p));
        }
    }
    if out.is_empty() && d.diags.len() == before {
        d.error(
            node.at(),
            "`output` publishes nothing: give it one or more values",
        );
    }
    out
}

/// `stdout.outputs` (Dagu 2.x): a name (the whole stdout), `{decode}` (every key of the
/// decoded object), or `{fields: {NAME: ...}}`.
fn stdout_outputs(d: &mut Decoder, node: &Node) -> (Vec<(String, Published)>, Option<Decode>) {
    let stdout = |decode| Published::From {
        from: PublishFrom::Stdout,
        decode,
        select: Vec::new(),
    };
    if let Some(name) = node.as_str() {
        if !formats::is_var_name(name) {
            d.error(
                node.at(),
                format!(
                    "`stdout.outputs` names an output: letters, digits and `_`, found `{name}`"
                ),
            );
            return Default::default();
        }
        return (vec![(name.to_owned(), stdout(Decode::Text))], None);
    }
    const KEYS: Keys = Keys {
        known: &["decode", "fields"],
        ignored: &[],
        unsupported: &[],
    };
    let Some(f) = d.fields(node, "`stdout.outputs`", &KEYS) else {
        return Default::default();
    };
    let decode = f
        .get("decode")
        .and_then(|n| decode_of(d, n))
        .unwrap_or(Decode::Text);
    let Some(fields) = f.get("fields") else {
        if decode == Decode::Text {
            d.diags.push(
                Diagnostic::error(node.at(), "`stdout.outputs` needs `fields`, or `decode: json` or `yaml`")
                    .with_help("`outputs: NAME` publishes the whole stdout; `{decode: json}` every key of a JSON object; `{fields: {NAME: {decode, select}}}` the fields chosen"),
            );
        }
        return (Vec::new(), (decode != Decode::Text).then_some(decode));
    };
    let Some(entries) = fields.as_map().filter(|m| !m.is_empty()) else {
        d.expected(
            fields,
            "`stdout.outputs.fields`",
            "a mapping of output names",
        );
        return Default::default();
    };
    let mut out = Vec::new();
    for e in entries {
        let Some(name) = output_name(d, e) else {
            continue;
        };
        // A field without a source of its own is read from stdout.
        let p = if e.value.is_null() {
            Some(stdout(decode))
        } else {
            published(d, &e.value, decode)
        };
        if let Some(p) = p {
            out.push((name.to_owned(), p));
        }
    }
    (out, None)
}

fn decode_of(d: &mut Decoder, node: &Node) -> Option<Decode> {
    match d.string(node, "`decode`")?.as_str() {
        "text" => Some(Decode::Text),
        "json" => Some(Decode::Json),
        "yaml" => Some(Decode::Yaml),
        other => {
            d.diags.push(Diagnostic::error(
                node.at(),
                format!("`decode` is text, json or yaml, found `{other}`"),
            ));
            None
        }
    }
}

/// One published value: a mapping with `value`, or with `from`, `path`, `decode` and
/// `select` (read once the step ran); anything else is the value itself.
fn published(d: &mut Decoder, node: &Node, default_decode: Decode) -> Option<Published> {
    const RESERVED: [&str; 5] = ["value", "from", "path", "decode", "select"];
    let entries = match node.as_map() {
        Some(entries)
            if entries
                .iter()
                .any(|e| e.key.as_str().is_some_and(|k| RESERVED.contains(&k))) =>
        {
            entries
        }
        _ => return Some(Published::Value(node.to_json())),
    };
    let get = |k: &str| {
        entries
            .iter()
            .find(|e| e.key.as_str() == Some(k))
            .map(|e| &e.value)
    };
    for e in entries {
        let key = e.key.as_str().unwrap_or_default();
        if !RESERVED.contains(&key) {
            d.diags.push(
                Diagnostic::error(e.key.span, format!("unknown key `{key}` in an output's value"))
                    .with_help("accepted keys: value, from, path, decode, select (wrap a mapping of your own in `value:`)"),
            );
            return None;
        }
    }
    if let Some(value) = get("value") {
        if let Some(other) = entries.iter().find(|e| e.key.as_str() != Some("value")) {
            d.error(
                other.key.span,
                "`value` cannot be combined with `from`, `path`, `decode` or `select`",
            );
            return None;
        }
        return Some(Published::Value(value.to_json()));
    }
    let from = match get("from").map(|n| (n, d.string(n, "`from`"))) {
        None => PublishFrom::Stdout,
        Some((_, None)) => return None,
        Some((n, Some(from))) => match from.as_str() {
            "stdout" => PublishFrom::Stdout,
            "stderr" => PublishFrom::Stderr,
            "file" => match get("path")
                .and_then(|p| d.string(p, "`path`"))
                .filter(|p| !p.trim().is_empty())
            {
                Some(path) => PublishFrom::File(path),
                None => {
                    d.error(n.at(), "`from: file` needs `path`: the file to read");
                    return None;
                }
            },
            other => {
                d.error(
                    n.at(),
                    format!("`from` is stdout, stderr or file, found `{other}`"),
                );
                return None;
            }
        },
    };
    if let Some(path) = get("path")
        && !matches!(from, PublishFrom::File(_))
    {
        d.error(path.at(), "`path` is read with `from: file`");
        return None;
    }
    let decode = match get("decode") {
        Some(n) => decode_of(d, n)?,
        None => default_decode,
    };
    let select = match get("select") {
        None => Vec::new(),
        Some(n) => {
            let text = d.string(n, "`select`")?;
            if decode == Decode::Text {
                d.error(
                    n.at(),
                    "`select` reads a decoded value: add `decode: json` or `decode: yaml`",
                );
                return None;
            }
            match formats::select_path(&text) {
                Some(path) => path,
                None => {
                    d.diags.push(
                        Diagnostic::error(
                            n.at(),
                            format!("`select` is a path into the value, found `{text}`"),
                        )
                        .with_help(
                            "write a path such as `.version`, `.artifact.url` or `.items[0].id`",
                        ),
                    );
                    return None;
                }
            }
        }
    };
    Some(Published::From {
        from,
        decode,
        select,
    })
}

fn output(d: &mut Decoder, node: &Node) -> Option<Output> {
    const KEYS: Keys = Keys {
        known: &["name", "key", "omit"],
        ignored: &[],
        unsupported: &[],
    };
    let (name, name_node, key, omit) = if node.as_map().is_some() {
        let f = d.fields(node, "`output`", &KEYS)?;
        let Some(name_node) = f.get("name") else {
            d.error(node.at(), "`output` needs a `name`");
            return None;
        };
        (
            d.string(name_node, "`output.name`")?,
            name_node,
            d.opt_string(&f, "key"),
            d.opt_bool(&f, "omit").unwrap_or(false),
        )
    } else {
        (d.string(node, "`output`")?, node, None, false)
    };
    // Dagu accepts `output: $VAR` and `output: ${VAR}`; the name is the same.
    let bare = name
        .trim_start_matches('$')
        .trim_start_matches('{')
        .trim_end_matches('}')
        .to_owned();
    if !formats::is_var_name(&bare) {
        d.error(
            name_node.at(),
            format!("`output` must be a variable name (letters, digits, `_`), found `{name}`"),
        );
        return None;
    }
    Some(Output {
        name: bare,
        key,
        omit,
    })
}

fn continue_on(d: &mut Decoder, node: &Node) -> ContinueOn {
    const KEYS: Keys = Keys {
        known: &["failure", "skipped", "exitCode", "output", "markSuccess"],
        ignored: &[],
        unsupported: &[],
    };
    let mut c = ContinueOn::default();
    if node.as_map().is_none() {
        match d.string(node, "`continueOn`").as_deref() {
            Some("skipped") => c.skipped = true,
            Some("failed" | "failure") => c.failure = true,
            Some(other) => d.enum_error(node, "`continueOn`", other, &["skipped", "failed"]),
            None => {}
        }
        return c;
    }
    let Some(f) = d.fields(node, "`continueOn`", &KEYS) else {
        return c;
    };
    c.failure = d.opt_bool(&f, "failure").unwrap_or(false);
    c.skipped = d.opt_bool(&f, "skipped").unwrap_or(false);
    c.mark_success = d.opt_bool(&f, "markSuccess").unwrap_or(false);
    if let Some(n) = f.get("exitCode") {
        c.exit_codes = d.exit_codes(n, "`continueOn.exitCode`");
    }
    if let Some(n) = f.get("output") {
        c.output = d.strings(n, "`continueOn.output`");
        for (text, item) in c
            .output
            .iter()
            .zip(n.as_seq().map_or(vec![n], |s| s.iter().collect()))
        {
            super::values::check_match_pattern(d, item, text);
        }
    }
    c
}

fn retry(d: &mut Decoder, node: &Node) -> Option<RetryPolicy> {
    const KEYS: Keys = Keys {
        known: &[
            "limit",
            "intervalSec",
            "exitCode",
            "backoff",
            "maxIntervalSec",
        ],
        ignored: &[],
        unsupported: &[],
    };
    let f = d.fields(node, "`retryPolicy`", &KEYS)?;
    let Some(limit_node) = f.get("limit") else {
        d.error(
            node.at(),
            "`retryPolicy` needs `limit`: how many times to retry",
        );
        return None;
    };
    let limit = d.uint(limit_node, "`retryPolicy.limit`", true)?;
    let interval_sec = match f.get("intervalSec") {
        Some(n) => d.uint(n, "`retryPolicy.intervalSec`", true)?,
        None => 0,
    };
    Some(RetryPolicy {
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        interval_sec,
        exit_codes: f
            .get("exitCode")
            .map(|n| d.exit_codes(n, "`retryPolicy.exitCode`"))
            .unwrap_or_default(),
        backoff: f
            .get("backoff")
            .and_then(|n| backoff(d, n, "`retryPolicy.backoff`")),
        max_interval_sec: d.opt_uint(&f, "maxIntervalSec"),
    })
}

fn backoff(d: &mut Decoder, node: &Node, what: &str) -> Option<f64> {
    if let Some(b) = node.as_bool() {
        return b.then_some(2.0);
    }
    match node.as_str().and_then(|s| s.parse::<f64>().ok()) {
        Some(v) if v > 1.0 => Some(v),
        _ => {
            d.error(
                node.at(),
                format!("{what} must be true, false or a multiplier above 1.0"),
            );
            None
        }
    }
}

fn repeat(d: &mut Decoder, node: &Node) -> Option<RepeatPolicy> {
    const KEYS: Keys = Keys {
        known: &[
            "repeat",
            "intervalSec",
            "limit",
            "condition",
            "expected",
            "exitCode",
            "backoff",
            "maxIntervalSec",
        ],
        ignored: &[],
        unsupported: &[],
    };
    let f = d.fields(node, "`repeatPolicy`", &KEYS)?;
    let condition = d.opt_string(&f, "condition");
    let expected = d.opt_string(&f, "expected");
    let exit_codes = f
        .get("exitCode")
        .map(|n| d.exit_codes(n, "`repeatPolicy.exitCode`"))
        .unwrap_or_default();
    let mode = match f.get("repeat") {
        Some(n) if n.as_bool() == Some(true) => RepeatMode::Always,
        Some(n) if n.as_bool() == Some(false) => return None,
        Some(n) => match d.string(n, "`repeatPolicy.repeat`").as_deref() {
            Some("while") => RepeatMode::While,
            Some("until") => RepeatMode::Until,
            Some(other) => {
                d.enum_error(
                    n,
                    "`repeatPolicy.repeat`",
                    other,
                    &["true", "false", "while", "until"],
                );
                return None;
            }
            None => return None,
        },
        // Without `repeat`, the mode follows from the other fields, as in Dagu.
        None if condition.is_some() && expected.is_some() => RepeatMode::Until,
        None if condition.is_some() || !exit_codes.is_empty() => RepeatMode::While,
        None => {
            d.error(node.at(), "`repeatPolicy` needs `repeat` (true, while or until), or a `condition` or `exitCode`");
            return None;
        }
    };
    if matches!(mode, RepeatMode::While | RepeatMode::Until)
        && condition.is_none()
        && exit_codes.is_empty()
    {
        d.error(
            node.at(),
            "`repeat: while`/`until` needs a `condition` or an `exitCode` to test",
        );
    }
    if expected.is_some() && condition.is_none() {
        d.error(
            node.at(),
            "`repeatPolicy.expected` needs a `condition` to compare",
        );
    }
    let limit = match f.get("limit") {
        Some(n) => match d.uint(n, "`repeatPolicy.limit`", false)? {
            0 => {
                d.error(n.at(), "`repeatPolicy.limit` must be at least 1");
                return None;
            }
            v => Some(u32::try_from(v).unwrap_or(u32::MAX)),
        },
        None => None,
    };
    Some(RepeatPolicy {
        mode,
        interval_sec: d.opt_uint(&f, "intervalSec").unwrap_or(0),
        limit,
        condition,
        expected,
        exit_codes,
        backoff: f
            .get("backoff")
            .and_then(|n| backoff(d, n, "`repeatPolicy.backoff`")),
        max_interval_sec: d.opt_uint(&f, "maxIntervalSec"),
    })
}

fn executor(d: &mut Decoder, f: &Fields, shared: bool) -> Executor {
    let local = Executor::Local { explicit: false };
    if let Some(node) = f.get("container") {
        for key in ["executor", "type"] {
            if let Some(span) = f.key_span(key) {
                d.error(
                    span,
                    format!(
                        "`{key}` and `container` are both set; a step's `container` is its executor"
                    ),
                );
            }
        }
        return match super::docker::step_container(d, node) {
            Some(docker) => Executor::Docker(Box::new(docker)),
            None => local,
        };
    }
    let (type_node, config) = match (f.get("executor"), f.get("type")) {
        (Some(_), Some(_)) => {
            if let Some(span) = f.key_span("type") {
                d.error(
                    span,
                    "`type` and `executor` are both set; use `executor: {type: ..., config: ...}`",
                );
            }
            return local;
        }
        (Some(exec), None) => {
            if exec.as_map().is_some() {
                let Some(ef) = d.fields(exec, "`executor`", &EXECUTOR_KEYS) else {
                    return local;
                };
                let Some(t) = ef.get("type") else {
                    d.diags.push(
                        Diagnostic::error(exec.at(), "`executor` needs a `type`").with_help(
                            "accepted types: command, shell, docker, hitl, jq, http, mail, ssh, sftp, archive, sqlite, postgres",
                        ),
                    );
                    return local;
                };
                (t, ef.get("config"))
            } else {
                (exec, None)
            }
        }
        (None, Some(t)) => (t, f.get("config")),
        (None, None) => {
            if let Some(span) = f.key_span("config").filter(|_| f.has("config")) {
                d.error(
                    span,
                    "`config` needs an executor `type` (e.g. `type: docker`)",
                );
            }
            return local;
        }
    };
    let Some(kind) = d.string(type_node, "the executor type") else {
        return local;
    };
    match kind.as_str() {
        "command" | "shell" | "" => {
            if let Some(config) = config {
                d.warning(
                    config.at(),
                    format!("the `{kind}` executor takes no `config`; it is ignored"),
                );
            }
            Executor::Local { explicit: true }
        }
        "docker" | "container" => {
            let docker = match config {
                Some(config) => super::docker::docker_step(d, config),
                None => DockerStep::default(),
            };
            if !shared && docker.image.is_none() && docker.container_name.is_none() {
                d.diags.push(
                    Diagnostic::error(
                        config.map_or(type_node.at(), |c| c.at()),
                        "a docker step needs `image`, `containerName`, or both in its `config`",
                    )
                    .with_help(
                        "`image` creates a new container; `containerName` execs into a running one",
                    ),
                );
            }
            Executor::Docker(Box::new(docker))
        }
        "hitl" => Executor::Approval(Box::new(approval_fields(d, config, "the `hitl` config"))),
        "jq" => Executor::Jq(Box::new(d.jq_step(config))),
        "archive" => Executor::Archive(Box::new(d.archive_step(config, type_node))),
        "file" if d.v2 => Executor::File(Box::new(d.file_step(config, type_node))),
        "enqueue" if d.v2 => Executor::Enqueue(Box::new(enqueue_step(d, config, type_node))),
        "emit" if d.v2 => Executor::Emit(Box::new(emit_step(config))),
        "wait" if d.v2 => match wait_step(d, config, type_node) {
            Some(w) => Executor::Wait(Box::new(w)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "sftp" => Executor::Sftp(Box::new(d.sftp_step(config, type_node))),
        "redis" if d.v2 => match super::data::redis_step(d, config, type_node) {
            Some(step) => Executor::Redis(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "git-checkout" if d.v2 => match super::data::git_checkout(d, config, type_node) {
            Some(step) => Executor::GitCheckout(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "template" if d.v2 => match super::data::template_step(d, config, type_node) {
            Some(step) => Executor::Template(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "data" if d.v2 => match super::data::data_step(d, config, type_node) {
            Some(step) => Executor::Data(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "human-task" if d.v2 => {
            let get = |k: &str| {
                config
                    .and_then(Node::as_map)
                    .and_then(|m| m.iter().find(|e| e.key.as_str() == Some(k)))
                    .map(|e| &e.value)
            };
            let prompt = get("prompt")
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_owned();
            let form = get("form").and_then(|n| crate::form::read(n, "with.form", &mut d.diags));
            Executor::HumanTask(Box::new(crate::model::HumanTask { prompt, form }))
        }
        "git-worktree" if d.v2 => match super::data::git_worktree(d, config, type_node) {
            Some(step) => Executor::GitWorktree(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "state" if d.v2 => match super::state::state_step(d, config, type_node) {
            Some(step) => Executor::State(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "s3" if d.v2 => match super::data::s3_step(d, config, type_node) {
            Some(step) => Executor::S3(Box::new(step)),
            None => Executor::Emit(Box::new(Emit::Noop)),
        },
        "router" if d.v2 => {
            Executor::Router(Box::new(super::router::router_step(d, config, type_node)))
        }
        "sqlite" | "postgres" => {
            let has_command = f.has("command") || f.has("script");
            Executor::Sql(Box::new(super::sql::sql_step(
                d,
                &kind,
                config,
                type_node,
                has_command,
            )))
        }
        "http" => Executor::Http(Box::new(d.http_step(config))),
        "mail" => Executor::Mail(Box::new(d.mail_step(config, type_node))),
        "ssh" => Executor::Ssh(Box::new(
            config
                .map(|c| d.ssh(c, "the `ssh` config"))
                .unwrap_or_default(),
        )),
        other if FOREIGN_EXECUTORS.contains(&other) => {
            d.diags.push(
                Diagnostic::error(
                    type_node.at(),
                    format!("the `{other}` executor is not supported by wharf"),
                )
                .with_help("wharf runs steps on the host (`command`), in containers (`docker`), over `ssh` and `sftp`, and `jq`, `http`, `mail`, `archive`, `sqlite`, `postgres` and `hitl` steps"),
            );
            local
        }
        other => {
            d.enum_error(
                type_node,
                "the executor type",
                other,
                &[
                    "command", "shell", "docker", "hitl", "jq", "http", "mail", "ssh", "sftp",
                    "archive", "sqlite", "postgres",
                ],
            );
            local
        }
    }
}

/// The most characters a step name or id has (as in Dagu).
const MAX_NAME: usize = 40;

/// Words a step id cannot be: they name other things in a reference (`${id.stdout}`).
const RESERVED_IDS: &[&str] = &[
    "env", "params", "args", "stdout", "stderr", "output", "outputs",
];

/// A step id: a letter, then letters, digits, `_` and `-`; at most 40; not a reserved word.
fn check_id(d: &mut Decoder, id: &str, span: Span) {
    let mut chars = id.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !well_formed {
        d.diags.push(
            Diagnostic::error(span, format!("invalid step id `{id}`"))
                .with_help("an id starts with a letter, then letters, digits, `_` and `-`"),
        );
    } else if id.chars().count() > MAX_NAME {
        d.error(span, format!("a step id is at most {MAX_NAME} characters"));
    } else if RESERVED_IDS.contains(&id) {
        d.diags.push(
            Diagnostic::error(span, format!("`{id}` is a reserved word, not a step id"))
                .with_help(format!("reserved: {}", RESERVED_IDS.join(", "))),
        );
    }
}

/// `command` (a line or a list), with `args` added.
fn command_of(d: &mut Decoder, f: &Fields) -> Option<CommandSpec> {
    let command = f.get("command").and_then(|n| match &n.kind {
        Kind::Seq(_) => {
            let lines = d.strings(n, "`command`");
            if lines.is_empty() {
                d.error(n.at(), "`command` must not be an empty list");
                None
            } else {
                Some(CommandSpec::Lines(lines))
            }
        }
        Kind::Map(_) => {
            d.expected(n, "`command`", "a string or a list");
            None
        }
        _ => d.string(n, "`command`").map(CommandSpec::Line),
    });
    let Some(args_node) = f.get("args") else {
        return command;
    };
    let args = d.strings(args_node, "`args`");
    match command {
        Some(CommandSpec::Line(line)) => match shell_words::split(&line) {
            Ok(mut argv) => {
                argv.extend(args);
                Some(CommandSpec::Argv(argv))
            }
            Err(_) => {
                d.error(args_node.at(), "`command` has an unmatched quote");
                None
            }
        },
        Some(CommandSpec::Lines(_)) => {
            d.error(
                args_node.at(),
                "`args` go with a single `command`, not a list of commands",
            );
            None
        }
        Some(CommandSpec::Argv(mut argv)) => {
            argv.extend(args);
            Some(CommandSpec::Argv(argv))
        }
        None => {
            d.error(args_node.at(), "`args` needs a `command` to pass them to");
            None
        }
    }
}

/// `call` (or `run`), with the step's `params` and `parallel`.
fn call(d: &mut Decoder, f: &Fields, executor: &Executor) -> Option<Call> {
    if !d.v2
        && let Some(span) = f.key_span("foreach")
    {
        d.diags.push(
            Diagnostic::error(span, "`foreach` (a body of steps run per item) is Dagu 2.x")
                .with_help("in Dagu 1.x a step runs a sub-DAG per item with `call` and `parallel`"),
        );
    }
    if f.has("call") && f.has("run") {
        if let Some(span) = f.key_span("run") {
            d.error(
                span,
                "`call` and `run` are both set; `run` is the old name of `call`: keep one",
            );
        }
        return None;
    }
    let key = if f.has("run") { "run" } else { "call" };
    let Some(node) = f.get(key) else {
        for other in ["params", "parallel"] {
            if let Some(span) = f.key_span(other) {
                d.diags.push(
                    Diagnostic::error(
                        span,
                        format!("`{other}` belongs to a step that runs a sub-DAG"),
                    )
                    .with_help("add `call: NAME` with the DAG the step runs"),
                );
            }
        }
        return None;
    };
    let target = d.string(node, &format!("`{key}`"))?;
    if target.trim().is_empty() {
        d.error(node.at(), format!("`{key}` names no DAG"));
        return None;
    }
    for other in ["command", "script"] {
        if let Some(span) = f.key_span(other) {
            d.diags.push(
                Diagnostic::error(
                    span,
                    format!("a step with `{key}` runs a sub-DAG: it has no `{other}`"),
                )
                .with_help("put the command in a step of its own"),
            );
        }
    }
    if !matches!(executor, Executor::Local { explicit: false }) {
        d.error(
            node.at(),
            format!("a step with `{key}` runs a sub-DAG: it has no executor"),
        );
    }
    let params = match f.get("params") {
        None => CallParams::None,
        Some(p) => match &p.kind {
            Kind::Map(entries) => CallParams::Pairs(call_pairs(d, entries)),
            Kind::Seq(items) => {
                let mut pairs = Vec::new();
                for item in items {
                    match &item.kind {
                        Kind::Map(entries) => pairs.extend(call_pairs(d, entries)),
                        _ => d.expected(item, "an item of `params`", "`NAME: value`"),
                    }
                }
                CallParams::Pairs(pairs)
            }
            _ => match d.string(p, "`params`") {
                Some(line) if shell_words::split(&line).is_err() => {
                    d.error(p.at(), "`params` has an unmatched quote");
                    CallParams::None
                }
                Some(line) => CallParams::Line(line),
                None => CallParams::None,
            },
        },
    };
    let parallel = f.get("parallel").and_then(|p| parallel(d, p));
    let foreach = f.get("foreach").and_then(foreach);
    Some(Call {
        target: target.trim().to_owned(),
        params,
        parallel,
        foreach,
    })
}

/// The `foreach` a Dagu 2.x `foreach` step is rewritten to (beside `call` and
/// `parallel`): `as`, `key` and `collect`, checked where the step was read.
fn foreach(node: &Node) -> Option<Foreach> {
    let entries = node.as_map()?;
    let text = |k: &str| {
        entries
            .iter()
            .find(|e| e.key.as_str() == Some(k))
            .and_then(|e| e.value.as_str())
            .map(str::to_owned)
    };
    let collect = entries
        .iter()
        .find(|e| e.key.as_str() == Some("collect"))
        .and_then(|e| e.value.as_map())
        .map(|pairs| {
            pairs
                .iter()
                .map(|e| {
                    let name = e.key.as_str().unwrap_or_default().to_owned();
                    (name, e.value.as_str().unwrap_or_default().to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Foreach {
        name: text("as").unwrap_or_else(|| "item".into()),
        key: text("key"),
        collect,
    })
}

/// `log.write`, `outputs.write`, `noop` as the reading of the 2.x forms wrote them (and
/// checked them): `{log: MESSAGE}`, `{values: {NAME: value}}` or `{noop: true}`.
fn emit_step(config: Option<&Node>) -> Emit {
    let entries = config.and_then(Node::as_map).unwrap_or_default();
    let get = |k: &str| entries.iter().find(|e| e.key.as_str() == Some(k));
    if let Some(e) = get("log") {
        return Emit::Log(e.value.as_str().unwrap_or_default().to_owned());
    }
    if let Some(values) = get("values").and_then(|e| e.value.as_map()) {
        return Emit::Outputs(
            values
                .iter()
                .map(|v| {
                    let name = v.key.as_str().unwrap_or_default().to_owned();
                    (name, v.value.as_str().unwrap_or_default().to_owned())
                })
                .collect(),
        );
    }
    Emit::Noop
}

/// `action: wait.*`'s `with` (the kind of wait as `op`): what each kind takes, durations
/// and times checked when they are written out (not made of variables).
fn wait_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> Option<WaitStep> {
    const KEYS: Keys = Keys {
        known: &[
            "op",
            "duration",
            "until",
            "path",
            "state",
            "pollInterval",
            "url",
            "method",
            "status",
            "headers",
            "body",
            "requestTimeout",
        ],
        ignored: &[],
        unsupported: &[],
    };
    let config = config?;
    let f = d.fields(config, "`with`", &KEYS)?;
    let op = d.opt_string(&f, "op").unwrap_or_default();
    let takes: &[&str] = match op.as_str() {
        "duration" => &["duration"],
        "until" => &["until"],
        "file" => &["path", "state", "pollInterval"],
        "http" => &[
            "url",
            "method",
            "status",
            "headers",
            "body",
            "pollInterval",
            "requestTimeout",
        ],
        other => {
            d.diags.push(
                Diagnostic::error(at.at(), format!("wharf has no action `wait.{other}`"))
                    .with_help(
                        "the wait actions are wait.duration, wait.until, wait.file and wait.http",
                    ),
            );
            return None;
        }
    };
    for (key, e) in f.entries() {
        if key != "op" && !takes.contains(&key) {
            d.diags.push(
                Diagnostic::error(
                    e.key.span,
                    format!(
                        "`wait.{op}` has no `with.{}`",
                        e.key.as_str().unwrap_or_default()
                    ),
                )
                .with_help(format!(
                    "`wait.{op}` takes `with.{}`",
                    takes.join("`, `with.")
                )),
            );
        }
    }
    let duration = |d: &mut Decoder, key: &str, default: &str| -> String {
        let Some(node) = f.get(key) else {
            return default.to_owned();
        };
        let text = d.string(node, &format!("`{key}`")).unwrap_or_default();
        if !text.contains('$') && formats::go_duration(&text).is_none() {
            d.diags.push(
                Diagnostic::error(node.at(), format!("`{text}` is not a duration"))
                    .with_help("write a duration such as `500ms`, `30s`, `5m` or `1h30m`"),
            );
        }
        text
    };
    let required = |d: &mut Decoder, key: &str| -> Option<String> {
        match f.get(key) {
            Some(node) => d
                .string(node, &format!("`with.{key}`"))
                .filter(|t| !t.trim().is_empty()),
            None => {
                d.error(at.at(), format!("`wait.{op}` needs `with.{key}`"));
                None
            }
        }
    };
    Some(match op.as_str() {
        "duration" => {
            required(d, "duration")?;
            WaitStep::Duration(duration(d, "duration", "0s"))
        }
        "until" => {
            let until = required(d, "until")?;
            if !until.contains('$') && until.parse::<jiff::Timestamp>().is_err() {
                d.diags.push(
                    Diagnostic::error(
                        f.get("until").map_or(at.at(), |n| n.at()),
                        format!("`{until}` is not a time"),
                    )
                    .with_help("write an RFC 3339 time such as `2030-01-02T03:04:05Z`"),
                );
            }
            WaitStep::Until(until)
        }
        "file" => {
            let path = required(d, "path")?;
            let missing = match f
                .get("state")
                .and_then(|n| d.string(n, "`state`"))
                .as_deref()
            {
                None | Some("exists") => false,
                Some("missing") => true,
                Some(other) => {
                    d.error(
                        f.get("state").map_or(at.at(), |n| n.at()),
                        format!("`state` is exists or missing, found `{other}`"),
                    );
                    false
                }
            };
            WaitStep::File {
                path,
                missing,
                poll: duration(d, "pollInterval", "1s"),
            }
        }
        _ => {
            let url = required(d, "url")?;
            let status = match f.get("status") {
                None => 200,
                Some(n) => match d.uint(n, "`status`", false) {
                    Some(s @ 100..=599) => s as u16,
                    _ => {
                        d.error(n.at(), "`status` is an HTTP status, 100 to 599");
                        200
                    }
                },
            };
            WaitStep::Http(Box::new(WaitHttp {
                method: d.opt_string(&f, "method").unwrap_or_else(|| "GET".into()),
                url,
                status,
                headers: f
                    .get("headers")
                    .map(|n| d.string_map(n, "`headers`"))
                    .unwrap_or_default(),
                body: d.opt_string(&f, "body"),
                poll: duration(d, "pollInterval", "1s"),
                request_timeout: duration(d, "requestTimeout", "10s"),
            }))
        }
    })
}

/// `action: dag.enqueue`'s `with`: `dag` and `params` (a line of words or a mapping).
fn enqueue_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> EnqueueStep {
    const KEYS: Keys = Keys {
        known: &["dag", "params", "parallel", "queue"],
        ignored: &[],
        unsupported: &[],
    };
    let mut step = EnqueueStep::default();
    let empty = super::empty_with(at);
    let Some(f) = d.fields(config.unwrap_or(&empty), "`with` of `dag.enqueue`", &KEYS) else {
        return step;
    };
    match d.opt_string(&f, "dag") {
        Some(dag) if !dag.trim().is_empty() => step.dag = dag.trim().to_owned(),
        _ => d.error(
            config.map_or(at.at(), Node::at),
            "`dag.enqueue` needs `with.dag`: the DAG to enqueue",
        ),
    }
    step.params = match f.get("params") {
        None => CallParams::None,
        Some(p) => match &p.kind {
            Kind::Map(entries) => CallParams::Pairs(call_pairs(d, entries)),
            _ => d
                .string(p, "`params`")
                .map_or(CallParams::None, CallParams::Line),
        },
    };
    step.parallel = f.get("parallel").and_then(|p| parallel(d, p));
    step.queue = match d.opt_string(&f, "queue").map(|q| q.trim().to_owned()) {
        Some(q) if q.is_empty() => {
            if let Some(at) = f.get("queue") {
                d.error(
                    at.at(),
                    "`queue` is empty: name the queue the runs wait in, or remove it",
                );
            }
            None
        }
        other => other,
    };
    step
}

fn call_pairs(d: &mut Decoder, entries: &[crate::yaml::Entry]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for e in entries {
        let name = e.key.as_str().unwrap_or_default();
        if !formats::is_var_name(name) {
            d.error(e.key.span, format!("invalid param name `{name}`: use letters, digits and `_`, not starting with a digit"));
            continue;
        }
        let value = match &e.value.kind {
            Kind::Scalar(_) if e.value.is_null() => String::new(),
            Kind::Scalar(s) => s.text.clone(),
            _ => e.value.to_json().to_string(),
        };
        pairs.push((name.to_owned(), value));
    }
    pairs
}

/// The most children a `parallel` step runs at once, as in Dagu.
const MAX_CONCURRENT: u64 = 1000;

fn parallel(d: &mut Decoder, node: &Node) -> Option<Parallel> {
    let items_of = |d: &mut Decoder, n: &Node| -> Option<ParallelItems> {
        match &n.kind {
            Kind::Seq(items) => Some(ParallelItems::List(
                items.iter().map(Node::to_json).collect(),
            )),
            Kind::Map(_) => {
                d.expected(
                    n,
                    "`parallel` items",
                    "a list, or a reference such as `${ITEMS}`",
                );
                None
            }
            _ => d.string(n, "`parallel` items").map(ParallelItems::Text),
        }
    };
    match &node.kind {
        Kind::Map(_) => {
            let f = d.fields(node, "`parallel`", &PARALLEL_KEYS)?;
            let items = match f.get("items") {
                Some(n) => items_of(d, n)?,
                None => {
                    d.error(node.at(), "`parallel` has no `items`");
                    return None;
                }
            };
            let max_concurrent = match f.get("maxConcurrent") {
                None => 10,
                Some(n) => {
                    let v = d.uint(n, "`maxConcurrent`", true)?;
                    if v == 0 || v > MAX_CONCURRENT {
                        d.error(
                            n.at(),
                            format!("`maxConcurrent` is from 1 to {MAX_CONCURRENT}; found {v}"),
                        );
                        return None;
                    }
                    usize::try_from(v).unwrap_or(10)
                }
            };
            Some(Parallel {
                items,
                max_concurrent,
            })
        }
        _ => Some(Parallel {
            items: items_of(d, node)?,
            max_concurrent: 10,
        }),
    }
}

/// Dagu 2.x `outputs: [{name, type}]` (a step with them needs an `id`).
fn declared_outputs(
    d: &mut Decoder,
    node: &Node,
    key: crate::diag::Span,
    id: Option<&str>,
) -> Vec<DeclaredOutput> {
    const KEYS: Keys = Keys {
        known: &["name", "type"],
        ignored: &[],
        unsupported: &[],
    };
    if !d.v2 {
        d.diags.push(
            Diagnostic::error(
                key,
                "`outputs` (values published through DAGU_OUTPUT_FILE) is Dagu 2.x",
            )
            .with_help("in Dagu 1.x a step captures its stdout with `output: NAME`"),
        );
        return Vec::new();
    }
    if id.is_none() {
        d.diags.push(
            Diagnostic::error(key, "a step with `outputs` needs an `id`: later steps read them as `${steps.ID.outputs.NAME}`")
                .with_help("add `id: build` (letters, digits and `_`)"),
        );
    }
    let Some(items) = node.as_seq().filter(|i| !i.is_empty()) else {
        if node.as_seq().is_some() {
            d.error(node.at(), "`outputs` must be a non-empty list of outputs (`- name: NAME`), found an empty list");
        } else {
            d.expected(
                node,
                "`outputs`",
                "a non-empty list of outputs (`- name: NAME`)",
            );
        }
        return Vec::new();
    };
    let mut out: Vec<DeclaredOutput> = Vec::new();
    for item in items {
        // `- NAME` is the short form of `- name: NAME`.
        let (name, json) = if item.as_map().is_some() {
            let Some(f) = d.fields(item, "an output", &KEYS) else {
                continue;
            };
            let json = match d.opt_string(&f, "type").as_deref() {
                None | Some("string") => false,
                Some("json") => true,
                Some(other) => {
                    if let Some(n) = f.get("type") {
                        d.enum_error(n, "type", other, &["string", "json"]);
                    }
                    false
                }
            };
            (d.opt_string(&f, "name"), json)
        } else {
            (d.string(item, "an output"), false)
        };
        let Some(name) = name else {
            d.error(item.at(), "an output needs a `name`");
            continue;
        };
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            d.error(
                item.at(),
                format!("`{name}` is not an output name: a letter, then letters, digits and `_`"),
            );
        } else if out.iter().any(|o| o.name == name) {
            d.error(item.at(), format!("the output `{name}` is declared twice"));
        } else {
            out.push(DeclaredOutput { name, json });
        }
    }
    out
}

/// What a person is asked and gives (`hitl`'s `config`, a 2.x step's `approval`): the
/// prompt, the inputs, the required ones among them.
fn approval_fields(d: &mut Decoder, config: Option<&Node>, what: &str) -> Approval {
    let mut approval = Approval::default();
    if let Some(config) = config
        && let Some(cf) = d.fields(config, what, &APPROVAL_KEYS)
    {
        approval.prompt = d.opt_string(&cf, "prompt");
        approval.input = cf
            .get("input")
            .map(|n| d.strings(n, "`input`"))
            .unwrap_or_default();
        approval.required = cf
            .get("required")
            .map(|n| d.strings(n, "`required`"))
            .unwrap_or_default();
        for name in approval.input.iter().chain(&approval.required) {
            if !formats::is_var_name(name) {
                d.error(
                    config.at(),
                    format!("the input `{name}` is not a variable name (letters, digits, `_`)"),
                );
            }
        }
        if let Some(missing) = approval
            .required
            .iter()
            .find(|r| !approval.input.contains(r))
        {
            d.error(
                cf.get("required").map_or(config.at(), Node::at),
                format!("the required input `{missing}` is not one of `input`"),
            );
        }
    }
    approval
}

#[cfg(test)]
mod tests {
    use super::super::with_node;
    use super::*;

    #[test]
    fn a_string_is_a_command_and_a_mapping_a_step() {
        let (s, errors) = with_node("echo hi", |d, n| step(d, n, false));
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.expect("a step");
        assert!(s.step.generated_name && s.depends.is_none());
        let (s, errors) = with_node(
            "name: build\ncommand: make\ndepends: [fetch]\nretryPolicy: {limit: 2, intervalSec: 1}\n",
            |d, n| step(d, n, false),
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.expect("a step");
        assert_eq!(s.step.name, "build");
        assert_eq!(s.depends.map(|d| d.len()), Some(1));
        assert_eq!(s.step.retry.map(|r| r.limit), Some(2));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let (_, errors) = with_node("name: a\ncomand: make\n", |d, n| step(d, n, false));
        assert!(errors.iter().any(|e| e.contains("comand")), "{errors:?}");
        let (_, errors) = with_node("name: a\ncommand: make\ntimeoutSec: soon\n", |d, n| {
            step(d, n, false)
        });
        assert!(
            errors.iter().any(|e| e.contains("timeoutSec")),
            "{errors:?}"
        );
    }

    #[test]
    fn parallel_groups_share_an_item() {
        let (raw, errors) = with_node("- [echo a, echo b]\n- echo c\n", |d, n| {
            steps_of(d, n, false)
        });
        assert!(errors.is_empty(), "{errors:?}");
        let items: Vec<usize> = raw.iter().map(|r| r.item).collect();
        assert_eq!(items, [0, 0, 1]);
    }
}
