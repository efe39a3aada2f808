//! A Dagu 1.x file written in Dagu 2.x words (`wharf dry --dialect 2` of a 1.x file): the
//! same DAG, with the language's keys in snake_case, `command` and `script` as `run`, the
//! executors as actions with their `with`, sub-DAG calls as `dag.run`, `dir` as
//! `working_dir`, and a chain said so (2.7 made `graph` the default). What the file names
//! itself (variables, params, step names, raw Docker settings) is kept as written. The
//! text is read back as 2.x before it is given: what it says is a valid 2.x file.

use std::path::Path;

use crate::decode::is_dialect_key;
use crate::diag::Span;
use crate::yaml::{self, Entry, Kind, Node, Scalar};

/// `source` (a valid Dagu 1.x file) in Dagu 2.x words; or why it cannot be.
pub fn to_v2(source: &str, path: &Path) -> Result<String, String> {
    let doc = yaml::load(source).map_err(|d| d.message)?;
    let Some(root) = doc.root else {
        return Err("the file is empty".into());
    };
    let mut texts = Vec::new();
    for (i, node) in std::iter::once(root).chain(doc.others).enumerate() {
        let mut node = node;
        document(&mut node)?;
        let mut out = String::new();
        if i > 0 {
            out.push_str("---\n");
        }
        write_value_block(&node, 0, &mut out);
        texts.push(out);
    }
    let text = texts.concat();
    // What is printed is read back as 2.x: a file wharf would refuse is not given.
    let previous = crate::dialect::chosen();
    crate::set_dialect(Some(crate::Dialect::V2));
    let loaded = crate::load_str(text.clone(), path);
    crate::set_dialect(previous);
    match loaded.diagnostics.iter().find(|d| d.is_error()) {
        Some(d) => Err(format!(
            "its 2.x spelling would not be valid ({}); write that part by hand",
            d.message
        )),
        None => Ok(text),
    }
}

fn scalar(text: &str) -> Node {
    Node {
        kind: Kind::Scalar(Scalar {
            text: text.to_owned(),
            plain: true,
        }),
        span: Span::default(),
        key: None,
    }
}

fn entry(key: &str, value: Node) -> Entry {
    Entry {
        key: scalar(key),
        value,
        merged: false,
    }
}

fn map(entries: Vec<Entry>) -> Node {
    Node {
        kind: Kind::Map(entries),
        span: Span::default(),
        key: None,
    }
}

fn take(entries: &mut Vec<Entry>, key: &str) -> Option<Node> {
    let at = entries.iter().position(|e| e.key.as_str() == Some(key))?;
    Some(entries.remove(at).value)
}

/// A document (the DAG, or a local DAG after `---`).
fn document(node: &mut Node) -> Result<(), String> {
    let Kind::Map(entries) = &mut node.kind else {
        return Err("a document is not a mapping".into());
    };
    let steps = entries
        .iter()
        .find(|e| e.key.as_str() == Some("steps"))
        .map(|e| match &e.value.kind {
            Kind::Seq(s) => s.len(),
            Kind::Map(m) => m.len(),
            Kind::Scalar(_) => 1,
        })
        .unwrap_or(0);
    // 1.x ran a file without `type` as a chain; 2.7 runs it as a graph.
    if steps > 1 && !entries.iter().any(|e| e.key.as_str() == Some("type")) {
        entries.insert(0, entry("type", scalar("chain")));
    }
    if let Some(tags) = take(entries, "tags") {
        entries.push(entry("labels", tags));
    }
    for e in entries.iter_mut() {
        let key = e.key.as_str().unwrap_or_default().to_owned();
        match key.as_str() {
            "steps" => match &mut e.value.kind {
                Kind::Seq(items) => {
                    for s in items {
                        step(s)?;
                    }
                }
                Kind::Map(named) => {
                    // 2.x steps are a list: each named step with its name.
                    let mut items = Vec::new();
                    for n in named.drain(..) {
                        let mut s = n.value;
                        if let Kind::Map(fields) = &mut s.kind
                            && !fields.iter().any(|f| f.key.as_str() == Some("name"))
                        {
                            fields.insert(0, entry("name", n.key.clone()));
                        }
                        step(&mut s)?;
                        items.push(s);
                    }
                    e.value.kind = Kind::Seq(items);
                }
                Kind::Scalar(_) => step(&mut e.value)?,
            },
            "handlerOn" => {
                if let Kind::Map(hs) = &mut e.value.kind {
                    for h in hs {
                        if h.key.as_str() == Some("cancel") {
                            h.key = scalar("abort");
                        }
                        step(&mut h.value)?;
                    }
                }
            }
            "container" => container(&mut e.value),
            // The user's names below these: only their own keys are the language's.
            "registryAuths" | "env" | "params" | "dotenv" => {}
            "smtp" | "ssh" | "secrets" => snake_keys(&mut e.value, 2),
            "precondition" => e.key = scalar("preconditions"),
            _ => snake_keys(&mut e.value, usize::MAX),
        }
        rename(&mut e.key);
    }
    Ok(())
}

