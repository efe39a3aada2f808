//! `type: ssh` (and a DAG-level `ssh:`): the step's command runs on another machine, over
//! russh (SSH in Rust; no `ssh` program is run).
//!
//! - The server's key is checked against `knownHostFile` (`~/.ssh/known_hosts` by
//!   default) unless `strictHostKey: false`: an unknown host and a key that differs from
//!   the known one are errors that say which, and where to fix it.
//! - Authentication: `key` (a private key file), else `password`, else the usual keys in
//!   `~/.ssh` (`id_rsa`, `id_ecdsa`, `id_ed25519`), tried in turn.
//! - One connection per host, user and credentials is kept for the whole run (its steps
//!   and its sub-DAG runs): a step opens a channel on it, which costs a round trip, not a
//!   key exchange.
//! - stdout and stderr stay apart; the remote exit code is the step's. A `script` is fed
//!   to the remote `shell -s` (`sh` by default) on its stdin.
//! - A stop (or the step's timeout) sends the step's signal to the remote command's
//!   process group, then after the grace period `KILL`. The signal goes over the channel
//!   (the SSH way) and, since servers may not act on it, as a `kill` on a second channel:
//!   the command is started as `echo PID >&2; exec sh -c 'COMMAND'`, and that first
//!   stderr line (the process group of the remote session) is read off, never logged.
//!
//! Passwords and key contents never reach a log: only the user, host and port are named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Sig};
use wharf_engine::StepJob;
use wharf_spec::SshStep;

use crate::{Ended, Output};

/// How long connecting and logging in may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// The connections of a run, by user, host, port and credentials.
#[derive(Default)]
pub(crate) struct Sessions {
    pub(crate) open: tokio::sync::Mutex<HashMap<String, Arc<Handle<Client>>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

/// The server's side of the key check.
pub(crate) struct Client {
    host: String,
    port: u16,
    strict: bool,
    known: PathBuf,
    /// Why the server's key was refused.
    refused: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if !self.strict {
            return Ok(true);
        }
        let refuse = |why: String| {
            *self
                .refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
            Ok(false)
        };
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            return refuse(format!(
                "{}:{} offers a host certificate, which wharf does not check: set `strictHostKey: false` to connect anyway",
                self.host, self.port
            ));
        };
        let known = self.known.display();
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known) {
            Ok(true) => Ok(true),
            Ok(false) => refuse(format!(
                "the host key of {}:{} is not in {known}: add it (`ssh-keyscan -p {} {} >> {known}`) or set `strictHostKey: false`",
                self.host, self.port, self.port, self.host
            )),
            Err(russh::keys::Error::KeyChanged { line }) => refuse(format!(
                "the host key of {}:{} differs from the one at line {line} of {known}: the server is not the one known there (or its key changed; fix that line if it did)",
                self.host, self.port
            )),
            Err(e) => refuse(format!("cannot read the known hosts file {known}: {e}")),
        }
    }
}

