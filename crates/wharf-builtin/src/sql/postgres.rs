//! PostgreSQL through tokio-postgres (TLS by rustls, as `sslmode` says): one connection per step. Each statement of the
//! step's SQL is prepared and run in turn (the extended protocol: parameters as text the
//! server reads as each placeholder's type, rows with their types), so numbers come out
//! as JSON numbers and a stop cancels the running statement on the server.

use std::error::Error as StdError;
use std::path::Path;

use futures_util::{StreamExt, pin_mut};
use serde_json::{Map, Value};
use tokio_postgres::Client;
use tokio_postgres::types::{Format, FromSql, IsNull, Kind, ToSql, Type};
use wharf_engine::StepJob;
use wharf_spec::{OnConflict, SqlImport, SqlParams, SqlStep};

use super::{Failure, ImportFile, Rows};
use crate::Output;

pub(super) async fn run(
    sql: &SqlStep,
    dsn: &str,
    dir: &Path,
    job: &StepJob,
    rows: &mut Rows,
    out: &mut Output,
) -> Result<Map<String, Value>, Failure> {
    // The DSN is never shown: it may hold a password.
    let (rest, tls) = tls_settings(dsn.trim())?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
        Failure::Error(format!(
            "the dsn is not a PostgreSQL connection string (`postgres://user:password@host:5432/db` or `host=... dbname=...`): {}",
            without_dsn(&e, dsn)
        ))
    })?;
    config.ssl_mode(match tls.mode {
        TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
        TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    let tls = tls.connector(dir)?;
    let timer = super::expiry(sql);
    tokio::pin!(timer);
    let timeout = || super::timed_out(sql);
    let connect = config.connect(tls.clone());
    let (client, connection) = tokio::select! {
        c = connect => c.map_err(|e| match e.as_db_error() {
            Some(_) => db_error("cannot connect to PostgreSQL", &e),
            None => Failure::Error(format!(
                "cannot connect to PostgreSQL: {}", without_dsn(&chain(&e), dsn)
            )),
        })?,
        () = job.stop.cancelled() => return Err(Failure::Stopped),
        () = &mut timer => return Err(timeout()),
    };
    // The connection's own task ends when the client is dropped.
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let cancel = client.cancel_token();
    let report = {
        let work = async {
            match &sql.import {
                Some(import) => self::import(&client, sql, import, dir).await,
                None => query(&client, sql, rows, out).await,
            }
        };
        tokio::select! {
            r = work => r,
            () = job.stop.cancelled() => {
                let _ = cancel.cancel_query(tls.clone()).await;
                Err(Failure::Stopped)
            }
            () = &mut timer => {
                let _ = cancel.cancel_query(tls.clone()).await;
                Err(timeout())
            }
        }
    };
    drop(client);
    let _ = connection.await;
    report
}

/// How a connection uses TLS, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// Never.
    Disable,
    /// When the server offers it (libpq's default), its certificate not checked.
    Prefer,
    /// Always, the certificate not checked (checked as `verify-ca` with `sslrootcert`).
    Require,
    /// Always, the certificate signed by a trusted authority.
    VerifyCa,
    /// Always, the certificate signed by a trusted authority and naming the host.
    VerifyFull,
}

/// The DSN's TLS settings, which wharf handles itself: `sslmode` and `sslrootcert`.
#[derive(Debug)]
struct Tls {
    mode: TlsMode,
    root_cert: Option<String>,
}

