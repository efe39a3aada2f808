//! X14 (Dagu 2.x `sqlite` and `postgres` steps; `action: sqlite.query`, `sqlite.import`,
//! `postgres.query`, `postgres.import`): SQL against a real SQLite file and a real
//! PostgreSQL server (Debian's, started by the test on a loopback port as the `postgres`
//! user, with a password checked by SCRAM), through the real binary.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use wharf_testkit::{Place, step, step_error};

fn stderr_log(p: &Place, dag: &str, step: &str) -> String {
    let out = p
        .wharf()
        .args(["logs", dag, "--step", step, "--stderr"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
}

/// The last JSON line of a step's stderr: its metrics.
fn metrics(p: &Place, dag: &str, step: &str) -> serde_json::Value {
    let text = stderr_log(p, dag, step);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no metrics: {text}"))
}

#[test]
fn sqlite_steps_query_and_import_a_real_database_file() {
    let p = Place::new();
    std::fs::write(
        p.path("users.csv"),
        "id,name,team\n1,alpha,red\n2,\"beta, the second\",NULL\n3,gamma,blue\n",
    )
    .expect("csv");
    std::fs::write(
        p.path("more.jsonl"),
        "{\"id\": 1, \"name\": \"ignored\", \"team\": \"x\"}\n\n{\"id\": 4, \"name\": \"delta\", \"team\": null}\n",
    )
    .expect("jsonl");
    let dag = p.dag(
        "lite",
        r#"type: chain
env:
  - DB: file:./data/app.db
steps:
  - id: schema
    action: sqlite.query
    with:
      dsn: ${DB}
      query: |
        CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, team TEXT);
        -- a comment between statements; and a ; inside it
        CREATE INDEX users_team ON users(team);
  - id: load
    action: sqlite.import
    with:
      dsn: ${DB}
      import: {input_file: users.csv, table: users}
  - id: trial
    action: sqlite.import
    with:
      dsn: ${DB}
      import: {input_file: more.jsonl, table: users, dry_run: true}
  - id: more
    action: sqlite.import
    with:
      dsn: ${DB}
      import: {input_file: more.jsonl, table: users, on_conflict: ignore}
  - id: positional
    action: sqlite.query
    with:
      dsn: ${DB}
      query: "SELECT id, name FROM users WHERE id > ? AND team IS NOT ? ORDER BY id"
      params: [1, "nobody"]
  - id: named
    action: sqlite.query
    with:
      dsn: ${DB}
      query: "SELECT :n * 2 AS twice, :n AS again, :word AS word, 1.5 AS real, NULL AS empty"
      params: {n: 21, word: "it's"}
  - id: table
    action: sqlite.query
    with:
      dsn: ${DB}
      query: "SELECT id, name, team FROM users ORDER BY id"
      output_format: csv
      headers: true
      null_string: "-"
      max_rows: 3
  - id: array
    action: sqlite.query
    with:
      dsn: ${DB}
      query: "SELECT count(*) AS n FROM users"
      output_format: json
    output: COUNT
  - id: export
    action: sqlite.query
    with:
      dsn: ${DB}
      query: "SELECT name FROM users WHERE team = 'red'"
      streaming: true
      output_file: out/red.jsonl
  - id: use
    run: echo "count=${COUNT}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        p.path("data/app.db").is_file(),
        "the database file is the DSN's, relative to the DAG"
    );

    assert_eq!(
        metrics(&p, "lite", "load"),
        serde_json::json!({"status": "completed", "table": "users", "rows_read": 3,
            "rows_imported": 3, "rows_skipped": 0, "dry_run": false,
            "duration_ms": metrics(&p, "lite", "load")["duration_ms"]})
    );
    assert_eq!(metrics(&p, "lite", "trial")["rows_imported"], 2);
    let more = metrics(&p, "lite", "more");
    assert_eq!(
        (more["rows_read"].as_u64(), more["rows_imported"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        p.logs("lite", "positional"),
        "{\"id\":2,\"name\":\"beta, the second\"}\n{\"id\":3,\"name\":\"gamma\"}\n{\"id\":4,\"name\":\"delta\"}\n"
    );
    assert_eq!(
        p.logs("lite", "named"),
        "{\"twice\":42,\"again\":21,\"word\":\"it's\",\"real\":1.5,\"empty\":null}\n"
    );
    // The dry run wrote nothing, `ignore` kept row 1 as it was, NULLs read as NULL.
    assert_eq!(
        p.logs("lite", "table"),
        "id,name,team\n1,alpha,red\n2,\"beta, the second\",-\n3,gamma,blue\n"
    );
    assert_eq!(p.logs("lite", "array"), "[{\"n\":4}]\n");
    assert_eq!(p.logs("lite", "use"), "count=[{\"n\":4}]\n");
    assert_eq!(p.logs("lite", "export"), "", "the rows went to the file");
    assert_eq!(
        std::fs::read_to_string(p.path("out/red.jsonl")).expect("export"),
        "{\"name\":\"alpha\"}\n"
    );
    let named = metrics(&p, "lite", "named");
    assert_eq!(
        (named["status"].as_str(), named["rows_returned"].as_u64()),
        (Some("completed"), Some(1))
    );

    // A second run of another DAG sees the file's data.
    let again = p.dag(
        "again",
        "steps:\n  - type: sqlite\n    config:\n      dsn: data/app.db\n      transaction: true\n    command: SELECT max(id) AS top FROM users\n",
    );
    let out = p.run(&again, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("again", "cmd_1"), "{\"top\":4}\n");

    // What fails, fails the step with SQLite's own words: a table of another step's
    // `:memory:` database, a statement of a transaction (the first is rolled back), a
    // missing DSN, a bad import row, a parameter `params` does not give.
    let bad = p.dag(
        "bad",
        r#"type: graph
steps:
  - id: made
    action: sqlite.query
    with: {dsn: ":memory:", shared_memory: true, query: "CREATE TABLE t(x)"}
  - id: gone
    depends: made
    action: sqlite.query
    with: {dsn: ":memory:", shared_memory: true, query: "SELECT * FROM t"}
  - id: atomic
    action: sqlite.query
    with:
      dsn: file:./data/app.db
      transaction: true
      query: "DELETE FROM users; INSERT INTO nowhere VALUES (1)"
  - id: nodsn
    action: sqlite.query
    with: {query: "SELECT 1"}
  - id: short
    action: sqlite.import
    with: {dsn: ":memory:", import: {input_file: short.csv, table: t}}
  - id: unnamed
    action: sqlite.query
    with: {dsn: ":memory:", query: "SELECT :missing", params: {other: 1}}
"#,
    );
    std::fs::write(p.path("short.csv"), "a,b\n1\n").expect("short");
    let out = p.run(&bad, &[]);
    assert_ne!(out.code, Some(0));
    let status = p.status("bad");
    assert!(
        step_error(&status, "gone").contains("no such table: t"),
        "{status}"
    );
    assert!(out.stderr.contains("no such table: t"), "{}", out.stderr);
    assert!(
        step_error(&status, "atomic").contains("no such table: nowhere"),
        "{status}"
    );
    assert!(
        step_error(&status, "nodsn").contains("dsn is required"),
        "{status}"
    );
    assert!(
        step_error(&status, "short").contains("short.csv` line 2 has 1 fields"),
        "{status}"
    );
    assert!(
        step_error(&status, "unnamed").contains(":missing"),
        "{status}"
    );
    assert_eq!(metrics(&p, "bad", "gone")["status"], "failed");
    let out = p.run(&again, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("again", "cmd_1"),
        "{\"top\":4}\n",
        "the failed transaction deleted nothing"
    );

    // A statement past its `timeout` is interrupted.
    let slow = p.dag(
        "slow",
        "steps:\n  - type: sqlite\n    config: {dsn: ':memory:', timeout: 1}\n    command: WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c\n",
    );
    let started = Instant::now();
    let out = p.run(&slow, &[]);
    assert_ne!(out.code, Some(0));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        step_error(&p.status("slow"), "cmd_1").contains("within its timeout (1 s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn sql_steps_are_checked_before_they_run() {
    let p = Place::new();
    p.assert_refused(
        "steps:\n  - action: sqlite.query\n    with: {dsn: ':memory:'}\n",
        "with.query is required",
    );
    p.assert_refused(
        "steps:\n  - action: postgres.import\n    with: {dsn: 'postgres://h/db'}\n",
        "with.import is required",
    );
    p.assert_refused(
        "steps:\n  - action: sqlite.query\n    with: {dsn: ':memory:', query: SELECT 1, output_format: xml}\n",
        "`output_format` must be one of: jsonl, json, csv",
    );
    p.assert_refused(
        "steps:\n  - action: sqlite.import\n    with:\n      dsn: ':memory:'\n      import: {input_file: a.csv, table: t, on_conflict: merge}\n",
        "`on_conflict` must be one of: error, ignore, replace",
    );
    p.assert_refused(
        "steps:\n  - type: sqlite\n    config: {dsn: ':memory:', outputFormat: csv}\n",
        "needs the SQL to run",
    );
    p.assert_refused(
        "steps:\n  - action: sqlite.query\n    with: {dsn: ':memory:', query: SELECT 1, timout: 3}\n",
        "did you mean `timeout`?",
    );
    // A missing DSN is told before the run, and fails the step when it runs.
    let dag = p.dag(
        "nodsn",
        "steps:\n  - action: sqlite.query\n    with: {query: SELECT 1, advisory_lock: x}\n",
    );
    let out = p.wharf().args(["validate"]).args([&dag]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("dsn is required"), "{}", out.stderr);
    assert!(out.stderr.contains("SQLite has none"), "{}", out.stderr);

    // A 1.x file's SQL steps in 2.x words: the SQL as `with.query`, an import as its own
    // action, the config's keys in snake_case and the params' names as written.
    let one = p.dag(
        "one",
        "maxActiveSteps: 2\nsteps:\n  - name: q\n    type: sqlite\n    config: {dsn: ':memory:', outputFormat: csv, params: {someName: 1}}\n    command: SELECT :someName AS v\n  - name: i\n    type: postgres\n    config:\n      dsn: postgres://h/db\n      import: {inputFile: a.csv, table: t, onConflict: ignore}\n",
    );
    let out = p.wharf().args(["dry", "--dialect", "2"]).args([&one]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for said in [
        "action: sqlite.query",
        "output_format: csv",
        "someName: 1",
        "query: SELECT :someName AS v",
        "action: postgres.import",
        "input_file: a.csv",
        "on_conflict: ignore",
    ] {
        assert!(out.stdout.contains(said), "{said}: {}", out.stdout);
    }
}

/// Debian's PostgreSQL, run by the test as the `postgres` user on a loopback port, with
/// the user `wharf` whose password is checked by SCRAM.
struct Postgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

const PG_PASSWORD: &str = "s3cret-Pg-pass";

impl Postgres {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `tls_only`, the server takes connections over TLS alone (`hostssl`), with a
    /// certificate for 127.0.0.1 signed by the CA in `ca.pem` (beside `other-ca.pem`, a CA
    /// that signed nothing of it).
    fn start_with(tls_only: bool) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL (scripts/test installs it)")
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .expect("initdb");
        let dir = tempfile::Builder::new()
            .prefix("wharf-pg-")
            .tempdir_in("/tmp")
            .expect("tmp")
            .keep();
        let as_postgres = |args: &[&str]| {
            let out = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .args(args)
                .output()
                .expect("runuser");
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        std::fs::write(dir.join("pw"), PG_PASSWORD).expect("pw");
        let chown = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(chown.success());
        let data = dir.join("data");
        let initdb = bin.join("initdb");
        as_postgres(&[
            initdb.to_str().expect("path"),
            "-D",
            data.to_str().expect("path"),
            "-U",
            "wharf",
            "--auth=scram-sha-256",
            "--pwfile",
            dir.join("pw").to_str().expect("path"),
        ]);
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let mut options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off",
            dir.display()
        );
        if tls_only {
            certificates(&dir);
            let chown = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(chown.success());
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            )
            .expect("hba");
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={d}/server.pem -c ssl_key_file={d}/server-key.pem",
                d = dir.display()
            ));
        }
        let pg_ctl = bin.join("pg_ctl");
        as_postgres(&[
            pg_ctl.to_str().expect("path"),
            "-D",
            data.to_str().expect("path"),
            "-o",
            &options,
            "-l",
            dir.join("log").to_str().expect("path"),
            "-w",
            "start",
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { dir, port, bin }
    }

    /// `psql`'s answer to one query, as the server's own tool reads the data.
    fn psql(&self, query: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "wharf",
                "-d",
                "postgres",
                "-Atc",
                query,
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .env("PGPASSWORD", PG_PASSWORD)
            .output()
            .expect("psql");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

/// The server's certificates (`wharf_testkit::tls`) and another CA (`other-ca.pem`)
/// that signed nothing of them.
fn certificates(dir: &std::path::Path) {
    wharf_testkit::tls::server_certificates(dir);
    wharf_testkit::tls::authority(dir, "other-ca-key.pem", "other-ca.pem", "wharf-other-ca");
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn postgres_steps_run_on_a_real_server() {
    let pg = Postgres::start();
    let p = Place::new();
    std::fs::write(
        p.path("items.csv"),
        "id;name;price;tags\n1;widget;9.99;{\"a\": 1}\n2;gadget;\\N;\n",
    )
    .expect("csv");
    std::fs::write(p.path("update.csv"), "id,name\n1,WIDGET\n3,gizmo\n").expect("csv");
    let dag = p.dag(
        "pg",
        &format!(
            r#"type: chain
secrets:
  - name: PGPW
    provider: env
    key: TEST_PG_PASSWORD
steps:
  - id: schema
    action: postgres.query
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      query: |
        CREATE TABLE items(id int PRIMARY KEY, name text NOT NULL, price numeric(10,2),
          tags jsonb, made timestamptz DEFAULT '2026-01-02T03:04:05Z', day date DEFAULT '2026-03-04');
        CREATE FUNCTION twice(x int) RETURNS int AS $$ SELECT x * 2; $$ LANGUAGE sql;
  - id: load
    action: postgres.import
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      import: {{input_file: items.csv, table: items, delimiter: ";"}}
  - id: keep
    action: postgres.import
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      import: {{input_file: update.csv, table: items, on_conflict: replace}}
  - id: upsert
    action: postgres.import
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      advisory_lock: items-load
      import: {{input_file: update.csv, table: items, on_conflict: replace, conflict_target: id}}
  - id: read
    action: postgres.query
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      query: "SELECT id, name, price, tags, made, day, twice(id) AS doubled, id > 1 AS later FROM items WHERE id >= :low ORDER BY id"
      params: {{low: 1}}
  - id: positional
    action: postgres.query
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      query: "SELECT $1::int + $2 AS sum, NULL::text AS nothing"
      params: [2, 3]
      output_format: csv
      headers: true
  - id: atomic
    action: postgres.query
    continue_on: {{failure: true}}
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      transaction: true
      isolation_level: serializable
      query: "DELETE FROM items; INSERT INTO nowhere VALUES (1)"
  - id: slow
    action: postgres.query
    continue_on: {{failure: true}}
    with:
      dsn: postgres://wharf:${{PGPW}}@127.0.0.1:{port}/postgres?sslmode=disable
      timeout: 1
      query: SELECT pg_sleep(60)
"#,
            port = pg.port
        ),
    );
    let started = Instant::now();
    let out = p
        .wharf()
        .env("TEST_PG_PASSWORD", PG_PASSWORD)
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));

    assert_eq!(metrics(&p, "pg", "load")["rows_imported"], 2);
    // Without `conflict_target` row 1 is kept and row 3 added; with it, row 1 updated.
    assert_eq!(metrics(&p, "pg", "keep")["rows_imported"], 1);
    assert_eq!(metrics(&p, "pg", "upsert")["rows_imported"], 2);
    assert_eq!(
        p.logs("pg", "read"),
        concat!(
            "{\"id\":1,\"name\":\"WIDGET\",\"price\":9.99,\"tags\":{\"a\":1},\"made\":\"2026-01-02T03:04:05Z\",\"day\":\"2026-03-04\",\"doubled\":2,\"later\":false}\n",
            "{\"id\":2,\"name\":\"gadget\",\"price\":null,\"tags\":null,\"made\":\"2026-01-02T03:04:05Z\",\"day\":\"2026-03-04\",\"doubled\":4,\"later\":true}\n",
            "{\"id\":3,\"name\":\"gizmo\",\"price\":null,\"tags\":null,\"made\":\"2026-01-02T03:04:05Z\",\"day\":\"2026-03-04\",\"doubled\":6,\"later\":true}\n",
        )
    );
    assert_eq!(p.logs("pg", "positional"), "sum,nothing\n5,\n");
    let status = p.status("pg");
    assert!(
        step_error(&status, "atomic").contains("relation \"nowhere\" does not exist"),
        "{status}"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM items"),
        "3",
        "the failed transaction was rolled back"
    );
    assert!(
        step_error(&status, "slow").contains("within its timeout (1 s)"),
        "{status}"
    );
    assert_eq!(step(&status, "slow")["status"], "failed");
    // The server's statement was cancelled, not left running.
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"),
        "0"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
        "0"
    );

    // The password is in no log, record or message.
    let mut seen = format!("{}{}{status}", out.stdout, out.stderr);
    for s in [
        "schema",
        "load",
        "upsert",
        "read",
        "positional",
        "atomic",
        "slow",
    ] {
        seen.push_str(&p.logs("pg", s));
        seen.push_str(&stderr_log(&p, "pg", s));
    }
    assert!(!seen.contains(PG_PASSWORD), "{seen}");

    // A wrong password: refused by the server, the DSN not shown.
    let wrong = p.dag(
        "wrong",
        &format!(
            "steps:\n  - action: postgres.query\n    with:\n      dsn: postgres://wharf:not-the-password@127.0.0.1:{}/postgres\n      query: SELECT 1\n",
            pg.port
        ),
    );
    let out = p.run(&wrong, &[]);
    assert_ne!(out.code, Some(0));
    let error = step_error(&p.status("wrong"), "step_1");
    assert!(error.contains("cannot connect to PostgreSQL"), "{error}");
    assert!(
        !format!("{}{error}", out.stderr).contains("not-the-password"),
        "{}",
        out.stderr
    );
}

#[test]
fn postgres_steps_connect_over_tls_as_sslmode_says() {
    let pg = Postgres::start_with(true);
    let p = Place::new();
    std::fs::copy(pg.dir.join("ca.pem"), p.path("ca.pem")).expect("ca");
    std::fs::copy(pg.dir.join("other-ca.pem"), p.path("other-ca.pem")).expect("other ca");
    let base = format!("postgres://wharf:${{PGPW}}@127.0.0.1:{}/postgres", pg.port);
    let by_name = format!("postgres://wharf:${{PGPW}}@localhost:{}/postgres", pg.port);
    let cases = [
        ("plain", format!("{base}?sslmode=disable"), false),
        ("prefer", base.clone(), true),
        ("require", format!("{base}?sslmode=require"), true),
        (
            "full",
            format!("{base}?sslmode=verify-full&sslrootcert=ca.pem"),
            true,
        ),
        (
            "stranger",
            format!("{base}?sslmode=verify-full&sslrootcert=other-ca.pem"),
            false,
        ),
        (
            "wrongname",
            format!("{by_name}?sslmode=verify-full&sslrootcert=ca.pem"),
            false,
        ),
        (
            "chainonly",
            format!("{by_name}?sslmode=verify-ca&sslrootcert=ca.pem"),
            true,
        ),
        (
            "words",
            format!(
                "host=127.0.0.1 port={} user=wharf password='${{PGPW}}' dbname=postgres sslmode=verify-full sslrootcert=ca.pem",
                pg.port
            ),
            true,
        ),
    ];
    let mut yaml = String::from(
        "type: graph\nsecrets:\n  - name: PGPW\n    provider: env\n    key: TEST_PG_PASSWORD\nsteps:\n",
    );
    for (id, dsn, _) in &cases {
        yaml.push_str(&format!(
            "  - id: {id}\n    action: postgres.query\n    with:\n      dsn: \"{dsn}\"\n      query: SELECT ssl AS tls FROM pg_stat_ssl WHERE pid = pg_backend_pid()\n"
        ));
    }
    let dag = p.dag("tls", &yaml);
    let out = p
        .wharf()
        .env("TEST_PG_PASSWORD", PG_PASSWORD)
        .args(["run"])
        .args([&dag])
        .run();
    assert_ne!(out.code, Some(0), "some cases must fail");
    let status = p.status("tls");
    for (id, _, works) in &cases {
        let state = step(&status, id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if *works {
            assert_eq!(state, "succeeded", "{id}: {status}");
            assert_eq!(p.logs("tls", id), "{\"tls\":true}\n", "{id}");
        } else {
            assert_eq!(state, "failed", "{id}: {status}");
        }
    }
    assert!(
        step_error(&status, "plain").contains("no encryption"),
        "{status}"
    );
    for id in ["stranger", "wrongname"] {
        let error = step_error(&status, id);
        assert!(
            error.contains("cannot connect to PostgreSQL"),
            "{id}: {error}"
        );
        assert!(
            error.to_lowercase().contains("certificate"),
            "{id}: {error}"
        );
    }
    assert!(!format!("{}{}{status}", out.stdout, out.stderr).contains(PG_PASSWORD));
}
