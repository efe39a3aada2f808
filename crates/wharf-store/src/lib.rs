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

mod status;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use status::Status;

#[derive(Debug)]
pub enum Error {
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
    /// The database was written by a newer wharf, with a schema this one does not know.
    Newer {
        path: PathBuf,
        version: usize,
        known: usize,
    },
    /// `--run-id` names a run that exists already.
    RunIdTaken {
        dag: String,
        run_id: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(e) => write!(f, "run database: {e}"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Newer {
                path,
                version,
                known,
            } => write!(
                f,
                "the run database {} has schema version {version}, written by a newer wharf \
                 (this one knows versions up to {known}); use that wharf, or another WHARF_HOME",
                path.display()
            ),
            Self::RunIdTaken { dag, run_id } => {
                write!(
                    f,
                    "the DAG `{dag}` already has a run with the id `{run_id}`"
                )
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
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

/// One numbered migration per schema change; `PRAGMA user_version` is the last applied.
const MIGRATIONS: &[&str] = &[r"
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        dag TEXT NOT NULL,
        run_id TEXT NOT NULL,
        file TEXT NOT NULL,
        status TEXT NOT NULL,
        params TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        pid INTEGER,
        pid_start INTEGER,
        host TEXT,
        error TEXT,
        log_dir TEXT NOT NULL,
        UNIQUE (dag, run_id)
    );
    CREATE INDEX runs_by_dag ON runs (dag, created_at);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE steps (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        handler TEXT,
        position INTEGER NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (run, name)
    );
    CREATE TABLE attempts (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        exit_code INTEGER,
        stdout TEXT NOT NULL,
        stderr TEXT NOT NULL,
        pgid INTEGER,
        PRIMARY KEY (run, step, attempt)
    );
    CREATE TABLE outputs (
        run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step TEXT NOT NULL,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        omit INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run, name)
    );
"];

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

const RUN_COLUMNS: &str = "id, dag, run_id, file, status, params, created_at, started_at, finished_at, pid, error, log_dir";

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
        let store = Self {
            conn,
            home: home.to_path_buf(),
        };
        store.migrate()?;
        keep_reserve(home);
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

    /// Frees the space kept in reserve under `WHARF_HOME` for a full disk, so that the end
    /// of what is under way can still be recorded. False when there was none left.
    pub fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.home.join(RESERVE_FILE)).is_ok()
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
        let log_dir = self.log_dir(new.log_base, new.dag, new.run_id);
        let (pid, pid_start) = this_process();
        let params = serde_json::to_string(new.params).unwrap_or_else(|_| "[]".into());
        let now = now_ms();
        let inserted = self.conn.execute(
            "INSERT INTO runs (dag, run_id, file, status, params, created_at, started_at, pid, pid_start, host, log_dir)
             VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
            params![
                new.dag,
                new.run_id,
                new.file.to_string_lossy(),
                params,
                now,
                pid,
                pid_start,
                hostname(),
                log_dir.to_string_lossy()
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

    /// The DAG's runs, newest first.
    pub fn history(&self, dag: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE dag = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![dag, i64::try_from(limit).unwrap_or(i64::MAX)],
            run_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The newest runs of all DAGs (or of those whose name contains `name`), newest first.
    pub fn recent_runs(&self, name: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR instr(dag, ?1) > 0) ORDER BY created_at DESC, id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![name, i64::try_from(limit).unwrap_or(i64::MAX)],
            run_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
            "SELECT name, handler, position, status, exit_code, started_at, finished_at, attempts, error
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

    /// Finds runs recorded as `running` whose process is gone (killed, or the machine
    /// restarted), marks them and their running steps failed, kills what is left of their
    /// steps' process groups, and returns them.
    pub fn reap_dead(&self) -> Result<Vec<RunRecord>> {
        let me = hostname();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, pid, pid_start, host FROM runs WHERE status = 'running'")?;
        let candidates: Vec<Owner> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut dead = Vec::new();
        for (id, pid, start, host) in candidates {
            if host.as_deref().is_some_and(|h| h != me) {
                continue; // Another machine's run: its liveness cannot be seen from here.
            }
            let alive = pid.is_some_and(|pid| process_start(pid).is_some_and(|s| Some(s) == start));
            if alive {
                continue;
            }
            let message = "the process running this run ended without finishing it (killed?)";
            if !self.end_run(id, message)? {
                continue; // Finished meanwhile.
            }
            if let Some(run) = self
                .conn
                .query_row(
                    &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                    params![id],
                    run_row,
                )
                .optional()?
            {
                dead.push(run);
            }
        }
        Ok(dead)
    }

    /// Ends a run of this process that cannot finish the orderly way (a forced stop while
    /// something it waits for does not answer): the run and its running steps `failed`
    /// with `message`, their processes killed.
    pub fn abandon_run(&self, run: RunKey, message: &str) -> Result<()> {
        self.end_run(run.0, message).map(|_| ())
    }

    /// Marks a running run and its running steps failed and kills what its steps started:
    /// the process groups recorded for them, and every process whose environment names
    /// the run (a step's processes carry `DAG_NAME` and `DAG_RUN_ID`, even those started
    /// before their group was recorded). False when the run was not running.
    fn end_run(&self, id: i64, message: &str) -> Result<bool> {
        let tx = self.conn.unchecked_transaction()?;
        let changed = tx.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3 WHERE id = ?1 AND status = 'running'",
            params![id, now_ms(), message],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        let groups: Vec<i32> = {
            let mut q = tx.prepare(
                "SELECT a.pgid FROM attempts a JOIN steps s ON s.run = a.run AND s.name = a.step
                 WHERE a.run = ?1 AND s.status = 'running' AND a.finished_at IS NULL AND a.pgid IS NOT NULL",
            )?;
            q.query_map(params![id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        let (dag, run_id): (String, String) = tx.query_row(
            "SELECT dag, run_id FROM runs WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tx.execute(
            "UPDATE steps SET status = 'failed', finished_at = ?2, error = ?3 WHERE run = ?1 AND status = 'running'",
            params![id, now_ms(), message],
        )?;
        tx.commit()?;
        for pgid in groups {
            kill_orphaned_group(pgid);
        }
        kill_marked(&dag, &run_id);
        Ok(true)
    }

    /// Removes the DAG's finished runs created before `before_ms`, with their logs.
    pub fn purge(&self, dag: &str, before_ms: i64) -> Result<usize> {
        let old: Vec<(i64, String)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT id, log_dir FROM runs WHERE dag = ?1 AND created_at < ?2 AND status != 'running'",
            )?;
            stmt.query_map(params![dag, before_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        for (id, log_dir) in &old {
            self.conn
                .execute("DELETE FROM runs WHERE id = ?1", params![id])?;
            let _ = std::fs::remove_dir_all(log_dir);
        }
        Ok(old.len())
    }
}

/// The process that owns a run: (row id, pid, pid start time, host).
type Owner = (i64, Option<i32>, Option<i64>, Option<String>);

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

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn this_process() -> (i32, Option<i64>) {
    let pid = i32::try_from(std::process::id()).unwrap_or(0);
    (pid, process_start(pid))
}

/// The start time of a process (clock ticks since boot), which tells a live process from a
/// later one that got the same pid.
pub fn process_start(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Kills what is left of a dead run's step: its process group, if the group still exists.
/// A file of space kept in reserve: when the disk fills up (a step's log took the rest),
/// removing it lets the run record how it ended.
const RESERVE_FILE: &str = "wharf.db.reserve";
const RESERVE_BYTES: usize = 256 * 1024;

/// Writes the reserve file when it is missing (real bytes: a sparse file reserves nothing).
/// A disk too full for it goes without.
fn keep_reserve(home: &Path) {
    let path = home.join(RESERVE_FILE);
    if path.exists() {
        return;
    }
    let written = std::fs::write(&path, vec![0u8; RESERVE_BYTES]);
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Whether an error says the disk is full.
pub fn is_full(e: &Error) -> bool {
    match e {
        Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            f.code == rusqlite::ErrorCode::DiskFull
        }
        Error::Io(e) => e.raw_os_error() == Some(nix::libc::ENOSPC),
        _ => false,
    }
}

/// Kills every process (but this one) whose environment says it belongs to the step of
/// run `run_id` of `dag`. A process being killed may have just started another: the scan
/// is repeated until one finds nothing (a few passes at most).
fn kill_marked(dag: &str, run_id: &str) {
    for _ in 0..10 {
        if kill_marked_once(dag, run_id) == 0 {
            return;
        }
    }
}

/// One scan of the processes; how many it killed.
fn kill_marked_once(dag: &str, run_id: &str) -> usize {
    let run_mark = format!("DAG_RUN_ID={run_id}");
    let dag_mark = format!("DAG_NAME={dag}");
    let me = std::process::id();
    let mut killed = 0;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let mut run = false;
        let mut dag = false;
        for var in environ.split(|b| *b == 0) {
            run |= var == run_mark.as_bytes();
            dag |= var == dag_mark.as_bytes();
        }
        if run
            && dag
            && let Ok(pid) = i32::try_from(pid)
            && nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_ok()
        {
            killed += 1;
        }
    }
    killed
}

fn kill_orphaned_group(pgid: i32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        (dir, store)
    }

    #[test]
    fn many_first_opens_at_once_all_succeed() {
        // Threads released together, each opening a store that does not exist yet.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tmp");
            let barrier = std::sync::Barrier::new(24);
            let failures: Vec<String> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..24)
                    .map(|i| {
                        let (dir, barrier) = (dir.path(), &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            let id = format!("run-{i}");
                            Store::open(dir)
                                .and_then(|s| s.create_run(&new_run("d", &id)).map(|_| ()))
                                .err()
                                .map(|e| e.to_string())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .filter_map(|h| h.join().ok().flatten())
                    .collect()
            });
            assert!(failures.is_empty(), "{failures:?}");
        }
    }

    fn new_run<'a>(dag: &'a str, run_id: &'a str) -> NewRun<'a> {
        NewRun {
            dag,
            run_id,
            file: Path::new("/x/dag.yaml"),
            params: &[],
            log_base: None,
        }
    }

    #[test]
    fn a_run_id_is_unique_per_dag() {
        let (_dir, s) = store();
        s.create_run(&new_run("a", "1")).expect("first");
        assert!(matches!(
            s.create_run(&new_run("a", "1")),
            Err(Error::RunIdTaken { .. })
        ));
        s.create_run(&new_run("b", "1")).expect("another DAG");
    }

    #[test]
    fn steps_attempts_and_outputs_round_trip() {
        let (_dir, s) = store();
        let run = s.create_run(&new_run("a", "1")).expect("run");
        s.add_steps(run, &[("one", None), ("bye", Some("exit"))])
            .expect("steps");
        let attempt = AttemptRecord {
            attempt: 1,
            started_at: now_ms(),
            finished_at: None,
            exit_code: None,
            stdout: "/o".into(),
            stderr: "/e".into(),
            pgid: None,
        };
        s.start_attempt(run, "one", &attempt).expect("attempt");
        s.finish_step(
            run,
            "one",
            Some((1, Some(0))),
            Status::Succeeded,
            Some(0),
            None,
        )
        .expect("finish");
        s.set_output(
            run,
            &OutputRecord {
                step: "one".into(),
                name: "X".into(),
                key: "x".into(),
                value: "v".into(),
                omit: false,
            },
        )
        .expect("output");
        s.finish_run(run, Status::Succeeded, None)
            .expect("finish run");
        let steps = s.steps(run).expect("steps");
        assert_eq!(steps.len(), 2);
        assert_eq!(
            (steps[0].name.as_str(), steps[0].status, steps[0].exit_code),
            ("one", Status::Succeeded, Some(0))
        );
        assert_eq!(steps[1].handler.as_deref(), Some("exit"));
        assert_eq!(
            s.attempts(run, "one").expect("attempts")[0].exit_code,
            Some(0)
        );
        assert_eq!(s.outputs(run).expect("outputs")[0].value, "v");
        assert_eq!(
            s.latest_run("a").expect("latest").map(|r| r.status),
            Some(Status::Succeeded)
        );
    }

    #[test]
    fn a_run_of_a_dead_process_is_reaped() {
        let (_dir, s) = store();
        let run = s.create_run(&new_run("a", "1")).expect("run");
        s.add_steps(run, &[("one", None)]).expect("steps");
        s.start_step(run, "one").expect("start");
        // Pretend the run belongs to a process that no longer exists.
        s.conn
            .execute(
                "UPDATE runs SET pid = 999999999 WHERE id = ?1",
                params![run.0],
            )
            .expect("update");
        let dead = s.reap_dead().expect("reap");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].status, Status::Failed);
        assert_eq!(s.steps(run).expect("steps")[0].status, Status::Failed);
        assert!(s.reap_dead().expect("again").is_empty());
    }

    #[test]
    fn a_live_run_is_left_alone() {
        let (_dir, s) = store();
        s.create_run(&new_run("a", "1")).expect("run");
        assert!(s.reap_dead().expect("reap").is_empty());
        assert_eq!(s.running(Some("a")).expect("running").len(), 1);
    }

    #[test]
    fn purge_removes_old_finished_runs_and_their_logs() {
        let (_dir, s) = store();
        let run = s.create_run(&new_run("a", "old")).expect("run");
        let logs = s.latest_run("a").expect("latest").expect("run").log_dir;
        assert!(logs.is_dir());
        s.finish_run(run, Status::Succeeded, None).expect("finish");
        s.create_run(&new_run("a", "live")).expect("live");
        assert_eq!(s.purge("a", now_ms() + 1000).expect("purge"), 1);
        assert!(!logs.exists());
        assert_eq!(s.history("a", 10).expect("history").len(), 1);
    }

    #[test]
    fn names_are_safe_path_components() {
        assert_eq!(safe_name("a/b c"), "a_b_c");
        assert_eq!(safe_name(".."), "_");
    }
}
