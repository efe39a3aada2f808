//! `sqlite` and `postgres` steps: SQL run, or a CSV/TSV/JSONL file imported, over a
//! connection of the step's own. What the two share lives here: how rows are written
//! (JSON lines, a JSON array, CSV), how an import file is read, and the one line of
//! metrics each step writes to stderr.

mod import;
mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use wharf_engine::StepJob;
use wharf_spec::{SqlEngine, SqlFormat, SqlStep};

use crate::{Ended, Output};

pub(crate) use import::{ImportFile, Record, read_record};

pub(crate) async fn run(sql: &SqlStep, dir: &Path, job: &StepJob, out: &mut Output) -> Ended {
    let Some(dsn) = sql.dsn.as_deref().filter(|d| !d.trim().is_empty()) else {
        return Ended::Failed(format!(
            "the `{}` step has no `dsn`: dsn is required",
            sql.engine.name()
        ));
    };
    let started = Instant::now();
    let sink = match sql.output_file.as_deref() {
        Some(file) => match Sink::file(&dir.join(file)) {
            Ok(sink) => sink,
            Err(e) => return Ended::Failed(e),
        },
        None => Sink::Stdout,
    };
    let mut rows = Rows::new(sql, sink);
    let result = match sql.engine {
        SqlEngine::Sqlite => sqlite::run(sql, dsn, dir, job, &mut rows, out).await,
        SqlEngine::Postgres => postgres::run(sql, dsn, dir, job, &mut rows, out).await,
    };
    let result = match result {
        Ok(report) => rows.finish(out).await.map(|()| report),
        Err(e) => {
            let _ = rows.finish(out).await;
            Err(e)
        }
    };
    let took = started.elapsed().as_millis();
    match result {
        Ok(mut report) => {
            report.insert("status".into(), "completed".into());
            report.insert("duration_ms".into(), Value::from(took as u64));
            metrics(out, report).await;
            Ended::Done
        }
        Err(Failure::Stopped) => Ended::Stopped,
        Err(Failure::Error(e)) => {
            let mut report = Map::new();
            report.insert("status".into(), "failed".into());
            report.insert("duration_ms".into(), Value::from(took as u64));
            report.insert("error".into(), Value::from(e.clone()));
            metrics(out, report).await;
            Ended::Failed(e)
        }
    }
}

/// The step's one line of metrics on stderr (`status` first).
async fn metrics(out: &mut Output, mut report: Map<String, Value>) {
    let mut ordered = Map::new();
    if let Some(status) = report.remove("status") {
        ordered.insert("status".into(), status);
    }
    ordered.extend(report);
    let mut line = Value::Object(ordered).to_string();
    line.push('\n');
    out.stderr(line.as_bytes()).await;
}

/// Why a SQL step did not finish.
pub(crate) enum Failure {
    Stopped,
    Error(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Error(e.to_string())
    }
}

/// Where rows go: the step's stdout, or the `output_file`.
enum Sink {
    Stdout,
    File(tokio::fs::File, PathBuf),
}

impl Sink {
    fn file(path: &Path) -> Result<Self, String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make the folder of {}: {e}", path.display()))?;
        }
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Sink::File(
            tokio::fs::File::from_std(file),
            path.to_path_buf(),
        ))
    }
}

/// The rows of a step's statements, written in its `output_format` as they come.
pub(crate) struct Rows {
    format: SqlFormat,
    headers: bool,
    null: String,
    max: u64,
    /// Rows the statements returned, and the ones written (at most `max`).
    pub(crate) returned: u64,
    written: u64,
    /// The columns of the result being written (a new result set writes its CSV header).
    columns: Vec<String>,
    buf: Vec<u8>,
    sink: Sink,
}

impl Rows {
    fn new(sql: &SqlStep, sink: Sink) -> Self {
        Self {
            format: sql.format,
            headers: sql.headers,
            null: sql.null_string.clone().unwrap_or_default(),
            max: sql.max_rows,
            returned: 0,
            written: 0,
            columns: Vec::new(),
            buf: Vec::new(),
            sink,
        }
    }

    /// A statement's result starts: its columns.
    pub(crate) fn start(&mut self, columns: Vec<String>) {
        if self.format == SqlFormat::Csv && self.headers && self.columns != columns {
            let line: Vec<String> = columns.iter().map(|c| csv_field(c)).collect();
            self.buf.extend_from_slice(line.join(",").as_bytes());
            self.buf.push(b'\n');
        }
        self.columns = columns;
    }

