//! From the YAML node tree to the typed [`Dag`], collecting every problem on the way.
//!
//! Each decoding function returns what it could make of its node and pushes diagnostics
//! for the rest, so that one pass reports all errors of a file. Checks that need the
//! whole DAG (dependencies, cycles) are in [`crate::graph`].

use std::collections::HashMap;
use std::path::Path;

use crate::diag::{Diagnostic, Span, did_you_mean};
use crate::docker_api::{self, Field, Shape};
use crate::formats;
use crate::model::*;
use crate::yaml::{Entry, Kind, Node};

/// A key of a mapping and how wharf treats it.
pub(crate) struct Keys {
    pub known: &'static [&'static str],
    /// Dagu keys that wharf ignores with a warning (ignoring them cannot change what runs).
    pub ignored: &'static [&'static str],
    /// Dagu keys that wharf rejects (the step could not run as written), with a hint.
    pub unsupported: &'static [(&'static str, &'static str)],
}

const ROOT_KEYS: Keys = Keys {
    known: &[
        "name",
        "description",
        "type",
        "workingDir",
        "env",
        "dotenv",
        "params",
        "steps",
        "handlerOn",
        "container",
        "registryAuths",
        "precondition",
        "preconditions",
        "timeoutSec",
        "delaySec",
        "maxActiveSteps",
        "maxCleanUpTimeSec",
        "histRetentionDays",
        "maxOutputSize",
        "schedule",
        "tags",
        "logDir",
        "shell",
    ],
    ignored: &[
        "group",
        "smtp",
        "mailOn",
        "errorMail",
        "infoMail",
        "otel",
        "maxActiveRuns",
        "queue",
        "restartWaitSec",
        "runConfig",
        "workerSelector",
        "skipIfSuccessful",
        "logOutput",
        "ssh",
    ],
    unsupported: &[
        ("secrets", "set the values with `env` or `dotenv` instead"),
        ("llm", "wharf runs commands and containers, not LLM agents"),
    ],
};

const STEP_KEYS: Keys = Keys {
    known: &[
        "name",
        "id",
        "description",
        "dir",
        "workingDir",
        "executor",
        "type",
        "config",
        "command",
        "args",
        "script",
        "shell",
        "env",
        "depends",
        "output",
        "stdout",
        "stderr",
        "continueOn",
        "retryPolicy",
        "repeatPolicy",
        "precondition",
        "preconditions",
        "signalOnStop",
        "timeoutSec",
    ],
    ignored: &["logOutput", "mailOnError", "workerSelector", "params"],
    unsupported: &[
        ("call", "sub-DAGs are not supported by wharf"),
        ("run", "sub-DAGs are not supported by wharf"),
        (
            "parallel",
            "run the variants as separate steps in a parallel group instead",
        ),
        (
            "container",
            "use `executor: {type: docker, config: {image: ...}}` for a step's own container",
        ),
        (
            "shellPackages",
            "install the packages in the image or on the host instead",
        ),
        ("llm", "wharf runs commands and containers, not LLM agents"),
        (
            "messages",
            "wharf runs commands and containers, not LLM agents",
        ),
    ],
};

const DOCKER_KEYS: Keys = Keys {
    known: &[
        "image",
        "containerName",
        "pull",
        "autoRemove",
        "platform",
        "workingDir",
        "volumes",
        "container",
        "host",
        "network",
        "exec",
    ],
    ignored: &[],
    unsupported: &[],
};

const EXEC_KEYS: Keys = Keys {
    known: &["user", "workingDir", "env", "privileged"],
    ignored: &[],
    unsupported: &[],
};

const CONTAINER_KEYS: Keys = Keys {
    known: &[
        "exec",
        "name",
        "image",
        "pullPolicy",
        "env",
        "volumes",
        "user",
        "workingDir",
        "workDir",
        "platform",
        "ports",
        "network",
        "startup",
        "command",
        "waitFor",
        "logPattern",
        "restartPolicy",
        "keepContainer",
    ],
    ignored: &[],
    unsupported: &[],
};

const HANDLER_KEYS: Keys = Keys {
    known: &["init", "success", "failure", "abort", "cancel", "exit"],
    ignored: &[],
    unsupported: &[],
};

const EXECUTOR_KEYS: Keys = Keys {
    known: &["type", "config"],
    ignored: &[],
    unsupported: &[],
};

/// The Dagu executor types wharf does not run.
const FOREIGN_EXECUTORS: &[&str] = &[
    "http",
    "mail",
    "ssh",
    "jq",
    "gha",
    "github_action",
    "github-action",
    "dag",
    "subworkflow",
    "parallel",
    "archive",
    "chat",
    "hitl",
];

/// The mapping entries of one node, looked up by their camelCase names.
pub(crate) struct Fields<'n> {
    entries: Vec<(&'static str, &'n Entry)>,
    /// A key was rejected (unknown, or of the Dagu dialect but not run by wharf), so errors
    /// that follow from it, like a missing `command` next to `call` or `comand`, are noise.
    pub rejected: bool,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| &e.value)
            .filter(|n| !n.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The key as the user wrote it, for messages.
    pub fn written(&self, key: &str) -> String {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, e)| e.key.as_str())
            .unwrap_or(key)
            .to_owned()
    }

    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| e.key.span)
    }
}

