//! `action: data.convert`, `data.pick`, `template.render` and `git.checkout` (Dagu 2.x)
//! and their `with`.

use super::keys::Keys;
use super::reader::Decoder;
use crate::diag::Diagnostic;
use crate::model::{
    DataFormat, DataSource, DataStep, GitCheckout, GitWorktree, RedisStep, S3Op, S3Step,
    TemplateStep,
};
use crate::yaml::{Kind, Node};

const DATA_KEYS: Keys = Keys {
    known: &[
        // `convert` or `pick`, set by the action's rewrite.
        "op",
        "from",
        "to",
        "data",
        "input",
        "select",
        "raw",
        "hasHeader",
        "headers",
        "delimiter",
        "columns",
    ],
    ignored: &[],
    unsupported: &[],
};

/// The step, or None when what it needs is missing (said where).
pub(crate) fn data_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> Option<DataStep> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let f = d.fields(config, "`with` of `data.*`", &DATA_KEYS)?;
    let pick = d.opt_string(&f, "op").as_deref() == Some("pick");
    let action = if pick { "data.pick" } else { "data.convert" };
    let format = |d: &mut Decoder, key: &str| -> Option<Option<DataFormat>> {
        let Some(n) = f.get(key) else {
            return Some(None);
        };
        let text = d.string(n, &format!("`with.{key}`"))?;
        match DataFormat::ALL
            .iter()
            .find(|(name, _)| *name == text.trim())
        {
            Some((_, fmt)) => Some(Some(*fmt)),
            None => {
                d.enum_error(
                    n,
                    &format!("`with.{key}`"),
                    &text,
                    &["json", "yaml", "csv", "tsv", "text"],
                );
                None
            }
        }
    };
    let from = format(d, "from");
    let to = format(d, "to");
    let source = match (f.get("data"), f.get("input")) {
        (Some(_), Some(_)) => {
            d.error(
                config.at(),
                format!("`action: {action}` reads `with.data` or `with.input`, not both"),
            );
            None
        }
        (None, None) => {
            d.diags.push(
                Diagnostic::error(
                    at.at(),
                    format!("`action: {action}` needs `with.data` (the data itself) or `with.input` (a file)"),
                )
                .with_help("e.g. `input: ./people.csv` with `from: csv`"),
            );
            None
        }
        (Some(n), None) => Some(match &n.kind {
            Kind::Scalar(s) => DataSource::Text(s.text.clone()),
            _ => DataSource::Value(n.to_json()),
        }),
        (None, Some(n)) => d.string(n, "`with.input`").map(DataSource::File),
    };
    let select = d.opt_string(&f, "select");
    let raw = d.opt_bool(&f, "raw").unwrap_or(false);
    if pick && select.is_none() && !f.rejected {
        d.error(
            at.at(),
            "`action: data.pick`: with.select is required (a jq path such as `.database.host`)",
        );
    }
    if !pick && let Some(span) = f.key_span("select") {
        d.error(span, "`select` belongs to `action: data.pick`");
    }
    if raw && f.has("to") {
        d.error(
            config.at(),
            "`with.raw` and `with.to` cannot be set together: raw and to are mutually exclusive",
        );
    }
    let delimiter = f.get("delimiter").and_then(|n| {
        let text = d.string(n, "`with.delimiter`")?;
        let text = if text == "\\t" { "\t".to_owned() } else { text };
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Some(c),
            _ => {
                d.error(
                    n.at(),
                    "the delimiter must be a single character (e.g. `;` or `\\t`)",
                );
                None
            }
        }
    });
    let columns = f
        .get("columns")
        .map(|n| d.strings(n, "`with.columns`"))
        .unwrap_or_default();
    let Some(Some(from)) = from else {
        if matches!(from, Some(None)) && !f.rejected {
            d.diags.push(
                Diagnostic::error(
                    at.at(),
                    format!("`action: {action}` needs `with.from`: the data's format"),
                )
                .with_help("json, yaml, csv, tsv or text"),
            );
        }
        return None;
    };
    let to = to?;
    if !pick && to.is_none() && !f.rejected {
        d.diags.push(
            Diagnostic::error(
                at.at(),
                "`action: data.convert` needs `with.to`: the format to write",
            )
            .with_help("json, yaml, csv, tsv or text"),
        );
        return None;
    }
    Some(DataStep {
        pick,
        from,
        to,
        source: source?,
        select,
        raw,
        has_header: d.opt_bool(&f, "hasHeader").unwrap_or(true),
        headers: d.opt_bool(&f, "headers").unwrap_or(true),
        delimiter,
        columns,
    })
}

