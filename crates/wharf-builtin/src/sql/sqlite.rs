//! SQLite through rusqlite (the SQLite wharf's own store is built with): a connection
//! opened, used and closed on a thread of its own, its rows sent to the step as they come.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fallible_iterator::FallibleIterator as _;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use wharf_engine::StepJob;
use wharf_spec::{OnConflict, SqlImport, SqlParams, SqlStep};

use super::{Failure, ImportFile, Record, Rows};
use crate::Output;

enum Msg {
    Columns(Vec<String>),
    Rows(Vec<Vec<Value>>),
}

pub(super) async fn run(
    sql: &SqlStep,
    dsn: &str,
    dir: &Path,
    job: &StepJob,
    rows: &mut Rows,
    out: &mut Output,
) -> Result<Map<String, Value>, Failure> {
    let target = target(dsn, dir, sql.shared_memory)?;
    let (tx, mut rx) = mpsc::channel::<Msg>(16);
    let cancelled = Arc::new(AtomicBool::new(false));
    let interrupt: Interrupt = Arc::default();
    let work = Work {
        sql: sql.clone(),
        target,
        dir: dir.to_path_buf(),
        cancelled: Arc::clone(&cancelled),
        interrupt: Arc::clone(&interrupt),
    };
    let mut task = tokio::task::spawn_blocking(move || work.run(&tx));
    let timer = super::expiry(sql);
    tokio::pin!(timer);
    let mut why: Option<Failure> = None;
    let mut open = true;
    let stop = |why: &mut Option<Failure>, reason: Failure| {
        *why = Some(reason);
        cancelled.store(true, Ordering::SeqCst);
        if let Ok(held) = interrupt.lock()
            && let Some(i) = held.as_ref()
        {
            i.interrupt();
        }
    };
    let result = loop {
        tokio::select! {
            biased;
            msg = rx.recv(), if open => match msg {
                Some(Msg::Columns(columns)) => rows.start(columns),
                Some(Msg::Rows(batch)) => {
                    for row in batch {
                        rows.row(row);
                    }
                    if rows.full() {
                        rows.flush(out).await?;
                    }
                }
                None => open = false,
            },
            ended = &mut task => break ended,
            () = job.stop.cancelled(), if why.is_none() => stop(&mut why, Failure::Stopped),
            () = &mut timer, if why.is_none() => stop(&mut why, super::timed_out(sql)),
        }
    };
    // Rows sent before the thread ended.
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Columns(columns) => rows.start(columns),
            Msg::Rows(batch) => batch.into_iter().for_each(|r| rows.row(r)),
        }
    }
    rows.flush(out).await?;
    let result =
        result.map_err(|e| Failure::Error(format!("the SQLite step's thread failed: {e}")))?;
    match (result, why) {
        (Ok(mut report), None) => {
            if sql.import.is_none() {
                report.insert("rows_returned".into(), rows.returned.into());
            }
            Ok(report)
        }
        (_, Some(why)) => Err(why),
        (Err(e), None) => Err(Failure::Error(e)),
    }
}

/// What `rusqlite` opens: a path or a `file:` URI, and the file a `file_lock` locks.
struct Target {
    name: String,
    uri: bool,
    file: Option<PathBuf>,
}