/// camelCase keys of the language that the dialect's list does not name: the settings of
/// `parallel` and of the http, ssh and mail steps.
const MORE_KEYS: &[&str] = &[
    "maxConcurrent",
    "skipTLSVerify",
    "strictHostKey",
    "knownHostFile",
    "attachLogs",
    "maxActiveRuns",
];

/// A key of the language in snake_case (a key of the file's own stays as written).
fn rename(key: &mut Node) {
    if let Some(k) = key.as_str()
        && (is_dialect_key(k) || MORE_KEYS.contains(&k))
    {
        let snake = snake(k);
        if snake != k {
            *key = scalar(&snake);
        }
    }
}

/// `skipTLSVerify` as `skip_tls_verify`: a `_` where a word starts.
fn snake(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let before = chars[i - 1];
            let after = chars.get(i + 1).copied();
            if before.is_ascii_lowercase()
                || before.is_ascii_digit()
                || (before.is_ascii_uppercase() && after.is_some_and(|a| a.is_ascii_lowercase()))
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The keys of the language under `node`, `depth` levels down, in snake_case; the
/// headers and queries of a request are the user's.
fn snake_keys(node: &mut Node, depth: usize) {
    if depth == 0 {
        return;
    }
    match &mut node.kind {
        Kind::Map(entries) => {
            for e in entries {
                let own = matches!(e.key.as_str(), Some("headers" | "query" | "env"));
                rename(&mut e.key);
                if !own {
                    snake_keys(&mut e.value, depth - 1);
                }
            }
        }
        Kind::Seq(items) => items.iter_mut().for_each(|i| snake_keys(i, depth)),
        Kind::Scalar(_) => {}
    }
}

/// A container's settings (`workDir` is `working_dir`); Docker's own objects as written.
fn container(node: &mut Node) {
    let Kind::Map(entries) = &mut node.kind else {
        return;
    };
    for e in entries {
        match e.key.as_str() {
            Some("workDir") => e.key = scalar("working_dir"),
            Some("container" | "host" | "network" | "env") => {}
            _ => {
                rename(&mut e.key);
                snake_keys(&mut e.value, usize::MAX);
            }
        }
    }
}

/// A step: `command`/`script` as `run`, an executor as an action, a call as `dag.run`.
fn step(node: &mut Node) -> Result<(), String> {
    if let Kind::Scalar(s) = &node.kind {
        // `- echo hi`: a command.
        *node = map(vec![entry("run", scalar(&s.text))]);
        return Ok(());
    }
    if let Kind::Seq(group) = &mut node.kind {
        return group.iter_mut().try_for_each(step);
    }
    let Kind::Map(entries) = &mut node.kind else {
        return Ok(());
    };
    let name = entries
        .iter()
        .find(|e| e.key.as_str() == Some("name"))
        .and_then(|e| e.value.as_str())
        .unwrap_or("a step")
        .to_owned();
    let executor = take(entries, "executor");
    let (kind, config) = match executor {
        Some(e) => match &e.kind {
            Kind::Scalar(s) => (Some(s.text.clone()), None),
            Kind::Map(m) => {
                let get = |k: &str| m.iter().find(|x| x.key.as_str() == Some(k));
                (
                    get("type")
                        .and_then(|t| t.value.as_str())
                        .map(str::to_owned),
                    get("config").map(|c| c.value.clone()),
                )
            }
            Kind::Seq(_) => (None, None),
        },
        None => {
            let t = take(entries, "type").and_then(|t| t.as_str().map(str::to_owned));
            (t, take(entries, "config"))
        }
    };
    let command = take(entries, "command");
    let script = take(entries, "script");
    let call = take(entries, "call").or_else(|| take(entries, "run"));
    let params = call.as_ref().and_then(|_| take(entries, "params"));
    for e in entries.iter_mut() {
        match e.key.as_str() {
            Some("dir") => e.key = scalar("working_dir"),
            Some("precondition") => e.key = scalar("preconditions"),
            Some("container") => container(&mut e.value),
            Some("env" | "output" | "params") => {}
            _ => snake_keys(&mut e.value, usize::MAX),
        }
        rename(&mut e.key);
    }
    if let Some(target) = call {
        let mut with = vec![entry("dag", target)];
        with.extend(params.map(|p| entry("params", p)));
        entries.push(entry("action", scalar("dag.run")));
        entries.push(entry("with", map(with)));
        return Ok(());
    }
    let mut config = config.unwrap_or_else(|| map(Vec::new()));
    if !matches!(kind.as_deref(), Some("docker")) {
        snake_keys(&mut config, usize::MAX);
    }
    let with_fields = |config: Node| match config.kind {
        Kind::Map(m) => m,
        _ => Vec::new(),
    };
    match kind.as_deref() {
        None | Some("command" | "shell" | "local") => {
            match (command, script) {
                (Some(c), Some(s)) => {
                    // The command runs the script: its shell.
                    entries.push(entry("run", s));
                    entries.push(entry("with", map(vec![entry("shell", c)])));
                }
                (Some(c), None) => {
                    // A one-word command would read as a 1.x call in a file that does
                    // not otherwise tell its dialect: a list of one line is a command in
                    // either.
                    let c = match &c.kind {
                        Kind::Scalar(s) if !s.text.trim().contains(char::is_whitespace) => Node {
                            kind: Kind::Seq(vec![scalar(&s.text)]),
                            ..c
                        },
                        Kind::Seq(words) if words.len() > 1 => {
                            scalar(&line(&c).unwrap_or_default())
                        }
                        _ => c,
                    };
                    entries.push(entry("run", c));
                }
                (None, Some(s)) => entries.push(entry("run", s)),
                (None, None) => {}
            }
        }
        Some("docker") => {
            let mut with = with_fields(config);
            for w in &mut with {
                match w.key.as_str() {
                    Some("container" | "host" | "network") => {}
                    _ => {
                        rename(&mut w.key);
                        snake_keys(&mut w.value, usize::MAX);
                    }
                }
            }
            if let Some(c) = command.as_ref().and_then(line) {
                with.push(entry("command", scalar(&c)));
            }
            if script.is_some() {
                return Err(format!(
                    "the docker step `{name}` has a `script`, which a `docker.run` action does not take"
                ));
            }
            entries.push(entry("action", scalar("docker.run")));
            entries.push(entry("with", map(with)));
        }
        Some("http") => {
            let mut with = with_fields(config);
            let text = command.as_ref().and_then(line).unwrap_or_default();
            let (method, url) = text.trim().split_once(' ').unwrap_or(("GET", text.trim()));
            with.insert(0, entry("url", scalar(url.trim())));
            with.insert(0, entry("method", scalar(method)));
            entries.push(entry("action", scalar("http.request")));
            entries.push(entry("with", map(with)));
        }
        Some("jq") => {
            let mut with = with_fields(config);
            if let Some(c) = command.as_ref().and_then(line) {
                with.insert(0, entry("filter", scalar(&c)));
            }
            if let Some(s) = script {
                with.push(entry("data", s));
            }
            entries.push(entry("action", scalar("jq.filter")));
            entries.push(entry("with", map(with)));
        }
        Some("ssh") => {
            let mut with = with_fields(config);
            if let Some(c) = command {
                with.push(entry("command", c));
            }
            if let Some(s) = script {
                with.push(entry("script", s));
            }
            entries.push(entry("action", scalar("ssh.run")));
            entries.push(entry("with", map(with)));
        }
        Some("mail") => {
            entries.push(entry("action", scalar("mail.send")));
            entries.push(entry("with", map(with_fields(config))));
        }
        Some("hitl") => {
            // A 1.x step that only waits for a person: a 2.x step that does nothing and
            // then waits, with the same prompt and inputs.
            let mut approval = with_fields(config);
            for w in &mut approval {
                rename(&mut w.key);
            }
            entries.push(entry("action", scalar("noop")));
            entries.push(entry("approval", map(approval)));
        }
        Some("archive") => {
            // The command is the operation: `archive.create`, `.extract` or `.list`.
            let op = command.as_ref().and_then(line).unwrap_or_default();
            let op = op.trim();
            if !matches!(op, "create" | "extract" | "list") {
                return Err(format!(
                    "the archive step `{name}` names its operation through a variable, which a 2.x action cannot"
                ));
            }
            let mut with = with_fields(config);
            for w in &mut with {
                if let Some(k) = w.key.as_str() {
                    let snake = snake(k);
                    if snake != k {
                        w.key = scalar(&snake);
                    }
                }
            }
            entries.push(entry("action", scalar(&format!("archive.{op}"))));
            entries.push(entry("with", map(with)));
        }
        Some("sftp") => {
            // The direction is the action: `sftp.upload` (the default) or `sftp.download`.
            let mut with = with_fields(config);
            let mut op = "upload".to_owned();
            with.retain(|w| {
                if w.key.as_str() == Some("direction") {
                    if let Some(d) = w.value.as_str() {
                        op = d.trim().to_ascii_lowercase();
                    }
                    return false;
                }
                true
            });
            for w in &mut with {
                if let Some(k) = w.key.as_str() {
                    let snake = snake(k);
                    if snake != k {
                        w.key = scalar(&snake);
                    }
                }
            }
            entries.push(entry("action", scalar(&format!("sftp.{op}"))));
            entries.push(entry("with", map(with)));
        }
        Some(engine @ ("sqlite" | "postgres")) => {
            // The SQL (`command` or `script`) is `with.query`; an import is its own action.
            let mut with = with_fields(config);
            let mut import = false;
            let to_snake = |key: &mut Node| {
                if let Some(k) = key.as_str() {
                    let snake = snake(k);
                    if snake != k {
                        *key = scalar(&snake);
                    }
                }
            };
            for w in &mut with {
                to_snake(&mut w.key);
                if w.key.as_str() == Some("import") {
                    import = true;
                    if let Kind::Map(fields) = &mut w.value.kind {
                        fields.iter_mut().for_each(|f| to_snake(&mut f.key));
                    }
                }
            }
            if let Some(sql) = command.as_ref().and_then(line) {
                with.push(entry("query", scalar(&sql)));
            } else if let Some(sql) = script {
                with.push(entry("query", sql));
            }
            let op = if import { "import" } else { "query" };
            entries.push(entry("action", scalar(&format!("{engine}.{op}"))));
            entries.push(entry("with", map(with)));
        }
        Some(other) => {
            return Err(format!(
                "the step `{name}` uses the `{other}` executor, which wharf cannot write as a 2.x action"
            ));
        }
    }
    Ok(())
}

/// A command as one line: a string as it is, a list as shell words.
fn line(n: &Node) -> Option<String> {
    match &n.kind {
        Kind::Scalar(s) => Some(s.text.clone()),
        Kind::Seq(words) => Some(
            words
                .iter()
                .filter_map(Node::as_str)
                .map(shell_words::quote)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Kind::Map(_) => None,
    }
}

/// A value after a key (or a list's dash): a scalar on the same line, a mapping or a list
/// on the lines after, `indent` spaces in.
fn write_value_block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match &node.kind {
        Kind::Map(entries) if entries.is_empty() => out.push_str(&format!("{pad}{{}}\n")),
        Kind::Map(entries) => {
            for e in entries {
                out.push_str(&pad);
                out.push_str(&key_text(&e.key));
                out.push(':');
                write_after_key(&e.value, indent, out);
            }
        }
        Kind::Seq(items) if items.is_empty() => out.push_str(&format!("{pad}[]\n")),
        Kind::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                match &item.kind {
                    Kind::Map(entries) if !entries.is_empty() => {
                        // The first key on the dash's line, the others under it.
                        let mut first = String::new();
                        write_value_block(item, indent + 2, &mut first);
                        out.push(' ');
                        out.push_str(first.trim_start());
                    }
                    Kind::Seq(inner) if !inner.is_empty() => {
                        out.push('\n');
                        write_value_block(item, indent + 2, out);
                    }
                    _ => write_after_key(item, indent, out),
                }
            }
        }
        Kind::Scalar(s) => {
            out.push_str(&pad);
            out.push_str(&scalar_text(s, indent));
            out.push('\n');
        }
    }
}

