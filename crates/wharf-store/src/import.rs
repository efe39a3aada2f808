//! Runs recorded elsewhere (a Dagu installation's history), kept as they ended.

use std::path::PathBuf;

use rusqlite::params;

use crate::{OutputRecord, Result, RunKey, Status, Store};

/// A finished run as another engine recorded it.
#[derive(Debug, Clone)]
pub struct ImportedRun {
    pub dag: String,
    pub run_id: String,
    /// The DAG file it ran, as far as is known.
    pub file: PathBuf,
    pub status: Status,
    pub params: Vec<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    /// Where its logs are (copied there by the caller).
    pub log_dir: PathBuf,
    /// What started it, as recorded (`dagu`).
    pub trigger: String,
    /// A sub-DAG run: the run whose step started it, that step, and the run at the top.
    pub parent: Option<(RunKey, String, RunKey)>,
    pub steps: Vec<ImportedStep>,
}

/// A step of an [`ImportedRun`], with its last attempt.
#[derive(Debug, Clone)]
pub struct ImportedStep {
    pub name: String,
    /// The event a handler answers (`exit`, `success`, `failure`, `abort`).
    pub handler: Option<String>,
    pub status: Status,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// How many times it ran (0: never).
    pub attempts: u32,
    pub error: Option<String>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub outputs: Vec<OutputRecord>,
}

impl Store {
    /// Keeps `run` as it was recorded, with its steps, their last attempts and outputs, in
    /// one transaction; None when the DAG has a run with its id already (nothing changes).
    pub fn import_run(&self, run: &ImportedRun) -> Result<Option<RunKey>> {
        let mut key = None;
        self.atomically(|| {
            let params = serde_json::to_string(&run.params).unwrap_or_else(|_| "[]".into());
            let added = self.conn.execute(
                "INSERT OR IGNORE INTO runs (dag, run_id, file, status, params, created_at, \
                 started_at, finished_at, error, log_dir, parent, parent_step, root, trigger) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    run.dag,
                    run.run_id,
                    run.file.to_string_lossy(),
                    run.status.as_str(),
                    params,
                    run.created_at,
                    run.started_at,
                    run.finished_at,
                    run.error,
                    run.log_dir.to_string_lossy(),
                    run.parent.as_ref().map(|p| p.0.0),
                    run.parent.as_ref().map(|p| p.1.as_str()),
                    run.parent.as_ref().map(|p| p.2.0),
                    run.trigger,
                ],
            )?;
            if added == 0 {
                return Ok(());
            }
            let id = self.conn.last_insert_rowid();
            for (position, step) in run.steps.iter().enumerate() {
                self.conn.execute(
                    "INSERT OR IGNORE INTO steps (run, name, handler, position, status, \
                     started_at, finished_at, attempts, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        id,
                        step.name,
                        step.handler,
                        i64::try_from(position).unwrap_or(i64::MAX),
                        step.status.as_str(),
                        step.started_at,
                        step.finished_at,
                        step.attempts,
                        step.error,
                    ],
                )?;
                if let Some(started) = step.started_at.filter(|_| step.attempts > 0) {
                    self.conn.execute(
                        "INSERT OR IGNORE INTO attempts (run, step, attempt, started_at, \
                         finished_at, stdout, stderr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            id,
                            step.name,
                            step.attempts,
                            started,
                            step.finished_at,
                            step.stdout.to_string_lossy(),
                            step.stderr.to_string_lossy(),
                        ],
                    )?;
                }
                for o in &step.outputs {
                    self.conn.execute(
                        "INSERT OR REPLACE INTO outputs (run, step, name, key, value, omit) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![id, o.step, o.name, o.key, o.value, o.omit],
                    )?;
                }
            }
            key = Some(RunKey(id));
            Ok(())
        })?;
        Ok(key)
    }
}
