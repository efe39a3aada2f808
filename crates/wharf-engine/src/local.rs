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
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::executor::{BoxFuture, Executor, Exit, Program, StepJob, Work};
use crate::spawn::Process;
use wharf_spec::env::Mask;

pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit> {
        Box::pin(run(job))
    }
}

async fn run(job: &StepJob) -> Exit {
    let Work::Host(local) = &job.work else {
        return Exit::error("the host executor runs host commands only");
    };
    let cmd = command(job, local);
    if let Err(e) = job.prepare_redirects() {
        return Exit::error(e);
    }
    let redirect =
        |path: &Option<PathBuf>| path.as_ref().map(|p| LazyLog::masked(p.clone(), &job.mask));
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
    let pid = i32::try_from(child.id()).ok().filter(|p| *p > 0);
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
                        LazyLog::masked(job.stdout.clone(), &job.mask),
                        redirect(&job.redirect_stdout),
                        job.capture_stdout,
                    )
                    .await
                }
                None => (Vec::new(), None),
            }
        };
        let err = async {
            match err_pipe {
                Some(r) => {
                    let log = LazyLog::masked(job.stderr.clone(), &job.mask);
                    relay(r, log, redirect(&job.redirect_stderr), None).await
                }
                None => (Vec::new(), None),
            }
        };
        let ((head, out_error), (_, err_error)) = tokio::join!(out, err);
        (head, out_error.or(err_error))
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
    let (stdout_head, log_error) = match captured {
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
                // Output that could not be kept fails the step, whatever its exit code.
                error: log_error,
                stdout_head,
                ..Exit::default()
            }
        }
        Err(e) => Exit::error(format!("waiting for the step's process failed: {e}")),
    }
}

/// The step's process: the program through its shell (or a script with its own `#!`),
/// in its own process group, its output piped.
fn command(job: &StepJob, local: &crate::executor::LocalCommand) -> Process {
    // Found here on the step's PATH, the shell is spawned without a fork of this process
    // (std spawns a program given by name with a PATH of its own by forking); it still
    // sees the name it was given.
    let shell = program_path(&local.shell[0], &job.env);
    let shell = shell.as_deref().unwrap_or(&local.shell[0]);
    let mut cmd = if wharf_spec::formats::is_nix_shell(&local.shell) {
        nix_shell(job, local, shell)
    } else {
        through_shell(job, local, shell)
    };
    if !matches!(local.program, Program::Executable(_)) {
        cmd.arg0(&local.shell[0]);
    }
    let mut cmd = crate::vars::step_process(cmd, job.env.iter());
    cmd.current_dir(&job.dir);
    cmd
}

/// Where `name` is found on the step's `PATH` (its env's, else wharf's own): None when
/// `name` is a path already or is not found (the spawn then says so).
fn program_path(name: &str, env: &crate::StepEnv) -> Option<String> {
    if name.contains('/') {
        return None;
    }
    let path = env
        .get("PATH")
        .map(str::to_owned)
        .or_else(|| std::env::var("PATH").ok())?;
    // A relative entry means a folder of the step's working directory: left to the spawn.
    if path.split(':').any(|d| !d.starts_with('/')) {
        return None;
    }
    path.split(':').find_map(|dir| {
        use std::os::unix::fs::PermissionsExt;
        let candidate = std::path::Path::new(dir).join(name);
        let meta = std::fs::metadata(&candidate).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .then(|| candidate.to_string_lossy().into_owned())
    })
}

/// `nix-shell` takes the line to run with `--run` (its own options, `-p` packages
/// included, come before); the positional params are set at the start of the line.
fn nix_shell(job: &StepJob, local: &crate::executor::LocalCommand, shell: &str) -> Process {
    let quoted = |items: &[String]| shell_words::join(items);
    let positional = if job.positional.is_empty() {
        String::new()
    } else {
        format!("set -- {}; ", quoted(&job.positional))
    };
    let line = match &local.program {
        Program::Line(line) => format!("{positional}{line}"),
        Program::Script(file) => format!(
            "{positional}sh {} \"$@\"",
            shell_words::quote(&file.to_string_lossy())
        ),
        Program::Executable(file) => format!(
            "{positional}{} \"$@\"",
            shell_words::quote(&file.to_string_lossy())
        ),
    };
    let mut c = Process::new(shell);
    c.args(&local.shell[1..]).arg("--run").arg(line);
    c
}

