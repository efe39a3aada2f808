//! `wharf dry FILE`: the plan of a run without running anything and without Docker.
//!
//! Every value that is, or is made from, a credential is shown as `<redacted>`: variables
//! whose names say they hold one (`*PASSWORD*`, `*TOKEN*`, `*SECRET*`, ...), values that
//! expand such a variable, and every `registryAuths` value.

use std::fmt::Write as _;

use wharf_spec::env::{self, Origin, Resolved};
use wharf_spec::{
    CommandSpec, Container, Dag, EnvVar, Executor, Param, Placement, RegistryAuth, RegistryAuths,
    Step, VolumeSource,
};

use crate::ExitCode;
use crate::args::DryArgs;
use crate::commands::load;
use crate::term::Term;

use wharf_spec::redact::REDACTED;

use crate::error::Result;

/// `to_2`: `--dialect 2` was given. A file whose own keys say it is 1.x is then printed
/// in Dagu 2.x words (a migration aid) instead of planned.
pub(crate) fn run(args: &DryArgs, term: &Term, to_2: bool) -> Result<ExitCode> {
    if to_2 && let Some(code) = migrate(args, term)? {
        return Ok(code);
    }
    let loaded = load(&args.file, term)?;
    let dag = match loaded.dag {
        Some(dag) => dag,
        None => {
            eprintln!(
                "{}: invalid ({}); nothing to plan",
                args.file.display(),
                crate::commands::plural(loaded.errors(), "error")
            );
            return Ok(ExitCode::Usage);
        }
    };
    let params: Vec<Param> = args
        .params
        .iter()
        .map(|w| wharf_spec::formats::param_word(w))
        .collect();
    let host = |name: &str| std::env::var(name).ok();
    let resolved = env::resolve(&dag, &params, &host);
    print!(
        "{}",
        plan(&dag, &resolved, &args.file.display().to_string())
    );
    Ok(ExitCode::Success)
}

/// The file in Dagu 2.x words, when its own keys say it is a 1.x file: None when they do
/// not (it is planned as a 2.x file).
fn migrate(args: &DryArgs, term: &Term) -> Result<Option<ExitCode>> {
    wharf_spec::set_dialect(None);
    let own = load(&args.file, term);
    wharf_spec::set_dialect(Some(wharf_spec::Dialect::V2));
    let loaded = own?;
    let Some(dag) = loaded.dag else {
        eprintln!(
            "{}: invalid ({}); nothing to write in 2.x",
            args.file.display(),
            crate::commands::plural(loaded.errors(), "error")
        );
        return Ok(Some(ExitCode::Usage));
    };
    // A file its keys do not place (a one-word `run:`) is read as 2.x, as chosen.
    if dag.dialect != wharf_spec::Dialect::V1
        || wharf_spec::dialect::marked(&loaded.source) != Some(wharf_spec::Dialect::V1)
    {
        return Ok(None);
    }
    match wharf_spec::migrate::to_v2(&loaded.source, &args.file) {
        Ok(text) => {
            println!(
                "# {} in Dagu 2.x words (wharf dry --dialect 2)",
                args.file.display()
            );
            print!("{text}");
            Ok(Some(ExitCode::Success))
        }
        Err(why) => {
            eprintln!("{}: cannot be written in 2.x: {why}", args.file.display());
            Ok(Some(ExitCode::Usage))
        }
    }
}

