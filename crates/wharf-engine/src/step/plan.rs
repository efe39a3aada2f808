//! What a step runs, for each attempt: its shell and program on the host, what it execs in
//! the DAG-level container, or the settings of a container of its own; and the job that
//! asks the executor for it.

use super::*;

/// The named variables for the step's process. Positional params are not variables: they
/// reach the shell as its own `$1`, `$2`, ...
pub(super) fn env_pairs(vars: &Resolved) -> Vec<(String, String)> {
    vars::step_env(vars)
}

/// The step's shell: its own, the DAG's, the installation's `defaultShell`, `$SHELL`, or
/// `sh`.
pub(super) fn shell_of(
    step: &Step,
    dag: &Dag,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Vec<String> {
    let shell: Vec<String> = step
        .shell
        .as_ref()
        .or(dag.shell.as_ref())
        .map(|words| words.iter().map(|w| expand(w)).collect())
        .or_else(|| {
            crate::installation::default_shell()
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
        })
        .or_else(|| {
            std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty())
                .map(|s| vec![s])
        })
        .unwrap_or_else(|| vec!["sh".into()]);
    if shell.is_empty() {
        return vec!["sh".into()];
    }
    let mut shell = shell;
    if wharf_spec::formats::is_nix_shell(&shell) {
        for package in &step.shell_packages {
            shell.push("-p".into());
            shell.push(expand(package));
        }
    }
    shell
}

/// Whether the step's command or script names the files of its attempt.
fn names_attempt_files(step: &Step) -> bool {
    let names = |t: &str| t.contains("paths.step_");
    step.script.as_deref().is_some_and(names)
        || step.command.as_ref().is_some_and(|c| match c {
            CommandSpec::Line(l) => names(l),
            CommandSpec::Lines(ls) | CommandSpec::Argv(ls) => ls.iter().any(|l| names(l)),
        })
}

/// The DAG's or the default shell as a step's program runs in it: a POSIX shell stops at
/// the first command that fails (`-e` added unless its words set it already), as Dagu
/// runs it. A step's own `shell` is taken as written.
pub(super) fn with_errexit(shell: &[String]) -> Vec<String> {
    let posix = shell.first().is_some_and(|program| {
        std::path::Path::new(program)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| matches!(n, "sh" | "bash" | "zsh" | "ksh" | "ash" | "dash" | "mksh"))
    });
    let set_already = shell.iter().skip(1).enumerate().any(|(i, w)| {
        (w.starts_with('-') && !w.starts_with("--") && w[1..].contains('e'))
            || (w == "-o" && shell.get(i + 2).is_some_and(|o| o == "errexit"))
            || (w.starts_with('+') && w[1..].contains('e'))
    });
    let mut words = shell.to_vec();
    if posix && !set_already {
        words.insert(1, "-e".into());
    }
    words
}

/// A reference in a Dagu 2.x command line or script: the run's value, or, for the files of
/// the attempt (each attempt has its own), the shell variable that holds it.
fn v2_lookup(vars: &Resolved, name: &str, handler: bool) -> Option<String> {
    let bare = name.strip_prefix("context.").unwrap_or(name);
    // A handler has no files of a step's own, and reads no step's outputs (it is no
    // step of the graph): such a reference stays as written.
    if handler && (bare.starts_with("paths.step_") || bare.starts_with("steps.")) {
        return None;
    }
    // The attempt's own files, when the program is made for the attempt.
    if bare.starts_with("paths.step_")
        && let Some(path) = vars.get(bare)
    {
        return Some(path.to_owned());
    }
    let var = match bare {
        "paths.step_stdout_file" => "DAG_RUN_STEP_STDOUT_FILE",
        "paths.step_stderr_file" => "DAG_RUN_STEP_STDERR_FILE",
        "paths.step_output_file" => "DAGU_OUTPUT_FILE",
        _ => return vars.lookup(name),
    };
    Some(format!("${{{var}}}"))
}

