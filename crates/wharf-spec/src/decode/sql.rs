//! `type: sqlite` / `type: postgres` and their `config` (Dagu 2.x's `action: sqlite.query`,
//! `sqlite.import`, `postgres.query`, `postgres.import` and their `with`).

use super::keys::Keys;
use super::reader::Decoder;
use crate::diag::Diagnostic;
use crate::model::{OnConflict, SqlEngine, SqlFormat, SqlImport, SqlParams, SqlStep};
use crate::yaml::{Kind, Node};

const SQL_KEYS: Keys = Keys {
    known: &[
        // What the action was (`query`, `import`), set by the 2.x action's rewrite.
        "op",
        "query",
        "dsn",
        "params",
        "timeout",
        "transaction",
        "isolationLevel",
        "outputFormat",
        "headers",
        "nullString",
        "maxRows",
        "streaming",
        "outputFile",
        "advisoryLock",
        "fileLock",
        "sharedMemory",
        "import",
    ],
    ignored: &[],
    unsupported: &[],
};

const IMPORT_KEYS: Keys = Keys {
    known: &[
        "inputFile",
        "table",
        "format",
        "hasHeader",
        "delimiter",
        "columns",
        "nullValues",
        "batchSize",
        "onConflict",
        "conflictTarget",
        "updateColumns",
        "skipRows",
        "maxRows",
        "dryRun",
    ],
    ignored: &[],
    unsupported: &[],
};

pub(crate) const ISOLATION_LEVELS: [&str; 4] = [
    "default",
    "read_committed",
    "repeatable_read",
    "serializable",
];

