//! The long-running processes of an installation (its schedulers): each says it is there
//! when it starts and again while it runs, and leaves when it stops.

use rusqlite::params;

use crate::liveness::{hostname, process_start, this_process};
use crate::{Result, Store, now_ms};

/// How long a process may go unheard before it counts as gone.
const QUIET_MS: i64 = 150_000;
/// How long a gone process's entry is kept, to be shown as inactive.
const FORGET_MS: i64 = 86_400_000;

/// A long-running process, as the API's status of services shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: String,
    pub kind: String,
    pub host: String,
    pub pid: i32,
    pub started_at: i64,
    pub seen_at: i64,
    /// Heard from lately, and (on this machine) its process is there.
    pub active: bool,
}

impl Store {
    /// Says that this process runs a service of `kind`; its id.
    pub fn register_service(&self, kind: &str) -> Result<String> {
        let (pid, start) = this_process();
        let host = hostname();
        let now = now_ms();
        let id = format!("{kind}-{host}-{pid}-{now}");
        self.conn.execute(
            "INSERT OR REPLACE INTO services (id, kind, host, pid, pid_start, started_at, seen_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![id, kind, host, pid, start, now],
        )?;
        Ok(id)
    }

    /// The service `id` is still there.
    pub fn service_seen(&self, id: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE services SET seen_at = ?2 WHERE id = ?1",
            params![id, now_ms()],
        )?;
        Ok(())
    }

    /// The service `id` stopped.
    pub fn remove_service(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM services WHERE id = ?1", params![id])?;
        Ok(())
    }

    /// The services of `kind`, first started first; those gone for a day are forgotten.
    pub fn services(&self, kind: &str) -> Result<Vec<Service>> {
        let now = now_ms();
        self.conn.execute(
            "DELETE FROM services WHERE seen_at < ?1",
            params![now - FORGET_MS],
        )?;
        let me = hostname();
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, host, pid, pid_start, started_at, seen_at FROM services \
             WHERE kind = ?1 ORDER BY started_at",
        )?;
        let rows = stmt.query_map(params![kind], |r| {
            Ok((
                Service {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    host: r.get(2)?,
                    pid: r.get(3)?,
                    started_at: r.get(5)?,
                    seen_at: r.get(6)?,
                    active: false,
                },
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut found = Vec::new();
        for row in rows {
            let (mut s, start) = row?;
            let heard = now - s.seen_at < QUIET_MS;
            // On this machine the process itself is looked at (a killed one says nothing).
            let there = s.host != me || process_start(s.pid).is_some_and(|p| Some(p) == start);
            s.active = heard && there;
            found.push(s);
        }
        Ok(found)
    }
}