/// `working_dir` → `workingDir`.
pub(crate) fn snake_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) struct Decoder<'a> {
    pub diags: Vec<Diagnostic>,
    pub dir: &'a Path,
}

impl Decoder<'_> {
    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message));
    }

    pub fn warning(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(span, message));
    }

    fn expected(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(
            node.at(),
            format!("{what} must be {expected}, found {}", node.describe()),
        );
    }

    /// Reads a mapping's keys against `keys`: unknown keys are errors (with a hint), Dagu
    /// keys that wharf does not implement are warnings or errors, and a key written both
    /// in camelCase and in snake_case is an error.
    pub fn fields<'n>(&mut self, node: &'n Node, what: &str, keys: &Keys) -> Option<Fields<'n>> {
        let Some(entries) = node.as_map() else {
            self.expected(node, what, "a mapping");
            return None;
        };
        let mut fields: Vec<(&'static str, &'n Entry)> = Vec::with_capacity(entries.len());
        let mut rejected = false;
        for entry in entries {
            let Some(raw) = entry.key.as_str() else {
                self.error(entry.key.span, format!("{what} has an empty key"));
                continue;
            };
            if raw.starts_with("x-") {
                // Extension fields, as in Compose files: a place for anchors.
                continue;
            }
            let camel = snake_to_camel(raw);
            let Some(&canonical) = keys.known.iter().find(|k| **k == camel) else {
                if let Some(ignored) = keys.ignored.iter().find(|k| **k == camel) {
                    self.warning(
                        entry.key.span,
                        format!("`{raw}` is not supported by wharf and is ignored"),
                    );
                    let _ = ignored;
                } else if let Some((_, hint)) = keys.unsupported.iter().find(|(k, _)| *k == camel) {
                    rejected = true;
                    self.diags.push(
                        Diagnostic::error(
                            entry.key.span,
                            format!("`{raw}` is not supported by wharf"),
                        )
                        .with_help(*hint),
                    );
                } else {
                    let all = keys
                        .known
                        .iter()
                        .chain(keys.ignored)
                        .copied()
                        .chain(keys.unsupported.iter().map(|(k, _)| *k));
                    rejected = true;
                    let mut d =
                        Diagnostic::error(entry.key.span, format!("unknown key `{raw}` in {what}"));
                    d = match did_you_mean(&camel, all) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!(
                            "accepted keys: {} (and keys starting with `x-`, a place for YAML anchors)",
                            keys.known.join(", ")
                        )),
                    };
                    self.diags.push(d);
                }
                continue;
            };
            if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == canonical) {
                match (slot.1.merged, entry.merged) {
                    (true, false) => slot.1 = entry,
                    (false, true) => {}
                    _ => {
                        let first = slot.1.key.as_str().unwrap_or_default().to_owned();
                        self.diags.push(
                            Diagnostic::error(
                                entry.key.span,
                                format!("`{raw}` and `{first}` are the same key; set it once"),
                            )
                            .with_help(format!(
                                "`{first}` is at line {}; camelCase and snake_case spellings name the same field",
                                slot.1.key.span.start.line
                            )),
                        );
                    }
                }
                continue;
            }
            fields.push((canonical, entry));
        }
        Some(Fields {
            entries: fields,
            rejected,
        })
    }

    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Scalar(s) if !node.is_null() => Some(s.text.clone()),
            _ => {
                self.expected(node, what, "a string");
                None
            }
        }
    }

    pub fn opt_string(&mut self, f: &Fields, key: &str) -> Option<String> {
        let node = f.get(key)?;
        self.string(node, &format!("`{}`", f.written(key)))
    }

    pub fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let value = node.as_bool();
        if value.is_none() {
            self.expected(node, what, "true or false");
        }
        value
    }

    pub fn opt_bool(&mut self, f: &Fields, key: &str) -> Option<bool> {
        let node = f.get(key)?;
        self.bool(node, &format!("`{}`", f.written(key)))
    }

    /// A whole number ≥ 0; `lenient` also takes one written as a quoted string.
    pub fn uint(&mut self, node: &Node, what: &str, lenient: bool) -> Option<u64> {
        let value = node.as_int().or_else(|| {
            lenient
                .then(|| node.as_str().and_then(|s| s.trim().parse::<i64>().ok()))
                .flatten()
        });
        match value {
            Some(v) if v >= 0 => Some(v.unsigned_abs()),
            _ => {
                let found = match node.as_str() {
                    Some(s) => format!("`{s}`"),
                    None => node.describe().to_owned(),
                };
                self.error(
                    node.at(),
                    format!("{what} must be a whole number, 0 or more, found {found}"),
                );
                None
            }
        }
    }

    pub fn opt_uint(&mut self, f: &Fields, key: &str) -> Option<u64> {
        let node = f.get(key)?;
        self.uint(node, &format!("`{}`", f.written(key)), false)
    }

    fn exit_code(&mut self, node: &Node, what: &str) -> Option<i32> {
        let code = node
            .as_int()
            .or_else(|| node.as_str().and_then(|s| s.trim().parse().ok()));
        match code
            .and_then(|c| i32::try_from(c).ok())
            .filter(|c| (0..=255).contains(c))
        {
            Some(c) => Some(c),
            None => {
                self.error(
                    node.at(),
                    format!("{what} must be an exit code from 0 to 255"),
                );
                None
            }
        }
    }

    /// An exit code or a list of them.
    fn exit_codes(&mut self, node: &Node, what: &str) -> Vec<i32> {
        match node.as_seq() {
            Some(items) => items
                .iter()
                .filter_map(|n| self.exit_code(n, what))
                .collect(),
            None => self.exit_code(node, what).into_iter().collect(),
        }
    }

    /// A string or a list of strings.
    pub fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|n| self.string(n, &format!("an item of {what}")))
                .collect(),
            _ => self.string(node, what).into_iter().collect(),
        }
    }

    /// A shell line as a string (split into words) or a list of words.
    fn words(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        match &node.kind {
            Kind::Seq(_) => Some(self.strings(node, what)),
            _ => {
                let line = self.string(node, what)?;
                match shell_words::split(&line) {
                    Ok(words) => Some(words),
                    Err(_) => {
                        self.error(node.at(), format!("{what} has an unmatched quote"));
                        None
                    }
                }
            }
        }
    }

    pub fn env(&mut self, node: &Node, what: &str) -> Vec<EnvVar> {
        let mut vars = Vec::new();
        match &node.kind {
            Kind::Map(entries) => self.env_map(entries, what, &mut vars),
            Kind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        Kind::Map(entries) => self.env_map(entries, what, &mut vars),
                        Kind::Scalar(_) if !item.is_null() => {
                            let text = item.as_str().unwrap_or_default();
                            match text.split_once('=') {
                                Some((name, value)) if formats::is_var_name(name) => vars.push(EnvVar {
                                    name: name.to_owned(),
                                    value: value.to_owned(),
                                    span: item.at(),
                                }),
                                Some((name, _)) => self.error(
                                    item.at(),
                                    format!("invalid environment variable name `{name}` in {what}: use letters, digits and `_`, not starting with a digit"),
                                ),
                                None => self.diags.push(
                                    Diagnostic::error(item.at(), format!("an item of {what} must be `NAME=value`, found `{text}`"))
                                        .with_help("write `NAME=value`, or a mapping `NAME: value`"),
                                ),
                            }
                        }
                        _ => self.expected(
                            item,
                            &format!("an item of {what}"),
                            "`NAME=value` or a mapping",
                        ),
                    }
                }
            }
            _ => self.expected(node, what, "a mapping or a list of `NAME=value`"),
        }
        vars
    }

    fn env_map(&mut self, entries: &[Entry], what: &str, vars: &mut Vec<EnvVar>) {
        for entry in entries {
            let name = entry.key.as_str().unwrap_or_default();
            if !formats::is_var_name(name) {
                self.error(
                    entry.key.span,
                    format!("invalid environment variable name `{name}` in {what}: use letters, digits and `_`, not starting with a digit"),
                );
                continue;
            }
            let value = match &entry.value.kind {
                Kind::Scalar(s) if entry.value.is_null() => {
                    let _ = s;
                    String::new()
                }
                Kind::Scalar(s) => s.text.clone(),
                _ => {
                    self.expected(&entry.value, &format!("the value of `{name}`"), "a string");
                    continue;
                }
            };
            vars.push(EnvVar {
                name: name.to_owned(),
                value,
                span: entry.key.span,
            });
        }
    }

    pub fn params(&mut self, node: &Node) -> Vec<Param> {
        let mut params = Vec::new();
        match &node.kind {
            Kind::Map(entries) => {
                if entries.iter().any(|e| e.key.as_str() == Some("schema")) {
                    self.diags.push(
                        Diagnostic::error(
                            node.at(),
                            "`params` with a JSON `schema` is not supported by wharf",
                        )
                        .with_help("list the params with their defaults: `params: [NAME: value]`"),
                    );
                    return params;
                }
                self.param_map(entries, &mut params);
            }
            Kind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        Kind::Map(entries) => self.param_map(entries, &mut params),
                        _ => {
                            if let Some(text) = self.string(item, "an item of `params`") {
                                params.push(formats::param_word(&text));
                            }
                        }
                    }
                }
            }
            _ => {
                let Some(line) = self.string(node, "`params`") else {
                    return params;
                };
                match shell_words::split(&line) {
                    Ok(words) => params.extend(words.iter().map(|w| formats::param_word(w))),
                    Err(_) => self.error(node.at(), "`params` has an unmatched quote"),
                }
            }
        }
        params
    }

    fn param_map(&mut self, entries: &[Entry], params: &mut Vec<Param>) {
        for entry in entries {
            let name = entry.key.as_str().unwrap_or_default();
            if !formats::is_var_name(name) {
                self.error(entry.key.span, format!("invalid param name `{name}`: use letters, digits and `_`, not starting with a digit"));
                continue;
            }
            let value = match &entry.value.kind {
                Kind::Scalar(s) => {
                    if entry.value.is_null() {
                        String::new()
                    } else {
                        s.text.clone()
                    }
                }
                _ => entry.value.to_json().to_string(),
            };
            params.push(Param {
                name: Some(name.to_owned()),
                value,
            });
        }
    }

    pub fn conditions(&mut self, f: &Fields) -> Vec<Condition> {
        let mut out = Vec::new();
        if f.has("precondition")
            && f.has("preconditions")
            && let Some(span) = f.key_span("precondition")
        {
            self.error(
                span,
                "`precondition` and `preconditions` are both set; use `preconditions`",
            );
        }
        for key in ["precondition", "preconditions"] {
            let Some(node) = f.get(key) else { continue };
            match &node.kind {
                Kind::Seq(items) => {
                    for item in items {
                        if let Some(c) = self.condition(item) {
                            out.push(c);
                        }
                    }
                }
                _ => out.extend(self.condition(node)),
            }
        }
        out
    }

    fn condition(&mut self, node: &Node) -> Option<Condition> {
        const KEYS: Keys = Keys {
            known: &["condition", "expected", "command", "negate"],
            ignored: &[],
            unsupported: &[],
        };
        if node.as_map().is_none() {
            let command = self.string(node, "a precondition")?;
            return Some(Condition::Command {
                command,
                negate: false,
            });
        }
        let f = self.fields(node, "a precondition", &KEYS)?;
        let negate = self.opt_bool(&f, "negate").unwrap_or(false);
        let condition = self.opt_string(&f, "condition");
        let expected = self.opt_string(&f, "expected");
        let command = self.opt_string(&f, "command");
        match (condition, expected, command) {
            (Some(condition), Some(expected), None) => Some(Condition::Match {
                condition,
                expected,
                negate,
            }),
            (Some(command), None, None) | (None, None, Some(command)) => {
                Some(Condition::Command { command, negate })
            }
            (None, Some(_), None) => {
                self.error(
                    node.at(),
                    "a precondition with `expected` needs a `condition` to compare",
                );
                None
            }
            (None, None, None) => {
                self.error(
                    node.at(),
                    "a precondition needs `condition` (with `expected`) or `command`",
                );
                None
            }
            (_, _, Some(_)) => {
                self.error(
                    node.at(),
                    "a precondition takes either `command` or `condition`, not both",
                );
                None
            }
        }
    }

    pub fn platform(&mut self, node: &Node, what: &str) -> Option<Platform> {
        let text = self.string(node, what)?;
        match formats::platform(&text) {
            Ok(p) => Some(p),
            Err(why) => {
                self.diags.push(
                    Diagnostic::error(
                        node.at(),
                        format!("invalid platform `{text}` in {what}: {why}"),
                    )
                    .with_help(
                        "write os/arch[/variant], e.g. linux/amd64, linux/arm64, linux/arm/v7",
                    ),
                );
                None
            }
        }
    }

    pub fn pull(&mut self, node: &Node, what: &str) -> Option<PullPolicy> {
        if let Some(b) = node.as_bool() {
            return Some(if b {
                PullPolicy::Always
            } else {
                PullPolicy::Never
            });
        }
        let text = self.string(node, what)?;
        match text.as_str() {
            "always" => Some(PullPolicy::Always),
            "missing" => Some(PullPolicy::Missing),
            "never" => Some(PullPolicy::Never),
            _ => {
                self.enum_error(
                    node,
                    what,
                    &text,
                    &["always", "missing", "never", "true", "false"],
                );
                None
            }
        }
    }

    pub fn enum_error(&mut self, node: &Node, what: &str, found: &str, accepted: &[&str]) {
        let mut d = Diagnostic::error(
            node.at(),
            format!(
                "{what} must be one of: {}; found `{found}`",
                accepted.join(", ")
            ),
        );
        if let Some(s) = did_you_mean(found, accepted.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
    }

    pub fn volumes(&mut self, node: &Node, what: &str) -> Vec<Volume> {
        let Some(items) = node.as_seq() else {
            self.expected(node, what, "a list of `source:target[:ro|rw]`");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            let Some(text) = self.string(item, &format!("an item of {what}")) else {
                continue;
            };
            match formats::volume(&text) {
                Ok(v) => out.push(v),
                Err(why) => self.diags.push(
                    Diagnostic::error(item.at(), format!("invalid volume format `{text}`: {why}"))
                        .with_help("write source:target[:ro|rw]; a source that is absolute or starts with `.` or `~` is a bind mount, any other is a named volume"),
                ),
            }
        }
        out
    }

    /// A raw Docker API object: keys checked against the API's fields in any casing and
    /// written back in the API's casing.
    pub fn docker_object(
        &mut self,
        node: &Node,
        what: &str,
        fields: &'static [Field],
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(entries) = node.as_map() else {
            if !node.is_null() {
                self.expected(node, what, "a mapping");
            }
            return out;
        };
        let mut seen: HashMap<&'static str, &Entry> = HashMap::new();
        for entry in entries {
            let key = entry.key.as_str().unwrap_or_default();
            let Some(field) = docker_api::find(fields, key) else {
                let names = fields.iter().map(|f| f.name);
                let mut d = Diagnostic::error(
                    entry.key.span,
                    format!("unknown key `{key}` in {what}: the Docker API has no such field"),
                );
                if let Some(s) = did_you_mean(&docker_api::fold(key), names) {
                    d = d.with_help(format!(
                        "did you mean `{}` (or `{s}`)?",
                        docker_api::camel(s)
                    ));
                }
                self.diags.push(d);
                continue;
            };
            if let Some(first) = seen.get(field.name) {
                if first.merged != entry.merged {
                    // A key written in the mapping wins over one merged in with `<<`.
                    if entry.merged {
                        continue;
                    }
                } else {
                    self.error(
                        entry.key.span,
                        format!(
                            "`{key}` and `{}` are the same Docker field `{}`; set it once",
                            first.key.as_str().unwrap_or_default(),
                            field.name
                        ),
                    );
                    continue;
                }
            }
            seen.insert(field.name, entry);
            let field_what = format!("`{key}` in {what}");
            if let Some(value) = self.docker_value(&entry.value, &field_what, &field.shape) {
                out.insert(field.name.to_owned(), value);
            }
        }
        out
    }

    fn docker_value(
        &mut self,
        node: &Node,
        what: &str,
        shape: &'static Shape,
    ) -> Option<serde_json::Value> {
        use serde_json::Value;
        if node.is_null() {
            return Some(Value::Null);
        }
        match shape {
            Shape::Str => node
                .as_str()
                .map(|s| Value::String(s.to_owned()))
                .or_else(|| {
                    self.expected(node, what, "a string");
                    None
                }),
            Shape::Int => {
                let v = node
                    .as_int()
                    .or_else(|| node.as_str().and_then(|s| s.trim().parse().ok()));
                v.map(Value::from).or_else(|| {
                    self.expected(
                        node,
                        what,
                        "a whole number (sizes in bytes, times in nanoseconds)",
                    );
                    None
                })
            }
            Shape::Bool => self.bool(node, what).map(Value::Bool),
            Shape::StrList => {
                let Some(items) = node.as_seq() else {
                    self.expected(node, what, "a list of strings");
                    return None;
                };
                let items: Vec<Value> = items
                    .iter()
                    .filter_map(|n| {
                        self.string(n, &format!("an item of {what}"))
                            .map(Value::String)
                    })
                    .collect();
                Some(Value::Array(items))
            }
            Shape::StrMap => {
                let Some(entries) = node.as_map() else {
                    self.expected(node, what, "a mapping of strings");
                    return None;
                };
                let mut map = serde_json::Map::new();
                for e in entries {
                    let value = if e.value.is_null() {
                        String::new()
                    } else {
                        self.string(
                            &e.value,
                            &format!(
                                "the value of `{}` in {what}",
                                e.key.as_str().unwrap_or_default()
                            ),
                        )?
                    };
                    map.insert(
                        e.key.as_str().unwrap_or_default().to_owned(),
                        Value::String(value),
                    );
                }
                Some(Value::Object(map))
            }
            Shape::Set => match &node.kind {
                Kind::Seq(items) => {
                    let mut map = serde_json::Map::new();
                    for item in items {
                        if let Some(s) = self.string(item, &format!("an item of {what}")) {
                            map.insert(s, Value::Object(serde_json::Map::new()));
                        }
                    }
                    Some(Value::Object(map))
                }
                Kind::Map(entries) => Some(Value::Object(
                    entries
                        .iter()
                        .map(|e| {
                            (
                                e.key.as_str().unwrap_or_default().to_owned(),
                                Value::Object(serde_json::Map::new()),
                            )
                        })
                        .collect(),
                )),
                Kind::Scalar(_) => {
                    self.expected(node, what, "a list or a mapping");
                    None
                }
            },
            Shape::Struct(fields) => Some(Value::Object(self.docker_object(node, what, fields))),
            Shape::MapOf(inner) => {
                let Some(entries) = node.as_map() else {
                    self.expected(node, what, "a mapping");
                    return None;
                };
                let mut map = serde_json::Map::new();
                for e in entries {
                    let key = e.key.as_str().unwrap_or_default();
                    if let Some(v) =
                        self.docker_value(&e.value, &format!("`{key}` in {what}"), inner)
                    {
                        map.insert(key.to_owned(), v);
                    }
                }
                Some(Value::Object(map))
            }
            Shape::ListOf(inner) => {
                let Some(items) = node.as_seq() else {
                    self.expected(node, what, "a list");
                    return None;
                };
                Some(Value::Array(
                    items
                        .iter()
                        .filter_map(|n| self.docker_value(n, &format!("an item of {what}"), inner))
                        .collect(),
                ))
            }
        }
    }
}

