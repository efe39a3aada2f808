//! Docker: a step's docker `config`, the DAG-level `container`, and the raw Docker API
//! objects (`container`/`host`/`network`) checked key by key.

use std::collections::HashMap;

use super::keys::*;
use super::{Decoder, Fields};
use crate::diag::{Diagnostic, did_you_mean};
use crate::docker_api::{self, Field, Shape};
use crate::formats;
use crate::model::*;
use crate::yaml::{Entry, Kind, Node};
use serde_json::Value;

pub(crate) fn docker_step(d: &mut Decoder, node: &Node) -> DockerStep {
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
    let mut local_only = Vec::new();
    if let Some(span) = f.key_span("exec") {
        local_only.push((
            span,
            "`exec` options are for a container that runs on this engine".to_owned(),
        ));
    }
    for (key, allowed) in [
        ("container", SWARM_CONFIG),
        ("host", SWARM_HOST),
        ("network", SWARM_NETWORK),
    ] {
        if let Some(n) = f.get(key) {
            raw_local_only(n, key, allowed, &mut local_only);
        }
    }
    super::swarm::settings(d, &f, local_only, &mut s);
    s
}

/// The keys of the raw Docker objects a Swarm job takes over (the rest belong to one
/// engine's containers): folded as [`docker_api::fold`] folds them.
const SWARM_CONFIG: &[&str] = &[
    "env",
    "user",
    "workingdir",
    "entrypoint",
    "cmd",
    "labels",
    "hostname",
    "stopsignal",
    "tty",
];
const SWARM_HOST: &[&str] = &["memory", "nanocpus", "binds"];
const SWARM_NETWORK: &[&str] = &["endpointsconfig"];

/// The keys of a raw Docker object that a Swarm job has no place for.
fn raw_local_only(node: &Node, what: &str, allowed: &[&str], out: &mut super::swarm::LocalOnly) {
    for e in node.as_map().unwrap_or_default() {
        let key = e.key.as_str().unwrap_or_default();
        if !allowed.contains(&docker_api::fold(key).as_str()) {
            out.push((
                e.key.span,
                format!(
                    "`{what}.{key}` sets a container of one engine; a Swarm job has no such setting"
                ),
            ));
        }
    }
}

pub(crate) fn container(d: &mut Decoder, node: &Node) -> Option<Container> {
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
    container_source(d, &f, node, &c);
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
    container_ports(d, &f, &mut c);
    container_startup(d, &f, node, &mut c);
    container_readiness(d, &f, &mut c);
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
    c.healthcheck = f.get("healthcheck").and_then(|n| healthcheck(d, n));
    if let Some(n) = f.get("shell") {
        c.shell = match &n.kind {
            Kind::Seq(_) => d.strings(n, "`shell`"),
            _ => d
                .string(n, "`shell`")
                .map(|t| shell_words::split(&t).unwrap_or_else(|_| vec![t]))
                .unwrap_or_default(),
        };
        if c.shell.len() == 1 {
            c.shell.push("-c".into());
        }
    }
    Some(c)
}

/// A step's own `container:` (Dagu 1.30): the DAG-level fields, as a docker step. With
/// `image`, a new container for the step, removed after it unless `keepContainer`; with
/// `exec` (or a string), the step runs in that running container. What only a
/// long-running DAG container does (`startup`, `command`, `waitFor`, `logPattern`,
/// `restartPolicy`) is an error here: the step's `command` is what its container runs.
pub(crate) fn step_container(d: &mut Decoder, node: &Node) -> Option<DockerStep> {
    let s = step_container_fields(d, node)?;
    Some(step_container_backend(d, node, s))
}

/// The backend of a step's `container`, and what it holds that a Swarm job cannot have.
fn step_container_backend(d: &mut Decoder, node: &Node, mut s: DockerStep) -> DockerStep {
    if node.as_map().is_none() {
        return s;
    }
    // The mapping was read (and its unknown keys reported) already: read it quietly.
    let before = d.diags.len();
    let f = d.fields(node, "`container`", &CONTAINER_KEYS);
    d.diags.truncate(before);
    let Some(f) = f else { return s };
    let mut local_only = Vec::new();
    if let Some(span) = f.key_span("ports") {
        local_only.push((
            span,
            "`ports` publish a container's ports on one engine; a Swarm job publishes none"
                .to_owned(),
        ));
    }
    if let Some(span) = f.key_span("healthcheck") {
        local_only.push((
            span,
            "a Swarm job gets no `healthcheck` from wharf: its step ends when its program does"
                .to_owned(),
        ));
    }
    let network = s
        .host
        .get("NetworkMode")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if let Some(mode) = network {
        match mode.as_str() {
            "bridge" | "host" | "none" | "default" => {
                if let Some(span) = f.key_span("network") {
                    local_only.push((span, format!("`network: {mode}` is a network of one engine; a Swarm job joins overlay networks by name")));
                }
            }
            m if m.starts_with("container:") => {
                if let Some(span) = f.key_span("network") {
                    local_only.push((
                        span,
                        "a Swarm job cannot share another container's network".to_owned(),
                    ));
                }
            }
            _ => {}
        }
    }
    super::swarm::settings(d, &f, local_only, &mut s);
    s
}

