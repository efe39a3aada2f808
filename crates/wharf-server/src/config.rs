//! The server's settings: flags, else the environment (`WHARF_*`, then Dagu's `DAGU_*`),
//! else `$WHARF_HOME/config.yaml`, else a Dagu installation's `$DAGU_HOME/config.yaml`,
//! else the defaults.

use std::path::PathBuf;

/// The settings given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dags: Option<PathBuf>,
    pub base_path: Option<String>,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    File(String),
    #[error("the port is not a port number: {0}")]
    Port(String),
    #[error("basic authentication needs both a username and a password")]
    HalfBasic,
}

/// Where the server listens and what it serves.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// The DAG files (`*.yaml`, `*.yml`).
    pub dags: PathBuf,
    /// A prefix for every path (`/wharf` serves the API at `/wharf/api/v2`).
    pub base_path: String,
    pub home: PathBuf,
    /// Requests need `Authorization: Bearer TOKEN` (when set).
    pub token: Option<String>,
    /// Requests need basic authentication as this user (when set).
    pub basic: Option<(String, String)>,
    /// Built-in users sign in (`auth.mode: builtin`).
    pub builtin: Option<BuiltinAuth>,
    /// Host names (besides loopback names and IP addresses) that requests may name in
    /// their `Host` header; `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// What the settings hold that wharf does not use (told once, at start).
    pub notes: Vec<String>,
    /// Whether DAG files may be created, changed and removed through the server
    /// (`permissions.writeDAGs`).
    pub write_dags: bool,
    /// Whether runs may be started, stopped, retried, queued and decided through the
    /// server (`permissions.runDAGs`).
    pub run_dags: bool,
    /// How long after a slot the scheduler still starts a run it missed while no
    /// scheduler ran (`scheduler.catchupWindow`); zero: missed slots are only recorded.
    pub catchup_window: std::time::Duration,
    /// How far back (from a run's creation) the scheduler retries failed runs of DAGs with
    /// their own `retry_policy` (`scheduler.retryFailureWindow`, 24 h); zero: never.
    pub retry_failure_window: std::time::Duration,
    /// The navigation bar's title and colour (`ui.navbarTitle`, `ui.navbarColor`).
    pub navbar_title: Option<String>,
    pub navbar_color: Option<String>,
    /// The API alone, without the web UI (`headless`).
    pub headless: bool,
    /// HTTPS with this certificate chain and private key, PEM files (`tls.certFile`,
    /// `tls.keyFile`).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The scheduler's health check (`GET /health`) on this port of `host`
    /// (`scheduler.port`; 0: none).
    pub scheduler_port: u16,
    /// How the web UI's DAG list is sorted when the page does not say
    /// (`ui.dags.sortField`: `name`, `nextRun`, `status`, `started`; `ui.dags.sortOrder`:
    /// `asc` or `desc`).
    pub dags_sort: (String, bool),
    /// How often the machine's CPU, memory, disk and load are sampled
    /// (`monitoring.interval`), and how long samples are kept (`monitoring.retention`).
    pub monitoring: (std::time::Duration, std::time::Duration),
}

/// The built-in users' settings (`auth.mode: builtin`).
#[derive(Clone)]
pub struct BuiltinAuth {
    /// The first admin's name (`auth.builtin.admin.username`), when there is no user yet.
    pub admin_username: String,
    /// Its password (`auth.builtin.admin.password`); else one is made.
    pub admin_password: Option<String>,
    /// The secret that signs sessions (`auth.builtin.token.secret`); else one is made
    /// and kept in the store.
    pub token_secret: Option<String>,
    /// How long a session lasts (`auth.builtin.token.ttl`).
    pub token_ttl: std::time::Duration,
    /// A Dagu installation's users, carried over when there is none yet.
    pub users_dir: Option<PathBuf>,
}

impl std::fmt::Debug for BuiltinAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinAuth")
            .field("admin_username", &self.admin_username)
            .field("token_ttl", &self.token_ttl)
            .field("users_dir", &self.users_dir)
            .finish_non_exhaustive()
    }
}