const TEMPLATE_KEYS: Keys = Keys {
    known: &["template", "templateRef", "data", "output"],
    ignored: &[],
    unsupported: &[],
};

/// `template.render`: exactly one of `template` and `template_ref` (one whole `${...}`).
pub(crate) fn template_step(
    d: &mut Decoder,
    config: Option<&Node>,
    at: &Node,
) -> Option<TemplateStep> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let f = d.fields(config, "`with` of `template.render`", &TEMPLATE_KEYS)?;
    let template = d.opt_string(&f, "template");
    let template_ref = d.opt_string(&f, "templateRef");
    if template.is_some() == template_ref.is_some() {
        d.diags.push(
            Diagnostic::error(
                config.at(),
                "`action: template.render` requires exactly one of with.template or with.template_ref",
            )
            .with_help("`template` is the text; `template_ref` one reference to it, e.g. `${env.MESSAGE_TEMPLATE}`"),
        );
        return None;
    }
    if let Some(r) = &template_ref {
        let t = r.trim();
        let whole = t.starts_with("${")
            && t.ends_with('}')
            && t.matches("${").count() == 1
            && t[2..t.len() - 1]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !whole {
            d.error(
                f.key_span("templateRef").unwrap_or(config.span),
                format!("`template_ref` must be one complete scoped value reference such as `${{env.NAME}}`, not `{r}`"),
            );
            return None;
        }
    }
    let data = match f.get("data") {
        None => serde_json::Value::Object(serde_json::Map::new()),
        Some(n) if n.as_map().is_some() => n.to_json(),
        Some(n) => {
            d.expected(
                n,
                "`with.data`",
                "a mapping (what the template sees as `.`)",
            );
            return None;
        }
    };
    Some(TemplateStep {
        template,
        template_ref,
        data,
        output: d.opt_string(&f, "output"),
    })
}

const GIT_KEYS: Keys = Keys {
    known: &[
        "repository",
        "path",
        "ref",
        "depth",
        "force",
        "token",
        "username",
        "password",
        "sshKeyPath",
    ],
    ignored: &[],
    unsupported: &[(
        "sshPassphrase",
        "wharf's git runs without a terminal to ask for a passphrase: use a key without one, or an ssh-agent (SSH_AUTH_SOCK)",
    )],
};

/// `git.checkout`: `repository` and `path` required, one way of logging in at most.
pub(crate) fn git_checkout(
    d: &mut Decoder,
    config: Option<&Node>,
    at: &Node,
) -> Option<GitCheckout> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let f = d.fields(
        config,
        "`with` of `git.checkout` (invalid keys are refused)",
        &GIT_KEYS,
    )?;
    let repository = d.opt_string(&f, "repository");
    let path = d.opt_string(&f, "path");
    if repository.is_none() {
        d.error(
            at.at(),
            "`action: git.checkout`: repository is required (a URL or a local path)",
        );
    }
    if path.is_none() {
        d.error(
            at.at(),
            "`action: git.checkout`: path is required (where the checkout goes)",
        );
    }
    let step = GitCheckout {
        repository: repository?,
        path: path?,
        reference: d.opt_string(&f, "ref"),
        depth: d.opt_uint(&f, "depth").unwrap_or(0),
        force: d.opt_bool(&f, "force").unwrap_or(false),
        token: d.opt_string(&f, "token"),
        username: d.opt_string(&f, "username"),
        password: d.opt_string(&f, "password"),
        ssh_key_path: d.opt_string(&f, "sshKeyPath"),
    };
    if step.ssh_key_path.is_some() && (step.token.is_some() || step.password.is_some()) {
        d.error(
            config.at(),
            "ssh_key_path cannot be combined with token or password",
        );
    }
    if step.token.is_some() && (step.username.is_some() || step.password.is_some()) {
        d.error(
            config.at(),
            "token cannot be combined with username/password",
        );
    }
    Some(step)
}

