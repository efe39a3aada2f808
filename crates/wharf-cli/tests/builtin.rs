//! X04–X06, G34, S22: `jq`, `http` and `mail` steps and the mail about runs, against real
//! servers: an HTTP server these tests run (status codes, slow answers, large bodies) and
//! a real SMTP server (aiosmtpd from PyPI, on a loopback port, writing a Maildir).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wharf_testkit::{Place, step, step_error};

#[test]
fn jq_steps_filter_json_as_dagu_prints_it() {
    let p = Place::new();
    let dag = p.dag(
        "jq",
        "steps:\n  - name: pick\n    type: jq\n    command: .items[] | {name, n}\n    script: '{\"items\": [{\"n\": 1, \"name\": \"a\"}]}'\n  - name: names\n    executor:\n      type: jq\n      config:\n        raw: true\n    command: .items[].name, .none\n    script: ${DATA}\n    output: NAMES\n  - name: use\n    command: printf '%s|' \"$NAMES\"\nenv:\n  - DATA: '{\"items\": [{\"name\": \"x\"}, {\"name\": \"y\"}]}'\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("jq", "pick"),
        "{\n    \"n\": 1,\n    \"name\": \"a\"\n}\n"
    );
    assert_eq!(p.logs("jq", "names"), "x\ny\n\n");
    assert_eq!(p.logs("jq", "use"), "x\ny|");

    // A filter that does not compile, input that is not JSON, an error while it runs.
    for (name, command, script, says) in [
        (
            "badfilter",
            ".a |",
            "{}",
            "is not valid jq: it ends too early",
        ),
        ("nosuch", "nosuch(1)", "{}", "does not compile"),
        ("badinput", ".a", "{not json", "is not JSON"),
        ("runtime", ".a.b", "{\"a\": \"text\"}", "jq: "),
    ] {
        let dag = p.dag(
            name,
            &format!("steps:\n  - name: q\n    type: jq\n    command: '{command}'\n    script: '{script}'\n"),
        );
        let out = p.run(&dag, &[]);
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        assert!(
            step_error(&p.status(name), "q").contains(says),
            "{name}: {}",
            out.stderr
        );
    }
    let out = p
        .wharf()
        .args(["validate"])
        .arg_path(&p.dag(
            "nofilter",
            "steps:\n  - name: q\n    type: jq\n    script: '{}'\n",
        ))
        .run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("a `jq` step needs its filter as `command`"),
        "{}",
        out.stderr
    );
}

