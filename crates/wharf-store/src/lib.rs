//! wharf's run records and step logs, under `$WHARF_HOME`.
//!
//! ```text
//! $WHARF_HOME/
//!   wharf.db                       SQLite: runs, steps, attempts, outputs
//!   logs/<dag>/<run id>/run.log    what the engine did, line by line
//!   logs/<dag>/<run id>/<n>-<step>.<attempt>.stdout|.stderr
//! ```
//!
//! The database is in WAL mode and every write is one short transaction, so `wharf status`
//! reads while a run writes, and runs of different DAGs never wait on each other for
//! longer than one small commit. A run records the pid and start time of the process
//! that runs it; a `running` run whose process is gone was killed, and [`Store::reap_dead`]
//! marks it failed.
//!
//! This crate is synchronous: async callers do its work off their event loop.

mod import;
mod liveness;
mod reserve;
mod schema;
mod services;
mod state;
mod status;
#[cfg(test)]
mod tests;
mod users;
mod webhooks;

pub use import::{ImportedRun, ImportedStep};
pub use liveness::process_start;
use liveness::{hostname, this_process};
pub use reserve::{is_full, reserve_released};
use schema::MIGRATIONS;
pub use services::Service;
pub use state::{Put, StateEntry, StateRef, Written};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use status::Status;
pub use users::{ApiKey, User};
pub use webhooks::Webhook;

/// What went wrong with the run records.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The database was written by a newer wharf, with a schema this one does not know.
    #[error(
        "the run database {} has schema version {version}, written by a newer wharf \
         (this one knows versions up to {known}); use that wharf, or another WHARF_HOME",
        path.display()
    )]
    Newer {
        path: PathBuf,
        version: usize,
        known: usize,
    },
    /// `--run-id` names a run that exists already.
    #[error("the DAG `{dag}` already has a run with the id `{run_id}`")]
    RunIdTaken { dag: String, run_id: String },
    /// A run that waited in a queue no longer does (it was dequeued).
    #[error("the run is no longer queued (it is {0})")]
    NotQueued(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `$WHARF_HOME`, or `$XDG_DATA_HOME/wharf`, or `~/.local/share/wharf`.
pub fn default_home() -> PathBuf {
    if let Some(home) = std::env::var_os("WHARF_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("wharf");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".local/share/wharf")
}

pub struct Store {
    conn: Connection,
    home: PathBuf,
}

/// The database key of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunKey(pub i64);

#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub dag: &'a str,
    pub run_id: &'a str,
    pub file: &'a Path,
    /// The params of the run as `NAME=value` or positional words, for retries.
    pub params: &'a [String],
    /// The base folder of the DAG's logs (`logDir`), if not `$WHARF_HOME/logs`.
    pub log_base: Option<&'a Path>,
    /// A sub-DAG run: the run and step that started it.
    pub parent: Option<Parent<'a>>,
    /// The queue the run takes a place in, and how many of its runs may run at once: the
    /// run is made `queued` when they all are taken (or others wait before it).
    pub queue: Option<(&'a str, u32)>,
}

/// A run first in line for a free place of its queue.
#[derive(Debug)]
pub enum InLine {
    /// A parked run, now `running` and owned by the caller, which starts its process.
    Taken(Box<RunRecord>),
    /// A run whose process waits for its place (pid, start time): it may take it now.
    Waiting(i32, Option<i64>),
}

/// A person's decision on a step that waits for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approved, with the inputs given (`NAME` → value).
    Approved(Vec<(String, String)>),
    /// Rejected, with the reason given.
    Rejected(Option<String>),
    /// A human task completed, with its canonical answer (a JSON object).
    Completed(serde_json::Value),
}

/// What recording a human task's answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Recorded: the step is `succeeded` and its outputs are there. `waiting_left` steps of
    /// the run still wait; with none, `resume` is true and the caller takes the run up.
    Completed { waiting_left: usize, resume: bool },
    /// The same answer was recorded before; `resume` when the run still has to be taken up
    /// (its resume failed, or was never asked) and this call is the one to do it.
    Repeated { resume: bool },
    /// Another answer was recorded before.
    Different,
    /// The run does not wait (it has this status).
    RunNotWaiting(Status),
    /// The step does not wait (it has this status).
    StepNotWaiting(Status),
}

/// Where a sub-DAG run comes from.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    pub run: RunKey,
    pub step: &'a str,
    /// The run at the top of the tree (the parent itself when it has no parent).
    pub root: RunKey,
}

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub key: RunKey,
    pub dag: String,
    pub run_id: String,
    pub file: PathBuf,
    pub status: Status,
    pub params: Vec<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub pid: Option<i32>,
    pub error: Option<String>,
    pub log_dir: PathBuf,
    /// A sub-DAG run: the run whose step started it, and that step.
    pub parent: Option<(RunKey, String)>,
    /// A sub-DAG run: the run at the top of its tree.
    pub root: Option<RunKey>,
    /// The queue the run waits in or holds a place of, if any.
    pub queue: Option<String>,
    /// What started it (`cli`, `api`, `ui`, `schedule`, `queue`, `retry`), when known.
    pub trigger: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub name: String,
    /// The event a handler answers (`exit`, `failure`, ...); None for steps.
    pub handler: Option<String>,
    pub position: i64,
    pub status: Status,
    pub exit_code: Option<i32>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempts: u32,
    pub error: Option<String>,
    /// Where its last attempt ran, when not on this machine (`swarm node N, task T`).
    pub ran_on: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub pgid: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputRecord {
    pub step: String,
    pub name: String,
    pub key: String,
    pub value: String,
    pub omit: bool,
}