/// The keys of a `redis.*` step's `with`: its connection settings first (the ones a
/// DAG-level `redis:` may set too), then the command's.
const REDIS_ALL: &[&str] = &[
    "url",
    "host",
    "port",
    "password",
    "username",
    "db",
    "tls",
    "tlsSkipVerify",
    "tlsCert",
    "tlsKey",
    "tlsCa",
    "mode",
    "sentinelMaster",
    "sentinelAddrs",
    "clusterAddrs",
    "maxRetries",
    "actionCommand",
    "command",
    "key",
    "keys",
    "field",
    "value",
    "values",
    "start",
    "stop",
    "ttl",
    "outputFormat",
    "nullValue",
    "pipeline",
    "script",
    "scriptFile",
    "scriptKeys",
    "scriptArgs",
    "lock",
    "lockRetry",
    "lockWait",
];

/// The connection settings of Redis, at the top (`redis:`) and in a step's `with`.
const REDIS_CONNECTION: &[&str] = REDIS_ALL.split_at(16).0;

const REDIS_KEYS: Keys = Keys {
    known: REDIS_ALL,
    ignored: &[],
    unsupported: &[],
};

/// `with` (or `redis:`) as JSON with snake_case keys, checked where a schema would check:
/// `port` 1-65535, `db` 0-15, `mode`, `output_format`.
fn redis_fields(
    d: &mut Decoder,
    node: &Node,
    what: &str,
    keys: &Keys,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let f = d.fields(node, what, keys)?;
    let mut out = serde_json::Map::new();
    for (key, entry) in f.entries() {
        let value = &entry.value;
        match key {
            "port" => match d.uint(value, "`port`", true) {
                Some(p) if (1..=65535).contains(&p) => {}
                Some(p) => d.error(
                    value.at(),
                    format!("`port` must be at most 65535 (maximum), found {p}"),
                ),
                None => {}
            },
            "db" => match d.uint(value, "`db`", true) {
                Some(n) if n <= 15 => {}
                Some(n) => d.error(
                    value.at(),
                    format!("`db` must be at most 15 (maximum), found {n}"),
                ),
                None => {}
            },
            "mode" => {
                let m = value.as_str().unwrap_or_default();
                if !["standalone", "sentinel", "cluster"].contains(&m) {
                    d.enum_error(
                        value,
                        "`mode` (enum)",
                        m,
                        &["standalone", "sentinel", "cluster"],
                    );
                }
            }
            "outputFormat" => {
                let m = value.as_str().unwrap_or_default();
                if !["json", "jsonl", "raw", "csv"].contains(&m) {
                    d.enum_error(
                        value,
                        "`output_format` (enum)",
                        m,
                        &["json", "jsonl", "raw", "csv"],
                    );
                }
            }
            _ => {}
        }
        out.insert(crate::dialect::to_snake(key), value.to_json());
    }
    Some(out)
}

/// The DAG's `redis:`: connection settings only.
pub(crate) fn redis_defaults(d: &mut Decoder, node: &Node) -> Option<serde_json::Value> {
    let keys = Keys {
        known: REDIS_CONNECTION,
        ignored: &[],
        unsupported: &[],
    };
    redis_fields(d, node, "`redis`", &keys).map(serde_json::Value::Object)
}

/// `redis.<command>`: an explicit `command` must be the action's.
pub(crate) fn redis_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> Option<RedisStep> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let mut with = redis_fields(d, config, "`with` of `redis.*`", &REDIS_KEYS)?;
    let action = with
        .remove("action_command")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Some(explicit) = with.get("command").and_then(|v| v.as_str())
        && !action.is_empty()
        && !explicit.eq_ignore_ascii_case(&action)
    {
        d.error(
            config.at(),
            format!(
                "command must be \"{action}\" for this action (`redis.{}`), not `{explicit}`",
                action.to_ascii_lowercase()
            ),
        );
        return None;
    }
    let command = if action.is_empty() {
        with.get("command")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_ascii_uppercase()
    } else {
        action
    };
    if command.is_empty() && !with.contains_key("pipeline") && !with.contains_key("script") {
        d.error(
            at.at(),
            "a `redis` step needs a command (`action: redis.get`, or `command:`)",
        );
        return None;
    }
    Some(RedisStep { command, with })
}

