//! `redis.<command>`: one command, a pipeline of them, or a Lua script, sent to a Redis
//! server (standalone) over RESP by wharf itself, with an optional lock held around it.
//!
//! The command's arguments come from `with`: `key`, `field`, `keys`, `value`, `values`,
//! `start`, `stop`, in that order (`ttl` makes a `SET` expire, and other commands are
//! followed by `EXPIRE`). The reply is written as JSON (indented by two spaces), JSON lines,
//! raw text or CSV; a nil reply writes nothing, a nil inside a list is `null_value`.

use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use wharf_engine::StepJob;

use crate::{Ended, Output};

/// A reply of the server.
#[derive(Debug, Clone)]
enum Reply {
    Nil,
    Text(String),
    Int(i64),
    Error(String),
    List(Vec<Reply>),
}

pub(crate) async fn run(command: &str, with: &Value, job: &StepJob, out: &mut Output) -> Ended {
    let work = async {
        let settings = Settings::of(with)?;
        let mut conn = settings.connect().await?;
        let lock = match with.get("lock").and_then(Value::as_str) {
            Some(name) => Some(conn.lock(name, with).await?),
            None => None,
        };
        let result = execute(&mut conn, command, with).await;
        if let Some((key, token)) = lock {
            let _ = conn
                .call(&[
                    "EVAL".into(),
                    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end".into(),
                    "1".into(),
                    key,
                    token,
                ])
                .await;
        }
        result
    };
    let result = tokio::select! {
        r = work => r,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    match result {
        Ok(Some(text)) => {
            out.stdout(text.as_bytes()).await;
            Ended::Done
        }
        Ok(None) => Ended::Done,
        Err(e) => Ended::Failed(e),
    }
}

/// The reply of the step's command (pipeline, script or single command), written in its
/// `output_format`; None for a nil reply.
async fn execute(conn: &mut Conn, command: &str, with: &Value) -> Result<Option<String>, String> {
    let format = with
        .get("output_format")
        .and_then(Value::as_str)
        .unwrap_or("json");
    let null = with.get("null_value").map(text);
    if let Some(Value::Array(pipeline)) = with.get("pipeline") {
        let commands: Vec<Vec<String>> = pipeline
            .iter()
            .map(|c| {
                let name = c.get("command").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    return Err(
                        "pipeline execution failed: a command of `pipeline` has no `command`"
                            .to_owned(),
                    );
                }
                Ok(arguments(&name.to_ascii_uppercase(), c))
            })
            .collect::<Result<_, _>>()?;
        let replies = conn.pipeline(&commands).await?;
        let mut values = Vec::new();
        for reply in replies {
            match reply {
                Reply::Error(e) => return Err(format!("pipeline execution failed: {e}")),
                Reply::Nil => values.push(Value::String(String::new())),
                other => values.push(json(&other, "", null.as_deref())),
            }
        }
        return Ok(Some(write(&Value::Array(values), format, null.as_deref())));
    }
    let script = match (with.get("script"), with.get("script_file")) {
        (Some(s), _) => Some(text(s)),
        (None, Some(f)) => Some(
            std::fs::read_to_string(text(f))
                .map_err(|e| format!("cannot read the script file {}: {e}", text(f)))?,
        ),
        (None, None) => None,
    };
    let (args, name) = match script {
        Some(script) => {
            let keys = list(with.get("script_keys"));
            let mut args = vec!["EVAL".to_owned(), script, keys.len().to_string()];
            args.extend(keys);
            args.extend(list(with.get("script_args")));
            (args, "EVAL".to_owned())
        }
        None => (arguments(command, with), command.to_owned()),
    };
    let reply = conn.call(&args).await?;
    if let Reply::Error(e) = &reply {
        return Err(format!("redis {name}: {e}"));
    }
    // `ttl` on a command other than SET: the key expires after it.
    if name != "SET"
        && name != "EVAL"
        && let (Some(ttl), Some(key)) = (with.get("ttl"), with.get("key"))
    {
        let _ = conn.call(&["EXPIRE".into(), text(key), text(ttl)]).await?;
    }
    if matches!(reply, Reply::Nil) {
        return Ok(None);
    }
    Ok(Some(write(
        &json(&reply, &name, null.as_deref()),
        format,
        null.as_deref(),
    )))
}