const RUN_COLUMNS: &str = "id, dag, run_id, file, status, params, created_at, started_at, finished_at, pid, error, log_dir, parent, parent_step, root, queue, trigger";

fn run_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let params: String = row.get(5)?;
    Ok(RunRecord {
        key: RunKey(row.get(0)?),
        dag: row.get(1)?,
        run_id: row.get(2)?,
        file: PathBuf::from(row.get::<_, String>(3)?),
        status: Status::parse(&row.get::<_, String>(4)?).unwrap_or(Status::Failed),
        params: serde_json::from_str(&params).unwrap_or_default(),
        created_at: row.get(6)?,
        started_at: row.get(7)?,
        finished_at: row.get(8)?,
        pid: row.get(9)?,
        error: row.get(10)?,
        log_dir: PathBuf::from(row.get::<_, String>(11)?),
        parent: match (
            row.get::<_, Option<i64>>(12)?,
            row.get::<_, Option<String>>(13)?,
        ) {
            (Some(run), step) => Some((RunKey(run), step.unwrap_or_default())),
            _ => None,
        },
        root: row.get::<_, Option<i64>>(14)?.map(RunKey),
        queue: row.get(15)?,
        trigger: row.get(16)?,
    })
}

impl Store {
    /// Opens (and creates or migrates) the store under `home`.
    pub fn open(home: &Path) -> Result<Self> {
        std::fs::create_dir_all(home)?;
        // Setting up a new database (WAL mode, migrations) is one process at a time: SQLite
        // answers "database is locked" to the others without waiting while the journal mode
        // changes. The lock is held only while the store opens.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(home.join("wharf.db.lock"))?;
        lock.lock()?;
        let conn = Connection::open(home.join("wharf.db"))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Each `wharf` command is a process of its own: the last to close the store would
        // copy the WAL into the database and sync both (a few milliseconds on every
        // command). The WAL is left for the next one (which reads it in less) and copied
        // in when it grows past SQLite's automatic checkpoint (1000 pages).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        let store = Self {
            conn,
            home: home.to_path_buf(),
        };
        store.migrate()?;
        store.keep_reserve();
        drop(lock);
        Ok(store)
    }

    /// Runs `f` in a transaction, or inside the one already open (see [`Store::batch`]).
    fn atomically(&self, f: impl FnOnce() -> Result<()>) -> Result<()> {
        if !self.conn.is_autocommit() {
            return f();
        }
        self.conn.execute_batch("BEGIN")?;
        match f() {
            Ok(()) => Ok(self.conn.execute_batch("COMMIT")?),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Runs several writes as one transaction: one commit instead of one each. A write that
    /// fails inside is reported by `f` and does not undo the others.
    pub fn batch(&self, f: impl FnOnce()) -> Result<()> {
        self.conn.execute_batch("BEGIN")?;
        f();
        if self.conn.is_autocommit() {
            return Ok(());
        }
        let committed = self.conn.execute_batch("COMMIT");
        if committed.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        Ok(committed?)
    }

    /// Undoes the transaction of a [`Store::batch`] under way (its writes are all lost).
    pub fn roll_back(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    fn migrate(&self) -> Result<()> {
        let version: usize = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            return Err(Error::Newer {
                path: self.home.join("wharf.db"),
                version,
                known: MIGRATIONS.len(),
            });
        }
        if version == MIGRATIONS.len() {
            return Ok(());
        }
        // One writer migrates; the others wait for it and find nothing left to do.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let version: usize = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            if let Err(e) = self.conn.execute_batch(sql) {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
            self.conn.pragma_update(None, "user_version", i + 1)?;
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// The folder of a run's logs.
    pub fn log_dir(&self, base: Option<&Path>, dag: &str, run_id: &str) -> PathBuf {
        let base = base.map_or_else(|| self.home.join("logs"), Path::to_path_buf);
        base.join(safe_name(dag)).join(safe_name(run_id))
    }

    /// Records a new run as `running` by this process, and creates its log folder.
    pub fn create_run(&self, new: &NewRun<'_>) -> Result<RunKey> {
        self.create_run_queued(new).map(|(key, _)| key)
    }

    /// Records a new run: `running`, or `queued` when its queue has no free place (or has
    /// runs waiting before it). The check and the record are one transaction, so that two
    /// processes starting at the same instant never both take the last place.
    pub fn create_run_queued(&self, new: &NewRun<'_>) -> Result<(RunKey, Status)> {
        let Some((queue, limit)) = new.queue else {
            return self
                .insert_run(new, Status::Running)
                .map(|k| (k, Status::Running));
        };
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let (running, waiting) = self.queue_counts(queue)?;
            let status = if running < i64::from(limit) && waiting == 0 {
                Status::Running
            } else {
                Status::Queued
            };
            self.insert_run(new, status).map(|k| (k, status))
        })();
        self.end_transaction(result.is_ok())?;
        result
    }

    /// How many runs of `queue` run, and how many wait.
    fn queue_counts(&self, queue: &str) -> Result<(i64, i64)> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(status = 'running'), 0), COALESCE(SUM(status = 'queued'), 0) FROM runs WHERE queue = ?1 AND status IN ('running', 'queued')",
            params![queue],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    fn end_transaction(&self, commit: bool) -> Result<()> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })?;
        Ok(())
    }

    /// Takes a queued run out of its queue when it is the first waiting there and a place
    /// is free: it is then `running` (started now, by this process). False when it must
    /// wait on; an error when it is no longer queued (dequeued).
    pub fn take_place(&self, run: RunKey, queue: &str, limit: u32) -> Result<bool> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let status: String = self.conn.query_row(
                "SELECT status FROM runs WHERE id = ?1",
                params![run.0],
                |r| r.get(0),
            )?;
            if status != "queued" {
                return Err(Error::NotQueued(status));
            }
            // Places go in the order of the line: a run takes one when the runs before it
            // cannot take all the free ones.
            let ahead: i64 = self.conn.query_row(
                "SELECT COUNT(*) FROM runs r, runs me WHERE me.id = ?2 AND r.queue = ?1 AND r.status = 'queued'
                 AND (r.created_at < me.created_at OR (r.created_at = me.created_at AND r.id < me.id))",
                params![queue, run.0],
                |r| r.get(0),
            )?;
            let (running, _) = self.queue_counts(queue)?;
            if running + ahead >= i64::from(limit) {
                return Ok(false);
            }
            let (pid, pid_start) = this_process();
            self.conn.execute(
                "UPDATE runs SET status = 'running', started_at = ?2, pid = ?3, pid_start = ?4 WHERE id = ?1",
                params![run.0, now_ms(), pid, pid_start],
            )?;
            Ok(true)
        })();
        self.end_transaction(result.is_ok())?;
        result
    }

    /// Makes the process `pid` the owner of the run (the one whose end, seen by
    /// [`Store::reap_dead`], ends the run).
    pub fn hand_over(&self, run: RunKey, pid: u32) -> Result<()> {
        let pid = i32::try_from(pid).unwrap_or(i32::MAX);
        self.conn.execute(
            "UPDATE runs SET pid = ?2, pid_start = ?3 WHERE id = ?1",
            params![run.0, pid, liveness::process_start(pid)],
        )?;
        Ok(())
    }

    /// Records what started the run.
    pub fn set_trigger(&self, run: RunKey, trigger: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET trigger = ?2 WHERE id = ?1",
            params![run.0, trigger],
        )?;
        Ok(())
    }

    /// Parks a queued run: no process waits for it; whoever frees a place in its queue
    /// starts it ([`Store::next_in_line`]).
    pub fn park(&self, run: RunKey) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET pid = NULL, pid_start = NULL WHERE id = ?1 AND status = 'queued'",
            params![run.0],
        )?;
        Ok(())
    }

    /// The runs first in line in `queue` for its free places (of `limit`): the parked ones
    /// are taken for this process (`running`, started now; it starts their process), the
    /// others have a process that waits and is only named.
    pub fn next_in_line(&self, queue: &str, limit: u32) -> Result<Vec<InLine>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let (running, _) = self.queue_counts(queue)?;
            let free = i64::from(limit) - running;
            if free <= 0 {
                return Ok(Vec::new());
            }
            let first: Vec<RunRecord> = {
                let mut stmt = self.conn.prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE queue = ?1 AND status = 'queued' ORDER BY created_at, id LIMIT ?2"
                ))?;
                stmt.query_map(params![queue, free], run_row)?
                    .collect::<rusqlite::Result<_>>()?
            };
            let (pid, pid_start) = this_process();
            let mut out = Vec::new();
            for run in first {
                match run.pid {
                    Some(waiting) => {
                        let start: Option<i64> = self.conn.query_row(
                            "SELECT pid_start FROM runs WHERE id = ?1",
                            params![run.key.0],
                            |r| r.get(0),
                        )?;
                        out.push(InLine::Waiting(waiting, start));
                    }
                    None => {
                        self.conn.execute(
                            "UPDATE runs SET status = 'running', started_at = ?2, pid = ?3, pid_start = ?4 WHERE id = ?1",
                            params![run.key.0, now_ms(), pid, pid_start],
                        )?;
                        out.push(InLine::Taken(Box::new(run)));
                    }
                }
            }
            Ok(out)
        })();
        self.end_transaction(result.is_ok())?;
        result
    }

    /// The queues that have parked runs, each with one of its parked runs (whose DAG tells
    /// the queue's size).
    pub fn parked(&self) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN (SELECT MIN(id) FROM runs WHERE status = 'queued' AND pid IS NULL AND queue IS NOT NULL GROUP BY queue)"
        ))?;
        let rows = stmt.query_map([], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Takes a queued run out of its queue without running it (`wharf dequeue`, or its
    /// process ended): it ends `aborted` with `why`. False when it was not queued.
    pub fn dequeue(&self, run: RunKey, why: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE runs SET status = 'aborted', finished_at = ?2, error = ?3 WHERE id = ?1 AND status = 'queued'",
            params![run.0, now_ms(), why],
        )? > 0)
    }

    /// The runs that hold a place in a queue or wait for one, oldest first.
    pub fn in_queues(&self) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('running', 'queued') AND queue IS NOT NULL ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The queued runs (of one DAG, or all), first in line first.
    pub fn queued(&self, dag: Option<&str>) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'queued' AND (?1 IS NULL OR dag = ?1) ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map(params![dag], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn insert_run(&self, new: &NewRun<'_>, status: Status) -> Result<RunKey> {
        let log_dir = self.log_dir(new.log_base, new.dag, new.run_id);
        let (pid, pid_start) = this_process();
        let params = serde_json::to_string(new.params).unwrap_or_else(|_| "[]".into());
        let now = now_ms();
        let started = (status == Status::Running).then_some(now);
        let inserted = self.conn.execute(
            "INSERT INTO runs (dag, run_id, file, status, params, created_at, started_at, pid, pid_start, host, log_dir, parent, parent_step, root, queue)
             VALUES (?1, ?2, ?3, ?13, ?4, ?5, ?14, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?15)",
            params![
                new.dag,
                new.run_id,
                new.file.to_string_lossy(),
                params,
                now,
                pid,
                pid_start,
                hostname(),
                log_dir.to_string_lossy(),
                new.parent.map(|p| p.run.0),
                new.parent.map(|p| p.step),
                new.parent.map(|p| p.root.0),
                status.as_str(),
                started,
                new.queue.map(|(q, _)| q),
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(Error::RunIdTaken {
                    dag: new.dag.to_owned(),
                    run_id: new.run_id.to_owned(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        std::fs::create_dir_all(&log_dir)?;
        Ok(RunKey(self.conn.last_insert_rowid()))
    }

    /// Takes a finished run up again (retry): `running`, owned by this process, started now
    /// (its duration is the retry's; the steps that are kept keep their own times).
    pub fn reopen_run(&self, run: RunKey) -> Result<()> {
        let (pid, pid_start) = this_process();
        self.conn.execute(
            "UPDATE runs SET status = 'running', started_at = ?5, finished_at = NULL, error = NULL, pid = ?2, pid_start = ?3, host = ?4 WHERE id = ?1",
            params![run.0, pid, pid_start, hostname(), now_ms()],
        )?;
        Ok(())
    }

    pub fn finish_run(&self, run: RunKey, status: Status, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
            params![run.0, status.as_str(), now_ms(), error],
        )?;
        Ok(())
    }

    /// Declares the run's steps (and handlers) in their order, all `not_started`.
    pub fn add_steps(&self, run: RunKey, steps: &[(&str, Option<&str>)]) -> Result<()> {
        self.atomically(|| {
            {
                let mut stmt = self.conn.prepare_cached(
                    "INSERT OR IGNORE INTO steps (run, name, handler, position, status) VALUES (?1, ?2, ?3, ?4, 'not_started')",
                )?;
                for (position, (name, handler)) in steps.iter().enumerate() {
                    stmt.execute(params![
                        run.0,
                        name,
                        handler,
                        i64::try_from(position).unwrap_or(i64::MAX)
                    ])?;
                }
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Resets a step for a retry: `not_started`, its result cleared (attempts are kept).
    pub fn reset_step(&self, run: RunKey, step: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE steps SET status = 'not_started', exit_code = NULL, started_at = NULL, finished_at = NULL, error = NULL
             WHERE run = ?1 AND name = ?2",
            params![run.0, step],
        )?;
        self.conn.execute(
            "DELETE FROM outputs WHERE run = ?1 AND step = ?2",
            params![run.0, step],
        )?;
        Ok(())
    }

    /// A new attempt of a step starts: the step is `running`.
    pub fn start_attempt(&self, run: RunKey, step: &str, attempt: &AttemptRecord) -> Result<()> {
        self.atomically(|| {
            self.conn.prepare_cached("INSERT OR REPLACE INTO attempts (run, step, attempt, started_at, stdout, stderr, pgid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
                params![
                    run.0,
                    step,
                    attempt.attempt,
                    attempt.started_at,
                    attempt.stdout.to_string_lossy(),
                    attempt.stderr.to_string_lossy(),
                    attempt.pgid
                ],
            )?;
            self.conn.prepare_cached("UPDATE steps SET status = 'running', started_at = COALESCE(started_at, ?3), attempts = ?4 WHERE run = ?1 AND name = ?2")?.execute(
                params![run.0, step, attempt.started_at, attempt.attempt],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    /// The process group of an attempt, once its process runs.
    pub fn set_attempt_pgid(&self, run: RunKey, step: &str, attempt: u32, pgid: i32) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE attempts SET pgid = ?4 WHERE run = ?1 AND step = ?2 AND attempt = ?3",
            )?
            .execute(params![run.0, step, attempt, pgid])?;
        Ok(())
    }

    pub fn finish_attempt(
        &self,
        run: RunKey,
        step: &str,
        attempt: u32,
        exit_code: Option<i32>,
    ) -> Result<()> {
        self.conn.prepare_cached("UPDATE attempts SET finished_at = ?4, exit_code = ?5 WHERE run = ?1 AND step = ?2 AND attempt = ?3")?.execute(
            params![run.0, step, attempt, now_ms(), exit_code],
        )?;
        Ok(())
    }

    /// Marks a step `running` without an attempt (evaluating its preconditions).
    pub fn start_step(&self, run: RunKey, step: &str) -> Result<()> {
        self.conn.prepare_cached("UPDATE steps SET status = 'running', started_at = COALESCE(started_at, ?3) WHERE run = ?1 AND name = ?2")?.execute(
            params![run.0, step, now_ms()],
        )?;
        Ok(())
    }

    /// The step's result, with the end of its last attempt, in one transaction.
    /// Where the step's latest attempt ran (None: on this machine).
    pub fn set_ran_on(&self, run: RunKey, step: &str, ran_on: Option<&str>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE steps SET ran_on = ?3 WHERE run = ?1 AND name = ?2")?
            .execute(params![run.0, step, ran_on])?;
        Ok(())
    }

    pub fn finish_step(
        &self,
        run: RunKey,
        step: &str,
        attempt: Option<(u32, Option<i32>)>,
        status: Status,
        exit_code: Option<i32>,
        error: Option<&str>,
    ) -> Result<()> {
        self.atomically(|| {
            let now = now_ms();
            if let Some((attempt, code)) = attempt {
                self.conn.prepare_cached("UPDATE attempts SET finished_at = ?4, exit_code = ?5 WHERE run = ?1 AND step = ?2 AND attempt = ?3")?.execute(
                    params![run.0, step, attempt, now, code],
                )?;
            }
            self.conn.prepare_cached("UPDATE steps SET status = ?3, exit_code = ?4, error = ?5, finished_at = ?6 WHERE run = ?1 AND name = ?2")?.execute(
                params![run.0, step, status.as_str(), exit_code, error, now],
            )?;
            Ok(())
        })?;
        Ok(())
    }

    pub fn set_output(&self, run: RunKey, output: &OutputRecord) -> Result<()> {
        self.conn.prepare_cached("INSERT OR REPLACE INTO outputs (run, step, name, key, value, omit) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?.execute(
            params![run.0, output.step, output.name, output.key, output.value, output.omit],
        )?;
        Ok(())
    }

    pub fn run(&self, dag: &str, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE dag = ?1 AND run_id = ?2"),
                params![dag, run_id],
                run_row,
            )
            .optional()?)
    }

    pub fn latest_run(&self, dag: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE dag = ?1 ORDER BY created_at DESC, id DESC LIMIT 1"),
                params![dag],
                run_row,
            )
            .optional()?)
    }

    /// The DAG's runs, newest first (sub-DAG runs are reached through their parents).
    pub fn history(&self, dag: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE dag = ?1 AND parent IS NULL ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![dag, i64::try_from(limit).unwrap_or(i64::MAX)],
            run_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A run by its key.
    pub fn run_by_key(&self, key: RunKey) -> Result<Option<RunRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                params![key.0],
                run_row,
            )
            .optional()?)
    }

    /// Suspends (or resumes) the DAG `dag`: the scheduler skips a suspended DAG's slots.
    pub fn set_suspended(&self, dag: &str, suspended: bool) -> Result<()> {
        if suspended {
            self.conn.execute(
                "INSERT OR IGNORE INTO suspended (dag, at) VALUES (?1, ?2)",
                params![dag, now_ms()],
            )?;
        } else {
            self.conn
                .execute("DELETE FROM suspended WHERE dag = ?1", params![dag])?;
        }
        Ok(())
    }

    /// Whether the DAG `dag` is suspended.
    pub fn is_suspended(&self, dag: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM suspended WHERE dag = ?1",
                params![dag],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Claims the action `action` (`start`, `stop`, `restart`) of the DAG `dag` at the slot
    /// `slot_ms` for this scheduler: true for the first to claim it, false for any other
    /// (another scheduler on the same home already acts on it).
    pub fn claim_slot(&self, dag: &str, slot_ms: i64, action: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT OR IGNORE INTO slots (dag, slot, action, at) VALUES (?1, ?2, ?3, ?4)",
            params![dag, slot_ms, action, now_ms()],
        )? > 0)
    }

    /// Moves the scheduler's last looked-at slot to `slot_ms` (never back), and gives the one
    /// before: None when no scheduler ever ran on this home.
    pub fn advance_scheduler(&self, slot_ms: i64) -> Result<Option<i64>> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| {
            let last: Option<i64> = self
                .conn
                .query_row("SELECT last_slot FROM scheduler WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .optional()?;
            self.conn.execute(
                "INSERT INTO scheduler (id, last_slot) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET last_slot = MAX(last_slot, excluded.last_slot)",
                params![slot_ms],
            )?;
            Ok(last)
        })();
        self.end_transaction(result.is_ok())?;
        result
    }

    /// Moves the runs of the DAG `old` to the name `new` (the DAG's file was renamed).
    pub fn rename_dag(&self, old: &str, new: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE runs SET dag = ?2, queue = CASE WHEN queue = ?1 THEN ?2 ELSE queue END WHERE dag = ?1",
            params![old, new],
        )?)
    }

    /// Sets a step's status by hand (a finished run's: `PATCH .../steps/STEP/status`); false
    /// when the run has no such step.
    pub fn set_step_status(&self, run: RunKey, step: &str, status: Status) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE steps SET status = ?3 WHERE run = ?1 AND name = ?2",
            params![run.0, step, status.as_str()],
        )? > 0)
    }

    /// Records the decision on a waiting step (a later one replaces it).
    pub fn decide(&self, run: RunKey, step: &str, decision: &Decision) -> Result<()> {
        let (approved, inputs, reason) = match decision {
            Decision::Approved(inputs) => (
                true,
                serde_json::to_string(inputs).unwrap_or_else(|_| "[]".into()),
                None,
            ),
            Decision::Rejected(reason) => (false, "[]".to_owned(), reason.clone()),
            Decision::Completed(answer) => (true, answer.to_string(), None),
        };
        self.conn.execute(
            "INSERT OR REPLACE INTO approvals (run, step, approved, inputs, reason, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run.0, step, approved, inputs, reason, now_ms()],
        )?;
        Ok(())
    }

    /// A step that ran and waited (Dagu 2.x `approval`) approved: it is `succeeded`, its
    /// outputs kept and the approval's inputs recorded beside them, so that the run taken
    /// up again keeps it and runs the steps after it.
    pub fn approve_step(&self, run: RunKey, step: &str, inputs: &[(String, String)]) -> Result<()> {
        self.atomically(|| {
            self.conn.execute(
                "UPDATE steps SET status = 'succeeded', error = NULL WHERE run = ?1 AND name = ?2",
                params![run.0, step],
            )?;
            for (name, value) in inputs {
                self.set_output(
                    run,
                    &OutputRecord {
                        step: step.to_owned(),
                        name: name.clone(),
                        key: name.clone(),
                        value: value.clone(),
                        omit: false,
                    },
                )?;
            }
            Ok(())
        })
    }

    /// Records a human task's canonical answer (`answer`, a JSON object) and the outputs it
    /// makes, all at once or not at all: the step `succeeded`, its outputs there. A repeat
    /// of the same answer changes nothing; a different one is refused. See [`Completion`].
    pub fn complete_task(
        &self,
        run: RunKey,
        step: &str,
        answer: &serde_json::Value,
        outputs: &[OutputRecord],
    ) -> Result<Completion> {
        // IMMEDIATE: two completions at once take turns, the second seeing the first's.
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = self.complete_task_in(run, step, answer, outputs);
        match &result {
            Ok(_) => self.conn.execute_batch("COMMIT")?,
            Err(_) => {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        result
    }

    fn complete_task_in(
        &self,
        run: RunKey,
        step: &str,
        answer: &serde_json::Value,
        outputs: &[OutputRecord],
    ) -> Result<Completion> {
        let status = Status::parse(&self.conn.query_row(
            "SELECT status FROM runs WHERE id = ?1",
            params![run.0],
            |r| r.get::<_, String>(0),
        )?)
        .unwrap_or(Status::NotStarted);
        let waiting_left = |this: &Self| -> Result<usize> {
            let n: i64 = this.conn.query_row(
                "SELECT count(*) FROM steps WHERE run = ?1 AND status = 'waiting' AND handler IS NULL",
                params![run.0],
                |r| r.get(0),
            )?;
            Ok(usize::try_from(n).unwrap_or(0))
        };
        let before: Option<(String, bool)> = self
            .conn
            .query_row(
                "SELECT inputs, resumed FROM approvals WHERE run = ?1 AND step = ?2 AND approved = 1",
                params![run.0, step],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((inputs, resumed)) = before {
            let recorded: serde_json::Value = serde_json::from_str(&inputs).unwrap_or_default();
            if recorded != *answer {
                return Ok(Completion::Different);
            }
            let resume = !resumed && status == Status::Waiting && waiting_left(self)? == 0;
            if resume {
                self.conn.execute(
                    "UPDATE approvals SET resumed = 1 WHERE run = ?1 AND step = ?2",
                    params![run.0, step],
                )?;
            }
            return Ok(Completion::Repeated { resume });
        }
        if status != Status::Waiting {
            return Ok(Completion::RunNotWaiting(status));
        }
        let step_status: Option<String> = self
            .conn
            .query_row(
                "SELECT status FROM steps WHERE run = ?1 AND name = ?2 AND handler IS NULL",
                params![run.0, step],
                |r| r.get(0),
            )
            .optional()?;
        let step_status = step_status
            .and_then(|s| Status::parse(&s))
            .unwrap_or(Status::NotStarted);
        if step_status != Status::Waiting {
            return Ok(Completion::StepNotWaiting(step_status));
        }
        self.conn.execute(
            "UPDATE steps SET status = 'succeeded', error = NULL, finished_at = ?3 WHERE run = ?1 AND name = ?2 AND handler IS NULL",
            params![run.0, step, now_ms()],
        )?;
        for o in outputs {
            self.set_output(run, o)?;
        }
        let left = waiting_left(self)?;
        self.conn.execute(
            "INSERT OR REPLACE INTO approvals (run, step, approved, inputs, reason, at, resumed) VALUES (?1, ?2, 1, ?3, NULL, ?4, ?5)",
            params![run.0, step, answer.to_string(), now_ms(), left == 0],
        )?;
        Ok(Completion::Completed {
            waiting_left: left,
            resume: left == 0,
        })
    }

    /// A resume the completion of `step` claimed did not start: a repeat of the completion
    /// may try again.
    pub fn release_resume(&self, run: RunKey, step: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE approvals SET resumed = 0 WHERE run = ?1 AND step = ?2",
            params![run.0, step],
        )?;
        Ok(())
    }

    /// The decision on a step, if one was made.
    pub fn decision(&self, run: RunKey, step: &str) -> Result<Option<Decision>> {
        let row: Option<(bool, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT approved, inputs, reason FROM approvals WHERE run = ?1 AND step = ?2",
                params![run.0, step],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(row.map(|(approved, inputs, reason)| {
            if approved && inputs.starts_with('{') {
                Decision::Completed(serde_json::from_str(&inputs).unwrap_or_default())
            } else if approved {
                Decision::Approved(serde_json::from_str(&inputs).unwrap_or_default())
            } else {
                Decision::Rejected(reason)
            }
        }))
    }

    /// The sub-DAG run `run_id` anywhere in the tree under the root run `root`.
    pub fn sub_run(&self, root: RunKey, run_id: &str) -> Result<Option<RunRecord>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE root = ?1 AND run_id = ?2"),
                params![root.0, run_id],
                run_row,
            )
            .optional()?)
    }

    /// The sub-DAG runs a run's steps started, in the order they were made.
    pub fn children(&self, run: RunKey) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE parent = ?1 ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![run.0], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest runs of all DAGs (or of those whose name contains `name`), newest first.
    pub fn recent_runs(&self, name: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE parent IS NULL AND (?1 IS NULL OR instr(dag, ?1) > 0) ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![name, i64::try_from(limit).unwrap_or(i64::MAX)],
            run_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A page of the newest runs (not sub-DAG runs): of DAGs whose name contains `name`,
    /// with the status `status`, created at or after `since_ms`; `offset` and `limit` as
    /// the page says.
    pub fn runs_page(
        &self,
        name: Option<&str>,
        status: Option<Status>,
        since_ms: Option<i64>,
        (offset, limit): (usize, usize),
    ) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE parent IS NULL AND (?1 IS NULL OR instr(dag, ?1) > 0)
             AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR created_at >= ?3)
             ORDER BY created_at DESC, id DESC LIMIT ?5 OFFSET ?4"
        ))?;
        let rows = stmt.query_map(
            params![
                name,
                status.map(Status::as_str),
                since_ms,
                i64::try_from(offset).unwrap_or(i64::MAX),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            run_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many runs (not sub-DAG runs) created at or after `since_ms` have each status.
    pub fn status_counts_since(&self, since_ms: i64) -> Result<Vec<(Status, i64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, COUNT(*) FROM runs WHERE parent IS NULL AND created_at >= ?1 GROUP BY status",
        )?;
        let rows = stmt.query_map(params![since_ms], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row?;
            if let Some(status) = Status::parse(&status) {
                out.push((status, n));
            }
        }
        Ok(out)
    }

    /// Runs recorded as `running` (of one DAG, or all).
    pub fn running(&self, dag: Option<&str>) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = 'running' AND (?1 IS NULL OR dag = ?1) ORDER BY created_at"
        ))?;
        let rows = stmt.query_map(params![dag], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn steps(&self, run: RunKey) -> Result<Vec<StepRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, handler, position, status, exit_code, started_at, finished_at, attempts, error, ran_on
             FROM steps WHERE run = ?1 ORDER BY handler IS NOT NULL, position",
        )?;
        let rows = stmt.query_map(params![run.0], |row| {
            Ok(StepRecord {
                name: row.get(0)?,
                handler: row.get(1)?,
                position: row.get(2)?,
                status: Status::parse(&row.get::<_, String>(3)?).unwrap_or(Status::Failed),
                exit_code: row.get(4)?,
                started_at: row.get(5)?,
                finished_at: row.get(6)?,
                attempts: row.get(7)?,
                error: row.get(8)?,
                ran_on: row.get(9)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn attempts(&self, run: RunKey, step: &str) -> Result<Vec<AttemptRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT attempt, started_at, finished_at, exit_code, stdout, stderr, pgid FROM attempts
             WHERE run = ?1 AND step = ?2 ORDER BY attempt",
        )?;
        let rows = stmt.query_map(params![run.0, step], |row| {
            Ok(AttemptRecord {
                attempt: row.get(0)?,
                started_at: row.get(1)?,
                finished_at: row.get(2)?,
                exit_code: row.get(3)?,
                stdout: PathBuf::from(row.get::<_, String>(4)?),
                stderr: PathBuf::from(row.get::<_, String>(5)?),
                pgid: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn outputs(&self, run: RunKey) -> Result<Vec<OutputRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT step, name, key, value, omit FROM outputs WHERE run = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![run.0], |row| {
            Ok(OutputRecord {
                step: row.get(0)?,
                name: row.get(1)?,
                key: row.get(2)?,
                value: row.get(3)?,
                omit: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes the DAG's finished runs created before `before_ms`, with their logs.
    /// Finished runs (of one DAG, or all) that started before `before_ms`, with their
    /// sub-DAG runs, oldest first.
    pub fn old_runs(&self, dag: Option<&str>, before_ms: i64) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE parent IS NULL AND (?1 IS NULL OR dag = ?1) AND created_at < ?2 AND status NOT IN ('running', 'queued') ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map(params![dag, before_ms], run_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes runs, their sub-DAG runs, and their logs; how many runs were removed.
    pub fn remove_runs(&self, runs: &[RunRecord]) -> Result<usize> {
        let mut removed = 0;
        for run in runs {
            let tree: Vec<(i64, String, String)> = {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT id, log_dir, file FROM runs WHERE id = ?1 OR root = ?1",
                )?;
                stmt.query_map(params![run.key.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            for (id, log_dir, file) in &tree {
                self.conn
                    .execute("DELETE FROM runs WHERE id = ?1", params![id])?;
                let _ = std::fs::remove_dir_all(log_dir);
                self.forget_kept_dag(file);
                removed += 1;
            }
        }
        self.forget_specs()?;
        Ok(removed)
    }

    pub fn purge(&self, dag: &str, before_ms: i64) -> Result<usize> {
        let old: Vec<(i64, String, String)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, log_dir, file FROM runs WHERE dag = ?1 AND created_at < ?2 AND status != 'running'",
            )?;
            stmt.query_map(params![dag, before_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        self.remove_old(&old)
    }

    /// The top-level runs that failed, created at or after `since_ms`, with how many times
    /// the scheduler retried each and when it last did: what a DAG's `retry_policy` may
    /// retry.
    pub fn failed_for_retry(&self, since_ms: i64) -> Result<Vec<(RunRecord, u64, Option<i64>)>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS}, COALESCE(auto_retries.count, 0), auto_retries.at FROM runs \
             LEFT JOIN auto_retries ON auto_retries.run = runs.id \
             WHERE runs.parent IS NULL AND runs.status = 'failed' AND runs.created_at >= ?1 \
             ORDER BY runs.created_at"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let width = stmt.column_count() - 2;
        let rows = stmt.query_map(params![since_ms], |r| {
            let count: i64 = r.get(width)?;
            let at: Option<i64> = r.get(width + 1)?;
            Ok((run_row(r)?, u64::try_from(count).unwrap_or(0), at))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Counts one scheduler retry of `run` when `done` were counted before; false when
    /// another scheduler counted it first.
    pub fn claim_auto_retry(&self, run: RunKey, done: u64) -> Result<bool> {
        let done = i64::try_from(done).unwrap_or(i64::MAX);
        let changed = self.conn.execute(
            "INSERT INTO auto_retries (run, count, at) VALUES (?1, 1, ?3) \
             ON CONFLICT (run) DO UPDATE SET count = count + 1, at = ?3 WHERE count = ?2",
            params![run.0, done, now_ms()],
        )?;
        Ok(changed == 1)
    }

    /// Keeps the missed `slots` (ms) of `dag` to be caught up, one a tick.
    pub fn buffer_catchup(&self, dag: &str, slots: &[i64]) -> Result<()> {
        self.atomically(|| {
            for slot in slots {
                self.conn.execute(
                    "INSERT OR IGNORE INTO catchup (dag, slot) VALUES (?1, ?2)",
                    params![dag, slot],
                )?;
            }
            Ok(())
        })
    }

    /// The oldest slot of `dag` waiting to be caught up.
    pub fn next_catchup(&self, dag: &str) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(slot) FROM catchup WHERE dag = ?1",
                params![dag],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Takes a caught-up (or dropped) slot out; false when another scheduler took it.
    pub fn take_catchup(&self, dag: &str, slot: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM catchup WHERE dag = ?1 AND slot = ?2",
            params![dag, slot],
        )? == 1)
    }

    /// How many times the scheduler retried `run`.
    pub fn auto_retries(&self, run: RunKey) -> Result<u64> {
        let count: Option<i64> = self
            .conn
            .query_row(
                "SELECT count FROM auto_retries WHERE run = ?1",
                params![run.0],
                |r| r.get(0),
            )
            .optional()?;
        Ok(count.map_or(0, |c| u64::try_from(c).unwrap_or(0)))
    }

    /// Removes the runs `old` (id, log folder, DAG file): records and logs.
    fn remove_old(&self, old: &[(i64, String, String)]) -> Result<usize> {
        for (id, log_dir, file) in old {
            self.conn
                .execute("DELETE FROM runs WHERE id = ?1", params![id])?;
            let _ = std::fs::remove_dir_all(log_dir);
            self.forget_kept_dag(file);
        }
        if !old.is_empty() {
            self.forget_specs()?;
        }
        Ok(old.len())
    }

    /// Removes the runs of `dag` (records and logs) but its newest `keep`, leaving out
    /// the runs going on or waiting to; returns how many went.
    pub fn purge_beyond(&self, dag: &str, keep: usize) -> Result<usize> {
        let old: Vec<(i64, String, String)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, log_dir, file FROM runs WHERE dag = ?1 \
                 AND status NOT IN ('running', 'queued', 'waiting') \
                 ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?2",
            )?;
            stmt.query_map(params![dag, i64::try_from(keep).unwrap_or(i64::MAX)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        self.remove_old(&old)
    }

    /// Keeps `text`, the DAG file of `run` as it is when the run starts (the same text is
    /// kept once for all the runs that ran it).
    pub fn keep_spec(&self, run: RunKey, text: &str) -> Result<()> {
        self.atomically(|| {
            self.conn.execute(
                "INSERT OR IGNORE INTO specs (text) VALUES (?1)",
                params![text],
            )?;
            self.conn.execute(
                "UPDATE runs SET spec = (SELECT id FROM specs WHERE text = ?2) WHERE id = ?1",
                params![run.0, text],
            )?;
            Ok(())
        })
    }

    /// The DAG file of `run` as it was when the run started, when it was kept.
    pub fn spec_of(&self, run: RunKey) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT specs.text FROM runs JOIN specs ON specs.id = runs.spec WHERE runs.id = ?1",
                params![run.0],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Removes the kept DAG texts no run refers to any more.
    fn forget_specs(&self) -> Result<()> {
        self.conn.execute(
            "DELETE FROM specs WHERE id NOT IN (SELECT spec FROM runs WHERE spec IS NOT NULL)",
            [],
        )?;
        Ok(())
    }

    /// A DAG file wharf keeps for its runs (`HOME/specs/ID/NAME.yaml`: a spec sent to the
    /// API, the command of `wharf exec`) goes with the last run that uses it.
    fn forget_kept_dag(&self, file: &str) {
        let Some(dir) = Path::new(file).parent() else {
            return;
        };
        let specs = self.home.join("specs");
        let specs = std::path::absolute(&specs).unwrap_or(specs);
        if dir.parent() != Some(specs.as_path()) {
            return;
        }
        let used = self
            .conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM runs WHERE file = ?1)",
                params![file],
                |r| r.get::<_, bool>(0),
            )
            .unwrap_or(true);
        if !used {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The process that owns a run: (row id, pid, pid start time, host).
type Owner = (i64, Option<i32>, Option<i64>, Option<String>);

/// Writes a new file that only its owner can read (a DAG kept for a run: its `env` may
/// hold credentials).
pub fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?
        .write_all(bytes)
}

/// A name made safe for one path component.
pub fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => "_".into(),
        _ => cleaned,
    }
}
