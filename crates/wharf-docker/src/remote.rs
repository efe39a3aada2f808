//! Where the Docker engine is: `DOCKER_HOST` (a unix socket, `tcp://` with or without TLS,
//! or `ssh://[USER@]HOST[:PORT]`), else the Docker context chosen by `DOCKER_CONTEXT` or
//! the Docker config's `currentContext` (its endpoint and TLS files, as the docker CLI
//! keeps them under `$DOCKER_CONFIG/contexts`), else the local socket.
//!
//! Over ssh, as the docker CLI does it: each connection is `ssh [-l USER] [-p PORT] HOST
//! -- docker system dial-stdio`, and HTTP runs over that process's stdin and stdout. The
//! user's ssh (from `PATH`) and its configuration decide keys and known hosts. Idle
//! connections are used again; one busy with a stream (a step's output) is left to it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bollard::{BollardRequest, Docker};
use hyper::client::conn::http1::SendRequest;
use serde_json::Value;

/// The engine to talk to, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `unix:///…`, `tcp://…`, `ssh://…`.
    pub host: String,
    /// The Docker context it came from, when one did.
    pub context: Option<String>,
    /// A context's TLS files (`ca.pem`, `cert.pem`, `key.pem`), when it has them.
    pub tls: Option<PathBuf>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.context {
            Some(c) => write!(f, "{} (Docker context {c})", self.host),
            None => f.write_str(&self.host),
        }
    }
}

const LOCAL: &str = "unix:///var/run/docker.sock";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The Docker config folder: `DOCKER_CONFIG`, else `~/.docker`.
fn config_dir() -> Option<PathBuf> {
    var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".docker")))
}

/// Where the engine is, from the environment and the Docker config.
pub(crate) fn endpoint() -> Result<Endpoint, String> {
    if let Some(host) = var("DOCKER_HOST") {
        return Ok(Endpoint {
            host,
            context: None,
            tls: None,
        });
    }
    let dir = config_dir();
    let chosen = match var("DOCKER_CONTEXT") {
        Some(c) => Some(c),
        None => dir
            .as_ref()
            .and_then(|d| current_context(&d.join("config.json"))),
    };
    let Some(name) = chosen.filter(|c| c != "default") else {
        return Ok(Endpoint {
            host: LOCAL.into(),
            context: None,
            tls: None,
        });
    };
    let Some(dir) = dir else {
        return Err(format!(
            "the Docker context `{name}` is chosen, but there is no Docker config folder (set DOCKER_CONFIG or HOME)"
        ));
    };
    context(&dir, &name)
}

/// The config's `currentContext`, if any.
fn current_context(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("currentContext")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
}

/// The endpoint of the context `name`: its `meta.json` (found by its `Name`, in the folder
/// the docker CLI named after the name's digest) and its TLS folder next to it.
fn context(dir: &Path, name: &str) -> Result<Endpoint, String> {
    let meta = dir.join("contexts").join("meta");
    let entries = std::fs::read_dir(&meta).map_err(|_| {
        format!(
            "the Docker context `{name}` is chosen, but {} holds no contexts",
            meta.display()
        )
    })?;
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("meta.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if v.get("Name").and_then(Value::as_str) != Some(name) {
            continue;
        }
        let Some(host) = v
            .pointer("/Endpoints/docker/Host")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
        else {
            return Err(format!(
                "the Docker context `{name}` ({}) names no docker endpoint host",
                entry.path().join("meta.json").display()
            ));
        };
        let tls = dir
            .join("contexts")
            .join("tls")
            .join(entry.file_name())
            .join("docker");
        return Ok(Endpoint {
            host: host.to_owned(),
            context: Some(name.to_owned()),
            tls: tls.join("cert.pem").is_file().then_some(tls),
        });
    }
    Err(format!(
        "there is no Docker context `{name}` in {} (`docker context ls` lists them)",
        meta.display()
    ))
}

/// A client for the endpoint (its API version not yet negotiated).
pub(crate) fn client(at: &Endpoint, timeout: u64) -> Result<Docker, String> {
    let version = bollard::API_DEFAULT_VERSION;
    let made = if at.host.starts_with("ssh://") {
        return ssh_client(&at.host, timeout);
    } else if let Some(tls) = &at.tls {
        Docker::connect_with_ssl(
            &at.host,
            &tls.join("key.pem"),
            &tls.join("cert.pem"),
            &tls.join("ca.pem"),
            timeout,
            version,
        )
    } else if at.context.is_none() {
        // DOCKER_HOST as the docker CLI takes it (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
        Docker::connect_with_defaults()
    } else if at.host.starts_with("unix://") {
        Docker::connect_with_unix(&at.host, timeout, version)
    } else {
        Docker::connect_with_http(&at.host, timeout, version)
    };
    made.map_err(|e| e.to_string())
}

