//! Steps in the DAG-level container: each an exec, wrapped by the helper (or the image's
//! shell) in a process group of its own; its exit code from the exec's inspect or its
//! `exec_die` event; stopping it through the helper.

use super::*;

impl SharedExecutor {
    /// The step's command (or commands, one after the other until one fails) as execs.
    pub(super) async fn exec(&self, docker: &Docker, c: &Running, job: &StepJob) -> Exit {
        let wharf_engine::Work::Exec(e) = &job.work else {
            return Exit::error("the step has nothing to run in the container");
        };
        if let Err(e) = job.prepare_redirects() {
            return Exit::error(e);
        }
        let mut head = Vec::new();
        let mut exit = Exit::default();
        for (i, argv) in std::iter::once(&e.argv).chain(&e.more).enumerate() {
            let stdin = if i == 0 { e.stdin.clone() } else { None };
            exit = self.exec_one(docker, c, job, e, argv, stdin).await;
            head.extend_from_slice(&exit.stdout_head);
            if !exit.succeeded() {
                break;
            }
        }
        exit.stdout_head = head;
        exit
    }

    async fn exec_one(
        &self,
        docker: &Docker,
        c: &Running,
        job: &StepJob,
        e: &wharf_engine::ExecJob,
        argv: &[String],
        stdin: Option<String>,
    ) -> Exit {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let token = format!(
            "{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd = Vec::with_capacity(argv.len() + 3);
        if c.helper {
            cmd.extend([INIT_PATH.to_owned(), "run".to_owned(), token.clone()]);
        }
        cmd.extend(argv.iter().cloned());
        let mut env: Vec<String> = c.exec_env.clone();
        env.extend(job.env.iter().map(|(k, v)| format!("{k}={v}")));
        let config = ExecConfig {
            cmd: Some(cmd),
            env: Some(env),
            user: c.exec_user.clone(),
            working_dir: e.working_dir.clone().or_else(|| c.exec_dir.clone()),
            attach_stdin: Some(stdin.is_some()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec_id = match docker.create_exec(&c.id, config).await {
            Ok(r) => r.id,
            Err(err) => return exec_failed(docker, c, &err).await,
        };
        let options = StartExecOptions {
            detach: false,
            ..Default::default()
        };
        let (output, input) = match docker.start_exec(&exec_id, Some(options)).await {
            Ok(StartExecResults::Attached { output, input }) => (output, input),
            Ok(StartExecResults::Detached) => return Exit::error("the exec started detached"),
            Err(err) => return exec_failed(docker, c, &err).await,
        };
        // A script goes in on stdin, written beside the copying of the output (a long
        // script and a chatty program must not wait for each other).
        let feeder = stdin.map(|script| {
            let mut input = input;
            tokio::spawn(async move {
                let _ = input.write_all(script.as_bytes()).await;
                let _ = input.shutdown().await;
            })
        });
        let kill = |signal: String| {
            let (exec_id, token) = (exec_id.clone(), token.clone());
            async move {
                if c.helper {
                    signal_step(docker, &c.id, &signal, &token).await;
                } else {
                    signal_host_process(docker, &exec_id, &signal).await;
                }
            }
        };
        let pumped = pump(output, job, kill).await;
        if let Some(f) = feeder {
            f.abort();
        }
        let stopped = pumped.stopped;
        let code = exec_code(docker, &c.watch, &exec_id).await;
        let mut exit = pumped.exit(code);
        if code != Some(0) && !stopped && exit.error.is_none() {
            exit.error = container_gone(docker, c).await;
        }
        exit
    }
}

/// The exit code of an exec whose output has ended: its inspect, or (while the daemon
/// still marks it running) its `exec_die` event.
pub(super) async fn exec_code(docker: &Docker, watch: &Watch, exec_id: &str) -> Option<i32> {
    let from_inspect = || async {
        match docker.inspect_exec(exec_id).await {
            Ok(info) if info.running == Some(false) => {
                Some(info.exit_code.and_then(|c| i32::try_from(c).ok()))
            }
            Ok(_) => None,
            Err(_) => Some(None),
        }
    };
    // The event often comes before the output's end: then no inspect is needed.
    let seen = watch
        .seen
        .lock()
        .ok()
        .and_then(|s| s.exits.get(exec_id).copied());
    if let Some(code) = seen {
        return Some(i32::try_from(code).unwrap_or(-1));
    }
    if let Some(code) = from_inspect().await {
        return code;
    }
    loop {
        let event = watch.until(|s| {
            s.exits
                .get(exec_id)
                .map(|c| Some(i32::try_from(*c).unwrap_or(-1)))
                .or(s.lost.then_some(None))
        });
        // The events are the answer; the inspect again after a while is for an event
        // stream that broke.
        tokio::select! {
            code = event => {
                if code.is_some() {
                    return code;
                }
                return from_inspect().await.flatten();
            }
            () = tokio::time::sleep(Duration::from_secs(2)) => {
                if let Some(code) = from_inspect().await {
                    return code;
                }
            }
        }
    }
}

/// An exec that could not be made or started: the container is gone (and why), or the
/// daemon's reason, as `docker exec` reports it (126).
pub(super) async fn exec_failed(
    docker: &Docker,
    c: &Running,
    err: &bollard::errors::Error,
) -> Exit {
    if let Some(gone) = container_gone(docker, c).await {
        return Exit::error(gone);
    }
    Exit {
        code: Some(126),
        ..Exit::error(format!(
            "cannot exec in the container {}: {}",
            c.name,
            describe(err)
        ))
    }
}

/// When the container no longer runs: why a step in it failed.
pub(super) async fn container_gone(docker: &Docker, c: &Running) -> Option<String> {
    let running = match docker.inspect_container(&c.id, None).await {
        // Nothing is known of the container while Docker does not answer.
        Err(e) if crate::unreachable(&e) => {
            return Some(format!(
                "{} (the step ran in the DAG-level container {})",
                describe(&e),
                c.name
            ));
        }
        inspected => inspected.ok().and_then(|i| i.state).and_then(|s| s.running),
    };
    if running == Some(true) {
        return None;
    }
    Some(format!(
        "the DAG-level container {} is not running; {}",
        c.name,
        state_and_log(docker, c).await
    ))
}

/// Stops a step inside the container: the helper signals the step's process group.
pub(super) async fn signal_step(docker: &Docker, container: &str, signal: &str, token: &str) {
    let number = signal
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .unwrap_or(9);
    let config = ExecConfig {
        cmd: Some(vec![
            INIT_PATH.to_owned(),
            "signal".to_owned(),
            number.to_string(),
            token.to_owned(),
        ]),
        user: Some("0".into()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let Ok(exec) = docker.create_exec(container, config).await else {
        return;
    };
    if let Ok(StartExecResults::Attached { mut output, .. }) =
        docker.start_exec(&exec.id, None).await
    {
        while output.next().await.is_some() {}
    }
}

/// Without the helper: the exec's process, signalled on the host (when wharf sees it).
pub(super) async fn signal_host_process(docker: &Docker, exec_id: &str, signal: &str) {
    if let Ok(info) = docker.inspect_exec(exec_id).await
        && let (Some(pid), Ok(sig)) = (
            info.pid.and_then(|p| i32::try_from(p).ok()),
            signal.parse::<nix::sys::signal::Signal>(),
        )
        && pid > 0
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}