/// What the shell runs: the command line, or the script (with `command` as its
/// interpreter when both are given).
pub(super) fn program_of(
    step: &Step,
    ctx: &StepCtx,
    vars: &Resolved,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<Program, String> {
    let handler = matches!(ctx.step, super::StepRef::Handler(_));
    // A 2.x command (a one-line `run`, an item of a list) is one line: one that a value
    // put in breaks is refused before any shell starts (it would run as two commands).
    if ctx.dag.dialect == wharf_spec::Dialect::V2 {
        let lines: &[String] = match &step.command {
            Some(CommandSpec::Line(l)) => std::slice::from_ref(l),
            Some(CommandSpec::Lines(ls)) => ls,
            _ => &[],
        };
        for line in lines.iter().filter(|l| !l.contains(['\n', '\r'])) {
            let resolved =
                wharf_spec::expand::references(line, |name| v2_lookup(vars, name, handler));
            if resolved.contains(['\n', '\r']) {
                return Err(format!(
                    "the command `{line}` holds a line break once its references are put in: a one-line `run` is one command (write the value on one line, or the step as a multi-line script)"
                ));
            }
        }
    }
    let line = step.command.as_ref().map(|c| match c {
        // A string is shell words: the shell expands its variables itself (from the
        // environment), which keeps quoting right. Only references into earlier steps
        // (`${id.exitCode}`, `${id.stdout}`), which no shell can read, are put in here.
        CommandSpec::Line(line) if ctx.dag.dialect == wharf_spec::Dialect::V2 => {
            wharf_spec::expand::references(line, |name| v2_lookup(vars, name, handler))
        }
        CommandSpec::Line(line) => wharf_spec::expand::expand(line, |name| {
            name.contains('.').then(|| vars.lookup(name)).flatten()
        }),
        // Several commands: each in a subshell of its own, one after the other; the first
        // that fails ends the step with its exit code.
        CommandSpec::Lines(lines) => lines
            .iter()
            .map(|line| {
                let line = wharf_spec::expand::expand(line, |name| {
                    name.contains('.').then(|| vars.lookup(name)).flatten()
                });
                format!("(\n{line}\n)")
            })
            .collect::<Vec<_>>()
            .join(" && "),
        // A command with `args` is argv: its items are expanded here and quoted for the
        // shell.
        // In a Dagu 2.x file (`action: exec`, no shell after it) the DAG's environment
        // values (`$NAME`, `${NAME}` of its `env`, params, outputs; not wharf's own
        // environment, which 2.x does not expand outside a shell; one nothing knows stays
        // as written) and its references are put in.
        CommandSpec::Argv(argv) if ctx.dag.dialect == wharf_spec::Dialect::V2 => {
            shell_words::join(argv.iter().map(|a| {
                let env = wharf_spec::expand::expand_unquoted(a, |name| {
                    (!name.contains('.')).then(|| vars.lookup(name)).flatten()
                });
                wharf_spec::expand::references(&env, |name| vars.lookup(name))
            }))
        }
        CommandSpec::Argv(argv) => shell_words::join(argv.iter().map(|a| expand(a))),
    });
    let Some(script) = &step.script else {
        return line
            .map(Program::Line)
            .ok_or_else(|| "the step has nothing to run".to_owned());
    };
    let file = ctx.log_dir.join(format!(
        "{}-{}.script",
        ctx.position,
        wharf_store::safe_name(&step.name)
    ));
    // A Dagu 2.x script gets its namespaced references (`${params.x}`, `${steps.id.outputs.y}`)
    // put in; its other `$` syntax is the interpreter's.
    let script = if ctx.dag.dialect == wharf_spec::Dialect::V2 {
        std::borrow::Cow::Owned(wharf_spec::expand::references(script, |name| {
            v2_lookup(vars, name, handler)
        }))
    } else {
        std::borrow::Cow::Borrowed(script.as_str())
    };
    std::fs::write(&file, script.as_bytes())
        .map_err(|e| format!("cannot write the script to {}: {e}", file.display()))?;
    // Executable: run by its `#!` line, or named to a shell whose arguments end in `-c`
    // (`shell: [sh, -c]`), which runs it as a program (a file without `#!` is a script of
    // that shell).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make the script executable: {e}"))?;
    }
    match line {
        Some(line) => Ok(Program::Line(format!(
            "{line} {}",
            shell_words::quote(&file.to_string_lossy())
        ))),
        // A shell the step names itself runs the script (its `#!` line a comment), as
        // in Dagu; the DAG's shell does not take the place of the `#!` interpreter.
        None if script.starts_with("#!") && step.shell.is_none() => Ok(Program::Executable(file)),
        None => Ok(Program::Script(file)),
    }
}