fn step_container_fields(d: &mut Decoder, node: &Node) -> Option<DockerStep> {
    for entry in node.as_map().unwrap_or_default() {
        let key = entry.key.as_str().unwrap_or_default();
        if [
            "startup",
            "command",
            "waitFor",
            "logPattern",
            "restartPolicy",
        ]
        .contains(&key)
        {
            d.diags.push(
                Diagnostic::error(
                    entry.key.at(),
                    format!("`{key}` does not apply to a step's `container`"),
                )
                .with_help("a step's container runs the step's `command`; use the DAG-level `container` for a long-running one"),
            );
        }
    }
    let c = container(d, node)?;
    if c.exec.is_none() && c.image.is_none() {
        return None;
    }
    let mut s = DockerStep {
        image: c.image.clone(),
        pull: c.pull_policy,
        auto_remove: !c.keep_container,
        platform: c.platform.clone(),
        volumes: c.volumes.clone(),
        shell: c.shell.clone(),
        ..DockerStep::default()
    };
    if let Some(name) = c.exec {
        s.container_name = Some(name);
        s.exec = ExecOptions {
            user: c.user,
            working_dir: c.working_dir,
            env: c.env,
            privileged: false,
        };
        return Some(s);
    }
    s.container_name = c.name;
    s.working_dir = c.working_dir;
    if !c.env.is_empty() {
        let env = c
            .env
            .iter()
            .map(|v| Value::String(format!("{}={}", v.name, v.value)));
        s.container
            .insert("Env".into(), Value::Array(env.collect()));
    }
    if let Some(user) = c.user {
        s.container.insert("User".into(), Value::String(user));
    }
    if let Some(h) = &c.healthcheck {
        s.container.insert("Healthcheck".into(), h.to_docker());
    }
    if !c.ports.is_empty() {
        let mut exposed = serde_json::Map::new();
        let mut bindings = serde_json::Map::new();
        for p in &c.ports {
            let key = format!("{}/{}", p.container_port, p.protocol.as_str());
            exposed.insert(key.clone(), Value::Object(serde_json::Map::new()));
            let mut binding = serde_json::Map::new();
            if let Some(ip) = &p.host_ip {
                binding.insert("HostIp".into(), Value::String(ip.clone()));
            }
            let port = p.host_port.map(|h| h.to_string()).unwrap_or_default();
            binding.insert("HostPort".into(), Value::String(port));
            if let Value::Array(list) = bindings
                .entry(key)
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                list.push(Value::Object(binding));
            }
        }
        s.container
            .insert("ExposedPorts".into(), Value::Object(exposed));
        s.host
            .insert("PortBindings".into(), Value::Object(bindings));
    }
    if let Some(network) = &c.network {
        s.host
            .insert("NetworkMode".into(), Value::String(network.mode()));
    }
    Some(s)
}

/// A container's `healthcheck`: `test` as Docker takes it (a text alone is a shell
/// line, `CMD-SHELL`), Go durations, `retries`.
fn healthcheck(d: &mut Decoder, node: &Node) -> Option<Healthcheck> {
    let f = d.fields(node, "`healthcheck`", &HEALTHCHECK_KEYS)?;
    let Some(test_node) = f.get("test") else {
        d.diags.push(
            Diagnostic::error(node.at(), "`healthcheck` needs `test`")
                .with_help("`test: [CMD-SHELL, \"pg_isready\"]`, `[CMD, prog, arg]`, or `[NONE]` to turn the image's off"),
        );
        return None;
    };
    let test = match &test_node.kind {
        Kind::Seq(_) => d.strings(test_node, "`healthcheck.test`"),
        _ => {
            let line = d.string(test_node, "`healthcheck.test`")?;
            vec!["CMD-SHELL".to_owned(), line]
        }
    };
    let problem = match test.first().map(String::as_str) {
        Some("NONE") if test.len() == 1 => None,
        Some("NONE") => Some("`[NONE]` takes nothing after it"),
        Some("CMD") if test.len() >= 2 => None,
        Some("CMD") => Some("`CMD` needs the program to run after it"),
        Some("CMD-SHELL") if test.len() == 2 => None,
        Some("CMD-SHELL") => Some("`CMD-SHELL` takes one command line after it"),
        _ => Some("it must start with NONE, CMD or CMD-SHELL"),
    };
    if let Some(problem) = problem {
        d.diags.push(
            Diagnostic::error(test_node.at(), format!("invalid `healthcheck.test`: {problem}"))
                .with_help("`[CMD-SHELL, \"curl -f http://localhost/ || exit 1\"]` or `[CMD, pg_isready, -U, app]`"),
        );
        return None;
    }
    let duration = |d: &mut Decoder, key: &str| -> Option<std::time::Duration> {
        let n = f.get(key)?;
        let text = d.string(n, &format!("`{}`", f.written(key)))?;
        match formats::go_duration(&text) {
            Some(t) if t.is_zero() || t >= std::time::Duration::from_millis(1) => Some(t),
            _ => {
                d.expected(
                    n,
                    &format!("`healthcheck.{}`", f.written(key)),
                    "a duration of at least 1ms (`500ms`, `5s`, `1m30s`)",
                );
                None
            }
        }
    };
    let interval = duration(d, "interval");
    let timeout = duration(d, "timeout");
    let start_period = duration(d, "startPeriod");
    let retries = f
        .get("retries")
        .and_then(|n| match n.as_int().map(u32::try_from) {
            Some(Ok(r)) => Some(r),
            _ => {
                d.expected(n, "`healthcheck.retries`", "a whole number, 0 or more");
                None
            }
        });
    Some(Healthcheck {
        test,
        interval,
        timeout,
        start_period,
        retries,
    })
}

