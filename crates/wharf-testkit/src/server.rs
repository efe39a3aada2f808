//! `wharf server` as a real process on a free loopback port, and requests to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Place, wharf_bin};

pub struct Server {
    /// The server process, when the test started it (None: a server elsewhere, such as
    /// in a container).
    child: Option<Child>,
    pub addr: String,
    /// What the server wrote before its address (warnings about its settings).
    pub said: String,
}

impl Server {
    /// Kills the server process (not the runs it started: they are processes of their own).
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A server that runs already, at `addr`.
    pub fn at(addr: String) -> Self {
        Self {
            child: None,
            addr,
            said: String::new(),
        }
    }

    pub fn start(p: &Place) -> Self {
        Self::start_with(p, &[])
    }

    pub fn start_with(p: &Place, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(p.path("dags")).expect("dags");
        let dags = p.path("dags").to_string_lossy().into_owned();
        Self::start_args(p, &["server", "--port", "0", "--dags", &dags], env)
    }

    /// `wharf ARGS` (a server command), with `env`; what it said before its address is in
    /// `said`.
    pub fn start_args(p: &Place, args: &[&str], env: &[(&str, &str)]) -> Self {
        // The scheduler's health check listens only where a test asks (no fixed port).
        let mut child = Command::new(wharf_bin())
            .args(args)
            .env("WHARF_SCHEDULER_PORT", "0")
            .envs(env.iter().copied())
            .env("WHARF_HOME", p.home())
            .current_dir(p.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wharf server");
        let mut line = String::new();
        let stderr = child.stderr.take().expect("stderr");
        let mut reader = BufReader::new(stderr);
        let mut said = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line).expect("the server's output");
            assert!(read > 0, "the server ended without an address: {said}");
            if line.contains("http://") || line.contains("https://") {
                break;
            }
            said.push_str(&line);
        }
        let addr = line
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_owned();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = reader.read_to_string(&mut sink);
        });
        Self {
            child: Some(child),
            addr,
            said,
        }
    }

    /// One HTTP/1.1 request (`headers`: whole lines with their CRLF); the status, the head
    /// and the body. An error when the server cannot be reached.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> std::io::Result<(u16, String, String)> {
        let mut stream = TcpStream::connect(&self.addr)?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, rest) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, head.to_owned(), rest.to_owned()))
    }

    /// One API request; the status and the JSON answer (Null when there is no body).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_with("", method, path, body)
    }

    /// One API request with more header lines (`headers`, each with its CRLF), such as
    /// credentials.
    pub fn call_with(
        &self,
        headers: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let headers = format!("{headers}Content-Type: application/json\r\n");
        let (status, _, rest) = self
            .raw(method, &format!("/api/v2{path}"), &headers, &body)
            .expect("the server answers");
        let value = if rest.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&rest).unwrap_or_else(|_| panic!("not JSON: {rest:?}"))
        };
        (status, value)
    }

    /// A request outside the API (a form body): the status, the raw head and the body.
    pub fn page(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &str,
    ) -> (u16, String, String) {
        let headers = format!("{headers}Content-Type: application/x-www-form-urlencoded\r\n");
        self.raw(method, path, &headers, body)
            .expect("the server answers")
    }

    /// A GET that may fail to connect (the server is still starting).
    pub fn try_get(&self, path: &str) -> Option<Value> {
        let (_, _, body) = self.raw("GET", &format!("/api/v2{path}"), "", "").ok()?;
        serde_json::from_str(&body).ok()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    /// Waits until the run's status label is `label`.
    pub fn until(&self, name: &str, id: &str, label: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, v) = self.get(&format!("/dag-runs/{name}/{id}"));
            if code == 200 && v["dagRunDetails"]["statusLabel"] == label {
                return v["dagRunDetails"].clone();
            }
            assert!(Instant::now() < deadline, "never {label}: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `text` as a value of an `application/x-www-form-urlencoded` body.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
