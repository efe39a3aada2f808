//! The store against real SQLite files in temporary folders.

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    (dir, store)
}

#[test]
fn many_first_opens_at_once_all_succeed() {
    // Threads released together, each opening a store that does not exist yet.
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tmp");
        let barrier = std::sync::Barrier::new(24);
        let failures: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..24)
                .map(|i| {
                    let (dir, barrier) = (dir.path(), &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let id = format!("run-{i}");
                        Store::open(dir)
                            .and_then(|s| s.create_run(&new_run("d", &id)).map(|_| ()))
                            .err()
                            .map(|e| e.to_string())
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .collect()
        });
        assert!(failures.is_empty(), "{failures:?}");
    }
}

fn new_run<'a>(dag: &'a str, run_id: &'a str) -> NewRun<'a> {
    NewRun {
        dag,
        run_id,
        file: Path::new("/x/dag.yaml"),
        params: &[],
        log_base: None,
        parent: None,
        queue: None,
    }
}

#[test]
fn a_run_id_is_unique_per_dag() {
    let (_dir, s) = store();
    s.create_run(&new_run("a", "1")).expect("first");
    assert!(matches!(
        s.create_run(&new_run("a", "1")),
        Err(Error::RunIdTaken { .. })
    ));
    s.create_run(&new_run("b", "1")).expect("another DAG");
}

#[test]
fn steps_attempts_and_outputs_round_trip() {
    let (_dir, s) = store();
    let run = s.create_run(&new_run("a", "1")).expect("run");
    s.add_steps(run, &[("one", None), ("bye", Some("exit"))])
        .expect("steps");
    let attempt = AttemptRecord {
        attempt: 1,
        started_at: now_ms(),
        finished_at: None,
        exit_code: None,
        stdout: "/o".into(),
        stderr: "/e".into(),
        pgid: None,
    };
    s.start_attempt(run, "one", &attempt).expect("attempt");
    s.finish_step(
        run,
        "one",
        Some((1, Some(0))),
        Status::Succeeded,
        Some(0),
        None,
    )
    .expect("finish");
    s.set_output(
        run,
        &OutputRecord {
            step: "one".into(),
            name: "X".into(),
            key: "x".into(),
            value: "v".into(),
            omit: false,
        },
    )
    .expect("output");
    s.finish_run(run, Status::Succeeded, None)
        .expect("finish run");
    let steps = s.steps(run).expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[0].name.as_str(), steps[0].status, steps[0].exit_code),
        ("one", Status::Succeeded, Some(0))
    );
    assert_eq!(steps[1].handler.as_deref(), Some("exit"));
    assert_eq!(
        s.attempts(run, "one").expect("attempts")[0].exit_code,
        Some(0)
    );
    assert_eq!(s.outputs(run).expect("outputs")[0].value, "v");
    assert_eq!(
        s.latest_run("a").expect("latest").map(|r| r.status),
        Some(Status::Succeeded)
    );
}

#[test]
fn a_run_of_a_dead_process_is_reaped() {
    let (_dir, s) = store();
    let run = s.create_run(&new_run("a", "1")).expect("run");
    s.add_steps(run, &[("one", None)]).expect("steps");
    s.start_step(run, "one").expect("start");
    // Pretend the run belongs to a process that no longer exists.
    s.conn
        .execute(
            "UPDATE runs SET pid = 999999999 WHERE id = ?1",
            params![run.0],
        )
        .expect("update");
    let dead = s.reap_dead().expect("reap");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].status, Status::Failed);
    assert_eq!(s.steps(run).expect("steps")[0].status, Status::Failed);
    assert!(s.reap_dead().expect("again").is_empty());
}

#[test]
fn a_live_run_is_left_alone() {
    let (_dir, s) = store();
    s.create_run(&new_run("a", "1")).expect("run");
    assert!(s.reap_dead().expect("reap").is_empty());
    assert_eq!(s.running(Some("a")).expect("running").len(), 1);
}

#[test]
fn purge_removes_old_finished_runs_and_their_logs() {
    let (_dir, s) = store();
    let run = s.create_run(&new_run("a", "old")).expect("run");
    let logs = s.latest_run("a").expect("latest").expect("run").log_dir;
    assert!(logs.is_dir());
    s.finish_run(run, Status::Succeeded, None).expect("finish");
    s.create_run(&new_run("a", "live")).expect("live");
    assert_eq!(s.purge("a", now_ms() + 1000).expect("purge"), 1);
    assert!(!logs.exists());
    assert_eq!(s.history("a", 10).expect("history").len(), 1);
}

#[test]
fn names_are_safe_path_components() {
    assert_eq!(safe_name("a/b c"), "a_b_c");
    assert_eq!(safe_name(".."), "_");
}

#[test]
fn a_closed_store_leaves_its_writes_in_the_wal_for_the_next_open() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let store = Store::open(dir.path()).expect("open");
        store.create_run(&new_run("d", "r1")).expect("a run");
    }
    // No checkpoint on close: the run is in the WAL, not yet in the database file.
    let wal = std::fs::metadata(dir.path().join("wharf.db-wal")).expect("the WAL is kept");
    assert!(wal.len() > 0);
    let store = Store::open(dir.path()).expect("open again");
    let run = store
        .run("d", "r1")
        .expect("read")
        .expect("the run is there");
    assert_eq!(run.run_id, "r1");
}

#[test]
fn a_store_of_an_earlier_version_is_migrated_and_keeps_its_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    {
        let conn = Connection::open(dir.path().join("wharf.db")).expect("db");
        conn.execute_batch(MIGRATIONS[0]).expect("first migration");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.execute(
            "INSERT INTO runs (dag, run_id, file, status, params, created_at, log_dir)
             VALUES ('d', 'r1', 'd.yaml', 'succeeded', '', 1, '/logs')",
            [],
        )
        .expect("a run of version 1");
    }
    let store = Store::open(dir.path()).expect("open");
    let version: usize = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, MIGRATIONS.len());
    let run = store
        .run("d", "r1")
        .expect("read")
        .expect("the run is kept");
    assert_eq!((run.run_id.as_str(), run.status), ("r1", Status::Succeeded));
}
