//! `wharf migrate history`: a Dagu installation's run history carried over.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wharf_testkit::{Place, Server, step};

/// Writes a run as Dagu 1.30 keeps it: `DATA/<dag>/dag-runs/YYYY/MM/DD/dag-run_<ts>_<id>/
/// attempt_<ts>_<id>/status.jsonl`, one JSON line per status change, the last as it ended.
fn dagu_run(data: &Path, dag: &str, id: &str, lines: &[Value]) -> PathBuf {
    let run = data.join(format!(
        "{dag}/dag-runs/2025/01/02/dag-run_20250102_030405Z_{id}"
    ));
    let attempt = run.join("attempt_20250102_030405_123Z_a1b2c3");
    std::fs::create_dir_all(&attempt).expect("attempt dir");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(attempt.join("status.jsonl"), text).expect("status");
    run
}

/// A node of Dagu's status.
fn node(name: &str, status: i64, stdout: &Path, extra: Value) -> Value {
    let mut n = json!({
        "step": {"name": name, "command": "echo"},
        "stdout": stdout, "stderr": stdout.with_extension("err"),
        "startedAt": "2025-01-02T03:04:06Z", "finishedAt": "2025-01-02T03:04:07Z",
        "status": status,
    });
    if let (Some(n), Some(extra)) = (n.as_object_mut(), extra.as_object()) {
        n.extend(extra.clone());
    }
    n
}