/// A command's arguments from its settings.
fn arguments(command: &str, with: &Value) -> Vec<String> {
    let mut args = vec![command.to_owned()];
    for key in ["key", "field"] {
        if let Some(v) = with.get(key) {
            args.push(text(v));
        }
    }
    args.extend(list(with.get("keys")));
    if let Some(v) = with.get("value") {
        args.push(text(v));
    }
    args.extend(list(with.get("values")));
    for key in ["start", "stop"] {
        if let Some(v) = with.get(key) {
            args.push(text(v));
        }
    }
    if command == "SET"
        && let Some(ttl) = with.get("ttl")
    {
        args.push("EX".into());
        args.push(text(ttl));
    }
    args
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![text(other)],
    }
}

/// A reply as JSON: a `HGETALL`'s pairs as an object; a nil in a list is `null_value`
/// when one is set.
fn json(reply: &Reply, command: &str, null: Option<&str>) -> Value {
    match reply {
        Reply::Nil => null.map_or(Value::Null, |n| Value::String(n.to_owned())),
        Reply::Text(t) => Value::String(t.clone()),
        Reply::Int(i) => Value::from(*i),
        Reply::Error(e) => Value::String(e.clone()),
        Reply::List(items) if command == "HGETALL" || command == "CONFIG" => {
            let mut m = Map::new();
            for pair in items.chunks(2) {
                if let [k, v] = pair {
                    m.insert(text(&json(k, "", null)), json(v, "", null));
                }
            }
            Value::Object(m)
        }
        Reply::List(items) => Value::Array(items.iter().map(|i| json(i, "", null)).collect()),
    }
}