/// The DSN without its TLS settings (in a URL's query or as `key=value` words), and those.
fn tls_settings(dsn: &str) -> Result<(String, Tls), Failure> {
    let mut mode: Option<String> = None;
    let mut root_cert: Option<String> = None;
    let mut take = |key: &str, value: String| -> Result<bool, Failure> {
        match key {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root_cert = Some(value),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(Failure::Error(format!(
                    "the dsn's `{key}` (a client certificate) is not one wharf's PostgreSQL steps present: log in with a password"
                )));
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        match dsn.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let value = percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned();
                    if !take(k, value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => dsn.to_owned(),
        }
    } else {
        // `key=value` words; a value may be quoted ('...', with \' and \\ inside).
        let mut kept = Vec::new();
        let chars: Vec<char> = dsn.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let start = i;
            while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
                i += 1;
            }
            let key: String = chars[start..i].iter().collect();
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '=' {
                i += 1;
            }
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < chars.len() && chars[i] == '\'' {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
            let word: String = chars[start..i.min(chars.len())].iter().collect();
            if !key.is_empty() && !take(&key, value)? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    let mode = match mode.as_deref().map(str::trim) {
        None | Some("prefer" | "allow") => TlsMode::Prefer,
        Some("disable") => TlsMode::Disable,
        Some("require") if root_cert.is_some() => TlsMode::VerifyCa,
        Some("require") => TlsMode::Require,
        Some("verify-ca") => TlsMode::VerifyCa,
        Some("verify-full") => TlsMode::VerifyFull,
        Some(other) => {
            return Err(Failure::Error(format!(
                "the dsn's sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
            )));
        }
    };
    Ok((rest, Tls { mode, root_cert }))
}

impl Tls {
    /// The TLS connector for the mode: certificates checked against `sslrootcert` (a path
    /// relative to `dir`) or the system's roots.
    fn connector(&self, dir: &Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Failure> {
        let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
        let config = match self.mode {
            TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(crate::http::NoCheck))
                .with_no_client_auth(),
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let mut roots = rustls::RootCertStore::empty();
                match &self.root_cert {
                    Some(file) => {
                        let path = dir.join(file);
                        let text = std::fs::read(&path).map_err(|e| {
                            format!("cannot read the dsn's sslrootcert {}: {e}", path.display())
                        })?;
                        let mut added = 0;
                        use rustls::pki_types::pem::PemObject as _;
                        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&text) {
                            let cert = cert.map_err(|e| {
                                format!(
                                    "the sslrootcert {} is not PEM certificates: {e}",
                                    path.display()
                                )
                            })?;
                            if roots.add(cert).is_ok() {
                                added += 1;
                            }
                        }
                        if added == 0 {
                            return Err(Failure::Error(format!(
                                "the sslrootcert {} holds no certificate",
                                path.display()
                            )));
                        }
                    }
                    None => {
                        for cert in rustls_native_certs::load_native_certs().certs {
                            let _ = roots.add(cert);
                        }
                    }
                }
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    std::sync::Arc::new(roots),
                    std::sync::Arc::new(rustls::crypto::ring::default_provider()),
                )
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
                if self.mode == TlsMode::VerifyFull {
                    builder.with_webpki_verifier(webpki).with_no_client_auth()
                } else {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(std::sync::Arc::new(ChainOnly(webpki)))
                        .with_no_client_auth()
                }
            }
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// `verify-ca`: the certificate's chain is checked, not the name it is for.
#[derive(Debug)]
struct ChainOnly(std::sync::Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// An error with the errors under it (a TLS handshake's reason): `a: b: c`.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut under = e.source();
    while let Some(cause) = under {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        under = cause.source();
    }
    text
}

/// An error's text with the DSN (and so its password) taken out, should it be quoted.
fn without_dsn(e: &dyn std::fmt::Display, dsn: &str) -> String {
    let text = e.to_string();
    if dsn.trim().is_empty() {
        text
    } else {
        text.replace(dsn.trim(), "<dsn>")
    }
}

fn db_error(what: &str, e: &tokio_postgres::Error) -> Failure {
    // A server's error says what and where; the client's wrapper alone says "db error".
    let detail = match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                text.push_str(&format!(" ({d})"));
            }
            text
        }
        None => e.to_string(),
    };
    Failure::Error(format!("{what}: {detail}"))
}

async fn query(
    client: &Client,
    sql: &SqlStep,
    rows: &mut Rows,
    out: &mut Output,
) -> Result<Map<String, Value>, Failure> {
    let text = sql.query.as_deref().unwrap_or_default();
    let lock = sql.advisory_lock.as_deref().map(lock_key);
    if let Some(key) = lock {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| db_error("cannot take the advisory lock", &e))?;
    }
    let result = statements(client, sql, text, rows, out).await;
    if result.is_err() && sql.transaction {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    if let Some(key) = lock {
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await;
    }
    result
}