/// Decodes the root mapping into a [`Dag`] (dependencies not yet checked).
pub(crate) fn dag(d: &mut Decoder, root: &Node, file: &Path, default_name: &str) -> Option<Dag> {
    let f = d.fields(root, "the DAG", &ROOT_KEYS)?;
    let name = d
        .opt_string(&f, "name")
        .unwrap_or_else(|| default_name.to_owned());
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
    let params = f.get("params").map(|n| d.params(n)).unwrap_or_default();
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
    let container = f.get("container").and_then(|n| container(d, n));
    let registry_auths = f
        .get("registryAuths")
        .and_then(|n| crate::auth::decode(d, n));
    let max_active_steps = f.get("maxActiveSteps").and_then(|n| {
        let v = d.uint(n, "`maxActiveSteps`", false)?;
        usize::try_from(v).ok()
    });
    let mut dag = Dag {
        name,
        file: file.to_path_buf(),
        description: d.opt_string(&f, "description"),
        kind,
        working_dir,
        env,
        dotenv,
        params,
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
        max_output_size: d.opt_uint(&f, "maxOutputSize"),
        schedule,
        tags,
        log_dir: d.opt_string(&f, "logDir"),
        shell,
    };
    if let Some(handlers) = f.get("handlerOn") {
        dag.handlers = handler_on(d, handlers, dag.container.is_some());
    }
    let shared = dag.container.is_some();
    match f.get("steps") {
        Some(steps) => {
            let raw = steps_of(d, steps, shared);
            crate::graph::link(d, &mut dag, raw);
        }
        None => {
            let span = f.key_span("steps").unwrap_or(root.at());
            d.diags.push(
                Diagnostic::error(span, "the DAG has no steps")
                    .with_help("add `steps:` with at least one step, e.g. `steps: [echo hello]`"),
            );
        }
    }
    Some(dag)
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

fn handler_on(d: &mut Decoder, node: &Node, shared: bool) -> Handlers {
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
        let raw = step(d, node, shared)?;
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
        Some(Box::new(s))
    };
    h.init = one(d, "init", "onInit");
    h.success = one(d, "success", "onSuccess");
    h.failure = one(d, "failure", "onFailure");
    h.abort = one(d, "abort", "onAbort").or_else(|| one(d, "cancel", "onCancel"));
    h.exit = one(d, "exit", "onExit");
    h
}