/// The plan as text.
pub(crate) fn plan(dag: &Dag, resolved: &Resolved, shown: &str) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "DAG {} ({shown})", dag.name);
    if let Some(d) = &dag.description {
        let _ = writeln!(w, "  {d}");
    }
    let kind = match dag.kind {
        wharf_spec::DagType::Chain => "chain",
        wharf_spec::DagType::Graph => "graph",
    };
    let _ = writeln!(w, "  dialect: {}", dag.dialect.label());
    let _ = writeln!(w, "  type: {kind}");
    let _ = writeln!(w, "  working directory: {}", dag.working_dir.display());
    let mut limits = Vec::new();
    if let Some(t) = dag.timeout_sec {
        limits.push(format!("timeout {t}s"));
    }
    if let Some(t) = dag.delay_sec {
        limits.push(format!("delay {t}s"));
    }
    if let Some(n) = dag.max_active_steps {
        limits.push(format!("at most {n} steps at once"));
    }
    if let Some(t) = dag.max_cleanup_time_sec {
        limits.push(format!("clean-up grace {t}s"));
    }
    if !limits.is_empty() {
        let _ = writeln!(w, "  limits: {}", limits.join(", "));
    }
    if !dag.schedule.start.is_empty() {
        let _ = writeln!(w, "  schedule: {}", dag.schedule.start.join(" | "));
    }
    if !dag.tags.is_empty() {
        let _ = writeln!(w, "  tags: {}", dag.tags.join(", "));
    }
    if let Some(c) = &dag.container {
        container(w, c, dag, resolved);
    }
    if let Some(auths) = &dag.registry_auths {
        let registries = match auths {
            RegistryAuths::Config(_) => "one Docker auth config (values redacted)".to_owned(),
            RegistryAuths::PerRegistry(list) => list
                .iter()
                .map(|(r, a)| {
                    let kind = match a {
                        RegistryAuth::UserPassword { .. } => "username/password",
                        RegistryAuth::Auth(_) => "auth",
                        RegistryAuth::Encoded(_) => "encoded",
                    };
                    format!("{r} ({kind})")
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(w, "  registry auths: {registries}");
    }

    let _ = writeln!(w, "\nEnvironment:");
    if resolved.vars.is_empty() && resolved.positional.is_empty() && dag.secrets.is_empty() {
        let _ = writeln!(w, "  (none)");
    }
    for var in &resolved.vars {
        let raw = raw_value(dag, &var.name, &var.origin);
        let value = shown_value(&var.name, raw.as_deref(), &var.value);
        let mut origin = match &var.origin {
            Origin::Dotenv(f) => format!("dotenv {f}"),
            Origin::Env => "env".into(),
            Origin::Param => "param".into(),
            Origin::Output => "output".into(),
            Origin::Secret => "secret".into(),
        };
        // A value from the file (not one given for the run) whose commands the run runs.
        if let Some(raw) = raw.as_deref()
            && evaluated(raw)
            && var.value == resolved.expand(raw, &|n| std::env::var(n).ok())
        {
            origin.push_str(EVALUATED);
        }
        let _ = writeln!(w, "  {}={value}  ({origin})", var.name);
    }
    for (i, value) in resolved.positional.iter().enumerate() {
        let name = resolved.positional_names.get(i).cloned().flatten();
        let value = match &name {
            Some(name) => shown_value(name, raw_value(dag, name, &Origin::Param).as_deref(), value),
            None => value.clone(),
        };
        let _ = writeln!(w, "  ${}={value}  (positional param)", i + 1);
    }
    // Secrets are read when a run starts; `dry` says where from, never what.
    for s in &dag.secrets {
        let _ = writeln!(
            w,
            "  {}=<secret>  (secret: {} `{}`, read when the run starts)",
            s.name,
            s.provider.as_str(),
            s.key
        );
    }
    for note in &resolved.notes {
        let _ = writeln!(w, "  note: {note}");
    }

    let _ = writeln!(w, "\nSteps, in execution order:");
    let order = wharf_spec::execution_order(dag);
    let width = dag.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for (n, &i) in order.iter().enumerate() {
        let step = &dag.steps[i];
        let _ = write!(
            w,
            "  {:>2}. {:<width$}  {}",
            n + 1,
            step.name,
            placement(dag, step)
        );
        if !step.depends.is_empty() {
            let _ = write!(w, "  after: {}", step.depends.join(", "));
        }
        let _ = writeln!(w);
        step_details(w, step, resolved);
    }
    let handlers: Vec<_> = dag.handlers.iter().collect();
    if !handlers.is_empty() {
        let _ = writeln!(w, "\nHandlers:");
        for (event, step) in handlers {
            let _ = writeln!(w, "  on {event}: {}  {}", step.name, placement(dag, step));
            step_details(w, step, resolved);
        }
    }
    out
}

fn container(w: &mut String, c: &Container, dag: &Dag, resolved: &Resolved) {
    match (&c.exec, &c.image) {
        (Some(name), _) => {
            let _ = writeln!(
                w,
                "  container: exec into the running container `{name}` (shared by the steps)"
            );
        }
        (None, Some(image)) => {
            let mut details = vec![
                format!("pull {}", c.pull_policy.as_str()),
                format!("startup {}", c.startup.as_str()),
                format!("wait for {}", c.wait_for.as_str()),
            ];
            if let Some(p) = &c.log_pattern {
                details.push(format!("log pattern /{p}/"));
            }
            if let Some(name) = &c.name {
                details.push(format!("name {name}"));
            }
            if let Some(p) = &c.platform {
                details.push(format!("platform {p}"));
            }
            if let Some(r) = c.restart_policy {
                details.push(format!("restart {}", r.as_str()));
            }
            if c.keep_container {
                details.push("kept after the run".into());
            }
            let _ = writeln!(
                w,
                "  container: {image} (shared by the steps; {})",
                details.join(", ")
            );
            if !c.command.is_empty() {
                let _ = writeln!(w, "    main process: {}", shell_words::join(&c.command));
            }
        }
        (None, None) => {}
    }
    if let Some(u) = &c.user {
        let _ = writeln!(w, "    user: {u}");
    }
    if let Some(d) = &c.working_dir {
        let _ = writeln!(w, "    working directory: {d}");
    }
    if let Some(n) = &c.network {
        let _ = writeln!(w, "    network: {}", n.mode());
    }
    for v in &c.volumes {
        let mode = if v.read_only { "ro" } else { "rw" };
        let source = match &v.source {
            VolumeSource::Bind(s) => {
                format!(
                    "{} (bind)",
                    wharf_spec::formats::resolve_path(&dag.working_dir, s).display()
                )
            }
            VolumeSource::Named(n) => format!("{n} (named volume)"),
        };
        let _ = writeln!(w, "    volume: {source} -> {}:{mode}", v.target);
    }
    for p in &c.ports {
        let host = match (&p.host_ip, p.host_port) {
            (Some(ip), Some(port)) => format!("{ip}:{port}"),
            (None, Some(port)) => format!("{port}"),
            _ => "a free port".into(),
        };
        let _ = writeln!(
            w,
            "    port: {host} -> {}/{}",
            p.container_port,
            p.protocol.as_str()
        );
    }
    env_lines(w, "    env", &c.env, resolved);
}

fn placement(dag: &Dag, step: &Step) -> String {
    match &step.executor {
        wharf_spec::Executor::HumanTask(t) => {
            let fields = t.form.as_ref().map_or_else(String::new, |f| {
                let names: Vec<&str> = f.properties.iter().map(|(n, _)| n.as_str()).collect();
                format!(" (form: {})", names.join(", "))
            });
            return format!("waits for a person: {}{fields}", t.prompt);
        }
        wharf_spec::Executor::Approval(a) => {
            return format!(
                "waits for a person's approval{}",
                a.prompt
                    .as_deref()
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default()
            );
        }
        _ => {}
    }
    match dag.placement(step) {
        Placement::Host => "on the host".into(),
        Placement::Engine => match &step.executor {
            wharf_spec::Executor::Ssh(ssh) => {
                let ssh = ssh.over(dag.ssh.as_ref());
                format!(
                    "over ssh on {}{}:{}",
                    ssh.user.map(|u| format!("{u}@")).unwrap_or_default(),
                    ssh.host.unwrap_or_default(),
                    ssh.port.unwrap_or(22)
                )
            }
            wharf_spec::Executor::Jq(_) => "in wharf (jq)".into(),
            wharf_spec::Executor::Http(_) => "in wharf (an HTTP request)".into(),
            wharf_spec::Executor::Mail(_) => "in wharf (a mail)".into(),
            wharf_spec::Executor::File(f) => format!("in wharf (file.{})", f.op.name()),
            wharf_spec::Executor::Archive(_) => "in wharf (an archive)".into(),
            wharf_spec::Executor::Wait(_) => "in wharf (a wait)".into(),
            wharf_spec::Executor::Sql(sql) => format!("in wharf ({})", sql.engine.name()),
            wharf_spec::Executor::Router(_) => "in wharf (a router)".into(),
            wharf_spec::Executor::S3(s3) => format!("in wharf (s3.{})", s3.op.name()),
            wharf_spec::Executor::State(s) => format!("in wharf (state.{})", s.op.name()),
            wharf_spec::Executor::GitWorktree(w) => format!(
                "in wharf (git.worktree.{}, with git)",
                if w.add { "add" } else { "remove" }
            ),
            wharf_spec::Executor::Template(_) => "in wharf (a template)".into(),
            wharf_spec::Executor::Redis(r) => format!("in wharf (redis {})", r.command),
            wharf_spec::Executor::GitCheckout(_) => "in wharf (git.checkout, with git)".into(),
            wharf_spec::Executor::Data(d) => {
                format!(
                    "in wharf (data.{})",
                    if d.pick { "pick" } else { "convert" }
                )
            }
            wharf_spec::Executor::Sftp(sftp) => {
                let ssh = sftp.ssh.over(dag.ssh.as_ref());
                format!(
                    "in wharf (sftp {} {}{}:{})",
                    if sftp.upload { "to" } else { "from" },
                    ssh.user.map(|u| format!("{u}@")).unwrap_or_default(),
                    ssh.host.unwrap_or_default(),
                    ssh.port.unwrap_or(22)
                )
            }
            _ => "in wharf (no process)".into(),
        },
        Placement::SharedContainer => match &dag.container {
            Some(Container {
                image: Some(image), ..
            }) => format!("in the shared container ({image})"),
            Some(Container {
                exec: Some(name), ..
            }) => format!("in the container `{name}`"),
            _ => "in the shared container".into(),
        },
        Placement::OwnContainer {
            image,
            container_name,
        } => match (image, container_name) {
            (Some(image), Some(name)) => {
                format!("in container `{name}` (created from {image} if not running)")
            }
            (Some(image), None) => format!("in a new container from {image}"),
            (None, Some(name)) => format!("in the running container `{name}`"),
            (None, None) => "in a container".into(),
        },
    }
}

fn step_details(w: &mut String, step: &Step, resolved: &Resolved) {
    if let Some(call) = &step.call {
        let _ = writeln!(w, "        calls the DAG: {}", call.target);
        match &call.params {
            wharf_spec::CallParams::None => {}
            wharf_spec::CallParams::Line(line) => {
                let _ = writeln!(w, "        with params: {line}");
            }
            wharf_spec::CallParams::Pairs(pairs) => {
                let words: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
                let _ = writeln!(w, "        with params: {}", shell_words::join(&words));
            }
        }
        if let Some(p) = &call.parallel {
            let items = match &p.items {
                wharf_spec::ParallelItems::List(items) => format!("{} items", items.len()),
                wharf_spec::ParallelItems::Text(text) => format!("the items of {text}"),
            };
            let _ = writeln!(
                w,
                "        one run per item: {items}, at most {} at once",
                p.max_concurrent
            );
        }
    }
    match (&step.command, &step.script) {
        (Some(CommandSpec::Line(line)), _) => {
            let _ = writeln!(w, "        run: {line}");
        }
        (Some(CommandSpec::Argv(argv)), _) => {
            let _ = writeln!(w, "        run: {}", shell_words::join(argv));
        }
        (Some(CommandSpec::Lines(lines)), _) => {
            for (i, line) in lines.iter().enumerate() {
                let then = if i == 0 { "run" } else { "then" };
                let _ = writeln!(w, "        {then}: {line}");
            }
        }
        (None, Some(script)) => {
            let first = script
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            let more = script
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
                .saturating_sub(1);
            let more = if more > 0 {
                format!(" (+{more} lines)")
            } else {
                String::new()
            };
            let _ = writeln!(w, "        script: {}{more}", first.trim());
        }
        (None, None) => {
            if let Executor::Docker(_) = step.executor {
                let _ = writeln!(w, "        run: the image's ENTRYPOINT/CMD");
            }
        }
    }
    if let Some(dir) = &step.dir {
        let _ = writeln!(w, "        dir: {dir}");
    }
    if let Executor::Docker(d) = &step.executor {
        let mut opts = vec![format!("pull {}", d.pull.as_str())];
        if d.auto_remove {
            opts.push("auto-remove".into());
        }
        if let Some(p) = &d.platform {
            opts.push(format!("platform {p}"));
        }
        let _ = writeln!(w, "        docker: {}", opts.join(", "));
        if d.backend == wharf_spec::Backend::Swarm {
            let mut on = String::from("a job of the swarm");
            if !d.swarm.constraints.is_empty() {
                on.push_str(&format!(
                    ", on a node where {}",
                    d.swarm.constraints.join(" and ")
                ));
            }
            let _ = writeln!(w, "        swarm: {on}");
        }
    }
    let mut policies = Vec::new();
    if let Some(r) = &step.retry {
        policies.push(format!(
            "retry up to {} times every {}s",
            r.limit, r.interval_sec
        ));
    }
    if step.repeat.is_some() {
        policies.push("repeats".into());
    }
    if let Some(t) = step.timeout_sec {
        policies.push(format!("timeout {t}s"));
    }
    if step.continue_on().failure {
        policies.push("continues on failure".into());
    }
    if step.continue_on().skipped {
        policies.push("continues when skipped".into());
    }
    if !step.preconditions.is_empty() {
        policies.push(format!("{} precondition(s)", step.preconditions.len()));
    }
    if let Some(o) = &step.output {
        policies.push(format!("output -> ${}", o.name));
    }
    if !policies.is_empty() {
        let _ = writeln!(w, "        {}", policies.join("; "));
    }
    env_lines(w, "        env", &step.env, resolved);
}

fn env_lines(w: &mut String, prefix: &str, vars: &[EnvVar], resolved: &Resolved) {
    let host = |name: &str| std::env::var(name).ok();
    for var in vars {
        let value = resolved.expand(&var.value, &host);
        let _ = writeln!(
            w,
            "{prefix}: {}={}{}",
            var.name,
            shown_value(&var.name, Some(&var.value), &value),
            if evaluated(&var.value) {
                format!("  ({})", &EVALUATED[2..])
            } else {
                String::new()
            }
        );
    }
}

/// The value as the DAG's file writes it (in `env` or `params`), if it came from there.
fn raw_value(dag: &Dag, name: &str, origin: &Origin) -> Option<String> {
    match origin {
        Origin::Env => dag
            .env
            .iter()
            .rev()
            .find(|v| v.name == name)
            .map(|v| v.value.clone()),
        Origin::Param => dag
            .params
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.value.clone()),
        _ => None,
    }
}

/// How the plan marks a value whose backticks a run evaluates.
const EVALUATED: &str = "; the run replaces each `command` by its output";

/// Whether a value as written holds a command (`` `…` ``) that a run evaluates.
fn evaluated(raw: &str) -> bool {
    raw.replace("\\`", "").contains('`')
}

/// The value to print: redacted when the name says it is a credential or when the value
/// as written expands a variable whose name says so.
fn shown_value(name: &str, raw: Option<&str>, value: &str) -> String {
    let from_secret = raw.is_some_and(|raw| {
        let found = std::cell::Cell::new(false);
        wharf_spec::expand::expand(raw, |n| {
            if wharf_spec::redact::is_secret_key(n) {
                found.set(true);
            }
            None
        });
        found.get()
    });
    if wharf_spec::redact::is_secret_key(name) || from_secret {
        REDACTED.to_owned()
    } else {
        value.to_owned()
    }
}
