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
//! # Output
//!
//! stdout and stderr are pipes that wharf copies, as the bytes come, to the attempt's log
//! files (and to the step's `stdout:`/`stderr:` files). A log file is created with its
//! first byte, so a step that prints nothing has none (`wharf logs` shows it as empty):
//! creating two files per step was most of what a short step cost. Once the group is
//! killed the pipes reach their end and everything written is in the logs; a process that
//! left the group and keeps a pipe open is not waited for past the grace period.

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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);

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

    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(_) if !job.dir.is_dir() => {
            return Exit::error(format!(
                "the working directory {} does not exist",
                job.dir.display()
            ));
        }
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

    let (out_pipe, err_pipe) = (child.stdout.take(), child.stderr.take());
    // Both pipes are copied in this task, alongside the wait: no task hand-offs per step.
    let io = async {
        let out = async {
            match out_pipe {
                Some(r) => {
                    relay(
                        r,
                        LazyLog::new(job.stdout.clone()),
                        redirect_out,
                        job.capture_stdout,
                    )
                    .await
                }
                None => Vec::new(),
            }
        };
        let err = async {
            if let Some(r) = err_pipe {
                relay(r, LazyLog::new(job.stderr.clone()), redirect_err, None).await;
            }
        };
        tokio::join!(out, err).0
    };
    let wait = async {
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
        (status, stopped)
    };
    tokio::pin!(io, wait);
    let mut captured = None;
    let (status, stopped) = loop {
        tokio::select! {
            head = &mut io, if captured.is_none() => captured = Some(head),
            ended = &mut wait => break ended,
        }
    };
    // The pipes close as the group dies; a process that left the group and still holds
    // them is not waited for past the grace period.
    let stdout_head = match captured {
        Some(head) => head,
        None => tokio::time::timeout(job.grace.max(Duration::from_secs(1)), io)
            .await
            .unwrap_or_default(),
    };
    match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            Exit {
                code: status.code(),
                signal: status.signal(),
                stopped,
                error: None,
                stdout_head,
            }
        }
        Err(e) => Exit::error(format!("waiting for the step's process failed: {e}")),
    }
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

/// A log file that is created when its first byte comes.
pub struct LazyLog {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    failed: bool,
}

impl LazyLog {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            failed: false,
        }
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        if self.file.is_none() && !self.failed {
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
            {
                Ok(f) => self.file = Some(f),
                Err(_) => self.failed = true,
            }
        }
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(bytes).await;
        }
    }

    pub async fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush().await;
        }
    }
}

/// Copies a pipe to the log (and the user's redirect file) as it comes; returns the first
/// `capture` + 1 bytes, for `output:`.
async fn relay(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut log: LazyLog,
    other: Option<std::fs::File>,
    capture: Option<u64>,
) -> Vec<u8> {
    let mut other = other.map(tokio::fs::File::from_std);
    let limit = capture.map_or(0, |c| {
        usize::try_from(c).unwrap_or(usize::MAX).saturating_add(1)
    });
    let mut head = Vec::new();
    // Small until a read fills it: most steps print little, and zeroing a large buffer
    // for each of them costs more than their reads.
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.write(&buf[..n]).await;
        if let Some(f) = other.as_mut() {
            let _ = f.write_all(&buf[..n]).await;
        }
        if head.len() < limit {
            let take = n.min(limit - head.len());
            head.extend_from_slice(&buf[..take]);
        }
        if n == buf.len() && buf.len() < 64 * 1024 {
            buf = vec![0u8; 64 * 1024];
        }
    }
    log.flush().await;
    if let Some(f) = other.as_mut() {
        let _ = f.flush().await;
    }
    head
}

/// Sleeps, but gives up early when the step is stopped; true when it slept to the end.
pub async fn pause(duration: Duration, stop: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = stop.cancelled() => false,
    }
}
