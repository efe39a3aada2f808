//! The steps wharf runs in its own process, without a shell or a container: `jq` (on
//! jaq, a jq written in Rust), `http` (hyper, TLS by rustls with the system's roots),
//! `mail` (lettre), `archive` (zip, tar and tar.gz: the zip, tar and flate2 crates),
//! `sqlite` (rusqlite) and `postgres` (tokio-postgres); and [`SmtpNotifier`], which sends
//! the mail about runs.
//!
//! Their output goes to the step's logs like a process's: masked, streamed, and its start
//! kept for `output:`.

mod archive;
mod data;
mod emit;
mod enqueue;
mod file;
mod git;
mod http;
mod jq;
mod mail;
mod otlp;
mod redis;
mod router;
mod s3;
mod sftp;
mod sql;
mod ssh;
mod state;
mod template;
mod wait;
mod worktree;

use std::sync::Arc;

use wharf_engine::{BoxFuture, BuiltinJob, Executor, Exit, StepJob, StepOutput, Work};

pub use mail::SmtpNotifier;
pub use otlp::OtlpExporter;

/// Runs `jq`, `http`, `mail` and `ssh` steps; one per run (its ssh connections are kept
/// for the run's steps).
#[derive(Debug, Default)]
pub struct BuiltinExecutor {
    sessions: ssh::Sessions,
}

impl Executor for BuiltinExecutor {
    fn run<'a>(&'a self, job: &'a StepJob) -> BoxFuture<'a, Exit> {
        Box::pin(async move {
            let Work::Builtin(work) = &job.work else {
                return Exit::error("not a jq, http or mail step");
            };
            if let Err(e) = job.prepare_redirects() {
                return Exit::error(e);
            }
            let mut out = Output::new(job);
            let result = match &**work {
                BuiltinJob::Jq { filter, input, raw } => {
                    jq::run(filter, input, *raw, &mut out).await
                }
                BuiltinJob::Http {
                    method,
                    url,
                    config,
                } => http::run(method, url, config, job, &mut out).await,
                BuiltinJob::File { file, dir } => file::run(file, dir, &mut out).await,
                BuiltinJob::Archive { archive, op, dir } => {
                    archive::run(archive, op, dir, &mut out).await
                }
                BuiltinJob::Emit(emit) => emit::run(emit, job, &mut out).await,
                BuiltinJob::Sql { sql, dir } => sql::run(sql, dir, job, &mut out).await,
                BuiltinJob::Router { value, routes } => router::run(value, routes, &mut out).await,
                BuiltinJob::Data { data, dir } => data::run(data, dir, &mut out).await,
                BuiltinJob::GitCheckout { git, dir } => git::run(git, dir, job, &mut out).await,
                BuiltinJob::S3 { op, with, dir } => s3::run(*op, with, dir, job, &mut out).await,
                BuiltinJob::GitWorktree {
                    add,
                    with,
                    dir,
                    run,
                    step,
                } => worktree::run(*add, with, dir, (run, step), job, &mut out).await,
                BuiltinJob::State {
                    op,
                    with,
                    dag,
                    root,
                    by,
                    home,
                } => {
                    let caller = state::Caller {
                        dag,
                        root,
                        by,
                        home,
                    };
                    state::run(*op, with, &caller, job, &mut out).await
                }
                BuiltinJob::Redis { command, with } => {
                    redis::run(command, with, job, &mut out).await
                }
                BuiltinJob::Template { template, dir } => {
                    template::run(template, dir, &mut out).await
                }
                BuiltinJob::Sftp {
                    config,
                    upload,
                    source,
                    destination,
                    dir,
                } => {
                    let transfer = sftp::Transfer {
                        upload: *upload,
                        source: source.as_deref(),
                        destination: destination.as_deref(),
                        dir,
                    };
                    sftp::run(&self.sessions, config, &transfer, job, &mut out).await
                }
                BuiltinJob::Wait { wait, dir } => wait::run(wait, dir, job, &mut out).await,
                BuiltinJob::Enqueue {
                    file,
                    name,
                    queue,
                    queue_given,
                    runs,
                    parallel,
                    home,
                } => {
                    let target = enqueue::Target {
                        file,
                        name,
                        queue: queue.as_deref(),
                        queue_given: *queue_given,
                        home,
                    };
                    enqueue::run(&target, runs, *parallel, job, &mut out).await
                }
                BuiltinJob::Mail { smtp, mail, dir } => {
                    mail::run_step(smtp.as_ref(), mail, dir, job, &mut out).await
                }
                BuiltinJob::Ssh {
                    config,
                    command,
                    script,
                    dir,
                } => {
                    ssh::run(
                        &self.sessions,
                        config,
                        command,
                        script.as_deref(),
                        dir,
                        job,
                        &mut out,
                    )
                    .await
                }
            };
            out.finish(result).await
        })
    }
}

/// How a builtin step ended, before its output is closed.
pub(crate) enum Ended {
    /// It did what it was asked (exit 0).
    Done,
    /// It failed: the message is written to stderr, the exit code is 1.
    Failed(String),
    /// What it ran (a remote command) exited with this code, not 0.
    Exited(i32),
    /// It was stopped (a stop request or the step's timeout).
    Stopped,
}

/// A builtin step's stdout and stderr: the logs, the `stdout:`/`stderr:` files, and the
/// start of stdout for `output:`.
pub(crate) struct Output(StepOutput);

impl Output {
    fn new(job: &StepJob) -> Self {
        Self(StepOutput::new(job))
    }

    pub(crate) async fn stdout(&mut self, bytes: &[u8]) {
        self.0.stdout(bytes).await;
    }

    pub(crate) async fn stderr(&mut self, bytes: &[u8]) {
        self.0.stderr(bytes).await;
    }

    async fn finish(mut self, ended: Ended) -> Exit {
        let mut exit = Exit::default();
        match ended {
            Ended::Done => exit.code = Some(0),
            Ended::Failed(why) => {
                self.stderr(format!("{why}\n").as_bytes()).await;
                exit.code = Some(1);
                exit.error = Some(why);
            }
            Ended::Exited(code) => exit.code = Some(code),
            Ended::Stopped => exit.stopped = true,
        }
        let (head, problem) = self.0.finish().await;
        if exit.error.is_none()
            && let Some(e) = problem
        {
            exit.error = Some(e);
            exit.code = Some(1);
        }
        exit.stdout_head = head;
        exit
    }
}

/// The step's `DAGU_OUTPUT_FILE`, when it declares outputs.
pub(crate) fn output_file(job: &StepJob) -> Option<&str> {
    job.env.get("DAGU_OUTPUT_FILE")
}

/// Writes a step's outputs to its `DAGU_OUTPUT_FILE`, each as a `NAME<<DELIMITER` record.
pub(crate) fn write_outputs(
    file: &str,
    outputs: impl IntoIterator<Item = (String, String)>,
) -> Result<(), String> {
    let mut records = String::new();
    for (name, value) in outputs {
        // A delimiter that is no line of the value.
        let mut delimiter = "WHARF_VALUE".to_owned();
        while value.lines().any(|l| l == delimiter) {
            delimiter.push('_');
        }
        records.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    std::fs::write(file, records)
        .map_err(|e| format!("cannot write the step's outputs to {file}: {e}"))
}

/// The executor of one run, as the engine takes it.
pub fn executor() -> Arc<dyn Executor> {
    Arc::new(BuiltinExecutor::default())
}