/// `depends` as written: None when absent, else each name with its position.
pub(crate) type Depends = Option<Vec<(String, Span)>>;

/// A step as decoded, before the chain/graph rules give it its final dependencies.
pub(crate) struct RawStep {
    pub step: Step,
    /// `depends` as written: None when absent, with the span of each name.
    pub depends: Depends,
    /// The index of the `steps` item the step came from (parallel groups share one).
    pub item: usize,
}

fn steps_of(d: &mut Decoder, node: &Node, shared: bool) -> Vec<RawStep> {
    let mut out = Vec::new();
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
                shell: None,
                env: Vec::new(),
                depends: Vec::new(),
                output: None,
                stdout: None,
                stderr: None,
                continue_on: ContinueOn::default(),
                retry: None,
                repeat: None,
                preconditions: Vec::new(),
                timeout_sec: None,
                signal_on_stop: None,
                executor: Executor::Local { explicit: false },
                span: node.at(),
            },
            depends: None,
            item: 0,
        });
    }
    let f = d.fields(node, "a step", &STEP_KEYS)?;
    let name = d.opt_string(&f, "name");
    if let (Some(n), Some(span)) = (&name, f.get("name").map(|n| n.at()))
        && n.trim().is_empty()
    {
        d.error(span, "a step name must not be empty");
    }
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
    let mut command = f.get("command").and_then(|n| match &n.kind {
        Kind::Seq(_) => {
            let argv = d.strings(n, "`command`");
            if argv.is_empty() {
                d.error(n.at(), "`command` must not be an empty list");
                None
            } else {
                Some(CommandSpec::Argv(argv))
            }
        }
        Kind::Map(_) => {
            d.expected(n, "`command`", "a string or a list");
            None
        }
        _ => d.string(n, "`command`").map(CommandSpec::Line),
    });
    if let Some(args_node) = f.get("args") {
        let args = d.strings(args_node, "`args`");
        command = match command {
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
            Some(CommandSpec::Argv(mut argv)) => {
                argv.extend(args);
                Some(CommandSpec::Argv(argv))
            }
            None => {
                d.error(args_node.at(), "`args` needs a `command` to pass them to");
                None
            }
        };
    }
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
    let executor = executor(d, &f, shared);
    let script = d.opt_string(&f, "script");
    let runs_something = f.has("command") || f.has("script");
    if !runs_something && !f.rejected && matches!(executor, Executor::Local { .. }) {
        let mut diag = Diagnostic::error(span, "the step has neither `command` nor `script`");
        diag = diag.with_help("add `command: ...` with what the step runs");
        d.diags.push(diag);
    }
    let output = f.get("output").and_then(|n| output(d, n));
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
        id: d.opt_string(&f, "id"),
        description: d.opt_string(&f, "description"),
        dir,
        command,
        script,
        shell: f.get("shell").and_then(|n| d.words(n, "`shell`")),
        env: f
            .get("env")
            .map(|n| d.env(n, "the step's `env`"))
            .unwrap_or_default(),
        depends: Vec::new(),
        output,
        stdout: d.opt_string(&f, "stdout"),
        stderr: d.opt_string(&f, "stderr"),
        continue_on: f
            .get("continueOn")
            .map(|n| continue_on(d, n))
            .unwrap_or_default(),
        retry: f.get("retryPolicy").and_then(|n| retry(d, n)),
        repeat: f.get("repeatPolicy").and_then(|n| repeat(d, n)),
        preconditions: d.conditions(&f),
        timeout_sec: d.opt_uint(&f, "timeoutSec"),
        signal_on_stop,
        executor,
        span,
    };
    Some(RawStep {
        step,
        depends,
        item: 0,
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
            formats::check_match_pattern(d, item, text);
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
                        Diagnostic::error(exec.at(), "`executor` needs a `type`")
                            .with_help("accepted types: command, shell, docker"),
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
            if shared && let Some(config) = config {
                d.warning(
                    config.at(),
                    "this step runs in the DAG-level `container`; its docker `config` is ignored",
                );
            }
            let docker = match config {
                Some(config) => docker_step(d, config),
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
        other if FOREIGN_EXECUTORS.contains(&other) => {
            d.diags.push(
                Diagnostic::error(
                    type_node.at(),
                    format!("the `{other}` executor is not supported by wharf"),
                )
                .with_help("wharf runs steps on the host (`command`) or in containers (`docker`)"),
            );
            local
        }
        other => {
            d.enum_error(
                type_node,
                "the executor type",
                other,
                &["command", "shell", "docker"],
            );
            local
        }
    }
}

fn docker_step(d: &mut Decoder, node: &Node) -> DockerStep {
    let mut s = DockerStep::default();
    let Some(f) = d.fields(node, "the docker `config`", &DOCKER_KEYS) else {
        return s;
    };
    s.image = d.opt_string(&f, "image");
    s.container_name = d.opt_string(&f, "containerName");
    if let Some(n) = f.get("pull") {
        s.pull = d.pull(n, "`pull`").unwrap_or_default();
    }
    if let Some(n) = f.get("autoRemove") {
        // The schema allows a string; accept "true"/"false" written in quotes too.
        s.auto_remove = match n.as_str() {
            Some("true") => true,
            Some("false") => false,
            _ => d.bool(n, "`autoRemove`").unwrap_or(false),
        };
    }
    s.platform = f.get("platform").and_then(|n| d.platform(n, "`platform`"));
    s.working_dir = d.opt_string(&f, "workingDir");
    s.volumes = f
        .get("volumes")
        .map(|n| d.volumes(n, "`volumes`"))
        .unwrap_or_default();
    if let Some(n) = f.get("container") {
        s.container = d.docker_object(
            n,
            "`container` (Docker container Config)",
            docker_api::CONFIG,
        );
    }
    if let Some(n) = f.get("host") {
        s.host = d.docker_object(n, "`host` (Docker HostConfig)", docker_api::HOST_CONFIG);
        if s.host.remove("AutoRemove").is_some() {
            let span = n
                .as_map()
                .and_then(|es| {
                    es.iter().find(|e| {
                        docker_api::fold(e.key.as_str().unwrap_or_default()) == "autoremove"
                    })
                })
                .map_or(n.at(), |e| e.key.span);
            d.diags.push(
                Diagnostic::warning(span, "`host.autoRemove` is ignored")
                    .with_help("set `autoRemove: true` in the step's `config` instead"),
            );
        }
    }
    if let Some(n) = f.get("network") {
        s.network = d.docker_object(
            n,
            "`network` (Docker NetworkingConfig)",
            docker_api::NETWORKING_CONFIG,
        );
    }
    if let Some(n) = f.get("exec")
        && let Some(ef) = d.fields(n, "`exec`", &EXEC_KEYS)
    {
        s.exec = ExecOptions {
            user: d.opt_string(&ef, "user"),
            working_dir: d.opt_string(&ef, "workingDir"),
            env: ef
                .get("env")
                .map(|n| d.env(n, "`exec.env`"))
                .unwrap_or_default(),
            privileged: d.opt_bool(&ef, "privileged").unwrap_or(false),
        };
    }
    s
}

fn container(d: &mut Decoder, node: &Node) -> Option<Container> {
    if let Kind::Scalar(_) = node.kind {
        // `container: NAME` execs into a running container.
        let name = d.string(node, "`container`")?;
        return Some(Container {
            exec: Some(name),
            ..Container::default()
        });
    }
    let f = d.fields(node, "`container`", &CONTAINER_KEYS)?;
    let mut c = Container {
        exec: d.opt_string(&f, "exec"),
        image: d.opt_string(&f, "image"),
        ..Container::default()
    };
    match (&c.exec, &c.image) {
        (Some(_), Some(_)) => {
            if let Some(span) = f.key_span("exec") {
                d.error(span, "`container` takes `image` (a new container) or `exec` (a running one), not both");
            }
        }
        (None, None) => d.diags.push(
            Diagnostic::error(node.at(), "the DAG-level `container` needs `image`").with_help(
                "or `exec: NAME` to run the steps in a container that is already running",
            ),
        ),
        _ => {}
    }
    if c.exec.is_some() {
        for key in CONTAINER_KEYS.known {
            if !matches!(
                *key,
                "exec" | "image" | "user" | "workingDir" | "workDir" | "env"
            ) && f.has(key)
                && let Some(span) = f.key_span(key)
            {
                d.error(
                    span,
                    format!(
                        "`{}` does not apply with `exec`: the container already exists",
                        f.written(key)
                    ),
                );
            }
        }
    }
    c.name = d.opt_string(&f, "name");
    if let Some(n) = f.get("pullPolicy") {
        c.pull_policy = d.pull(n, "`pullPolicy`").unwrap_or_default();
    }
    c.env = f
        .get("env")
        .map(|n| d.env(n, "the container's `env`"))
        .unwrap_or_default();
    c.volumes = f
        .get("volumes")
        .map(|n| d.volumes(n, "`volumes`"))
        .unwrap_or_default();
    c.user = d.opt_string(&f, "user");
    if f.has("workingDir")
        && f.has("workDir")
        && let Some(span) = f.key_span("workDir")
    {
        d.error(span, "`workDir` is the old name of `workingDir`; set one");
    }
    c.working_dir = d
        .opt_string(&f, "workingDir")
        .or_else(|| d.opt_string(&f, "workDir"));
    c.platform = f.get("platform").and_then(|n| d.platform(n, "`platform`"));
    if let Some(n) = f.get("ports") {
        match n.as_seq() {
            Some(items) => {
                for item in items {
                    let Some(text) = d.string(item, "an item of `ports`") else {
                        continue;
                    };
                    match formats::port(&text) {
                        Ok(p) => c.ports.push(p),
                        Err(why) => d.diags.push(
                            Diagnostic::error(item.at(), format!("invalid port format `{text}`: {why}"))
                                .with_help("write \"80\", \"8080:80\" or \"127.0.0.1:8080:80\", optionally with /tcp, /udp or /sctp"),
                        ),
                    }
                }
            }
            None => d.expected(n, "`ports`", "a list of port mappings"),
        }
    }
    if let Some(n) = f.get("network")
        && let Some(text) = d.string(n, "`network`")
    {
        match formats::network(&text) {
            Ok(net) => c.network = Some(net),
            Err(why) => d.diags.push(
                Diagnostic::error(n.at(), format!("invalid network `{text}`: {why}")).with_help(
                    "use bridge, host, none, container:<name|id>, or the name of a network",
                ),
            ),
        }
    }
    if let Some(n) = f.get("startup")
        && let Some(text) = d.string(n, "`startup`")
    {
        c.startup = match text.as_str() {
            "keepalive" => Startup::Keepalive,
            "entrypoint" => Startup::Entrypoint,
            "command" => Startup::Command,
            other => {
                d.enum_error(
                    n,
                    "`startup`",
                    other,
                    &["keepalive", "entrypoint", "command"],
                );
                Startup::Keepalive
            }
        };
    }
    if let Some(n) = f.get("command") {
        c.command = d.words(n, "`command`").unwrap_or_default();
    }
    if c.startup == Startup::Command && c.command.is_empty() {
        let span = f.key_span("startup").unwrap_or(node.at());
        d.error(
            span,
            "`startup: command` needs a non-empty `command` to run as the container's main process",
        );
    }
    if c.startup != Startup::Command
        && !c.command.is_empty()
        && let Some(span) = f.key_span("command")
    {
        d.diags.push(
            Diagnostic::error(span, "`command` is only used with `startup: command`")
                .with_help("add `startup: command`, or remove `command`"),
        );
    }
    if let Some(n) = f.get("waitFor")
        && let Some(text) = d.string(n, "`waitFor`")
    {
        c.wait_for = match text.as_str() {
            "running" => WaitFor::Running,
            "healthy" => WaitFor::Healthy,
            other => {
                d.enum_error(n, "`waitFor`", other, &["running", "healthy"]);
                WaitFor::Running
            }
        };
    }
    if let Some(n) = f.get("logPattern")
        && let Some(text) = d.string(n, "`logPattern`")
    {
        match regex::Regex::new(&text) {
            Ok(_) => c.log_pattern = Some(text),
            Err(e) => d.error(
                n.at(),
                format!(
                    "`logPattern` is not a valid regex: {}",
                    formats::regex_error(&e)
                ),
            ),
        }
    }
    if let Some(n) = f.get("restartPolicy")
        && let Some(text) = d.string(n, "`restartPolicy`")
    {
        c.restart_policy = match text.as_str() {
            "no" => Some(RestartPolicy::No),
            "always" => Some(RestartPolicy::Always),
            "unless-stopped" => Some(RestartPolicy::UnlessStopped),
            other => {
                d.enum_error(
                    n,
                    "restartPolicy",
                    other,
                    &["no", "always", "unless-stopped"],
                );
                None
            }
        };
    }
    if let (Some(Network::Host), Some(span)) = (&c.network, f.key_span("ports"))
        && !c.ports.is_empty()
    {
        d.warning(
            span,
            "`ports` are not published with `network: host`: the container uses the host's ports directly",
        );
    }
    c.keep_container = d.opt_bool(&f, "keepContainer").unwrap_or(false);
    Some(c)
}