/// Keys of Dagu's `config.yaml` wharf uses (its other keys are reported, not used).
const DAGU_KEYS: &[&str] = &[
    "host",
    "port",
    "basePath",
    "dags",
    "dagsDir",
    "paths.dagsDir",
    "auth.basic.enabled",
    "auth.basic.username",
    "auth.basic.password",
    "auth.token.value",
    "paths.dataDir",
    "isBasicAuth",
    "basicAuthUsername",
    "basicAuthPassword",
    "isAuthToken",
    "authToken",
    "tz",
    "defaultShell",
    "paths.baseConfig",
    "baseConfig",
    "queues.enabled",
    "permissions.writeDAGs",
    "permissions.runDAGs",
    "ui.navbarTitle",
    "ui.navbarColor",
    "headless",
    "tls.certFile",
    "tls.keyFile",
    "scheduler.port",
    "ui.dags.sortField",
    "ui.dags.sortOrder",
    "monitoring.interval",
    "monitoring.retention",
];

/// Keys of the built-in users, spelt the same in wharf's and Dagu's `config.yaml`.
const BUILTIN_KEYS: &[&str] = &[
    "auth.mode",
    "auth.builtin.admin.username",
    "auth.builtin.admin.password",
    "auth.builtin.token.secret",
    "auth.builtin.token.ttl",
    "paths.usersDir",
];

/// Whether wharf reads `key` of Dagu's `config.yaml`.
fn dagu_key(key: &str) -> bool {
    DAGU_KEYS.contains(&key) || BUILTIN_KEYS.contains(&key)
}

/// Keys of Dagu's `config.yaml` that hold lists wharf uses.
const DAGU_LISTS: &[&str] = &["queues.config"];

/// Dagu's `$DAGU_HOME/config.yaml`: its settings, and notes on what wharf does not use.
/// An authentication setting wharf cannot honour is an error: the server must not serve
/// what its users protected without that protection.
/// Settings by dotted key.
type Settings = Vec<(String, String)>;

fn dagu_settings(home: &std::path::Path) -> Result<(Settings, Vec<String>), ConfigError> {
    let file = home.join("config.yaml");
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => {
            return Err(ConfigError::File(format!(
                "cannot read {}: {e}",
                file.display()
            )));
        }
    };
    let wharf_spec::ForeignSettings { values, lists, .. } =
        wharf_spec::flat_settings_with_lists(&text)
            .map_err(|e| ConfigError::File(format!("{}: {e}", file.display())))?;
    let off = |v: &str| matches!(v.trim(), "" | "false" | "no" | "off" | "0");
    if let Some((k, _)) = values
        .iter()
        .find(|(k, v)| k.starts_with("auth.") && !dagu_key(k) && !off(v))
    {
        return Err(ConfigError::File(format!(
            "{}: the authentication setting `{k}` is not supported by wharf; the server does not start rather than serve without it (wharf supports auth.basic, auth.token and auth.mode: builtin)",
            file.display()
        )));
    }
    let mut unused: Vec<&str> = values
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !dagu_key(k))
        .chain(
            lists
                .iter()
                .map(String::as_str)
                .filter(|k| !DAGU_LISTS.contains(k)),
        )
        .collect();
    unused.dedup();
    let notes = if unused.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "{}: not used by wharf: {}",
            file.display(),
            unused.join(", ")
        )]
    };
    Ok((values, notes))
}

