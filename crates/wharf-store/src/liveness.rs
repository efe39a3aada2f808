//! Whether the process that runs a run is alive, and what is done when it is not: the run
//! marked failed, and what its steps started killed.

use rusqlite::{OptionalExtension, params};

use crate::{Owner, RUN_COLUMNS, Result, RunKey, RunRecord, Store, now_ms, run_row};

impl Store {
    /// Finds runs recorded as `running` whose process is gone (killed, or the machine
    /// restarted), marks them and their running steps failed, kills what is left of their
    /// steps' process groups, and returns them.
    pub fn reap_dead(&self) -> Result<Vec<RunRecord>> {
        let me = hostname();
        let mut stmt = self.conn.prepare_cached(
            // A parked queued run (no pid) has no process to die.
            "SELECT id, pid, pid_start, host FROM runs WHERE status = 'running' OR (status = 'queued' AND pid IS NOT NULL)",
        )?;
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
            // Only while the dead process still owns the run: it may have been handed to
            // another (`wharf enqueue` hands its record over, a waiting run takes its
            // place) between the read above and the check.
            let owner = (pid, start);
            // A queued run whose process ended never started: it leaves the queue.
            if self.conn.execute(
                "UPDATE runs SET status = 'aborted', finished_at = ?2, error = ?3
                 WHERE id = ?1 AND status = 'queued' AND pid IS ?4 AND pid_start IS ?5",
                params![
                    id,
                    now_ms(),
                    "dequeued: the process that waited for its place ended (killed?)",
                    owner.0,
                    owner.1
                ],
            )? > 0
            {
                continue;
            }
            let message = "the process running this run ended without finishing it (killed?)";
            if !self.end_run(id, owner, message)? {
                continue; // Finished meanwhile, or another process has it now.
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
        let (pid, start) = this_process();
        self.end_run(run.0, (Some(pid), start), message).map(|_| ())
    }

    /// Marks a running run and its running steps failed and kills what its steps started:
    /// the process groups recorded for them, and every process whose environment names
    /// the run (a step's processes carry `DAG_NAME` and `DAG_RUN_ID`, even those started
    /// before their group was recorded). False when the run was not running.
    /// Only while `owner` (pid, start time) still owns it; false when it did not.
    fn end_run(&self, id: i64, owner: (Option<i32>, Option<i64>), message: &str) -> Result<bool> {
        let tx = self.conn.unchecked_transaction()?;
        let changed = tx.execute(
            "UPDATE runs SET status = 'failed', finished_at = ?2, error = ?3
             WHERE id = ?1 AND status = 'running' AND pid IS ?4 AND pid_start IS ?5",
            params![id, now_ms(), message, owner.0, owner.1],
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
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn this_process() -> (i32, Option<i64>) {
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

/// Kills what is left of a dead run's step: its process group, if the group still exists.
fn kill_orphaned_group(pgid: i32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}