/// The bucket and connection settings of `s3.*` (the DAG's `s3:` has only these), then
/// what each operation takes besides them.
const S3_ALL: &[&str] = &[
    "bucket",
    "endpoint",
    "region",
    "accessKeyId",
    "secretAccessKey",
    "sessionToken",
    "profile",
    "forcePathStyle",
    "disableSsl",
    // An action's operation, which the dialect puts beside its `with`.
    "op",
    "key",
    "prefix",
    "recursive",
    "outputFormat",
    "destination",
    "source",
    "contentType",
    "storageClass",
    "metadata",
    "tags",
    "acl",
    "sse",
    "sseKmsKeyId",
];
pub(crate) const S3_CONNECTION: &[&str] = S3_ALL.split_at(9).0;

/// What an operation takes besides the connection.
fn s3_op_keys(op: S3Op) -> &'static [&'static str] {
    match op {
        S3Op::Upload => &[
            "key",
            "source",
            "contentType",
            "storageClass",
            "metadata",
            "tags",
            "acl",
            "sse",
            "sseKmsKeyId",
        ],
        S3Op::Download => &["key", "destination"],
        S3Op::List => &["prefix", "recursive", "outputFormat"],
        S3Op::Delete => &["key", "prefix", "recursive"],
    }
}

/// `s3.upload`, `s3.download`, `s3.list`, `s3.delete` and their `with` (the operation in
/// `op`); what a value must be when it is written out (not a variable) is checked here,
/// what must be there when the step runs.
pub(crate) fn s3_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> Option<S3Step> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let op = match config
        .as_map()
        .and_then(|m| m.iter().find(|e| e.key.as_str() == Some("op")))
        .and_then(|e| e.value.as_str())
    {
        Some("upload") => S3Op::Upload,
        Some("download") => S3Op::Download,
        Some("list") => S3Op::List,
        Some("delete") => S3Op::Delete,
        other => {
            d.error(
                at.at(),
                format!(
                    "wharf has no action `s3.{}`: s3.upload, s3.download, s3.list and s3.delete",
                    other.unwrap_or_default()
                ),
            );
            return None;
        }
    };
    let mut with = s3_fields(d, config, &format!("`with` of `s3.{}`", op.name()), S3_ALL)?;
    with.remove("op");
    // A key of another operation is told as such.
    for key in with.keys() {
        let camel = crate::decode::snake_to_camel(key);
        if !S3_CONNECTION.contains(&camel.as_str()) && !s3_op_keys(op).contains(&camel.as_str()) {
            d.error(config.at(), format!("`s3.{}` takes no `{key}`", op.name()));
        }
    }
    Some(S3Step { op, with })
}

/// A mapping of `s3` settings among `known` (camelCase), checked, with snake_case keys.
pub(crate) fn s3_fields(
    d: &mut Decoder,
    node: &Node,
    what: &str,
    known: &'static [&'static str],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let keys = Keys {
        known,
        ignored: &[],
        unsupported: &[
            (
                "partSize",
                "wharf sends an upload as one request (up to 5 GiB); remove `part_size`",
            ),
            (
                "concurrency",
                "wharf sends an upload as one request (up to 5 GiB); remove `concurrency`",
            ),
        ],
    };
    let f = d.fields(node, what, &keys)?;
    let mut out = serde_json::Map::new();
    for (key, entry) in f.entries() {
        let value = &entry.value;
        let variable = value.as_str().is_some_and(|t| t.contains("${"));
        match key {
            "sse" if !variable => {
                let v = value.as_str().unwrap_or_default();
                if !["AES256", "aws:kms"].contains(&v) {
                    d.enum_error(value, "`sse` (enum)", v, &["AES256", "aws:kms"]);
                }
            }
            "outputFormat" if !variable => {
                let v = value.as_str().unwrap_or_default();
                if !["json", "jsonl"].contains(&v) {
                    d.enum_error(value, "`output_format` (enum)", v, &["json", "jsonl"]);
                }
            }
            "forcePathStyle" | "disableSsl" | "recursive" if !variable => {
                if value.as_bool().is_none() {
                    d.expected(
                        value,
                        &format!("`{}`", crate::dialect::to_snake(key)),
                        "true or false",
                    );
                }
            }
            "metadata" | "tags" => {
                let ok = value.as_map().is_some_and(|m| {
                    m.iter()
                        .all(|e| matches!(e.value.kind, Kind::Scalar(_)) && !e.value.is_null())
                });
                if !ok {
                    d.expected(
                        value,
                        &format!("`{key}`"),
                        "a mapping of names to text values",
                    );
                }
            }
            _ => {
                if !matches!(value.kind, Kind::Scalar(_)) {
                    d.expected(
                        value,
                        &format!("`{}`", crate::dialect::to_snake(key)),
                        "a value",
                    );
                }
            }
        }
        let json = match (key, value.to_json()) {
            // Texts stay texts: a key `007` or a region `1` is not a number.
            ("metadata" | "tags" | "forcePathStyle" | "disableSsl" | "recursive", v) => v,
            (_, serde_json::Value::Null) => serde_json::Value::Null,
            (_, _) => serde_json::Value::String(value.as_str().unwrap_or_default().to_owned()),
        };
        out.insert(crate::dialect::to_snake(key), json);
    }
    Some(out)
}