    /// One row of the current result, in its columns' order.
    pub(crate) fn row(&mut self, values: Vec<Value>) {
        self.returned += 1;
        if self.max > 0 && self.written >= self.max {
            return;
        }
        self.written += 1;
        match self.format {
            SqlFormat::Jsonl | SqlFormat::Json => {
                let object: Map<String, Value> = self.columns.iter().cloned().zip(values).collect();
                if self.format == SqlFormat::Json {
                    self.buf.push(if self.written == 1 { b'[' } else { b',' });
                }
                // A map of strings to JSON values always serializes.
                let _ = serde_json::to_writer(&mut self.buf, &Value::Object(object));
                if self.format == SqlFormat::Jsonl {
                    self.buf.push(b'\n');
                }
            }
            SqlFormat::Csv => {
                let fields: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        Value::Null => csv_field(&self.null),
                        Value::String(s) => csv_field(s),
                        other => csv_field(&other.to_string()),
                    })
                    .collect();
                self.buf.extend_from_slice(fields.join(",").as_bytes());
                self.buf.push(b'\n');
            }
        }
    }

    /// Whether enough is held to be written out.
    pub(crate) fn full(&self) -> bool {
        self.buf.len() >= 64 * 1024
    }

    /// Writes what is held.
    pub(crate) async fn flush(&mut self, out: &mut Output) -> Result<(), Failure> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.buf);
        match &mut self.sink {
            Sink::Stdout => out.stdout(&bytes).await,
            Sink::File(file, path) => {
                use tokio::io::AsyncWriteExt;
                file.write_all(&bytes)
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    async fn finish(&mut self, out: &mut Output) -> Result<(), Failure> {
        if self.format == SqlFormat::Json {
            self.buf
                .extend_from_slice(if self.written == 0 { b"[]\n" } else { b"]\n" });
        }
        self.flush(out).await?;
        if let Sink::File(file, path) = &mut self.sink {
            use tokio::io::AsyncWriteExt;
            file.flush()
                .await
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    delimited_field(text, ',')
}

/// A CSV or TSV field, quoted when it holds the delimiter, a quote or a line break.
pub(crate) fn delimited_field(text: &str, delimiter: char) -> String {
    if text.contains([delimiter, '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// An identifier (a table, a column; `schema.table` by parts) quoted for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Ends when the step's `timeout` (0: none) has passed.
pub(crate) async fn expiry(sql: &SqlStep) {
    match (sql.timeout > 0).then(|| Duration::from_secs(sql.timeout)) {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Why the statements were given up: past the step's `timeout`.
pub(crate) fn timed_out(sql: &SqlStep) -> Failure {
    Failure::Error(format!(
        "the SQL did not finish within its timeout ({} s)",
        sql.timeout
    ))
}

/// A parameter's JSON value as the text a database reads (None for NULL): a string as
/// itself, a mapping or list as JSON.
pub(crate) fn param_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// `:name` placeholders of a named-params query, in order of appearance, with the SQL
/// rewritten by `placeholder` (given the name's position among the distinct names, from
/// 1). Quoted text, quoted identifiers, comments and `::` casts are left alone.
pub(crate) fn named_placeholders(
    sql: &str,
    placeholder: &dyn Fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(sql.len());
    let mut names: Vec<String> = Vec::new();
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                // A quoted text or identifier, up to its closing quote (doubled: escaped).
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            out.push(c);
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                out.push_str("/*");
                i += 2;
                while i < chars.len() {
                    if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        out.push_str("*/");
                        i += 2;
                        break;
                    }
                    out.push(chars[i]);
                    i += 1;
                }
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                out.push_str("::");
                i += 2;
            }
            ':' if chars
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_') =>
            {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                let at = match names.iter().position(|n| *n == name) {
                    Some(at) => at,
                    None => {
                        names.push(name);
                        names.len() - 1
                    }
                };
                out.push_str(&placeholder(at + 1));
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_placeholders_skip_quotes_comments_and_casts() {
        let (sql, names) = named_placeholders(
            "SELECT ':a', \":b\", x::text, :a, :b -- :c\n, :a /* :d */",
            &|n| format!("${n}"),
        );
        assert_eq!(
            sql,
            "SELECT ':a', \":b\", x::text, $1, $2 -- :c\n, $1 /* :d */"
        );
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn identifiers_are_quoted_by_part() {
        assert_eq!(quote_ident("public.users"), "\"public\".\"users\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