fn through_shell(job: &StepJob, local: &crate::executor::LocalCommand, shell: &str) -> Process {
    match &local.program {
        Program::Line(line) => {
            let mut c = Process::new(shell);
            c.args(&local.shell[1..])
                .arg("-c")
                .arg(line)
                .arg(&job.dag_name)
                .args(&job.positional);
            c
        }
        Program::Script(file) => {
            let mut c = Process::new(shell);
            c.args(&local.shell[1..]).arg(file).args(&job.positional);
            c
        }
        Program::Executable(file) => {
            let mut c = Process::new(file);
            c.args(&job.positional);
            c
        }
    }
}

/// Hides the run's secrets in a stream that comes in pieces: a value cut between two
/// pieces is hidden too, by holding back the end of a piece that could start one.
struct Masking {
    mask: Arc<Mask>,
    held: Vec<u8>,
}

impl Masking {
    fn new(mask: Arc<Mask>) -> Self {
        Self {
            mask,
            held: Vec::new(),
        }
    }

    /// What of `bytes` (after what was held) can be written now.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(bytes);
        let masked = self.mask.bytes(&self.held);
        let split = masked
            .len()
            .saturating_sub(self.mask.longest().saturating_sub(1));
        self.held = masked[split..].to_vec();
        masked[..split].to_vec()
    }

    /// The rest, at the end of the stream.
    fn finish(&mut self) -> Vec<u8> {
        let rest = self.mask.bytes(&self.held);
        self.held.clear();
        rest
    }
}

/// Where a step's output goes, for the executors that copy it themselves (containers,
/// Swarm jobs, builtin steps): its logs, its `stdout:`/`stderr:` files, and the start of
/// stdout for `output:`.
pub struct StepOutput {
    out: LazyLog,
    err: LazyLog,
    redirect_out: Option<LazyLog>,
    redirect_err: Option<LazyLog>,
    head: Vec<u8>,
    limit: usize,
}

impl StepOutput {
    pub fn new(job: &crate::StepJob) -> Self {
        let masked = |p: &std::path::Path| LazyLog::masked(p.to_path_buf(), &job.mask);
        Self {
            out: masked(&job.stdout),
            err: masked(&job.stderr),
            redirect_out: job.redirect_stdout.as_deref().map(masked),
            redirect_err: job.redirect_stderr.as_deref().map(masked),
            head: Vec::new(),
            limit: job.capture_stdout.map_or(0, |c| {
                usize::try_from(c).unwrap_or(usize::MAX).saturating_add(1)
            }),
        }
    }

    pub async fn stdout(&mut self, bytes: &[u8]) {
        self.out.write(bytes).await;
        if let Some(r) = self.redirect_out.as_mut() {
            r.write(bytes).await;
        }
        if self.head.len() < self.limit {
            let take = bytes.len().min(self.limit - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
    }

    pub async fn stderr(&mut self, bytes: &[u8]) {
        self.err.write(bytes).await;
        if let Some(r) = self.redirect_err.as_mut() {
            r.write(bytes).await;
        }
    }

    /// Flushes every file: the start of stdout, and why the output is incomplete (a file
    /// that could not be written), if it is.
    pub async fn finish(mut self) -> (Vec<u8>, Option<String>) {
        for log in [&mut self.out, &mut self.err]
            .into_iter()
            .chain(self.redirect_out.as_mut())
            .chain(self.redirect_err.as_mut())
        {
            log.flush().await;
        }
        let problem = [
            Some(&self.out),
            Some(&self.err),
            self.redirect_out.as_ref(),
            self.redirect_err.as_ref(),
        ]
        .into_iter()
        .flatten()
        .find_map(|l| l.error().map(str::to_owned));
        (self.head, problem)
    }
}

/// A log file that is created when its first byte comes.
pub struct LazyLog {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    /// The first write that failed (a full disk): the log is incomplete from there on,
    /// and nothing more is written to it.
    error: Option<String>,
    /// The run's secrets, hidden in what is written.
    masking: Option<Masking>,
}

impl LazyLog {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            error: None,
            masking: None,
        }
    }