/// What a step in the DAG-level container execs there. A list `command` is argv; a string
/// is split into words like a shell would, without one (images need not have a shell),
/// unless the step or DAG names a `shell`, which then runs the line. A `script` is fed to
/// the `command` (or its `#!` interpreter, or the shell) on stdin.
pub(super) fn exec_job(
    step: &Step,
    dag: &Dag,
    vars: &Resolved,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<crate::ExecJob, String> {
    // A line a shell in the container runs: a 2.x file's references put in (the rest is
    // that shell's).
    let for_shell = |line: &String| {
        if dag.dialect == wharf_spec::Dialect::V2 {
            wharf_spec::expand::references(line, |name| vars.lookup(name))
        } else {
            line.clone()
        }
    };
    let shell: Option<Vec<String>> = step
        .shell
        .as_ref()
        .or(dag.shell.as_ref())
        .map(|words| words.iter().map(|w| expand(w)).collect())
        .filter(|w: &Vec<String>| !w.is_empty());
    // The container's own `shell` (Dagu 2.x) is the whole prefix, `-c` included.
    let container_shell = dag
        .container
        .as_ref()
        .map(|c| c.shell.clone())
        .filter(|s| !s.is_empty() && shell.is_none());
    let words = |line: &str| -> Vec<String> {
        shell_words::split(line)
            .unwrap_or_else(|_| line.split_whitespace().map(str::to_owned).collect())
            .iter()
            .map(|w| expand(w))
            .collect()
    };
    let one = |line: &String| match (&shell, &container_shell) {
        (Some(sh), _) if step.script.is_none() => {
            let mut argv = sh.clone();
            argv.extend(["-c".to_owned(), for_shell(line)]);
            argv
        }
        (None, Some(prefix)) if step.script.is_none() => {
            let mut argv = prefix.clone();
            argv.push(for_shell(line));
            argv
        }
        _ => words(line),
    };
    // Several commands: the first is the exec, the others follow it one by one.
    let mut more = Vec::new();
    let command = step.command.as_ref().map(|c| match c {
        CommandSpec::Argv(argv) => argv.iter().map(|a| expand(a)).collect::<Vec<_>>(),
        CommandSpec::Line(line) => one(line),
        CommandSpec::Lines(lines) => {
            more = lines.iter().skip(1).map(one).collect();
            lines.first().map(one).unwrap_or_default()
        }
    });
    let (argv, stdin) = match (&step.script, command) {
        (None, Some(argv)) => (argv, None),
        (None, None) => return Err("the step has nothing to run".into()),
        (Some(script), Some(argv)) => (argv, Some(script.clone())),
        (Some(script), None) => {
            let interpreter = script
                .strip_prefix("#!")
                .and_then(|rest| rest.lines().next())
                .map(|line| {
                    line.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter(|w| !w.is_empty());
            let argv = interpreter
                .or(shell)
                .unwrap_or_else(|| vec!["sh".to_owned()]);
            (argv, Some(script.clone()))
        }
    };
    if argv.is_empty() || argv[0].is_empty() {
        return Err("the step's command is empty".into());
    }
    let container_dir = dag
        .container
        .as_ref()
        .and_then(|c| c.working_dir.as_deref());
    let working_dir = step.dir.as_deref().map(|d| {
        let d = expand(d);
        match container_dir {
            Some(base) if !d.starts_with('/') => {
                format!("{}/{d}", base.trim_end_matches('/'))
            }
            _ => d,
        }
    });
    Ok(crate::ExecJob {
        argv,
        more,
        stdin,
        working_dir,
    })
}

/// The container settings of a step with its own container, `${VAR}` expanded.
pub(super) fn container_job(
    step: &Step,
    dag: &Dag,
    ctx: &StepCtx,
    expand: &dyn Fn(&str) -> String,
) -> Option<crate::ContainerJob> {
    let wharf_spec::Executor::Docker(config) = &step.executor else {
        return None;
    };
    let mut config = (**config).clone();
    let ex = |v: &Option<String>| v.as_deref().map(expand);
    config.image = ex(&config.image);
    config.container_name = ex(&config.container_name);
    config.working_dir = ex(&config.working_dir);
    config.exec.user = ex(&config.exec.user);
    config.exec.working_dir = ex(&config.exec.working_dir);
    let v2 = dag.dialect == wharf_spec::Dialect::V2;
    // A container's `env` top to bottom: an entry reads the entries before it.
    let chained = crate::vars::chained_env(
        config
            .exec
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone())),
        v2,
        expand,
    );
    for (var, (_, value)) in config.exec.env.iter_mut().zip(chained) {
        var.value = value;
    }
    let mut env = config.container.remove("Env");
    if let Some(serde_json::Value::Array(entries)) = &mut env {
        let pairs: Vec<(String, String)> = entries
            .iter()
            .filter_map(|e| e.as_str())
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        if pairs.len() == entries.len() {
            *entries = crate::vars::chained_env(pairs, v2, expand)
                .into_iter()
                .map(|(k, v)| serde_json::Value::String(format!("{k}={v}")))
                .collect();
        } else {
            entries.iter_mut().for_each(|e| expand_strings(e, expand));
        }
    }
    // The raw Docker objects' strings too, as Dagu evaluates the config's strings
    // (`binds: ["${OUT}:/out"]`).
    for map in [&mut config.container, &mut config.host, &mut config.network] {
        for value in map.values_mut() {
            expand_strings(value, expand);
        }
    }
    if let Some(env) = env {
        config.container.insert("Env".into(), env);
    }
    for v in &mut config.volumes {
        if let wharf_spec::VolumeSource::Bind(source) = &v.source {
            let absolute = wharf_spec::formats::resolve_path(&dag.working_dir, &expand(source));
            v.source = wharf_spec::VolumeSource::Bind(absolute.to_string_lossy().into_owned());
        }
    }
    let shell = config.shell.clone();
    let words = |line: &String| -> Vec<String> {
        // The container's `shell` runs the line as it is.
        if !shell.is_empty() {
            let mut argv = shell.clone();
            argv.push(expand(line));
            return argv;
        }
        let words = shell_words::split(line).unwrap_or_else(|_| vec![line.clone()]);
        words.iter().map(|w| expand(w)).collect()
    };
    let mut more = Vec::new();
    let argv = step.command.as_ref().map(|c| match c {
        CommandSpec::Argv(argv) => argv.iter().map(|a| expand(a)).collect(),
        // A list: the first command, then the others, each exec'd into the same container.
        CommandSpec::Lines(lines) => {
            more = lines.iter().skip(1).map(words).collect();
            lines.first().map(words).unwrap_or_default()
        }
        CommandSpec::Line(line) => words(line),
    });
    let mut labels = crate::labels::owner(&dag.name, &ctx.run_id, &step.name);
    labels.push((
        crate::labels::AUTO_REMOVE.to_owned(),
        config.auto_remove.to_string(),
    ));
    Some(crate::ContainerJob {
        config,
        argv,
        more,
        labels,
    })
}

/// The executor's job for one attempt; the attempt is recorded when it starts. Without
/// `stop`, the job is the one the attempt would get, foreseen: nothing is recorded or
/// written for it.
pub(super) fn job_of(
    ctx: &StepCtx,
    step: &Step,
    dag: &Dag,
    p: &Prepared,
    attempt: u32,
    (stdout, stderr): (&std::path::Path, &std::path::Path),
    stop: Option<&tokio_util::sync::CancellationToken>,
) -> Result<StepJob, String> {
    let foreseen = stop.is_none();
    let record = AttemptRecord {
        attempt,
        started_at: now_ms(),
        finished_at: None,
        exit_code: None,
        stdout: stdout.to_path_buf(),
        stderr: stderr.to_path_buf(),
        pgid: None,
    };
    let mut env = Vec::new();
    // A Dagu 2.x handler has no step files of its own to name.
    let handler_v2 =
        dag.dialect == wharf_spec::Dialect::V2 && matches!(ctx.step, super::StepRef::Handler(_));
    if !handler_v2 {
        env.push((
            "DAG_RUN_STEP_STDOUT_FILE".into(),
            stdout.to_string_lossy().into_owned(),
        ));
        env.push((
            "DAG_RUN_STEP_STDERR_FILE".into(),
            stderr.to_string_lossy().into_owned(),
        ));
    }
    // Declared outputs (Dagu 2.x): an empty file for each attempt, read once it succeeded.
    if !step.outputs.is_empty() {
        let file = outputs_file(stdout);
        if !foreseen {
            std::fs::write(&file, b"")
                .map_err(|e| format!("cannot make the outputs file {}: {e}", file.display()))?;
        }
        env.push((
            "DAGU_OUTPUT_FILE".into(),
            file.to_string_lossy().into_owned(),
        ));
    }
    let expand = |t: &str| p.expand(t);
    let work = match &p.plan {
        Plan::Host(program) => {
            // A 2.x program that names the attempt's own files (`${paths.step_stdout_file}`)
            // is made for this attempt, with their paths put in.
            let program = if dag.dialect == wharf_spec::Dialect::V2
                && !handler_v2
                && names_attempt_files(step)
            {
                let mut vars = p.vars.clone();
                let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
                vars.set("paths.step_stdout_file", path(stdout), Origin::Output);
                vars.set("paths.step_stderr_file", path(stderr), Origin::Output);
                if !step.outputs.is_empty() {
                    vars.set(
                        "paths.step_output_file",
                        path(&outputs_file(stdout)),
                        Origin::Output,
                    );
                }
                program_of(step, ctx, &vars, &expand)?
            } else {
                program.clone()
            };
            Work::Host(LocalCommand {
                shell: if step.shell.is_none() {
                    with_errexit(&p.shell)
                } else {
                    p.shell.clone()
                },
                program,
            })
        }
        Plan::Exec(e) => Work::Exec(e.clone()),
        Plan::SubDag(sub) => Work::SubDag(Arc::clone(sub)),
        Plan::Builtin => Work::Builtin(Box::new(builtin_job(step, dag, ctx, p, &expand)?)),
        Plan::Container => match container_job(step, dag, ctx, &expand) {
            Some(c) => Work::Container(Box::new(c)),
            None => return Err("the step has no container to run in".into()),
        },
    };
    let (run, name) = (ctx.run, step.name.clone());
    let on_spawn: Option<Arc<dyn Fn(i32) + Send + Sync>> = if matches!(work, Work::Host(_)) {
        // The attempt is recorded once its process runs, with its process group. The
        // record shares the commit of the writes around it (a few milliseconds later at
        // most): if wharf dies before, its processes are still found by the run they
        // carry in their environment (`DAG_NAME`, `DAG_RUN_ID`).
        let store = Arc::clone(&ctx.store);
        Some(Arc::new(move |pgid| {
            let record = AttemptRecord {
                pgid: Some(pgid),
                ..record.clone()
            };
            let name = name.clone();
            store.record("the attempt", move |s| s.start_attempt(run, &name, &record));
        }))
    } else {
        // No local process to report its start: the attempt is recorded now.
        if !foreseen {
            ctx.record("the attempt", move |s| s.start_attempt(run, &name, &record));
        }
        None
    };
    let redirect = |path: &Option<String>| {
        path.as_ref()
            .map(|f| wharf_spec::formats::resolve_path(&dag.working_dir, &expand(f)))
    };
    Ok(StepJob {
        dag_name: dag.name.clone(),
        step_name: step.name.clone(),
        attempt,
        env: crate::StepEnv::new(Arc::clone(&p.env), env),
        positional: p.vars.positional.clone(),
        dir: p.dir.clone(),
        work,
        activity: {
            let (events, name) = (ctx.events.clone(), step.name.clone());
            Arc::new(move |text| {
                let _ = events.send(Event::Activity {
                    name: name.clone(),
                    text,
                });
            })
        },
        notice: {
            let (events, name) = (ctx.events.clone(), step.name.clone());
            let run_log = ctx.run_log.clone();
            Arc::new(move |m| {
                let text = format!("{name}: {m}");
                crate::dispatcher::append_run_log(&run_log, &format!("note: {text}"));
                let _ = events.send(Event::Notice(text));
            })
        },
        mask: Arc::clone(&ctx.mask),
        stdout: stdout.to_path_buf(),
        stderr: stderr.to_path_buf(),
        redirect_stdout: redirect(&step.stdout),
        redirect_stderr: redirect(&step.stderr),
        stop: stop.cloned().unwrap_or_default(),
        signal: step
            .signal_on_stop
            .and_then(|s| nix::sys::signal::Signal::try_from(s.number).ok())
            .unwrap_or(nix::sys::signal::Signal::SIGTERM),
        grace: ctx.grace,
        capture_stdout: (step.output.is_some()
            || !step.continue_on().output.is_empty()
            || step.publish.as_ref().is_some_and(|p| p.reads_stdout()))
        .then_some(dag.max_output_size.unwrap_or(1024 * 1024)),
        on_spawn,
    })
}

/// Every string in a JSON value, with its variables expanded.
pub(super) fn expand_strings(value: &mut serde_json::Value, expand: &dyn Fn(&str) -> String) {
    match value {
        serde_json::Value::String(s) => *s = expand(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| expand_strings(v, expand)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| expand_strings(v, expand)),
        _ => {}
    }
}

/// Whether a string of `value` holds one of the run's secrets.
fn holds_secret(value: &serde_json::Value, mask: &wharf_spec::env::Mask) -> bool {
    match value {
        serde_json::Value::String(s) => mask.text(s) != *s,
        serde_json::Value::Array(items) => items.iter().any(|v| holds_secret(v, mask)),
        serde_json::Value::Object(map) => map.values().any(|v| holds_secret(v, mask)),
        _ => false,
    }
}

/// An action's `with`, every string in it expanded.
fn expanded(
    with: serde_json::Map<String, serde_json::Value>,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> serde_json::Map<String, serde_json::Value> {
    with.into_iter()
        .map(|(k, mut v)| {
            expand_strings(&mut v, expand);
            (k, v)
        })
        .collect()
}

/// A `jq`, `http` or `mail` step's job: its command, script and settings expanded.
fn builtin_job(
    step: &Step,
    dag: &Dag,
    ctx: &StepCtx,
    p: &Prepared,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<crate::BuiltinJob, String> {
    use wharf_spec::Executor;
    let (dir, home, vars) = (&p.dir, ctx.store.home(), &p.vars);
    let line = step
        .command
        .as_ref()
        .map(|c| expand(&c.to_line()))
        .unwrap_or_default();
    let pairs = |list: &[(String, String)]| -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.clone(), expand(v))).collect()
    };
    Ok(match &step.executor {
        Executor::Jq(jq) => crate::BuiltinJob::Jq {
            filter: line,
            input: step.script.as_deref().map(expand).unwrap_or_default(),
            raw: jq.raw,
        },
        Executor::Http(http) => {
            let (method, url) = line
                .trim()
                .split_once(' ')
                .map(|(m, u)| (m.to_ascii_uppercase(), u.trim().to_owned()))
                .ok_or_else(|| format!("`{line}` is not `METHOD URL`"))?;
            let mut config = (**http).clone();
            config.headers = pairs(&http.headers);
            config.query = pairs(&http.query);
            config.body = http.body.as_deref().map(expand);
            crate::BuiltinJob::Http {
                method,
                url,
                config,
            }
        }
        Executor::Mail(mail) => {
            let mut mail = (**mail).clone();
            mail.from = expand(&mail.from);
            mail.to = mail.to.iter().map(|t| expand(t)).collect();
            mail.subject = expand(&mail.subject);
            mail.message = expand(&mail.message);
            mail.attachments = mail.attachments.iter().map(|a| expand(a)).collect();
            crate::BuiltinJob::Mail {
                smtp: dag.smtp.as_ref().map(|s| expand_smtp(s, expand)),
                mail,
                dir: dir.to_path_buf(),
            }
        }
        Executor::Redis(r) => {
            // The DAG's `redis:` under the step's own settings, every string expanded.
            let mut with = match &dag.redis {
                Some(serde_json::Value::Object(m)) => m.clone(),
                _ => serde_json::Map::new(),
            };
            for (k, v) in &r.with {
                with.insert(k.clone(), v.clone());
            }
            let mut with = serde_json::Value::Object(with);
            expand_strings(&mut with, expand);
            crate::BuiltinJob::Redis {
                command: r.command.clone(),
                with,
            }
        }
        Executor::GitWorktree(w) => crate::BuiltinJob::GitWorktree {
            add: w.add,
            with: expanded(w.with.clone(), expand),
            dir: dir.to_path_buf(),
            run: ctx.run_id.clone(),
            step: step.id.clone().unwrap_or_else(|| step.name.clone()),
        },
        Executor::State(state) => {
            let with = expanded(state.with.clone(), expand);
            // What is kept across runs is in the store in clear: no secret of the run.
            if !ctx.mask.is_empty()
                && with
                    .get("value")
                    .is_some_and(|v| holds_secret(v, &ctx.mask))
            {
                return Err(
                    "`with.value` holds a secret of the run: state is kept in the store as it is written, so it never takes a secret".into(),
                );
            }
            let step_name = step.id.clone().unwrap_or_else(|| step.name.clone());
            crate::BuiltinJob::State {
                op: state.op,
                with,
                root: vars
                    .get("run.root_name")
                    .map_or_else(|| dag.name.clone(), str::to_owned),
                dag: dag.name.clone(),
                by: serde_json::json!({
                    "dag_name": dag.name,
                    "dag_run_id": ctx.run_id,
                    "step_name": step_name,
                })
                .to_string(),
                home: home.to_path_buf(),
            }
        }
        Executor::S3(s3) => {
            // The DAG's `s3:` under the step's own settings, every string expanded.
            let mut with = dag.s3.clone();
            for (k, v) in &s3.with {
                with.insert(k.clone(), v.clone());
            }
            crate::BuiltinJob::S3 {
                op: s3.op,
                with: expanded(with, expand),
                dir: dir.to_path_buf(),
            }
        }
        Executor::GitCheckout(g) => {
            let mut g = (**g).clone();
            g.repository = expand(&g.repository);
            g.path = expand(&g.path);
            for text in [
                &mut g.reference,
                &mut g.token,
                &mut g.username,
                &mut g.password,
                &mut g.ssh_key_path,
            ] {
                *text = text.as_deref().map(expand);
            }
            crate::BuiltinJob::GitCheckout {
                git: g,
                dir: dir.to_path_buf(),
            }
        }
        Executor::Template(t) => {
            let mut t = (**t).clone();
            // The template's own text is never expanded; a reference to it is resolved.
            if let Some(r) = t.template_ref.take() {
                t.template = Some(expand(&r));
            }
            expand_strings(&mut t.data, expand);
            t.output = t.output.as_deref().map(expand);
            crate::BuiltinJob::Template {
                template: t,
                dir: dir.to_path_buf(),
            }
        }
        Executor::Data(data) => {
            let mut data = (**data).clone();
            data.source = match data.source {
                wharf_spec::DataSource::Text(t) => wharf_spec::DataSource::Text(expand(&t)),
                wharf_spec::DataSource::File(f) => wharf_spec::DataSource::File(expand(&f)),
                wharf_spec::DataSource::Value(mut v) => {
                    expand_strings(&mut v, expand);
                    wharf_spec::DataSource::Value(v)
                }
            };
            crate::BuiltinJob::Data {
                data,
                dir: dir.to_path_buf(),
            }
        }
        Executor::Sftp(sftp) => crate::BuiltinJob::Sftp {
            config: expand_ssh(&sftp.ssh.over(dag.ssh.as_ref()), expand),
            upload: sftp.upload,
            source: sftp.source.as_deref().map(expand),
            destination: sftp.destination.as_deref().map(expand),
            dir: dir.to_path_buf(),
        },
        Executor::Ssh(ssh) => {
            let config = expand_ssh(&ssh.over(dag.ssh.as_ref()), expand);
            crate::BuiltinJob::Ssh {
                config,
                command: line,
                script: step.script.as_deref().map(expand),
                dir: dir.to_path_buf(),
            }
        }
        Executor::Wait(w) => {
            use wharf_spec::WaitStep;
            let wait = match &**w {
                WaitStep::Duration(d) => WaitStep::Duration(expand(d)),
                WaitStep::Until(u) => WaitStep::Until(expand(u)),
                WaitStep::File {
                    path,
                    missing,
                    poll,
                } => WaitStep::File {
                    path: expand(path),
                    missing: *missing,
                    poll: expand(poll),
                },
                WaitStep::Http(h) => {
                    let mut h = (**h).clone();
                    for text in [
                        &mut h.method,
                        &mut h.url,
                        &mut h.poll,
                        &mut h.request_timeout,
                    ] {
                        *text = expand(text);
                    }
                    h.body = h.body.as_deref().map(expand);
                    h.headers = pairs(&h.headers);
                    WaitStep::Http(Box::new(h))
                }
            };
            crate::BuiltinJob::Wait {
                wait,
                dir: dir.to_path_buf(),
            }
        }
        Executor::Emit(emit) => crate::BuiltinJob::Emit(match &**emit {
            wharf_spec::Emit::Log(message) => wharf_spec::Emit::Log(expand(message)),
            wharf_spec::Emit::Outputs(values) => wharf_spec::Emit::Outputs(pairs(values)),
            wharf_spec::Emit::Noop => wharf_spec::Emit::Noop,
        }),
        Executor::Enqueue(e) => {
            let target = expand(&e.dag);
            if dag.locals.iter().any(|l| l.name == target) {
                return Err(format!(
                    "`{target}` is a DAG of this file: a run of it cannot wait in a queue on its own (put it in a file of its own, or run it with `dag.run`)"
                ));
            }
            // Read now: a DAG that cannot run is told here, and its file and queue known.
            let dags = crate::installation::dags_dir(home);
            let child = wharf_spec::calls::resolve(dag, &target, Some(&dags))?;
            if let Some(task) = crate::task::has_human_task(&child) {
                return Err(crate::task::refused_as_child(&child, task));
            }
            let call = wharf_spec::Call {
                target: target.clone(),
                params: e.params.clone(),
                parallel: e.parallel.clone(),
                foreach: None,
            };
            // Items that come to the same params are one run.
            let mut runs: Vec<Vec<String>> = Vec::new();
            for params in crate::subdag::children_of(&call, vars)? {
                if !runs.contains(&params) {
                    runs.push(params);
                }
            }
            if runs.is_empty() {
                return Err("`parallel` has no items: no run to enqueue".into());
            }
            let given = e
                .queue
                .as_deref()
                .map(expand)
                .filter(|q| !q.trim().is_empty());
            crate::BuiltinJob::Enqueue {
                file: child.file.clone(),
                queue_given: given.is_some(),
                queue: given.or_else(|| child.queue_place().map(|(q, _)| q)),
                name: child.name,
                runs,
                parallel: e.parallel.is_some(),
                home: home.to_path_buf(),
            }
        }
        Executor::File(file) => {
            let mut file = (**file).clone();
            for text in [
                &mut file.path,
                &mut file.source,
                &mut file.destination,
                &mut file.content,
                &mut file.pattern,
            ] {
                *text = text.as_deref().map(expand);
            }
            let dir = if file.artifact {
                super::artifacts_dir(ctx)
            } else {
                dir.to_path_buf()
            };
            crate::BuiltinJob::File { file, dir }
        }
        Executor::Archive(a) => {
            let mut archive = (**a).clone();
            for text in [
                &mut archive.source,
                &mut archive.destination,
                &mut archive.format,
            ] {
                *text = text.as_deref().map(expand);
            }
            for list in [&mut archive.include, &mut archive.exclude] {
                *list = list.iter().map(|g| expand(g)).collect();
            }
            crate::BuiltinJob::Archive {
                archive,
                op: line.trim().to_owned(),
                dir: dir.to_path_buf(),
            }
        }
        Executor::Router(router) => crate::BuiltinJob::Router {
            value: expand(&router.value),
            routes: router
                .routes
                .iter()
                .map(|(pattern, targets)| {
                    let shown = if pattern.starts_with("num:") {
                        expand(pattern)
                    } else {
                        pattern.clone()
                    };
                    (shown, targets.clone())
                })
                .collect(),
        },
        Executor::Sql(sql) => {
            let mut sql = (**sql).clone();
            // The SQL: the config's `query`, else the step's `command` or `script`.
            sql.query = sql
                .query
                .as_deref()
                .map(expand)
                .or_else(|| step.command.as_ref().map(|_| line.clone()))
                .or_else(|| step.script.as_deref().map(expand));
            for text in [
                &mut sql.dsn,
                &mut sql.null_string,
                &mut sql.output_file,
                &mut sql.advisory_lock,
            ] {
                *text = text.as_deref().map(expand);
            }
            match &mut sql.params {
                wharf_spec::SqlParams::None => {}
                wharf_spec::SqlParams::Positional(values) => {
                    values.iter_mut().for_each(|v| expand_strings(v, expand));
                }
                wharf_spec::SqlParams::Named(values) => {
                    values
                        .iter_mut()
                        .for_each(|(_, v)| expand_strings(v, expand));
                }
            }
            if let Some(import) = sql.import.as_mut() {
                import.input_file = expand(&import.input_file);
                import.table = expand(&import.table);
                import.format = import.format.as_deref().map(expand);
                import.conflict_target = import.conflict_target.as_deref().map(expand);
                for list in [&mut import.columns, &mut import.update_columns] {
                    *list = list.iter().map(|c| expand(c)).collect();
                }
            }
            crate::BuiltinJob::Sql {
                sql,
                dir: dir.to_path_buf(),
            }
        }
        _ => return Err("the step is not one wharf runs in its own process".into()),
    })
}