pub(crate) async fn run(
    sessions: &Sessions,
    config: &SshStep,
    command: &str,
    script: Option<&str>,
    dir: &Path,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    if command.trim().is_empty() && script.is_none() {
        return Ended::Failed("an `ssh` step needs a `command` or a `script`".into());
    }
    let connected = tokio::select! {
        c = connection(sessions, config, dir) => c,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    let handle = match connected {
        Ok(h) => h,
        Err(e) => return Ended::Failed(e),
    };
    let target = target(config);
    let channel = match handle.channel_open_session().await {
        Ok(c) => c,
        Err(e) => {
            // A connection the server closed since: the next step makes a new one.
            sessions.open.lock().await.remove(&cache_key(config));
            return Ended::Failed(format!("{target}: cannot open a channel: {e}"));
        }
    };
    let inner = match script {
        Some(_) => format!("{} -s", config.shell.as_deref().unwrap_or("sh")),
        None => format!("sh -c {}", quote(command)),
    };
    let remote = format!("echo {PID_TAG}$$ >&2; exec {inner}");
    let started = match channel.exec(true, remote).await {
        Ok(()) => match script {
            Some(script) => channel
                .data(script.as_bytes())
                .await
                .and(channel.eof().await),
            None => Ok(()),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = started {
        return Ended::Failed(format!("{target}: cannot run the command: {e}"));
    }
    let mut channel = channel;
    let mut group: Option<u32> = None;
    // stderr until the first line (the remote pid) is read off.
    let mut first: Option<Vec<u8>> = Some(Vec::new());
    let mut code: Option<u32> = None;
    let mut signal: Option<String> = None;
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut killed = false;
    loop {
        let wait_kill = async {
            match stopping {
                Some(at) if !killed => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = channel.wait() => match msg {
                Some(ChannelMsg::Data { data }) => out.stdout(&data).await,
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => match first.as_mut() {
                    Some(pending) => {
                        pending.extend_from_slice(&data);
                        if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
                            group = line.strip_prefix(PID_TAG).and_then(|p| p.trim().parse().ok());
                            let rest = if group.is_some() { pending[end + 1..].to_vec() } else { pending.clone() };
                            first = None;
                            out.stderr(&rest).await;
                        }
                    }
                    None => out.stderr(&data).await,
                },
                Some(ChannelMsg::ExitStatus { exit_status }) => code = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    signal = Some(format!("{signal_name:?}"));
                }
                Some(_) => {}
                None => break,
            },
            () = job.stop.cancelled(), if stopping.is_none() => {
                let _ = channel.signal(sig(job.signal)).await;
                kill_group(&handle, group, &signal_name(job.signal)).await;
                stopping = Some(tokio::time::Instant::now() + job.grace);
            }
            () = wait_kill => {
                killed = true;
                let _ = channel.signal(Sig::KILL).await;
                kill_group(&handle, group, "KILL").await;
                let _ = channel.close().await;
            }
        }
    }
    if let Some(rest) = first.filter(|r| !r.is_empty()) {
        out.stderr(&rest).await;
    }
    if stopping.is_some() {
        return Ended::Stopped;
    }
    match (code, signal) {
        (Some(0), _) => Ended::Done,
        (Some(c), _) => Ended::Exited(i32::try_from(c).unwrap_or(i32::MAX)),
        (None, Some(sig)) => {
            Ended::Failed(format!("{target}: the command was killed by signal {sig}"))
        }
        (None, None) => Ended::Failed(format!(
            "{target}: the connection ended before the command did"
        )),
    }
}

/// The start of the first stderr line, which names the remote session's pid.
const PID_TAG: &str = "wharf-ssh-pid:";

/// `text` as one word for a POSIX shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Sends `signal` to the remote process group `group` (the session's), on a channel of
/// its own.
async fn kill_group(handle: &Handle<Client>, group: Option<u32>, signal: &str) {
    let Some(group) = group else { return };
    let Ok(mut channel) = handle.channel_open_session().await else {
        return;
    };
    if channel
        .exec(
            true,
            format!("kill -{signal} -- -{group} 2>/dev/null || kill -{signal} {group}"),
        )
        .await
        .is_ok()
    {
        while channel.wait().await.is_some() {}
    }
}

/// `TERM` for SIGTERM.
fn signal_name(signal: nix::sys::signal::Signal) -> String {
    signal.as_str().trim_start_matches("SIG").to_owned()
}

/// `user@host:port`.
pub(crate) fn target(config: &SshStep) -> String {
    format!(
        "{}@{}:{}",
        user(config),
        config.host.as_deref().unwrap_or_default(),
        config.port.unwrap_or(22)
    )
}

fn user(config: &SshStep) -> String {
    config
        .user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".into())
}

pub(crate) fn cache_key(config: &SshStep) -> String {
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}",
        user(config),
        config.host.as_deref().unwrap_or_default(),
        config.port.unwrap_or(22),
        config.key.as_deref().unwrap_or_default(),
        config.password.as_deref().unwrap_or_default(),
        config.strict_host_key,
        config.known_host_file.as_deref().unwrap_or_default(),
    )
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

/// A path as written: `~/` is the home folder, a relative one the step's directory.
pub(crate) fn path_of(text: &str, dir: &Path) -> PathBuf {
    match text.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None => wharf_spec::formats::resolve_path(dir, text),
    }
}

