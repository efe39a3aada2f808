//! Registry credentials for pulls (SPEC §6).
//!
//! For the registry of an image, in this order: the DAG's `registryAuths`, the
//! `DOCKER_AUTH_CONFIG` environment variable, the user's Docker config
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `credHelpers`, `credsStore`,
//! `auths`), else none (anonymous). Registries are matched the way Docker matches them.
//!
//! Credentials are never formatted into a message: errors name the registry and where the
//! credentials came from, nothing else.

use std::path::PathBuf;

use bollard::auth::DockerCredentials;
use serde_json::Value;
use wharf_spec::{RegistryAuth, RegistryAuths};

/// Docker Hub, under the name every spelling of it is matched to.
const HUB: &str = "docker.io";
/// The key Docker Hub has in Docker configs and credential helpers.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// The credentials wharf knows for one run.
#[derive(Default)]
pub struct Auths {
    /// The DAG's `registryAuths`, `${VAR}` expanded: per registry, or a whole config.
    dag: Option<RegistryAuths>,
}

/// Credentials found for a registry, and where they came from.
pub(crate) struct Found {
    pub credentials: DockerCredentials,
    pub source: String,
}

/// The outcome of a look-up: the registry, and the credentials for it (if any).
pub(crate) struct Lookup {
    pub registry: String,
    pub found: Option<Found>,
}

impl Auths {
    /// The DAG's `registryAuths` (values may hold `${VAR}`, expanded from the host's
    /// environment here).
    pub fn new(dag: Option<&RegistryAuths>) -> Self {
        let expand = |t: &str| wharf_spec::expand::expand(t, |name| std::env::var(name).ok());
        let dag = dag.map(|a| match a {
            RegistryAuths::Config(text) => RegistryAuths::Config(expand(text)),
            RegistryAuths::PerRegistry(list) => RegistryAuths::PerRegistry(
                list.iter()
                    .map(|(registry, auth)| {
                        let auth = match auth {
                            RegistryAuth::UserPassword { username, password } => {
                                RegistryAuth::UserPassword {
                                    username: expand(username),
                                    password: expand(password),
                                }
                            }
                            RegistryAuth::Auth(a) => RegistryAuth::Auth(expand(a)),
                            RegistryAuth::Encoded(e) => RegistryAuth::Encoded(expand(e)),
                        };
                        (registry.clone(), auth)
                    })
                    .collect(),
            ),
        });
        Self { dag }
    }

    /// The credentials for `image`'s registry, or an error that says which source holds
    /// credentials it cannot read.
    pub(crate) async fn lookup(&self, image: &str) -> Result<Lookup, String> {
        let registry = registry_of(image);
        let found = self.find(&registry).await?;
        Ok(Lookup { registry, found })
    }

    async fn find(&self, registry: &str) -> Result<Option<Found>, String> {
        match &self.dag {
            Some(RegistryAuths::PerRegistry(list)) => {
                if let Some((_, auth)) = list.iter().find(|(k, _)| normalize(k) == registry) {
                    let source = "`registryAuths` of the DAG".to_owned();
                    let credentials =
                        from_dag(auth).map_err(|why| format!("{source} for {registry}: {why}"))?;
                    return Ok(Some(Found {
                        credentials,
                        source,
                    }));
                }
            }
            Some(RegistryAuths::Config(text)) => {
                let source = "`registryAuths` of the DAG (a Docker config)";
                if let Some(found) = from_config_text(text, registry, source)? {
                    return Ok(Some(found));
                }
            }
            None => {}
        }
        if let Ok(text) = std::env::var("DOCKER_AUTH_CONFIG")
            && !text.trim().is_empty()
            && let Some(found) = from_config_text(&text, registry, "DOCKER_AUTH_CONFIG")?
        {
            return Ok(Some(found));
        }
        let Some(path) = docker_config_path() else {
            return Ok(None);
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let source = format!("the Docker config {}", path.display());
        let config: Value =
            serde_json::from_str(&text).map_err(|_| format!("{source} is not valid JSON"))?;
        let helper = config
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|helpers| {
                helpers
                    .iter()
                    .find(|(k, _)| normalize(k) == registry)
                    .and_then(|(_, v)| v.as_str())
            })
            .or_else(|| config.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper
            && let Some(found) = from_helper(helper, registry).await?
        {
            return Ok(Some(found));
        }
        from_auths(&config, registry, &source)
    }
}

/// The registry an image reference names: its first part when that looks like a host
/// (a `.` or `:` in it, or `localhost`), Docker Hub otherwise.
pub(crate) fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize(first)
        }
        _ => HUB.to_owned(),
    }
}

/// A registry as written in a config key (`https://host:port/v1/`, `host`, ...) reduced
/// to its host and port, with Docker Hub's names made one.
pub(crate) fn normalize(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            HUB.to_owned()
        }
        _ => host,
    }
}

fn from_dag(auth: &RegistryAuth) -> Result<DockerCredentials, String> {
    match auth {
        RegistryAuth::UserPassword { username, password } => {
            Ok(user_password(username.clone(), password.clone()))
        }
        RegistryAuth::Auth(a) => basic(a),
        RegistryAuth::Encoded(text) => {
            let trimmed = text.trim();
            if trimmed.starts_with('{') {
                let value: Value = serde_json::from_str(trimmed)
                    .map_err(|_| "the value is not valid JSON".to_owned())?;
                from_entry(&value).ok_or_else(|| {
                    "the JSON has neither `username` and `password` nor `auth`".to_owned()
                })
            } else {
                basic(trimmed)
            }
        }
    }
}

fn user_password(username: String, password: String) -> DockerCredentials {
    DockerCredentials {
        username: Some(username),
        password: Some(password),
        ..Default::default()
    }
}