/// `exec` or `image`, and what `exec` (into a running container) does not take.
fn container_source(d: &mut Decoder, f: &Fields, node: &Node, c: &Container) {
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
}

/// `ports` and `network`.
fn container_ports(d: &mut Decoder, f: &Fields, c: &mut Container) {
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
}

/// `startup` and the `command` that `startup: command` runs.
fn container_startup(d: &mut Decoder, f: &Fields, node: &Node, c: &mut Container) {
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
}

/// What the container must show before the steps run: `waitFor`, `logPattern`.
fn container_readiness(d: &mut Decoder, f: &Fields, c: &mut Container) {
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
}

impl Decoder<'_> {
    pub(crate) fn platform(&mut self, node: &Node, what: &str) -> Option<Platform> {
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

    pub(crate) fn pull(&mut self, node: &Node, what: &str) -> Option<PullPolicy> {
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
            "fallback" => Some(PullPolicy::Fallback),
            _ => {
                self.enum_error(
                    node,
                    what,
                    &text,
                    &["always", "missing", "never", "fallback", "true", "false"],
                );
                None
            }
        }
    }

    pub(crate) fn volumes(&mut self, node: &Node, what: &str) -> Vec<Volume> {
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
    pub(crate) fn docker_object(
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

    pub(crate) fn docker_value(
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

#[cfg(test)]
mod tests {
    use super::super::with_node;
    use super::*;

    #[test]
    fn a_step_container_becomes_a_docker_step() {
        let (s, errors) = with_node(
            "image: alpine\nuser: \"1000\"\nports: [\"127.0.0.1:8080:80\", \"53/udp\"]\nnetwork: bridge\nenv: [{A: b}]\n",
            step_container,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.expect("a docker step");
        assert!(s.auto_remove, "removed after the step by default");
        assert_eq!(s.container["User"], "1000");
        assert_eq!(s.container["Env"], serde_json::json!(["A=b"]));
        assert_eq!(
            s.container["ExposedPorts"],
            serde_json::json!({"80/tcp": {}, "53/udp": {}})
        );
        assert_eq!(
            s.host["PortBindings"],
            serde_json::json!({
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                "53/udp": [{"HostPort": ""}]
            })
        );
        assert_eq!(s.host["NetworkMode"], "bridge");
        let (s, errors) = with_node("exec: app\nuser: root\n", step_container);
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.expect("a docker step");
        assert_eq!(s.container_name.as_deref(), Some("app"));
        assert_eq!(s.exec.user.as_deref(), Some("root"));
        assert!(s.image.is_none());
    }

    #[test]
    fn a_step_docker_config() {
        let (s, errors) = with_node(
            "image: alpine\nautoRemove: true\npull: missing\nvolumes: [./data:/data:ro]\n",
            docker_step,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.image.as_deref(), Some("alpine"));
        assert_eq!(s.volumes.len(), 1);
        let (_, errors) = with_node("image: alpine\npull: sometimes\n", docker_step);
        assert!(errors.iter().any(|e| e.contains("sometimes")), "{errors:?}");
    }

    #[test]
    fn raw_docker_objects_in_either_casing() {
        let (c, errors) = with_node(
            "image: alpine\ncontainer: {env: [A=1], working_dir: /w}\nhost: {Memory: 1000}\n",
            docker_step,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let raw = serde_json::Value::Object(c.container).to_string();
        assert!(
            raw.contains("\"Env\"") && raw.contains("\"WorkingDir\""),
            "{raw}"
        );
        let (_, errors) = with_node("image: alpine\nhost: {Memroy: 1}\n", docker_step);
        assert!(errors.iter().any(|e| e.contains("Memroy")), "{errors:?}");
    }

    #[test]
    fn the_dag_level_container_needs_an_image() {
        let (c, errors) = with_node("env: [A=1]\n", container);
        assert!(c.is_none() || !errors.is_empty());
        assert!(
            errors.iter().any(|e| e.contains("needs `image`")),
            "{errors:?}"
        );
        let (c, errors) = with_node("image: alpine\nports: [\"8080:80\"]\n", container);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.map(|c| c.ports.len()), Some(1));
    }
}