/// The reply written as `format` says.
fn write(value: &Value, format: &str, null: Option<&str>) -> String {
    let plain = |v: &Value| match v {
        Value::Null => null.unwrap_or("null").to_owned(),
        other => text(other),
    };
    let mut out = String::new();
    match (format, value) {
        ("jsonl", Value::Array(items)) => {
            for i in items {
                out.push_str(&format!("{i}\n"));
            }
        }
        ("jsonl", Value::Object(m)) => {
            for (k, v) in m {
                out.push_str(&format!("{}\n", serde_json::json!({ k: v })));
            }
        }
        ("raw", Value::Array(items)) => {
            for i in items {
                out.push_str(&format!("{}\n", plain(i)));
            }
        }
        ("raw", Value::Object(m)) => {
            for (k, v) in m {
                out.push_str(&format!("{k}={}\n", plain(v)));
            }
        }
        ("csv", Value::Array(items)) => {
            let cells: Vec<String> = items
                .iter()
                .map(|i| crate::sql::delimited_field(&plain(i), ','))
                .collect();
            out.push_str(&format!("{}\n", cells.join(",")));
        }
        ("csv", Value::Object(m)) => {
            for (k, v) in m {
                out.push_str(&format!(
                    "{},{}\n",
                    crate::sql::delimited_field(k, ','),
                    crate::sql::delimited_field(&plain(v), ',')
                ));
            }
        }
        ("raw" | "csv", v) => out.push_str(&format!("{}\n", plain(v))),
        ("jsonl", v) => out.push_str(&format!("{v}\n")),
        (_, v) => {
            out.push_str(&serde_json::to_string_pretty(v).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// Where and how to connect.
struct Settings {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: u64,
    retries: u64,
}

impl Settings {
    fn of(with: &Value) -> Result<Self, String> {
        let get = |k: &str| with.get(k).filter(|v| !v.is_null()).map(text);
        match get("mode").as_deref() {
            None | Some("standalone") => {}
            Some("sentinel") => {
                if get("sentinel_master").is_none() {
                    return Err("sentinel_master is required for sentinel mode".into());
                }
                if with.get("sentinel_addrs").is_none() {
                    return Err("sentinel_addrs is required for sentinel mode".into());
                }
                return Err("wharf connects to a Redis server itself, not through Sentinel: give the master's url or host".into());
            }
            Some("cluster") => {
                if with.get("cluster_addrs").is_none() {
                    return Err("cluster_addrs is required for cluster mode".into());
                }
                return Err(
                    "wharf connects to one Redis server, not a Cluster: give a node's url or host"
                        .into(),
                );
            }
            Some(other) => {
                return Err(format!(
                    "`mode` is standalone, sentinel or cluster, not `{other}`"
                ));
            }
        }
        if get("tls_cert").is_some() != get("tls_key").is_some() {
            return Err("both tls_cert and tls_key must be provided together".into());
        }
        if with.get("tls").and_then(Value::as_bool) == Some(true) || get("tls_cert").is_some() {
            return Err("wharf's redis steps connect without TLS: use a server on a trusted network (or a TLS tunnel to it)".into());
        }
        let mut settings = Settings {
            host: "127.0.0.1".into(),
            port: 6379,
            username: None,
            password: None,
            db: 0,
            retries: get("max_retries").and_then(|r| r.parse().ok()).unwrap_or(3),
        };
        if let Some(url) = get("url") {
            let rest = url.strip_prefix("redis://").ok_or_else(|| {
                "the redis url is `redis://[user:password@]host:port[/db]`".to_owned()
            })?;
            let (auth, rest) = match rest.rsplit_once('@') {
                Some((auth, rest)) => (Some(auth), rest),
                None => (None, rest),
            };
            if let Some(auth) = auth {
                let (user, password) = auth.split_once(':').unwrap_or(("", auth));
                let decode = |t: &str| {
                    percent_encoding::percent_decode_str(t)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                if !user.is_empty() {
                    settings.username = Some(decode(user));
                }
                if !password.is_empty() {
                    settings.password = Some(decode(password));
                }
            }
            let (address, db) = rest.split_once('/').unwrap_or((rest, ""));
            let (host, port) = match address.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse()
                        .map_err(|_| "the redis url's port is not a number".to_owned())?,
                ),
                None => (address, 6379),
            };
            settings.host = host.to_owned();
            settings.port = port;
            if !db.is_empty() {
                settings.db = db
                    .parse()
                    .map_err(|_| "the redis url's database is not a number".to_owned())?;
            }
        }
        if let Some(host) = get("host") {
            settings.host = host;
        }
        if let Some(port) = get("port") {
            settings.port = port
                .parse()
                .map_err(|_| format!("`port` {port} is not a port"))?;
        }
        if let Some(user) = get("username") {
            settings.username = Some(user);
        }
        if let Some(password) = get("password") {
            settings.password = Some(password);
        }
        if let Some(db) = get("db") {
            settings.db = db
                .parse()
                .map_err(|_| format!("`db` {db} is not a number"))?;
        }
        Ok(settings)
    }

    async fn connect(&self) -> Result<Conn, String> {
        let mut attempt = 0;
        let stream = loop {
            let tried = tokio::time::timeout(
                Duration::from_secs(10),
                TcpStream::connect((self.host.as_str(), self.port)),
            )
            .await;
            match tried {
                Ok(Ok(s)) => break s,
                Ok(Err(e)) if attempt >= self.retries => {
                    return Err(format!(
                        "cannot connect to Redis at {}:{}: {e}",
                        self.host, self.port
                    ));
                }
                Err(_) if attempt >= self.retries => {
                    return Err(format!(
                        "cannot connect to Redis at {}:{}: no answer in 10 s",
                        self.host, self.port
                    ));
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                    attempt += 1;
                }
            }
        };
        let mut conn = Conn {
            io: BufReader::new(stream),
        };
        if let Some(password) = &self.password {
            let mut args = vec!["AUTH".to_owned()];
            if let Some(user) = &self.username {
                args.push(user.clone());
            }
            args.push(password.clone());
            if let Reply::Error(e) = conn.call(&args).await? {
                return Err(format!("Redis refused the login: {e}"));
            }
        }
        if self.db > 0
            && let Reply::Error(e) = conn.call(&["SELECT".into(), self.db.to_string()]).await?
        {
            return Err(format!("Redis cannot select database {}: {e}", self.db));
        }
        Ok(conn)
    }
}

struct Conn {
    io: BufReader<TcpStream>,
}

impl Conn {
    async fn send(&mut self, args: &[String]) -> Result<(), String> {
        let mut frame = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            frame.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            frame.extend_from_slice(a.as_bytes());
            frame.extend_from_slice(b"\r\n");
        }
        self.io
            .get_mut()
            .write_all(&frame)
            .await
            .map_err(|e| format!("cannot send to Redis: {e}"))
    }

    async fn call(&mut self, args: &[String]) -> Result<Reply, String> {
        self.send(args).await?;
        self.reply().await
    }

    async fn pipeline(&mut self, commands: &[Vec<String>]) -> Result<Vec<Reply>, String> {
        for c in commands {
            self.send(c).await?;
        }
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            replies.push(self.reply().await?);
        }
        Ok(replies)
    }

    /// One reply, its lists read without recursion.
    async fn reply(&mut self) -> Result<Reply, String> {
        // Lists being filled: (items wanted, items so far).
        let mut open: Vec<(usize, Vec<Reply>)> = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .io
                .read_line(&mut line)
                .await
                .map_err(|e| format!("cannot read from Redis: {e}"))?;
            if n == 0 {
                return Err("Redis closed the connection".into());
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let (kind, rest) = line.split_at(line.len().min(1));
            let mut item = match kind {
                "+" => Reply::Text(rest.to_owned()),
                "-" => Reply::Error(rest.to_owned()),
                ":" => Reply::Int(rest.parse().unwrap_or(0)),
                "$" => {
                    let len: i64 = rest
                        .parse()
                        .map_err(|_| "a bad reply from Redis".to_owned())?;
                    if len < 0 {
                        Reply::Nil
                    } else {
                        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0) + 2];
                        self.io
                            .read_exact(&mut buf)
                            .await
                            .map_err(|e| format!("cannot read from Redis: {e}"))?;
                        buf.truncate(buf.len() - 2);
                        Reply::Text(String::from_utf8_lossy(&buf).into_owned())
                    }
                }
                "*" => {
                    let len: i64 = rest
                        .parse()
                        .map_err(|_| "a bad reply from Redis".to_owned())?;
                    if len < 0 {
                        Reply::Nil
                    } else if len == 0 {
                        Reply::List(Vec::new())
                    } else {
                        open.push((usize::try_from(len).unwrap_or(0), Vec::new()));
                        continue;
                    }
                }
                _ => return Err(format!("a reply Redis does not send: `{line}`")),
            };
            // Into the list being filled; a full list is an item of the one before it.
            loop {
                let Some((want, items)) = open.last_mut() else {
                    return Ok(item);
                };
                items.push(item);
                if items.len() < *want {
                    break;
                }
                let (_, done) = open.pop().unwrap_or_default();
                item = Reply::List(done);
            }
        }
    }

    /// `lock`: `dagu:lock:NAME` set to a token of this step's if free, tried `lock_retry`
    /// times `lock_wait` apart; the key and token, to release it.
    async fn lock(&mut self, name: &str, with: &Value) -> Result<(String, String), String> {
        let key = format!("dagu:lock:{name}");
        let token = uuid::Uuid::now_v7().to_string();
        let tries = with
            .get("lock_retry")
            .map(text)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(10)
            .max(1);
        let wait = with
            .get("lock_wait")
            .map(text)
            .and_then(|t| {
                wharf_spec::formats::go_duration(&t)
                    .or_else(|| t.parse::<u64>().ok().map(Duration::from_millis))
            })
            .unwrap_or(Duration::from_millis(100));
        for attempt in 0..tries {
            let reply = self
                .call(&[
                    "SET".into(),
                    key.clone(),
                    token.clone(),
                    "NX".into(),
                    "PX".into(),
                    "3600000".into(),
                ])
                .await?;
            match reply {
                Reply::Text(_) => return Ok((key, token)),
                Reply::Error(e) => return Err(format!("cannot take the lock {name}: {e}")),
                _ if attempt + 1 < tries => tokio::time::sleep(wait).await,
                _ => {}
            }
        }
        Err(format!(
            "lock is held by another process: `{name}` (tried {tries} times)"
        ))
    }
}
