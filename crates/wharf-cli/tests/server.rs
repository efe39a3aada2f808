//! `wharf server`: the REST API against a real server process, a real store and real runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use wharf_testkit::{Place, Server};

fn is_error(v: &Value, code: &str) -> bool {
    v["code"] == code && v["message"].as_str().is_some_and(|m| !m.is_empty())
}

#[test]
fn dags_are_created_checked_edited_listed_and_deleted() {
    let p = Place::new();
    let s = Server::start(&p);
    let (code, health) = s.get("/health");
    assert_eq!(code, 200);
    assert_eq!(health["status"], "healthy");
    assert!(health["uptime"].is_u64() && health["timestamp"].is_string());

    let spec = "params: WHO=world\ntags: [demo]\nsteps:\n  - name: greet\n    command: echo hello ${WHO}\n";
    let (code, v) = s.post("/dags", &json!({"name": "hello", "spec": spec}));
    assert_eq!((code, &v), (201, &json!({"name": "hello"})));
    assert_eq!(
        std::fs::read_to_string(p.path("dags/hello.yaml")).expect("written"),
        spec
    );
    let (code, v) = s.post("/dags", &json!({"name": "hello", "spec": spec}));
    assert_eq!(code, 409, "{v}");
    assert!(is_error(&v, "already_exists"), "{v}");
    let (code, v) = s.post("/dags", &json!({"name": "broken", "spec": "steps: 3\n"}));
    assert_eq!(code, 400);
    assert!(is_error(&v, "bad_request"), "{v}");
    assert!(!p.path("dags/broken.yaml").exists(), "nothing written");
    let (code, v) = s.post("/dags", &json!({"name": "../escape"}));
    assert_eq!(code, 400, "{v}");

    let (code, v) = s.post(
        "/dags/validate",
        &json!({"spec": "steps:\n  - name: a\n    depends: [nope]\n    command: echo\n"}),
    );
    assert_eq!(code, 200);
    assert_eq!(v["valid"], false);
    let first = v["errors"][0].as_str().unwrap_or_default();
    assert!(first.starts_with("3:") && first.contains("nope"), "{v}");
    let (_, v) = s.post("/dags/validate", &json!({"spec": spec}));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["dag"]["steps"][0]["name"], "greet");

    let (code, v) = s.get("/dags?tag=demo");
    assert_eq!(code, 200);
    assert_eq!(v["dags"][0]["fileName"], "hello");
    assert_eq!(v["dags"][0]["dag"]["name"], "hello");
    assert_eq!(v["dags"][0]["latestDAGRun"]["statusLabel"], "not_started");
    assert_eq!(v["pagination"]["totalRecords"], 1);
    let (_, v) = s.get("/dags?tag=other");
    assert_eq!(v["dags"], json!([]));

    let (code, v) = s.get("/dags/hello/spec");
    assert_eq!(code, 200);
    assert_eq!(v["spec"], spec);
    let (code, v) = s.call(
        "PUT",
        "/dags/hello/spec",
        Some(&json!({"spec": "steps: [\n"})),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        std::fs::read_to_string(p.path("dags/hello.yaml")).expect("kept"),
        spec,
        "an invalid spec changes nothing"
    );
    let edited = spec.replace("hello", "hi");
    let (code, v) = s.call("PUT", "/dags/hello/spec", Some(&json!({"spec": edited})));
    assert_eq!((code, &v), (200, &json!({"errors": []})));

    let (code, v) = s.get("/dags/hello");
    assert_eq!(code, 200);
    assert_eq!(v["dag"]["name"], "hello");
    assert_eq!(v["latestDAGRun"]["nodes"], json!([]));

    let (code, _) = s.call("DELETE", "/dags/hello", None);
    assert_eq!(code, 204);
    let (code, v) = s.get("/dags/hello");
    assert_eq!(code, 404);
    assert!(is_error(&v, "not_found"), "{v}");

    let (code, v) = s.post("/auth/login", &json!({}));
    assert_eq!(code, 501, "{v}");
    let (code, _) = s.get("/no-such-thing");
    assert_eq!(code, 404);
}

#[test]
fn runs_started_through_the_api_are_runs_like_any_other() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/job.yaml"),
        "params: WHO=world\nsteps:\n  - name: greet\n    command: echo hello ${WHO}\n    output: GREETING\n  - name: fail\n    command: sh -c 'echo bad >&2; exit 3'\n    continueOn:\n      failure: true\n  - name: count\n    command: echo 3\n    output: TOTAL_COUNT\n  - name: keyed\n    command: echo k\n    output:\n      name: MY_VALUE\n      key: MY_VALUE_KEY\n",
    )
    .expect("dag");
    let (code, v) = s.post(
        "/dags/job/start",
        &json!({"params": "WHO=api", "dagRunId": "first-run"}),
    );
    assert_eq!((code, &v), (200, &json!({"dagRunId": "first-run"})));
    let run = s.until("job", "first-run", "partially_succeeded");
    assert_eq!(run["status"], 6);
    assert_eq!(run["nodes"][0]["step"]["name"], "greet");
    assert_eq!(run["nodes"][0]["status"], 4);
    assert_eq!(run["nodes"][0]["statusLabel"], "succeeded");
    assert_eq!(run["nodes"][1]["statusLabel"], "failed");
    assert_eq!(run["nodes"][1]["status"], 2);

    let (_, log) = s.get("/dag-runs/job/first-run/steps/greet/log");
    assert_eq!(log["content"], "hello api\n");
    let (_, log) = s.get("/dag-runs/job/latest/steps/fail/log?stream=stderr");
    assert_eq!(log["content"], "bad\n");
    let (_, out) = s.get("/dag-runs/job/first-run/outputs");
    // As Dagu's outputs.json: names in camelCase, a `key` as written.
    assert_eq!(
        out["outputs"],
        json!({"greeting": "hello api", "totalCount": "3", "MY_VALUE_KEY": "k"})
    );
    assert_eq!(out["metadata"]["status"], "partially_succeeded");
    let (_, log) = s.get("/dag-runs/job/first-run/log?tail=1");
    assert!(
        log["content"]
            .as_str()
            .unwrap_or_default()
            .contains("run finished"),
        "{log}"
    );

    // The command line sees the run: one store.
    let status = p.status("job");
    assert_eq!(status["runId"], "first-run");

    let (code, v) = s.post("/dags/job/start", &json!({"dagRunId": "first-run"}));
    assert_eq!(code, 409, "{v}");
    let (code, v) = s.post("/dags/job/start", &json!({"params": 5}));
    assert_eq!(code, 400, "{v}");
    assert!(is_error(&v, "bad_request"), "{v}");
    let (_, list) = s.get("/dag-runs");
    assert_eq!(list["dagRuns"][0]["dagRunId"], "first-run");
    let (_, list) = s.get("/dags/job/dag-runs");
    assert_eq!(
        list["gridData"][0],
        json!({"name": "greet", "history": [4]})
    );

    // The run's DAG, and a new run of it with the run's params (under another name too).
    let (code, v) = s.get("/dag-runs/job/first-run/spec");
    assert_eq!(code, 200, "{v}");
    assert!(
        v["spec"]
            .as_str()
            .unwrap_or_default()
            .starts_with("params: WHO=world\n"),
        "{v}"
    );
    assert_eq!(s.get("/dag-runs/job/nope/spec").0, 404);
    let (code, v) = s.post(
        "/dag-runs/job/first-run/reschedule",
        &json!({"dagRunId": "again"}),
    );
    assert_eq!(
        (code, &v),
        (200, &json!({"dagRunId": "again", "queued": false}))
    );
    s.until("job", "again", "partially_succeeded");
    let (_, log) = s.get("/dag-runs/job/again/steps/greet/log");
    assert_eq!(log["content"], "hello api\n");
    let (code, v) = s.post(
        "/dag-runs/job/first-run/reschedule",
        &json!({"dagName": "job-copy"}),
    );
    assert_eq!(code, 200, "{v}");
    let copy = v["dagRunId"].as_str().expect("an id").to_owned();
    s.until("job-copy", &copy, "partially_succeeded");
    let (code, v) = s.post(
        "/dag-runs/job/first-run/reschedule",
        &json!({"dagRunId": "again"}),
    );
    assert_eq!(code, 409, "{v}");
    let (code, v) = s.post(
        "/dag-runs/job/first-run/reschedule",
        &json!({"dagName": "../x"}),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(s.post("/dag-runs/job/nope/reschedule", &json!({})).0, 404);

    // Retry: the failed step again, same run.
    let (code, v) = s.post(
        "/dag-runs/job/first-run/retry",
        &json!({"dagRunId": "first-run"}),
    );
    assert_eq!(code, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = s.get("/dag-runs/job/first-run");
        let d = &v["dagRunDetails"];
        if d["statusLabel"] == "partially_succeeded" && d["nodes"][1]["retryCount"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no retry: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn singleton_stop_and_runs_that_outlive_the_server() {
    let p = Place::new();
    let mut s = Server::start(&p);
    std::fs::write(
        p.path("dags/slow.yaml"),
        "steps:\n  - name: wait\n    command: sleep 2\n",
    )
    .expect("dag");
    let (code, _) = s.post("/dags/slow/start", &json!({"dagRunId": "a"}));
    assert_eq!(code, 200);
    s.until("slow", "a", "running");
    let (code, v) = s.post("/dags/slow/start", &json!({"singleton": true}));
    assert_eq!(code, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already running"),
        "{v}"
    );

    // The server goes; the run goes on and ends; a new server sees it.
    s.kill();
    let s2 = Server::start(&p);
    s2.until("slow", "a", "succeeded");

    let (code, _) = s2.post("/dags/slow/start", &json!({"dagRunId": "b"}));
    assert_eq!(code, 200);
    s2.until("slow", "b", "running");
    let (code, v) = s2.post("/dag-runs/slow/b/stop", &json!({}));
    assert_eq!(code, 200, "{v}");
    s2.until("slow", "b", "aborted");
    let (code, v) = s2.post("/dag-runs/slow/b/stop", &json!({}));
    assert_eq!(code, 400);
    assert!(is_error(&v, "not_running"), "{v}");

    let (code, _) = s2.post("/dags/slow/start", &json!({"dagRunId": "c"}));
    assert_eq!(code, 200);
    s2.until("slow", "c", "running");
    let (code, v) = s2.post("/dags/slow/stop-all", &json!({}));
    assert_eq!((code, &v), (200, &json!({"errors": []})));
    s2.until("slow", "c", "aborted");
    s = s2;
    let (code, _) = s.get("/dag-runs/slow/nope");
    assert_eq!(code, 404);
}

#[test]
fn the_web_ui_lists_dags_starts_runs_and_shows_their_logs() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/web.yaml"),
        "tags: [ui]\nparams: WHO=world\nsteps:\n  - name: greet\n    command: echo '<b>hello</b>' ${WHO}\n  - name: after\n    command: \"true\"\n",
    )
    .expect("dag");
    std::fs::write(p.path("dags/other.yaml"), "steps:\n  - echo other\n").expect("dag");
    let (code, _, html) = s.page("GET", "/", "", "");
    assert_eq!(code, 200);
    assert!(html.contains("href=\"/dags/web\""), "{html}");
    assert!(html.contains("never run"));
    let (_, _, html) = s.page("GET", "/?tag=ui", "", "");
    assert!(
        html.contains("/dags/web") && !html.contains("/dags/other"),
        "{html}"
    );

    // An action from elsewhere is refused; from the server's own page it runs.
    let (code, _, _) = s.page("POST", "/dags/web/start", "", "params=WHO%3Dweb");
    assert_eq!(code, 403);
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, head, _) = s.page("POST", "/dags/web/start", &origin, "params=WHO%3Dweb");
    assert_eq!(code, 303, "{head}");
    let location = head
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("a location")
        .trim()
        .to_owned();
    let run_id = location.rsplit('/').next().unwrap_or_default().to_owned();
    s.until("web", &run_id, "succeeded");
    let (code, _, html) = s.page("GET", &location, "", "");
    assert_eq!(code, 200);
    // The step's output, escaped (by name or by number), never as markup.
    assert!(
        html.contains("&lt;b&gt;hello&lt;/b&gt; web")
            || html.contains("&#60;b&#62;hello&#60;/b&#62; web"),
        "the step's output, escaped: {html}"
    );
    assert!(!html.contains("<b>hello</b>"), "{html}");
    assert!(html.contains("succeeded"));

    let (code, _, html) = s.page("GET", "/dags/web", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains("<svg") && html.contains("<title>greet: succeeded</title>"),
        "{html}"
    );
    assert!(html.contains(&run_id));
    assert!(html.contains("tags: [ui]"), "the YAML is shown");
    let (code, _, _) = s.page("GET", "/dags/missing", "", "");
    assert_eq!(code, 404);
}

fn tick(p: &Place, at: &str) -> String {
    let out = p
        .wharf()
        .args(["scheduler", "--once-at", at, "--dags"])
        .arg_path(&p.path("dags"))
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
}

fn history(p: &Place, dag: &str) -> Vec<Value> {
    let out = p.wharf().args(["history", dag, "--json"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    serde_json::from_str::<Value>(&out.stdout)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

// Dagu 2.x: a scheduled run knows its trigger and the slot it was started for.
#[test]
fn a_scheduled_2x_run_knows_its_slot() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/slotted.yaml"),
        "schedule: \"15 10 * * *\"\nsteps:\n  - id: say\n    run: echo \"${trigger.type} ${run.scheduled_at}\"\n",
    )
    .expect("dag");
    assert_eq!(
        tick(&p, "2026-11-28T10:15:00Z"),
        "slotted: Started(\"scheduled-20261128T1015Z\")\n"
    );
    until_status(&p, "slotted", "scheduled-20261128T1015Z", "succeeded");
    assert_eq!(p.logs("slotted", "say"), "scheduler 2026-11-28T10:15:00Z\n");
}

#[test]
fn the_scheduler_runs_a_daylight_saving_slot_once_on_both_changes() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/berlin.yaml"),
        "schedule: \"CRON_TZ=Europe/Berlin 30 2 * * *\"\nsteps:\n  - echo night in Berlin\n",
    )
    .expect("dag");
    // 2026-03-29: 02:00 jumps to 03:00 in Berlin; 02:30 does not exist and runs at 03:00.
    assert_eq!(tick(&p, "2026-03-29T00:30:00Z"), "");
    assert_eq!(
        tick(&p, "2026-03-29T01:00:00Z"),
        "berlin: Started(\"scheduled-20260329T0100Z\")\n"
    );
    assert_eq!(tick(&p, "2026-03-29T01:30:00Z"), "");
    // The run of that slot ends before the next slot (which it would otherwise skip).
    let deadline = Instant::now() + Duration::from_secs(20);
    while history(&p, "berlin")
        .iter()
        .any(|r| r["status"] == "running")
    {
        assert!(Instant::now() < deadline, "{:?}", history(&p, "berlin"));
        std::thread::sleep(Duration::from_millis(50));
    }
    // 2026-10-25: 03:00 falls back to 02:00; 02:30 comes twice and runs the first time.
    // The nights in between passed without a scheduler: they are recorded as missed.
    assert_eq!(
        tick(&p, "2026-10-25T00:30:00Z"),
        "berlin: Missed(\"missed-20260330T0030Z-20261024T0030Z\", 209)\n\
         berlin: Started(\"scheduled-20261025T0030Z\")\n"
    );
    assert_eq!(tick(&p, "2026-10-25T01:30:00Z"), "");
}

#[test]
fn the_scheduler_runs_each_slot_once_and_skips_a_slot_while_the_dag_runs() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/every5.yaml"),
        "schedule: \"CRON_TZ=UTC */5 * * * *\"\nsteps:\n  - name: work\n    command: sleep 2\n",
    )
    .expect("dag");
    std::fs::write(
        p.path("dags/tokyo.yaml"),
        "schedule: [\"CRON_TZ=Asia/Tokyo 3 9 * * *\"]\nsteps:\n  - echo morning in Tokyo\n",
    )
    .expect("dag");
    std::fs::write(p.path("dags/manual.yaml"), "steps:\n  - echo by hand\n").expect("dag");

    let out = tick(&p, "2026-11-28T10:15:00Z");
    assert_eq!(out, "every5: Started(\"scheduled-20261128T1015Z\")\n");
    let again = tick(&p, "2026-11-28T10:15:00Z");
    assert_eq!(
        again, "every5: AlreadyThere(\"scheduled-20261128T1015Z\")\n",
        "a restarted scheduler does not run a slot twice"
    );
    assert_eq!(tick(&p, "2026-11-28T10:16:00Z"), "");
    // The 10:15 run still goes (sleep 2): the 10:20 slot is skipped, and recorded.
    let out = tick(&p, "2026-11-28T10:20:00Z");
    assert_eq!(out, "every5: Skipped(\"scheduled-20261128T1020Z\")\n");
    let runs = history(&p, "every5");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0]["runId"], "scheduled-20261128T1020Z");
    assert_eq!(runs[0]["status"], "skipped");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("still running"),
        "{runs:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while history(&p, "every5")[1]["status"] != "succeeded" {
        assert!(Instant::now() < deadline, "{:?}", history(&p, "every5"));
        std::thread::sleep(Duration::from_millis(100));
    }

    assert_eq!(
        tick(&p, "2026-11-28T09:03:00Z"),
        "",
        "09:03 UTC is not 09:03 in Tokyo"
    );
    assert_eq!(
        tick(&p, "2026-11-29T00:03:00Z"),
        "every5: Missed(\"missed-20261128T1025Z-20261129T0000Z\", 164)\n\
         tokyo: Started(\"scheduled-20261129T0003Z\")\n",
        "the slots of every5 since the last tick were missed, and are recorded as such"
    );
    let missed = &history(&p, "every5")[0];
    assert_eq!(missed["status"], "skipped", "{missed}");
    assert!(
        missed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("164 slot(s) from 2026-11-28 10:25 UTC to 2026-11-29 00:00 UTC were missed"),
        "{missed}"
    );
}