/// base64 `user:password`.
fn basic(text: &str) -> Result<DockerCredentials, String> {
    wharf_spec::decode_basic(text)
        .map(|(u, p)| user_password(u, p))
        .ok_or_else(|| "`auth` is not base64 of `username:password`".to_owned())
}

/// One entry of a config's `auths`: `auth`, or `username`/`password`, or an
/// `identitytoken`.
fn from_entry(entry: &Value) -> Option<DockerCredentials> {
    let get = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(token) = get("identitytoken") {
        let mut c = DockerCredentials {
            identitytoken: Some(token.to_owned()),
            ..Default::default()
        };
        c.username = get("username").map(str::to_owned);
        return Some(c);
    }
    if let (Some(u), Some(p)) = (get("username"), get("password")) {
        return Some(user_password(u.to_owned(), p.to_owned()));
    }
    get("auth").and_then(|a| basic(a).ok())
}

fn from_config_text(text: &str, registry: &str, source: &str) -> Result<Option<Found>, String> {
    let config: Value = serde_json::from_str(text.trim())
        .map_err(|_| format!("{source} is not a Docker config (not valid JSON)"))?;
    if !config.get("auths").is_some_and(Value::is_object) {
        return Err(format!(
            "{source} is not a Docker config (no `auths` object)"
        ));
    }
    from_auths(&config, registry, source)
}

fn from_auths(config: &Value, registry: &str, source: &str) -> Result<Option<Found>, String> {
    let Some(auths) = config.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let Some((_, entry)) = auths.iter().find(|(k, _)| normalize(k) == registry) else {
        return Ok(None);
    };
    match from_entry(entry) {
        Some(credentials) => Ok(Some(Found {
            credentials,
            source: source.to_owned(),
        })),
        // An empty entry is what `docker login` leaves with a credential store.
        None if entry.as_object().is_some_and(|o| o.is_empty()) => Ok(None),
        None => Err(format!(
            "{source}: the entry for {registry} has no usable `auth`, `username`/`password` or `identitytoken`"
        )),
    }
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// `docker-credential-HELPER get`, the server's address on stdin.
async fn from_helper(helper: &str, registry: &str) -> Result<Option<Found>, String> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let source = format!("the credential helper {program}");
    let server = if registry == HUB { HUB_KEY } else { registry };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {source}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes()).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{source} failed: {e}"))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_lowercase()
            + &String::from_utf8_lossy(&out.stderr).to_lowercase();
        if said.contains("not found") {
            return Ok(None);
        }
        return Err(format!("{source} failed ({})", out.status));
    }
    let value: Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| format!("{source} did not answer with JSON"))?;
    let get = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (Some(username), Some(secret)) = (get("Username"), get("Secret")) else {
        return Ok(None);
    };
    let credentials = if username == "<token>" {
        DockerCredentials {
            identitytoken: Some(secret),
            ..Default::default()
        }
    } else {
        user_password(username, secret)
    };
    Ok(Some(Found {
        credentials,
        source,
    }))
}

/// The daemon reads `X-Registry-Auth` as padded base64url JSON and treats anything else as
/// no credentials at all; the client library sends the standard alphabet. This rewrites
/// the header (the two alphabets differ only in `+` and `/`).
pub(crate) fn fix_registry_auth(mut req: bollard::BollardRequest) -> bollard::BollardRequest {
    let fixed = req
        .headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.contains(['+', '/']))
        .map(|v| v.replace('+', "-").replace('/', "_"));
    if let Some(fixed) = fixed
        && let Ok(value) = fixed.try_into()
    {
        req.headers_mut().insert("X-Registry-Auth", value);
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_matched_the_way_docker_matches_them() {
        for image in [
            "alpine",
            "library/alpine:3",
            "myorg/app:v1",
            "docker.io/myorg/app",
            "index.docker.io/myorg/app",
            "registry-1.docker.io/myorg/app",
        ] {
            assert_eq!(registry_of(image), "docker.io", "{image}");
        }
        assert_eq!(registry_of("ghcr.io/org/app:v2"), "ghcr.io");
        assert_eq!(registry_of("127.0.0.1:5000/team/app"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(
            registry_of("Registry.Example.com:443/a/b"),
            "registry.example.com:443"
        );
        for key in [
            "https://index.docker.io/v1/",
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "http://docker.io",
        ] {
            assert_eq!(normalize(key), "docker.io", "{key}");
        }
        assert_eq!(normalize("https://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalize("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn config_entries_take_every_shape() {
        let c = from_entry(&serde_json::json!({"auth": "dXNlcjpwYXNz"})).expect("auth");
        assert_eq!(c.username.as_deref(), Some("user"));
        assert_eq!(c.password.as_deref(), Some("pass"));
        let c = from_entry(&serde_json::json!({"username": "u", "password": "p"})).expect("u/p");
        assert_eq!(c.password.as_deref(), Some("p"));
        let c = from_entry(&serde_json::json!({"identitytoken": "t"})).expect("token");
        assert_eq!(c.identitytoken.as_deref(), Some("t"));
        assert!(from_entry(&serde_json::json!({})).is_none());
    }

    #[test]
    fn the_header_is_rewritten_to_base64url() {
        let mut req = bollard::BollardRequest::new(bollard::body_full(Vec::new().into()));
        req.headers_mut().insert(
            "X-Registry-Auth",
            "ab+c/d==".try_into().expect("a header value"),
        );
        let req = fix_registry_auth(req);
        assert_eq!(
            req.headers()
                .get("X-Registry-Auth")
                .and_then(|v| v.to_str().ok()),
            Some("ab-c_d==")
        );
    }
}
