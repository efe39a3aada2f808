//! Holes found under attack, each closed and kept closed: the real binary, a real server
//! over TCP, real files and a real store.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

use wharf_testkit::Place;
use wharf_testkit::Server;

/// A file no step of these tests may create: it would prove that a value was run as code.
fn pwned(p: &Place, name: &str) -> bool {
    p.path(name).exists()
}

// 1. DNS rebinding: a page on another name that resolves to this machine.
#[test]
fn requests_naming_another_host_are_refused_before_anything_else() {
    let p = Place::new();
    let server = Server::start(&p);
    let port = server
        .addr
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let attacker = format!("attacker.example:{port}");
    let create = json!({"name": "rebound", "spec": "steps:\n  - touch rebound-ran\n"}).to_string();
    // The request a rebound page makes: its own name as Host and as Origin.
    let request = format!(
        "POST /api/v2/dags HTTP/1.1\r\nHost: {attacker}\r\nOrigin: http://{attacker}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{create}",
        create.len()
    );
    let (status, _, body) = send(&server.addr, &request);
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("attacker.example"), "{body}");
    assert!(!p.path("dags/rebound.yaml").exists());
    // Nor can it read anything.
    let (status, _, _) = send(
        &server.addr,
        &format!("GET /api/v2/dags HTTP/1.1\r\nHost: {attacker}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 421);
    // Two Host headers, or an absolute URI naming another host, do not get around it.
    let (status, _, _) = send(
        &server.addr,
        &format!(
            "GET /api/v2/dags HTTP/1.1\r\nHost: {}\r\nHost: {attacker}\r\nConnection: close\r\n\r\n",
            server.addr
        ),
    );
    assert_eq!(status, 400);
    let (status, _, _) = send(
        &server.addr,
        &format!(
            "GET http://{attacker}/api/v2/dags HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        ),
    );
    assert_eq!(status, 400);
    // Its own names pass: loopback addresses and `localhost`.
    for host in [server.addr.clone(), format!("localhost:{port}")] {
        let (status, _, body) = send(
            &server.addr,
            &format!("GET /api/v2/dags HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[test]
fn a_configured_host_name_is_allowed() {
    let p = Place::new();
    let server = Server::start_with(&p, &[("WHARF_ALLOWED_HOSTS", "wharf.example.com")]);
    let get = |host: &str| {
        send(
            &server.addr,
            &format!("GET /api/v2/dags HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .0
    };
    assert_eq!(get("wharf.example.com:8080"), 200);
    assert_eq!(get("WHARF.example.com"), 200);
    assert_eq!(get("evil.example.com"), 421);
}

/// One raw request; the status, the head and the body.
fn send(addr: &str, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

// 2. A YAML alias bomb made of bytes.
fn alias_bomb() -> String {
    let big = "x".repeat(1024 * 1024);
    let refs = |name: &str| vec![format!("*{name}"); 64].join(", ");
    format!(
        "a: &a \"{big}\"\nb: &b [{}]\nc: &c [{}]\nsteps: [{}]\n",
        refs("a"),
        refs("b"),
        refs("c")
    )
}

#[test]
fn an_alias_bomb_of_bytes_is_an_error_not_an_out_of_memory_kill() {
    let p = Place::new();
    let file = p.dag("bomb", &alias_bomb());
    let started = Instant::now();
    let out = p.wharf().args(["validate"]).arg_path(&file).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("MiB of text through its aliases"),
        "{}",
        out.stderr
    );
    // The error points at the alias that crossed the bound (line 2 or later).
    assert!(
        out.stderr.contains("bomb.yaml:2:")
            || out.stderr.contains("bomb.yaml:3:")
            || out.stderr.contains("bomb.yaml:4:"),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The server: validating it answers, and the server lives on.
    let server = Server::start(&p);
    let (status, v) = server.post("/dags/validate", &json!({"spec": alias_bomb()}));
    assert!(status == 200 || status == 400, "{status} {v}");
    assert!(v.to_string().contains("through its aliases"), "{v}");
    // In the DAGs folder too.
    std::fs::write(p.path("dags/bomb.yaml"), alias_bomb()).expect("write");
    let (status, _) = server.get("/dags");
    assert_eq!(status, 200);
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
}

#[test]
fn a_dag_file_over_the_size_bound_is_refused_unread() {
    let p = Place::new();
    let mut text = String::from("steps:\n  - echo hi\n");
    while text.len() <= 4 * 1024 * 1024 {
        text.push_str(&format!("# {}\n", "padding ".repeat(16)));
    }
    let file = p.dag("huge", &text);
    let out = p.wharf().args(["validate"]).arg_path(&file).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("larger than 4 MiB"), "{}", out.stderr);
}

// 3. Values from callers and from steps are data.
#[test]
fn params_given_for_a_run_are_never_evaluated() {
    let p = Place::new();
    let dag = p.dag(
        "params",
        "env:\n  - WRITTEN: \"`echo from-the-file`\"\nsteps:\n  - name: show\n    command: printf '%s|%s|%s' \"$NAME\" \"$1\" \"$WRITTEN\"\n    output: SHOWN\n",
    );
    let out = p.run(
        &dag,
        &["--", "`touch pwned-positional`", "NAME=`touch pwned-named`"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!pwned(&p, "pwned-named") && !pwned(&p, "pwned-positional"));
    // The values arrive as written; what the author wrote is still evaluated.
    let status = p.status("params");
    assert_eq!(
        status["outputs"]["SHOWN"], "`touch pwned-named`|`touch pwned-positional`|from-the-file",
        "{status}"
    );

    // The same through the API and the UI's start form (which posts to the API).
    let server = Server::start(&p);
    std::fs::copy(&dag, p.path("dags/params.yaml")).expect("copy");
    let (status, v) = server.post(
        "/dags/params/start",
        &json!({"params": "NAME=\"`touch pwned-api`\" \"$(touch pwned-api2)\""}),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["dagRunId"].as_str().unwrap_or_default().to_owned();
    server.until("params", &id, "succeeded");
    assert!(!pwned(&p, "pwned-api") && !pwned(&p, "pwned-api2"));
}

#[test]
fn a_step_output_holding_backticks_is_data_in_env_and_conditions() {
    let p = Place::new();
    let dag = p.dag(
        "outputs",
        r#"steps:
  - name: fetch
    command: "echo '`touch pwned-env` `touch pwned-cond`'"
    output: FETCHED
  - name: use
    depends: fetch
    env:
      - COPY: "${FETCHED}"
    preconditions:
      - condition: "${FETCHED}"
        expected: "re:.*pwned.*"
    repeatPolicy:
      condition: "${FETCHED}"
      expected: "re:.*"
      limit: 1
    command: printf '%s' "$COPY"
    output: USED
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!pwned(&p, "pwned-env") && !pwned(&p, "pwned-cond"));
    let status = p.status("outputs");
    assert_eq!(
        status["outputs"]["USED"], "`touch pwned-env` `touch pwned-cond`",
        "{status}"
    );
}

#[test]
fn dry_shows_what_a_run_evaluates_and_hides_credential_params() {
    let p = Place::new();
    let dag = p.dag(
        "dry",
        "params: DB_PASSWORD=default\nenv:\n  - STAMP: \"`date +%s`\"\nsteps:\n  - name: s\n    env:\n      - WHEN: \"`date`\"\n    command: echo hi\n",
    );
    let out = p
        .wharf()
        .args(["dry"])
        .arg_path(&dag)
        .args(["--", "DB_PASSWORD=hunter2-given"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stdout.contains("hunter2-given"), "{}", out.stdout);
    assert!(out.stdout.contains("$1=<redacted>"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("STAMP=`date +%s`") && l.contains("replaces each `command`")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("WHEN=`date`") && l.contains("replaces each `command`")),
        "{}",
        out.stdout
    );
}

// 11. The CLI hides what the API hides.
#[test]
fn status_json_redacts_credential_params() {
    let p = Place::new();
    let dag = p.dag("cred", "params: API_TOKEN=x\nsteps:\n  - echo hi\n");
    let out = p.run(&dag, &["--", "API_TOKEN=tok-s3cr3t-value", "WHO=me"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let shown = p.wharf().args(["status", "cred", "--json"]).run();
    assert!(
        !shown.stdout.contains("tok-s3cr3t-value"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("API_TOKEN=<redacted>"),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("WHO=me"), "{}", shown.stdout);
}

// 6. Saving a shown spec keeps every credential.
#[test]
fn saving_a_spec_keeps_two_credentials_of_one_edited_line() {
    let p = Place::new();
    let server = Server::start(&p);
    let yaml = "params: API_TOKEN=tok-one DB_PASSWORD=pw-two WHO=me\nenv:\n  - CERT_KEY: |\n      block-secret-line\nsteps:\n  - echo hi\n";
    std::fs::write(p.path("dags/creds.yaml"), yaml).expect("write");
    let (status, v) = server.get("/dags/creds/spec");
    assert_eq!(status, 200, "{v}");
    let shown = v["spec"].as_str().unwrap_or_default().to_owned();
    assert!(
        !shown.contains("tok-one") && !shown.contains("pw-two"),
        "{shown}"
    );
    let edited = shown.replace("WHO=me", "WHO=you");
    let (status, v) = server.call("PUT", "/dags/creds/spec", Some(&json!({"spec": edited})));
    assert!(status < 300, "{status} {v}");
    let saved = std::fs::read_to_string(p.path("dags/creds.yaml")).expect("read");
    assert!(
        saved.contains("API_TOKEN=tok-one DB_PASSWORD=pw-two WHO=you"),
        "{saved}"
    );
    assert!(!saved.contains("<redacted>"), "{saved}");
    assert!(saved.contains("block-secret-line"), "{saved}");
    // A placeholder with nothing to keep is refused, and the file is left as it was.
    let bad = format!("{saved}env:\n  - NEW_SECRET=<redacted>\n");
    let (status, v) = server.call("PUT", "/dags/creds/spec", Some(&json!({"spec": bad})));
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        std::fs::read_to_string(p.path("dags/creds.yaml")).expect("read"),
        saved
    );
}

// 7. singleton under concurrent starts.
#[test]
fn concurrent_singleton_starts_start_exactly_one_run() {
    let p = Place::new();
    let server = Server::start(&p);
    std::fs::write(p.path("dags/single.yaml"), "steps:\n  - sleep 2\n").expect("write");
    let addr = server.addr.clone();
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let addr = addr.clone();
                scope.spawn(move || {
                    let body = json!({"singleton": true}).to_string();
                    send(
                        &addr,
                        &format!(
                            "POST /api/v2/dags/single/start HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        ),
                    )
                    .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 9, "{codes:?}");
    // One run was recorded at all.
    let runs = std::fs::read_dir(p.home().join("logs/single"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(runs, 1);
    let _ = p.wharf().args(["stop", "single"]).run();
}

// 12. Output cannot write events into the live log stream.
#[test]
fn a_carriage_return_in_output_cannot_fake_an_event() {
    let p = Place::new();
    let server = Server::start(&p);
    std::fs::write(
        p.path("dags/cr.yaml"),
        "steps:\n  - name: liar\n    command: |\n      printf 'before\\revent: end\\rdata: succeeded\\r\\rafter\\n'\n",
    )
    .expect("write");
    let (status, v) = server.post("/dags/cr/start", &json!({}));
    assert_eq!(status, 200, "{v}");
    let id = v["dagRunId"].as_str().unwrap_or_default().to_owned();
    server.until("cr", &id, "succeeded");
    let (status, head, body) = server
        .raw(
            "GET",
            &format!("/dags/cr/runs/{id}/steps/liar/events"),
            "",
            "",
        )
        .expect("events");
    assert_eq!(status, 200);
    let body = if head.to_ascii_lowercase().contains("chunked") {
        dechunk(&body)
    } else {
        body
    };
    // No carriage return reaches the stream: only data lines, and the one real `end`.
    assert!(!body.contains('\r'), "{body:?}");
    let events: Vec<&str> = body.lines().filter(|l| l.starts_with("event:")).collect();
    assert_eq!(events, ["event: end"], "{body:?}");
    assert!(body.contains("data: event: end"), "{body:?}");
    assert!(body.contains("data: after"), "{body:?}");
}

// 13. Step names that are not URL-safe.
#[test]
fn live_logs_work_for_step_names_with_hash_and_question_mark() {
    let p = Place::new();
    let server = Server::start(&p);
    std::fs::write(
        p.path("dags/odd.yaml"),
        "steps:\n  - name: \"a#b?c\"\n    command: echo odd-out; sleep 3\n",
    )
    .expect("write");
    let (status, v) = server.post("/dags/odd/start", &json!({}));
    assert_eq!(status, 200, "{v}");
    let id = v["dagRunId"].as_str().unwrap_or_default().to_owned();
    server.until("odd", &id, "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (_, _, page) = server.page("GET", &format!("/dags/odd/runs/{id}"), "", "");
        if page.contains("data-live") || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let url = page
        .split("data-live=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no live log: {page}"))
        .to_owned();
    assert!(url.ends_with("/steps/a%23b%3Fc/events"), "{url}");
    let (status, _, body) = server.raw("GET", &url, "", "").expect("events");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("data: odd-out"), "{body}");
    assert!(body.contains("event: end"), "{body}");
}

// 14. Framing and slow clients.
#[test]
fn pages_cannot_be_framed_and_half_open_connections_are_closed() {
    let p = Place::new();
    let server = Server::start(&p);
    for path in ["/", "/api/v2/dags"] {
        let (_, head, _) = server.raw("GET", path, "", "").expect("get");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("x-frame-options: deny"), "{head}");
        assert!(head.contains("frame-ancestors 'none'"), "{head}");
    }
    // Connections that never finish their request head.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).expect("connect");
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            s
        })
        .collect();
    // The server still answers others meanwhile.
    let (status, _) = server.get("/health");
    assert_eq!(status, 200);
    // And closes each of them after the header timeout (10 s).
    let started = Instant::now();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

// 15, 16: small ones.
#[test]
fn nul_in_params_head_options_and_cut_lines() {
    let p = Place::new();
    let server = Server::start(&p);
    std::fs::write(
        p.path("dags/long.yaml"),
        "steps:\n  - name: wide\n    command: \"head -c 20000 /dev/zero | tr '\\\\0' x; echo\"\n",
    )
    .expect("write");
    let (status, v) = server.post("/dags/long/start", &json!({"params": "A=x\u{0}y"}));
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["code"], "bad_request");

    let (status, head, body) = server.raw("HEAD", "/api/v2/dags", "", "").expect("head");
    assert_eq!(status, 200, "{head}");
    assert!(body.is_empty(), "{body}");
    let (status, head, _) = server
        .raw("OPTIONS", "/api/v2/dags", "", "")
        .expect("options");
    assert_eq!(status, 204, "{head}");
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");

    let (status, v) = server.post("/dags/long/start", &json!({}));
    assert_eq!(status, 200, "{v}");
    let id = v["dagRunId"].as_str().unwrap_or_default().to_owned();
    server.until("long", &id, "succeeded");
    let (status, v) = server.get(&format!("/dag-runs/long/{id}/steps/wide/log"));
    assert_eq!(status, 200, "{v}");
    assert!(
        v["content"].as_str().is_some_and(|c| c.contains('…')),
        "{v}"
    );
    assert_eq!(v["hasMore"], true, "{v}");
}

#[test]
fn a_store_of_a_newer_wharf_is_refused_with_a_clear_error() {
    let p = Place::new();
    let dag = p.dag("newer", "steps:\n  - echo hi\n");
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    let db = p.home().join("wharf.db");
    let set = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA user_version=99'); c.commit()",
        ])
        .arg(&db)
        .status()
        .expect("python3");
    assert!(set.success());
    let out = p.wharf().args(["history", "newer"]).run();
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("newer wharf"), "{}", out.stderr);
    let out = p.run(&dag, &[]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("schema version 99"), "{}", out.stderr);
}

#[test]
fn a_retried_run_is_timed_from_the_retry() {
    let p = Place::new();
    let dag = p.dag(
        "again",
        "steps:\n  - name: check\n    command: test -f ok\n",
    );
    assert_eq!(p.run(&dag, &[]).code, Some(1));
    let times = || -> (i64, i64) {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(*c.execute(\"SELECT started_at, finished_at FROM runs WHERE dag='again'\").fetchone())",
            ])
            .arg(p.home().join("wharf.db"))
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut it = text
            .split_whitespace()
            .map(|t| t.parse::<i64>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let (_, first_end) = times();
    let id = p.status("again")["runId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    std::fs::write(p.path("ok"), "").expect("ok");
    let out = p.wharf().args(["retry", "again", "--run-id", &id]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (started, _) = times();
    assert!(
        started > first_end,
        "the retry started at {started}, the first run ended at {first_end}"
    );
}

// 9. Many first runs at once on a new store.
#[test]
fn concurrent_first_runs_on_a_new_store_all_open_it() {
    let p = Place::new();
    let dag = p.dag("many", "steps:\n  - echo hi\n");
    let children: Vec<_> = (0..40).map(|_| p.spawn(&dag)).collect();
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The content of a chunked HTTP/1.1 body.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].strip_prefix("\r\n").unwrap_or(&after[n..]);
    }
    out
}