    /// A log in which the values of `mask` never appear.
    pub fn masked(path: PathBuf, mask: &Arc<Mask>) -> Self {
        let mut log = Self::new(path);
        if !mask.is_empty() {
            log.masking = Some(Masking::new(Arc::clone(mask)));
        }
        log
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        match self.masking.as_mut() {
            Some(m) => {
                let shown = m.feed(bytes);
                self.write_raw(&shown).await;
            }
            None => self.write_raw(bytes).await,
        }
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        if self.error.is_some() || bytes.is_empty() {
            return;
        }
        // The disk is full and the space kept in reserve is for the run's record: a log
        // must not take it.
        if wharf_store::reserve_released() {
            return self.failed(&std::io::Error::from_raw_os_error(nix::libc::ENOSPC));
        }
        if self.file.is_none() {
            match tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await
            {
                Ok(f) => self.file = Some(f),
                Err(e) => return self.failed(&e),
            }
        }
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(bytes).await
        {
            self.failed(&e);
        }
    }

    pub async fn flush(&mut self) {
        if let Some(rest) = self.masking.as_mut().map(Masking::finish) {
            self.write_raw(&rest).await;
        }
        if let Some(f) = self.file.as_mut()
            && self.error.is_none()
            && let Err(e) = f.flush().await
        {
            self.failed(&e);
        }
    }

    fn failed(&mut self, e: &std::io::Error) {
        self.error = Some(format!(
            "cannot write the log {}: {e}; the output from there on is lost",
            self.path.display()
        ));
        self.file = None;
    }

    /// Why the log is incomplete, if it is.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Copies a pipe to the log (and the user's redirect file) as it comes; returns the first
/// `capture` + 1 bytes, for `output:`.
async fn relay(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut log: LazyLog,
    mut other: Option<LazyLog>,
    capture: Option<u64>,
) -> (Vec<u8>, Option<String>) {
    let limit = capture.map_or(0, |c| {
        usize::try_from(c).unwrap_or(usize::MAX).saturating_add(1)
    });
    let mut head = Vec::new();
    // Small until a read fills it: most steps print little, and a request under a
    // kilobyte is served from glibc's small bins (a larger one first merges its fast bins,
    // a cost paid at every step). Read into its spare capacity: nothing is zeroed for a
    // step that prints nothing.
    let mut buf = Vec::with_capacity(1000);
    loop {
        buf.clear();
        // Read to the end even when nothing can be written: the step must not block on a
        // full pipe.
        let n = match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        log.write(&buf[..n]).await;
        if let Some(other) = other.as_mut() {
            other.write(&buf[..n]).await;
        }
        if head.len() < limit {
            let take = n.min(limit - head.len());
            head.extend_from_slice(&buf[..take]);
        }
        if n == buf.capacity() && buf.capacity() < 64 * 1024 {
            buf = Vec::with_capacity(64 * 1024);
        }
    }
    log.flush().await;
    if let Some(other) = other.as_mut() {
        other.flush().await;
    }
    let error = log
        .error()
        .or_else(|| other.as_ref().and_then(LazyLog::error))
        .map(str::to_owned);
    (head, error)
}

/// Sleeps, but gives up early when the step is stopped; true when it slept to the end.
pub async fn pause(duration: Duration, stop: &tokio_util::sync::CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = stop.cancelled() => false,
    }
}