/// The run's connection to the step's host, made (and logged in) when it has none.
pub(crate) async fn connection(
    sessions: &Sessions,
    config: &SshStep,
    dir: &Path,
) -> Result<Arc<Handle<Client>>, String> {
    let key = cache_key(config);
    let mut open = sessions.open.lock().await;
    if let Some(h) = open.get(&key).filter(|h| !h.is_closed()) {
        return Ok(Arc::clone(h));
    }
    let handle = tokio::time::timeout(CONNECT_LIMIT, connect(config, dir))
        .await
        .map_err(|_| {
            format!(
                "{}: no connection within {}s",
                target(config),
                CONNECT_LIMIT.as_secs()
            )
        })??;
    let handle = Arc::new(handle);
    open.insert(key, Arc::clone(&handle));
    Ok(handle)
}

async fn connect(config: &SshStep, dir: &Path) -> Result<Handle<Client>, String> {
    let target = target(config);
    let host = config.host.clone().unwrap_or_default();
    let port = config.port.unwrap_or(22);
    let refused = Arc::new(Mutex::new(None));
    let client = Client {
        host: host.clone(),
        port,
        strict: config.strict_host_key.unwrap_or(true),
        known: config
            .known_host_file
            .as_deref()
            .map_or_else(|| home().join(".ssh/known_hosts"), |k| path_of(k, dir)),
        refused: Arc::clone(&refused),
    };
    let settings = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        ..client::Config::default()
    });
    let mut handle = match client::connect(settings, (host.as_str(), port), client).await {
        Ok(h) => h,
        Err(e) => {
            let why = refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            return Err(match why {
                Some(why) => why,
                None => format!("{target}: cannot connect: {e}"),
            });
        }
    };
    let user = user(config);
    let keys: Vec<PathBuf> = match (&config.key, &config.password) {
        (Some(k), _) => vec![path_of(k, dir)],
        (None, Some(_)) => Vec::new(),
        (None, None) => ["id_rsa", "id_ecdsa", "id_ed25519"]
            .iter()
            .map(|n| home().join(".ssh").join(n))
            .filter(|p| p.is_file())
            .collect(),
    };
    for path in &keys {
        let secret = russh::keys::load_secret_key(path, None)
            .map_err(|e| format!("{target}: cannot read the key {}: {e}", path.display()))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten();
        let auth = handle
            .authenticate_publickey(
                user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(secret), hash),
            )
            .await
            .map_err(|e| format!("{target}: cannot log in: {e}"))?;
        if auth.success() {
            return Ok(handle);
        }
    }
    if let Some(password) = &config.password {
        let auth = handle
            .authenticate_password(user.clone(), password.clone())
            .await
            .map_err(|e| format!("{target}: cannot log in: {e}"))?;
        if auth.success() {
            return Ok(handle);
        }
        return Err(format!("{target}: the password was refused"));
    }
    Err(match keys.len() {
        0 => format!("{target}: no key or password to log in with (set `key` or `password`)"),
        _ => format!(
            "{target}: the server refused the key{} {}",
            if keys.len() > 1 { "s" } else { "" },
            keys.iter()
                .map(|k| k.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The step's stop signal as SSH names it.
fn sig(signal: nix::sys::signal::Signal) -> Sig {
    use nix::sys::signal::Signal as S;
    match signal {
        S::SIGINT => Sig::INT,
        S::SIGHUP => Sig::HUP,
        S::SIGKILL => Sig::KILL,
        S::SIGQUIT => Sig::QUIT,
        S::SIGUSR1 => Sig::USR1,
        S::SIGABRT => Sig::ABRT,
        S::SIGALRM => Sig::ALRM,
        _ => Sig::TERM,
    }
}