/// An `ssh` (or `sftp`) step's connection with its variables expanded.
fn expand_ssh(
    ssh: &wharf_spec::SshStep,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> wharf_spec::SshStep {
    let text = |v: &Option<String>| v.as_deref().map(expand);
    wharf_spec::SshStep {
        user: text(&ssh.user),
        host: text(&ssh.host),
        port: ssh.port,
        key: text(&ssh.key),
        password: text(&ssh.password),
        strict_host_key: ssh.strict_host_key,
        known_host_file: text(&ssh.known_host_file),
        shell: text(&ssh.shell),
    }
}

/// `smtp` with its variables expanded (`password: ${SMTP_PASSWORD}`).
pub(crate) fn expand_smtp(
    smtp: &wharf_spec::Smtp,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> wharf_spec::Smtp {
    wharf_spec::Smtp {
        host: expand(&smtp.host),
        port: smtp.port,
        username: smtp.username.as_deref().map(expand),
        password: smtp.password.as_deref().map(expand),
    }
}

/// The file an attempt writes its declared outputs to (`DAGU_OUTPUT_FILE`), beside its
/// stdout log.
pub(super) fn outputs_file(stdout: &std::path::Path) -> std::path::PathBuf {
    stdout.with_extension("outputs")
}

/// The declared outputs of a succeeded attempt from its `DAGU_OUTPUT_FILE`: `NAME=value`
/// lines and `NAME<<DELIMITER` blocks; each declared once, nothing undeclared, JSON where
/// declared `json`.
pub(super) fn read_outputs(
    step: &Step,
    file: &std::path::Path,
    limit: u64,
) -> Result<Vec<(String, String)>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read DAGU_OUTPUT_FILE: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "DAGU_OUTPUT_FILE holds {} bytes, more than maxOutputSize ({limit})",
            bytes.len()
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| "DAGU_OUTPUT_FILE is not UTF-8 text".to_owned())?;
    let text = text.replace("\r\n", "\n");
    let mut found: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return Err("DAGU_OUTPUT_FILE has an empty line outside a value".into());
        }
        // `NAME<<DELIMITER` when what comes before `<<` is a name; `NAME=value` (whose
        // value may hold `<<`) otherwise.
        let heredoc = line
            .split_once("<<")
            .filter(|(name, _)| !name.contains('='));
        let (name, value) = if let Some((name, delimiter)) = heredoc {
            let valid = delimiter
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && delimiter
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`{delimiter}` cannot end a value in DAGU_OUTPUT_FILE"
                ));
            }
            let mut value: Vec<&str> = Vec::new();
            loop {
                match lines.next() {
                    Some(l) if l == delimiter => break,
                    Some(l) => value.push(l),
                    None => {
                        return Err(format!(
                            "the value of `{name}` in DAGU_OUTPUT_FILE is not closed by `{delimiter}`"
                        ));
                    }
                }
            }
            (name, value.join("\n"))
        } else if let Some((name, value)) = line.split_once('=') {
            (name, value.to_owned())
        } else {
            return Err(format!(
                "`{line}` in DAGU_OUTPUT_FILE is neither NAME=value nor NAME<<DELIMITER"
            ));
        };
        let Some(declared) = step.outputs.iter().find(|o| o.name == name) else {
            return Err(format!(
                "the step wrote `{name}`, an undeclared step output (declare it in `outputs`)"
            ));
        };
        if found.iter().any(|(n, _)| n == name) {
            return Err(format!("the step wrote the output `{name}` twice"));
        }
        if declared.json && serde_json::from_str::<serde_json::Value>(&value).is_err() {
            return Err(format!(
                "the output `{name}` is declared json, and is not JSON"
            ));
        }
        found.push((name.to_owned(), value));
    }
    if let Some(missing) = step
        .outputs
        .iter()
        .find(|o| !found.iter().any(|(n, _)| *n == o.name))
    {
        return Err(format!(
            "the output `{}` was not emitted: the step did not write it to DAGU_OUTPUT_FILE",
            missing.name
        ));
    }
    Ok(found)
}
