//! State kept across runs (Dagu 2.x `state.*`): one JSON value per scope, namespace and
//! key. Each write numbers the entry's version on from the one before (a new entry is
//! version 1); a write may require the version it read, so that two runs updating the
//! same key cannot both win. The value arrives normalized and hashed by the caller.

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store, now_ms};

/// Where an entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRef<'a> {
    pub scope: &'a str,
    pub namespace: &'a str,
    pub key: &'a str,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub scope: String,
    pub namespace: String,
    pub key: String,
    /// The value, as normalized JSON text.
    pub value: String,
    pub version: i64,
    pub hash: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A write of an entry.
#[derive(Debug, Clone, Copy)]
pub struct Put<'a> {
    /// Normalized JSON text, and its hash.
    pub value: &'a str,
    pub hash: &'a str,
    /// The version the entry must have (0: it must not exist).
    pub expected_version: Option<i64>,
    /// The entry must not exist.
    pub create_only: bool,
    /// Who wrote it (a JSON object: DAG, run, step).
    pub updated_by: Option<&'a str>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Done(StateEntry),
    /// Nothing written: the entry is not as the write required (its version, or
    /// None when there is none).
    Conflict {
        found: Option<i64>,
    },
}

const COLUMNS: &str = "scope, namespace, key, value, version, hash, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StateEntry> {
    Ok(StateEntry {
        scope: r.get(0)?,
        namespace: r.get(1)?,
        key: r.get(2)?,
        value: r.get(3)?,
        version: r.get(4)?,
        hash: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

impl Store {
    /// The entry at `at`, if there is one.
    pub fn state_get(&self, at: StateRef<'_>) -> Result<Option<StateEntry>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM dag_state WHERE scope = ?1 AND namespace = ?2 AND key = ?3"
                ),
                params![at.scope, at.namespace, at.key],
                row,
            )
            .optional()?)
    }

    /// Writes the entry at `at`, if it is as `put` requires; one write at a time across
    /// processes (a transaction that takes the database's write lock first).
    pub fn state_put(&self, at: StateRef<'_>, put: Put<'_>) -> Result<Written> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = self.state_put_in(at, put);
        match &result {
            Ok(_) => self.conn.execute_batch("COMMIT")?,
            Err(_) => {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
        result
    }

    fn state_put_in(&self, at: StateRef<'_>, put: Put<'_>) -> Result<Written> {
        let before = self.state_get(at)?;
        let found = before.as_ref().map(|e| e.version);
        let expected_ok = match put.expected_version {
            None => true,
            Some(v) => found.unwrap_or(0) == v,
        };
        if !expected_ok || (put.create_only && found.is_some()) {
            return Ok(Written::Conflict { found });
        }
        let now = now_ms();
        let (version, created_at) = before.map_or((1, now), |e| (e.version + 1, e.created_at));
        self.conn.execute(
            "INSERT INTO dag_state \
             (scope, namespace, key, value, version, hash, created_at, updated_at, updated_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (scope, namespace, key) DO UPDATE SET value = ?4, version = ?5, \
             hash = ?6, updated_at = ?8, updated_by = ?9",
            params![
                at.scope,
                at.namespace,
                at.key,
                put.value,
                version,
                put.hash,
                created_at,
                now,
                put.updated_by
            ],
        )?;
        Ok(Written::Done(StateEntry {
            scope: at.scope.to_owned(),
            namespace: at.namespace.to_owned(),
            key: at.key.to_owned(),
            value: put.value.to_owned(),
            version,
            hash: put.hash.to_owned(),
            created_at,
            updated_at: now,
        }))
    }

    /// Deletes the entry at `at`; whether there was one.
    pub fn state_delete(&self, at: StateRef<'_>) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM dag_state WHERE scope = ?1 AND namespace = ?2 AND key = ?3",
            params![at.scope, at.namespace, at.key],
        )? > 0)
    }

    /// The entries of a scope and namespace whose keys start with `prefix`, by key; at
    /// most `limit` of them (0: all).
    pub fn state_list(
        &self,
        scope: &str,
        namespace: &str,
        prefix: &str,
        limit: u32,
    ) -> Result<Vec<StateEntry>> {
        let limit = if limit == 0 { -1 } else { i64::from(limit) };
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM dag_state WHERE scope = ?1 AND namespace = ?2 \
             AND substr(key, 1, length(?3)) = ?3 ORDER BY key LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![scope, namespace, prefix, limit], row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(key: &str) -> StateRef<'_> {
        StateRef {
            scope: "dag",
            namespace: "feed",
            key,
        }
    }

    fn put<'a>(value: &'a str, expected: Option<i64>, create_only: bool) -> Put<'a> {
        Put {
            value,
            hash: "h",
            expected_version: expected,
            create_only,
            updated_by: None,
        }
    }

    #[test]
    fn versions_count_writes_and_guard_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.state_get(at("a")).unwrap(), None);
        // Version 0 required: the entry must not exist.
        let Written::Done(first) = store.state_put(at("a"), put("1", Some(0), false)).unwrap()
        else {
            panic!("not written")
        };
        assert_eq!(first.version, 1);
        assert_eq!(
            store.state_put(at("a"), put("2", Some(0), false)).unwrap(),
            Written::Conflict { found: Some(1) }
        );
        assert_eq!(
            store.state_put(at("a"), put("2", None, true)).unwrap(),
            Written::Conflict { found: Some(1) }
        );
        let Written::Done(second) = store.state_put(at("a"), put("2", Some(1), false)).unwrap()
        else {
            panic!("not written")
        };
        assert_eq!((second.version, second.created_at), (2, first.created_at));
        assert_eq!(store.state_get(at("a")).unwrap().unwrap().value, "2");
        // Another namespace or scope is another entry.
        let other = StateRef {
            scope: "custom",
            ..at("a")
        };
        assert_eq!(store.state_get(other).unwrap(), None);
        assert!(store.state_delete(at("a")).unwrap());
        assert!(!store.state_delete(at("a")).unwrap());
        assert_eq!(
            store.state_put(at("a"), put("3", Some(2), false)).unwrap(),
            Written::Conflict { found: None }
        );
    }

    #[test]
    fn lists_by_prefix_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for key in ["cursors/b", "cursors/a", "snapshots/x", "cursorsX"] {
            store.state_put(at(key), put("0", None, false)).unwrap();
        }
        let keys = |prefix: &str, limit: u32| -> Vec<String> {
            store
                .state_list("dag", "feed", prefix, limit)
                .unwrap()
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(keys("cursors/", 0), ["cursors/a", "cursors/b"]);
        assert_eq!(keys("", 2), ["cursors/a", "cursors/b"]);
        assert_eq!(keys("", 0).len(), 4);
        assert!(store.state_list("dag", "other", "", 0).unwrap().is_empty());
    }
}