/// The DSN as SQLite opens it, relative paths made the step's working directory's:
/// `:memory:`, `file:PATH?OPTIONS` (a URI) or a plain path.
fn target(dsn: &str, dir: &Path, shared_memory: bool) -> Result<Target, String> {
    let dsn = dsn.trim();
    if dsn == ":memory:" {
        return Ok(if shared_memory {
            Target {
                name: "file::memory:?cache=shared".into(),
                uri: true,
                file: None,
            }
        } else {
            Target {
                name: ":memory:".into(),
                uri: false,
                file: None,
            }
        });
    }
    if let Some(rest) = dsn.strip_prefix("file:") {
        let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
        let memory = path == ":memory:" || options.split('&').any(|o| o == "mode=memory");
        if memory {
            return Ok(Target {
                name: dsn.to_owned(),
                uri: true,
                file: None,
            });
        }
        let path = percent_decode(
            path.trim_start_matches("//localhost")
                .trim_start_matches("//"),
        );
        let full = dir.join(&path);
        let mut name = format!("file:{}", percent_encode(&full.to_string_lossy()));
        if !options.is_empty() {
            name.push('?');
            name.push_str(options);
        }
        return Ok(Target {
            name,
            uri: true,
            file: Some(full),
        });
    }
    let full = dir.join(dsn);
    Ok(Target {
        name: full.to_string_lossy().into_owned(),
        uri: false,
        file: Some(full),
    })
}

/// A path as a `file:` URI writes it: `%`, `?` and `#` escaped.
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the step interrupts its connection's running statement (once it is open).
type Interrupt = Arc<std::sync::Mutex<Option<rusqlite::InterruptHandle>>>;

/// The part that runs on the connection's own thread.
struct Work {
    sql: SqlStep,
    target: Target,
    dir: PathBuf,
    /// Set when the step is stopped or out of time: a wait for the lock gives up.
    cancelled: Arc<AtomicBool>,
    interrupt: Interrupt,
}

impl Work {
    fn run(self, tx: &mpsc::Sender<Msg>) -> Result<Map<String, Value>, String> {
        // Held until the connection is closed (the end of this function).
        let _lock = match (&self.target.file, self.sql.file_lock) {
            (Some(file), true) => Some(self.lock(file)?),
            _ => None,
        };
        // A database file may be the first thing in its folder.
        if let Some(parent) = self.target.file.as_deref().and_then(Path::parent)
            && !self.target.name.contains("mode=ro")
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make the folder {}: {e}", parent.display()))?;
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if self.target.uri {
            flags |= OpenFlags::SQLITE_OPEN_URI;
        }
        let conn = Connection::open_with_flags(&self.target.name, flags)
            .map_err(|e| format!("cannot open the SQLite database: {e}"))?;
        if let Ok(mut held) = self.interrupt.lock() {
            *held = Some(conn.get_interrupt_handle());
        }
        if self.cancelled.load(Ordering::SeqCst) {
            return Err("stopped".into());
        }
        conn.busy_timeout(Duration::from_secs(5))
            .and_then(|()| conn.execute_batch("PRAGMA foreign_keys = ON"))
            .map_err(|e| format!("cannot set up the SQLite connection: {e}"))?;
        let report = match &self.sql.import {
            Some(import) => self.import(&conn, import),
            None => self.query(&conn, tx),
        };
        if report.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        drop(conn);
        report
    }