fn write_after_key(value: &Node, indent: usize, out: &mut String) {
    match &value.kind {
        Kind::Scalar(s) => {
            out.push(' ');
            out.push_str(&scalar_text(s, indent));
            out.push('\n');
        }
        Kind::Map(m) if m.is_empty() => out.push_str(" {}\n"),
        Kind::Seq(s) if s.is_empty() => out.push_str(" []\n"),
        _ => {
            out.push('\n');
            write_value_block(value, indent + 2, out);
        }
    }
}

fn key_text(key: &Node) -> String {
    match &key.kind {
        Kind::Scalar(s) => scalar_text(s, 0),
        _ => "\"\"".into(),
    }
}

/// A scalar as YAML text: plain when it reads back the same, a literal block when it
/// has lines, double-quoted otherwise.
fn scalar_text(s: &Scalar, indent: usize) -> String {
    let t = &s.text;
    if t.contains('\n') {
        let body = t.strip_suffix('\n').unwrap_or(t);
        let chomp = if t.ends_with("\n\n") {
            "+"
        } else if t.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let pad = " ".repeat(indent + 2);
        let lines: Vec<String> = body
            .split('\n')
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{pad}{l}")
                }
            })
            .collect();
        if body.starts_with(' ') {
            return quoted(t);
        }
        return format!("|{chomp}\n{}", lines.join("\n"));
    }
    if s.plain || (plain_is_safe(t) && !looks_typed(t)) {
        return t.clone();
    }
    quoted(t)
}

fn plain_is_safe(t: &str) -> bool {
    !t.is_empty()
        && !t.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@`~ ".contains(c))
        && !t.ends_with([' ', ':'])
        && !t.contains(": ")
        && !t.contains(" #")
}

/// Text that YAML would read as something other than a string.
fn looks_typed(t: &str) -> bool {
    matches!(
        t.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~"
    ) || t.parse::<f64>().is_ok()
}

fn quoted(t: &str) -> String {
    let mut out = String::from("\"");
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
