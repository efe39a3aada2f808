//! The executors wharf runs in its own process (`jq`, `http`, `mail`) and the DAG's mail
//! settings (`smtp`, `mailOn`, `errorMail`, `infoMail`, `waitMail`) and where its trace
//! goes (`otel`), with Dagu's keys.

use super::keys::{Keys, OTEL_KEYS};
use super::reader::Decoder;
use crate::diag::Diagnostic;
use crate::model::{
    ArchiveStep, FileOp, FileStep, HttpStep, JqStep, MailConfig, MailOn, MailStep, Otel, Smtp,
    SshStep,
};
use crate::yaml::{Kind, Node};

pub(crate) const JQ_KEYS: Keys = Keys {
    known: &["raw"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const HTTP_KEYS: Keys = Keys {
    known: &[
        "timeout",
        "headers",
        "query",
        "body",
        "silent",
        "debug",
        "json",
        "format",
        "skipTLSVerify",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const MAIL_STEP_KEYS: Keys = Keys {
    known: &["from", "to", "subject", "message", "attachments"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const SSH_KEYS: Keys = Keys {
    known: &[
        "user",
        "host",
        "ip",
        "port",
        "key",
        "password",
        "strictHostKey",
        "knownHostFile",
        "shell",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const SMTP_KEYS: Keys = Keys {
    known: &["host", "port", "username", "password"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const MAIL_ON_KEYS: Keys = Keys {
    known: &["failure", "success", "wait"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const MAIL_CONFIG_KEYS: Keys = Keys {
    known: &["from", "to", "prefix", "attachLogs"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const ARCHIVE_KEYS: Keys = Keys {
    known: &[
        "source",
        "destination",
        "format",
        "compressionLevel",
        "overwrite",
        "stripComponents",
        "preservePaths",
        "include",
        "exclude",
        "followSymlinks",
        "verifyIntegrity",
        "dryRun",
        "continueOnError",
        "verbose",
    ],
    ignored: &[],
    unsupported: &[(
        "password",
        "wharf makes and reads zip, tar and tar.gz archives, none of which it opens with a password (7z and rar are not among them)",
    )],
};

/// The archive formats wharf makes and reads, as `format` names them.
pub(crate) const ARCHIVE_FORMATS: &[&str] = &["zip", "tar", "tar.gz", "tgz"];

/// The `with` keys of each `artifact.*` action.
fn artifact_keys(op: FileOp) -> Keys {
    let known: &'static [&'static str] = match op {
        FileOp::Write => &["path", "content", "mode", "overwrite", "atomic"],
        FileOp::Read => &["path", "format", "maxBytes"],
        _ => &["path", "pattern", "recursive", "includeDirs"],
    };
    Keys {
        known,
        ignored: &[],
        unsupported: &[],
    }
}

/// The `with` keys of each `file.*` action.
fn file_keys(op: FileOp) -> Keys {
    let known: &'static [&'static str] = match op {
        FileOp::Write => &[
            "path",
            "content",
            "mode",
            "overwrite",
            "atomic",
            "createDirs",
            "dryRun",
        ],
        FileOp::Read => &["path", "format", "maxBytes"],
        FileOp::Stat => &["path", "missingOk"],
        FileOp::Copy | FileOp::Move => &[
            "source",
            "destination",
            "recursive",
            "overwrite",
            "createDirs",
            "dryRun",
        ],
        FileOp::Delete => &["path", "recursive", "missingOk", "dryRun"],
        FileOp::Mkdir => &["path", "mode"],
        FileOp::List => &["path", "pattern", "recursive", "includeDirs"],
    };
    Keys {
        known,
        ignored: &[],
        unsupported: &[],
    }
}

impl Decoder<'_> {
    /// `action: file.OP` (Dagu 2.x): `op` and the action's `with`, checked per action.
    pub(crate) fn file_step(&mut self, config: Option<&Node>, at: &Node) -> FileStep {
        let mut file = FileStep {
            atomic: true,
            ..FileStep::default()
        };
        let internal = |k: &str| {
            config
                .and_then(Node::as_map)
                .and_then(|m| m.iter().find(|e| e.key.as_str() == Some(k)))
                .and_then(|e| e.value.as_str())
                .map(str::to_owned)
        };
        let op_name = internal("op").unwrap_or_default();
        file.artifact = internal("artifact").as_deref() == Some("true");
        let family = if file.artifact { "artifact" } else { "file" };
        let op = FileOp::ALL
            .iter()
            .find(|(n, _)| *n == op_name)
            .map(|(_, o)| *o)
            .filter(|o| !file.artifact || matches!(o, FileOp::Write | FileOp::Read | FileOp::List));
        let Some(op) = op else {
            let help = if file.artifact {
                "the artifact actions are artifact.write, artifact.read and artifact.list"
            } else {
                "the file actions are file.stat, file.read, file.write, file.copy, file.move, file.delete, file.mkdir and file.list"
            };
            self.diags.push(
                Diagnostic::error(at.at(), format!("wharf has no action `{family}.{op_name}`"))
                    .with_help(help),
            );
            return file;
        };
        file.op = op;
        let what = format!("`with` of `{family}.{op_name}`");
        let empty = super::empty_with(at);
        // `op` and `artifact` name the action, put there by the reading of the 2.x forms.
        let mut with = config.cloned().unwrap_or(empty);
        if let Kind::Map(entries) = &mut with.kind {
            entries.retain(|e| !matches!(e.key.as_str(), Some("op" | "artifact")));
        }
        let keys = if file.artifact {
            artifact_keys(op)
        } else {
            file_keys(op)
        };
        let Some(f) = self.fields(&with, &what, &keys) else {
            return file;
        };
        file.path = self.opt_string(&f, "path");
        file.source = self.opt_string(&f, "source");
        file.destination = self.opt_string(&f, "destination");
        file.content = self.opt_string(&f, "content");
        file.overwrite = self.opt_bool(&f, "overwrite").unwrap_or(false);
        file.atomic = self.opt_bool(&f, "atomic").unwrap_or(true);
        file.create_dirs = self.opt_bool(&f, "createDirs").unwrap_or(false);
        file.dry_run = self.opt_bool(&f, "dryRun").unwrap_or(false);
        file.missing_ok = self.opt_bool(&f, "missingOk").unwrap_or(false);
        file.recursive = self.opt_bool(&f, "recursive").unwrap_or(false);
        file.include_dirs = self.opt_bool(&f, "includeDirs").unwrap_or(false);
        file.pattern = self.opt_string(&f, "pattern");
        if let Some(n) = f.get("maxBytes") {
            file.max_bytes = self.uint(n, "`max_bytes`", true).unwrap_or(0);
        }
        if let Some(n) = f.get("format") {
            match n.as_str() {
                Some("raw") => {}
                Some("json") => file.json = true,
                _ => self.error(
                    n.at(),
                    "`format` is `raw` (the bytes) or `json` (the content with its metadata)",
                ),
            }
        }
        if let Some(n) = f.get("mode") {
            let text = n
                .as_str()
                .map(str::to_owned)
                .or_else(|| n.as_int().map(|i| i.to_string()));
            match text
                .as_deref()
                .and_then(|t| u32::from_str_radix(t.trim(), 8).ok())
            {
                Some(m) if m <= 0o7777 => file.mode = Some(m),
                _ => self.error(
                    n.at(),
                    "`mode` is permission bits in octal, such as \"0640\"",
                ),
            }
        }
        if file.artifact && file.overwrite && !file.atomic {
            self.error(
                config.map_or(at.at(), Node::at),
                "`artifact.write` with `overwrite: true` replaces the file atomically: remove `atomic: false`",
            );
        }
        let needs: &[(&str, bool)] = match op {
            // An artifact list is of the whole folder when it names no path.
            FileOp::List if file.artifact => &[],
            FileOp::Write => &[
                ("path", file.path.is_some()),
                ("content", file.content.is_some()),
            ],
            FileOp::Copy | FileOp::Move => &[
                ("source", file.source.is_some()),
                ("destination", file.destination.is_some()),
            ],
            _ => &[("path", file.path.is_some())],
        };
        for (key, given) in needs {
            if !given {
                self.error(
                    config.map_or(at.at(), Node::at),
                    format!("`{family}.{op_name}` needs `with.{key}`"),
                );
            }
        }
        file
    }

    /// `type: archive` and its `config` (`action: archive.*` and its `with`).
    pub(crate) fn archive_step(&mut self, config: Option<&Node>, at: &Node) -> ArchiveStep {
        let mut archive = ArchiveStep {
            preserve_paths: true,
            ..ArchiveStep::default()
        };
        let Some(config) = config else {
            self.error(
                at.at(),
                "an `archive` step needs `config` with at least `source`",
            );
            return archive;
        };
        let Some(f) = self.fields(config, "the `archive` config", &ARCHIVE_KEYS) else {
            return archive;
        };
        archive.source = self.opt_string(&f, "source");
        archive.destination = self.opt_string(&f, "destination");
        archive.format = self.opt_string(&f, "format");
        archive.overwrite = self.opt_bool(&f, "overwrite").unwrap_or(false);
        archive.preserve_paths = self.opt_bool(&f, "preservePaths").unwrap_or(true);
        archive.follow_symlinks = self.opt_bool(&f, "followSymlinks").unwrap_or(false);
        archive.verify_integrity = self.opt_bool(&f, "verifyIntegrity").unwrap_or(false);
        archive.dry_run = self.opt_bool(&f, "dryRun").unwrap_or(false);
        archive.continue_on_error = self.opt_bool(&f, "continueOnError").unwrap_or(false);
        archive.verbose = self.opt_bool(&f, "verbose").unwrap_or(false);
        archive.include = f
            .get("include")
            .map(|n| self.strings(n, "`include`"))
            .unwrap_or_default();
        archive.exclude = f
            .get("exclude")
            .map(|n| self.strings(n, "`exclude`"))
            .unwrap_or_default();
        if let Some(n) = f.get("stripComponents") {
            archive.strip_components = self
                .uint(n, "`stripComponents`", true)
                .and_then(|v| usize::try_from(v).ok())
                .unwrap_or(0);
        }
        if let Some(n) = f.get("compressionLevel") {
            match n.as_int() {
                Some(l) if (-1..=9).contains(&l) => archive.compression_level = Some(l),
                _ => self.error(
                    n.at(),
                    "`compressionLevel` is 0 (none) to 9 (most), or -1 for the default",
                ),
            }
        }
        if let Some(n) = f.get("format")
            && let Some(text) = n.as_str()
            && !text.contains('$')
            && !ARCHIVE_FORMATS.contains(&text.trim().to_lowercase().as_str())
        {
            self.diags.push(
                Diagnostic::error(n.at(), format!("wharf has no archive format `{text}`"))
                    .with_help("wharf makes and reads zip, tar and tar.gz (tgz) archives"),
            );
        }
        if archive.source.is_none() {
            self.error(config.at(), "an `archive` step needs `source`");
        }
        archive
    }

    pub(crate) fn jq_step(&mut self, config: Option<&Node>) -> JqStep {
        let mut jq = JqStep::default();
        if let Some(config) = config
            && let Some(f) = self.fields(config, "the `jq` config", &JQ_KEYS)
        {
            jq.raw = self.opt_bool(&f, "raw").unwrap_or(false);
        }
        jq
    }

    pub(crate) fn http_step(&mut self, config: Option<&Node>) -> HttpStep {
        let mut http = HttpStep::default();
        let Some(config) = config else { return http };
        let Some(f) = self.fields(config, "the `http` config", &HTTP_KEYS) else {
            return http;
        };
        http.headers = f
            .get("headers")
            .map(|n| self.string_map(n, "`headers`"))
            .unwrap_or_default();
        http.query = f
            .get("query")
            .map(|n| self.string_map(n, "`query`"))
            .unwrap_or_default();
        http.body = self.opt_string(&f, "body");
        http.timeout = f
            .get("timeout")
            .and_then(|n| self.uint(n, "`timeout` (seconds)", true));
        http.silent = self.opt_bool(&f, "silent").unwrap_or(false);
        http.debug = self.opt_bool(&f, "debug").unwrap_or(false);
        http.skip_tls_verify = self.opt_bool(&f, "skipTLSVerify").unwrap_or(false);
        http.json = self.opt_bool(&f, "json").unwrap_or(false);
        if let Some(node) = f.get("format") {
            match node.as_str() {
                Some("json") => http.json = true,
                Some("text") => {}
                other => self.enum_error(
                    node,
                    "`format`",
                    other.unwrap_or_default(),
                    &["text", "json"],
                ),
            }
        }
        http
    }

    pub(crate) fn mail_step(&mut self, config: Option<&Node>, at: &Node) -> MailStep {
        let mut mail = MailStep::default();
        let Some(config) = config else {
            self.diags.push(
                Diagnostic::error(at.at(), "a `mail` step needs a `config` with `to`")
                    .with_help("e.g. `config: {from: wharf@example.com, to: ops@example.com, subject: Done, message: ...}`"),
            );
            return mail;
        };
        let Some(f) = self.fields(config, "the `mail` config", &MAIL_STEP_KEYS) else {
            return mail;
        };
        mail.from = self.opt_string(&f, "from").unwrap_or_default();
        mail.to = f
            .get("to")
            .map(|n| self.strings(n, "`to`"))
            .unwrap_or_default();
        if mail.to.is_empty() {
            self.error(
                config.at(),
                "a `mail` step needs `to`: one address or a list",
            );
        }
        mail.subject = self.opt_string(&f, "subject").unwrap_or_default();
        mail.message = self.opt_string(&f, "message").unwrap_or_default();
        mail.attachments = f
            .get("attachments")
            .map(|n| self.strings(n, "`attachments`"))
            .unwrap_or_default();
        mail
    }

    /// `ssh:` (the DAG's) or an `ssh` step's `config`.
    pub(crate) fn ssh(&mut self, node: &Node, what: &str) -> SshStep {
        let Some(f) = self.fields(node, what, &SSH_KEYS) else {
            return SshStep::default();
        };
        self.ssh_fields(&f, node)
    }

    /// The connection settings among `f` (an `ssh` or `sftp` config).
    pub(crate) fn ssh_fields(&mut self, f: &super::reader::Fields, node: &Node) -> SshStep {
        if f.has("host") && f.has("ip") {
            self.error(
                node.at(),
                "`host` and `ip` are the same setting: keep `host`",
            );
        }
        let port =
            f.get("port")
                .and_then(|n| match self.uint(n, "`port`", true).map(u16::try_from) {
                    Some(Ok(p)) if p > 0 => Some(p),
                    Some(_) => {
                        self.error(n.at(), "`port` is a port number, 1 to 65535");
                        None
                    }
                    None => None,
                });
        SshStep {
            user: self.opt_string(f, "user"),
            host: self
                .opt_string(f, "host")
                .or_else(|| self.opt_string(f, "ip")),
            port,
            key: self.opt_string(f, "key"),
            password: self.opt_string(f, "password"),
            strict_host_key: self.opt_bool(f, "strictHostKey"),
            known_host_file: self.opt_string(f, "knownHostFile"),
            shell: self.opt_string(f, "shell"),
        }
    }

    pub(crate) fn smtp(&mut self, node: &Node) -> Option<Smtp> {
        let f = self.fields(node, "`smtp`", &SMTP_KEYS)?;
        let host = self.opt_string(&f, "host").unwrap_or_default();
        if host.trim().is_empty() {
            self.error(node.at(), "`smtp` needs a `host`");
        }
        let port = match f.get("port") {
            None => 25,
            Some(n) => match self.uint(n, "`port`", true).map(u16::try_from) {
                Some(Ok(p)) if p > 0 => p,
                Some(_) => {
                    self.error(n.at(), "`port` is a port number, 1 to 65535");
                    25
                }
                None => 25,
            },
        };
        Some(Smtp {
            host: host.trim().to_owned(),
            port,
            username: self.opt_string(&f, "username").filter(|u| !u.is_empty()),
            password: self.opt_string(&f, "password").filter(|p| !p.is_empty()),
        })
    }

    /// `otel`: an `endpoint` is needed when `enabled`; `timeout` a Go duration; `headers`
    /// text; `resource` scalar values.
    pub(crate) fn otel(&mut self, node: &Node) -> Option<Otel> {
        let f = self.fields(node, "`otel`", &OTEL_KEYS)?;
        let mut otel = Otel {
            enabled: self.opt_bool(&f, "enabled").unwrap_or(false),
            endpoint: self.opt_string(&f, "endpoint").unwrap_or_default(),
            insecure: self.opt_bool(&f, "insecure").unwrap_or(false),
            ..Otel::default()
        };
        let endpoint = otel.endpoint.trim().to_owned();
        if otel.enabled && endpoint.is_empty() {
            self.diags.push(
                Diagnostic::error(node.at(), "`otel` is enabled without an `endpoint`")
                    .with_help("`host:port` for OTLP over gRPC (`localhost:4317`), or `http://HOST:4318/v1/traces` for OTLP over HTTP"),
            );
        } else if (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            && !endpoint.contains("${")
            && !endpoint.trim_end_matches('/').ends_with("/v1/traces")
        {
            self.diags.push(
                Diagnostic::error(
                    f.get("endpoint").map_or(node.at(), Node::at),
                    "an OTLP over HTTP `endpoint` is the URL of the traces, ending in `/v1/traces`",
                )
                .with_help("e.g. `http://localhost:4318/v1/traces`; `host:port` is OTLP over gRPC"),
            );
        }
        if let Some(n) = f.get("timeout") {
            match n.as_str().and_then(crate::formats::go_duration) {
                Some(t) if !t.is_zero() => otel.timeout = Some(t),
                _ => self.error(n.at(), "`timeout` is a duration such as `30s` or `1m`"),
            }
        }
        for (key, what) in [
            ("headers", "`otel.headers`"),
            ("resource", "`otel.resource`"),
        ] {
            let Some(n) = f.get(key) else { continue };
            let Some(entries) = n.as_map() else {
                self.expected(n, what, "a mapping of names to values");
                continue;
            };
            for e in entries {
                let name = e.key.as_str().unwrap_or_default().to_owned();
                let value = e.value.to_json();
                match (key, &value) {
                    ("headers", serde_json::Value::String(v)) => {
                        otel.headers.push((name, v.clone()))
                    }
                    ("headers", serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                        otel.headers.push((name, value.to_string()))
                    }
                    (
                        _,
                        serde_json::Value::String(_)
                        | serde_json::Value::Number(_)
                        | serde_json::Value::Bool(_),
                    ) => otel.resource.push((name, value)),
                    _ => self.error(
                        e.value.at(),
                        format!("{what}: `{name}` is a string, a number or a boolean"),
                    ),
                }
            }
        }
        Some(otel)
    }

    pub(crate) fn mail_on(&mut self, node: &Node) -> MailOn {
        let Some(f) = self.fields(node, "`mailOn`", &MAIL_ON_KEYS) else {
            return MailOn::default();
        };
        MailOn {
            failure: self.opt_bool(&f, "failure").unwrap_or(false),
            success: self.opt_bool(&f, "success").unwrap_or(false),
            wait: self.opt_bool(&f, "wait").unwrap_or(false),
        }
    }

    pub(crate) fn mail_config(&mut self, node: &Node, what: &str) -> Option<MailConfig> {
        let f = self.fields(node, what, &MAIL_CONFIG_KEYS)?;
        let to = f
            .get("to")
            .map(|n| self.strings(n, "`to`"))
            .unwrap_or_default();
        if to.is_empty() {
            self.error(
                node.at(),
                format!("{what} needs `to`: one address or a list"),
            );
        }
        Some(MailConfig {
            from: self.opt_string(&f, "from").unwrap_or_default(),
            to,
            prefix: self.opt_string(&f, "prefix").unwrap_or_default(),
            attach_logs: self.opt_bool(&f, "attachLogs").unwrap_or(false),
        })
    }

    /// A mapping of names to strings (numbers and booleans as written).
    pub(crate) fn string_map(&mut self, node: &Node, what: &str) -> Vec<(String, String)> {
        let Kind::Map(entries) = &node.kind else {
            self.expected(node, what, "a mapping of names to values");
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| {
                let name = e.key.as_str()?.to_owned();
                let value = self.string(&e.value, &format!("`{name}` of {what}"))?;
                Some((name, value))
            })
            .collect()
    }
}

const SFTP_KEYS: Keys = Keys {
    known: &[
        // What the 2.x action says (`upload`, `download`), set by its rewrite.
        "op",
        "direction",
        "source",
        "destination",
        "user",
        "host",
        "ip",
        "port",
        "key",
        "password",
        "strictHostKey",
        "knownHostFile",
    ],
    ignored: &[],
    unsupported: &[(
        "bastion",
        "wharf connects to the host itself: reach it through a jump host with a tunnel, or run the step there",
    )],
};

impl Decoder<'_> {
    /// `type: sftp` and its `config` (`action: sftp.upload` / `sftp.download` and `with`).
    pub(crate) fn sftp_step(&mut self, config: Option<&Node>, at: &Node) -> crate::model::SftpStep {
        let mut sftp = crate::model::SftpStep {
            upload: true,
            ..Default::default()
        };
        let Some(config) = config else {
            self.error(
                at.at(),
                "an `sftp` step needs `config` with the host, `source` and `destination`",
            );
            return sftp;
        };
        let Some(f) = self.fields(config, "the `sftp` config", &SFTP_KEYS) else {
            return sftp;
        };
        sftp.ssh = self.ssh_fields(&f, config);
        sftp.source = self.opt_string(&f, "source");
        sftp.destination = self.opt_string(&f, "destination");
        let op = self.opt_string(&f, "op");
        let direction = f.get("direction").and_then(|n| {
            let d = self.string(n, "`direction`")?;
            let d = d.trim().to_ascii_lowercase();
            if d == "upload" || d == "download" {
                Some((d, n))
            } else {
                self.enum_error(n, "`direction`", &d, &["upload", "download"]);
                None
            }
        });
        match (op, direction) {
            (Some(op), Some((d, n))) if op != d => {
                self.error(
                    n.at(),
                    format!("direction must be \"{op}\" for `action: sftp.{op}` (or leave `direction` out)"),
                );
                sftp.upload = op == "upload";
            }
            (Some(op), _) => sftp.upload = op == "upload",
            (None, Some((d, _))) => sftp.upload = d == "upload",
            (None, None) => {}
        }
        sftp
    }
}