/// An HTTP/1.1 server on a loopback port: each request is answered by `answer`, and the
/// request heads it saw are kept.
struct Http {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Http {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn serve(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().expect("lock").push(format!("{head}\n{body}"));
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let reply = |status: &str, extra: &str, body: &[u8]| {
        let mut s = stream.try_clone().expect("clone");
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Test: yes\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(body);
    };
    match path.split('?').next().unwrap_or_default() {
        "/ok" => reply(
            "200 OK",
            "Content-Type: application/json\r\n",
            br#"{"ok": true}"#,
        ),
        "/echo" => reply("200 OK", "", body.as_bytes()),
        "/missing" => reply("404 Not Found", "", b"no such thing"),
        "/moved" => reply("302 Found", "Location: /ok\r\n", b""),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            reply("200 OK", "", b"late");
        }
        "/big" => {
            let chunk = vec![b'x'; 1 << 20];
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                20 << 20
            );
            for _ in 0..20 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        _ => reply("500 Internal Server Error", "", b"?"),
    }
}

#[test]
fn http_steps_send_requests_and_stream_answers() {
    let p = Place::new();
    let h = Http::start();
    let dag = p.dag(
        "http",
        &format!(
            "params: TOKEN=t0\nsteps:\n  - name: get\n    type: http\n    config:\n      silent: true\n      query: {{a: \"1 2\"}}\n      headers: {{Authorization: \"Bearer ${{TOKEN}}\"}}\n    command: GET {ok}\n    output: BODY\n  - name: post\n    type: http\n    config:\n      body: '{{\"n\": 1}}'\n      headers: {{Content-Type: application/json}}\n    command: post {echo}\n  - name: json\n    type: http\n    config: {{json: true}}\n    command: GET {moved}\n  - name: big\n    type: http\n    config: {{silent: true, timeout: 30}}\n    command: GET {big}\n  - name: use\n    command: printf '%s' \"$BODY\"\n",
            ok = h.url("/ok"),
            echo = h.url("/echo"),
            moved = h.url("/moved"),
            big = h.url("/big"),
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("http", "get"), r#"{"ok": true}"#);
    assert_eq!(
        p.logs("http", "use"),
        r#"{"ok": true}"#,
        "the body as output"
    );
    let post = p.logs("http", "post");
    assert!(post.starts_with("200 OK\n"), "{post}");
    assert!(
        post.contains("X-Test: yes\n") && post.ends_with(r#"{"n": 1}"#),
        "{post}"
    );
    let json: serde_json::Value = serde_json::from_str(&p.logs("http", "json")).expect("json");
    assert_eq!(json["status_code"], 200, "after the redirect: {json}");
    assert_eq!(json["body"]["ok"], true, "{json}");
    assert_eq!(json["headers"]["X-Test"][0], "yes", "{json}");
    assert_eq!(
        p.logs("http", "big").len(),
        20 << 20,
        "the whole large body"
    );
    let seen = h.seen.lock().expect("lock").join("\n---\n");
    assert!(seen.contains("GET /ok?a=1+2 HTTP/1.1"), "{seen}");
    assert!(seen.contains("authorization: Bearer t0"), "{seen}");
    assert!(
        seen.contains("POST /echo") && seen.contains(r#"{"n": 1}"#),
        "{seen}"
    );

    // A status outside 2xx fails the step after its answer is written; a slow answer
    // meets its timeout.
    let dag = p.dag(
        "bad",
        &format!(
            "type: graph\nsteps:\n  - name: missing\n    type: http\n    config: {{silent: true}}\n    command: GET {}\n  - name: slow\n    type: http\n    config: {{timeout: 1}}\n    command: GET {}\n",
            h.url("/missing"),
            h.url("/slow")
        ),
    );
    let started = Instant::now();
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout held"
    );
    let status = p.status("bad");
    assert!(step_error(&status, "missing").contains("404"), "{status}");
    assert!(p.logs("bad", "missing").starts_with("404 Not Found\n"));
    assert!(p.logs("bad", "missing").ends_with("no such thing"));
    assert!(step_error(&status, "slow").contains("timeout"), "{status}");
    assert_eq!(step(&status, "slow")["status"], "failed");

    // Its config is checked like a docker step's.
    let out = p
        .wharf()
        .args(["validate"])
        .arg_path(&p.dag(
            "typo",
            "steps:\n  - name: q\n    type: http\n    config: {silnet: true, timeout: soon}\n    command: GET http://example.com/\n",
        ))
        .run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("did you mean `silent`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`timeout` (seconds) must be a whole number"),
        "{}",
        out.stderr
    );
}

/// A real SMTP server (aiosmtpd) writing what it receives to a Maildir.
struct Smtp {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(p: &Place) -> Self {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let maildir = p.path("maildir");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd (scripts/test installs it from PyPI)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    /// The messages received, oldest first.
    fn messages(&self, want: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut found: Vec<(PathBuf, String)> = std::fs::read_dir(self.maildir.join("new"))
                .map(|d| {
                    d.flatten()
                        .map(|e| {
                            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                            (e.path(), text)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if found.len() >= want || Instant::now() > deadline {
                found.sort();
                return found.into_iter().map(|(_, t)| t).collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_default()
}

#[test]
fn mail_steps_and_notifications_reach_a_real_smtp_server() {
    let p = Place::new();
    let smtp = Smtp::start(&p);
    std::fs::write(p.path("report.csv"), "a,b\n1,2\n").expect("attachment");
    let dag = p.dag(
        "nightly",
        &format!(
            "smtp:\n  host: 127.0.0.1\n  port: {port}\nmailOn:\n  failure: true\n  success: true\nerrorMail:\n  from: wharf@example.com\n  to: [ops@example.com, oncall@example.com]\n  prefix: \"[ALERT]\"\n  attachLogs: true\ninfoMail:\n  from: wharf@example.com\n  to: team@example.com\n  prefix: \"[OK]\"\nenv:\n  - WHO: the batch\nsteps:\n  - name: tell\n    type: mail\n    config:\n      from: wharf@example.com\n      to: team@example.com\n      subject: Report for ${{WHO}}\n      message: All good for ${{WHO}}.\n      attachments: [report.csv]\n  - name: boom\n    command: echo about to fail >&2; exit 3\n    mailOnError: true\n",
            port = smtp.port
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let mails = smtp.messages(3);
    assert_eq!(mails.len(), 3, "{mails:?}");
    let by_subject = |subject: &str| {
        mails
            .iter()
            .find(|m| header(m, "Subject") == subject)
            .unwrap_or_else(|| panic!("no mail `{subject}`: {mails:?}"))
    };
    let tell = by_subject("Report for the batch");
    assert_eq!(header(tell, "To"), "team@example.com");
    assert!(tell.contains("All good for the batch."), "{tell}");
    assert!(tell.contains("filename=\"report.csv\""), "{tell}");
    // mailOnError, then the run's end.
    let step_mail = by_subject("[ALERT] nightly (running)");
    assert_eq!(
        header(step_mail, "To"),
        "ops@example.com, oncall@example.com"
    );
    let end = by_subject("[ALERT] nightly (failed)");
    assert_eq!(header(end, "To"), "ops@example.com, oncall@example.com");
    assert!(end.contains("text/html") && end.contains("boom"), "{end}");
    assert!(
        end.contains("boom.err") || end.contains("stderr"),
        "the logs are attached: {end}"
    );
    assert!(p.logs("nightly", "tell").contains("mail sent"));

    // Success mails go to infoMail; a server that cannot be reached fails a mail step, and
    // a notification that cannot be sent is written in the run log, the run's status kept.
    let ok = p.dag(
        "fine",
        &format!(
            "smtp: {{host: 127.0.0.1, port: {port}}}\nmailOn: {{success: true}}\ninfoMail: {{from: wharf@example.com, to: team@example.com, prefix: '[OK]'}}\nsteps:\n  - \"true\"\n",
            port = smtp.port
        ),
    );
    assert_eq!(p.run(&ok, &[]).code, Some(0));
    let mails = smtp.messages(4);
    assert!(
        mails
            .iter()
            .any(|m| header(m, "Subject") == "[OK] fine (succeeded)"),
        "{mails:?}"
    );

    // G34: `mailOn.wait` sends `waitMail` when a `hitl` step makes the run wait (and no
    // end-of-run mail then: the run has not ended).
    let gate = p.dag(
        "gate",
        &format!(
            "smtp: {{host: 127.0.0.1, port: {port}}}\nmailOn: {{wait: true, success: true}}\nwaitMail: {{from: wharf@example.com, to: [approvers@example.com], prefix: '[APPROVAL]'}}\ninfoMail: {{from: wharf@example.com, to: team@example.com, prefix: '[OK]'}}\nsteps:\n  - name: build\n    command: echo built\n  - name: ask\n    type: hitl\n    config: {{prompt: Ship it?}}\n",
            port = smtp.port
        ),
    );
    let out = p.run(&gate, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mails = smtp.messages(5);
    let wait = mails
        .iter()
        .find(|m| header(m, "Subject") == "[APPROVAL] gate (waiting)")
        .unwrap_or_else(|| panic!("no wait mail: {mails:?}"));
    assert_eq!(header(wait, "To"), "approvers@example.com");
    assert!(wait.contains("ask"), "{wait}");
    assert!(
        !mails
            .iter()
            .any(|m| header(m, "Subject").contains("gate (succeeded)")),
        "{mails:?}"
    );
    // A 2.x file says the same in its own keys.
    let gate2 = p.dag(
        "gate2",
        &format!(
            "smtp: {{host: 127.0.0.1, port: {port}}}\nmail_on: {{wait: true}}\nwait_mail: {{from: wharf@example.com, to: approvers@example.com, prefix: '[APPROVAL]', attach_logs: false}}\nsteps:\n  - id: ask\n    type: hitl\n",
            port = smtp.port
        ),
    );
    let out = p
        .wharf()
        .args(["run", "--dialect", "2"])
        .arg_path(&gate2)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        smtp.messages(6)
            .iter()
            .any(|m| header(m, "Subject") == "[APPROVAL] gate2 (waiting)"),
        "{:?}",
        smtp.messages(6)
    );
    drop(smtp);
    let dead = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let gone = p.dag(
        "gone",
        &format!(
            "smtp: {{host: 127.0.0.1, port: {dead}}}\nmailOn: {{success: true}}\ninfoMail: {{from: wharf@example.com, to: team@example.com}}\nsteps:\n  - \"true\"\n"
        ),
    );
    let out = p.run(&gone, &[]);
    assert_eq!(
        out.code,
        Some(0),
        "the run keeps its status: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the notification could not be sent"),
        "{}",
        out.stderr
    );
    let log = run_log(&p, "gone");
    assert!(
        log.contains("mail: the notification could not be sent"),
        "{log}"
    );
    let step = p.dag(
        "mailstep",
        &format!(
            "smtp: {{host: 127.0.0.1, port: {dead}}}\nsteps:\n  - name: tell\n    type: mail\n    config: {{from: a@example.com, to: b@example.com, subject: hi, message: hi}}\n"
        ),
    );
    let out = p.run(&step, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(step_error(&p.status("mailstep"), "tell").contains(&format!("127.0.0.1:{dead}")));
}

fn run_log(p: &Place, dag: &str) -> String {
    let dir: PathBuf = p.home().join("logs").join(dag);
    let run = std::fs::read_dir(&dir)
        .expect("logs")
        .flatten()
        .next()
        .expect("a run")
        .path();
    std::fs::read_to_string(Path::new(&run).join("run.log")).unwrap_or_default()
}

/// A real sshd (Debian's openssh-server) on a loopback port, with its own host key, a key
/// for root, and password logins.
pub(crate) struct Sshd {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Sshd {
    pub(crate) fn start(p: &Place) -> Self {
        let dir = p.path("sshd");
        std::fs::create_dir_all(&dir).expect("sshd dir");
        let _ = std::fs::create_dir_all("/run/sshd");
        for name in ["host_key", "user_key", "other_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(name))
                .output()
                .expect("ssh-keygen");
            assert!(out.status.success(), "{out:?}");
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).expect("keys");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
                d = dir.display()
            ),
        )
        .expect("config");
        let host = std::fs::read_to_string(dir.join("host_key.pub")).expect("host key");
        let other = std::fs::read_to_string(dir.join("other_key.pub")).expect("other key");
        let entry = |key: &str| {
            let key: Vec<&str> = key.split_whitespace().take(2).collect();
            format!("[127.0.0.1]:{port} {}\n", key.join(" "))
        };
        std::fs::write(dir.join("known_hosts"), entry(&host)).expect("known");
        std::fs::write(dir.join("wrong_hosts"), entry(&other)).expect("wrong");
        std::fs::write(dir.join("empty_hosts"), "").expect("empty");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (scripts/test installs openssh-server)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port, dir }
    }

    pub(crate) fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user with a password, removed when dropped.
struct User(String);

impl User {
    fn new(password: &str) -> Self {
        let name = format!("wharf{}", std::process::id() % 100_000);
        // One left by a test that was killed goes first.
        let _ = Command::new("userdel").arg(&name).output();
        let out = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", &name])
            .output()
            .expect("useradd");
        assert!(out.status.success(), "{out:?}");
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        let _ = writeln!(chpasswd.stdin.take().expect("stdin"), "{name}:{password}");
        assert!(chpasswd.wait().expect("chpasswd").success());
        Self(name)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

#[test]
fn ssh_steps_run_on_a_real_sshd() {
    let p = Place::new();
    let sshd = Sshd::start(&p);
    let marker = format!("1008.{}", std::process::id());
    let dag = p.dag(
        "remote",
        &format!(
            "ssh:\n  user: root\n  host: 127.0.0.1\n  port: {port}\n  key: {key}\n  knownHostFile: {known}\ntype: graph\nsteps:\n  - name: hello\n    command: echo \"out $((6 * 7))\"; echo err >&2\n    output: HELLO\n  - name: script\n    script: |\n      echo first\n      echo second\n  - name: code\n    command: exit 7\n  - name: slow\n    command: sleep {marker}\n    timeoutSec: 1\n  - name: local\n    depends: [hello]\n    executor: command\n    command: printf '%s' \"$HELLO\"\n",
            port = sshd.port,
            key = sshd.file("user_key"),
            known = sshd.file("known_hosts"),
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("remote");
    assert_eq!(p.logs("remote", "hello"), "out 42\n");
    assert_eq!(step(&status, "hello")["status"], "succeeded");
    let err = p
        .wharf()
        .args(["logs", "remote", "--step", "hello", "--stderr"])
        .run();
    assert_eq!(err.stdout, "err\n", "stdout and stderr stay apart");
    assert_eq!(p.logs("remote", "script"), "first\nsecond\n");
    assert_eq!(step(&status, "code")["exitCode"], 7, "the remote exit code");
    assert_eq!(step(&status, "slow")["status"], "failed");
    assert!(
        step_error(&status, "slow").contains("timed out"),
        "{status}"
    );
    assert_eq!(p.logs("remote", "local"), "out 42", "an ssh step's output");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wharf_testkit::processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the remote command was not killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The server's key: unknown, or not the known one, is refused with the reason.
    for (known, says) in [
        ("empty_hosts", "is not in"),
        ("wrong_hosts", "differs from the one at line 1"),
    ] {
        let dag = p.dag(
            known,
            &format!(
                "steps:\n  - name: q\n    type: ssh\n    config: {{user: root, host: 127.0.0.1, port: {}, key: {}, knownHostFile: {}}}\n    command: \"true\"\n",
                sshd.port,
                sshd.file("user_key"),
                sshd.file(known)
            ),
        );
        assert_eq!(p.run(&dag, &[]).code, Some(1));
        let why = step_error(&p.status(known), "q");
        assert!(why.contains(says), "{known}: {why}");
    }

    // A password login; the password reaches no log, record or plan.
    let password = "s3cret-pw-1008";
    let user = User::new(password);
    let dag = p.dag(
        "bypassword",
        &format!(
            "env:\n  - SSH_PW: {password}\nsteps:\n  - name: who\n    type: ssh\n    config: {{user: {}, host: 127.0.0.1, port: {}, password: \"${{SSH_PW}}\", strictHostKey: false}}\n    command: whoami\n",
            user.0, sshd.port
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("bypassword", "who"), format!("{}\n", user.0));
    assert!(!out.stderr.contains(password));
    let status = p.wharf().args(["status", "bypassword", "--json"]).run();
    assert!(!status.stdout.contains(password));
    for entry in walk(&p.home().join("logs")) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        assert!(!text.contains(password), "{}", entry.display());
    }
}

#[test]
fn sftp_steps_copy_files_and_folders_over_a_real_sshd() {
    use std::os::unix::fs::PermissionsExt;
    let p = Place::new();
    let sshd = Sshd::start(&p);
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let put = |path: &Path, text: &str, bits: u32| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(bits)).expect("mode");
    };
    put(&p.path("report.txt"), "first version\n", 0o640);
    put(&p.path("site/index.html"), "<h1>hi</h1>\n", 0o644);
    put(&p.path("site/js/app.js"), "run()\n", 0o755);
    put(&p.path("site/js/deep/x.bin"), &"x".repeat(300_000), 0o600);
    // The "remote" side is this machine's sshd: its paths are seen here too.
    let remote = p.path("remote");
    let dag = p.dag(
        "copy",
        &format!(
            r#"type: chain
ssh:
  user: root
  host: 127.0.0.1
  port: {port}
  key: {key}
  known_host_file: {known}
steps:
  - id: up
    action: sftp.upload
    with: {{source: report.txt, destination: {remote}/a/b/report.txt}}
  - id: change
    action: file.write
    with: {{path: report.txt, content: "second version\n", overwrite: true, mode: "0640"}}
  - id: again
    action: sftp.upload
    with: {{source: report.txt, destination: {remote}/a/b/report.txt}}
  - id: tree
    action: sftp.upload
    with: {{source: site, destination: {remote}/site}}
  - id: back
    action: sftp.download
    with: {{source: {remote}/site, destination: copy/site}}
  - id: one
    type: sftp
    config: {{direction: download, source: {remote}/a/b/report.txt, destination: got/report.txt}}
"#,
            port = sshd.port,
            key = sshd.file("user_key"),
            known = sshd.file("known_hosts"),
            remote = remote.display(),
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let uploaded = remote.join("a/b/report.txt");
    assert_eq!(
        std::fs::read_to_string(&uploaded).expect("uploaded"),
        "second version\n",
        "the second upload replaced the first"
    );
    assert_eq!(mode(&uploaded), 0o640);
    let leftovers: Vec<_> = std::fs::read_dir(remote.join("a/b"))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary file is left: {leftovers:?}"
    );
    for (path, bits) in [
        ("site/index.html", 0o644),
        ("site/js/app.js", 0o755),
        ("site/js/deep/x.bin", 0o600),
    ] {
        let original = std::fs::read(p.path(path)).expect("original");
        for copy in [remote.join(path), p.path(&format!("copy/{path}"))] {
            assert_eq!(
                std::fs::read(&copy).expect("copy"),
                original,
                "{}",
                copy.display()
            );
            assert_eq!(mode(&copy), bits, "{}", copy.display());
        }
    }
    assert_eq!(
        std::fs::read_to_string(p.path("got/report.txt")).expect("download"),
        "second version\n"
    );
    let report: serde_json::Value =
        serde_json::from_str(p.logs("copy", "tree").trim()).expect("json");
    assert_eq!(report["direction"], "upload");
    assert_eq!(report["files"], 3);
    assert_eq!(report["directories"], 3);
    assert_eq!(report["bytes"], 300_000 + 12 + 6);

    // What is missing fails the step, saying what.
    let bad = p.dag(
        "bad",
        &format!(
            r#"type: graph
ssh: {{user: root, host: 127.0.0.1, port: {port}, key: {key}, known_host_file: {known}}}
steps:
  - id: nolocal
    action: sftp.upload
    with: {{source: no-such-file, destination: {remote}/x}}
  - id: noremote
    action: sftp.download
    with: {{source: {remote}/no-such-file, destination: x}}
  - id: nowhere
    action: sftp.upload
    with: {{source: report.txt}}
"#,
            port = sshd.port,
            key = sshd.file("user_key"),
            known = sshd.file("known_hosts"),
            remote = remote.display(),
        ),
    );
    assert_ne!(p.run(&bad, &[]).code, Some(0));
    let status = p.status("bad");
    assert!(
        step_error(&status, "nolocal").contains("failed to stat source"),
        "{status}"
    );
    assert!(
        step_error(&status, "noremote").contains("failed to stat remote"),
        "{status}"
    );
    assert!(
        step_error(&status, "nowhere").contains("destination path is required for sftp step"),
        "{status}"
    );
    p.assert_refused(
        "steps:\n  - action: sftp.upload\n    with: {host: h, source: a, destination: b, direction: download}\n",
        "direction must be \"upload\"",
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The JSON line an archive step printed.
fn archive_report(p: &Place, dag: &str, step: &str) -> serde_json::Value {
    let text = p.logs(dag, step);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{step}: {e}: {text}"))
}

// X09: `archive` steps make, list and unpack zip, tar and tar.gz archives that the system's
// own tools read and write; an entry that would leave the destination fails the step before
// anything is written; an existing file is kept unless `overwrite`.
#[test]
fn archive_steps_make_list_and_unpack_archives_the_system_tools_read() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("build/output/sub")).expect("dirs");
    std::fs::write(p.path("build/output/a.txt"), "hello\n").expect("file");
    std::fs::write(p.path("build/output/sub/b.csv"), "1,2\n").expect("file");
    std::fs::write(p.path("build/output/run.sh"), "#!/bin/sh\necho ran\n").expect("file");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        p.path("build/output/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let dag = p.dag(
        "pack",
        "steps:\n  - name: targz\n    type: archive\n    config: {source: ./build/output, destination: ./dist/release.tar.gz}\n    command: create\n    output: MADE\n  - name: zip\n    executor:\n      type: archive\n      config: {source: build/output, destination: dist/release.zip, exclude: ['*.sh'], compressionLevel: 9, verifyIntegrity: true}\n    command: create\n  - name: ls\n    type: archive\n    config: {source: dist/release.tar.gz, include: ['**/*.csv']}\n    command: list\n  - name: unpack\n    type: archive\n    config: {source: dist/release.tar.gz, destination: staging, stripComponents: 1}\n    command: extract\n  - name: flat\n    type: archive\n    config: {source: dist/release.zip, destination: flat, preservePaths: false}\n    command: extract\n  - name: use\n    command: ./staging/run.sh; echo \"files=${MADE.filesAdded}\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let made = archive_report(&p, "pack", "targz");
    assert_eq!(made["operation"], "create");
    assert_eq!(made["filesAdded"], 3, "{made}");
    assert_eq!(made["bytesArchived"], 6 + 4 + 19, "{made}");
    let listed = archive_report(&p, "pack", "ls");
    assert_eq!(listed["totalFiles"], 1, "{listed}");
    assert_eq!(listed["files"][0]["path"], "output/sub/b.csv");
    assert_eq!(listed["files"][0]["size"], 4);
    assert_eq!(listed["files"][0]["mode"], "-rw-r--r--");
    assert_eq!(listed["files"][0]["isDir"], false);
    let unpacked = archive_report(&p, "pack", "unpack");
    assert_eq!(unpacked["filesExtracted"], 3, "{unpacked}");
    assert_eq!(
        std::fs::read_to_string(p.path("staging/sub/b.csv")).expect("extracted"),
        "1,2\n"
    );
    assert_eq!(
        p.logs("pack", "use"),
        "ran\nfiles=3\n",
        "the mode came along"
    );
    assert_eq!(archive_report(&p, "pack", "zip")["verifyPerformed"], true);
    assert!(p.path("flat/a.txt").is_file() && p.path("flat/b.csv").is_file());
    assert!(!p.path("flat/run.sh").exists(), "excluded from the zip");

    // The system's tar reads what wharf made, and wharf reads what the system's tar made.
    let tar = Command::new("tar")
        .args(["-tzf"])
        .arg(p.path("dist/release.tar.gz"))
        .output()
        .expect("tar");
    let names = String::from_utf8_lossy(&tar.stdout);
    assert!(
        names.contains("output/sub/b.csv") && names.contains("output/run.sh"),
        "{names}"
    );
    let zip = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None; print(sorted(z.namelist()))",
        ])
        .arg(p.path("dist/release.zip"))
        .output()
        .expect("python3");
    assert!(
        zip.status.success(),
        "{}",
        String::from_utf8_lossy(&zip.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&zip.stdout).trim(),
        "['output/', 'output/a.txt', 'output/sub/', 'output/sub/b.csv']"
    );
    let made_by_tar = Command::new("tar")
        .args(["-czf", "theirs.tgz", "build"])
        .current_dir(p.path(""))
        .status()
        .expect("tar");
    assert!(made_by_tar.success());
    let dag = p.dag(
        "theirs",
        "steps:\n  - name: x\n    type: archive\n    config: {source: theirs.tgz, destination: out, include: ['**/a.txt']}\n    command: extract\n",
    );
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    assert_eq!(
        std::fs::read_to_string(p.path("out/build/output/a.txt")).expect("extracted"),
        "hello\n"
    );
    assert_eq!(archive_report(&p, "theirs", "x")["filesSkipped"], 2);

    // Extracting again over the same files fails unless `overwrite`.
    let again = |overwrite: bool| {
        p.dag(
            "again",
            &format!("steps:\n  - name: x\n    type: archive\n    config: {{source: theirs.tgz, destination: out, overwrite: {overwrite}}}\n    command: extract\n"),
        )
    };
    let out = p.run(&again(false), &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(step_error(&p.status("again"), "x").contains("exists (overwrite disabled)"));
    assert_eq!(p.run(&again(true), &[]).code, Some(0));

    // An entry that leaves the destination: the step fails, nothing is written.
    let evil = Command::new("python3")
        .args([
            "-c",
            "import io, tarfile; t = tarfile.open('evil.tar', 'w'); i = tarfile.TarInfo('ok.txt'); i.size = 1; t.addfile(i, io.BytesIO(b'x')); i = tarfile.TarInfo('../escape.txt'); i.size = 1; t.addfile(i, io.BytesIO(b'x')); t.close()",
        ])
        .current_dir(p.path(""))
        .status()
        .expect("python3");
    assert!(evil.success());
    let dag = p.dag(
        "evil",
        "steps:\n  - name: x\n    type: archive\n    config: {source: evil.tar, destination: safe/inner}\n    command: extract\n",
    );
    assert_eq!(p.run(&dag, &[]).code, Some(1));
    assert!(step_error(&p.status("evil"), "x").contains("escapes destination"));
    assert!(!p.path("safe/escape.txt").exists() && !p.path("safe/inner/ok.txt").exists());

    // Dagu 2.x's actions, a dry run that writes nothing, and the errors at run time.
    let dag = p.dag(
        "v2",
        "type: graph\nsteps:\n  - id: dry\n    action: archive.create\n    with: {source: build, destination: never.zip, dry_run: true}\n  - id: nosource\n    action: archive.list\n    with: {source: nothing.zip}\n  - id: noformat\n    action: archive.create\n    with: {source: build, destination: out.bin}\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(archive_report(&p, "v2", "dry")["filesAdded"], 3);
    assert!(!p.path("never.zip").exists());
    let status = p.status("v2");
    assert!(
        step_error(&status, "nosource").contains("source not found"),
        "{status}"
    );
    assert!(
        step_error(&status, "noformat").contains("could not infer format"),
        "{status}"
    );
    assert!(!p.path("out.bin").exists() && !p.path(".out.bin.partial").exists());

    // What cannot run is refused before anything runs.
    p.assert_refused(
        "steps:\n  - type: archive\n    config: {source: a.7z, format: 7z}\n    command: extract\n",
        "wharf has no archive format `7z`",
    );
    p.assert_refused(
        "steps:\n  - type: archive\n    config: {source: a.zip, password: x}\n    command: extract\n",
        "`password` is not supported by wharf",
    );
    p.assert_refused(
        "steps:\n  - type: archive\n    config: {source: a.zip}\n    command: unpack\n",
        "`command` is `create`, `extract` or `list`",
    );
}

/// An OTLP receiver (opentelemetry-proto's definitions over grpcio and over HTTP, from
/// PyPI) on loopback ports, writing each export it receives as a JSON line.
struct Collector {
    child: Child,
    grpc: u16,
    http: u16,
    out: PathBuf,
}

impl Collector {
    fn start(p: &Place) -> Self {
        let out = p.path("traces.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/otlp_collector.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with grpcio and opentelemetry-proto (scripts/test installs them)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the collector's ports");
        let ports: Vec<u16> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(ports.len(), 2, "the collector did not start: {line:?}");
        Self {
            child,
            grpc: ports[0],
            http: ports[1],
            out,
        }
    }

    /// The exports received, in order.
    fn exports(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name` → the attribute's value (as OTLP's JSON writes it) of an OTLP attribute list.
fn attributes(list: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let v = &a["value"];
            let text = v["stringValue"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| v["intValue"].as_str().map(str::to_owned))
                .unwrap_or_else(|| v.to_string());
            (a["key"].as_str().unwrap_or_default().to_owned(), text)
        })
        .collect()
}

// G38: `otel` sends the run's trace to a real OTLP receiver, over gRPC and over HTTP: a
// span `DAG: NAME` for the run, `Step: NAME` for each step under it, a sub-DAG's run
// under the step that called it, all in one trace; headers and resource attributes with
// the run's variables; a receiver that cannot be reached is told, and the run's status
// stays what it was.
#[test]
fn otel_traces_reach_a_real_collector_over_grpc_and_http() {
    let p = Place::new();
    let collector = Collector::start(&p);
    let dag = |endpoint: String| {
        format!(
            "otel:\n  enabled: true\n  endpoint: \"{endpoint}\"\n  insecure: true\n  timeout: 10s\n  headers:\n    Authorization: \"Bearer ${{TOKEN}}\"\n  resource:\n    service.version: \"1.0.0\"\n    team: ${{TEAM}}\nenv:\n  - TOKEN: t0ken\n  - TEAM: data\nsteps:\n  - name: first\n    command: echo one\n  - name: child\n    call: sub\n  - name: boom\n    command: exit 3\n    continueOn: {{failure: true}}\n---\nname: sub\nsteps:\n  - name: inner\n    command: echo two\n"
        )
    };
    let grpc = p.dag("traced", &dag(format!("127.0.0.1:{}", collector.grpc)));
    let out = p.run(&grpc, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let http = p.dag(
        "traced_http",
        &dag(format!("http://127.0.0.1:{}/v1/traces", collector.http)),
    );
    let out = p.run(&http, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let exports = collector.exports();
    assert_eq!(exports.len(), 2, "{exports:?}");
    for (export, (via, name)) in exports
        .iter()
        .zip([("grpc", "traced"), ("http", "traced_http")])
    {
        assert_eq!(export["via"], via, "{export}");
        assert_eq!(
            export["headers"]["authorization"], "Bearer t0ken",
            "{export}"
        );
        let rs = &export["request"]["resourceSpans"][0];
        let resource = attributes(&rs["resource"]["attributes"]);
        assert_eq!(resource["service.name"], format!("dagu-{name}"));
        assert_eq!(resource["service.version"], "1.0.0");
        assert_eq!(resource["team"], "data");
        let spans = rs["scopeSpans"][0]["spans"].as_array().expect("spans");
        let by_name = |n: &str| {
            spans
                .iter()
                .find(|s| s["name"] == n)
                .unwrap_or_else(|| panic!("no span {n}: {spans:?}"))
        };
        let root = by_name(&format!("DAG: {name}"));
        assert!(root.get("parentSpanId").is_none(), "{root}");
        let run = p.status(name);
        let root_attrs = attributes(&root["attributes"]);
        assert_eq!(root_attrs["dag.name"], name);
        assert_eq!(
            root_attrs["dag.run_id"],
            run["runId"].as_str().unwrap_or_default()
        );
        assert_eq!(root_attrs["dag.status"], "partially_succeeded");
        for step in ["first", "child", "boom"] {
            let s = by_name(&format!("Step: {step}"));
            assert_eq!(s["parentSpanId"], root["spanId"], "{s}");
            assert_eq!(s["traceId"], root["traceId"], "{s}");
            assert_eq!(attributes(&s["attributes"])["step.name"], step);
            let (start, end) = (
                s["startTimeUnixNano"]
                    .as_str()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0),
                s["endTimeUnixNano"]
                    .as_str()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0),
            );
            assert!(start > 0 && end >= start, "{s}");
        }
        let boom = by_name("Step: boom");
        assert_eq!(attributes(&boom["attributes"])["step.exit_code"], "3");
        assert_eq!(boom["status"]["code"], "STATUS_CODE_ERROR", "{boom}");
        let sub = by_name("DAG: sub");
        assert_eq!(
            sub["parentSpanId"],
            by_name("Step: child")["spanId"],
            "{sub}"
        );
        assert_eq!(sub["traceId"], root["traceId"]);
        assert_eq!(attributes(&sub["attributes"])["dag.parent_name"], name);
        let inner = by_name("Step: inner");
        assert_eq!(inner["parentSpanId"], sub["spanId"], "{inner}");
        assert_eq!(spans.len(), 6, "{spans:?}");
    }

    // Nobody listening: the run is what its steps made it, and says why no trace went.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = p.dag(
        "down",
        &format!("otel:\n  enabled: true\n  endpoint: 127.0.0.1:{closed}\n  insecure: true\nsteps:\n  - name: a\n    command: \"true\"\n"),
    );
    let out = p.run(&down, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("otel: the run's trace could not be sent"),
        "{}",
        out.stderr
    );
    assert_eq!(p.status("down")["status"], "succeeded");
    assert_eq!(collector.exports().len(), 2);
    // Nor is anything sent when `enabled` is not true.
    let off = p.dag(
        "off",
        &format!("otel:\n  endpoint: 127.0.0.1:{}\n  insecure: true\nsteps:\n  - name: a\n    command: \"true\"\n", collector.grpc),
    );
    let out = p.run(&off, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(collector.exports().len(), 2);

    p.assert_refused(
        "otel:\n  enabled: true\nsteps:\n  - name: a\n    command: \"true\"\n",
        "`otel` is enabled without an `endpoint`",
    );
    p.assert_refused(
        "otel:\n  enabled: true\n  endpoint: http://localhost:4318/traces\nsteps:\n  - name: a\n    command: \"true\"\n",
        "ending in `/v1/traces`",
    );
}