#[test]
fn start_all_serves_and_schedules() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    // The scheduler's health check (Dagu's `scheduler.port`), on a port this test picks.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["start-all", "--port", "0", "--dags"])
        .arg(p.path("dags"))
        .env("WHARF_HOME", p.home())
        .env("DAGU_SCHEDULER_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start-all");
    let stderr = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(stderr);
    let mut text = String::new();
    for _ in 0..3 {
        reader.read_line(&mut text).expect("a line");
    }
    let health = Server::at(format!("127.0.0.1:{port}")).raw("GET", "/health", "", "");
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("wharf server on http://127.0.0.1:"), "{text}");
    assert!(text.contains("wharf scheduler: DAGs in"), "{text}");
    assert!(
        text.contains(&format!("health check on 127.0.0.1:{port} (GET /health)")),
        "{text}"
    );
    let (code, _, body) = health.expect("the health check answers");
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).ok(),
        Some(json!({"status": "healthy"}))
    );
}

#[test]
fn authentication_and_the_origin_check() {
    let p = Place::new();
    let s = Server::start_with(&p, &[("WHARF_AUTH_TOKEN", "t0ken")]);
    let (code, _, _) = s.page("GET", "/api/v2/dags", "", "");
    assert_eq!(code, 401);
    let (code, _, _) = s.page("GET", "/", "", "");
    assert_eq!(code, 401, "the UI too");
    let (code, _, _) = s.page("GET", "/api/v2/dags", "Authorization: Bearer wrong\r\n", "");
    assert_eq!(code, 401);
    let (code, _, body) = s.page("GET", "/api/v2/dags", "Authorization: Bearer t0ken\r\n", "");
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = s.page("GET", "/api/v2/health", "", "");
    assert_eq!(code, 200, "health needs no credentials");
    // The same API under Dagu 2.x's name for it, behind the same guard.
    let (code, _, _) = s.page("GET", "/api/v1/health", "", "");
    assert_eq!(code, 200);
    let (code, _, _) = s.page("GET", "/api/v1/dags", "", "");
    assert_eq!(code, 401);
    let (code, _, body) = s.page("GET", "/api/v1/dags", "Authorization: Bearer t0ken\r\n", "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"dags\""), "{body}");
    // The user endpoints without built-in users: part of Dagu's API that is off here.
    let (code, _, _) = s.page(
        "GET",
        "/api/v1/users",
        "Authorization: Bearer t0ken\r\n",
        "",
    );
    assert_eq!(code, 501);
    drop(s);

    // Basic authentication from $WHARF_HOME/config.yaml.
    std::fs::create_dir_all(p.home()).expect("home");
    std::fs::write(
        p.home().join("config.yaml"),
        "auth:\n  basic:\n    username: admin\n    password: pa55\n",
    )
    .expect("config");
    let s = Server::start(&p);
    let (code, head, _) = s.page("GET", "/", "", "");
    assert_eq!(code, 401);
    assert!(
        head.to_lowercase().contains("www-authenticate: basic"),
        "{head}"
    );
    let basic = format!(
        "Authorization: Basic {}\r\n",
        wharf_testkit::b64("admin:pa55")
    );
    let (code, _, _) = s.page("GET", "/", &basic, "");
    assert_eq!(code, 200);
    std::fs::write(p.path("dags/job.yaml"), "steps:\n  - echo hi\n").expect("dag");
    // A page of another site cannot start runs, even with the browser's credentials.
    let evil = format!("{basic}Origin: http://evil.example\r\n");
    let (code, _, _) = s.page("POST", "/api/v2/dags/job/start", &evil, "");
    assert_eq!(code, 403);
    let (code, _, _) = s.page("POST", "/dags/job/start", &evil, "");
    assert_eq!(code, 403);
    let (code, _, body) = s.page("POST", "/api/v2/dags/job/start", &basic, "");
    assert_eq!(code, 200, "a script (no Origin) may: {body}");

    std::fs::write(p.home().join("config.yaml"), "prot: 80\n").expect("config");
    let out = p.wharf().args(["server", "--port", "0"]).run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("unknown setting `prot`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_running_steps_log_streams_as_server_sent_events() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/talk.yaml"),
        "steps:\n  - name: talk\n    command: sh -c 'for i in 1 2 3; do echo line $i; sleep 0.3; done; printf last'\n",
    )
    .expect("dag");
    let (code, _) = s.post("/dags/talk/start", &json!({"dagRunId": "live"}));
    assert_eq!(code, 200);
    s.until("talk", "live", "running");
    let started = Instant::now();
    let (code, head, body) = s.page("GET", "/dags/talk/runs/live/steps/talk/events", "", "");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(
        data,
        ["line 1", "line 2", "line 3", "last", "succeeded"],
        "every line, the unterminated last one, then the end event's status: {body}"
    );
    assert!(body.contains("event: end\ndata: succeeded"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let (code, _, page) = s.page("GET", "/dags/talk/runs/live", "", "");
    assert_eq!(code, 200);
    assert!(page.contains("line 3"), "{page}");
}

#[test]
fn wharf_in_its_own_container_runs_container_steps_as_siblings() {
    use wharf_testkit::{OWNER, Unique, docker, images_are_built};
    images_are_built();
    let u = Unique::new("inside");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let built = Command::new(root.join("scripts/docker-image"))
        .args([
            "--base",
            "wharf-test/base:latest",
            "--tag",
            "wharf-test/wharf:latest",
        ])
        .args([
            "--label",
            "wharf.test=1",
            "--binary",
            env!("CARGO_BIN_EXE_wharf"),
        ])
        .output()
        .expect("scripts/docker-image");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let p = Place::new();
    let dags = p.path("dags");
    std::fs::create_dir_all(dags.join("data")).expect("dags");
    std::fs::write(dags.join("data/in.txt"), "from the host\n").expect("data");
    std::fs::write(
        dags.join(format!("{}.yaml", u.name)),
        "steps:\n  - name: sibling\n    command: cat /data/in.txt\n    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: true\n        volumes:\n          - ./data:/data:ro\n",
    )
    .expect("dag");
    let d = dags.to_string_lossy().into_owned();
    let id = docker(&[
        "run",
        "-d",
        "--label",
        &format!("{OWNER}={}", u.name),
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{d}:{d}"),
        "-e",
        &format!("WHARF_DAGS={d}"),
        "-p",
        "127.0.0.1::8080",
        "wharf-test/wharf:latest",
    ]);
    assert!(!id.is_empty(), "the wharf container did not start");
    let port = docker(&["port", &id, "8080/tcp"]);
    let addr = port.lines().next().unwrap_or_default().to_owned();
    let s = Server::at(addr);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.try_get("/health").is_none() {
        assert!(Instant::now() < deadline, "{}", docker(&["logs", &id]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, v) = s.post(
        &format!("/dags/{}/start", u.name),
        &json!({"dagRunId": "inside"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until(&u.name, "inside", "succeeded");
    let (_, log) = s.get(&format!("/dag-runs/{}/inside/steps/sibling/log", u.name));
    assert_eq!(
        log["content"], "from the host\n",
        "the bind mount resolved on the host"
    );
    let _ = docker(&["rm", "-f", &id]);
}

#[test]
fn the_web_ui_in_a_real_browser() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/talk.yaml"),
        "description: Says a few lines, slowly.\nparams: WHO=world\ntype: graph\nsteps:\n  - name: say\n    command: sh -c 'for i in 1 2 3; do echo \"line $i $WHO\"; sleep 1; done'\n  - name: count\n    command: sh -c 'wc -c < /etc/hostname'\n  - name: done\n    depends: [say, count]\n    command: echo done\n",
    )
    .expect("dag");
    std::fs::write(
        p.path("dags/slow.yaml"),
        "steps:\n  - name: wait\n    command: sleep 60\n",
    )
    .expect("dag");
    let mark = p.path("fixed");
    std::fs::write(
        p.path("dags/flaky.yaml"),
        format!("params: MARK={}\nsteps:\n  - name: check\n    command: test -f ${{MARK}}\n  - name: after\n    command: echo after\n", mark.display()),
    )
    .expect("dag");
    // `WHARF_SCREENSHOTS=docs/screenshots` refreshes the pictures docs/server.md shows.
    let shots = std::env::var_os("WHARF_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser/ui.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", s.addr))
        .arg(&shots)
        .output()
        .expect("python3 with playwright (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let status = p.status("slow");
    assert_eq!(status["status"], "aborted", "stopped from the browser");
    let saved = std::fs::read_to_string(p.path("dags/talk.yaml")).expect("talk");
    assert!(
        saved.contains("echo extra"),
        "saved from the browser: {saved}"
    );
    for page in [
        "dashboard",
        "dags",
        "dag",
        "run",
        "retried",
        "runs",
        "queues",
        "system",
    ] {
        for size in ["wide", "phone"] {
            for scheme in ["light", "dark"] {
                let f = shots.join(format!("{page}-{size}-{scheme}.png"));
                let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
                assert!(len > 1000, "{} was not saved", f.display());
            }
        }
    }
}

#[test]
fn signing_in_to_the_web_ui_in_a_real_browser() {
    let p = Place::new();
    let s = Server::start_with(
        &p,
        &[
            ("WHARF_AUTH_MODE", "builtin"),
            ("WHARF_AUTH_ADMIN_PASSWORD", "admins-password"),
        ],
    );
    std::fs::write(
        p.path("dags/talk.yaml"),
        "steps:\n  - name: say\n    command: echo hi\n",
    )
    .expect("dag");
    let shots = std::env::var_os("WHARF_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser/signin.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}", s.addr))
        .arg("admins-password")
        .arg(&shots)
        .output()
        .expect("python3 with playwright (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // What the browser did is in the store: the viewer it made signs in through the API.
    let token = sign_in(&s, "vera", "veras-password");
    let (code, v) = s.call_with(&bearer(&token), "GET", "/auth/me", None);
    assert_eq!(
        (code, v["user"]["role"].as_str()),
        (200, Some("viewer")),
        "{v}"
    );
    for page in ["login", "users", "account"] {
        for size in ["wide", "phone"] {
            for scheme in ["light", "dark"] {
                let f = shots.join(format!("{page}-{size}-{scheme}.png"));
                let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
                assert!(len > 1000, "{} was not saved", f.display());
            }
        }
    }
}

/// The endpoints wharf implements (SPEC §8), as a path regex for schemathesis.
const IMPLEMENTED: &str = r"^/(health|metrics|dags|dags/validate|dags/search|dags/tags|dags/\{fileName\}/rename|dag-runs/\{name\}/\{dagRunId\}/steps/\{stepName\}/status|dag-runs/\{name\}/\{dagRunId\}/sub-dag-runs/\{subDAGRunId\}/steps/\{stepName\}/status|dags/\{fileName\}|dags/\{fileName\}/spec|dags/\{fileName\}/start|dags/\{fileName\}/enqueue|dags/\{fileName\}/suspend|dags/\{fileName\}/stop-all|queues|dag-runs/enqueue|dag-runs/\{name\}/\{dagRunId\}/dequeue|dags/\{fileName\}/dag-runs|dags/\{fileName\}/dag-runs/\{dagRunId\}|dag-runs|dag-runs/\{name\}|dag-runs/\{name\}/\{dagRunId\}|dag-runs/\{name\}/\{dagRunId\}/(log|outputs|stop|retry|spec|reschedule)|dag-runs/\{name\}/\{dagRunId\}/steps/\{stepName\}/log|webhooks|webhooks/\{fileName\}|dags/\{fileName\}/webhook|dags/\{fileName\}/webhook/(regenerate|toggle)|services/(scheduler|coordinator|resources/history))$";

#[test]
fn the_api_answers_as_the_openapi_document_says() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/hello.yaml"),
        "params: WHO=world\nsteps:\n  - name: greet\n    command: echo hi ${WHO}\n    output: OUT\n",
    )
    .expect("dag");
    let (code, _) = s.post("/dags/hello/start", &json!({"dagRunId": "r1"}));
    assert_eq!(code, 200);
    s.until("hello", "r1", "succeeded");
    schemathesis(&s, IMPLEMENTED, "");
}

/// Checks the endpoints of the server `s` whose paths match `paths` against the Dagu
/// OpenAPI document, sending `headers` (`Name: value` lines) with every request. The
/// document lives beside the project (`../shared/reference`), not in it; `WHARF_API_SPEC`
/// names it elsewhere.
fn schemathesis(s: &Server, paths: &str, headers: &str) {
    let found = std::env::var_os("WHARF_API_SPEC")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|a| a.join("shared/reference/dag-v1-api.yaml"))
                .find(|p| p.is_file())
        });
    let Some(spec) = found else {
        eprintln!(
            "dag-v1-api.yaml is not beside the project: set WHARF_API_SPEC to check the API against it"
        );
        return;
    };
    let mut command = Command::new("schemathesis");
    command
        .args(["run"])
        .arg(&spec)
        .args(["--url", &format!("http://{}/api/v2", s.addr)])
        .args(["--checks", "response_schema_conformance,not_a_server_error"])
        .args(["--include-path-regex", paths])
        .args([
            "--max-examples",
            "10",
            "--phases",
            "examples,coverage,fuzzing",
        ])
        .args(["--seed", "1"]);
    for header in headers.lines().filter(|l| !l.is_empty()) {
        command.args(["--header", header]);
    }
    let out = command
        .output()
        .expect("schemathesis (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" passed"), "{text}");
}