/// `ssh://[USER@]HOST[:PORT]` as the arguments of `ssh`.
fn ssh_args(host: &str) -> Result<Vec<String>, String> {
    let rest = host.trim_start_matches("ssh://").trim_end_matches('/');
    let (user, rest) = match rest.rsplit_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, rest),
    };
    let (name, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || h.ends_with(']') => match p.parse::<u16>() {
            Ok(p) => (h.trim_matches(['[', ']']), Some(p)),
            Err(_) => return Err(format!("`{host}`: `{p}` is not a port")),
        },
        _ => (rest.trim_matches(['[', ']']), None),
    };
    if name.is_empty() || name.starts_with('-') {
        return Err(format!("`{host}` names no host"));
    }
    let mut args = vec![
        "-o".to_owned(),
        "ConnectTimeout=30".to_owned(),
        "-T".to_owned(),
    ];
    if let Some(u) = user {
        args.extend(["-l".to_owned(), u.to_owned()]);
    }
    if let Some(p) = port {
        args.extend(["-p".to_owned(), p.to_string()]);
    }
    args.extend([
        "--".to_owned(),
        name.to_owned(),
        "docker".to_owned(),
        "system".to_owned(),
        "dial-stdio".to_owned(),
    ]);
    Ok(args)
}

/// The body of bollard's requests (`BollardRequest`), spelled out.
type Body = http_body_util::Either<
    http_body_util::Full<hyper::body::Bytes>,
    http_body_util::StreamBody<
        std::pin::Pin<
            Box<
                dyn futures_util::Stream<
                        Item = Result<hyper::body::Frame<hyper::body::Bytes>, std::io::Error>,
                    > + Send,
            >,
        >,
    >,
>;

/// A connection, and what its ssh has written on stderr so far.
struct Conn {
    sender: SendRequest<Body>,
    said: Arc<Mutex<String>>,
}

fn ssh_client(host: &str, timeout: u64) -> Result<Docker, String> {
    let args = Arc::new(ssh_args(host)?);
    let idle: Arc<Mutex<Vec<Conn>>> = Arc::default();
    let transport = move |request: BollardRequest| {
        let (args, idle) = (args.clone(), idle.clone());
        async move {
            let (mut parts, body) = request.into_parts();
            // The request goes over a stream of its own: its line names the path only.
            let path = parts
                .uri
                .path_and_query()
                .map_or("/".to_owned(), ToString::to_string);
            parts.uri = path.parse().map_err(|_| io_error("the request's path"))?;
            parts.headers.insert(
                hyper::header::HOST,
                hyper::header::HeaderValue::from_static("docker"),
            );
            let request = BollardRequest::from_parts(parts, body);
            let mut conn = match take_idle(&idle) {
                Some(c) => c,
                None => dial(&args).await?,
            };
            match conn.sender.send_request(request).await {
                Ok(response) => {
                    // An upgraded connection (an attach) is the stream's from now on.
                    if response.status() != hyper::StatusCode::SWITCHING_PROTOCOLS
                        && let Ok(mut idle) = idle.lock()
                    {
                        idle.push(conn);
                    }
                    Ok(response)
                }
                Err(e) => {
                    // ssh ended (refused, unreachable): its own words say why.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let said = conn
                        .said
                        .lock()
                        .map(|s| s.trim().to_owned())
                        .unwrap_or_default();
                    Err(bollard::errors::Error::IOError {
                        err: std::io::Error::other(if said.is_empty() {
                            format!("ssh: {e}")
                        } else {
                            format!("ssh: {said}")
                        }),
                    })
                }
            }
        }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some(host.to_owned()),
        timeout,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| e.to_string())
}

fn io_error(what: &str) -> bollard::errors::Error {
    bollard::errors::Error::IOError {
        err: std::io::Error::other(format!("{what} cannot be sent over ssh")),
    }
}

/// An idle connection, if one is ready; closed ones are dropped, busy ones kept.
fn take_idle(idle: &Mutex<Vec<Conn>>) -> Option<Conn> {
    let mut idle = idle.lock().ok()?;
    idle.retain(|c| !c.sender.is_closed());
    let at = idle.iter().position(|c| c.sender.is_ready())?;
    Some(idle.swap_remove(at))
}

/// A new connection: `ssh … docker system dial-stdio`, HTTP/1 over its stdin and stdout.
async fn dial(args: &[String]) -> Result<Conn, bollard::errors::Error> {
    use tokio::io::AsyncReadExt;
    let mut child = tokio::process::Command::new("ssh")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| bollard::errors::Error::IOError {
            err: std::io::Error::other(format!("cannot run ssh: {e}")),
        })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io_error("a request"));
    };
    let said: Arc<Mutex<String>> = Arc::default();
    let heard = said.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = heard.lock()
                && s.len() < 4096
            {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let io = hyper_util::rt::TokioIo::new(tokio::io::join(stdout, stdin));
    let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        // With upgrades: attaching to a container takes the connection over. Once its
        // user lets go of it, the pipes close and ssh ends.
        let _ = connection.with_upgrades().await;
        let _ = child.wait().await;
    });
    Ok(Conn { sender, said })
}

#[cfg(test)]
mod tests {
    use super::ssh_args;

    #[test]
    fn ssh_addresses() {
        let args = ssh_args("ssh://deploy@build-1:2222").expect("args");
        assert_eq!(
            args[3..].join(" "),
            "-l deploy -p 2222 -- build-1 docker system dial-stdio"
        );
        let args = ssh_args("ssh://build-1").expect("args");
        assert_eq!(args[3..].join(" "), "-- build-1 docker system dial-stdio");
        assert!(ssh_args("ssh://").is_err());
        assert!(
            ssh_args("ssh://-oProxyCommand=x").is_err(),
            "no option smuggled in"
        );
        assert!(ssh_args("ssh://h:port").is_err());
    }
}
