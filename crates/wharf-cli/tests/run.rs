//! `wharf run` and the commands that read runs: the engine's semantics (SPEC §3), driven
//! through the real binary, each test with a `WHARF_HOME` of its own.

use std::time::{Duration, Instant};

use serde_json::Value;

use wharf_testkit::{Place, processes_with, step, step_error};

#[test]
fn a_run_records_its_steps_and_their_output() {
    let p = Place::new();
    let dag = p.dag("hello", "steps:\n  - name: greet\n    command: echo hello\n  - name: second\n    command: printf 'no newline'\n");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("greet: succeeded"), "{}", out.stderr);
    let status = p.status("hello");
    assert_eq!(status["status"], "succeeded");
    assert_eq!(step(&status, "greet")["exitCode"], 0);
    assert_eq!(p.logs("hello", "greet"), "hello\n");
    assert_eq!(p.logs("hello", "second"), "no newline");
    // The file path names the same DAG as its name.
    let by_file = p
        .wharf()
        .args(["status"])
        .args([&dag])
        .args(["--json"])
        .run();
    assert_eq!(
        serde_json::from_str::<Value>(&by_file.stdout).expect("json")["runId"],
        status["runId"]
    );
}

#[test]
fn a_failed_step_fails_the_run_and_stops_what_follows() {
    let p = Place::new();
    let dag = p.dag(
        "broken",
        r#"
handlerOn:
  success: {command: echo success > success.txt}
  failure: {command: echo failure > failure.txt}
  exit: {command: echo exit > exit.txt}
steps:
  - name: ok
    command: echo fine
  - name: bad
    command: sh -c 'echo something went wrong >&2; exit 3'
  - name: after
    command: echo never
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("bad: failed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("something went wrong"),
        "the failing step's stderr tail is shown: {}",
        out.stderr
    );
    let status = p.status("broken");
    assert_eq!(status["status"], "failed");
    assert_eq!(step(&status, "bad")["exitCode"], 3);
    assert_eq!(step(&status, "after")["status"], "not_started");
    assert!(p.path("failure.txt").exists() && p.path("exit.txt").exists());
    assert!(!p.path("success.txt").exists());
}

#[test]
fn params_are_positional_and_named_and_the_command_line_overrides_them() {
    let p = Place::new();
    let dag = p.dag(
        "params",
        "params: first NAME=default\nsteps:\n  - name: show\n    command: echo \"$1 ${NAME} $2\"\n",
    );
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    assert_eq!(p.logs("params", "show"), "first default default\n");
    let out = p.run(&dag, &["--", "one", "NAME=given"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("params", "show"), "one given given\n");
    // `-p` as shell words, or as JSON (an object of named params, a list of words).
    let out = p.run(&dag, &["-p", "two 'NAME=two words'"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("params", "show"), "two two words two words\n");
    let out = p.run(&dag, &["-p", r#"{"NAME": "from json"}"#]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("params", "show"), "first from json from json\n");
    let out = p.run(&dag, &["-p", r#"["three", "NAME=x"]"#]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("params", "show"), "three x x\n");
}

#[test]
fn environment_comes_from_dotenv_env_params_outputs_and_the_host() {
    let p = Place::new();
    std::fs::write(p.path(".env"), "FROM_DOTENV=dot\nOVERRIDDEN=dotenv\n").expect("dotenv");
    let dag = p.dag(
        "envs",
        r#"
env:
  - OVERRIDDEN: env
  - COMBINED: ${FROM_DOTENV}-${HOST_VALUE}
  - TODAY: "`echo computed`"
params: P=param
steps:
  - name: produce
    command: echo produced
    output: RESULT
  - name: consume
    env:
      - OWN: ${RESULT}-own
    command: echo "$OVERRIDDEN $COMBINED $TODAY $P $RESULT $OWN $DAG_NAME $DAG_RUN_STEP_NAME ${UNKNOWN_NAME:-unset}"
"#,
    );
    let out = p
        .wharf()
        .env("HOST_VALUE", "host")
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("envs", "consume"),
        "env dot-host computed param produced produced-own envs consume unset\n"
    );
    let status = p.status("envs");
    assert_eq!(status["outputs"]["RESULT"], "produced");
}

#[test]
fn dag_variables_name_the_run_and_its_log() {
    let p = Place::new();
    let dag = p.dag("vars", "steps:\n  - name: show\n    command: echo \"$DAG_NAME $DAG_RUN_ID $DAG_RUN_STEP_NAME\"; test -f \"$DAG_RUN_LOG_FILE\"\n");
    let out = p.run(&dag, &["--run-id", "my-run-1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("vars", "show"), "vars my-run-1 show\n");
}

#[test]
fn stdout_and_stderr_redirects_write_the_file_and_the_log() {
    let p = Place::new();
    let dag = p.dag("redir", "steps:\n  - name: s\n    command: sh -c 'echo out; echo err >&2'\n    stdout: out/s.txt\n    stderr: err.txt\n");
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    assert_eq!(
        std::fs::read_to_string(p.path("out/s.txt")).expect("out"),
        "out\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("err.txt")).expect("err"),
        "err\n"
    );
    assert_eq!(p.logs("redir", "s"), "out\n");
    let err = p
        .wharf()
        .args(["logs", "redir", "--step", "s", "--stderr"])
        .run();
    assert_eq!(err.stdout, "err\n");
}

#[test]
fn preconditions_skip_a_step_and_what_depends_on_it() {
    let p = Place::new();
    let dag = p.dag(
        "pre",
        r#"
type: graph
steps:
  - name: weekday
    command: echo yes
    preconditions:
      - condition: "`echo 3`"
        expected: "re:^[1-5]$"
  - name: never
    command: echo no
    precondition: test -f /nonexistent/file
  - name: after-never
    command: echo no
    depends: never
  - name: carried-on
    command: echo no
    precondition:
      - condition: "$WHICH"
        expected: b
    continueOn:
      skipped: true
  - name: after-carried-on
    command: echo yes
    depends: carried-on
env:
  - WHICH: a
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("pre");
    assert_eq!(step(&status, "weekday")["status"], "succeeded");
    assert_eq!(step(&status, "never")["status"], "skipped");
    assert_eq!(step(&status, "after-never")["status"], "skipped");
    assert_eq!(step(&status, "carried-on")["status"], "skipped");
    assert_eq!(step(&status, "after-carried-on")["status"], "succeeded");
}

#[test]
fn continue_on_lets_the_run_go_on() {
    let p = Place::new();
    let dag = p.dag(
        "cont",
        r#"
steps:
  - name: tolerated
    command: exit 1
    continueOn:
      failure: true
  - name: by-code
    command: exit 4
    continueOn:
      exitCode: [4]
  - name: by-output
    command: "sh -c 'echo WARN: low disk; exit 2'"
    continueOn:
      output: "re:^WARN"
  - name: marked
    command: exit 5
    continueOn:
      failure: true
      markSuccess: true
  - name: last
    command: echo done
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(
        out.code,
        Some(0),
        "a partial success exits 0: {}",
        out.stderr
    );
    let status = p.status("cont");
    assert_eq!(status["status"], "partially_succeeded");
    assert_eq!(step(&status, "tolerated")["status"], "failed");
    assert_eq!(step(&status, "by-code")["status"], "failed");
    assert_eq!(step(&status, "by-output")["status"], "failed");
    assert_eq!(step(&status, "marked")["status"], "succeeded");
    assert_eq!(step(&status, "last")["status"], "succeeded");
}

#[test]
fn retry_policy_retries_failed_attempts() {
    let p = Place::new();
    let dag = p.dag(
        "flaky",
        r#"
steps:
  - name: flaky
    command: n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "attempt $n"; test $n -ge 3
    retryPolicy:
      limit: 5
      intervalSec: 0
  - name: wrong-code
    command: exit 7
    retryPolicy:
      limit: 3
      exitCode: [1]
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("flaky");
    assert_eq!(step(&status, "flaky")["status"], "succeeded");
    assert_eq!(step(&status, "flaky")["attempts"], 3);
    assert_eq!(p.logs("flaky", "flaky"), "attempt 3\n");
    let first = p
        .wharf()
        .args(["logs", "flaky", "--step", "flaky", "--attempt", "1"])
        .run();
    assert_eq!(first.stdout, "attempt 1\n");
    assert_eq!(
        step(&status, "wrong-code")["attempts"],
        1,
        "exit 7 is not in retryPolicy.exitCode"
    );
}

#[test]
fn repeat_policy_repeats_until_the_condition_holds() {
    let p = Place::new();
    let dag = p.dag(
        "repeat",
        r#"
steps:
  - name: until
    command: n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count
    repeatPolicy:
      repeat: until
      condition: "`cat count`"
      expected: "3"
      intervalSec: 0
  - name: limited
    command: echo again >> limited.txt
    repeatPolicy:
      repeat: true
      limit: 4
      intervalSec: 0
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("count"))
            .expect("count")
            .trim(),
        "3"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("limited.txt"))
            .expect("limited")
            .lines()
            .count(),
        4
    );
}

#[test]
fn a_step_timeout_ends_the_step_and_the_run_goes_on_per_continue_on() {
    let p = Place::new();
    let dag = p.dag(
        "slow",
        &r#"
maxCleanUpTimeSec: 1
steps:
  - name: slow
    command: trap '' TERM; sleep 1000.0301{PID}
    timeoutSec: 1
    continueOn:
      failure: true
  - name: next
    command: echo next
"#
        .replace("{PID}", &std::process::id().to_string()),
    );
    let started = Instant::now();
    let out = p.run(&dag, &[]);
    let took = started.elapsed();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        took < Duration::from_secs(5),
        "the grace period bounds the stop: {took:?}"
    );
    let status = p.status("slow");
    assert_eq!(step(&status, "slow")["status"], "failed");
    assert!(
        step_error(&status, "slow").contains("timed out"),
        "{status}"
    );
    assert_eq!(step(&status, "next")["status"], "succeeded");
    assert!(
        processes_with(&format!("1000.0301{}", std::process::id())).is_empty(),
        "{:?}",
        processes_with(&format!("1000.0301{}", std::process::id()))
    );
}

#[test]
fn a_dag_timeout_aborts_the_run_and_runs_the_handlers() {
    let p = Place::new();
    let dag = p.dag(
        "dagtimeout",
        &r#"
timeoutSec: 1
maxCleanUpTimeSec: 1
handlerOn:
  cancel: {command: echo aborted > abort.txt}
  exit: {command: echo exit > exit.txt}
steps:
  - name: forever
    command: sleep 1000.0302{PID}
"#
        .replace("{PID}", &std::process::id().to_string()),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("dagtimeout");
    assert_eq!(status["status"], "aborted");
    assert_eq!(step(&status, "forever")["status"], "aborted");
    assert!(p.path("abort.txt").exists() && p.path("exit.txt").exists());
    assert!(processes_with(&format!("1000.0302{}", std::process::id())).is_empty());
}

#[test]
fn delay_and_max_active_steps_shape_the_timing() {
    let p = Place::new();
    let dag = p.dag(
        "limited",
        r#"
type: graph
delaySec: 1
maxActiveSteps: 2
steps:
  - {name: a, command: "echo $(date +%s%N) start >> trace; sleep 0.4; echo $(date +%s%N) end >> trace"}
  - {name: b, command: "echo $(date +%s%N) start >> trace; sleep 0.4; echo $(date +%s%N) end >> trace"}
  - {name: c, command: "echo $(date +%s%N) start >> trace; sleep 0.4; echo $(date +%s%N) end >> trace"}
  - {name: d, command: "echo $(date +%s%N) start >> trace; sleep 0.4; echo $(date +%s%N) end >> trace"}
"#,
    );
    let started = Instant::now();
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "1 s delay + two waves of 0.4 s: {:?}",
        started.elapsed()
    );
    // Never more than two at once.
    let trace = std::fs::read_to_string(p.path("trace")).expect("trace");
    let mut events: Vec<(u128, i32)> = trace
        .lines()
        .map(|l| {
            let (t, what) = l.split_once(' ').expect("line");
            (
                t.parse().expect("time"),
                if what == "start" { 1 } else { -1 },
            )
        })
        .collect();
    events.sort_by_key(|(t, delta)| (*t, *delta));
    let mut active = 0;
    for (_, delta) in events {
        active += delta;
        assert!(active <= 2, "{trace}");
    }
}

#[test]
fn scripts_shells_working_dirs_and_argv_commands() {
    let p = Place::new();
    std::fs::create_dir(p.path("sub")).expect("sub");
    let dag = p.dag(
        "forms",
        r#"
steps:
  - name: script
    shell: bash
    dir: sub
    script: |
      set -e
      arr=(a b)
      echo "${arr[1]} $(basename "$PWD")"
  - name: interpreter
    command: sh
    script: echo from a script given to sh
  - name: shebang
    script: |
      #!/bin/sh
      echo shebang
  - name: argv
    command: printf
    args: ["%s|", "two words", "$HOME_DIR_NAME"]
env:
  - HOME_DIR_NAME: expanded
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("forms", "script"), "b sub\n");
    assert_eq!(
        p.logs("forms", "interpreter"),
        "from a script given to sh\n"
    );
    assert_eq!(p.logs("forms", "shebang"), "shebang\n");
    assert_eq!(p.logs("forms", "argv"), "two words|expanded|");
}

#[test]
fn history_lists_runs_newest_first() {
    let p = Place::new();
    let dag = p.dag("hist", "steps:\n  - echo one\n");
    for id in ["r1", "r2", "r3"] {
        assert_eq!(p.run(&dag, &["--run-id", id]).code, Some(0));
    }
    let out = p.wharf().args(["history", "hist"]).run();
    let ids: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["r3", "r2", "r1"], "{}", out.stdout);
}

#[test]
fn a_run_id_is_used_once_and_an_invalid_file_records_nothing() {
    let p = Place::new();
    let dag = p.dag("once", "steps:\n  - echo one\n");
    assert_eq!(p.run(&dag, &["--run-id", "same"]).code, Some(0));
    let again = p.run(&dag, &["--run-id", "same"]);
    assert_eq!(again.code, Some(2));
    assert!(
        again
            .stderr
            .contains("already has a run with the id `same`"),
        "{}",
        again.stderr
    );
    let bad_id = p.run(&dag, &["--run-id", "../escape"]);
    assert_eq!(bad_id.code, Some(2));
    let invalid = p.dag("invalid", "steps:\n  - name: a\n    comand: x\n");
    let out = p.run(&invalid, &[]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("unknown key `comand`"),
        "{}",
        out.stderr
    );
    let history = p.wharf().args(["history", "invalid"]).run();
    assert!(history.stdout.is_empty(), "{}", history.stdout);
}

#[test]
fn retry_reruns_failed_steps_and_what_follows_keeping_the_rest() {
    let p = Place::new();
    let dag = p.dag(
        "again",
        r#"
steps:
  - name: first
    command: echo ran >> first.txt; echo value
    output: FIRST
  - name: gate
    command: test -f ok
  - name: last
    command: echo "last saw $FIRST"
"#,
    );
    assert_eq!(p.run(&dag, &["--run-id", "r"]).code, Some(1));
    std::fs::write(p.path("ok"), "").expect("ok");
    let out = p.wharf().args(["retry", "again", "--run-id", "r"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("again");
    assert_eq!(status["status"], "succeeded");
    assert_eq!(
        step(&status, "first")["attempts"],
        1,
        "the succeeded step keeps its result"
    );
    assert_eq!(step(&status, "gate")["attempts"], 2);
    assert_eq!(
        std::fs::read_to_string(p.path("first.txt"))
            .expect("first")
            .lines()
            .count(),
        1
    );
    assert_eq!(
        p.logs("again", "last"),
        "last saw value\n",
        "kept outputs reach the retried steps"
    );
}

#[test]
fn hist_retention_days_purges_old_runs() {
    let p = Place::new();
    let dag = p.dag("keep", "histRetentionDays: 0\nsteps:\n  - echo one\n");
    assert_eq!(p.run(&dag, &["--run-id", "old"]).code, Some(0));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(p.run(&dag, &["--run-id", "new"]).code, Some(0));
    let out = p.wharf().args(["history", "keep"]).run();
    assert!(!out.stdout.contains("old"), "{}", out.stdout);
    assert!(out.stdout.contains("new"), "{}", out.stdout);
}

// Dagu 2.6+: `hist_retention_runs` keeps the newest N runs (the one starting among them);
// it cannot be set with `hist_retention_days`.
#[test]
fn hist_retention_runs_keeps_the_newest_runs() {
    let p = Place::new();
    let dag = p.dag(
        "few",
        "hist_retention_runs: 3\nsteps:\n  - id: say\n    run: echo $DAG_RUN_ID\n",
    );
    for id in ["run-1", "run-2", "run-3", "run-4", "run-5"] {
        assert_eq!(p.run(&dag, &["--run-id", id]).code, Some(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = p.wharf().args(["history", "few"]).run();
    for (id, kept) in [
        ("run-1", false),
        ("run-2", false),
        ("run-3", true),
        ("run-4", true),
        ("run-5", true),
    ] {
        assert_eq!(out.stdout.contains(id), kept, "{id}: {}", out.stdout);
    }
    // The removed runs' logs went with them.
    let logs = p.home().join("logs");
    let mut left = Vec::new();
    let mut dirs = vec![logs];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read_to_string(&path).is_ok_and(|t| t.contains("run-1")) {
                left.push(path);
            }
        }
    }
    assert!(left.is_empty(), "{left:?}");
    p.assert_refused(
        "hist_retention_days: 3\nhist_retention_runs: 3\nsteps:\n  - run: \"true\"\n",
        "keep runs by age or by count, not both",
    );
}

#[test]
fn logs_and_status_explain_what_is_missing() {
    let p = Place::new();
    let dag = p.dag("few", "steps:\n  - name: a\n    command: echo a\n");
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    let out = p.wharf().args(["logs", "few", "--step", "nope"]).run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("has no step `nope`; its steps: a"),
        "{}",
        out.stderr
    );
    let out = p.wharf().args(["status", "nothing-ran"]).run();
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("has no runs"), "{}", out.stderr);
}

#[test]
fn start_is_run_and_verbose_prints_the_steps_output_as_it_comes() {
    let p = Place::new();
    let dag = p.dag(
        "talk",
        "steps:\n  - name: say\n    command: echo said; echo warned >&2\n",
    );
    let out = p.wharf().args(["start", "--verbose"]).args([&dag]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("say | said"), "{}", out.stdout);
    assert!(out.stdout.contains("say ! warned"), "{}", out.stdout);
    let quiet = p.wharf().args(["run"]).args([&dag]).run();
    assert!(
        quiet.stdout.is_empty(),
        "without --verbose stdout stays empty: {}",
        quiet.stdout
    );
}

// L (Dagu's command line): `start NAME` finds the DAG in the DAGs folder; `-p/--params`
// gives params as one text, before those after `--`.
#[test]
fn start_by_name_with_params_given_as_one_text() {
    let p = Place::new();
    std::fs::create_dir_all(p.home().join("dags")).expect("dags");
    std::fs::write(
        p.home().join("dags/greet.yaml"),
        "params:\n  - A: a\n  - B: b\n  - C: c\nsteps:\n  - name: say\n    command: echo \"$A|$B|$C\"\n",
    )
    .expect("dag");
    let out = p
        .wharf()
        .args(["start", "greet", "-p", "A=1 B='two words'", "--", "C=3"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("greet", "say"), "1|two words|3\n");
    let out = p.wharf().args(["start", "nowhere"]).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("no `nowhere.yaml` in the DAGs folder"),
        "{}",
        out.stderr
    );
    let out = p.wharf().args(["start", "greet", "-p", "A='open"]).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("unmatched quote"), "{}", out.stderr);
}

// `retry --step` runs that step alone again; the others keep their results.
#[test]
fn retry_of_one_step_runs_it_alone() {
    let p = Place::new();
    let dag = p.dag(
        "three",
        "steps:\n  - name: a\n    command: echo a >> trail\n  - name: b\n    command: echo b >> trail\n  - name: c\n    command: echo c >> trail\n",
    );
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    let id = p.status("three")["runId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let out = p
        .wharf()
        .args(["retry", "three", "--run-id", &id, "--step", "b"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("trail")).expect("trail"),
        "a\nb\nc\nb\n"
    );
    let status = p.status("three");
    assert_eq!(step(&status, "b")["attempts"], 2, "{status}");
    assert_eq!(step(&status, "c")["attempts"], 1, "{status}");
    let out = p
        .wharf()
        .args(["retry", "three", "--run-id", &id, "--step", "zzz"])
        .run();
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("a, b, c"), "{}", out.stderr);
    // With --downstream the steps after it run again too; the ones before keep theirs.
    let out = p
        .wharf()
        .args([
            "retry",
            "three",
            "--run-id",
            &id,
            "--step",
            "b",
            "--downstream",
        ])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("trail")).expect("trail"),
        "a\nb\nc\nb\nb\nc\n"
    );
    let status = p.status("three");
    assert_eq!(step(&status, "a")["attempts"], 1, "{status}");
    assert_eq!(step(&status, "c")["attempts"], 2, "{status}");
}

// `stop --run-id` stops that run only; `restart` stops the running ones and starts the
// DAG again with the params of its latest run.
#[test]
fn stop_one_run_by_id_and_restart_a_dag() {
    let p = Place::new();
    let marker = format!("1003.{}", std::process::id());
    let dag = p.dag(
        "sleepy",
        &format!(
            "maxCleanUpTimeSec: 1\nparams: X=0\nsteps:\n  - name: nap\n    command: echo \"x=$X\" >> trail; if [ ! -f done ]; then sleep {marker}; fi\n"
        ),
    );
    let spawn = |id: &str| {
        std::process::Command::new(wharf_testkit::wharf_bin())
            .args(["run", "--run-id", id])
            .arg(&dag)
            .args(["-p", "X=7"])
            .env("WHARF_HOME", p.home())
            .current_dir(p.path(""))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let mut first = spawn("first");
    let mut second = spawn("second");
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "the runs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = p
        .wharf()
        .args(["stop", "sleepy", "--run-id", "first"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = first.wait();
    let runs = |id: &str| {
        let out = p
            .wharf()
            .args(["status", "sleepy", "--run-id", id, "--json"])
            .run();
        serde_json::from_str::<Value>(&out.stdout).expect("json")["status"].clone()
    };
    assert_eq!(runs("first"), "aborted");
    assert_eq!(runs("second"), "running");

    std::fs::write(p.path("done"), "").expect("done");
    let out = p.wharf().args(["restart", "sleepy"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = second.wait();
    assert_eq!(runs("second"), "aborted");
    let latest = p.status("sleepy");
    assert_eq!(latest["status"], "succeeded", "{latest}");
    assert_eq!(latest["params"], serde_json::json!(["X=7"]), "{latest}");
    assert!(processes_with(&marker).is_empty());
    let trail = std::fs::read_to_string(p.path("trail")).expect("trail");
    assert_eq!(trail.lines().last(), Some("x=7"), "{trail}");
}

// L13: `cleanup --retention-days N [--dry-run] [-y] [NAME]` removes old runs (their
// sub-DAG runs and logs too); `version` prints the version.
#[test]
fn cleanup_removes_old_runs_and_their_logs() {
    let p = Place::new();
    let dag = p.dag(
        "old",
        "steps:\n  - name: fan\n    call: leaf\n---\nname: leaf\nsteps:\n  - command: echo leaf\n",
    );
    let keep = p.dag("keep", "steps:\n  - echo keep\n");
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    assert_eq!(p.run(&keep, &[]).code, Some(0));
    let status = p.status("old");
    let log_dir = status["logDir"].as_str().unwrap_or_default().to_owned();
    let child_dir = step(&status, "fan")["subRuns"][0]["logDir"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(std::path::Path::new(&child_dir).is_dir(), "{status}");

    let out = p
        .wharf()
        .args(["cleanup", "--retention-days", "0", "--dry-run", "old"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("would remove run"), "{}", out.stderr);
    assert!(std::path::Path::new(&log_dir).is_dir());

    // Without -y and without a terminal to answer on, nothing is removed.
    let out = p
        .wharf()
        .args(["cleanup", "--retention-days", "0", "old"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "Cancelled.\n");
    assert!(std::path::Path::new(&log_dir).is_dir());
    let out = p
        .wharf()
        .args(["cleanup", "--retention-days", "0", "-y", "old"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("removed 2 run(s)"), "{}", out.stderr);
    assert_eq!(out.stdout, "Successfully removed 2 run(s)\n");
    assert!(!std::path::Path::new(&log_dir).exists());
    assert!(!std::path::Path::new(&child_dir).exists());
    let out = p.wharf().args(["history", "old"]).run();
    assert!(out.stderr.contains("has no runs"), "{}", out.stderr);
    // The other DAG's runs are kept.
    assert_eq!(p.status("keep")["status"], "succeeded");

    let out = p.wharf().args(["version"]).run();
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.starts_with("wharf "), "{}", out.stdout);
}

// L03, G12: `restart` waits `restartWaitSec` between the stop and the new start.
#[test]
fn restart_waits_restart_wait_sec() {
    let p = Place::new();
    let dag = p.dag("pause", "restartWaitSec: 1\nsteps:\n  - echo again\n");
    assert_eq!(p.run(&dag, &[]).code, Some(0));
    let started = Instant::now();
    let out = p.wharf().args(["restart"]).args([&dag]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(out.stderr.contains("restartWaitSec"), "{}", out.stderr);
    let out = p.wharf().args(["history", "pause", "--json"]).run();
    let runs: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");
}

// L: shell completions and manual pages come from the command definitions.
#[test]
fn completions_and_manual_pages_come_from_the_commands() {
    let p = Place::new();
    let out = p.wharf().args(["completions", "bash"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    std::fs::write(p.path("wharf.bash"), &out.stdout).expect("script");
    // Real bash completes `wharf re` with the commands the definitions have.
    let probe = std::process::Command::new("bash")
        .arg("-c")
        .arg("source ./wharf.bash; COMP_WORDS=(wharf re); COMP_CWORD=1; _wharf wharf re wharf; echo \"${COMPREPLY[@]}\"")
        .current_dir(p.path(""))
        .output()
        .expect("bash");
    let words = String::from_utf8_lossy(&probe.stdout);
    let mut words: Vec<&str> = words.split_whitespace().collect();
    words.sort_unstable();
    assert_eq!(
        words,
        ["restart", "resume", "retry"],
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = p.wharf().args(["completions", shell]).run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(
            out.stdout.contains("retry") && out.stdout.contains("run-id"),
            "{shell}"
        );
    }
    let out = p.wharf().args(["man"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(".TH wharf 1") && out.stdout.contains("wharf\\-retry"),
        "{}",
        out.stdout
    );
    let out = p.wharf().args(["man", "retry"]).run();
    assert!(
        out.stdout.contains(".TH wharf-retry 1") && out.stdout.contains("\\-\\-step"),
        "{}",
        out.stdout
    );
    let out = p.wharf().args(["man", "nope"]).run();
    assert_eq!(out.code, Some(2));
}

// G30, L08: `maxActiveRuns` holds across processes: two runs started at the same instant
// never run together; the second waits `queued` and starts when the first ends.
#[test]
fn max_active_runs_queues_runs_started_at_once() {
    let p = Place::new();
    let dag = p.dag(
        "single",
        "maxActiveRuns: 1\nsteps:\n  - name: work\n    command: echo \"start $(date +%s%N)\" >> trail; sleep 0.3; echo \"end $(date +%s%N)\" >> trail\n",
    );
    let a = p.spawn(&dag);
    let b = p.spawn(&dag);
    let (a, b) = (
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    );
    assert!(a.status.success() && b.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        said.contains("is queued: at most 1 run(s) of `single` run at once"),
        "{said}"
    );
    let trail = std::fs::read_to_string(p.path("trail")).expect("trail");
    let marks: Vec<(&str, u128)> = trail
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, v.parse().expect("nanos")))
        .collect();
    assert_eq!(marks.len(), 4, "{trail}");
    assert_eq!(
        marks.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        ["start", "end", "start", "end"],
        "never together: {trail}"
    );
    assert!(marks[1].1 <= marks[2].1, "{trail}");
}

// L08: `enqueue` starts a run in the background that waits for its place; `dequeue` takes
// a queued run out (it ends `aborted`), and the others start in order.
#[test]
fn enqueue_and_dequeue() {
    let p = Place::new();
    let marker = format!("1004.{}", std::process::id());
    let dag = p.dag(
        "lane",
        &format!(
            "maxActiveRuns: 1\nmaxCleanUpTimeSec: 1\nparams: N=0\nsteps:\n  - name: go\n    command: echo \"$N\" >> trail; if [ \"$N\" = 0 ]; then sleep {marker}; fi\n"
        ),
    );
    let holder = p.spawn(&dag);
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the first run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let enqueue = |n: &str, id: &str| {
        let out = p
            .wharf()
            .args(["enqueue", "--run-id", id])
            .args([&dag])
            .args(["--", &format!("N={n}")])
            .run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        assert!(out.stderr.contains("queued"), "{}", out.stderr);
    };
    enqueue("1", "one");
    enqueue("2", "two");
    let status = |id: &str| {
        let out = p
            .wharf()
            .args(["status", "lane", "--run-id", id, "--json"])
            .run();
        serde_json::from_str::<Value>(&out.stdout).expect("json")["status"].clone()
    };
    assert_eq!(status("one"), "queued");
    assert_eq!(status("two"), "queued");
    let out = p.wharf().args(["dequeue", "lane"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("dequeued run one"), "{}", out.stderr);
    let out = p.wharf().args(["dequeue", "lane", "--run-id", "one"]).run();
    assert_eq!(out.code, Some(1), "not queued any more: {}", out.stderr);

    // The run that holds the place stops (by its id: `wharf stop lane` would empty the
    // queue too); the queued one starts.
    let out = p.wharf().args(["history", "lane", "--json"]).run();
    let runs: Value = serde_json::from_str(&out.stdout).expect("json");
    let holding = runs
        .as_array()
        .and_then(|r| r.iter().find(|r| r["status"] == "running"))
        .and_then(|r| r["runId"].as_str())
        .expect("the running run")
        .to_owned();
    let out = p.wharf().args(["stop", "lane", "--run-id", &holding]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = holder.wait_with_output();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status("two") != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "the queued run did not run: {}",
            status("two")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status("one"), "aborted");
    assert_eq!(
        std::fs::read_to_string(p.path("trail")).expect("trail"),
        "0\n2\n"
    );
}

// F05, G45, C06, F06, F09: a Dagu installation's base.yaml is under every DAG (env added
// before the DAG's, handlers not inherited by sub-DAGs), its global queues hold across
// DAGs, and its default shell runs steps that name none.
#[test]
fn an_installations_base_configuration_queues_and_default_shell_hold_for_every_dag() {
    let p = Place::new();
    let dagu = p.path("dagu");
    std::fs::create_dir_all(dagu.join("dags")).expect("dagu home");
    std::fs::write(
        dagu.join("config.yaml"),
        "defaultShell: bash\nqueues:\n  enabled: true\n  config:\n    - name: batch\n      maxConcurrency: 1\n",
    )
    .expect("config");
    std::fs::write(
        dagu.join("base.yaml"),
        "env:\n  - ENV: prod\n  - WHO: base\nhandlerOn:\n  failure:\n    command: echo \"base handler of $DAG_NAME\" >> trail\n",
    )
    .expect("base");
    let dag = |name: &str, body: &str| {
        std::fs::write(dagu.join(format!("dags/{name}.yaml")), body).expect("dag");
    };
    dag(
        "greet",
        "env:\n  - WHO: dag\nsteps:\n  - name: hi\n    command: echo \"$ENV $WHO ${BASH_VERSION:+bash}\" > out\n",
    );
    dag("parent", "steps:\n  - name: child\n    call: child\n");
    dag("child", "steps:\n  - name: no\n    command: \"false\"\n");
    let marker = format!("1006.{}", std::process::id());
    dag(
        "q1",
        &format!(
            "queue: batch\nsteps:\n  - name: hold\n    command: echo q1 >> lane; sleep {marker}\n"
        ),
    );
    dag(
        "q2",
        "queue: batch\nsteps:\n  - name: go\n    command: echo q2 >> lane\n",
    );
    let home = dagu.to_string_lossy().into_owned();
    // `$SHELL` is `sh`: the installation's `defaultShell` comes before it.
    let wharf = || p.wharf().env("DAGU_HOME", &home).env("SHELL", "/bin/sh");

    let out = wharf().args(["start", "greet"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dagu.join("dags/out")).unwrap_or_default(),
        "prod dag bash\n",
        "base env first, the DAG's wins; the default shell runs the step"
    );

    let out = wharf().args(["start", "parent"]).run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dagu.join("dags/trail")).unwrap_or_default(),
        "base handler of parent\n",
        "the base failure handler runs once, for the parent only"
    );

    let out = wharf().args(["enqueue", "q1", "--run-id", "first"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "q1 did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = wharf().args(["enqueue", "q2", "--run-id", "second"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("queued"),
        "another DAG of the queue holds its one place: {}",
        out.stderr
    );
    let status = |dag: &str, id: &str| {
        let out = wharf()
            .args(["status", dag, "--run-id", id, "--json"])
            .run();
        serde_json::from_str::<Value>(&out.stdout).expect("json")["status"].clone()
    };
    assert_eq!(status("q2", "second"), "queued");
    // L08: `dequeue QUEUE` takes the queue's oldest run out, whatever its DAG.
    let out = wharf().args(["dequeue", "batch"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("dequeued run second of q2"),
        "{}",
        out.stderr
    );
    assert_eq!(status("q2", "second"), "aborted");
    let out = wharf().args(["dequeue", "batch"]).run();
    assert_eq!(out.code, Some(1), "nothing left to take: {}", out.stderr);
    let out = wharf().args(["enqueue", "q2", "-r", "third"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(status("q2", "third"), "queued");
    // `-u` puts a run of a DAG of no queue in this one, behind the others.
    let out = wharf()
        .args(["enqueue", "greet", "-u", "batch", "-r", "g1"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(status("greet", "g1"), "queued");
    let out = wharf().args(["stop", "q1"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while status("q2", "third") != "succeeded" || status("greet", "g1") != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "{} {}",
            status("q2", "third"),
            status("greet", "g1")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(dagu.join("dags/lane")).unwrap_or_default(),
        "q1\nq2\n"
    );

    // A problem in base.yaml is told on the DAG with the base file's line.
    std::fs::write(
        dagu.join("base.yaml"),
        "env:\n  - ENV: prod\ntimeoutSec: soon\n",
    )
    .expect("base");
    let out = wharf()
        .args(["validate"])
        .arg_path(&dagu.join("dags/greet.yaml"))
        .run();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("in the base configuration") && out.stderr.contains("base.yaml:3:13"),
        "{}",
        out.stderr
    );
}

// L07/L16: `history` filters runs as Dagu's does (status, time, run id; one DAG or all)
// and prints a table, JSON or CSV; `--help` groups the commands by what they are for.
#[test]
fn history_filters_runs_and_help_groups_the_commands() {
    let p = Place::new();
    let ok = p.dag("ok", "steps:\n  - \"true\"\n");
    let bad = p.dag("bad", "steps:\n  - \"false\"\n");
    for (dag, id, code) in [(&ok, "r-ok-1", 0), (&ok, "r-ok-2", 0), (&bad, "r-bad", 1)] {
        let out = p.run(dag, &["--run-id", id]);
        assert_eq!(out.code, Some(code), "{}", out.stderr);
    }
    let history = |args: &[&str]| {
        let out = p.wharf().args(["history"]).args(args).run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    };
    let failed = history(&["--status", "failed"]);
    assert_eq!(failed.lines().count(), 1, "{failed}");
    assert!(failed.starts_with("bad  r-bad  failed"), "{failed}");
    assert_eq!(
        history(&["ok", "--status", "success", "--format", "csv"])
            .lines()
            .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
            .collect::<Vec<_>>(),
        [
            "name,run_id,status",
            "ok,r-ok-2,succeeded",
            "ok,r-ok-1,succeeded"
        ]
    );
    let one: Value =
        serde_json::from_str(&history(&["--run-id", "ok-1", "--format", "json"])).expect("json");
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(one[0]["runId"], "r-ok-1");
    assert_eq!(history(&["--last", "1h", "-n", "2"]).lines().count(), 2);
    assert_eq!(history(&["--from", "2999-01-01"]), "");
    assert_eq!(history(&["--to", "2000-01-01T00:00:00Z"]), "");
    let out = p.wharf().args(["history", "--status", "nope"]).run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("unknown status `nope`"),
        "{}",
        out.stderr
    );

    let out = p.wharf().args(["--help"]).run();
    assert_eq!(out.code, Some(0));
    let help = out.stdout;
    let run_dags = help.find("Run DAGs:").expect("a group for running");
    let serve = help
        .find("Serve and schedule:")
        .expect("a group for serving");
    assert!(
        run_dags < help.find("  enqueue").expect("enqueue"),
        "{help}"
    );
    assert!(
        serve < help.find("  start-all").expect("start-all"),
        "{help}"
    );
    assert!(
        !help.contains("Other commands"),
        "every command has its group: {help}"
    );
}

#[test]
fn a_run_of_host_steps_never_asks_the_docker_engine_anything() {
    use std::os::unix::net::UnixListener;
    let p = Place::new();
    // An engine socket that counts who connects (and answers no one).
    let socket = p.path("engine.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let dag = p.dag(
        "hostonly",
        "steps:\n  - name: a\n    command: \"true\"\n  - name: b\n    command: echo b\n    depends: [a]\n",
    );
    let out = p
        .wharf()
        .env("DOCKER_HOST", &format!("unix://{}", socket.display()))
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("hostonly", "b"), "b\n");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok(_) => panic!("the run connected to the Docker engine"),
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn exec_runs_one_command_as_a_run_of_its_own() {
    let p = Place::new();
    let exec = |args: &[&str]| p.wharf().args(["exec"]).args(args).run();

    let out = exec(&["--", "sh", "-c", "printf hi > exec.out; echo 'a  b' \"$0\""]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("exec.out")).expect("out"),
        "hi"
    );
    // Named after the command; its one step is `main`, its output in the logs.
    assert_eq!(p.status("exec-sh")["status"], "succeeded");
    assert_eq!(p.logs("exec-sh", "main"), "a  b sh\n");

    // A failure is the run's; --env, --dotenv and --workdir reach the command.
    let failed = exec(&["--", "sh", "-c", "exit 7"]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert_eq!(step(&p.status("exec-sh"), "main")["exitCode"], 7);
    std::fs::create_dir(p.path("wd")).expect("mkdir");
    std::fs::write(p.path("my.env"), "FROM_FILE=dotenv\n").expect("dotenv");
    let out = exec(&[
        "-N",
        "nightly",
        "-r",
        "first",
        "--env",
        "MY_VAR=exec value",
        "--dotenv",
        "my.env",
        "--workdir",
        "wd",
        "--",
        "sh",
        "-c",
        "printf '%s|%s|%s' \"$MY_VAR\" \"$FROM_FILE\" \"$(pwd)\" > got; test -f gate",
    ]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let wd = p.path("wd");
    assert_eq!(
        std::fs::read_to_string(wd.join("got")).expect("got"),
        format!("exec value|dotenv|{}", wd.display())
    );
    // Retried like any run: the kept DAG runs again under the same id.
    std::fs::write(wd.join("gate"), "").expect("gate");
    let retried = p
        .wharf()
        .args(["retry", "nightly", "--run-id", "first"])
        .run();
    assert_eq!(retried.code, Some(0), "{}", retried.stderr);
    assert_eq!(p.status("nightly")["status"], "succeeded");
    let history = p.wharf().args(["history"]).run();
    assert_eq!(
        history
            .stdout
            .lines()
            .filter(|l| l.starts_with("exec-sh ") || l.starts_with("nightly "))
            .count(),
        3,
        "{}",
        history.stdout
    );

    // Wrong calls stop before anything is recorded (or kept).
    let plain = p.dag("plain", "steps:\n  - echo hi\n");
    assert_eq!(p.run(&plain, &["--run-id", "plain1"]).code, Some(0));
    for (args, said) in [
        (&[][..], "a command is required"),
        (&["--env", "NOVALUE", "--", "true"][..], "give KEY=VALUE"),
        (
            &["--workdir", "missing", "--", "true"][..],
            "does not exist",
        ),
        (
            &["--dotenv", "none.env", "--", "true"][..],
            "does not exist",
        ),
        (&["-N", "a b", "--", "true"][..], "invalid name"),
        (
            &["--worker-label", "gpu=true", "--", "true"][..],
            "the command runs on this machine",
        ),
        (&["-r", "first", "--", "true"][..], "already started"),
        (
            &["-N", "plain", "-r", "plain1", "--", "true"][..],
            "already started",
        ),
    ] {
        let out = exec(args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
    }
    assert!(
        p.wharf()
            .args(["history", "exec-true"])
            .run()
            .stdout
            .is_empty()
    );

    {
        use std::os::unix::fs::PermissionsExt;
        let kept = std::fs::metadata(p.home().join("specs/first/nightly.yaml")).expect("kept");
        assert_eq!(
            kept.permissions().mode() & 0o777,
            0o600,
            "its env may hold credentials"
        );
    }

    // The DAGs kept for the runs go with them.
    let kept = || {
        std::fs::read_dir(p.home().join("specs"))
            .expect("specs")
            .count()
    };
    assert_eq!(kept(), 3);
    let out = p
        .wharf()
        .args(["cleanup", "--retention-days", "0", "-y", "exec-sh"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(kept(), 1);
    assert_eq!(p.status("nightly")["status"], "succeeded");
}

// L01: `start`'s flags as Dagu has them: `-r`, `--name/-N`, `--from-run-id`.
#[test]
fn a_run_can_be_kept_under_another_name_and_rerun_with_an_earlier_runs_params() {
    let p = Place::new();
    let dag = p.dag(
        "flags",
        "params: WHO=nobody\nsteps:\n  - name: greet\n    command: echo hello $WHO from $DAG_NAME\n",
    );
    assert_eq!(p.run(&dag, &["-r", "one", "--", "WHO=alice"]).code, Some(0));
    let named = p.run(&dag, &["-N", "flags-copy", "-r", "two", "--", "WHO=bob"]);
    assert_eq!(named.code, Some(0), "{}", named.stderr);
    assert_eq!(p.logs("flags-copy", "greet"), "hello bob from flags-copy\n");
    let by_id = p
        .wharf()
        .args(["status", "flags-copy", "-r", "two", "--json"])
        .run();
    assert_eq!(
        serde_json::from_str::<Value>(&by_id.stdout).expect("json")["runId"],
        "two"
    );

    // A new run with the params of run `one`, under its own id.
    let again = p.run(&dag, &["--from-run-id", "one", "-r", "three"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(p.status("flags")["runId"], "three");
    assert_eq!(p.logs("flags", "greet"), "hello alice from flags\n");
    // Of a run kept under another name, by that name.
    let copied = p.run(&dag, &["-N", "flags-copy", "--from-run-id", "two"]);
    assert_eq!(copied.code, Some(0), "{}", copied.stderr);
    assert_eq!(p.logs("flags-copy", "greet"), "hello bob from flags-copy\n");
    // A restart keeps the name too.
    let restarted = p.wharf().args(["restart", "flags-copy"]).run();
    assert_eq!(restarted.code, Some(0), "{}", restarted.stderr);
    let history = p.wharf().args(["history", "flags-copy"]).run();
    assert_eq!(history.stdout.lines().count(), 3, "{}", history.stdout);

    // An enqueued run is kept under the name given, and its process finds it by it.
    let out = p
        .wharf()
        .args(["enqueue", "-N", "flags-queued", "-r", "four"])
        .args([&dag])
        .args(["--", "WHO=carol"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.status("flags-queued")["status"] != "succeeded" {
        assert!(Instant::now() < deadline, "{}", p.status("flags-queued"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        p.logs("flags-queued", "greet"),
        "hello carol from flags-queued\n"
    );
    // A DAG's own name (its file's, here) need not be one `-N` takes: its enqueued run
    // still runs.
    let spaced = p.dag("my dag", "steps:\n  - echo ok\n");
    let out = p
        .wharf()
        .args(["enqueue", "-r", "five"])
        .args([&spaced])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.status("my dag")["status"] != "succeeded" {
        assert!(Instant::now() < deadline, "{}", p.status("my dag"));
        std::thread::sleep(Duration::from_millis(20));
    }

    for (args, said) in [
        (
            &["--from-run-id", "one", "--", "WHO=x"][..],
            "cannot be used with",
        ),
        (&["--from-run-id", "nope"][..], "has no run `nope`"),
        (&["-N", "no/slash"][..], "invalid name"),
        (&["-N", &"x".repeat(41)][..], "at most 40"),
    ] {
        let out = p.run(&dag, args);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
    }
}

// L16 (2.x): `ls` lists the DAGs of the folder, `ps` the runs running now, `config`
// where everything is, `rm` a DAG's history or file.
#[test]
fn ls_ps_config_and_rm_as_dagu_2x_has_them() {
    let p = Place::new();
    let dags = p.home().join("dags");
    std::fs::create_dir_all(&dags).expect("dags");
    let write = |name: &str, text: &str| {
        std::fs::write(dags.join(format!("{name}.yaml")), text).expect("dag");
    };
    write(
        "nightly",
        "schedule: \"CRON_TZ=UTC 0 2 * * *\"\nsteps:\n  - echo night\n",
    );
    write("adhoc", "steps:\n  - echo hi\n");
    write("broken", "steps:\n  - name: a\n    comand: x\n");
    let wharf = || p.wharf().env_remove("WHARF_DAGS").env_remove("DAGU_HOME");
    let out = wharf().args(["ls"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SCHEDULE"),
        "{}",
        out.stdout
    );
    assert!(lines[1].starts_with("adhoc"), "{}", out.stdout);
    assert!(
        lines[2].starts_with("broken") && lines[2].contains("invalid"),
        "{}",
        out.stdout
    );
    assert!(
        lines[3].starts_with("nightly") && lines[3].contains("0 2 * * *"),
        "{}",
        out.stdout
    );

    assert_eq!(wharf().args(["start", "nightly"]).run().code, Some(0));
    let out = wharf().args(["ls", "night", "--last", "--next"]).run();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(
        lines[0].contains("LAST RUN") && lines[0].contains("NEXT"),
        "{}",
        out.stdout
    );
    assert!(lines[1].contains("succeeded"), "{}", out.stdout);
    assert!(
        lines[1].trim_end().ends_with("T02:00:00Z"),
        "{}",
        out.stdout
    );

    // `ps`: the run going on, with the process that runs it; none of another DAG.
    let marker = format!("1008.{}", std::process::id());
    let slow = p.dag(
        "slow",
        &format!("steps:\n  - name: hold\n    command: sleep {marker}\n"),
    );
    let mut child = p.spawn(&slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = wharf().args(["ps"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let row = out.stdout.lines().nth(1).unwrap_or_default().to_owned();
    assert!(row.starts_with("slow"), "{}", out.stdout);
    assert!(
        row.contains(&format!("  {}  ", child.id())),
        "{}",
        out.stdout
    );
    let out = wharf().args(["ps", "-d", "adhoc"]).run();
    assert_eq!(out.stdout, "No running processes\n");
    assert!(
        out.stderr.contains("no run of `adhoc` is running"),
        "{}",
        out.stderr
    );
    // `rm -d` keeps the file of a DAG whose run goes on.
    let out = wharf().args(["rm", "-d"]).args([&slow]).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("going or waiting"), "{}", out.stderr);
    assert!(slow.is_file());
    assert_eq!(wharf().args(["stop", "slow"]).run().code, Some(0));
    let _ = child.wait();
    let out = wharf().args(["ps"]).run();
    assert_eq!(out.stdout, "No running processes\n");

    // `config`: where all of it is.
    let out = wharf().args(["config"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let said = |label: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        said("DAGs directory:"),
        dags.display().to_string(),
        "{}",
        out.stdout
    );
    assert_eq!(
        said("Run records:"),
        p.home().join("wharf.db").display().to_string(),
        "{}",
        out.stdout
    );
    assert!(
        said("Config file:").ends_with("(none yet)"),
        "{}",
        out.stdout
    );

    // `rm`: the history (or its older part), the file, or both.
    let runs = || {
        wharf()
            .args(["history", "nightly"])
            .run()
            .stdout
            .lines()
            .count()
    };
    let out = wharf().args(["rm", "nightly"]).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--history (-H)"), "{}", out.stderr);
    // Without --force and without a terminal to answer on, nothing is removed.
    let out = wharf().args(["rm", "-H", "-d", "nightly"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "Cancelled.\n");
    assert_eq!(runs(), 1);
    assert!(dags.join("nightly.yaml").is_file());
    let out = wharf()
        .args(["rm", "-H", "-f", "-t", "1d", "nightly"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "No runs to delete for DAG \"nightly\"\n");
    assert_eq!(runs(), 1, "a run of today is not older than a day");
    let out = wharf()
        .args(["rm", "-H", "-d", "--dry-run", "nightly"])
        .run();
    assert!(out.stderr.contains("would remove run"), "{}", out.stderr);
    assert!(out.stderr.contains("nightly.yaml"), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Dry run: Would delete 1 run(s) for DAG \"nightly\""),
        "{}",
        out.stdout
    );
    assert_eq!(runs(), 1);
    assert!(dags.join("nightly.yaml").is_file());
    let out = wharf().args(["rm", "-H", "-d", "-f", "nightly"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Successfully removed 1 run(s) for DAG \"nightly\"\nSuccessfully deleted DAG definition \"nightly\"\n"
    );
    assert_eq!(runs(), 0);
    assert!(!dags.join("nightly.yaml").exists());
    assert!(!wharf().args(["ls"]).run().stdout.contains("nightly"));
}

// L01, L04: a retry and `--from-run-id` run the DAG as the earlier run ran it (Dagu keeps
// it with the run), not as its file is now; the API shows a run's DAG as it ran.
#[test]
fn a_retry_runs_the_dag_as_the_run_ran_it_not_as_the_file_is_now() {
    let p = Place::new();
    let dag = p.dag(
        "snap",
        "env:\n  - API_TOKEN: first-s3cret\nsteps:\n  - name: a\n    command: echo old-a >> trail\n  - name: b\n    command: echo old-b >> trail; test -f ok && echo \"token ${#API_TOKEN}\" >> trail\n",
    );
    assert_eq!(p.run(&dag, &["--run-id", "r1"]).code, Some(1));
    std::fs::write(
        &dag,
        "env:\n  - API_TOKEN: rotated-s3cret\nsteps:\n  - name: a\n    command: echo new-a >> trail\n  - name: b\n    command: echo new-b >> trail\n",
    )
    .expect("edit");
    std::fs::write(p.path("ok"), "").expect("ok");
    let out = p.wharf().args(["retry", "snap", "--run-id", "r1"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let trail = || std::fs::read_to_string(p.path("trail")).expect("trail");
    assert_eq!(
        trail(),
        "old-a\nold-b\nold-b\ntoken 14\n",
        "the retry ran b as r1 ran it, with the credential the file has now"
    );
    // The kept text holds no credential.
    let kept = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print([t for (t,) in sqlite3.connect(sys.argv[1]).execute('SELECT text FROM specs')])",
        ])
        .arg(p.home().join("wharf.db"))
        .output()
        .expect("python3");
    let kept = String::from_utf8_lossy(&kept.stdout);
    assert!(kept.contains("old-b") && !kept.contains("s3cret"), "{kept}");
    let out = p
        .wharf()
        .args(["run", "--from-run-id", "r1", "--run-id", "r2"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        trail(),
        "old-a\nold-b\nold-b\ntoken 14\nold-a\nold-b\ntoken 14\n"
    );
    // A new run runs the file as it is now.
    assert_eq!(p.run(&dag, &["--run-id", "r3"]).code, Some(0));
    assert!(trail().ends_with("new-a\nnew-b\n"), "{}", trail());
    let s = wharf_testkit::Server::start(&p);
    let (code, v) = s.get("/dag-runs/snap/r1/spec");
    assert_eq!(code, 200, "{v}");
    assert!(
        v["spec"].as_str().unwrap_or_default().contains("old-b"),
        "{v}"
    );
    let (_, v) = s.get("/dag-runs/snap/r3/spec");
    assert!(
        v["spec"].as_str().unwrap_or_default().contains("new-b"),
        "{v}"
    );
    let (_, _, html) = s.page("GET", "/dags/snap/runs/r1", "", "");
    assert!(
        html.contains("The DAG as this run ran it") && html.contains("echo old-b"),
        "{html}"
    );
    // Started again from r1 (the API's reschedule, the page's "run again"): as r1 ran.
    let before = trail();
    let (code, v) = s.post(
        "/dag-runs/snap/r1/reschedule",
        &serde_json::json!({"dagRunId": "r4"}),
    );
    assert_eq!(code, 200, "{v}");
    s.until("snap", "r4", "succeeded");
    let origin = format!("Origin: http://{}\r\n", s.addr);
    let (code, head, _) = s.page("POST", "/dags/snap/rerun", &origin, "run=r1");
    assert_eq!(code, 303, "{head}");
    let (_, runs) = s.get("/dag-runs?name=snap");
    let newest = runs["dagRuns"]
        .as_array()
        .and_then(|r| {
            r.iter()
                .map(|x| x["dagRunId"].as_str().unwrap_or_default().to_owned())
                .find(|id| !["r1", "r2", "r3", "r4"].contains(&id.as_str()))
        })
        .expect("the page's run");
    s.until("snap", &newest, "succeeded");
    assert_eq!(
        &trail()[before.len()..],
        "old-a\nold-b\ntoken 14\nold-a\nold-b\ntoken 14\n"
    );
    drop(s);
    // The kept texts go with the last run that ran them.
    let out = p.wharf().args(["rm", "-H", "-f", "snap"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let count = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM specs').fetchone()[0])",
        ])
        .arg(p.home().join("wharf.db"))
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&count.stdout).trim(),
        "0",
        "no run refers to a kept text any more: {}",
        String::from_utf8_lossy(&count.stderr)
    );
}

// A reader that stops reading (`wharf history | head`, a closed pipe) ends nothing with a
// panic: what is left to print is dropped and the command ends as it would have.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let p = Place::new();
    let dag = p.dag("piped", "steps:\n  - name: a\n    command: echo hi\n");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for args in [
        vec!["status", "piped"],
        vec!["history", "piped"],
        vec!["status", "piped", "--json"],
        vec!["run", "piped.yaml", "--verbose"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let done = std::process::Command::new(wharf_testkit::wharf_bin())
            .args(&args)
            .env("WHARF_HOME", p.home())
            .current_dir(p.dir.path())
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("wharf");
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(done.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

// L12, L16: Dagu's commands that wharf does not have say what to do instead, rather than
// clap's nearest spelling (`upgrade` is not `migrate`); a mistyped command of wharf's own
// still gets the suggestion.
#[test]
fn dagu_only_commands_say_what_wharf_does_instead() {
    let p = Place::new();
    for (command, instead) in [
        ("worker", "Docker Swarm"),
        ("coordinator", "Docker Swarm"),
        ("upgrade", "install the new build"),
        ("schema", "docs/dialect.md"),
        ("sync", "git pull"),
        ("context", "WHARF_HOME"),
    ] {
        let out = p
            .wharf()
            .args([command, "--worker.labels", "gpu=true"])
            .run();
        assert_eq!(out.code, Some(2), "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "`{command}` is a Dagu command wharf does not have"
            )) && out.stderr.contains(instead),
            "{command}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("similar subcommand"), "{}", out.stderr);
    }
    let out = p.wharf().args(["stauts"]).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("'status'"), "{}", out.stderr);
}

// L01: `--default-working-dir` is where the steps of a DAG that names no working
// directory work; a DAG that names one keeps it.
#[test]
fn default_working_dir_applies_to_dags_without_their_own() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("elsewhere")).expect("dir");
    std::fs::create_dir_all(p.path("own")).expect("dir");
    let plain = p.dag("plain", "steps:\n  - name: where\n    command: pwd\n");
    let pinned = p.dag(
        "pinned",
        "workingDir: own\nsteps:\n  - name: where\n    command: pwd\n",
    );
    for dag in [&plain, &pinned] {
        let out = p
            .wharf()
            .args(["start", "--default-working-dir", "elsewhere"])
            .args([dag])
            .run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    assert!(
        p.logs("plain", "where").trim_end().ends_with("/elsewhere"),
        "{}",
        p.logs("plain", "where")
    );
    assert!(
        p.logs("pinned", "where").trim_end().ends_with("/own"),
        "{}",
        p.logs("pinned", "where")
    );
    let out = p
        .wharf()
        .args(["run", "--default-working-dir", "nowhere"])
        .args([&plain])
        .run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("is not a directory"), "{}", out.stderr);
}