const WORKTREE_KEYS: &[&str] = &[
    "op",
    "branch",
    "path",
    "createBranch",
    "base",
    "cleanup",
    "force",
    "deleteBranch",
    "forceDeleteBranch",
];

/// `git.worktree.add` and `git.worktree.remove` and their `with`, checked as far as what is
/// written out says (a variable is checked when the step runs).
pub(crate) fn git_worktree(
    d: &mut Decoder,
    config: Option<&Node>,
    at: &Node,
) -> Option<GitWorktree> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let keys = Keys {
        known: WORKTREE_KEYS,
        ignored: &[],
        unsupported: &[],
    };
    let f = d.fields(config, "`with` of `git.worktree.*`", &keys)?;
    let add = f.get("op").and_then(Node::as_str) == Some("add");
    let action = if add {
        "git.worktree.add"
    } else {
        "git.worktree.remove"
    };
    let takes: &[&str] = if add {
        &["op", "branch", "path", "createBranch", "base", "cleanup"]
    } else {
        &[
            "op",
            "branch",
            "path",
            "force",
            "deleteBranch",
            "forceDeleteBranch",
        ]
    };
    let before = d.diags.len();
    let mut with = serde_json::Map::new();
    for (key, e) in f.entries() {
        let snake = crate::dialect::to_snake(key);
        if !takes.contains(&key) {
            d.error(e.key.span, format!("`{action}` takes no `{snake}`"));
            continue;
        }
        let value = &e.value;
        match key {
            "op" => continue,
            "createBranch" | "force" | "deleteBranch" | "forceDeleteBranch" => {
                match value.as_bool() {
                    Some(b) => {
                        with.insert(snake, serde_json::Value::Bool(b));
                    }
                    None => d.expected(value, &format!("`{snake}`"), "true or false"),
                }
            }
            _ => match value.as_str().map(str::trim) {
                Some(t) if !t.is_empty() => {
                    if key == "cleanup"
                        && !t.contains("${")
                        && !["never", "on_success", "on_finish"].contains(&t)
                    {
                        d.enum_error(value, "`cleanup`", t, &["never", "on_success", "on_finish"]);
                    }
                    with.insert(snake, serde_json::Value::String(t.to_owned()));
                }
                _ => d.error(value.at(), format!("`{snake}` is a non-empty string")),
            },
        }
    }
    let has = |k: &str| with.contains_key(k);
    let yes = |k: &str| with.get(k).and_then(serde_json::Value::as_bool) == Some(true);
    if add {
        if has("branch") && has("base") && !yes("create_branch") {
            d.error(
                config.at(),
                "`base` with an explicit `branch` needs `create_branch: true`",
            );
        }
    } else {
        if !has("branch") && !has("path") {
            d.error(
                config.at(),
                "`git.worktree.remove` needs `branch`, `path`, or both",
            );
        }
        if yes("delete_branch") && !has("branch") {
            d.error(config.at(), "`delete_branch: true` needs `branch`");
        }
        if yes("force_delete_branch") && !yes("delete_branch") {
            d.error(
                config.at(),
                "`force_delete_branch: true` needs `delete_branch: true`",
            );
        }
    }
    (d.diags.len() == before).then_some(GitWorktree { add, with })
}