/// The step's SQL step, with what `command` and `script` hold known to the caller: the SQL
/// of a `type: sqlite` step may be written there instead of in `query`.
pub(crate) fn sql_step(
    d: &mut Decoder,
    kind: &str,
    config: Option<&Node>,
    at: &Node,
    has_command: bool,
) -> SqlStep {
    let engine = if kind == "postgres" {
        SqlEngine::Postgres
    } else {
        SqlEngine::Sqlite
    };
    let mut sql = SqlStep {
        engine,
        timeout: 60,
        ..SqlStep::default()
    };
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let what = format!("the `{kind}` config");
    let Some(f) = d.fields(config, &what, &SQL_KEYS) else {
        return sql;
    };
    let op = d.opt_string(&f, "op");
    sql.query = d.opt_string(&f, "query");
    sql.dsn = d.opt_string(&f, "dsn");
    if let Some(n) = f.get("params") {
        sql.params = match &n.kind {
            Kind::Seq(items) => SqlParams::Positional(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => SqlParams::Named(
                entries
                    .iter()
                    .map(|e| {
                        let name = e.key.as_str().unwrap_or_default();
                        (name.trim_start_matches(':').to_owned(), e.value.to_json())
                    })
                    .collect(),
            ),
            Kind::Scalar(_) => {
                d.diags.push(
                    Diagnostic::error(n.at(), "`params` of a SQL step is a list or a mapping")
                        .with_help("a list binds in order (`?`, or `$1` in PostgreSQL); a mapping by name (`:name`)"),
                );
                SqlParams::None
            }
        };
    }
    if let Some(t) = d.opt_uint(&f, "timeout") {
        sql.timeout = t;
    }
    sql.transaction = d.opt_bool(&f, "transaction").unwrap_or(false);
    if let Some(n) = f.get("isolationLevel")
        && let Some(level) = d.string(n, "`isolation_level`")
    {
        let norm = level.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        if ISOLATION_LEVELS.contains(&norm.as_str()) {
            sql.isolation_level = Some(norm);
        } else {
            d.enum_error(n, "`isolation_level`", &level, &ISOLATION_LEVELS);
        }
        if !sql.transaction {
            d.warning(
                n.at(),
                "`isolation_level` is the level of the step's transaction: set `transaction: true` for it to apply",
            );
        }
    }
    if let Some(n) = f.get("outputFormat") {
        match n.as_str().map(str::trim) {
            Some("jsonl") => sql.format = SqlFormat::Jsonl,
            Some("json") => sql.format = SqlFormat::Json,
            Some("csv") => sql.format = SqlFormat::Csv,
            other => d.enum_error(
                n,
                "`output_format`",
                other.unwrap_or_default(),
                &["jsonl", "json", "csv"],
            ),
        }
    }
    sql.headers = d.opt_bool(&f, "headers").unwrap_or(false);
    sql.null_string = d.opt_string(&f, "nullString");
    sql.max_rows = d.opt_uint(&f, "maxRows").unwrap_or(0);
    // Rows are always written as they come (a `json` array too, one row at a time):
    // `streaming` only says so.
    let _ = d.opt_bool(&f, "streaming");
    sql.output_file = d.opt_string(&f, "outputFile");
    sql.advisory_lock = d.opt_string(&f, "advisoryLock");
    sql.file_lock = d.opt_bool(&f, "fileLock").unwrap_or(false);
    sql.shared_memory = d.opt_bool(&f, "sharedMemory").unwrap_or(false);
    match engine {
        SqlEngine::Sqlite => {
            if let Some(span) = f.key_span("advisoryLock") {
                d.warning(
                    span,
                    "`advisory_lock` is a PostgreSQL lock: SQLite has none, so it does nothing here (`file_lock` locks a SQLite file)",
                );
            }
        }
        SqlEngine::Postgres => {
            for key in ["fileLock", "sharedMemory"] {
                if let Some(span) = f.key_span(key) {
                    d.warning(
                        span,
                        format!(
                            "`{}` is a SQLite setting: it does nothing for PostgreSQL",
                            f.written(key)
                        ),
                    );
                }
            }
        }
    }
    if let Some(n) = f.get("import") {
        sql.import = sql_import(d, n, engine).map(Box::new);
    }
    if sql.dsn.is_none() && !f.rejected {
        d.warning(
            config.at(),
            format!("the `{kind}` step has no `dsn`: it fails when it runs (dsn is required)"),
        );
    }
    let has_sql = sql.query.is_some() || has_command;
    match op.as_deref() {
        Some("query") => {
            if sql.query.is_none() {
                d.diags.push(
                    Diagnostic::error(
                        at.at(),
                        format!("`action: {kind}.query`: with.query is required"),
                    )
                    .with_help("the SQL to run, e.g. `query: SELECT * FROM users WHERE id = ?`"),
                );
            }
            if let Some(span) = f.key_span("import") {
                d.diags.push(
                    Diagnostic::error(span, format!("`{kind}.query` takes no `with.import`"))
                        .with_help(format!("`action: {kind}.import` loads a file")),
                );
            }
        }
        Some("import") => {
            if !f.has("import") {
                d.diags.push(
                    Diagnostic::error(
                        at.at(),
                        format!("`action: {kind}.import`: with.import is required"),
                    )
                    .with_help("e.g. `import: {input_file: users.csv, table: users}`"),
                );
            }
            if let Some(span) = f.key_span("query") {
                d.diags.push(
                    Diagnostic::error(span, format!("`{kind}.import` takes no `with.query`"))
                        .with_help(format!("`action: {kind}.query` runs SQL")),
                );
            }
        }
        _ if f.rejected => {}
        _ => {
            if !has_sql && !f.has("import") {
                d.diags.push(
                    Diagnostic::error(
                        at.at(),
                        format!("a `{kind}` step needs the SQL to run (`command` or `script`), or `import` in its config"),
                    )
                    .with_help("e.g. `command: SELECT * FROM users` with `config: {dsn: file:./app.db}`"),
                );
            } else if has_sql && f.has("import") {
                d.error(
                    at.at(),
                    format!(
                        "a `{kind}` step runs SQL or imports a file, not both: make them two steps"
                    ),
                );
            }
        }
    }
    sql
}

fn sql_import(d: &mut Decoder, node: &Node, engine: SqlEngine) -> Option<SqlImport> {
    let f = d.fields(node, "`import`", &IMPORT_KEYS)?;
    let mut import = SqlImport {
        has_header: true,
        batch_size: 1000,
        ..SqlImport::default()
    };
    match d.opt_string(&f, "inputFile") {
        Some(path) => import.input_file = path,
        None if !f.rejected => d.error(node.at(), "`import` needs `input_file`: the file to load"),
        None => {}
    }
    match d.opt_string(&f, "table") {
        Some(table) => import.table = table,
        None if !f.rejected => d.error(node.at(), "`import` needs `table`: the table to load into"),
        None => {}
    }
    if let Some(n) = f.get("format")
        && let Some(format) = d.string(n, "`format`")
    {
        let format = format.trim().to_ascii_lowercase();
        if ["csv", "tsv", "jsonl"].contains(&format.as_str()) || format.contains('$') {
            import.format = Some(format);
        } else {
            d.enum_error(n, "`format`", &format, &["csv", "tsv", "jsonl"]);
        }
    }
    import.has_header = d.opt_bool(&f, "hasHeader").unwrap_or(true);
    if let Some(n) = f.get("delimiter")
        && let Some(delim) = d.string(n, "`delimiter`")
    {
        let delim = if delim == "\\t" {
            "\t".to_owned()
        } else {
            delim
        };
        if delim.chars().count() == 1 && delim != "\"" && delim != "\n" {
            import.delimiter = Some(delim);
        } else {
            d.error(
                n.at(),
                "`delimiter` is one character (not a quote or a line break), e.g. `;` or `\\t`",
            );
        }
    }
    if let Some(n) = f.get("columns") {
        import.columns = d.strings(n, "`columns`");
    }
    if let Some(n) = f.get("nullValues") {
        import.null_values = Some(d.strings(n, "`null_values`"));
    }
    if let Some(n) = f.get("batchSize") {
        match d.uint(n, "`batch_size`", false) {
            Some(0) => d.error(n.at(), "`batch_size` is at least 1"),
            Some(b) => import.batch_size = b,
            None => {}
        }
    }
    if let Some(n) = f.get("onConflict") {
        match n.as_str().map(str::trim) {
            Some("error") => import.on_conflict = OnConflict::Error,
            Some("ignore") => import.on_conflict = OnConflict::Ignore,
            Some("replace") => import.on_conflict = OnConflict::Replace,
            other => d.enum_error(
                n,
                "`on_conflict`",
                other.unwrap_or_default(),
                &["error", "ignore", "replace"],
            ),
        }
    }
    import.conflict_target = d.opt_string(&f, "conflictTarget");
    if let Some(n) = f.get("updateColumns") {
        import.update_columns = d.strings(n, "`update_columns`");
    }
    if engine == SqlEngine::Sqlite {
        for key in ["conflictTarget", "updateColumns"] {
            if let Some(span) = f.key_span(key) {
                d.warning(
                    span,
                    format!(
                        "`{}` is for PostgreSQL: SQLite's `on_conflict` uses the table's own keys (INSERT OR IGNORE / OR REPLACE)",
                        f.written(key)
                    ),
                );
            }
        }
    }
    if engine == SqlEngine::Postgres
        && import.on_conflict == OnConflict::Replace
        && import.conflict_target.is_none()
        && let Some(span) = f.key_span("onConflict")
    {
        d.warning(
            span,
            "`on_conflict: replace` on PostgreSQL updates a row by its key: without `conflict_target` a row already there is kept (ON CONFLICT DO NOTHING)",
        );
    }
    import.skip_rows = d.opt_uint(&f, "skipRows").unwrap_or(0);
    import.max_rows = d.opt_uint(&f, "maxRows").unwrap_or(0);
    import.dry_run = d.opt_bool(&f, "dryRun").unwrap_or(false);
    Some(import)
}