    /// An exclusive lock on `DATABASE.lock`, waited for until the step is stopped.
    fn lock(&self, file: &Path) -> Result<std::fs::File, String> {
        let mut path = file.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        loop {
            match lock.try_lock() {
                Ok(()) => return Ok(lock),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if self.cancelled.load(Ordering::SeqCst) {
                        return Err(format!("stopped waiting for {}", path.display()));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
        }
    }

    fn begin(&self, conn: &Connection) -> Result<(), String> {
        if self.sql.transaction {
            conn.execute_batch("BEGIN")
                .map_err(|e| format!("cannot begin a transaction: {e}"))?;
        }
        Ok(())
    }

    fn commit(&self, conn: &Connection) -> Result<(), String> {
        if !conn.is_autocommit() {
            conn.execute_batch("COMMIT")
                .map_err(|e| format!("cannot commit: {e}"))?;
        }
        Ok(())
    }

    fn query(
        &self,
        conn: &Connection,
        tx: &mpsc::Sender<Msg>,
    ) -> Result<Map<String, Value>, String> {
        let text = self.sql.query.as_deref().unwrap_or_default();
        self.begin(conn)?;
        let mut positional = match &self.sql.params {
            SqlParams::Positional(values) => values.iter(),
            _ => [].iter(),
        };
        let mut statements = 0u64;
        let mut affected = 0u64;
        let mut batch = rusqlite::Batch::new(conn, text);
        loop {
            let next = batch.next().map_err(|e| format!("the SQL failed: {e}"))?;
            let Some(mut stmt) = next else { break };
            statements += 1;
            for i in 1..=stmt.parameter_count() {
                let value = match (&self.sql.params, stmt.parameter_name(i)) {
                    (SqlParams::Named(named), Some(name)) => {
                        let bare = name.trim_start_matches([':', '@', '$']);
                        named
                            .iter()
                            .find(|(n, _)| n == bare)
                            .map(|(_, v)| v)
                            .ok_or_else(|| {
                                format!("the SQL names the parameter {name}, which `params` does not give")
                            })?
                    }
                    (SqlParams::Named(_), None) => {
                        return Err("the SQL has a `?` parameter, and `params` is a mapping: name it (`:name`) or give `params` as a list".into());
                    }
                    (_, _) => positional.next().ok_or_else(|| {
                        format!(
                            "the SQL takes more parameters than `params` gives ({})",
                            match &self.sql.params {
                                SqlParams::Positional(v) => v.len(),
                                _ => 0,
                            }
                        )
                    })?,
                };
                stmt.raw_bind_parameter(i, Bind(value))
                    .map_err(|e| format!("cannot bind parameter {i}: {e}"))?;
            }
            if stmt.column_count() == 0 {
                stmt.raw_execute()
                    .map_err(|e| format!("the SQL failed: {e}"))?;
                affected += conn.changes();
                continue;
            }
            let columns: Vec<String> = stmt
                .column_names()
                .iter()
                .map(|c| (*c).to_owned())
                .collect();
            let width = columns.len();
            send(tx, Msg::Columns(columns))?;
            let mut rows = stmt.raw_query();
            let mut held: Vec<Vec<Value>> = Vec::new();
            while let Some(row) = rows.next().map_err(|e| format!("the SQL failed: {e}"))? {
                let mut values = Vec::with_capacity(width);
                for i in 0..width {
                    let v = row
                        .get_ref(i)
                        .map_err(|e| format!("cannot read a row: {e}"))?;
                    values.push(json(v));
                }
                held.push(values);
                if held.len() >= 256 {
                    send(tx, Msg::Rows(std::mem::take(&mut held)))?;
                }
            }
            if !held.is_empty() {
                send(tx, Msg::Rows(held))?;
            }
        }
        if let SqlParams::Positional(values) = &self.sql.params
            && positional.len() > 0
        {
            return Err(format!(
                "`params` gives {} values, and the SQL takes {}",
                values.len(),
                values.len() - positional.len()
            ));
        }
        self.commit(conn)?;
        let mut report = Map::new();
        report.insert("statements".into(), statements.into());
        report.insert("rows_affected".into(), affected.into());
        Ok(report)
    }

    fn import(&self, conn: &Connection, import: &SqlImport) -> Result<Map<String, Value>, String> {
        let mut file = ImportFile::open(import, &self.dir)?;
        let verb = match import.on_conflict {
            OnConflict::Error => "INSERT",
            OnConflict::Ignore => "INSERT OR IGNORE",
            OnConflict::Replace => "INSERT OR REPLACE",
        };
        let table = super::quote_ident(&import.table);
        let columns = file.columns().map(|c| {
            format!(
                " ({})",
                c.iter()
                    .map(|c| super::quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let mut imported = 0u64;
        if !import.dry_run {
            // One transaction: a failed import leaves the table as it was.
            conn.execute_batch("BEGIN")
                .map_err(|e| format!("cannot begin the import: {e}"))?;
        }
        let mut batch: Vec<Record> = Vec::new();
        let mut width = 0usize;
        loop {
            if self.cancelled.load(Ordering::SeqCst) {
                return Err("stopped".into());
            }
            let record = file.next()?;
            let end = record.is_none();
            if let Some(r) = record {
                if import.dry_run {
                    continue;
                }
                if batch.is_empty() {
                    width = r.len();
                } else if r.len() != width {
                    return Err(format!(
                        "row {} of `{}` has {} fields where the rows before it have {width}",
                        file.rows_read + file.rows_skipped,
                        import.input_file,
                        r.len()
                    ));
                }
                batch.push(r);
            }
            // SQLite takes at most 32766 values in one statement.
            let most = (32_000 / width.max(1)).max(1);
            let limit = usize::try_from(import.batch_size)
                .unwrap_or(usize::MAX)
                .min(most);
            if !batch.is_empty() && (end || batch.len() >= limit) {
                let row = format!("({})", vec!["?"; width].join(", "));
                let sql = format!(
                    "{verb} INTO {table}{} VALUES {}",
                    columns.as_deref().unwrap_or_default(),
                    vec![row.as_str(); batch.len()].join(", ")
                );
                let mut stmt = conn
                    .prepare_cached(&sql)
                    .map_err(|e| format!("the import failed: {e}"))?;
                let values = batch.iter().flatten();
                for (i, v) in values.enumerate() {
                    stmt.raw_bind_parameter(i + 1, Bind(v))
                        .map_err(|e| format!("the import failed: {e}"))?;
                }
                stmt.raw_execute()
                    .map_err(|e| format!("the import failed: {e}"))?;
                imported += conn.changes();
                batch.clear();
            }
            if end {
                break;
            }
        }
        if !import.dry_run {
            conn.execute_batch("COMMIT")
                .map_err(|e| format!("cannot commit the import: {e}"))?;
        } else {
            imported = file.rows_read;
        }
        let mut report = Map::new();
        report.insert("table".into(), import.table.clone().into());
        report.insert("rows_read".into(), file.rows_read.into());
        report.insert("rows_imported".into(), imported.into());
        report.insert("rows_skipped".into(), file.rows_skipped.into());
        report.insert("dry_run".into(), import.dry_run.into());
        Ok(report)
    }
}

fn send(tx: &mpsc::Sender<Msg>, msg: Msg) -> Result<(), String> {
    tx.blocking_send(msg)
        .map_err(|_| "the step ended before its rows were written".to_owned())
}

/// A JSON value bound as SQLite's: text, an integer, a real, NULL; a boolean as 1 or 0.
struct Bind<'a>(&'a Value);

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ToSqlOutput::Owned(SqlValue::Integer(i)),
                None => ToSqlOutput::Owned(SqlValue::Real(n.as_f64().unwrap_or(f64::NAN))),
            },
            Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            other => ToSqlOutput::Owned(SqlValue::Text(other.to_string())),
        })
    }
}

/// A column's value as JSON: numbers as numbers, text as a string, a blob as its text
/// (base64 when it is not UTF-8).
fn json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => {
                use base64::Engine as _;
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_database_paths_are_the_step_folders() {
        let dir = Path::new("/srv/run ?#");
        let t = target("file:./app.db?mode=rw", dir, false).unwrap();
        assert_eq!(t.name, "file:/srv/run %3F%23/./app.db?mode=rw");
        assert_eq!(t.file.as_deref(), Some(Path::new("/srv/run ?#/./app.db")));
        let t = target("data.db", dir, false).unwrap();
        assert_eq!(t.name, "/srv/run ?#/data.db");
        assert!(!t.uri);
        let t = target("file:/abs/x.db", dir, false).unwrap();
        assert_eq!(t.name, "file:/abs/x.db");
        let t = target(":memory:", dir, true).unwrap();
        assert_eq!(t.name, "file::memory:?cache=shared");
        assert!(t.file.is_none());
    }
}
