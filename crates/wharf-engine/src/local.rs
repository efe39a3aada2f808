//! The local executor: a step's command through the shell, on the host.
//!
//! # Supervision
//!
//! Each attempt runs in a process group of its own (`setpgid(0, 0)` at spawn), so that a
//! signal to the group reaches the shell, what it started, and what those started, but not
//! wharf: a Ctrl-C in the terminal reaches wharf alone, and wharf decides what each step
//! gets. Stopping an attempt (stop request, timeout) is:
//!
//! 1. the step's `signalOnStop` (SIGTERM by default) to the whole group;
//! 2. after the grace period (`maxCleanUpTimeSec`, 5 s by default), SIGKILL to the group;
//! 3. waiting for the group's leader, which now cannot refuse.
//!
//! When the leader exits, by itself or stopped, whatever is left in its group (a
//! background job, a grandchild that ignored SIGTERM) is killed with SIGKILL: a step ends
//! when its command ends, and nothing of it outlives it. Processes that leave the group on
//! purpose (`setsid`, daemons) are beyond this; containers are the tool for those.
//!
//! stdout and stderr go straight to the attempt's log files (the child writes them itself:
//! nothing is relayed, so nothing is lost or reordered), unless the step redirects them
//! (`stdout:`/`stderr:`), in which case a pipe feeds both the log and the user's file.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::executor::{BoxFuture, Executor, Exit, StepJob};

pub struct LocalExecutor;

/// How a command is given to the shell.
#[derive(Debug, Clone)]
pub enum Program {
    /// `shell [args] -c LINE $0 $1 ...`.
    Line(String),
    /// `shell [args] FILE $1 ...`: a script written to a file.
    Script(PathBuf),
    /// `FILE $1 ...`: a script with its own `#!` line.
    Executable(PathBuf),
}

impl Executor for LocalExecutor {
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit> {
        Box::pin(run(job))
    }
}

async fn run(job: &StepJob) -> Exit {
    let local = &job.local;
    let mut cmd = match &local.program {
        Program::Line(line) => {
            let mut c = Command::new(&local.shell[0]);
            c.args(&local.shell[1..])
                .arg("-c")
                .arg(line)
                .arg(&job.dag_name)
                .args(&job.positional);
            c
        }
        Program::Script(file) => {
            let mut c = Command::new(&local.shell[0]);
            c.args(&local.shell[1..]).arg(file).args(&job.positional);
            c
        }
        Program::Executable(file) => {
            let mut c = Command::new(file);
            c.args(&job.positional);
            c
        }
    };
    cmd.current_dir(&job.dir)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .process_group(0);

    let (stdout_log, stderr_log) = match (open_log(&job.stdout), open_log(&job.stderr)) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            return Exit::error(format!("cannot open the step's log file: {e}"));
        }
    };
    let redirect_out = match job
        .redirect_stdout
        .as_deref()
        .map(open_redirect)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => return Exit::error(e),
    };
    let redirect_err = match job
        .redirect_stderr
        .as_deref()
        .map(open_redirect)
        .transpose()
    {
        Ok(f) => f,
        Err(e) => return Exit::error(e),
    };
    for (redirected, log, is_out) in [
        (redirect_out.is_some(), &stdout_log, true),
        (redirect_err.is_some(), &stderr_log, false),
    ] {
        let stdio = if redirected {
            Stdio::piped()
        } else {
            match log.try_clone() {
                Ok(f) => Stdio::from(f),
                Err(e) => return Exit::error(format!("cannot open the step's log file: {e}")),
            }
        };
        if is_out {
            cmd.stdout(stdio);
        } else {
            cmd.stderr(stdio);
        }
    }

    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let what = match &local.program {
                Program::Executable(f) => f.display().to_string(),
                _ => local.shell[0].clone(),
            };
            return Exit::error(format!("cannot start `{what}`: {e}"));
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    if let (Some(pid), Some(report)) = (pid, &job.on_spawn) {
        report(pid);
    }
    let group = pid.map(Pid::from_raw);

    let relays = [
        child
            .stdout
            .take()
            .map(|r| tokio::spawn(relay(r, stdout_log, redirect_out))),
        child
            .stderr
            .take()
            .map(|r| tokio::spawn(relay(r, stderr_log, redirect_err))),
    ];

    let mut stopped = false;
    let status = tokio::select! {
        status = child.wait() => status,
        () = job.stop.cancelled() => {
            stopped = true;
            if let Some(g) = group {
                let _ = killpg(g, job.signal);
            }
            match tokio::time::timeout(job.grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    if let Some(g) = group {
                        let _ = killpg(g, Signal::SIGKILL);
                    }
                    child.wait().await
                }
            }
        }
    };
    // Nothing of the step outlives it.
    if let Some(g) = group {
        let _ = killpg(g, Signal::SIGKILL);
    }
    for relay in relays.into_iter().flatten() {
        let _ = relay.await;
    }
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            Exit {
                code: status.code(),
                signal: status.signal(),
                stopped,
                error: None,
            }
        }
        Err(e) => Exit::error(format!("waiting for the step's process failed: {e}")),
    }
}

fn open_log(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn open_redirect(path: &std::path::Path) -> Result<std::fs::File, String> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| format!("cannot open {} for the step's output: {e}", path.display()))
}

/// Copies a pipe to the log file and the user's redirect file, as it comes.
async fn relay(
    mut from: impl tokio::io::AsyncRead + Unpin,
    log: std::fs::File,
    other: Option<std::fs::File>,
) {
    let mut log = tokio::fs::File::from_std(log);
    let mut other = other.map(tokio::fs::File::from_std);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = log.write_all(&buf[..n]).await;
                if let Some(f) = other.as_mut() {
                    let _ = f.write_all(&buf[..n]).await;
                }
            }
        }
    }
    let _ = log.flush().await;
    if let Some(f) = other.as_mut() {
        let _ = f.flush().await;
    }
}

/// Sleeps, but gives up early when the step is stopped; true when it slept to the end.
pub async fn pause(duration: Duration, stop: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = stop.cancelled() => false,
    }
}