impl Config {
    /// Flags over environment (`WHARF_HOST`, `WHARF_PORT`, `WHARF_DAGS`,
    /// `WHARF_BASE_PATH`, `WHARF_AUTH_TOKEN`, `WHARF_AUTH_BASIC_USERNAME`,
    /// `WHARF_AUTH_BASIC_PASSWORD`) over `$WHARF_HOME/config.yaml` over defaults
    /// (127.0.0.1, 8080, `$WHARF_HOME/dags`, no prefix, no authentication).
    pub fn load(args: &Flags) -> Result<Self, ConfigError> {
        let home = wharf_store::default_home();
        let file = home.join("config.yaml");
        let settings = match std::fs::read_to_string(&file) {
            Ok(text) => {
                let read = wharf_spec::flat_settings_with_lists(&text)
                    .map_err(|e| ConfigError::File(format!("{}: {e}", file.display())))?;
                if let Some(list) = read.lists.iter().find(|k| k.as_str() != "queues.config") {
                    return Err(ConfigError::File(format!(
                        "{}: `{list}` takes a single value, not a list",
                        file.display()
                    )));
                }
                read.values
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(ConfigError::File(format!(
                    "cannot read {}: {e}",
                    file.display()
                )));
            }
        };
        const KNOWN: &[&str] = &[
            "host",
            "port",
            "dags",
            "basePath",
            "auth.token",
            "auth.basic.username",
            "auth.basic.password",
            "allowedHosts",
            "tz",
            "defaultShell",
            "baseConfig",
            "queues.enabled",
            "permissions.writeDAGs",
            "permissions.runDAGs",
            "scheduler.catchupWindow",
            "scheduler.retryFailureWindow",
            "ui.navbarTitle",
            "ui.navbarColor",
            "docker.backend",
            "dialect",
            "headless",
            "tls.certFile",
            "tls.keyFile",
            "scheduler.port",
            "ui.dags.sortField",
            "ui.dags.sortOrder",
            "monitoring.interval",
            "monitoring.retention",
        ];
        if let Some((k, _)) = settings
            .iter()
            .find(|(k, _)| !KNOWN.contains(&k.as_str()) && !BUILTIN_KEYS.contains(&k.as_str()))
        {
            return Err(ConfigError::File(format!(
                "{}: unknown setting `{k}` (known: {})",
                file.display(),
                [KNOWN, BUILTIN_KEYS].concat().join(", ")
            )));
        }
        let from_file = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        // A Dagu installation (`DAGU_HOME`): its `config.yaml` and `DAGU_*` variables, under
        // wharf's own.
        let dagu_home = std::env::var_os("DAGU_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        let (dagu, mut notes) = match &dagu_home {
            Some(h) => dagu_settings(h)?,
            None => (Vec::new(), Vec::new()),
        };
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let setting = |env_key: &str, file_key: &str| {
            let dagu_env = env_key.replacen("WHARF_", "DAGU_", 1);
            let own = [file_key];
            let dagu_keys: &[&str] = match file_key {
                "dags" => &["paths.dagsDir", "dagsDir", "dags"],
                "auth.token" => &["auth.token.value", "authToken"],
                "auth.basic.username" => &["auth.basic.username", "basicAuthUsername"],
                "auth.basic.password" => &["auth.basic.password", "basicAuthPassword"],
                _ => &own,
            };
            let basic_off = file_key.starts_with("auth.basic")
                && dagu
                    .iter()
                    .any(|(k, v)| k == "auth.basic.enabled" && v.trim() == "false");
            env(env_key)
                .or_else(|| env(&dagu_env))
                .or_else(|| (file_key == "dags").then(|| env("DAGU_DAGS_DIR")).flatten())
                // Dagu names its TLS variables without `TLS_`.
                .or_else(|| match file_key {
                    "tls.certFile" => env("DAGU_CERT_FILE"),
                    "tls.keyFile" => env("DAGU_KEY_FILE"),
                    _ => None,
                })
                .or_else(|| from_file(file_key))
                .or_else(|| {
                    (!basic_off)
                        .then(|| {
                            dagu_keys.iter().find_map(|k| {
                                dagu.iter()
                                    .find(|(key, _)| key == k)
                                    .map(|(_, v)| v.clone())
                                    .filter(|v| !v.is_empty())
                            })
                        })
                        .flatten()
                })
        };
        let port = match (&args.port, setting("WHARF_PORT", "port")) {
            (Some(p), _) => *p,
            (None, Some(p)) => p.parse().map_err(|_| ConfigError::Port(p))?,
            (None, None) => 8080,
        };
        let base = args
            .base_path
            .clone()
            .or_else(|| setting("WHARF_BASE_PATH", "basePath"))
            .unwrap_or_default();
        let base_path = match base.trim_end_matches('/') {
            "" => String::new(),
            b if b.starts_with('/') => b.to_owned(),
            b => format!("/{b}"),
        };
        let basic = match (
            setting("WHARF_AUTH_BASIC_USERNAME", "auth.basic.username"),
            setting("WHARF_AUTH_BASIC_PASSWORD", "auth.basic.password"),
        ) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            _ => return Err(ConfigError::HalfBasic),
        };
        let host = args
            .host
            .clone()
            .or_else(|| setting("WHARF_HOST", "host"))
            .unwrap_or_else(|| "127.0.0.1".into());
        let mut allowed_hosts: Vec<String> = setting("WHARF_ALLOWED_HOSTS", "allowedHosts")
            .unwrap_or_default()
            .split([',', ' '])
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        allowed_hosts.push(host.to_ascii_lowercase());
        let allowed = |env_key: &str, file_key: &str| -> Result<bool, ConfigError> {
            match setting(env_key, file_key).as_deref().map(str::trim) {
                None | Some("true" | "yes" | "on" | "1") => Ok(true),
                Some("false" | "no" | "off" | "0") => Ok(false),
                Some(other) => Err(ConfigError::File(format!(
                    "`{file_key}` is true or false, not `{other}`"
                ))),
            }
        };
        let headless = match setting("WHARF_HEADLESS", "headless")
            .as_deref()
            .map(str::trim)
        {
            None | Some("false" | "no" | "off" | "0") => false,
            Some("true" | "yes" | "on" | "1") => true,
            Some(other) => {
                return Err(ConfigError::File(format!(
                    "`headless` is true or false, not `{other}`"
                )));
            }
        };
        let tls = match (
            setting("WHARF_TLS_CERT_FILE", "tls.certFile"),
            setting("WHARF_TLS_KEY_FILE", "tls.keyFile"),
        ) {
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (None, None) => None,
            _ => {
                return Err(ConfigError::File(
                    "`tls.certFile` and `tls.keyFile` go together: give both (PEM files) or neither"
                        .into(),
                ));
            }
        };
        let users_dir = setting("WHARF_USERS_DIR", "paths.usersDir")
            .map(PathBuf::from)
            .or_else(|| {
                dagu.iter()
                    .find(|(k, v)| k == "paths.dataDir" && !v.is_empty())
                    .map(|(_, v)| PathBuf::from(v).join("users"))
            })
            .or_else(|| dagu_home.as_ref().map(|h| h.join("data").join("users")));
        let mut mode = setting("WHARF_AUTH_MODE", "auth.mode");
        // Dagu 2.x turns built-in users on when nothing is said: an installation whose
        // users are there and says nothing keeps them rather than being served open.
        if mode.is_none()
            && setting("WHARF_AUTH_TOKEN", "auth.token").is_none()
            && basic.is_none()
            && users_dir.as_ref().is_some_and(|d| has_users(d))
        {
            notes.push(format!(
                "auth.mode is not set and {} holds users (Dagu 2.x's default is builtin):                  built-in users are on; set auth.mode: none to serve without them",
                users_dir.as_ref().map_or_else(String::new, |d| d.display().to_string())
            ));
            mode = Some("builtin".into());
        }
        let builtin = match mode.as_deref().map(str::trim) {
            None | Some("none" | "basic") => None,
            Some("builtin") => Some(BuiltinAuth {
                admin_username: setting("WHARF_AUTH_ADMIN_USERNAME", "auth.builtin.admin.username")
                    .unwrap_or_else(|| "admin".into()),
                admin_password: setting("WHARF_AUTH_ADMIN_PASSWORD", "auth.builtin.admin.password"),
                token_secret: setting("WHARF_AUTH_TOKEN_SECRET", "auth.builtin.token.secret"),
                token_ttl: match setting("WHARF_AUTH_TOKEN_TTL", "auth.builtin.token.ttl") {
                    None => std::time::Duration::from_secs(24 * 3600),
                    Some(text) => duration(&text)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| {
                            ConfigError::File(format!(
                                "`auth.builtin.token.ttl` is a duration such as `24h`, `30m` or `7d`, not `{text}`"
                            ))
                        })?,
                },
                users_dir,
            }),
            Some(other) => {
                return Err(ConfigError::File(format!(
                    "`auth.mode` is none, basic or builtin for wharf, not `{other}` (OIDC is not supported; the server does not start rather than serve without it)"
                )));
            }
        };
        let scheduler_port = match setting("WHARF_SCHEDULER_PORT", "scheduler.port") {
            None => 8090,
            Some(p) => p.trim().parse().map_err(|_| ConfigError::Port(p))?,
        };
        let sort_field = match setting("WHARF_UI_DAGS_SORT_FIELD", "ui.dags.sortField")
            .as_deref()
            .map(str::trim)
        {
            None | Some("name") => "name",
            Some("nextRun") => "next",
            Some("status") => "status",
            Some("started") => "started",
            Some(other) => {
                return Err(ConfigError::File(format!(
                    "`ui.dags.sortField` is name, nextRun, status or started, not `{other}`"
                )));
            }
        };
        let descending = match setting("WHARF_UI_DAGS_SORT_ORDER", "ui.dags.sortOrder")
            .as_deref()
            .map(str::trim)
        {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ConfigError::File(format!(
                    "`ui.dags.sortOrder` is asc or desc, not `{other}`"
                )));
            }
        };
        let span = |env_key: &str, key: &str, default: u64| match setting(env_key, key) {
            None => Ok(std::time::Duration::from_secs(default)),
            Some(text) => duration(&text).filter(|d| !d.is_zero()).ok_or_else(|| {
                ConfigError::File(format!(
                    "`{key}` is a duration such as `5s`, `1m` or `24h`, not `{text}`"
                ))
            }),
        };
        let monitoring = (
            span("WHARF_MONITORING_INTERVAL", "monitoring.interval", 5)?,
            span(
                "WHARF_MONITORING_RETENTION",
                "monitoring.retention",
                24 * 3600,
            )?,
        );
        let write_dags = allowed("WHARF_PERMISSIONS_WRITE_DAGS", "permissions.writeDAGs")?;
        let run_dags = allowed("WHARF_PERMISSIONS_RUN_DAGS", "permissions.runDAGs")?;
        let catchup_window = match setting("WHARF_SCHEDULER_CATCHUP_WINDOW", "scheduler.catchupWindow") {
            None => std::time::Duration::ZERO,
            Some(text) => duration(&text).ok_or_else(|| {
                ConfigError::File(format!(
                    "`scheduler.catchupWindow` is a duration such as `30m`, `6h` or `1d`, not `{text}`"
                ))
            })?,
        };
        let retry_failure_window = match setting(
            "WHARF_SCHEDULER_RETRY_FAILURE_WINDOW",
            "scheduler.retryFailureWindow",
        ) {
            None => std::time::Duration::from_secs(24 * 3600),
            Some(text) if text.trim() == "0" => std::time::Duration::ZERO,
            Some(text) => duration(&text).ok_or_else(|| {
                ConfigError::File(format!(
                    "`scheduler.retryFailureWindow` is a duration such as `6h` or `1d` (0: no retries), not `{text}`"
                ))
            })?,
        };
        let navbar_color = setting("WHARF_UI_NAVBAR_COLOR", "ui.navbarColor");
        if let Some(c) = &navbar_color
            && !css_color(c)
        {
            return Err(ConfigError::File(format!(
                "`ui.navbarColor` is a colour such as `#1976d2` or `teal`, not `{c}`"
            )));
        }
        Ok(Self {
            monitoring,
            dags_sort: (sort_field.to_owned(), descending),
            scheduler_port,
            headless,
            tls,
            navbar_title: setting("WHARF_UI_NAVBAR_TITLE", "ui.navbarTitle"),
            navbar_color,
            write_dags,
            run_dags,
            catchup_window,
            retry_failure_window,
            host,
            allowed_hosts,
            port,
            dags: args
                .dags
                .clone()
                .or_else(|| setting("WHARF_DAGS", "dags").map(PathBuf::from))
                .or_else(|| dagu_home.as_ref().map(|h| h.join("dags")))
                .unwrap_or_else(|| home.join("dags")),
            base_path,
            home,
            token: setting("WHARF_AUTH_TOKEN", "auth.token"),
            basic,
            builtin,
            notes,
        })
    }

    /// Whether a request's `Host` names this server. A page on another site that rebinds
    /// its own name to this machine's address (DNS rebinding) sends its own name here, so
    /// only names this server is known by pass: loopback names, IP addresses (which no
    /// rebinding can produce), and the configured ones.
    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        if name.is_empty() {
            return false;
        }
        name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed == "*" || *allowed == name)
    }

    pub(crate) fn auth_required(&self) -> bool {
        self.token.is_some() || self.basic.is_some() || self.builtin.is_some()
    }

    /// Whether the `Authorization` header carries the configured token or user.
    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        let Some(header) = header else { return false };
        if let (Some(token), Some(given)) = (&self.token, header.strip_prefix("Bearer ")) {
            return same(token.as_bytes(), given.trim().as_bytes());
        }
        if let (Some((user, password)), Some(given)) = (&self.basic, header.strip_prefix("Basic "))
            && let Some((u, p)) = wharf_spec::decode_basic(given.trim())
        {
            return same(user.as_bytes(), u.as_bytes()) & same(password.as_bytes(), p.as_bytes());
        }
        false
    }
}

/// Whether a folder of users (one JSON file each) has any.
fn has_users(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "json"))
    })
}

/// The name in a `Host` header: without its port, an IPv6 address without brackets.
pub(crate) fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// A colour the stylesheet can take as it is: `#rgb`, `#rrggbb` or a name of letters.
fn css_color(text: &str) -> bool {
    match text.strip_prefix('#') {
        Some(hex) => matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => {
            !text.is_empty() && text.len() <= 30 && text.bytes().all(|b| b.is_ascii_alphabetic())
        }
    }
}

/// A duration written as a whole number and a unit (`90s`, `30m`, `6h`, `1d`), or seconds.
pub(crate) fn duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(unit_secs)?))
}

/// Compares secrets in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}