/// Every file under `dir` with its bytes, to see that nothing of it changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("file")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_dagu_installations_history_is_carried_over_once() {
    let p = Place::new();
    let dagu = p.path("dagu");
    let (data, logs) = (dagu.join("data"), dagu.join("logs"));
    std::fs::create_dir_all(&logs).expect("logs");
    let log = |name: &str, text: &str| {
        let f = logs.join(name);
        std::fs::write(&f, text).expect("log");
        f
    };
    let greet = log("greet.out", "hello from dagu\n");
    log("greet.err", "a warning\n");
    let boom = log("boom.out", "");
    log("boom.err", "it broke\n");
    let bye = log("bye.out", "bye\n");
    let scheduler_log = log("hello.log", "the scheduler's own log\n");
    let running = json!({"name": "hello", "dagRunId": "r1", "status": 1,
        "nodes": [node("greet", 1, &greet, json!({}))]});
    dagu_run(
        &data,
        "hello",
        "r1",
        &[
            running,
            json!({
                "name": "hello", "dagRunId": "r1", "attemptId": "a1b2c3", "status": 4,
                "createdAt": 1_735_787_045_000_i64, "startedAt": "2025-01-02T03:04:05Z",
                "finishedAt": "2025-01-02T03:04:08Z", "log": scheduler_log,
                "params": "WHO=world", "paramsList": ["WHO=world"],
                "nodes": [node("greet", 4, &greet, json!({"outputVariables": {"GREETING": "GREETING=hello"}}))],
                "onExit": node("bye", 4, &bye, json!({})),
            }),
        ],
    );
    dagu_run(
        &data,
        "hello",
        "r2",
        &[json!({
            "name": "hello", "dagRunId": "r2", "status": 2,
            "startedAt": "2025-01-02 03:05:00", "finishedAt": "2025-01-02 03:05:01",
            "nodes": [
                node("boom", 2, &boom, json!({"error": "exit status 3", "retryCount": 2})),
                node("after", 0, &boom, json!({"startedAt": "-", "finishedAt": "-"})),
            ],
        })],
    );
    // Still running under Dagu: left for a later pass.
    dagu_run(
        &data,
        "hello",
        "r3",
        &[json!({"name": "hello", "dagRunId": "r3", "status": 1})],
    );
    // A sub-DAG run, kept under its parent's folder.
    let parent = dagu_run(
        &data,
        "parent",
        "p1",
        &[json!({
            "name": "parent", "dagRunId": "p1", "status": 4,
            "startedAt": "2025-01-02T03:04:05Z", "finishedAt": "2025-01-02T03:04:09Z",
            "nodes": [node("call-child", 4, &greet, json!({"children": [{"dagRunId": "c1"}]}))],
        })],
    );
    let child = parent.join("children/child_c1/attempt_20250102_030406_000Z_d4e5f6");
    std::fs::create_dir_all(&child).expect("child");
    std::fs::write(
        child.join("status.jsonl"),
        format!(
            "{}\n",
            json!({"name": "child", "dagRunId": "c1", "status": 4,
            "startedAt": "2025-01-02T03:04:06Z", "finishedAt": "2025-01-02T03:04:07Z",
            "nodes": [node("inner", 4, &bye, json!({}))]})
        ),
    )
    .expect("child status");
    // A status that is not one: named, and the rest is carried over.
    dagu_run(&data, "broken", "b1", &[]);
    std::fs::write(
        data.join("broken/dag-runs/2025/01/02/dag-run_20250102_030405Z_b1/attempt_20250102_030405_123Z_a1b2c3/status.jsonl"),
        "{not json\n",
    )
    .expect("broken");
    let before = snapshot(&dagu);

    let out = p
        .wharf()
        .args(["migrate", "history", "--dry-run", "--from"])
        .arg_path(&data)
        .run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("hello: 2 run(s) to carry over"),
        "{}",
        out.stderr
    );
    let out = p.wharf().args(["history", "hello", "--json"]).run();
    assert!(
        !out.stdout.contains("r1"),
        "a dry run keeps nothing: {}",
        out.stdout
    );

    let out = p
        .wharf()
        .args(["migrate", "history", "--from"])
        .arg_path(&data)
        .run();
    assert_eq!(
        out.code,
        Some(1),
        "the broken file fails the command: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("broken/dag-runs")
            && out.stderr.contains("no line of it is a run's status"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("hello: 2 run(s) carried over, 1 still going"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("parent: 2 run(s) carried over"),
        "the child too: {}",
        out.stderr
    );

    // The runs, as Dagu recorded them, in wharf's commands.
    let r1 = {
        let out = p
            .wharf()
            .args(["status", "hello", "--run-id", "r1", "--json"])
            .run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str::<Value>(&out.stdout).expect("json")
    };
    assert_eq!(r1["status"], "succeeded", "{r1}");
    assert_eq!(step(&r1, "greet")["status"], "succeeded");
    assert_eq!(
        step(&r1, "bye")["status"],
        "succeeded",
        "the exit handler: {r1}"
    );
    let out = p
        .wharf()
        .args(["logs", "hello", "--run-id", "r1", "--step", "greet"])
        .run();
    assert_eq!(out.stdout, "hello from dagu\n", "{}", out.stderr);
    let out = p
        .wharf()
        .args([
            "logs", "hello", "--run-id", "r1", "--step", "greet", "--stderr",
        ])
        .run();
    assert_eq!(out.stdout, "a warning\n");
    let r2 = {
        let out = p
            .wharf()
            .args(["status", "hello", "--run-id", "r2", "--json"])
            .run();
        serde_json::from_str::<Value>(&out.stdout).expect("json")
    };
    assert_eq!(r2["status"], "failed");
    assert_eq!(step(&r2, "boom")["status"], "failed");
    assert!(
        step(&r2, "boom")["error"]
            .as_str()
            .is_some_and(|e| e.contains("exit status 3")),
        "{r2}"
    );
    assert_eq!(step(&r2, "after")["status"], "not_started");
    let out = p.wharf().args(["history", "hello", "--json"]).run();
    let runs: Value = serde_json::from_str(&out.stdout).expect("history");
    let ids: Vec<&str> = runs
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["runId"].as_str().or(r["run_id"].as_str()))
        .collect();
    assert!(
        ids.contains(&"r1") && ids.contains(&"r2") && !ids.contains(&"r3"),
        "{runs}"
    );
    let parent_status = p.status("parent");
    assert!(
        parent_status.to_string().contains("c1"),
        "the child under its step: {parent_status}"
    );

    // Through the API: times, params, outputs and the trigger as kept.
    let s = Server::start(&p);
    let (code, v) = s.get("/dag-runs/hello/r1");
    assert_eq!(code, 200, "{v}");
    let d = &v["dagRunDetails"];
    assert_eq!(d["startedAt"], "2025-01-02T03:04:05Z", "{d}");
    assert_eq!(d["finishedAt"], "2025-01-02T03:04:08Z", "{d}");
    assert!(
        d["params"]
            .as_str()
            .is_some_and(|p| p.contains("WHO=world")),
        "{d}"
    );
    let (code, v) = s.get("/dag-runs/hello/r1/outputs");
    assert_eq!(code, 200);
    assert!(v.to_string().contains("hello"), "{v}");
    let (code, _, page) = s.page("GET", "/dags/hello/runs/r1", "", "");
    assert_eq!(code, 200);
    assert!(
        page.contains("hello from dagu") && page.contains("greet"),
        "{page}"
    );
    let (code, _, page) = s.page("GET", "/dags/parent/runs/p1/sub/c1", "", "");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("inner"), "{page}");
    drop(s);

    // Again: nothing twice, and Dagu's files as they were.
    let out = p
        .wharf()
        .args(["migrate", "history", "--from"])
        .arg_path(&data)
        .run();
    assert!(
        out.stderr
            .contains("hello: 0 run(s) carried over, 2 here already"),
        "{}",
        out.stderr
    );
    let out = p.wharf().args(["history", "hello", "--json"]).run();
    assert_eq!(out.stdout.matches("\"r1\"").count(), 1, "{}", out.stdout);
    assert!(before == snapshot(&dagu), "Dagu's files are only read");

    // Without --from and nothing to find: a clear error.
    let out = p
        .wharf()
        .args(["migrate", "history"])
        .env("DAGU_HOME", &p.path("nowhere").to_string_lossy())
        .env("HOME", &p.path("nowhere").to_string_lossy())
        .env_remove("DAGU_DATA_DIR")
        .env_remove("XDG_DATA_HOME")
        .run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--from"), "{}", out.stderr);
}