async fn statements(
    client: &Client,
    sql: &SqlStep,
    text: &str,
    rows: &mut Rows,
    out: &mut Output,
) -> Result<Map<String, Value>, Failure> {
    if sql.transaction {
        let begin = match sql.isolation_level.as_deref() {
            Some("read_committed") => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Some("repeatable_read") => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            Some("serializable") => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            _ => "BEGIN",
        };
        client
            .batch_execute(begin)
            .await
            .map_err(|e| db_error("cannot begin a transaction", &e))?;
    }
    let mut count = 0u64;
    let mut affected = 0u64;
    for statement in split_statements(text) {
        count += 1;
        let (statement, names) = match &sql.params {
            SqlParams::Named(_) => super::named_placeholders(&statement, &|n| format!("${n}")),
            _ => (statement, Vec::new()),
        };
        let prepared = client
            .prepare(&statement)
            .await
            .map_err(|e| db_error("the SQL failed", &e))?;
        let wanted = prepared.params().len();
        let params: Vec<Text> = match &sql.params {
            SqlParams::None => Vec::new(),
            SqlParams::Positional(values) => values
                .iter()
                .take(wanted)
                .map(|v| Text(super::param_text(v)))
                .collect(),
            SqlParams::Named(named) => names
                .iter()
                .map(|name| {
                    named
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| Text(super::param_text(v)))
                        .ok_or_else(|| {
                            Failure::Error(format!(
                                "the SQL names the parameter :{name}, which `params` does not give"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        if params.len() != wanted {
            return Err(Failure::Error(format!(
                "the SQL takes {wanted} parameters and `params` gives {}",
                params.len()
            )));
        }
        if prepared.columns().is_empty() {
            affected += client
                .execute_raw(&prepared, params.iter())
                .await
                .map_err(|e| db_error("the SQL failed", &e))?;
            continue;
        }
        let columns: Vec<String> = prepared
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        rows.start(columns);
        let stream = client
            .query_raw(&prepared, params.iter())
            .await
            .map_err(|e| db_error("the SQL failed", &e))?;
        pin_mut!(stream);
        while let Some(row) = stream.next().await {
            let row = row.map_err(|e| db_error("the SQL failed", &e))?;
            let mut values = Vec::with_capacity(row.len());
            for (i, column) in row.columns().iter().enumerate() {
                let cell: Cell = row.try_get(i).map_err(|e| {
                    Failure::Error(format!(
                        "cannot write the column `{}` ({}): {}; cast it in the query (`{}::text`)",
                        column.name(),
                        column.type_().name(),
                        e.source()
                            .map_or_else(|| e.to_string(), ToString::to_string),
                        column.name()
                    ))
                })?;
                values.push(cell.0);
            }
            rows.row(values);
            if rows.full() {
                rows.flush(out).await?;
            }
        }
        if let Some(n) = stream.rows_affected() {
            affected += n;
        }
    }
    if sql.transaction {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| db_error("cannot commit", &e))?;
    }
    let mut report = Map::new();
    report.insert("statements".into(), count.into());
    report.insert("rows_returned".into(), rows.returned.into());
    report.insert("rows_affected".into(), affected.into());
    Ok(report)
}

async fn import(
    client: &Client,
    sql: &SqlStep,
    import: &SqlImport,
    dir: &Path,
) -> Result<Map<String, Value>, Failure> {
    let mut file = ImportFile::open(import, dir)?;
    let table = super::quote_ident(&import.table);
    let columns: Option<Vec<String>> = file.columns().map(<[String]>::to_vec);
    let column_list = columns.as_ref().map(|c| {
        format!(
            " ({})",
            c.iter()
                .map(|c| super::quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let conflict = match import.on_conflict {
        OnConflict::Error => String::new(),
        OnConflict::Ignore => match &import.conflict_target {
            Some(t) => format!(" ON CONFLICT ({}) DO NOTHING", idents(t)),
            None => " ON CONFLICT DO NOTHING".into(),
        },
        // Without the key a conflict is on, PostgreSQL cannot update: the row is kept.
        OnConflict::Replace if import.conflict_target.is_none() => " ON CONFLICT DO NOTHING".into(),
        OnConflict::Replace => {
            let target = import.conflict_target.as_deref().unwrap_or_default();
            let keys: Vec<String> = target.split(',').map(|k| k.trim().to_owned()).collect();
            let update: Vec<String> = if import.update_columns.is_empty() {
                columns
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| !keys.contains(c))
                    .collect()
            } else {
                import.update_columns.clone()
            };
            if update.is_empty() {
                format!(" ON CONFLICT ({}) DO NOTHING", idents(target))
            } else {
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    idents(target),
                    update
                        .iter()
                        .map(|c| {
                            let c = super::quote_ident(c);
                            format!("{c} = EXCLUDED.{c}")
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
    };
    let lock = sql.advisory_lock.as_deref().map(lock_key);
    if let Some(key) = lock {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| db_error("cannot take the advisory lock", &e))?;
    }
    if !import.dry_run {
        // One transaction: a failed import leaves the table as it was.
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| db_error("cannot begin the import", &e))?;
    }
    let result = async {
        let mut imported = 0u64;
        let mut batch: Vec<Text> = Vec::new();
        let mut width = 0usize;
        let mut in_batch = 0usize;
        loop {
            let record = file.next()?;
            let end = record.is_none();
            if let Some(r) = record {
                if import.dry_run {
                    continue;
                }
                if in_batch == 0 {
                    width = r.len();
                } else if r.len() != width {
                    return Err(Failure::Error(format!(
                        "row {} of `{}` has {} fields where the rows before it have {width}",
                        file.rows_read + file.rows_skipped,
                        import.input_file,
                        r.len()
                    )));
                }
                batch.extend(r.iter().map(|v| Text(super::param_text(v))));
                in_batch += 1;
            }
            // A statement takes at most 65535 parameters.
            let most = (65_000 / width.max(1)).max(1);
            let limit = usize::try_from(import.batch_size)
                .unwrap_or(usize::MAX)
                .min(most);
            if in_batch > 0 && (end || in_batch >= limit) {
                let mut values = Vec::with_capacity(in_batch);
                for row in 0..in_batch {
                    let marks: Vec<String> = (1..=width)
                        .map(|c| format!("${}", row * width + c))
                        .collect();
                    values.push(format!("({})", marks.join(", ")));
                }
                let statement = format!(
                    "INSERT INTO {table}{} VALUES {}{conflict}",
                    column_list.as_deref().unwrap_or_default(),
                    values.join(", ")
                );
                imported += client
                    .execute_raw(&statement, batch.iter())
                    .await
                    .map_err(|e| db_error("the import failed", &e))?;
                batch.clear();
                in_batch = 0;
            }
            if end {
                break;
            }
        }
        if import.dry_run {
            imported = file.rows_read;
        } else {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| db_error("cannot commit the import", &e))?;
        }
        Ok(imported)
    }
    .await;
    if result.is_err() && !import.dry_run {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    if let Some(key) = lock {
        let _ = client
            .execute("SELECT pg_advisory_unlock($1)", &[&key])
            .await;
    }
    let imported = result?;
    let mut report = Map::new();
    report.insert("table".into(), import.table.clone().into());
    report.insert("rows_read".into(), file.rows_read.into());
    report.insert("rows_imported".into(), imported.into());
    report.insert("rows_skipped".into(), file.rows_skipped.into());
    report.insert("dry_run".into(), import.dry_run.into());
    Ok(report)
}

/// `a, b` as quoted identifiers.
fn idents(list: &str) -> String {
    list.split(',')
        .map(|c| super::quote_ident(c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An advisory lock's name as the 64-bit key PostgreSQL locks (FNV-1a).
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// The statements of a SQL text, split at the `;`s outside quotes (`'…'`, `E'…'`,
/// `"…"`, `$tag$…$tag$`) and comments; empty ones left out.
pub(crate) fn split_statements(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    let flush = |current: &mut String, out: &mut Vec<String>| {
        let s = current.trim();
        if !only_comments(s) {
            out.push(s.to_owned());
        }
        current.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ';' => {
                flush(&mut current, &mut out);
                i += 1;
            }
            '\'' | '"' => {
                let escapes = c == '\''
                    && i > 0
                    && matches!(chars[i - 1], 'E' | 'e')
                    && (i < 2 || !chars[i - 2].is_alphanumeric());
                current.push(c);
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    current.push(d);
                    i += 1;
                    if escapes && d == '\\' && i < chars.len() {
                        current.push(chars[i]);
                        i += 1;
                    } else if d == c {
                        if chars.get(i) == Some(&c) {
                            current.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            '$' => {
                // `$tag$` or `$$` opens a dollar-quoted text; `$1` is a parameter.
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let tag_ok = j < chars.len()
                    && chars[j] == '$'
                    && chars.get(i + 1).is_none_or(|n| !n.is_ascii_digit());
                if !tag_ok {
                    current.push(c);
                    i += 1;
                    continue;
                }
                let tag: String = chars[i..=j].iter().collect();
                current.push_str(&tag);
                i = j + 1;
                let rest: String = chars[i..].iter().collect();
                match rest.find(&tag) {
                    Some(at) => {
                        let body = &rest[..at + tag.len()];
                        current.push_str(body);
                        i += body.chars().count();
                    }
                    None => {
                        current.push_str(&rest);
                        i = chars.len();
                    }
                }
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    current.push(chars[i]);
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                current.push_str("/*");
                i += 2;
                while i < chars.len() {
                    if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        current.push_str("*/");
                        i += 2;
                        break;
                    }
                    current.push(chars[i]);
                    i += 1;
                }
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    flush(&mut current, &mut out);
    out
}

/// Whether a statement's text is nothing but comments and blanks.
fn only_comments(text: &str) -> bool {
    let mut rest = text.trim();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r).trim();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r).trim();
        } else {
            return false;
        }
    }
}

/// A parameter sent as text, which the server reads as the placeholder's type (NULL as
/// None).
#[derive(Debug)]
struct Text(Option<String>);

impl ToSql for Text {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    tokio_postgres::types::to_sql_checked!();
}

/// A column's value as JSON, from PostgreSQL's binary form of its type.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let value = match *ty {
            Type::BOOL => Value::Bool(raw.first().is_some_and(|b| *b != 0)),
            Type::INT2 => i16::from_be_bytes(raw.try_into()?).into(),
            Type::INT4 => i32::from_be_bytes(raw.try_into()?).into(),
            Type::INT8 => i64::from_be_bytes(raw.try_into()?).into(),
            Type::OID => u32::from_be_bytes(raw.try_into()?).into(),
            Type::FLOAT4 => float(f64::from(f32::from_be_bytes(raw.try_into()?))),
            Type::FLOAT8 => float(f64::from_be_bytes(raw.try_into()?)),
            Type::NUMERIC => decimal(&numeric(raw)?),
            Type::JSON => serde_json::from_slice(raw)?,
            Type::JSONB => serde_json::from_slice(raw.get(1..).unwrap_or_default())?,
            Type::UUID => {
                let b: [u8; 16] = raw.try_into()?;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Value::String(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                ))
            }
            Type::DATE => {
                let days = i32::from_be_bytes(raw.try_into()?);
                let date = jiff::civil::date(2000, 1, 1)
                    .checked_add(jiff::Span::new().days(i64::from(days)))?;
                Value::String(date.to_string())
            }
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                let micros = i64::from_be_bytes(raw.try_into()?);
                let at = jiff::Timestamp::from_microsecond(
                    946_684_800_000_000i64.saturating_add(micros),
                )?;
                if *ty == Type::TIMESTAMPTZ {
                    Value::String(at.to_string())
                } else {
                    Value::String(at.to_zoned(jiff::tz::TimeZone::UTC).datetime().to_string())
                }
            }
            Type::TIME => {
                let micros = i64::from_be_bytes(raw.try_into()?);
                let time = jiff::civil::Time::midnight()
                    .checked_add(jiff::Span::new().microseconds(micros))?;
                Value::String(time.to_string())
            }
            Type::BYTEA => {
                use base64::Engine as _;
                Value::String(base64::engine::general_purpose::STANDARD.encode(raw))
            }
            Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::CHAR
            | Type::UNKNOWN
            | Type::XML
            | Type::JSONPATH => Value::String(std::str::from_utf8(raw)?.to_owned()),
            _ if matches!(ty.kind(), Kind::Enum(_)) || ty.name() == "citext" => {
                Value::String(std::str::from_utf8(raw)?.to_owned())
            }
            _ => return Err(format!("wharf does not read the type {} as JSON", ty.name()).into()),
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_ty: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

/// A decimal's text as a JSON number when a float holds it exactly, else as text.
fn decimal(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::from(i);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && decimal_eq(&f.to_string(), text) => float(f),
        _ => Value::String(text.to_owned()),
    }
}

/// Whether two decimal texts are the same number written alike (trailing zeros aside).
fn decimal_eq(a: &str, b: &str) -> bool {
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    trim(a) == trim(b)
}

/// NUMERIC's binary form as decimal text.
fn numeric(raw: &[u8]) -> Result<String, Box<dyn StdError + Sync + Send>> {
    let word = |i: usize| -> Result<i16, Box<dyn StdError + Sync + Send>> {
        let b: [u8; 2] = raw
            .get(i * 2..i * 2 + 2)
            .ok_or("a NUMERIC value is cut short")?
            .try_into()?;
        Ok(i16::from_be_bytes(b))
    };
    let ndigits = usize::try_from(word(0)?)?;
    let weight = i64::from(word(1)?);
    let sign = u16::from_be_bytes(word(2)?.to_be_bytes());
    let dscale = usize::try_from(word(3)?)?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits)
        .map(|i| word(4 + i))
        .collect::<Result<_, _>>()?;
    let digit = |i: i64| -> i16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                text.push_str(&digit(i).to_string());
            } else {
                text.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(weight + k)));
            k += 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        let text = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n\
                    INSERT INTO t VALUES ('a;b', E'c\\';d', \"x;y\"); -- done; really\n\
                    /* a; comment */ SELECT $1;;  -- trailing";
        let parts = split_statements(text);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert!(parts[0].ends_with("LANGUAGE sql"));
        assert!(parts[1].starts_with("INSERT") && parts[1].contains("E'c\\';d'"));
        assert!(parts[2].ends_with("SELECT $1"));
    }

    #[test]
    fn numerics_read_as_decimal_text() {
        // 12345.678: weight 1, digits [1, 2345, 6780], dscale 3.
        let raw: Vec<u8> = [3i16, 1, 0, 3, 1, 2345, 6780]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric(&raw).unwrap(), "12345.678");
        // -0.05: weight -1, digits [500], dscale 2.
        let raw: Vec<u8> = [1i16, -1, 0x4000, 2, 500]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        assert_eq!(numeric(&raw).unwrap(), "-0.05");
        assert_eq!(decimal("9.99"), serde_json::json!(9.99));
        assert_eq!(decimal("12"), serde_json::json!(12));
        assert_eq!(
            decimal("123456789012345678901234567890.5"),
            serde_json::json!("123456789012345678901234567890.5")
        );
    }

    #[test]
    fn tls_settings_come_out_of_both_dsn_forms() {
        let (rest, tls) = tls_settings(
            "postgres://u:p@h:5432/db?sslmode=verify-full&connect_timeout=5&sslrootcert=ca%20dir/ca.pem",
        )
        .ok()
        .unwrap();
        assert_eq!(rest, "postgres://u:p@h:5432/db?connect_timeout=5");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some("ca dir/ca.pem"));
        let (rest, tls) = tls_settings("host=h sslmode = 'require' password='a b\\'c' dbname=x")
            .ok()
            .unwrap();
        assert_eq!(rest, "host=h password='a b\\'c' dbname=x");
        assert_eq!(tls.mode, TlsMode::Require);
        let (_, tls) = tls_settings("postgres://h/db").ok().unwrap();
        assert_eq!(tls.mode, TlsMode::Prefer);
        assert!(tls_settings("postgres://h/db?sslmode=sometimes").is_err());
        assert!(tls_settings("postgres://h/db?sslcert=c.pem").is_err());
    }

    #[test]
    fn lock_keys_are_stable() {
        assert_eq!(lock_key("daily-etl"), lock_key("daily-etl"));
        assert_ne!(lock_key("a"), lock_key("b"));
    }
}