#[test]
fn credentials_stay_out_of_every_answer_and_survive_an_edit() {
    let p = Place::new();
    let s = Server::start(&p);
    let spec = "params: API_TOKEN=tok123 WHO=me\nenv:\n  - DB_PASSWORD: hunter2\nsteps:\n  - name: use\n    command: echo using the token\n";
    std::fs::write(p.path("dags/secret.yaml"), spec).expect("dag");
    let (code, _) = s.post(
        "/dags/secret/start",
        &json!({"params": "API_TOKEN=override987", "dagRunId": "s1"}),
    );
    assert_eq!(code, 200);
    s.until("secret", "s1", "succeeded");
    let mut answers = Vec::new();
    for path in [
        "/dags",
        "/dags/secret",
        "/dags/secret/spec",
        "/dags/secret/dag-runs",
        "/dag-runs",
        "/dag-runs/secret",
        "/dag-runs/secret/s1",
        "/dag-runs/secret/s1/outputs",
        "/dag-runs/secret/s1/log",
    ] {
        let (code, v) = s.get(path);
        assert_eq!(code, 200, "{path}: {v}");
        answers.push(v.to_string());
    }
    for page in ["/", "/dags/secret", "/dags/secret/runs/s1"] {
        let (code, _, html) = s.page("GET", page, "", "");
        assert_eq!(code, 200);
        answers.push(html);
    }
    let (_, v) = s.post("/dags/validate", &json!({"spec": spec}));
    answers.push(v.to_string());
    for text in &answers {
        for secret in ["tok123", "hunter2", "override987"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // The redacted spec, edited and saved, keeps the credentials in the file.
    let (_, v) = s.get("/dags/secret/spec");
    let shown = v["spec"]
        .as_str()
        .unwrap_or_default()
        .replace("using the token", "still using it");
    let (code, v) = s.call("PUT", "/dags/secret/spec", Some(&json!({"spec": shown})));
    assert_eq!(code, 200, "{v}");
    let file = std::fs::read_to_string(p.path("dags/secret.yaml")).expect("file");
    assert!(
        file.contains("hunter2") && file.contains("tok123"),
        "{file}"
    );
    assert!(
        file.contains("still using it") && !file.contains("<redacted>"),
        "{file}"
    );
}

// G13: `skipIfSuccessful`: a slot starts no run when the DAG succeeded (by hand too) since
// the slot before; a failure, or a success before that slot, does not count.
#[test]
fn skip_if_successful_skips_a_slot_after_a_success_since_the_last_one() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    let file = p.path("dags/nightly.yaml");
    let write = |body: &str| {
        std::fs::write(
            &file,
            format!("schedule: \"CRON_TZ=UTC */5 * * * *\"\nskipIfSuccessful: true\nsteps:\n  - {body}\n"),
        )
        .expect("dag")
    };
    write("\"true\"");
    // The slot after the run by hand: the slot before it came before the run.
    let now = jiff::Timestamp::now().as_second();
    let out = p.run(&file, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let next = jiff::Timestamp::from_second(now - now.rem_euclid(300) + 300).expect("time");
    let slot = next.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let said = tick(&p, &slot);
    assert!(said.starts_with("nightly: AlreadySucceeded("), "{said}");
    assert_eq!(history(&p, "nightly").len(), 1, "no run was created");
    // A slot whose previous slot came after the success runs.
    let later = jiff::Timestamp::from_second(next.as_second() + 600).expect("time");
    let later = later.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let said = tick(&p, &later);
    assert!(said.contains("nightly: Started("), "{said}");
    wait_ended(&p, "nightly");
    // A failed latest run does not skip the slot.
    write("\"false\"");
    let out = p.run(&file, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let last = jiff::Timestamp::from_second(next.as_second() + 1200).expect("time");
    let said = tick(&p, &last.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    assert!(said.contains("nightly: Started("), "{said}");
    wait_ended(&p, "nightly");
}

fn wait_ended(p: &Place, dag: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while history(p, dag).iter().any(|r| r["status"] == "running") {
        assert!(Instant::now() < deadline, "{:?}", history(p, dag));
        std::thread::sleep(Duration::from_millis(50));
    }
}

// G18 through the API: params a DAG's schema refuses are a 400 that says why, and no run.
// G19: `runConfig` holds for runs started from the API and the web UI.
#[test]
fn the_api_and_ui_keep_to_a_dags_params_schema_and_run_config() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/typed.yaml"),
        "params:\n  schema:\n    type: object\n    properties:\n      n: {type: integer, maximum: 9}\n    required: [n]\nsteps:\n  - name: show\n    command: echo n=${n}\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/typed/start", &json!({"params": "n=12"}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`n`: must be <=9"),
        "{v}"
    );
    let (code, v) = s.post("/dags/typed/start", &json!({}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("missing"),
        "{v}"
    );
    let (code, v) = s.post(
        "/dags/typed/start",
        &json!({"params": "{\"n\": 4}", "dagRunId": "ok"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("typed", "ok", "succeeded");
    let (_, log) = s.get("/dag-runs/typed/ok/steps/show/log");
    assert_eq!(log["content"], "n=4\n");
    let (_, list) = s.get("/dags/typed/dag-runs");
    assert_eq!(list["dagRuns"].as_array().map(Vec::len), Some(1), "{list}");

    std::fs::write(
        p.path("dags/fixed.yaml"),
        "runConfig:\n  disableParamEdit: true\n  disableRunIdEdit: true\nparams:\n  - ENVIRONMENT: production\nsteps:\n  - name: deploy\n    command: echo to ${ENVIRONMENT}\n",
    )
    .expect("dag");
    let (_, details) = s.get("/dags/fixed");
    assert_eq!(
        details["dag"]["runConfig"],
        json!({"disableParamEdit": true, "disableRunIdEdit": true}),
        "{details}"
    );
    let (code, v) = s.post(
        "/dags/fixed/start",
        &json!({"params": "ENVIRONMENT=staging"}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disableParamEdit"),
        "{v}"
    );
    let (code, v) = s.post("/dags/fixed/start", &json!({"dagRunId": "mine"}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("disableRunIdEdit"),
        "{v}"
    );
    // Its own params, as a client shows and sends them back, are accepted.
    let (code, v) = s.post(
        "/dags/fixed/start",
        &json!({"params": "ENVIRONMENT=production"}),
    );
    assert_eq!(code, 200, "{v}");
    let id = v["dagRunId"].as_str().unwrap_or_default().to_owned();
    s.until("fixed", &id, "succeeded");
    let (_, log) = s.get(&format!("/dag-runs/fixed/{id}/steps/deploy/log"));
    assert_eq!(log["content"], "to production\n");

    // The web page shows the fixed params and offers no field to change them.
    let (code, _, html) = s.page("GET", "/dags/fixed", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains("params (fixed)") && html.contains("ENVIRONMENT=production"),
        "{html}"
    );
    assert!(!html.contains("name=\"params\""), "{html}");
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, _, html) = s.page(
        "POST",
        "/dags/fixed/start",
        &origin,
        "params=ENVIRONMENT%3Dstaging",
    );
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("disableParamEdit"), "{html}");
}

// Sub-DAG runs through the API (Dagu's sub-dag-runs endpoints and `subRuns` of a node)
// and the web UI (the parent's page links each child's page).
#[test]
fn sub_dag_runs_are_reached_through_their_parent_in_the_api_and_the_ui() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/tree.yaml"),
        "steps:\n  - name: fan\n    call: leaf\n    parallel: [x, y]\n---\nname: leaf\nsteps:\n  - name: say\n    command: echo \"leaf $1\"\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/tree/start", &json!({"dagRunId": "top"}));
    assert_eq!(code, 200, "{v}");
    let run = s.until("tree", "top", "succeeded");
    let subs = run["nodes"][0]["subRuns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(subs.len(), 2, "{run}");
    assert_eq!(subs[0]["params"], "[\"x\"]", "{run}");

    let (code, list) = s.get("/dag-runs/tree/top/sub-dag-runs");
    assert_eq!(code, 200, "{list}");
    let listed = list["subRuns"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 2, "{list}");
    assert!(
        listed.iter().all(|r| r["statusLabel"] == "succeeded"),
        "{list}"
    );
    let first = listed[0]["dagRunId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(first, subs[0]["dagRunId"], "{list}");

    let (code, details) = s.get(&format!("/dag-runs/tree/top/sub-dag-runs/{first}"));
    assert_eq!(code, 200, "{details}");
    let d = &details["dagRunDetails"];
    assert_eq!(d["name"], "leaf", "{details}");
    assert_eq!(d["rootDAGRunId"], "top", "{details}");
    assert_eq!(d["parentDAGRunId"], "top", "{details}");
    assert_eq!(d["nodes"][0]["step"]["name"], "say", "{details}");
    let (code, log) = s.get(&format!(
        "/dag-runs/tree/top/sub-dag-runs/{first}/steps/say/log"
    ));
    assert_eq!(code, 200, "{log}");
    assert_eq!(log["content"], "leaf x\n");
    let (code, log) = s.get(&format!("/dag-runs/tree/top/sub-dag-runs/{first}/log"));
    assert_eq!(code, 200, "{log}");
    assert!(
        log["content"]
            .as_str()
            .unwrap_or_default()
            .contains("run finished"),
        "{log}"
    );
    let (code, v) = s.get("/dag-runs/tree/top/sub-dag-runs/no-such-run");
    assert_eq!(code, 404, "{v}");
    // A step of a sub-DAG run is marked by hand as a run's step is.
    let (code, v) = s.call(
        "PATCH",
        &format!("/dag-runs/tree/top/sub-dag-runs/{first}/steps/say/status"),
        Some(&json!({"status": 2})),
    );
    assert_eq!(code, 200, "{v}");
    let (_, details) = s.get(&format!("/dag-runs/tree/top/sub-dag-runs/{first}"));
    assert_eq!(
        details["dagRunDetails"]["nodes"][0]["status"], 2,
        "{details}"
    );
    let (code, _) = s.call(
        "PATCH",
        &format!("/dag-runs/tree/top/sub-dag-runs/{first}/steps/nosuch/status"),
        Some(&json!({"status": 2})),
    );
    assert_eq!(code, 404);
    let (code, _) = s.call(
        "PATCH",
        "/dag-runs/tree/top/sub-dag-runs/no-such-run/steps/say/status",
        Some(&json!({"status": 2})),
    );
    assert_eq!(code, 404);

    // The DAG's picture marks the step that runs another DAG.
    let (code, _, html) = s.page("GET", "/dags/tree", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains("runs the DAG leaf (parallel)") && html.contains("class=\"sub-dag\""),
        "{html}"
    );
    let (code, _, html) = s.page("GET", "/dags/tree/runs/top", "", "");
    assert_eq!(code, 200);
    let link = format!("/dags/tree/runs/top/sub/{first}");
    assert!(
        html.contains("Sub-DAG runs") && html.contains(&link),
        "{html}"
    );
    let (code, _, html) = s.page("GET", &link, "", "");
    assert_eq!(code, 200, "{html}");
    assert!(
        html.contains("a sub-DAG run of step") && html.contains("leaf x"),
        "{html}"
    );
}

// C07, E7: a `hitl` step stops the run as `waiting` (the `wait` handler runs); approving
// it through the API, with its required inputs, takes the run up again and the inputs
// become variables; rejecting it ends the run `rejected`.
#[test]
fn a_waiting_step_is_approved_or_rejected_through_the_api() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/ship.yaml"),
        "handlerOn:\n  wait:\n    command: echo \"waiting on ${DAG_WAITING_STEPS}\"\n  failure:\n    command: echo \"failed with $DAG_RUN_STATUS\"\nsteps:\n  - name: build\n    command: echo build >> trail\n  - name: approve\n    type: hitl\n    config:\n      prompt: \"Ship it?\"\n      input: [APPROVED_BY, NOTE]\n      required: [APPROVED_BY]\n  - name: ship\n    command: echo \"approved by ${APPROVED_BY}\"\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/ship/start", &json!({"dagRunId": "one"}));
    assert_eq!(code, 200, "{v}");
    let run = s.until("ship", "one", "waiting");
    assert_eq!(run["status"], 7, "{run}");
    assert_eq!(run["nodes"][1]["statusLabel"], "waiting", "{run}");
    assert_eq!(run["nodes"][2]["statusLabel"], "not_started", "{run}");
    let (_, log) = s.get("/dag-runs/ship/one/steps/onWait/log");
    assert_eq!(log["content"], "waiting on approve\n");

    // Refused: a step that does not wait, an input it does not take, a required one missing.
    let (code, v) = s.post("/dag-runs/ship/one/steps/build/approve", &json!({}));
    assert_eq!(code, 400, "{v}");
    let (code, v) = s.post(
        "/dag-runs/ship/one/steps/approve/approve",
        &json!({"inputs": {"OTHER": "x"}}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("APPROVED_BY, NOTE"),
        "{v}"
    );
    let (code, v) = s.post("/dag-runs/ship/one/steps/approve/approve", &json!({}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("APPROVED_BY"),
        "{v}"
    );

    let (code, v) = s.post(
        "/dag-runs/ship/one/steps/approve/approve",
        &json!({"inputs": {"APPROVED_BY": "alice"}}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        json!({"dagRunId": "one", "stepName": "approve", "resumed": true})
    );
    let run = s.until("ship", "one", "succeeded");
    assert_eq!(run["nodes"][1]["statusLabel"], "succeeded", "{run}");
    let (_, log) = s.get("/dag-runs/ship/one/steps/ship/log");
    assert_eq!(log["content"], "approved by alice\n");
    // The step before the approval ran once.
    assert_eq!(
        std::fs::read_to_string(p.path("dags/trail")).unwrap_or_default(),
        "build\n"
    );
    let (code, v) = s.post("/dag-runs/ship/one/steps/approve/approve", &json!({}));
    assert_eq!(code, 400, "no longer waiting: {v}");

    let (code, v) = s.post("/dags/ship/start", &json!({"dagRunId": "two"}));
    assert_eq!(code, 200, "{v}");
    s.until("ship", "two", "waiting");
    let (code, v) = s.post(
        "/dag-runs/ship/two/steps/approve/reject",
        &json!({"reason": "not today"}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v, json!({"dagRunId": "two", "stepName": "approve"}));
    let run = s.until("ship", "two", "rejected");
    assert_eq!(run["status"], 8, "{run}");
    assert_eq!(run["nodes"][1]["statusLabel"], "rejected", "{run}");
    assert_eq!(run["nodes"][1]["error"], "rejected: not today", "{run}");
    assert_eq!(run["nodes"][2]["statusLabel"], "not_started", "{run}");
    let (_, log) = s.get("/dag-runs/ship/two/steps/onFailure/log");
    assert_eq!(log["content"], "failed with rejected\n");

    // The web UI offers the decision on the waiting step's row, and it counts the same.
    let (code, v) = s.post("/dags/ship/start", &json!({"dagRunId": "three"}));
    assert_eq!(code, 200, "{v}");
    s.until("ship", "three", "waiting");
    let (code, _, html) = s.page("GET", "/dags/ship/runs/three", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains("/dags/ship/approve") && html.contains("value=\"APPROVED_BY= NOTE=\""),
        "{html}"
    );
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, _, html) = s.page(
        "POST",
        "/dags/ship/approve",
        &origin,
        "run=three&step=approve&inputs=NOTE%3Dx",
    );
    assert_eq!(code, 400, "required input missing: {html}");
    assert!(
        html.contains("required inputs missing: APPROVED_BY"),
        "{html}"
    );
    let (code, head, _) = s.page(
        "POST",
        "/dags/ship/approve",
        &origin,
        "run=three&step=approve&inputs=APPROVED_BY%3Dbob",
    );
    assert_eq!(code, 303, "{head}");
    s.until("ship", "three", "succeeded");
    let (_, log) = s.get("/dag-runs/ship/three/steps/ship/log");
    assert_eq!(log["content"], "approved by bob\n");
}

// A Dagu 2.x `human.task` waits as an approval does: the API's approve endpoint (typed
// JSON values, or text as the web UI sends it) completes it against its form, and the
// run goes on with the form's fields as the step's outputs.
#[test]
fn a_human_task_is_completed_through_the_api_and_the_web_ui() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/release.yaml"),
        "steps:\n  - id: review\n    action: human.task\n    with:\n      prompt: How many replicas?\n      form:\n        type: object\n        properties:\n          replicas: {type: integer, minimum: 1, default: 2}\n          region: {type: string}\n          tier: {enum: [gold, silver], default: silver}\n        required: [region]\n  - id: ship\n    depends: review\n    run: echo \"${steps.review.outputs.region} x${steps.review.outputs.replicas}\"\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/release/start", &json!({"dagRunId": "one"}));
    assert_eq!(code, 200, "{v}");
    s.until("release", "one", "waiting");
    let (code, v) = s.post(
        "/dag-runs/release/one/steps/review/approve",
        &json!({"inputs": {"region": "eu", "replicas": "many"}}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`replicas` must be an integer"),
        "{v}"
    );
    let (code, v) = s.post(
        "/dag-runs/release/one/steps/review/approve",
        &json!({"inputs": {"region": "eu", "replicas": 3}}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("release", "one", "succeeded");
    let (_, log) = s.get("/dag-runs/release/one/steps/ship/log");
    assert_eq!(log["content"], "eu x3\n");

    // The web UI shows a field for each of the form's, its default filled in; one left
    // empty is not given (a required one is then refused).
    let (code, v) = s.post("/dags/release/start", &json!({"dagRunId": "two"}));
    assert_eq!(code, 200, "{v}");
    s.until("release", "two", "waiting");
    let (code, _, html) = s.page("GET", "/dags/release/runs/two", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains("How many replicas?")
            && html.contains(r#"<input type="number" name="field.replicas" value="2""#)
            && html.contains(r#"<input type="text" name="field.region" value="" required>"#)
            && html.contains(r#"<select name="field.tier"><option value="gold">gold</option><option value="silver" selected>silver</option></select>"#),
        "{html}"
    );
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, _, html) = s.page(
        "POST",
        "/dags/release/approve",
        &origin,
        "run=two&step=review&task=1&field.replicas=&field.region=",
    );
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("`region` is required"), "{html}");
    let (code, head, _) = s.page(
        "POST",
        "/dags/release/approve",
        &origin,
        "run=two&step=review&task=1&field.replicas=&field.region=us",
    );
    assert_eq!(code, 303, "{head}");
    s.until("release", "two", "succeeded");
    let (_, log) = s.get("/dag-runs/release/two/steps/ship/log");
    assert_eq!(log["content"], "us x2\n");
}

// A sub-DAG run that waits for an approval makes its parent step and run wait; approving
// the child's step (Dagu's sub-dag-runs approve endpoint) takes the whole tree up again.
#[test]
fn a_waiting_sub_dag_run_is_approved_through_its_root_run() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/release.yaml"),
        "steps:\n  - name: gated\n    call: gate\n    output: G\n  - name: after\n    command: echo \"after ${G.outputs.OK}\"\n---\nname: gate\nsteps:\n  - name: prep\n    command: echo prep >> trail\n  - name: ask\n    type: hitl\n    config:\n      input: [WHO]\n  - name: ok\n    command: echo \"ok by ${WHO}\"\n    output: OK\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/release/start", &json!({"dagRunId": "r1"}));
    assert_eq!(code, 200, "{v}");
    let run = s.until("release", "r1", "waiting");
    assert_eq!(run["nodes"][0]["statusLabel"], "waiting", "{run}");
    let (_, subs) = s.get("/dag-runs/release/r1/sub-dag-runs");
    let child = subs["subRuns"][0]["dagRunId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(subs["subRuns"][0]["statusLabel"], "waiting", "{subs}");

    let (code, v) = s.post(
        &format!("/dag-runs/release/r1/sub-dag-runs/{child}/steps/ask/approve"),
        &json!({"inputs": {"WHO": "carol"}}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("release", "r1", "succeeded");
    let (_, log) = s.get("/dag-runs/release/r1/steps/after/log");
    assert_eq!(log["content"], "after ok by carol\n");
    // The same child run went on; what it did before the gate is not done again.
    let (_, subs) = s.get("/dag-runs/release/r1/sub-dag-runs");
    assert_eq!(subs["subRuns"].as_array().map(Vec::len), Some(1), "{subs}");
    assert_eq!(subs["subRuns"][0]["dagRunId"], child.as_str(), "{subs}");
    assert_eq!(
        std::fs::read_to_string(p.path("dags/trail")).unwrap_or_default(),
        "prep\n"
    );
}

// F (configuration): a Dagu installation pointed at by DAGU_HOME is served with its DAGs
// folder and its authentication; keys wharf does not use are reported at start, and an
// authentication setting it cannot honour stops the server from starting.
#[test]
fn a_dagu_installation_is_served_with_its_folder_and_authentication() {
    let p = Place::new();
    let dagu = p.path("dagu-home");
    std::fs::create_dir_all(dagu.join("my-dags")).expect("dagu home");
    std::fs::write(
        dagu.join("my-dags/hello.yaml"),
        "steps:\n  - name: hi\n    command: echo hi\n",
    )
    .expect("dag");
    let config = format!(
        "host: 127.0.0.1\npaths:\n  dagsDir: {}\nauth:\n  basic:\n    username: admin\n    password: s3cret\nui:\n  navbarTitle: Prod\n  navbarColor: \"#aa3300\"\n  maxDashboardPageLimit: 50\nqueues:\n  enabled: true\n  config:\n    - name: q\n      maxConcurrency: 2\ntz: Asia/Tokyo\npermissions:\n  runDAGs: false\n",
        dagu.join("my-dags").display()
    );
    std::fs::write(dagu.join("config.yaml"), &config).expect("config");
    let home = dagu.to_string_lossy().into_owned();
    let s = Server::start_args(&p, &["server", "--port", "0"], &[("DAGU_HOME", &home)]);
    assert!(
        s.said
            .contains("not used by wharf: ui.maxDashboardPageLimit")
            && !s.said.contains("queues")
            && !s.said.contains("navbar"),
        "the queues and the navigation bar's settings are used: {}",
        s.said
    );
    let (code, _, _) = s.raw("GET", "/api/v2/dags", "", "").expect("request");
    assert_eq!(code, 401);
    let auth = format!(
        "Authorization: Basic {}\r\n",
        wharf_testkit::b64("admin:s3cret")
    );
    let (code, _, body) = s.raw("GET", "/api/v2/dags", &auth, "").expect("request");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"hello\""), "{body}");
    // permissions.runDAGs: false: the server shows runs but does not start them.
    let (code, _, body) = s
        .raw("POST", "/api/v2/dags/hello/start", &auth, "{}")
        .expect("request");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("permissions.runDAGs"), "{body}");
    // The pages offer what the server does: no Start, the title and colour configured.
    let (_, _, html) = s.raw("GET", "/", &auth, "").expect("request");
    assert!(
        html.contains(">Prod</a>") && html.contains("background:#aa3300"),
        "{html}"
    );
    assert!(!html.contains(">Start</button>"), "{html}");
    let (_, _, html) = s.raw("GET", "/dags/hello", &auth, "").expect("request");
    assert!(
        !html.contains(">Start</button>") && html.contains("does not start runs"),
        "{html}"
    );
    drop(s);
    // tz: schedules without a zone of their own are in the installation's.
    std::fs::write(
        dagu.join("my-dags/tokyo.yaml"),
        "schedule: \"3 9 * * *\"\nsteps:\n  - echo morning\n",
    )
    .expect("dag");
    let out = p
        .wharf()
        .env("DAGU_HOME", &home)
        .args(["scheduler", "--once-at", "2026-11-29T00:03:00Z"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "tokyo: Started(\"scheduled-20261129T0003Z\")\n");
    std::fs::remove_file(dagu.join("my-dags/tokyo.yaml")).expect("rm");

    // DAGU_* variables: a token, under wharf's own WHARF_* when both are set.
    let s = Server::start_args(
        &p,
        &["server", "--port", "0"],
        &[("DAGU_HOME", &home), ("DAGU_AUTH_TOKEN", "dagu-token")],
    );
    let (code, _, _) = s
        .raw(
            "GET",
            "/api/v2/dags",
            "Authorization: Bearer dagu-token\r\n",
            "",
        )
        .expect("request");
    assert_eq!(code, 200);
    drop(s);

    std::fs::write(
        dagu.join("config.yaml"),
        config.replace("auth:\n", "auth:\n  oidc:\n    clientId: abc\n"),
    )
    .expect("config");
    let out = p
        .wharf()
        .env("DAGU_HOME", &home)
        .args(["server", "--port", "0"])
        .run();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("the authentication setting `auth.oidc.clientId` is not supported"),
        "{}",
        out.stderr
    );
}

// Queues through the API: a run enqueued while the DAG's only place is taken is `queued`
// (status 5); `GET .../dequeue` takes it out; a stop of the DAG empties its queue too.
#[test]
fn runs_are_enqueued_and_dequeued_through_the_api() {
    let p = Place::new();
    let s = Server::start(&p);
    let marker = format!("1005.{}", std::process::id());
    std::fs::write(
        p.path("dags/lane.yaml"),
        format!("maxActiveRuns: 1\nmaxCleanUpTimeSec: 1\nsteps:\n  - name: hold\n    command: sleep {marker}\n"),
    )
    .expect("dag");
    let (code, v) = s.post("/dags/lane/start", &json!({"dagRunId": "first"}));
    assert_eq!(code, 200, "{v}");
    s.until("lane", "first", "running");
    let (code, v) = s.post("/dags/lane/enqueue", &json!({"dagRunId": "second"}));
    assert_eq!(code, 200, "{v}");
    let run = s.until("lane", "second", "queued");
    assert_eq!(run["status"], 5, "{run}");
    let (code, v) = s.post("/dags/lane/enqueue", &json!({"singleton": true}));
    assert_eq!(code, 409, "{v}");
    let (code, v) = s.get("/dag-runs/lane/second/dequeue");
    assert_eq!(code, 200, "{v}");
    s.until("lane", "second", "aborted");
    let (code, v) = s.get("/dag-runs/lane/second/dequeue");
    assert_eq!(code, 400, "{v}");

    let (code, v) = s.post("/dags/lane/enqueue", &json!({"dagRunId": "third"}));
    assert_eq!(code, 200, "{v}");
    s.until("lane", "third", "queued");
    // `queue` puts another DAG's enqueued run in this queue; `dagName` keeps a run under
    // another name.
    std::fs::write(
        p.path("dags/free.yaml"),
        "steps:\n  - name: hi\n    command: echo free\n",
    )
    .expect("dag");
    let (code, v) = s.post(
        "/dags/free/enqueue",
        &json!({"dagRunId": "f1", "queue": "lane"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("free", "f1", "queued");
    let (code, v) = s.post("/dags/free/start", &json!({"queue": "lane"}));
    assert_eq!(code, 400, "{v}");
    let (code, v) = s.post(
        "/dags/free/start",
        &json!({"dagRunId": "n1", "dagName": "free-named"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("free-named", "n1", "succeeded");
    let (code, v) = s.post("/dags/free/start", &json!({"dagName": "no/slash"}));
    assert_eq!(code, 400, "{v}");

    let out = p.wharf().args(["stop", "lane"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    s.until("lane", "first", "aborted");
    s.until("lane", "third", "aborted");
    // The place freed goes to the run of the other DAG that waits in the queue.
    s.until("free", "f1", "succeeded");
    assert!(processes_with_marker_gone(&marker), "processes left behind");
}

fn processes_with_marker_gone(marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !wharf_testkit::processes_with(marker).is_empty() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

// Suspend and resume (CLI and API): a suspended DAG's slots are skipped and recorded so;
// the DAG's answers say it is suspended.
#[test]
fn a_suspended_dag_skips_its_slots_and_records_them() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/nightly.yaml"),
        "schedule: \"CRON_TZ=UTC 0 2 * * *\"\nsteps:\n  - echo night\n",
    )
    .expect("dag");
    let out = p.wharf().args(["suspend", "nightly"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        tick(&p, "2026-11-28T02:00:00Z"),
        "nightly: Suspended(\"scheduled-20261128T0200Z\")\n"
    );
    let runs = history(&p, "nightly");
    assert_eq!(runs[0]["status"], "skipped", "{runs:?}");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("suspended"),
        "{runs:?}"
    );
    let s = Server::start(&p);
    let (_, v) = s.get("/dags/nightly");
    assert_eq!(v["suspended"], true, "{v}");
    let (code, v) = s.post("/dags/nightly/suspend", &json!({"suspend": false}));
    assert_eq!(code, 200, "{v}");
    let (_, v) = s.get("/dags");
    assert_eq!(v["dags"][0]["suspended"], false, "{v}");
    let (code, _) = s.post("/dags/nightly/suspend", &json!({}));
    assert_eq!(code, 400);
    assert_eq!(
        tick(&p, "2026-11-29T02:00:00Z"),
        "nightly: Started(\"scheduled-20261129T0200Z\")\n"
    );
}

/// The status of run `id` of `dag`, once it is `want` (within 20 s).
fn until_status(p: &Place, dag: &str, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = history(p, dag);
        if let Some(run) = runs.iter().find(|r| r["runId"] == id)
            && run["status"] == want
        {
            return run.clone();
        }
        assert!(Instant::now() < deadline, "{id} never {want}: {runs:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// G11, G12: a stop slot stops the running run (it ends aborted); a restart slot stops it,
// waits restartWaitSec, and starts a new run.
#[test]
fn stop_and_restart_schedules_stop_and_restart_the_running_run() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/office.yaml"),
        "schedule:\n  start: \"CRON_TZ=UTC 0 8 * * *\"\n  stop: \"CRON_TZ=UTC 0 18 * * *\"\n  restart: \"CRON_TZ=UTC 0 12 * * *\"\nrestartWaitSec: 1\nsteps:\n  - name: serve\n    command: sleep 60\n",
    )
    .expect("dag");
    assert_eq!(
        tick(&p, "2026-11-30T08:00:00Z"),
        "office: Started(\"scheduled-20261130T0800Z\")\n"
    );
    until_status(&p, "office", "scheduled-20261130T0800Z", "running");
    assert_eq!(
        tick(&p, "2026-11-30T12:00:00Z"),
        "office: Restarted(\"restart-20261130T1200Z\")\n"
    );
    until_status(&p, "office", "scheduled-20261130T0800Z", "aborted");
    let restarted = until_status(&p, "office", "restart-20261130T1200Z", "running");
    let stopped_at = history(&p, "office")
        .iter()
        .find(|r| r["runId"] == "scheduled-20261130T0800Z")
        .and_then(|r| r["finishedAt"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let ts = |v: &str| v.parse::<jiff::Timestamp>().expect("a time");
    let waited = ts(restarted["startedAt"].as_str().unwrap_or_default()) - ts(&stopped_at);
    assert!(
        waited.get_seconds() >= 1 || waited.get_milliseconds() >= 900,
        "restartWaitSec: {waited:?}"
    );
    assert_eq!(
        tick(&p, "2026-11-30T18:00:00Z"),
        "office: Stopped(1)\n",
        "the stop slot stops the restarted run"
    );
    until_status(&p, "office", "restart-20261130T1200Z", "aborted");
    assert_eq!(
        tick(&p, "2026-11-30T18:00:00Z"),
        "office: AlreadyThere(\"stop at scheduled-20261130T1800Z\")\n",
        "a slot is acted on once"
    );
}

// Missed slots: within `scheduler.catchupWindow` the latest missed slot still runs; the
// others are recorded as missed.
#[test]
fn a_missed_slot_within_the_catch_up_window_runs_late() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::create_dir_all(p.home()).expect("home");
    std::fs::write(
        p.home().join("config.yaml"),
        "scheduler:\n  catchupWindow: 15m\n",
    )
    .expect("config");
    std::fs::write(
        p.path("dags/tenmin.yaml"),
        "schedule: \"CRON_TZ=UTC */10 * * * *\"\nsteps:\n  - echo tick\n",
    )
    .expect("dag");
    assert_eq!(
        tick(&p, "2026-11-30T10:00:00Z"),
        "tenmin: Started(\"scheduled-20261130T1000Z\")\n"
    );
    until_status(&p, "tenmin", "scheduled-20261130T1000Z", "succeeded");
    // Down from 10:01 to 10:34: 10:10 and 10:20 are too late, 10:30 is 4 minutes late.
    assert_eq!(
        tick(&p, "2026-11-30T10:34:00Z"),
        "tenmin: Started(\"scheduled-20261130T1030Z\")\n\
         tenmin: Missed(\"missed-20261130T1010Z-20261130T1020Z\", 2)\n"
    );
    until_status(&p, "tenmin", "scheduled-20261130T1030Z", "succeeded");
    let missed = until_status(
        &p,
        "tenmin",
        "missed-20261130T1010Z-20261130T1020Z",
        "skipped",
    );
    assert!(
        missed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("later than scheduler.catchupWindow"),
        "{missed}"
    );
}

// Two schedulers on one home at the same slot: one starts the run, the other leaves it.
#[test]
fn two_schedulers_on_one_home_fire_a_slot_once() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/once.yaml"),
        "schedule: \"CRON_TZ=UTC 30 9 * * *\"\nsteps:\n  - echo ran >> trail\n",
    )
    .expect("dag");
    for round in 0..5 {
        let at = format!("2026-12-0{}T09:30:00Z", round + 1);
        let spawn = || {
            Command::new(env!("CARGO_BIN_EXE_wharf"))
                .args(["scheduler", "--once-at", &at, "--dags"])
                .arg(p.path("dags"))
                .env("WHARF_HOME", p.home())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("scheduler")
        };
        let (a, b) = (spawn(), spawn());
        let said: String = [a, b]
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().expect("output");
                assert!(out.status.success(), "{out:?}");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect();
        assert_eq!(said.matches("Started(").count(), 1, "round {round}: {said}");
        assert_eq!(
            said.matches("AlreadyThere(").count(),
            1,
            "round {round}: {said}"
        );
        wait_ended(&p, "once");
    }
    assert_eq!(
        std::fs::read_to_string(p.path("dags/trail")).unwrap_or_default(),
        "ran\n".repeat(5)
    );
}

// API: `POST /dag-runs` and `/dag-runs/enqueue` run a DAG sent inline; `GET /queues` shows
// each queue's running and waiting runs, a global queue of the configuration included.
#[test]
fn inline_specs_run_and_queues_are_listed_through_the_api() {
    let p = Place::new();
    std::fs::create_dir_all(p.home()).expect("home");
    std::fs::write(
        p.home().join("config.yaml"),
        "queues:\n  config:\n    - name: batch\n      maxConcurrency: 1\n",
    )
    .expect("config");
    let s = Server::start(&p);
    let (_, v) = s.get("/queues");
    assert_eq!(
        v,
        json!({"queues": [{"name": "batch", "type": "global", "maxConcurrency": 1, "running": [], "queued": []}],
               "summary": {"totalQueues": 1, "totalRunning": 0, "totalQueued": 0, "totalCapacity": 1, "utilizationPercentage": 0.0}})
    );
    let marker = format!("1007.{}", std::process::id());
    let (code, v) = s.post(
        "/dag-runs",
        &json!({"spec": format!("name: inline\nqueue: batch\nmaxCleanUpTimeSec: 1\nsteps:\n  - name: hold\n    command: sleep {marker}\n"), "dagRunId": "i1"}),
    );
    assert_eq!((code, v), (200, json!({"dagRunId": "i1"})));
    s.until("inline", "i1", "running");
    {
        use std::os::unix::fs::PermissionsExt;
        let kept = std::fs::metadata(p.home().join("specs/i1/inline.yaml")).expect("kept spec");
        assert_eq!(
            kept.permissions().mode() & 0o777,
            0o600,
            "its env may hold credentials"
        );
    }
    let (code, v) = s.post(
        "/dag-runs/enqueue",
        &json!({"spec": "queue: batch\nparams: WHO=x\nsteps:\n  - name: greet\n    command: echo hi $WHO\n", "name": "second", "dagRunId": "i2", "params": "WHO=api"}),
    );
    assert_eq!((code, v), (200, json!({"dagRunId": "i2"})));
    s.until("second", "i2", "queued");
    let (_, v) = s.get("/queues");
    assert_eq!(v["queues"][0]["name"], "batch", "{v}");
    assert_eq!(v["queues"][0]["running"][0]["dagRunId"], "i1", "{v}");
    assert_eq!(v["queues"][0]["queued"][0]["dagRunId"], "i2", "{v}");
    assert_eq!(
        v["summary"],
        json!({"totalQueues": 1, "totalRunning": 1, "totalQueued": 1, "totalCapacity": 1, "utilizationPercentage": 100.0})
    );

    // Refused: no name, an invalid spec, an id already used.
    let (code, v) = s.post("/dag-runs", &json!({"spec": "steps:\n  - echo x\n"}));
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap_or_default().contains("name"),
        "{v}"
    );
    let (code, v) = s.post(
        "/dag-runs",
        &json!({"spec": "steps:\n  - name: a\n    depends: b\n", "name": "bad"}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid"),
        "{v}"
    );
    let (code, v) = s.post(
        "/dag-runs",
        &json!({"spec": "name: inline\nsteps:\n  - echo x\n", "dagRunId": "i1"}),
    );
    assert_eq!(code, 409, "{v}");

    let (code, v) = s.post("/dag-runs/inline/i1/stop", &json!({}));
    assert_eq!(code, 200, "{v}");
    s.until("inline", "i1", "aborted");
    s.until("second", "i2", "succeeded");
    let (_, log) = s.get("/dag-runs/second/i2/steps/greet/log");
    assert_eq!(log["content"], "hi api\n");
    let (_, v) = s.get("/queues");
    assert_eq!(
        v["summary"],
        json!({"totalQueues": 1, "totalRunning": 0, "totalQueued": 0, "totalCapacity": 1, "utilizationPercentage": 0.0})
    );
}

// Done when of the configuration: a Dagu installation (config.yaml + base.yaml + DAGs
// folder) pointed at by DAGU_HOME is served by `wharf start-all` with its authentication,
// its global queues and its base configuration.
#[test]
fn start_all_serves_a_dagu_home_with_its_auth_queues_and_base() {
    let p = Place::new();
    let dagu = p.path("dagu-all");
    std::fs::create_dir_all(dagu.join("dags")).expect("dagu home");
    std::fs::write(
        dagu.join("config.yaml"),
        "auth:\n  token:\n    value: t0ken\nqueues:\n  enabled: true\n  config:\n    - name: batch\n      maxConcurrency: 1\n",
    )
    .expect("config");
    std::fs::write(
        dagu.join("base.yaml"),
        "env:\n  - GREETING: hello from base\n",
    )
    .expect("base");
    std::fs::write(
        dagu.join("dags/greet.yaml"),
        "queue: batch\nsteps:\n  - name: say\n    command: echo \"$GREETING\"\n",
    )
    .expect("dag");
    let home = dagu.to_string_lossy().into_owned();
    let s = Server::start_args(&p, &["start-all", "--port", "0"], &[("DAGU_HOME", &home)]);
    let auth = "Authorization: Bearer t0ken\r\nContent-Type: application/json\r\n";
    let call = |method: &str, path: &str, body: &str| {
        let (code, _, body) = s
            .raw(method, &format!("/api/v2{path}"), auth, body)
            .expect("request");
        (
            code,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    let (code, _, _) = s.raw("GET", "/api/v2/queues", "", "").expect("request");
    assert_eq!(code, 401, "the token is asked for");
    for id in ["g1", "g2"] {
        let (code, v) = call(
            "POST",
            "/dags/greet/enqueue",
            &json!({"dagRunId": id}).to_string(),
        );
        assert_eq!(code, 200, "{v}");
    }
    let (_, v) = call("GET", "/queues", "");
    assert_eq!(v["queues"][0]["name"], "batch", "{v}");
    assert_eq!(v["queues"][0]["type"], "global", "{v}");
    assert_eq!(v["queues"][0]["maxConcurrency"], 1, "{v}");
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in ["g1", "g2"] {
        loop {
            let (_, v) = call("GET", &format!("/dag-runs/greet/{id}"), "");
            if v["dagRunDetails"]["statusLabel"] == "succeeded" {
                break;
            }
            assert!(Instant::now() < deadline, "{v}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (_, log) = call("GET", &format!("/dag-runs/greet/{id}/steps/say/log"), "");
        assert_eq!(log["content"], "hello from base\n");
    }
    let (_, a) = call("GET", "/dag-runs/greet/g1", "");
    let (_, b) = call("GET", "/dag-runs/greet/g2", "");
    assert!(
        a["dagRunDetails"]["finishedAt"].as_str() <= b["dagRunDetails"]["startedAt"].as_str(),
        "one place: g2 started after g1 ended: {a} {b}"
    );
}

// API: search, tags, rename, a step's status set by hand, Prometheus metrics.
#[test]
fn dags_are_searched_tagged_renamed_and_steps_marked_by_hand() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/alpha.yaml"),
        "tags: [nightly, etl]\nenv:\n  - DB_PASSWORD: hunter2\nsteps:\n  - name: hello\n    command: echo hello world\n  - name: fail\n    command: \"false\"\n",
    )
    .expect("dag");
    std::fs::write(
        p.path("dags/beta.yaml"),
        "tags: [etl]\nsteps:\n  - echo other\n",
    )
    .expect("dag");
    let (code, v) = s.get("/dags/search?q=HELLO");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["results"][0]["name"], "alpha");
    assert_eq!(v["results"][0]["matches"][0]["lineNumber"], 5, "{v}");
    let (_, v) = s.get("/dags/search?q=DB_PASSWORD");
    let line = v["results"][0]["matches"][0]["line"]
        .as_str()
        .unwrap_or_default();
    assert!(
        line.contains("<redacted>") && !line.contains("hunter2"),
        "{v}"
    );
    let (code, _) = s.get("/dags/search");
    assert_eq!(code, 400);
    let (_, v) = s.get("/dags/tags");
    assert_eq!(v, json!({"tags": ["etl", "nightly"], "errors": []}));

    let (code, v) = s.post("/dags/alpha/start", &json!({"dagRunId": "r1"}));
    assert_eq!(code, 200, "{v}");
    s.until("alpha", "r1", "failed");
    let (code, v) = s.call(
        "PATCH",
        "/dag-runs/alpha/r1/steps/fail/status",
        Some(&json!({"status": 4})),
    );
    assert_eq!(code, 200, "{v}");
    let (_, v) = s.get("/dag-runs/alpha/r1");
    let fail = v["dagRunDetails"]["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["step"]["name"] == "fail"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(fail["status"], 4, "{v}");
    let (code, _) = s.call(
        "PATCH",
        "/dag-runs/alpha/r1/steps/fail/status",
        Some(&json!({"status": 1})),
    );
    assert_eq!(code, 400);
    let (code, _) = s.call(
        "PATCH",
        "/dag-runs/alpha/r1/steps/nosuch/status",
        Some(&json!({"status": 2})),
    );
    assert_eq!(code, 404);

    let (code, v) = s.post("/dags/alpha/rename", &json!({"newFileName": "beta"}));
    assert_eq!(code, 409, "{v}");
    let (code, _) = s.post("/dags/alpha/rename", &json!({"newFileName": "no/way"}));
    assert_eq!(code, 400);
    let (code, v) = s.post("/dags/alpha/rename", &json!({"newFileName": "gamma"}));
    assert_eq!(code, 200, "{v}");
    assert!(p.path("dags/gamma.yaml").is_file() && !p.path("dags/alpha.yaml").exists());
    let (_, v) = s.get("/dag-runs/gamma/r1");
    assert_eq!(
        v["dagRunDetails"]["dagRunId"], "r1",
        "the runs went with it: {v}"
    );
    let (code, _) = s.get("/dags/alpha");
    assert_eq!(code, 404);

    // The runs across DAGs, filtered as Dagu filters them.
    let (_, v) = s.get("/dag-runs?status=2");
    assert_eq!(v["dagRuns"].as_array().map(Vec::len), Some(1), "{v}");
    let (_, v) = s.get("/dag-runs?status=4");
    assert_eq!(v["dagRuns"].as_array().map(Vec::len), Some(0), "{v}");
    let (_, v) = s.get("/dag-runs?fromDate=4102444800");
    assert_eq!(
        v["dagRuns"].as_array().map(Vec::len),
        Some(0),
        "nothing after 2100: {v}"
    );
    let (_, v) = s.get("/dag-runs?dagRunId=r1");
    assert_eq!(v["dagRuns"][0]["dagRunId"], "r1", "{v}");
    let (code, _) = s.get("/dag-runs?status=bad");
    assert_eq!(code, 400);

    let (code, _, text) = s.raw("GET", "/api/v2/metrics", "", "").expect("request");
    assert_eq!(code, 200);
    assert!(text.contains("dagu_dags_total 2\n"), "{text}");
    assert!(
        text.contains("dagu_dag_runs_total{status=\"error\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE dagu_uptime_seconds gauge"), "{text}");
}

// W: an invalid DAG is shown, not offered to start; params with an open quote are refused
// (UI and API) with the reason; a succeeded run has nothing to retry and says so; a step's
// whole log is served (and as a download); all runs and the queues have pages.
#[test]
fn the_web_ui_says_what_it_cannot_do_and_serves_whole_logs() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/broken.yaml"),
        "steps:\n  - name: a\n    depends: nope\n",
    )
    .expect("dag");
    std::fs::write(
        p.path("dags/words.yaml"),
        "params: WHO=x\nhandlerOn:\n  exit:\n    command: echo bye\nsteps:\n  - name: say\n    command: for i in 1 2 3; do echo \"line $i $WHO\"; done; echo oops >&2\n    output: SAID\n",
    )
    .expect("dag");
    let (code, _, html) = s.page("GET", "/dags/broken", "", "");
    assert_eq!(code, 200);
    assert!(
        !html.contains(">Start</button>") && html.contains("cannot start"),
        "{html}"
    );

    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, _, html) = s.page("POST", "/dags/words/start", &origin, "params=WHO%3D%22open");
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("quote that is not closed"), "{html}");
    let (code, v) = s.post("/dags/words/start", &json!({"params": "WHO=\"open"}));
    assert_eq!(code, 400, "{v}");

    let (code, v) = s.post(
        "/dags/words/start",
        &json!({"dagRunId": "w1", "params": "WHO=ui"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("words", "w1", "succeeded");
    let (_, _, html) = s.page("GET", "/dags/words/runs/w1", "", "");
    assert!(html.contains("<code>WHO=ui</code>"), "the params: {html}");
    assert!(html.contains("<code>SAID</code>"), "the outputs: {html}");
    assert!(
        html.contains("nothing to retry") && !html.contains(">Retry</button>"),
        "{html}"
    );
    assert!(html.contains(">succeeded</span>"), "{html}");
    let (code, _, html) = s.page("POST", "/dags/words/retry", &origin, "run=w1");
    assert_eq!(code, 400);
    assert!(
        html.contains("nothing to run again") || html.contains("no failed or stopped step"),
        "{html}"
    );

    let (code, head, text) = s.page("GET", "/dags/words/runs/w1/steps/say/log", "", "");
    assert_eq!(code, 200);
    assert_eq!(text, "line 1 ui\nline 2 ui\nline 3 ui\n");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    let (_, head, text) = s.page(
        "GET",
        "/dags/words/runs/w1/steps/say/log?stream=stderr&download=1",
        "",
        "",
    );
    assert_eq!(text, "oops\n");
    assert!(
        head.contains("attachment; filename=\"words-w1-say.err\""),
        "{head}"
    );

    let (code, _, html) = s.page("GET", "/runs?status=succeeded", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains(">w1</a>") && html.contains("href=\"/dags/words/runs/w1\""),
        "{html}"
    );
    let (_, _, html) = s.page("GET", "/runs?status=failed", "", "");
    assert!(html.contains("No runs that match"), "{html}");
    let (code, _, html) = s.page("GET", "/queues", "", "");
    assert_eq!(code, 200);
    assert!(html.contains("<h1>Queues</h1>"), "{html}");
}

// W: the start form has a field per named param (its default filled in, a credential's
// left empty and kept) and one for the positional params.
#[test]
fn the_start_form_has_a_field_per_param() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/deploy.yaml"),
        "params: first ENV=dev API_TOKEN=t0k-1009\nsteps:\n  - name: go\n    command: echo \"$1 $ENV $API_TOKEN\"\n",
    )
    .expect("dag");
    let (_, _, html) = s.page("GET", "/dags/deploy", "", "");
    assert!(html.contains("name=\"p.ENV\" value=\"dev\""), "{html}");
    assert!(html.contains("name=\"p.API_TOKEN\" value=\"\""), "{html}");
    assert!(
        html.contains("name=\"args\" size=\"30\" value=\"first\""),
        "{html}"
    );
    assert!(
        !html.contains("t0k-1009"),
        "a credential's default is not shown: {html}"
    );
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, head, body) = s.page(
        "POST",
        "/dags/deploy/start",
        &origin,
        "args=one&p.ENV=prod&p.API_TOKEN=",
    );
    assert_eq!(code, 303, "{body}");
    let run = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .and_then(|l| l.trim().rsplit('/').next())
        .expect("the run's page")
        .to_owned();
    s.until("deploy", &run, "succeeded");
    let (_, log) = s.get(&format!("/dag-runs/deploy/{run}/steps/go/log"));
    assert_eq!(log["content"], "one prod t0k-1009\n");
    let (code, _, body) = s.page(
        "POST",
        "/dags/deploy/start",
        &origin,
        "args=%22open&p.ENV=x",
    );
    assert_eq!(code, 400);
    assert!(body.contains("not closed"), "{body}");
}

// W: the dashboard counts the period's runs by status, draws them on a timeline, and lists
// the failures first.
#[test]
fn the_dashboard_counts_runs_and_puts_failures_first() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(p.path("dags/good.yaml"), "steps:\n  - \"true\"\n").expect("dag");
    std::fs::write(p.path("dags/bad.yaml"), "steps:\n  - \"false\"\n").expect("dag");
    for (dag, id, status) in [
        ("good", "g1", "succeeded"),
        ("good", "g2", "succeeded"),
        ("bad", "b1", "failed"),
    ] {
        let (code, v) = s.post(&format!("/dags/{dag}/start"), &json!({"dagRunId": id}));
        assert_eq!(code, 200, "{v}");
        s.until(dag, id, status);
    }
    let (code, _, html) = s.page("GET", "/dashboard", "", "");
    assert_eq!(code, 200);
    assert!(html.contains("3 runs in the last 24h"), "{html}");
    assert!(
        html.contains(">failed: 1</a>") && html.contains(">succeeded: 2</a>"),
        "{html}"
    );
    assert_eq!(
        html.matches("<span class=\"succeeded\" style=\"left:")
            .count(),
        2,
        "{html}"
    );
    let failures = html
        .find("Failed, aborted, rejected")
        .expect("the failures");
    let latest = html.find("<h2>Latest</h2>").expect("the latest");
    assert!(
        failures < latest && html[failures..latest].contains(">b1</a>"),
        "{html}"
    );
    assert!(!html[failures..latest].contains(">g1</a>"), "{html}");
    let (_, _, html) = s.page("GET", "/dashboard?period=30d", "", "");
    assert!(html.contains("3 runs in the last 30d"), "{html}");
}

// W: the DAG list sorts (failures first by status), links tags, and starts, stops and
// suspends from the row.
#[test]
fn the_dag_list_sorts_and_acts_from_its_rows() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/aa-good.yaml"),
        "tags: [daily]\nsteps:\n  - \"true\"\n",
    )
    .expect("dag");
    std::fs::write(p.path("dags/zz-bad.yaml"), "steps:\n  - \"false\"\n").expect("dag");
    let origin = format!("Origin: http://{}\r\n", s.addr);
    for dag in ["aa-good", "zz-bad"] {
        let (code, _, body) = s.page("POST", &format!("/dags/{dag}/start"), &origin, "");
        assert_eq!(code, 303, "start from the row: {body}");
    }
    s.until("aa-good", "latest", "succeeded");
    s.until("zz-bad", "latest", "failed");
    let (_, _, html) = s.page("GET", "/", "", "");
    assert!(
        html.find("aa-good").expect("good") < html.find("zz-bad").expect("bad"),
        "by name"
    );
    assert!(
        html.contains("<a class=\"chip\" href=\"?tag=daily\">daily</a>"),
        "{html}"
    );
    let (_, _, html) = s.page("GET", "/?sort=status", "", "");
    assert!(
        html.find(">zz-bad<").expect("bad") < html.find(">aa-good<").expect("good"),
        "failures first: {html}"
    );
    // By the next scheduled run (DAGs without a schedule last), in the page and the API;
    // either way round.
    std::fs::write(
        p.path("dags/mid.yaml"),
        "schedule: \"0 12 31 12 *\"\nsteps:\n  - \"true\"\n",
    )
    .expect("dag");
    std::fs::write(
        p.path("dags/Zoo.yaml"),
        "schedule: \"* * * * *\"\nsteps:\n  - \"true\"\n",
    )
    .expect("dag");
    let (_, _, html) = s.page("GET", "/?sort=next", "", "");
    let order = |html: &str, names: &[&str]| {
        names
            .iter()
            .map(|n| {
                html.find(&format!(">{n}<"))
                    .unwrap_or_else(|| panic!("{n}: {html}"))
            })
            .collect::<Vec<_>>()
            .is_sorted()
    };
    assert!(order(&html, &["Zoo", "mid", "aa-good", "zz-bad"]), "{html}");
    let names = |v: &Value| -> Vec<String> {
        v["dags"]
            .as_array()
            .expect("dags")
            .iter()
            .map(|d| d["fileName"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, v) = s.get("/dags?sort=nextRun");
    assert_eq!(names(&v), ["Zoo", "mid", "aa-good", "zz-bad"]);
    let (_, v) = s.get("/dags?sort=name&order=desc");
    assert_eq!(
        names(&v),
        ["zz-bad", "Zoo", "mid", "aa-good"],
        "letters of either case together"
    );
    let (code, v) = s.get("/dags?sort=size");
    assert_eq!(code, 400, "{v}");
    // Dagu's `ui.dags.sortField`/`sortOrder`: the order when the page names none.
    let other = Server::start_with(
        &p,
        &[
            ("DAGU_UI_DAGS_SORT_FIELD", "nextRun"),
            ("DAGU_UI_DAGS_SORT_ORDER", "desc"),
        ],
    );
    let (_, _, html) = other.page("GET", "/", "", "");
    assert!(order(&html, &["zz-bad", "aa-good", "mid", "Zoo"]), "{html}");
    drop(other);
    std::fs::remove_file(p.path("dags/mid.yaml")).expect("rm");
    std::fs::remove_file(p.path("dags/Zoo.yaml")).expect("rm");

    let (code, _, _) = s.page("POST", "/dags/aa-good/suspend", &origin, "");
    assert_eq!(code, 303);
    let (_, v) = s.get("/dags/aa-good");
    assert_eq!(v["suspended"], true, "{v}");
    let (_, _, html) = s.page("GET", "/", "", "");
    assert!(
        html.contains(">Resume</button>") && html.contains("st skipped\">suspended"),
        "{html}"
    );
    let (code, _, _) = s.page("POST", "/dags/aa-good/resume", &origin, "");
    assert_eq!(code, 303);
    let (_, v) = s.get("/dags/aa-good");
    assert_eq!(v["suspended"], false, "{v}");

    // G02: `group` heads the DAGs that share it (those without one first), filters the
    // list, and is in the API's DAG.
    for (file, group) in [
        ("mm-load", "Data & Loads"),
        ("bb-load", "Data & Loads"),
        ("cc-mail", "Alerts"),
    ] {
        std::fs::write(
            p.path(&format!("dags/{file}.yaml")),
            format!("group: {group}\nsteps:\n  - \"true\"\n"),
        )
        .expect("dag");
    }
    let (_, _, html) = s.page("GET", "/", "", "");
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle}: {html}"))
    };
    let alerts = at("<a href=\"?group=Alerts\">Alerts</a> <span class=\"muted\">(1)</span>");
    let data = at(
        "<a href=\"?group=Data+%26+Loads\">Data &#38; Loads</a> <span class=\"muted\">(2)</span>",
    );
    assert!(at(">zz-bad<") < alerts, "ungrouped first: {html}");
    assert!(alerts < at(">cc-mail<") && at(">cc-mail<") < data, "{html}");
    assert!(
        data < at(">bb-load<") && at(">bb-load<") < at(">mm-load<"),
        "{html}"
    );
    let (_, _, html) = s.page("GET", "/?group=Data+%26+Loads", "", "");
    assert!(
        html.contains(">bb-load<") && html.contains(">mm-load<"),
        "{html}"
    );
    assert!(
        !html.contains(">cc-mail<") && !html.contains(">aa-good<"),
        "{html}"
    );
    assert!(html.contains("2 DAGs in"), "{html}");
    let (_, _, html) = s.page("GET", "/dags/bb-load", "", "");
    assert!(
        html.contains("href=\"/?group=Data+%26+Loads\">group Data &#38; Loads</a>"),
        "{html}"
    );
    let (_, v) = s.get("/dags/bb-load");
    assert_eq!(v["dag"]["group"], "Data & Loads", "{v}");
    let (_, v) = s.get("/dags?name=cc-mail");
    assert_eq!(v["dags"][0]["dag"]["group"], "Alerts", "{v}");
    let (_, v) = s.get("/dags?name=aa-good");
    assert!(v["dags"][0]["dag"].get("group").is_none(), "{v}");
}

// W: a DAG is created from the list, edited in its page (saved only when valid, the text
// kept to fix when not, credentials never shown and never lost) and deleted.
#[test]
fn dags_are_created_edited_and_deleted_from_the_pages() {
    let p = Place::new();
    let s = Server::start(&p);
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, head, _) = s.page("POST", "/new-dag", &origin, "name=fresh");
    assert_eq!(code, 303, "{head}");
    assert!(p.path("dags/fresh.yaml").is_file());
    let (code, _, html) = s.page("POST", "/new-dag", &origin, "name=fresh");
    assert_eq!(code, 400);
    assert!(html.contains("exists already"), "{html}");
    let (code, _, _) = s.page("POST", "/new-dag", &origin, "name=..%2Fout");
    assert_eq!(code, 400);

    std::fs::write(
        p.path("dags/fresh.yaml"),
        "env:\n  - API_TOKEN: hunter2-1010\nsteps:\n  - name: hello\n    command: echo hello\n",
    )
    .expect("dag");
    let (_, _, html) = s.page("GET", "/dags/fresh", "", "");
    assert!(
        html.contains("<textarea name=\"spec\"") && !html.contains("hunter2-1010"),
        "{html}"
    );
    // An invalid text is not saved; the page keeps it, with the errors.
    let bad = "env:\n  - API_TOKEN: <redacted>\nsteps:\n  - name: hello\n    depends: nope\n";
    let form = |spec: &str| format!("spec={}", wharf_testkit::url_encode(spec));
    let (code, _, html) = s.page("POST", "/dags/fresh/save", &origin, &form(bad));
    assert_eq!(code, 400, "{html}");
    assert!(
        html.contains("not saved") && html.contains("nope"),
        "{html}"
    );
    assert!(html.contains("depends: nope"), "the text to fix: {html}");
    assert!(
        std::fs::read_to_string(p.path("dags/fresh.yaml"))
            .unwrap_or_default()
            .contains("command: echo hello"),
        "the file is as it was"
    );
    let good =
        "env:\n  - API_TOKEN: <redacted>\nsteps:\n  - name: hello\n    command: echo changed\n";
    let (code, _, _) = s.page("POST", "/dags/fresh/save", &origin, &form(good));
    assert_eq!(code, 303);
    let saved = std::fs::read_to_string(p.path("dags/fresh.yaml")).unwrap_or_default();
    assert!(
        saved.contains("echo changed") && saved.contains("hunter2-1010"),
        "{saved}"
    );
    let (code, _, _) = s.page("POST", "/dags/fresh/delete", &origin, "");
    assert_eq!(code, 303);
    assert!(!p.path("dags/fresh.yaml").exists());
}

// W: a run is retried from one chosen step (UI and API `stepName`) or run again as new
// with its params.
#[test]
fn a_run_is_retried_from_a_step_or_run_again_as_new() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/twice.yaml"),
        "params: WHO=x\nsteps:\n  - name: first\n    command: echo first $WHO >> trail\n  - name: second\n    command: echo second $WHO >> trail\n",
    )
    .expect("dag");
    let (code, v) = s.post(
        "/dags/twice/start",
        &json!({"dagRunId": "t1", "params": "WHO=api"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("twice", "t1", "succeeded");
    let (_, _, html) = s.page("GET", "/dags/twice/runs/t1", "", "");
    assert!(
        html.contains("Retry this step") && html.contains("Run again as new"),
        "{html}"
    );
    let (code, v) = s.post("/dag-runs/twice/t1/retry", &json!({"stepName": "nosuch"}));
    assert_eq!(code, 404, "{v}");
    let (code, v) = s.post("/dag-runs/twice/t1/retry", &json!({"stepName": "second"}));
    assert_eq!(code, 200, "{v}");
    let trail = || std::fs::read_to_string(p.path("dags/trail")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while trail().lines().count() < 3 {
        assert!(Instant::now() < deadline, "{}", trail());
        std::thread::sleep(Duration::from_millis(50));
    }
    s.until("twice", "t1", "succeeded");
    assert_eq!(
        trail(),
        "first api\nsecond api\nsecond api\n",
        "the chosen step alone"
    );
    // With `downstream`, the chosen step and every step after it.
    let (code, v) = s.post(
        "/dag-runs/twice/t1/retry",
        &json!({"stepName": "first", "downstream": true}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("twice", "t1", "succeeded");
    assert_eq!(
        trail(),
        "first api\nsecond api\nsecond api\nfirst api\nsecond api\n"
    );
    // A step marked by hand from the page; the next retry runs it again.
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, head, _) = s.page(
        "POST",
        "/dags/twice/mark",
        &origin,
        "run=t1&step=second&status=failed",
    );
    assert_eq!(code, 303, "{head}");
    let (_, v) = s.get("/dag-runs/twice/t1");
    let nodes = v["dagRunDetails"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let second = nodes
        .iter()
        .find(|n| n["step"]["name"] == "second")
        .cloned()
        .unwrap_or_default();
    assert_eq!(second["statusLabel"], "failed", "{v}");
    let (code, _, html) = s.page(
        "POST",
        "/dags/twice/mark",
        &origin,
        "run=t1&step=second&status=running",
    );
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("succeeded or failed"), "{html}");
    let (code, head, _) = s.page("POST", "/dags/twice/rerun", &origin, "run=t1");
    assert_eq!(code, 303, "{head}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while trail().lines().count() < 7 {
        assert!(Instant::now() < deadline, "{}", trail());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        trail().ends_with("first api\nsecond api\n"),
        "a new run, the same params: {}",
        trail()
    );
}

// W: the queues page shows each queue's runs and takes a waiting run out of its queue.
#[test]
fn the_queues_page_shows_and_dequeues_waiting_runs() {
    let p = Place::new();
    let s = Server::start(&p);
    let marker = format!("1011.{}", std::process::id());
    std::fs::write(
        p.path("dags/lane.yaml"),
        format!("maxActiveRuns: 1\nmaxCleanUpTimeSec: 1\nsteps:\n  - name: hold\n    command: sleep {marker}\n"),
    )
    .expect("dag");
    let (code, v) = s.post("/dags/lane/start", &json!({"dagRunId": "q1"}));
    assert_eq!(code, 200, "{v}");
    s.until("lane", "q1", "running");
    let (code, v) = s.post("/dags/lane/enqueue", &json!({"dagRunId": "q2"}));
    assert_eq!(code, 200, "{v}");
    s.until("lane", "q2", "queued");
    let (_, _, html) = s.page("GET", "/queues", "", "");
    assert!(
        html.contains("1 of 1") && html.contains(">q1</a>") && html.contains("q2</span>"),
        "{html}"
    );
    assert!(html.contains(">Dequeue</button>"), "{html}");
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, _, _) = s.page("POST", "/dags/lane/dequeue", &origin, "run=q2");
    assert_eq!(code, 303);
    s.until("lane", "q2", "aborted");
    let (code, _, html) = s.page("POST", "/dags/lane/dequeue", &origin, "run=q2");
    assert_eq!(code, 400);
    assert!(html.contains("is not queued"), "{html}");
    // Enqueued from the DAG's page with a chosen run id: it waits for the place.
    let (_, _, html) = s.page("GET", "/dags/lane", "", "");
    assert!(
        html.contains(">Enqueue</button>") && html.contains("name=\"run_id\""),
        "{html}"
    );
    let (code, head, _) = s.page("POST", "/dags/lane/enqueue", &origin, "run_id=q3");
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("/dags/lane/runs/q3"), "{head}");
    s.until("lane", "q3", "queued");
    let (code, _, html) = s.page("POST", "/dags/lane/enqueue", &origin, "run_id=q3");
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("q3"), "the taken run id: {html}");
    let (code, _, html) = s.page("POST", "/dags/lane/start", &origin, "run_id=no%20spaces");
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("letters, digits"), "{html}");
    let (code, _, _) = s.page("POST", "/dags/lane/dequeue", &origin, "run=q3");
    assert_eq!(code, 303);
    let (code, v) = s.post("/dag-runs/lane/q1/stop", &json!({}));
    assert_eq!(code, 200, "{v}");
    s.until("lane", "q1", "aborted");
}

// W: the DAG's picture draws its handlers (dashed, in a column of their own) and cuts
// long names with an ellipsis.
#[test]
fn the_graph_draws_handlers_and_cuts_long_names() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/drawn.yaml"),
        "handlerOn:\n  failure:\n    command: echo failed\n  exit:\n    command: echo bye\nsteps:\n  - name: a-step-with-a-rather-long-name\n    command: echo hi\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/drawn/start", &json!({"dagRunId": "d1"}));
    assert_eq!(code, 200, "{v}");
    s.until("drawn", "d1", "succeeded");
    let (_, _, html) = s.page("GET", "/dags/drawn", "", "");
    assert!(html.contains(">a-step-with-a-rather-…<"), "{html}");
    assert!(html.contains("on failure: onFailure"), "{html}");
    assert!(html.contains("on exit: onExit"), "{html}");
    assert_eq!(html.matches("stroke-dasharray").count(), 2, "{html}");
    // The exit handler ran: its box has the colour of success.
    let exit_box = html.split("on exit: onExit: ").nth(1).unwrap_or_default();
    assert!(exit_box.starts_with("succeeded"), "{html}");
}

// W: a Dagu 2.x DAG in the server: its declared params are the start form's fields (an
// `enum` a choice), checked when the run starts; it runs like any other.
#[test]
fn a_dagu_2_dag_is_served_with_its_declared_params() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/two.yaml"),
        "params:\n  - name: ENV\n    type: string\n    default: staging\n    enum: [staging, production]\n  - name: COUNT\n    type: integer\n    default: 2\nsteps:\n  - id: show\n    run: echo \"${params.ENV} x${params.COUNT}\"\n",
    )
    .expect("dag");
    let (_, _, html) = s.page("GET", "/dags/two", "", "");
    assert!(
        html.contains(r#"<select name="p.ENV"><option selected>staging</option><option>production</option></select>"#),
        "{html}"
    );
    assert!(html.contains(r#"name="p.COUNT" value="2""#), "{html}");
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, head, _) = s.page(
        "POST",
        "/dags/two/start",
        &origin,
        "p.ENV=production&p.COUNT=3&run_id=t1",
    );
    assert_eq!(code, 303, "{head}");
    s.until("two", "t1", "succeeded");
    let (_, log) = s.get("/dag-runs/two/t1/steps/show/log");
    assert_eq!(log["content"], "production x3\n");
    let (code, _, html) = s.page(
        "POST",
        "/dags/two/start",
        &origin,
        "p.ENV=production&p.COUNT=many",
    );
    assert_eq!(code, 400, "{html}");
    assert!(html.contains("is not an integer"), "{html}");
}

// W11, W12: the runs of DAGs whose files are not in the folder (a file run from
// elsewhere, `wharf exec`) have their pages too: shown, not started or edited there.
#[test]
fn runs_of_dags_outside_the_folder_have_their_pages() {
    let p = Place::new();
    let s = Server::start(&p);
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let out = p
        .wharf()
        .args(["exec", "-r", "e1", "--", "sh", "-c", "echo from-exec"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let elsewhere = p.dag(
        "elsewhere",
        "steps:\n  - name: hi\n    command: echo from-elsewhere\n",
    );
    assert_eq!(p.run(&elsewhere, &["--run-id", "o1"]).code, Some(0));

    let (_, _, html) = s.page("GET", "/runs", "", "");
    assert!(html.contains("/dags/exec-sh/runs/e1"), "{html}");
    let (code, _, html) = s.page("GET", "/dags/exec-sh", "", "");
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("not in the DAGs folder"), "{html}");
    assert!(html.contains("/dags/exec-sh/runs/e1"), "{html}");
    assert!(
        !html.contains("/dags/exec-sh/start") && !html.contains("/dags/exec-sh/save"),
        "{html}"
    );
    let (code, _, html) = s.page("GET", "/dags/exec-sh/runs/e1", "", "");
    assert_eq!(code, 200, "{html}");
    assert!(html.contains("from-exec"), "{html}");
    let (code, _, text) = s.page("GET", "/dags/elsewhere/runs/o1/steps/hi/log", "", "");
    assert_eq!((code, text.as_str()), (200, "from-elsewhere\n"));

    // Started where it is, not here.
    let (_, _, html) = s.page("POST", "/dags/elsewhere/start", &origin, "");
    assert!(html.contains("is not in the DAGs folder"), "{html}");
    assert_eq!(
        p.wharf()
            .args(["history", "elsewhere"])
            .run()
            .stdout
            .lines()
            .count(),
        1
    );
    // A run of it is rerun from its page, kept under its name.
    let (code, _, _) = s.page("POST", "/dags/elsewhere/rerun", &origin, "run=o1");
    assert!(code == 200 || code == 303, "{code}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while p
        .wharf()
        .args(["history", "elsewhere"])
        .run()
        .stdout
        .lines()
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no rerun");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, _) = s.page("GET", "/dags/no-such/runs/x", "", "");
    assert_eq!(code, 404);
}

// W09: HTTPS from a certificate and a key (`tls.certFile`, `tls.keyFile`), and the API
// without the web UI (`headless`).
#[test]
fn https_from_a_certificate_and_the_api_alone_when_headless() {
    let p = Place::new();
    let (cert, key) = (p.path("cert.pem"), p.path("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::create_dir_all(p.home()).expect("home");
    std::fs::write(
        p.home().join("config.yaml"),
        format!(
            "tls:\n  certFile: {}\n  keyFile: {}\nheadless: true\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("config");
    let s = Server::start(&p);
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&cert)
            .arg(format!("https://{}{path}", s.addr))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("/api/v2/health"), "200");
    // Headless: no pages.
    assert_eq!(curl("/"), "404");
    assert_eq!(curl("/runs"), "404");
    // Plain HTTP gets no answer from it.
    let plain = s.raw("GET", "/api/v2/health", "", "");
    assert!(
        plain.map_or(true, |(code, _, _)| code != 200),
        "plain HTTP must not be served"
    );

    // A certificate without its key is refused at the start, saying which setting.
    std::fs::write(
        p.home().join("config.yaml"),
        format!("tls:\n  certFile: {}\n", cert.display()),
    )
    .expect("config");
    let out = p.wharf().args(["server", "--port", "0"]).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("tls.keyFile"), "{}", out.stderr);
    std::fs::write(
        p.home().join("config.yaml"),
        format!(
            "tls:\n  certFile: {}\n  keyFile: {}\n",
            key.display(),
            key.display()
        ),
    )
    .expect("config");
    let out = p.wharf().args(["server", "--port", "0"]).run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("no certificate"), "{}", out.stderr);

    // A Dagu installation's variables, as Dagu names them (DAGU_CERT_FILE, DAGU_KEY_FILE).
    std::fs::remove_file(p.home().join("config.yaml")).expect("config");
    let (cert_text, key_text) = (cert.display().to_string(), key.display().to_string());
    let s = Server::start_with(
        &p,
        &[("DAGU_CERT_FILE", &cert_text), ("DAGU_KEY_FILE", &key_text)],
    );
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{}/api/v2/health", s.addr))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

// W10, V07: a DAG's webhook starts runs with its own token (the server's credentials are
// not needed for it, and do not work in its place), the request's payload reaching the
// steps as `WEBHOOK_PAYLOAD`; managing webhooks needs the server's credentials; the token
// is shown once and kept nowhere.
#[test]
fn webhooks_start_runs_with_their_own_token_and_payload() {
    let p = Place::new();
    let s = Server::start_with(&p, &[("WHARF_AUTH_TOKEN", "t0ken")]);
    std::fs::write(
        p.path("dags/deploy.yaml"),
        "steps:\n  - name: build\n    command: echo \"branch=${WEBHOOK_PAYLOAD.branch} sha=${WEBHOOK_PAYLOAD.commit.sha}\"\n",
    )
    .expect("dag");
    let call = |method: &str, path: &str, auth: &str, body: &str| -> (u16, Value) {
        let headers = format!("{auth}Content-Type: application/json\r\n");
        let (code, _, text) = s
            .raw(method, &format!("/api/v2{path}"), &headers, body)
            .expect("the server answers");
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        (code, v)
    };
    let admin = "Authorization: Bearer t0ken\r\n";
    let (code, _) = call("POST", "/dags/deploy/webhook", "", "");
    assert_eq!(code, 401, "managing needs the server's credentials");
    let (code, _) = call("GET", "/dags/deploy/webhook", admin, "");
    assert_eq!(code, 404);
    let (code, _) = call(
        "POST",
        "/webhooks/deploy",
        "Authorization: Bearer x\r\n",
        "{}",
    );
    assert_eq!(code, 404, "no webhook yet");
    let (code, _) = call("POST", "/dags/nosuch/webhook", admin, "");
    assert_eq!(code, 404);

    let (code, made) = call("POST", "/dags/deploy/webhook", admin, "");
    assert_eq!(code, 201, "{made}");
    let token = made["token"].as_str().expect("token").to_owned();
    assert!(token.starts_with("wharf_wh_") && token.len() > 60, "{made}");
    assert_eq!(made["webhook"]["tokenPrefix"], token[..12], "{made}");
    assert_eq!(made["webhook"]["dagName"], "deploy");
    assert_eq!(made["webhook"]["enabled"], true);
    let (code, _) = call("POST", "/dags/deploy/webhook", admin, "");
    assert_eq!(code, 409, "one per DAG");
    let (code, details) = call("GET", "/dags/deploy/webhook", admin, "");
    assert_eq!(code, 200);
    assert!(details.get("token").is_none() && !details.to_string().contains(&token));
    let (_, all) = call("GET", "/webhooks", admin, "");
    assert_eq!(all["webhooks"][0]["id"], made["webhook"]["id"], "{all}");

    let hook = format!("Authorization: Bearer {token}\r\n");
    for (auth, what) in [
        ("", "no token"),
        ("Authorization: Bearer wharf_wh_0000\r\n", "a wrong token"),
        (admin, "the server's token"),
    ] {
        let (code, v) = call("POST", "/webhooks/deploy", auth, "{}");
        assert_eq!(code, 401, "{what}: {v}");
    }
    let body = r#"{"dagRunId": "hook-1", "payload": {"branch": "main", "commit": {"sha": "abc"}}}"#;
    let (code, v) = call("POST", "/webhooks/deploy", &hook, body);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v, json!({"dagRunId": "hook-1", "dagName": "deploy"}));
    let (code, _) = call("POST", "/webhooks/deploy", &hook, body);
    assert_eq!(code, 409, "the same dagRunId twice");
    // A body without `payload` is the payload itself.
    let (code, v) = call(
        "POST",
        "/webhooks/deploy",
        &hook,
        r#"{"branch": "dev", "commit": {"sha": "d1"}}"#,
    );
    assert_eq!(code, 200, "{v}");
    let second = v["dagRunId"].as_str().expect("id").to_owned();
    let (code, _) = call("POST", "/webhooks/deploy", &hook, r#"{"payload": [1]}"#);
    assert_eq!(code, 400);
    let ended = |id: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, run) = call("GET", &format!("/dag-runs/deploy/{id}"), admin, "");
            let label = run["dagRunDetails"]["statusLabel"]
                .as_str()
                .unwrap_or_default();
            if !matches!(label, "" | "running" | "queued" | "not_started") {
                return run["dagRunDetails"].clone();
            }
            assert!(Instant::now() < deadline, "never ended: {run}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let log = |id: &str| -> String {
        let run = ended(id);
        assert_eq!(run["statusLabel"], "succeeded", "{run}");
        let (_, log) = call(
            "GET",
            &format!("/dag-runs/deploy/{id}/steps/build/log"),
            admin,
            "",
        );
        log["content"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(log("hook-1").trim(), "branch=main sha=abc");
    assert_eq!(log(&second).trim(), "branch=dev sha=d1");
    let (_, details) = call("GET", "/dags/deploy/webhook", admin, "");
    assert!(details["lastUsedAt"].is_string(), "{details}");

    // Disabled, it refuses; a new token replaces the old at once.
    let (code, v) = call(
        "POST",
        "/dags/deploy/webhook/toggle",
        admin,
        r#"{"enabled": false}"#,
    );
    assert_eq!((code, &v["enabled"]), (200, &json!(false)), "{v}");
    let (code, _) = call("POST", "/webhooks/deploy", &hook, "{}");
    assert_eq!(code, 403);
    call(
        "POST",
        "/dags/deploy/webhook/toggle",
        admin,
        r#"{"enabled": true}"#,
    );
    let (code, renewed) = call("POST", "/dags/deploy/webhook/regenerate", admin, "");
    assert_eq!(code, 200, "{renewed}");
    let fresh = renewed["token"].as_str().expect("token").to_owned();
    assert_ne!(fresh, token);
    let (code, _) = call("POST", "/webhooks/deploy", &hook, "{}");
    assert_eq!(code, 401, "the old token no longer works");
    let fresh_hook = format!("Authorization: Bearer {fresh}\r\n");
    let (code, v) = call("POST", "/webhooks/deploy", &fresh_hook, "{}");
    assert_eq!(code, 200, "{v}");
    // Under Dagu 2.x's `/api/v1` too.
    let (code, _, text) = s
        .raw(
            "POST",
            "/api/v1/webhooks/deploy",
            &format!("{fresh_hook}Content-Type: application/json\r\n"),
            r#"{"dagRunId": "via-v1"}"#,
        )
        .expect("the server answers");
    assert_eq!(code, 200, "{text}");
    ended("via-v1");
    let third = v["dagRunId"].as_str().expect("id").to_owned();
    let run = ended(&third);
    assert_eq!(
        run["params"], r#"["WEBHOOK_PAYLOAD={}"]"#,
        "no payload: an empty object"
    );

    // Neither token is kept anywhere under the home (the store keeps a digest).
    let mut files = vec![p.home().to_path_buf()];
    while let Some(f) = files.pop() {
        if f.is_dir() {
            files.extend(
                std::fs::read_dir(&f)
                    .expect("dir")
                    .flatten()
                    .map(|e| e.path()),
            );
        } else {
            let bytes = std::fs::read(&f).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&token) && !text.contains(&fresh),
                "a token is in {}",
                f.display()
            );
        }
    }

    // A renamed DAG keeps its webhook; a deleted one takes it along.
    let (code, v) = call(
        "POST",
        "/dags/deploy/rename",
        admin,
        r#"{"newFileName": "ship"}"#,
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = call("GET", "/dags/ship/webhook", admin, "");
    assert_eq!(code, 200);
    let (code, _) = call("DELETE", "/dags/ship", admin, "");
    assert_eq!(code, 204);
    std::fs::write(p.path("dags/ship.yaml"), "steps:\n  - echo again\n").expect("dag");
    let (code, _) = call("POST", "/webhooks/ship", &fresh_hook, "{}");
    assert_eq!(code, 404, "a new file of that name has no webhook");
    let (code, _) = call("POST", "/dags/ship/webhook", admin, "");
    assert_eq!(code, 201);
    let (code, _) = call("DELETE", "/dags/ship/webhook", admin, "");
    assert_eq!(code, 204);
    let (code, _) = call("GET", "/dags/ship/webhook", admin, "");
    assert_eq!(code, 404);

    // The DAG's page makes one (its token shown on the answer, this once), disables it
    // and removes it; the page shows the token's start, never the token.
    let form = format!("{admin}Origin: http://{}\r\n", s.addr);
    let (_, _, html) = s.page("GET", "/dags/ship", admin, "");
    assert!(html.contains(">Create webhook</button>"), "{html}");
    let (code, head, html) = s.page("POST", "/dags/ship/webhook", &form, "do=create");
    assert_eq!(code, 200, "{html}");
    assert!(
        head.to_lowercase().contains("cache-control: no-store"),
        "{head}"
    );
    let at = html.find("wharf_wh_").expect("the token is shown");
    let token = html[at..at + 9 + 64].to_owned();
    assert!(token[9..].chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    let ui_hook = format!("Authorization: Bearer {token}\r\n");
    let (code, v) = call("POST", "/webhooks/ship", &ui_hook, "{}");
    assert_eq!(code, 200, "{v}");
    let (_, _, html) = s.page("GET", "/dags/ship", admin, "");
    assert!(
        html.contains(&token[..12]) && !html.contains(&token),
        "{html}"
    );
    let (code, _, _) = s.page("POST", "/dags/ship/webhook", &form, "do=disable");
    assert_eq!(code, 303);
    let (_, _, html) = s.page("GET", "/dags/ship", admin, "");
    assert!(
        html.contains("st skipped\">disabled") && html.contains(">Enable</button>"),
        "{html}"
    );
    let (code, _) = call("POST", "/webhooks/ship", &ui_hook, "{}");
    assert_eq!(code, 403);
    let (code, _, _) = s.page("POST", "/dags/ship/webhook", &form, "do=delete");
    assert_eq!(code, 303);
    let (code, _) = call("GET", "/dags/ship/webhook", admin, "");
    assert_eq!(code, 404);
    let (code, _, html) = s.page("POST", "/dags/ship/webhook", &form, "do=explode");
    assert_eq!(code, 400, "{html}");
}

// Dagu 2.x `approval` on a step: the step runs, then waits; approved, it succeeds without
// running again (its output kept, the approval's inputs beside it) and the steps after it
// run; rejected, the run ends `rejected`. `rewind_to` (push-back) is refused.
#[test]
fn a_dagu_2_step_with_approval_runs_then_waits_for_a_person() {
    let p = Place::new();
    let s = Server::start(&p);
    std::fs::write(
        p.path("dags/release.yaml"),
        "type: graph\nhandler_on:\n  wait:\n    run: echo \"waiting on ${DAG_WAITING_STEPS}\"\nsteps:\n  - id: plan\n    run: echo plan >> trail; echo v42\n    output: VERSION\n    approval:\n      prompt: \"Ship ${VERSION}?\"\n      input: [APPROVED_BY]\n      required: [APPROVED_BY]\n  - id: ship\n    depends: [plan]\n    run: echo \"shipping ${VERSION} for ${APPROVED_BY}\"\n",
    )
    .expect("dag");
    let (code, v) = s.post("/dags/release/start", &json!({"dagRunId": "r1"}));
    assert_eq!(code, 200, "{v}");
    let run = s.until("release", "r1", "waiting");
    assert_eq!(run["nodes"][0]["statusLabel"], "waiting", "{run}");
    assert_eq!(
        run["nodes"][0]["error"], "waiting for approval: Ship v42?",
        "{run}"
    );
    assert_eq!(run["nodes"][1]["statusLabel"], "not_started", "{run}");
    let (_, log) = s.get("/dag-runs/release/r1/steps/onWait/log");
    assert_eq!(log["content"], "waiting on plan\n");
    let (code, v) = s.post("/dag-runs/release/r1/steps/plan/approve", &json!({}));
    assert_eq!(code, 400, "APPROVED_BY is required: {v}");
    let (code, v) = s.post(
        "/dag-runs/release/r1/steps/plan/approve",
        &json!({"inputs": {"APPROVED_BY": "alice"}}),
    );
    assert_eq!(code, 200, "{v}");
    let run = s.until("release", "r1", "succeeded");
    assert_eq!(run["nodes"][0]["statusLabel"], "succeeded", "{run}");
    let (_, log) = s.get("/dag-runs/release/r1/steps/ship/log");
    assert_eq!(log["content"], "shipping v42 for alice\n");
    assert_eq!(
        std::fs::read_to_string(p.path("dags/trail")).unwrap_or_default(),
        "plan\n",
        "the approved step ran once"
    );

    let (code, v) = s.post("/dags/release/start", &json!({"dagRunId": "r2"}));
    assert_eq!(code, 200, "{v}");
    s.until("release", "r2", "waiting");
    let (code, v) = s.post(
        "/dag-runs/release/r2/steps/plan/reject",
        &json!({"reason": "not this one"}),
    );
    assert_eq!(code, 200, "{v}");
    let run = s.until("release", "r2", "rejected");
    assert_eq!(run["nodes"][0]["error"], "rejected: not this one", "{run}");
    assert_eq!(run["nodes"][1]["statusLabel"], "not_started", "{run}");

    // From the command line the run stops waiting (exit 0); a 1.x file cannot say it, and
    // push-back is refused, each where it is written.
    let dag = p.dag(
        "cli",
        "steps:\n  - id: a\n    run: echo a\n    approval: {}\n  - id: b\n    depends: [a]\n    run: echo b\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("cli");
    assert_eq!(
        wharf_testkit::step(&status, "a")["status"],
        "waiting",
        "{status}"
    );
    assert_eq!(
        wharf_testkit::step(&status, "b")["status"],
        "not_started",
        "{status}"
    );
    p.assert_refused(
        "steps:\n  - id: a\n    run: echo a\n    approval: {rewind_to: a}\n",
        "`rewind_to` is not supported by wharf",
    );
    p.assert_refused(
        "workingDir: /tmp\nsteps:\n  - name: a\n    command: echo a\n    approval: {}\n",
        "`approval` on a step is Dagu 2.x",
    );
}

/// A bcrypt hash of `password` made by another program (Apache's `htpasswd`), as a Dagu
/// installation keeps its users' passwords.
fn bcrypt_elsewhere(password: &str) -> String {
    let out = Command::new("htpasswd")
        .args(["-nbB", "-C", "6", "someone", password])
        .output()
        .expect("htpasswd (apache2-utils)");
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).expect("utf-8");
    line.trim().split_once(':').expect("user:hash").1.to_owned()
}

/// Signs in through the API: the session token.
fn sign_in(s: &Server, user: &str, password: &str) -> String {
    let (code, v) = s.post(
        "/auth/login",
        &json!({"username": user, "password": password}),
    );
    assert_eq!(code, 200, "{user}: {v}");
    assert_eq!(v["user"]["username"], user, "{v}");
    assert!(
        v["expiresAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    v["token"].as_str().expect("a token").to_owned()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// Every file under `dir`, read as bytes.
fn every_file(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

#[test]
fn built_in_users_carry_over_from_dagu_and_act_within_their_roles() {
    let p = Place::new();
    // A Dagu installation with built-in users: two user files with bcrypt hashes.
    let dagu = p.path("dagu");
    std::fs::create_dir_all(dagu.join("data/users")).expect("users dir");
    for (id, name, password, role) in [
        (
            "0b7c3f9e-1d2a-4c5b-8e6f-7a8b9c0d1e2f",
            "boss",
            "boss-password-1",
            "admin",
        ),
        (
            "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
            "carol",
            "carols-password",
            "operator",
        ),
    ] {
        let user = json!({
            "id": id, "username": name, "password_hash": bcrypt_elsewhere(password),
            "role": role, "created_at": "2025-01-02T03:04:05Z", "updated_at": "2025-01-02T03:04:05Z",
        });
        std::fs::write(dagu.join(format!("data/users/{id}.json")), user.to_string())
            .expect("user file");
    }
    std::fs::write(
        dagu.join("config.yaml"),
        "auth:\n  mode: builtin\n  builtin:\n    token:\n      secret: a-secret-of-thirty-two-characters\n      ttl: 2h\n",
    )
    .expect("config");
    let dagu_home = dagu.to_string_lossy().into_owned();
    let s = Server::start_with(&p, &[("DAGU_HOME", &dagu_home)]);
    assert!(s.said.contains("carried over 2 user(s)"), "{}", s.said);
    std::fs::write(p.path("dags/job.yaml"), "steps:\n  - echo hi\n").expect("dag");

    // Without a session: 401 from the API, the sign-in page for a page.
    let (code, head, _) = s.page("GET", "/api/v2/dags", "", "");
    assert_eq!(code, 401);
    assert!(
        head.to_lowercase().contains("www-authenticate: bearer"),
        "{head}"
    );
    let (code, head, _) = s.page("GET", "/dags/job?x=1", "", "");
    assert_eq!(code, 303);
    assert!(
        head.contains("location: /login?next=%2Fdags%2Fjob%3Fx%3D1"),
        "{head}"
    );
    let (code, _, body) = s.page("GET", "/login?next=%2Fdags%2Fjob", "", "");
    assert_eq!(code, 200);
    assert!(
        body.contains("name=\"password\"") && body.contains("value=\"/dags/job\""),
        "{body}"
    );
    assert!(
        !body.contains("<nav>"),
        "no links that lead back to signing in: {body}"
    );
    let (code, _, _) = s.page("GET", "/api/v2/health", "", "");
    assert_eq!(code, 200);

    // Passwords carried over with their hashes; a wrong one, or a name nobody has, is 401.
    for (user, password) in [("boss", "wrong-password"), ("nobody", "boss-password-1")] {
        let (code, v) = s.post(
            "/auth/login",
            &json!({"username": user, "password": password}),
        );
        assert_eq!(code, 401, "{v}");
    }
    let boss = bearer(&sign_in(&s, "boss", "boss-password-1"));
    let carol = bearer(&sign_in(&s, "carol", "carols-password"));
    let (code, v) = s.call_with(&boss, "GET", "/auth/me", None);
    assert_eq!(
        (code, v["user"]["role"].as_str()),
        (200, Some("admin")),
        "{v}"
    );
    assert_eq!(v["user"]["createdAt"], "2025-01-02T03:04:05Z", "{v}");
    // The same session works under Dagu 2.x's name of the API.
    let (code, _, body) = s.page("GET", "/api/v1/auth/me", &boss, "");
    assert_eq!(code, 200, "{body}");

    // An operator runs DAGs, and neither edits them nor manages users.
    let (code, v) = s.call_with(&carol, "POST", "/dags/job/start", Some(&json!({})));
    assert_eq!(code, 200, "{v}");
    let spec = json!({"spec": "steps:\n  - echo changed\n"});
    let (code, v) = s.call_with(&carol, "PUT", "/dags/job/spec", Some(&spec));
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("operator")),
        "{v}"
    );
    let (code, _) = s.call_with(&carol, "GET", "/users", None);
    assert_eq!(code, 403);

    // An admin makes users; names are unique, passwords long enough, roles known.
    let vic = json!({"username": "vic", "password": "vics-password", "role": "viewer"});
    let (code, v) = s.call_with(&boss, "POST", "/users", Some(&vic));
    assert_eq!(code, 201, "{v}");
    let vic_id = v["user"]["id"].as_str().expect("id").to_owned();
    assert!(
        v["user"].get("password_hash").is_none() && !v.to_string().contains("$2"),
        "{v}"
    );
    let (code, _) = s.call_with(&boss, "POST", "/users", Some(&vic));
    assert_eq!(code, 409);
    for bad in [
        json!({"username": "w", "password": "short", "role": "viewer"}),
        json!({"username": "w", "password": "long-enough", "role": "root"}),
        json!({"username": "w", "password": "long-enough"}),
    ] {
        let (code, v) = s.call_with(&boss, "POST", "/users", Some(&bad));
        assert_eq!(code, 400, "{bad}: {v}");
    }
    let (code, v) = s.call_with(&boss, "GET", "/users", None);
    assert_eq!(code, 200);
    let names: Vec<&str> = v["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["boss", "carol", "vic"]);

    // A viewer reads and does not run; a new role counts at once, in the same session.
    let vic_token = sign_in(&s, "vic", "vics-password");
    let vic_auth = bearer(&vic_token);
    let (code, _) = s.call_with(&vic_auth, "GET", "/dags", None);
    assert_eq!(code, 200);
    let (code, _) = s.call_with(&vic_auth, "POST", "/dags/job/start", Some(&json!({})));
    assert_eq!(code, 403);
    let (code, v) = s.call_with(
        &boss,
        "PATCH",
        &format!("/users/{vic_id}"),
        Some(&json!({"role": "operator"})),
    );
    assert_eq!(
        (code, v["user"]["role"].as_str()),
        (200, Some("operator")),
        "{v}"
    );
    let (code, v) = s.call_with(&vic_auth, "POST", "/dags/job/start", Some(&json!({})));
    assert_eq!(code, 200, "{v}");

    // One's own password: the current one is needed; the sessions made before end.
    let change =
        |current: &str| json!({"currentPassword": current, "newPassword": "vics-new-password"});
    let (code, _) = s.call_with(
        &vic_auth,
        "POST",
        "/auth/change-password",
        Some(&change("nope-nope")),
    );
    assert_eq!(code, 401);
    let (code, v) = s.call_with(
        &vic_auth,
        "POST",
        "/auth/change-password",
        Some(&change("vics-password")),
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = s.call_with(&vic_auth, "GET", "/dags", None);
    assert_eq!(code, 401, "a session made with the old password ends");
    let vic_auth = bearer(&sign_in(&s, "vic", "vics-new-password"));
    // An admin sets another's password.
    let (code, v) = s.call_with(
        &boss,
        "POST",
        "/users/5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9/reset-password",
        Some(&json!({"newPassword": "carols-new-password"})),
    );
    assert_eq!(code, 200, "{v}");
    let (code, _) = s.post(
        "/auth/login",
        &json!({"username": "carol", "password": "carols-password"}),
    );
    assert_eq!(code, 401);

    // API keys: shown once, kept as a digest, with their own role; deleted, refused.
    let (code, v) = s.call_with(
        &boss,
        "POST",
        "/api-keys",
        Some(&json!({"name": "ci", "description": "the build", "role": "manager"})),
    );
    assert_eq!(code, 201, "{v}");
    let key = v["key"].as_str().expect("key").to_owned();
    let key_id = v["apiKey"]["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with("wharf_ak_") && key.len() == 9 + 64, "{key}");
    assert!(
        key.starts_with(v["apiKey"]["keyPrefix"].as_str().expect("prefix")),
        "{v}"
    );
    let (code, v) = s.call_with(&boss, "GET", "/api-keys", None);
    assert_eq!(code, 200);
    assert!(
        !v.to_string().contains(&key),
        "the key is not shown again: {v}"
    );
    let ci = bearer(&key);
    let (code, v) = s.call_with(&ci, "PUT", "/dags/job/spec", Some(&spec));
    assert_eq!(code, 200, "a manager's key edits: {v}");
    let (code, _) = s.call_with(&ci, "GET", "/api-keys", None);
    assert_eq!(code, 403, "only an admin manages keys");
    let (code, v) = s.call_with(&boss, "GET", &format!("/api-keys/{key_id}"), None);
    assert!(code == 200 && v["apiKey"]["lastUsedAt"].is_string(), "{v}");
    let (code, _) = s.call_with(&boss, "DELETE", &format!("/api-keys/{key_id}"), None);
    assert_eq!(code, 204);
    let (code, _) = s.call_with(&ci, "GET", "/dags", None);
    assert_eq!(code, 401);

    // Nobody deletes themselves, and there is always an admin; a deleted user is out.
    let (code, v) = s.call_with(&boss, "GET", "/auth/me", None);
    let boss_id = v["user"]["id"].as_str().expect("id").to_owned();
    assert_eq!(code, 200);
    let (code, _) = s.call_with(&boss, "DELETE", &format!("/users/{boss_id}"), None);
    assert_eq!(code, 403);
    let (code, _) = s.call_with(
        &boss,
        "PATCH",
        &format!("/users/{boss_id}"),
        Some(&json!({"role": "viewer"})),
    );
    assert_eq!(code, 400);
    let (code, _) = s.call_with(&boss, "DELETE", &format!("/users/{vic_id}"), None);
    assert_eq!(code, 204);
    let (code, _) = s.call_with(&vic_auth, "GET", "/dags", None);
    assert_eq!(code, 401);

    // The pages: sign in with the form, a session cookie the browser keeps to itself.
    let form = "Origin: http://{addr}\r\n".replace("{addr}", &s.addr);
    let (code, _, body) = s.page(
        "POST",
        "/login",
        &form,
        "username=boss&password=nope&next=%2Fdags%2Fjob",
    );
    assert_eq!(code, 401);
    assert!(body.contains("not right"), "{body}");
    let (code, head, _) = s.page(
        "POST",
        "/login",
        &form,
        "username=boss&password=boss-password-1&next=%2Fdags%2Fjob",
    );
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("location: /dags/job"), "{head}");
    let cookie_line = head
        .lines()
        .find(|l| l.starts_with("set-cookie: wharf_session="))
        .expect("a session cookie");
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = format!(
        "Cookie: {}\r\n",
        cookie_line
            .trim_start_matches("set-cookie: ")
            .split(';')
            .next()
            .expect("cookie")
    );
    let (code, head, _) = s.page(
        "POST",
        "/login",
        &form,
        "username=boss&password=boss-password-1&next=https%3A%2F%2Fevil.example%2F",
    );
    assert_eq!(code, 303);
    assert!(
        head.lines().any(|l| l == "location: /"),
        "only a page of this server: {head}"
    );
    let (code, _, body) = s.page("GET", "/dags/job", &cookie, "");
    assert_eq!(code, 200);
    assert!(
        body.contains(">boss</a>") && body.contains("Sign out") && body.contains("/users\">Users"),
        "{body}"
    );
    assert!(body.contains("/dags/job/save"), "an admin edits");
    let carol_form = s
        .page(
            "POST",
            "/login",
            &form,
            "username=carol&password=carols-new-password",
        )
        .1;
    let carol_cookie = format!(
        "Cookie: {}\r\n",
        carol_form
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .expect("cookie")
            .split(';')
            .next()
            .expect("c")
    );
    let (code, _, body) = s.page("GET", "/dags/job", &carol_cookie, "");
    assert_eq!(code, 200);
    assert!(
        !body.contains("/dags/job/save") && body.contains("/dags/job/start"),
        "an operator runs, does not edit"
    );
    let (code, _, _) = s.page("GET", "/users", &carol_cookie, "");
    assert_eq!(code, 403);
    // The users page: an API key made there is shown once, not kept by the browser.
    let with_cookie = format!("{cookie}{form}");
    let (code, head, body) = s.page(
        "POST",
        "/users",
        &with_cookie,
        "do=key-create&name=deploy&description=&role=operator",
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        head.to_lowercase().contains("cache-control: no-store"),
        "{head}"
    );
    let shown = body
        .split("<code class=\"token\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the key shown")
        .to_owned();
    let (code, _) = s.call_with(&bearer(&shown), "GET", "/dags", None);
    assert_eq!(code, 200);
    let (code, _, body) = s.page("GET", "/users", &cookie, "");
    assert!(
        code == 200 && body.contains("carol") && body.contains("deploy") && !body.contains(&shown),
        "{body}"
    );
    // Signing out clears the cookie.
    let (code, head, _) = s.page("POST", "/logout", &with_cookie, "");
    assert_eq!(code, 303);
    assert!(
        head.contains("wharf_session=;") && head.contains("Max-Age=0"),
        "{head}"
    );

    // No password, key or hash made elsewhere reaches a file of wharf's or what it said.
    for (path, bytes) in every_file(&p.home()) {
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            "boss-password-1",
            "carols-new-password",
            "vics-new-password",
            key.as_str(),
            shown.as_str(),
            "a-secret-of-thirty",
        ] {
            assert!(!text.contains(secret), "{} holds a secret", path.display());
        }
    }
    assert!(!s.said.contains("password-1"), "{}", s.said);
    drop(s);

    // Sessions outlive a restart (the same secret signs them). An installation that does
    // not say its mode, and has users, keeps them on (Dagu 2.x's default).
    std::fs::write(
        dagu.join("config.yaml"),
        "auth:\n  builtin:\n    token:\n      secret: a-secret-of-thirty-two-characters\n",
    )
    .expect("config");
    let s = Server::start_with(&p, &[("DAGU_HOME", &dagu_home)]);
    assert!(!s.said.contains("carried over"), "once: {}", s.said);
    assert!(s.said.contains("built-in users are on"), "{}", s.said);
    let (code, _) = s.get("/dags");
    assert_eq!(code, 401);
    let (code, _) = s.call_with(&boss, "GET", "/dags", None);
    assert_eq!(code, 200);
    drop(s);
    // Said as none, it is none.
    std::fs::write(dagu.join("config.yaml"), "auth:\n  mode: none\n").expect("config");
    let s = Server::start_with(&p, &[("DAGU_HOME", &dagu_home)]);
    let (code, _) = s.get("/dags");
    assert_eq!(code, 200);
}

#[test]
fn built_in_users_start_with_an_admin_whose_password_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let p = Place::new();
    let s = Server::start_with(&p, &[("WHARF_AUTH_MODE", "builtin")]);
    let file = p.home().join("admin-password");
    assert!(s.said.contains(&file.display().to_string()), "{}", s.said);
    let mode = std::fs::metadata(&file)
        .expect("the password file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&file)
        .expect("password")
        .trim()
        .to_owned();
    assert!(password.len() >= 16 && !s.said.contains(&password));
    let admin = bearer(&sign_in(&s, "admin", &password));
    drop(s);
    // The secret that signs sessions is made once and kept: a session outlives a restart,
    // and no second admin is made.
    let s = Server::start_with(&p, &[("WHARF_AUTH_MODE", "builtin")]);
    assert!(!s.said.contains("made the first user"), "{}", s.said);
    let (code, v) = s.call_with(&admin, "GET", "/users", None);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["users"].as_array().map(Vec::len), Some(1));
    // The user endpoints answer as the Dagu OpenAPI document says.
    schemathesis(
        &s,
        r"^/(auth/login|auth/me|auth/change-password|users|users/\{userId\}|users/\{userId\}/reset-password|api-keys|api-keys/\{keyId\})$",
        admin.trim_end(),
    );
    // (The fuzzing may have set the admin's password, which ends its session; without
    // credentials the API is still closed.)
    let (code, _) = s.get("/users");
    assert_eq!(code, 401);
    drop(s);
    // An authentication mode wharf does not have stops the server rather than serve open.
    let out = p
        .wharf()
        .args(["server", "--port", "0"])
        .env("WHARF_AUTH_MODE", "oidc")
        .run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("auth.mode") && out.stderr.contains("oidc"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_system_page_and_services_show_the_schedulers_and_the_machine() {
    let p = Place::new();
    // Before any scheduler: none, and the page says what that means.
    let s = Server::start_with(&p, &[("WHARF_MONITORING_INTERVAL", "1s")]);
    let (code, v) = s.get("/services/scheduler");
    assert_eq!((code, v), (200, json!({"schedulers": []})));
    let (_, _, html) = s.page("GET", "/system", "", "");
    assert!(html.contains("No scheduler runs"), "{html}");
    // Without built-in users there are no users to manage (nor to make by a form).
    let origin = format!("Origin: http://{}\r\n", s.addr);
    for (method, body) in [
        ("GET", ""),
        (
            "POST",
            "do=create&username=x&password=long-enough&role=admin",
        ),
    ] {
        let (code, _, html) = s.page(method, "/users", &origin, body);
        assert_eq!(code, 403, "{html}");
        assert!(html.contains("no built-in users"), "{html}");
    }
    drop(s);
    // start-all: the server and a scheduler, which says it is there.
    let s = Server::start_args(
        &p,
        &["start-all", "--port", "0"],
        &[("WHARF_MONITORING_INTERVAL", "1s")],
    );
    let (code, v) = s.get("/services/scheduler");
    assert_eq!(code, 200, "{v}");
    let list = v["schedulers"].as_array().expect("schedulers");
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["status"], "active", "{v}");
    let host = nix::unistd::gethostname().expect("hostname");
    assert_eq!(list[0]["host"], host.to_string_lossy().as_ref(), "{v}");
    assert!(
        list[0]["startedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
    let (code, v) = s.get("/services/coordinator");
    assert_eq!((code, v), (200, json!({"coordinators": []})));
    // Workers are the nodes of the engine's swarm; in none (the swarm test may make one
    // meanwhile), the answer says why there are none.
    let (code, v) = s.get("/workers");
    assert_eq!(code, 200, "{v}");
    let workers = v["workers"].as_array().expect("workers");
    assert!(
        !workers.is_empty()
            || v["errors"][0]
                .as_str()
                .is_some_and(|e| e.contains("no swarm")),
        "{v}"
    );
    // The machine, sampled every second here.
    let deadline = Instant::now() + Duration::from_secs(10);
    let history = loop {
        let (code, v) = s.get("/services/resources/history?duration=5m");
        assert_eq!(code, 200, "{v}");
        if v["memory"].as_array().is_some_and(|m| m.len() >= 2) {
            break v;
        }
        assert!(Instant::now() < deadline, "no samples: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    for series in ["cpu", "memory", "disk", "load"] {
        let points = history[series].as_array().expect(series);
        assert!(!points.is_empty(), "{series}: {history}");
        let value = points[0]["value"].as_f64().expect("a number");
        assert!(value >= 0.0, "{series}: {value}");
        assert!(
            points[0]["timestamp"]
                .as_i64()
                .is_some_and(|t| t > 1_700_000_000)
        );
        if series != "load" {
            assert!(value <= 100.0, "{series} is a percentage: {value}");
        }
    }
    let (code, _) = s.get("/services/resources/history?duration=soon");
    assert_eq!(code, 400);
    let (code, _, html) = s.page("GET", "/system?duration=6h", "", "");
    assert_eq!(code, 200);
    assert!(
        html.contains(">active<") && html.contains("<polyline"),
        "{html}"
    );
    assert!(html.contains("<b>6h</b>"), "{html}");
}

// Dagu 2.3+: a DAG's own `retry_policy` makes the scheduler run a failed run again under
// the same run id (its failed steps), once the delay (with backoff) has passed since it
// failed, up to `limit` times; a retry started by hand does not count.
#[test]
fn a_dag_retry_policy_makes_the_scheduler_retry_failed_runs() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    let count = p.path("count");
    let flaky = p.path("dags/flaky.yaml");
    std::fs::write(
        &flaky,
        format!(
            "retry_policy:\n  limit: 2\n  interval_sec: 60\n  backoff: true\nsteps:\n  - id: attempt\n    run: |\n      n=$(cat {c} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {c}\n      [ $n -ge 4 ]\n",
            c = count.display()
        ),
    )
    .expect("dag");
    let attempts = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
    };
    let settled = |n: u32, status: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let runs = history(&p, "flaky");
            if attempts() == n
                && runs
                    .iter()
                    .any(|r| r["runId"] == "r1" && r["status"] == status)
            {
                return;
            }
            assert!(Instant::now() < deadline, "{n} {status}: {runs:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(p.run(&flaky, &["--run-id", "r1"]).code, Some(1));
    let at = |secs: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .expect("time")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    // Not before its delay; then the first retry, once.
    assert_eq!(tick(&p, &at(30)), "");
    assert_eq!(tick(&p, &at(90)), "flaky: Retried(\"r1\", 1)\n");
    settled(2, "failed");
    // A retry by hand runs it again without using up the policy's retries.
    assert_eq!(
        p.wharf()
            .args(["retry", "flaky", "--run-id", "r1"])
            .run()
            .code,
        Some(1)
    );
    settled(3, "failed");
    // The second delay is twice the first (backoff), counted from the last failure.
    assert_eq!(tick(&p, &at(100)), "");
    assert_eq!(tick(&p, &at(3600)), "flaky: Retried(\"r1\", 2)\n");
    settled(4, "succeeded");
    assert_eq!(
        tick(&p, &at(7200)),
        "",
        "a run that succeeded is not retried"
    );

    // At `limit`, no more retries.
    std::fs::write(
        p.path("dags/never.yaml"),
        "retry_policy: {limit: 1, interval_sec: 1}\nsteps:\n  - id: no\n    run: \"false\"\n",
    )
    .expect("dag");
    assert_eq!(
        p.run(&p.path("dags/never.yaml"), &["--run-id", "n1"]).code,
        Some(1)
    );
    assert_eq!(tick(&p, &at(60)), "never: Retried(\"n1\", 1)\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    while history(&p, "never").iter().any(|r| r["status"] != "failed") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(tick(&p, &at(7200)), "");

    p.assert_refused(
        "retry_policy: {limit: 2, exit_code: [1]}\nsteps:\n  - run: \"true\"\n",
        "`exit_code` is not supported by wharf",
    );
    p.assert_refused(
        "retry_policy: {interval_sec: 5}\nsteps:\n  - run: \"true\"\n",
        "needs `limit`",
    );
}

// Dagu 2.x `catchup_window`: slots missed while no scheduler ran, within the window, are
// run one a tick, oldest first; older ones are recorded as missed; `overlap_policy: skip`
// drops a catch-up slot while the DAG still runs, `latest` catches up the newest alone.
#[test]
fn a_dag_catchup_window_replays_missed_slots_one_a_tick() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    std::fs::write(
        p.path("dags/hourly.yaml"),
        "schedule: \"0 * * * *\"\ncatchup_window: 2h\nsteps:\n  - id: work\n    run: sleep 3\n",
    )
    .expect("dag");
    std::fs::write(
        p.path("dags/newest.yaml"),
        "schedule: \"0 * * * *\"\ncatchup_window: 1d\noverlap_policy: latest\nsteps:\n  - id: work\n    run: echo \"${trigger.type} ${run.scheduled_at}\"\n",
    )
    .expect("dag");
    let settle = |dag: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while history(&p, dag)
            .iter()
            .any(|r| r["status"] == "running" || r["status"] == "queued")
        {
            assert!(Instant::now() < deadline, "{:?}", history(&p, dag));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The first tick: the scheduler's first look, nothing missed yet.
    let first = tick(&p, "2026-11-20T00:00:00Z");
    assert!(
        first.contains("hourly: Started(\"scheduled-20261120T0000Z\")"),
        "{first}"
    );
    settle("hourly");
    settle("newest");
    // Down until 03:30: 01:00 is past the 2 h window (recorded), 02:00 and 03:00 are
    // caught up one a tick; `newest` catches up 03:00 alone.
    let back = tick(&p, "2026-11-20T03:30:00Z");
    assert!(
        back.contains("hourly: Missed(\"missed-20261120T0100Z-20261120T0100Z\", 1)"),
        "{back}"
    );
    assert!(
        back.contains("hourly: Started(\"scheduled-20261120T0200Z\")"),
        "{back}"
    );
    assert!(
        back.contains("newest: Started(\"scheduled-20261120T0300Z\")"),
        "{back}"
    );
    // 03:00 comes due while 02:00 still runs: `skip` drops it.
    let next = tick(&p, "2026-11-20T03:31:00Z");
    assert!(
        next.contains("hourly: Skipped(\"scheduled-20261120T0300Z\")"),
        "{next}"
    );
    assert!(!next.contains("newest"), "{next}");
    settle("hourly");
    assert_eq!(
        tick(&p, "2026-11-20T03:32:00Z"),
        "",
        "nothing left to catch up"
    );
    settle("newest");
    let out = p
        .wharf()
        .args([
            "logs",
            "newest",
            "--run-id",
            "scheduled-20261120T0300Z",
            "--step",
            "work",
        ])
        .run();
    assert_eq!(
        out.stdout, "catchup 2026-11-20T03:00:00Z\n",
        "{}",
        out.stderr
    );
    let ids: Vec<String> = history(&p, "hourly")
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["runId"].as_str().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default()
            )
        })
        .collect();
    for want in [
        "scheduled-20261120T0000Z succeeded",
        "missed-20261120T0100Z-20261120T0100Z skipped",
        "scheduled-20261120T0200Z succeeded",
        "scheduled-20261120T0300Z skipped",
    ] {
        assert!(ids.iter().any(|i| i == want), "{want}: {ids:?}");
    }
    p.assert_refused(
        "catchup_window: soon\nsteps:\n  - run: \"true\"\n",
        "`catchup_window` is a duration",
    );
    p.assert_refused(
        "catchup_window: 1h\noverlap_policy: never\nsteps:\n  - run: \"true\"\n",
        "`overlap_policy` must be one of: skip, all, latest",
    );
}
