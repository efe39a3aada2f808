//! `wharf server`, `wharf scheduler`, `wharf start-all`: the web UI, the REST API
//! (compatible with Dagu 1.x's `/api/v2` for the endpoints wharf implements) and the
//! scheduler, on axum over HTTP/1.1.
//!
//! Runs started here are `wharf run` processes of their own (see `wharf-control`): they
//! write the same store as runs started on the command line, and a restart of the server
//! neither stops nor loses them.
//!
//! - `config`: the settings;
//! - `guard`: what every request goes through before a handler sees it (the host, the
//!   credentials, the origin, the body's size and time), and the headers of every answer;
//! - `api`: the `/api/v2` endpoints; `ui`: the pages; `live`: live step logs (SSE);
//! - `users`: built-in users, their sessions, roles and API keys (`auth.mode: builtin`);
//! - `system`: the schedulers that run and the machine's resources, sampled;
//! - `scheduler`: runs at the times of each DAG's `schedule`.

mod api;
pub mod config;
mod guard;
mod live;
mod scheduler;
mod system;
mod ui;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;

pub use config::{Config, ConfigError, Flags};
pub use scheduler::{Fired, ScheduleError};

/// What the handlers share.
pub(crate) struct State {
    pub config: Config,
    pub started: Instant,
    /// This process runs the scheduler too (`start-all`).
    pub with_scheduler: bool,
    /// Built-in users sign in (`auth.mode: builtin`).
    pub builtin: Option<users::Builtin>,
    /// The machine's CPU, memory, disk and load, sampled.
    pub samples: Arc<system::Samples>,
    /// The Docker engine (connected when first asked: the System page's Swarm nodes).
    pub docker: wharf_docker::Client,
}

pub(crate) type Shared = Arc<State>;

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the DAGs folder {path}: {source}")]
    DagsFolder {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    /// The certificate or key for HTTPS cannot be used.
    #[error("HTTPS (tls.certFile, tls.keyFile): {0}")]
    Tls(String),
    /// The built-in users cannot be readied.
    #[error("built-in users (auth.mode: builtin): {0}")]
    Users(String),
}

/// Connections served at once; past this a new connection is closed at once.
const MAX_CONNECTIONS: usize = 512;
/// How long a connection may take to send a request's head, or stay idle between requests.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until Ctrl-C (or SIGTERM through the runtime's signal); with the scheduler when
/// `with_scheduler`. The first line on stderr names the address.
pub async fn serve(config: Config, with_scheduler: bool) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.dags).map_err(|source| ServeError::DagsFolder {
        path: config.dags.clone(),
        source,
    })?;
    let tls = config
        .tls
        .as_ref()
        .map(|(cert, key)| tls_acceptor(cert, key))
        .transpose()?;
    let builtin = config
        .builtin
        .as_ref()
        .map(|b| users::Builtin::start(b, &config.home))
        .transpose()
        .map_err(ServeError::Users)?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let local: SocketAddr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], config.port)));
    eprintln!(
        "wharf server on {}://{local}{}/ ({}API at {}/api/v2, DAGs in {})",
        if tls.is_some() { "https" } else { "http" },
        config.base_path,
        if config.headless {
            "no web UI (headless); "
        } else {
            ""
        },
        config.base_path,
        config.dags.display()
    );
    if with_scheduler {
        tokio::spawn(scheduler::run(config.clone()));
    }
    let (config_home, monitoring) = (config.home.clone(), config.monitoring);
    let state = Arc::new(State {
        config,
        started: Instant::now(),
        with_scheduler,
        builtin,
        docker: wharf_docker::Client::new(),
        samples: system::Samples::start(config_home, monitoring.0, monitoring.1),
    });
    let app = router(&state);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut stop => {
                eprintln!("wharf server stopped (runs it started go on)");
                return Ok(());
            }
        };
        let Ok((stream, _)) = accepted else {
            // Out of file descriptors, most likely: let connections end before the next.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            // A connection that sends no complete request head within the limit (a
            // half-open one, or one idle between requests) is closed; so is one that does
            // not finish its TLS handshake within it.
            let http = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .clone();
            match tls {
                None => {
                    let _ = http
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                }
                Some(tls) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await
                    {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
            drop(permit);
        });
    }
}

/// HTTPS: the certificate chain and the private key of PEM files.
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ServeError::Tls(format!(
            "{} holds no certificate (PEM)",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
    .map_err(|e| ServeError::Tls(format!("the certificate and key do not serve: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Every path the server answers, under the base path, behind the guard (the API alone
/// when headless).
fn router(state: &Shared) -> Router {
    // Dagu 2.x serves the same API under `/api/v1` (it renamed its v2 API so).
    let app = Router::new()
        .nest("/api/v2", api::router())
        .nest("/api/v1", api::router());
    let app = if state.config.headless {
        app
    } else {
        app.merge(ui::router()).merge(live::router())
    };
    let app = app.with_state(Arc::clone(state));
    let base = state.config.base_path.clone();
    let app = if base.is_empty() {
        app
    } else {
        Router::new().nest(&base, app)
    };
    let app = app
        .fallback(not_found)
        // The guard reads and bounds the body before any handler.
        .layer(axum::extract::DefaultBodyLimit::disable());
    guard::layer(app, Arc::clone(state))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such page: {}", uri.path()),
    )
}

/// `wharf scheduler`: the scheduler alone, until Ctrl-C.
pub async fn run_scheduler(config: Config) {
    tokio::select! {
        () = scheduler::run(config) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("wharf scheduler stopped (runs it started go on)"),
    }
}

/// `wharf scheduler --once-at TIME`: the runs of one slot, then the failed runs a
/// `retry_policy` retries at that time; per DAG what happened.
pub fn schedule_once(
    config: &Config,
    slot: jiff::Timestamp,
) -> Vec<(String, Result<Fired, ScheduleError>)> {
    let mut done = scheduler::tick(config, slot);
    match scheduler::retry_failed(config, slot) {
        Ok(retried) => done.extend(
            retried
                .into_iter()
                .map(|(dag, run, n)| (dag, Ok(Fired::Retried(run, n)))),
        ),
        Err(e) => done.push(("(retries)".into(), Err(e))),
    }
    done
}

/// `{code, message}` with a status.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    api::answer(
        status,
        &api::ErrorBody {
            code,
            message: message.into(),
        },
    )
}

/// `2026-11-28T05:41:18Z` from milliseconds since the Unix epoch.
pub(crate) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "-".into())
}

/// Runs blocking work (files, the store) off the event loop, for whom the request comes
/// from (what the pages offer depends on it).
pub(crate) async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    let who = users::current();
    tokio::task::spawn_blocking(move || users::working_for(who, f))
        .await
        .unwrap_or_else(|_| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the request failed",
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_as_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_931_278_000), "2026-11-29T05:47:58Z");
    }
}
