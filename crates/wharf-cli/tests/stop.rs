//! Stopping runs: every way in (Ctrl-C, SIGTERM, `wharf stop`, SIGKILL of wharf itself)
//! leaves no process of the run behind, checked in the process table.

use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use wharf_testkit::{Place, processes_with, step};

/// A `sleep` argument no other process on the machine has: a test finds its own processes
/// by it (a fixed one would also find what an earlier, failed run left).
fn marker(n: u32) -> String {
    format!("1000.{n}{}", std::process::id())
}

/// A DAG whose step ignores SIGTERM and starts a grandchild that ignores it too.
fn stubborn(p: &Place, name: &str, marker: &str) -> std::path::PathBuf {
    p.dag(
        name,
        &format!(
            r#"
maxCleanUpTimeSec: 1
handlerOn:
  abort: {{command: echo abort > abort.txt}}
  exit: {{command: echo exit > exit.txt}}
steps:
  - name: stubborn
    command: |
      trap '' TERM
      sh -c "trap '' TERM; sleep {marker}" &
      sleep {marker}
      echo survived
  - name: never
    command: echo never > never.txt
"#
        ),
    )
}

/// Waits until `count` processes carry the marker (the step and its grandchild run).
fn wait_for_processes(marker: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(marker).len() < count {
        assert!(
            Instant::now() < deadline,
            "the step's processes did not start: {:?}",
            processes_with(marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_with_deadline(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            return (
                status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wharf did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_aborted_and_clean(p: &Place, name: &str, marker: &str) {
    let status = p.status(name);
    assert_eq!(status["status"], "aborted", "{status}");
    assert_eq!(step(&status, "stubborn")["status"], "aborted");
    assert_eq!(step(&status, "never")["status"], "not_started");
    assert!(p.path("abort.txt").exists(), "the abort handler ran");
    assert!(p.path("exit.txt").exists(), "the exit handler ran");
    assert!(!p.path("never.txt").exists());
    assert_eq!(
        processes_with(marker),
        Vec::<String>::new(),
        "nothing of the run is left"
    );
}

fn stop_with_signal(signal: Signal, marker: &str) {
    let p = Place::new();
    let dag = stubborn(&p, "stubborn", marker);
    let child = p.spawn(&dag);
    wait_for_processes(marker, 2);
    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        signal,
    )
    .expect("signal");
    let (code, stderr) = wait_with_deadline(child, Duration::from_secs(10));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("stubborn: aborted"), "{stderr}");
    assert_aborted_and_clean(&p, "stubborn", marker);
}

#[test]
fn ctrl_c_stops_every_process_of_the_run() {
    stop_with_signal(Signal::SIGINT, &marker(1));
}

#[test]
fn sigterm_stops_every_process_of_the_run() {
    stop_with_signal(Signal::SIGTERM, &marker(2));
}

#[test]
fn wharf_stop_from_another_terminal_stops_the_run() {
    let p = Place::new();
    let marker = &marker(3);
    let dag = stubborn(&p, "remote", marker);
    let child = p.spawn(&dag);
    wait_for_processes(marker, 2);
    let started = Instant::now();
    let out = p.wharf().args(["stop", "remote"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("aborted"),
        "`wharf stop` waits for the run to end: {}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (code, _) = wait_with_deadline(child, Duration::from_secs(10));
    assert_eq!(code, Some(1));
    assert_aborted_and_clean(&p, "remote", marker);
    let again = p.wharf().args(["stop", "remote"]).run();
    assert!(
        again.stderr.contains("no run of `remote` is running"),
        "{}",
        again.stderr
    );
}

#[test]
fn signal_on_stop_is_the_signal_the_step_gets() {
    let p = Place::new();
    let dag = p.dag(
        "gentle",
        &format!(
            r#"
steps:
  - name: graceful
    signalOnStop: SIGINT
    command: |
      trap 'echo got INT > signal.txt; exit 0' INT
      trap 'echo got TERM > signal.txt; exit 0' TERM
      sleep {} & wait
"#,
            marker(4)
        ),
    );
    let child = p.spawn(&dag);
    wait_for_processes(&marker(4), 1);
    let out = p.wharf().args(["stop", "gentle"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = wait_with_deadline(child, Duration::from_secs(10));
    assert_eq!(
        std::fs::read_to_string(p.path("signal.txt"))
            .expect("signal")
            .trim(),
        "got INT"
    );
    assert!(processes_with(&marker(4)).is_empty());
}

#[test]
fn a_run_whose_wharf_was_killed_is_marked_failed_and_cleaned_up() {
    let p = Place::new();
    let marker = &marker(5);
    let dag = stubborn(&p, "orphan", marker);
    let mut child = p.spawn(&dag);
    wait_for_processes(marker, 2);
    child.kill().expect("SIGKILL wharf");
    let _ = child.wait();
    // Its steps outlive it for now; the next wharf command that looks finds the run dead.
    let out = p.wharf().args(["status", "orphan", "--json"]).run();
    assert!(out.stderr.contains("marked failed"), "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(status["status"], "failed");
    assert_eq!(step(&status, "stubborn")["status"], "failed");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_with(marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            processes_with(marker)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_reads_a_run_while_it_runs_and_two_dags_run_at_once() {
    let p = Place::new();
    let slow = p.dag(
        "slow-one",
        &format!(
            "steps:\n  - name: wait\n    command: sleep {} & wait\n",
            marker(6)
        ),
    );
    let other = p.dag(
        "other-one",
        "steps:\n  - name: quick\n    command: echo quick\n",
    );
    let child = p.spawn(&slow);
    wait_for_processes(&marker(6), 1);
    let status = p.status("slow-one");
    assert_eq!(status["status"], "running");
    assert_eq!(step(&status, "wait")["status"], "running");
    let started = Instant::now();
    let out = p.run(&other, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a running DAG does not hold up another: {:?}",
        started.elapsed()
    );
    assert_eq!(p.wharf().args(["stop", "slow-one"]).run().code, Some(0));
    let _ = wait_with_deadline(child, Duration::from_secs(10));
    assert!(processes_with(&marker(6)).is_empty());
}
