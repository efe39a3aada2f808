//! Dagu 1.30 behaviours that wharf once accepted and did differently: each as the
//! inventory of Dagu's features (`dagu-features.md`) describes it, through the real binary.

use wharf_testkit::{Place, Unique, images_are_built, step, step_error};

// S20, O04: a step that times out fails with exit code 124.
#[test]
fn a_timed_out_step_exits_124() {
    let p = Place::new();
    let dag = p.dag(
        "slow",
        "steps:\n  - name: nap\n    command: sleep 5\n    timeoutSec: 1\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("slow");
    assert_eq!(step(&status, "nap")["status"], "failed", "{status}");
    assert_eq!(step(&status, "nap")["exitCode"], 124, "{status}");
    assert!(
        step_error(&status, "nap").contains("timed out after 1s"),
        "{status}"
    );
}

// G33, V05, E6: handlers see the run's status in DAG_RUN_STATUS.
#[test]
fn handlers_see_the_run_status() {
    let p = Place::new();
    let dag = p.dag(
        "handlers",
        "handlerOn:\n  init:\n    command: echo \"init $DAG_RUN_STATUS\"\n  success:\n    command: echo \"ok $DAG_RUN_STATUS\"\n  failure:\n    command: echo \"failed $DAG_RUN_STATUS\"\n  exit:\n    command: echo \"exit $DAG_RUN_STATUS\"\nsteps:\n  - command: \"false\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("handlers");
    assert_eq!(status["status"], "failed", "{status}");
    // The handler nodes are named as in Dagu: onInit, onSuccess, onFailure, onExit.
    assert_eq!(p.logs("handlers", "onFailure"), "failed failed\n");
    assert_eq!(p.logs("handlers", "onExit"), "exit failed\n");
    assert_eq!(p.logs("handlers", "onInit"), "init running\n");
    assert_ne!(
        step(&status, "onSuccess")["status"],
        "succeeded",
        "{status}"
    );
}

// G32: a DAG precondition that does not hold cancels the run: aborted, no step runs, the
// abort and exit handlers do.
#[test]
fn an_unmet_dag_precondition_aborts_the_run_and_runs_the_abort_handler() {
    let p = Place::new();
    let dag = p.dag(
        "guarded",
        "params: ENV=dev\npreconditions:\n  - condition: \"${ENV}\"\n    expected: prod\nhandlerOn:\n  abort:\n    command: echo aborted-handler\n  exit:\n    command: echo exit-handler\nsteps:\n  - name: work\n    command: touch ran\n",
    );
    let out = p.run(&dag, &[]);
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("guarded");
    assert_eq!(status["status"], "aborted", "{status}");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("precondition not met")),
        "{status}"
    );
    assert!(!p.path("ran").exists());
    assert_ne!(step(&status, "work")["status"], "succeeded", "{status}");
    let handlers: Vec<&str> = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| !s["handler"].is_null())
        .filter_map(|s| s["handler"].as_str())
        .collect();
    assert!(
        handlers.contains(&"abort") && handlers.contains(&"exit"),
        "{status}"
    );
    // The same DAG with the precondition met runs.
    let out = p.run(&dag, &["--", "ENV=prod"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(p.path("ran").exists());
}

// S16 (Dagu evaluates every precondition): one that does not hold does not keep the
// others from being evaluated, and the reason names it.
#[test]
fn every_precondition_is_evaluated() {
    let p = Place::new();
    let dag = p.dag(
        "conds",
        "steps:\n  - name: s\n    command: echo never\n    preconditions:\n      - condition: \"a\"\n        expected: \"b\"\n      - command: touch second-evaluated\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("conds");
    assert_eq!(step(&status, "s")["status"], "skipped", "{status}");
    assert!(p.path("second-evaluated").exists());
    assert!(
        step_error(&status, "s").contains("`a` did not match `b`"),
        "{status}"
    );
}

// A docker step's `script` never ran: it is refused where it is written.
#[test]
fn a_script_in_a_docker_step_is_refused() {
    let p = Place::new();
    let dag = p.dag(
        "dockscript",
        "steps:\n  - name: s\n    executor:\n      type: docker\n      config:\n        image: alpine\n    script: exit 7\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("dockscript.yaml:7:5: error: `script` does not run in a docker step"),
        "{}",
        out.stderr
    );
}

// G39: a DAG-level `ssh` runs the steps that name no executor there, never on this host
// (builtin::ssh_steps_run_on_a_real_sshd runs them on a real sshd); it cannot be combined
// with a DAG-level container.
#[test]
fn a_dag_level_ssh_runs_steps_there_never_here() {
    let p = Place::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dag = p.dag(
        "remote",
        &format!("ssh:\n  user: deploy\n  host: 127.0.0.1\n  port: {closed}\nsteps:\n  - touch ran-here\n  - name: here\n    executor: command\n    command: \"true\"\n"),
    );
    let out = p.wharf().args(["dry"]).arg_path(&dag).run();
    assert!(
        out.stdout
            .contains(&format!("over ssh on deploy@127.0.0.1:{closed}")),
        "{}",
        out.stdout
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("cannot connect"), "{}", out.stderr);
    assert!(!p.path("ran-here").exists());
    let both = p.dag(
        "both",
        "ssh:\n  host: example.com\ncontainer:\n  image: alpine\nsteps:\n  - \"true\"\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&both).run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("cannot have a DAG-level `container`"),
        "{}",
        out.stderr
    );
}

// G11, G12: stop and restart schedules are checked like start ones (the scheduler acts on
// them: server::stop_and_restart_schedules_stop_and_restart_the_running_run).
#[test]
fn stop_and_restart_schedules_are_checked() {
    let p = Place::new();
    let dag = p.dag(
        "sched",
        "schedule:\n  start: \"0 8 * * *\"\n  stop: \"0 18 * * *\"\n  restart: \"0 12 * * *\"\nsteps:\n  - echo hi\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let bad = p.dag(
        "badsched",
        "schedule:\n  start: \"0 8 * * *\"\n  stop: \"0 25 * * *\"\nsteps:\n  - echo hi\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&bad).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("invalid cron expression `0 25 * * *`") && out.stderr.contains(":3:"),
        "{}",
        out.stderr
    );
}

// K: the strings of a docker step's raw `host`/`container` objects are expanded.
#[test]
fn variables_in_raw_docker_settings_are_expanded() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("rawvars");
    std::fs::create_dir_all(p.path("out")).expect("out");
    let dag = p.dag(
        &u.name,
        &format!(
            "name: {}\nparams: OUT={}\nsteps:\n  - name: write\n    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: true\n        host:\n          binds: [\"${{OUT}}:/out\"]\n        container:\n          env: [\"GREETING=from-${{OUT}}\"]\n    command: sh -c 'echo $GREETING > /out/file'\n",
            u.name,
            p.path("out").display()
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let written = std::fs::read_to_string(p.path("out/file")).expect("the bind worked");
    assert_eq!(written.trim(), format!("from-{}", p.path("out").display()));
}

// A DAG-level container is started even when every step runs on the host: the service
// the host steps talk to.
#[test]
fn a_dag_level_container_starts_for_host_steps_too() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("service");
    let dag = p.dag(
        &u.name,
        &format!(
            "name: {0}\ncontainer:\n  image: wharf-test/base:latest\nsteps:\n  - name: probe\n    executor: command\n    command: docker ps -q --filter label=wharf.dag={0}\n",
            u.name
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        !p.logs(&u.name, "probe").trim().is_empty(),
        "the container ran while the host step did"
    );
    assert!(u.containers().is_empty(), "and is removed after the run");
}

// S01, S13, S14, E2: a step's id names it in `depends` and in references to its exit code
// and its logs.
#[test]
fn step_ids_are_references() {
    let p = Place::new();
    let dag = p.dag(
        "refs",
        "type: graph\nsteps:\n  - id: risky\n    command: sh -c \"echo risky-out; exit 3\"\n    continueOn: failed\n  - name: report\n    depends: risky\n    command: echo \"code=${risky.exitCode} log=${risky.stdout}\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("refs");
    assert_eq!(status["status"], "partially_succeeded", "{status}");
    let report = p.logs("refs", "report");
    let log = report
        .trim()
        .strip_prefix("code=3 log=")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        std::fs::read_to_string(log).expect("the log"),
        "risky-out\n"
    );
}

#[test]
fn step_ids_are_checked() {
    let p = Place::new();
    let dag = p.dag(
        "ids",
        "steps:\n  - id: a\n    name: one\n    command: echo 1\n  - id: a\n    name: two\n    command: echo 2\n  - id: stdout\n    command: echo 3\n  - id: 9lives\n    command: echo 4\n  - id: one\n    name: three\n    command: echo 5\n  - name: \"  padded  \"\n    command: echo 6\n  - name: a-name-that-is-far-too-long-for-dagu-to-keep-whole\n    command: echo 7\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    for expected in [
        "duplicate step id `a`",
        "`stdout` is a reserved word, not a step id",
        "invalid step id `9lives`",
        "the step id `one` is the name of another step",
        "a step name is at most 40 characters",
    ] {
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
    }
    // Names are trimmed.
    let ok = p.dag("trimmed", "steps:\n  - name: \"  padded  \"\n    command: echo 6\n  - name: after\n    depends: padded\n    command: echo 7\n");
    let out = p.run(&ok, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("trimmed", "padded"), "6\n");
}

// Steps get wharf's environment only through Dagu's allowlist, or when the DAG names a
// variable; DAGU_PARAMS_JSON holds the named params (V06).
#[test]
fn the_host_environment_reaches_steps_through_the_allowlist() {
    let p = Place::new();
    let dag = p.dag(
        "hostenv",
        "params:\n  - A: 1\n  - B: two words\nenv:\n  - IMPORTED: ${NAMED_BY_DAG}\nsteps:\n  - name: show\n    command: printf '%s|%s|%s|%s|%s' \"${SECRET_OF_HOST:-unset}\" \"$IMPORTED\" \"$LC_WHARF_TEST\" \"${PATH:+path}\" \"$DAGU_PARAMS_JSON\"\n",
    );
    let out = p
        .wharf()
        .env("SECRET_OF_HOST", "leaked")
        .env("NAMED_BY_DAG", "named")
        .env("LC_WHARF_TEST", "lc")
        .args(["run"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("hostenv", "show"),
        r#"unset|named|lc|path|{"A":"1","B":"two words"}"#
    );
}

// G33: `wait` is a handler (it runs when a `hitl` step makes the run wait; a run without
// one never waits, so it does not run). The abort handler's node is `onCancel`.
#[test]
fn the_wait_handler_is_read_and_the_abort_handler_is_on_cancel() {
    let p = Place::new();
    let dag = p.dag(
        "waits",
        "handlerOn:\n  wait:\n    command: echo waiting\n  abort:\n    command: echo cancelled\nsteps:\n  - echo hi\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("waits");
    assert_eq!(step(&status, "onCancel")["handler"], "abort", "{status}");
    assert_eq!(step(&status, "onWait")["status"], "not_started", "{status}");
}

// S12: a path into a step's JSON output, in a command, an env value and a precondition.
#[test]
fn json_paths_read_fields_of_an_output() {
    let p = Place::new();
    let dag = p.dag(
        "jsonpath",
        "steps:\n  - name: fetch\n    command: echo '{\"a\":{\"b\":5},\"items\":[{\"name\":\"first\"}]}'\n    output: J\n  - name: use\n    env:\n      - NAME: ${J.items[0].name}\n    preconditions:\n      - condition: ${J.a.b}\n        expected: \"5\"\n    command: echo \"b=${J.a.b} name=$NAME\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("jsonpath", "use"), "b=5 name=first\n");
}

// A step's missing working directory is made.
#[test]
fn a_missing_step_working_directory_is_created() {
    let p = Place::new();
    let dag = p.dag(
        "mkdir",
        "steps:\n  - name: here\n    workingDir: made/by/the/step\n    command: pwd\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(p.path("made/by/the/step").is_dir());
    assert!(
        p.logs("mkdir", "here")
            .trim_end()
            .ends_with("made/by/the/step")
    );
}

// Keys wharf cannot honour are refused, never accepted and ignored: `llm`, and a
// `workerSelector` (Swarm nodes by label) over a step that runs on this machine.
#[test]
fn llm_and_worker_selectors_of_host_steps_are_refused() {
    let p = Place::new();
    let dag = p.dag(
        "unhonoured",
        "llm:\n  provider: openai\nrunConfig:\n  disableParamEdit: true\nworkerSelector:\n  gpu: \"true\"\nsteps:\n  - name: s\n    command: echo hi\n    workerSelector:\n      gpu: \"true\"\n  - name: here\n    command: echo hi\n    workerSelector: local\n  - name: boxed\n    container: {image: alpine}\n    command: echo hi\n",
    );
    let out = p.wharf().args(["validate"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("unhonoured.yaml:1:")
            && out.stderr.contains("`llm` is not supported by wharf"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unhonoured.yaml:10:")
            && out.stderr.contains(
                "`workerSelector` sends the step `s` to a Swarm node with its labels, and only a step in a container of its own can go there"
            ),
        "{}",
        out.stderr
    );
    // `local` runs it here; a step in a container goes to such a node.
    assert!(!out.stderr.contains("`here`"), "{}", out.stderr);
    assert!(!out.stderr.contains("`boxed`"), "{}", out.stderr);
    assert!(out.stderr.contains("(2 errors)"), "{}", out.stderr);

    let dag = p.dag(
        "selected",
        "workerSelector:\n  gpu: \"true\"\n  zone: eu-1\nsteps:\n  - name: boxed\n    container: {image: alpine, placement: {constraints: [\"node.role == worker\"]}}\n    command: echo hi\n  - name: here\n    workerSelector: local\n    container: {image: alpine}\n    command: echo hi\n",
    );
    let out = p.wharf().args(["dry"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("swarm: a job of the swarm, on a node where node.role == worker and node.labels.gpu == true and node.labels.zone == eu-1"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches("swarm:").count(), 1, "{}", out.stdout);

    for (yaml, said) in [
        (
            "workerSelector: {gpu: \"true\"}\ncontainer: {image: alpine}\nsteps:\n  - echo hi\n",
            "the DAG-level `container` is one container on wharf's own engine",
        ),
        (
            "workerSelector: {gpu: \"true\"}\nbackend: local\nsteps:\n  - name: a\n    container: {image: alpine}\n    command: echo hi\n",
            "`workerSelector` and `backend: local` disagree",
        ),
        (
            "workerSelector: [gpu]\nsteps:\n  - echo hi\n",
            "`workerSelector` must be a mapping of node labels or `local`",
        ),
        (
            "steps:\n  - name: a\n    container: {exec: box}\n    workerSelector: {gpu: \"a b\"}\n    command: echo hi\n",
            "is not a node label",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// S03: a list of commands runs them one after the other and stops at the first failure.
#[test]
fn a_list_of_commands_runs_in_order_until_one_fails() {
    let p = Place::new();
    let dag = p.dag(
        "several",
        "steps:\n  - name: three\n    command: [\"echo 1\", \"false\", \"echo 3\"]\n  - name: fine\n    depends: []\n    command:\n      - echo a\n      - echo b | tr b c\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("several");
    assert_eq!(step(&status, "three")["status"], "failed", "{status}");
    assert_eq!(step(&status, "three")["exitCode"], 1, "{status}");
    assert_eq!(p.logs("several", "three"), "1\n");
    assert_eq!(p.logs("several", "fine"), "a\nc\n");
}

// S04, S05, S06, G24: with the default or the DAG's shell, a multi-line command or a script
// stops at the first command that fails (the shell runs with `-e`); a step's own `shell`
// is taken as written, and a script with its own `#!` runs as it says.
#[test]
fn the_default_shell_stops_at_the_first_failing_command() {
    let p = Place::new();
    let steps = "  - name: lines\n    command: |\n      echo before\n      false\n      echo after\n  - name: script\n    script: |\n      echo before\n      false\n      echo after\n  - name: own-shell\n    shell: bash\n    command: |\n      false\n      echo after\n  - name: shebang\n    script: |\n      #!/bin/sh\n      false\n      echo after\n";
    let defaults = p.dag("errexit", &format!("type: graph\nsteps:\n{steps}"));
    let out = p.run(&defaults, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("errexit");
    for (name, result, log) in [
        ("lines", "failed", "before\n"),
        ("script", "failed", "before\n"),
        ("own-shell", "succeeded", "after\n"),
        ("shebang", "succeeded", "after\n"),
    ] {
        assert_eq!(step(&status, name)["status"], result, "{name}: {status}");
        assert_eq!(p.logs("errexit", name), log, "{name}");
    }
    // The DAG's `shell` is the default of its steps: it stops at the first failure too,
    // unless its words say otherwise.
    let dag_shell = p.dag(
        "dag-shell",
        "shell: bash -o pipefail\ntype: graph\nsteps:\n  - name: strict\n    command: |\n      false\n      echo after\n  - name: lenient\n    command: |\n      set +e\n      false\n      echo after\n",
    );
    let out = p.run(&dag_shell, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("dag-shell");
    assert_eq!(step(&status, "strict")["status"], "failed", "{status}");
    assert_eq!(p.logs("dag-shell", "strict"), "");
    assert_eq!(step(&status, "lenient")["status"], "succeeded", "{status}");
    assert_eq!(p.logs("dag-shell", "lenient"), "after\n");
}
// S03 in the DAG-level container: each command an exec into the same container.
#[test]
fn a_list_of_commands_in_the_dag_level_container() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("several-in");
    let dag = p.dag(
        &u.name,
        &format!(
            "name: {}\ncontainer:\n  image: wharf-test/base:latest\nsteps:\n  - name: three\n    command: [\"sh -c 'echo 1 > /tmp/mark'\", \"cat /tmp/mark\", \"false\", \"echo never\"]\n",
            u.name
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "three"), "1\n");
    let status = p.status(&u.name);
    assert_eq!(step(&status, "three")["exitCode"], 1, "{status}");
    // In a step's own container too (the executor block form), in order.
    let own = p.dag(
        "own",
        "steps:\n  - name: s\n    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: true\n    command: [\"echo 1\", \"echo 2\"]\n",
    );
    let out = p.run(&own, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("own", "s"), "1\n2\n");
}

// G07: steps without a name are named as Dagu names them: by kind and position.
#[test]
fn unnamed_steps_are_named_by_kind_and_position() {
    let p = Place::new();
    let dag = p.dag(
        "names",
        "steps:\n  - echo a\n  - script: echo b\n  - name: cmd_4\n    command: echo taken\n  - command: echo d\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("names", "cmd_1"), "a\n");
    assert_eq!(p.logs("names", "script_2"), "b\n");
    assert_eq!(p.logs("names", "cmd_4"), "taken\n");
    // The fourth step's own number is taken by a written name: the next one is used.
    assert_eq!(p.logs("names", "cmd_5"), "d\n");
    let docker = p.dag(
        "docker-names",
        "steps:\n  - executor:\n      type: docker\n      config:\n        image: alpine:3\n    command: echo hi\n",
    );
    let out = p.wharf().args(["dry"]).args([&docker]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("docker_1"), "{}", out.stdout);
}

// G26, S28: `logOutput: merged` writes a step's stdout and stderr to one log, in order;
// a step may choose otherwise.
#[test]
fn merged_log_output_keeps_both_streams_in_one_log() {
    let p = Place::new();
    let dag = p.dag(
        "merged",
        "logOutput: merged\nsteps:\n  - name: both\n    command: echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2\n  - name: apart\n    logOutput: separate\n    command: echo out; echo err >&2\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("merged", "both"), "out1\nerr1\nout2\n");
    let err = p
        .wharf()
        .args(["logs", "merged", "--step", "both", "--stderr"])
        .run();
    assert_eq!(err.stdout, "out1\nerr1\nout2\n", "{}", err.stderr);
    assert_eq!(p.logs("merged", "apart"), "out\n");

    let step_level = p.dag(
        "one",
        "steps:\n  - name: s\n    logOutput: merged\n    command: echo o; sleep 0.2; echo e >&2\n",
    );
    let out = p.run(&step_level, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("one", "s"), "o\ne\n");

    let bad = p.dag("bad", "logOutput: both\nsteps:\n  - echo hi\n");
    let out = p.wharf().args(["validate"]).args([&bad]).run();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("`logOutput` must be one of: separate, merged; found `both`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("bad.yaml:1:"), "{}", out.stderr);
}

// G16: positional and named params given together: `$1` is the positional value given,
// the name takes its value.
#[test]
fn mixed_params_given_for_a_run() {
    let p = Place::new();
    let dag = p.dag(
        "mixed",
        "params:\n  - ENV: dev\nsteps:\n  - name: show\n    command: echo \"$1 ${ENV}\"\n",
    );
    let out = p.run(&dag, &["--", "app", "ENV=prod"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("mixed", "show"), "app prod\n");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("mixed", "show"), "dev dev\n");
}

// V04: the DAG's env wins over a param of the same name (in `${X}` and in the process);
// a step's env wins over both. A param given for the run that env hides is said so.
#[test]
fn env_wins_over_a_param_of_the_same_name() {
    let p = Place::new();
    let dag = p.dag(
        "precedence",
        "params:\n  - X: p\nenv:\n  - X: e\nsteps:\n  - name: dag\n    command: echo \"${X} $X\"\n  - name: step\n    env:\n      - X: s\n    command: echo \"${X} $X\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("precedence", "dag"), "e e\n");
    assert_eq!(p.logs("precedence", "step"), "s s\n");
    let out = p.run(&dag, &["--", "X=cli"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("precedence", "dag"), "e e\n");
    assert!(
        out.stderr
            .contains("the param `X` given for this run is not used"),
        "{}",
        out.stderr
    );
}

// G22: `secrets` from the `env` and `file` providers reach steps as variables, and their
// values never appear in a log, a `stdout:` file, a recorded output, `dry` or `status`.
#[test]
fn secrets_reach_steps_and_are_hidden_everywhere() {
    let p = Place::new();
    std::fs::write(p.path("token.txt"), "file-secret-value\n").expect("token");
    let dag = p.dag(
        "secrets",
        "secrets:\n  - name: API_TOKEN\n    provider: env\n    key: WHARF_TEST_TOKEN\n  - name: DB_PASS\n    provider: file\n    key: ./token.txt\nsteps:\n  - name: use\n    command: sh -c 'echo \"token=$API_TOKEN pass=${DB_PASS}\"; echo \"$API_TOKEN\" >&2; [ ${#DB_PASS} = 17 ] && echo file-ok'\n    stdout: out.txt\n  - name: split\n    command: sh -c 'printf s3cr; sleep 0.3; printf \"et-env-value done\\n\"'\n  - name: out\n    command: echo \"${API_TOKEN}\"\n    output: LEAK\n",
    );
    let out = p
        .wharf()
        .env("WHARF_TEST_TOKEN", "s3cret-env-value")
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let secret_free = |what: &str, text: &str| {
        assert!(
            !text.contains("s3cret-env-value") && !text.contains("file-secret-value"),
            "{what} shows a secret: {text}"
        );
    };
    assert_eq!(
        p.logs("secrets", "use"),
        "token=******* pass=*******\nfile-ok\n"
    );
    let err = p
        .wharf()
        .args(["logs", "secrets", "--step", "use", "--stderr"])
        .run();
    assert_eq!(err.stdout, "*******\n");
    // A value cut between two writes of the step is hidden too.
    assert_eq!(p.logs("secrets", "split"), "******* done\n");
    let redirected = std::fs::read_to_string(p.path("out.txt")).expect("out.txt");
    assert_eq!(redirected, "token=******* pass=*******\nfile-ok\n");
    let status = p.status("secrets");
    assert_eq!(status["outputs"]["LEAK"], "*******", "{status}");
    secret_free("the terminal", &format!("{}{}", out.stdout, out.stderr));
    secret_free("status", &status.to_string());
    let dry = p
        .wharf()
        .env("WHARF_TEST_TOKEN", "s3cret-env-value")
        .args(["dry"])
        .args([&dag])
        .run();
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(dry.stdout.contains("API_TOKEN=<secret>"), "{}", dry.stdout);
    secret_free("dry", &dry.stdout);

    // A secret that cannot be read fails the run before any step, naming it.
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("secrets");
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("secret `API_TOKEN`: the environment variable `WHARF_TEST_TOKEN` is not set"),
        "{status}"
    );
    assert_ne!(step(&status, "use")["status"], "succeeded", "{status}");
}

// G22: what a secret must have is checked when the file is loaded.
#[test]
fn secrets_are_checked_when_the_file_is_loaded() {
    let p = Place::new();
    for (yaml, said) in [
        (
            "secrets:\n  - name: T\n    provider: vault\n    key: x\nsteps:\n  - echo\n",
            "a secret's `provider` must be one of: env, file; found `vault`",
        ),
        (
            "secrets:\n  - name: T\n    provider: env\nsteps:\n  - echo\n",
            "a secret needs `key`",
        ),
        (
            "secrets:\n  - {name: T, provider: env, key: A}\n  - {name: T, provider: env, key: B}\nsteps:\n  - echo\n",
            "the secret `T` is declared twice",
        ),
        (
            "secrets:\n  - {name: 1T, provider: env, key: A}\nsteps:\n  - echo\n",
            "must be a variable name",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// S13: after a retry, the steps that run again see the references of the kept steps.
#[test]
fn a_retry_keeps_the_references_of_kept_steps() {
    let p = Place::new();
    let dag = p.dag(
        "refs",
        "steps:\n  - id: first\n    command: sh -c 'echo kept-out; exit 0'\n  - name: gate\n    command: test -f ok\n  - name: last\n    command: sh -c 'echo \"code=${first.exitCode}\"; cat \"${first.stdout}\"'\n",
    );
    assert_eq!(p.run(&dag, &["--run-id", "r"]).code, Some(1));
    std::fs::write(p.path("ok"), "").expect("ok");
    let out = p.wharf().args(["retry", "refs", "--run-id", "r"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("refs", "last"), "code=0\nkept-out\n");
}

// S16: `expected` is matched line by line: one line of the condition's value that equals
// it (or matches its `re:`) is enough.
#[test]
fn preconditions_match_expected_line_by_line() {
    let p = Place::new();
    let dag = p.dag(
        "lines",
        "type: graph\nsteps:\n  - name: literal\n    command: echo ran\n    preconditions:\n      - condition: \"`printf 'starting\\\\nready\\\\n'`\"\n        expected: ready\n  - name: regex\n    command: echo ran\n    preconditions:\n      - condition: \"`printf 'x\\\\n3\\\\ny'`\"\n        expected: \"re:^[1-5]$\"\n  - name: none\n    command: echo ran\n    preconditions:\n      - condition: \"`printf 'readiness\\\\nother'`\"\n        expected: ready\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("lines");
    assert_eq!(step(&status, "literal")["status"], "succeeded", "{status}");
    assert_eq!(step(&status, "regex")["status"], "succeeded", "{status}");
    assert_eq!(step(&status, "none")["status"], "skipped", "{status}");
}

// G18: `params: {schema, values}`: values given for a run are read as their declared
// types, the schema's defaults fill in, the whole is validated before anything runs, and
// the params are the schema's properties in its order.
#[test]
fn params_are_checked_against_their_json_schema_before_the_run() {
    let p = Place::new();
    std::fs::write(
        p.path("p.schema.json"),
        r#"{"type": "object",
            "properties": {
              "region": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
              "n": {"type": "integer", "minimum": 1},
              "debug": {"type": "boolean", "default": false}},
            "required": ["n"]}"#,
    )
    .expect("schema");
    let dag = p.dag(
        "typed",
        "params:\n  schema: ./p.schema.json\n  values:\n    n: 1\nsteps:\n  - name: show\n    command: echo \"$1 $2 $3 region=${region} n=${n} debug=${debug}\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("typed", "show"),
        "eu 1 false region=eu n=1 debug=false\n"
    );

    let out = p.run(&dag, &["--", "n=3", "region=us", "debug=true"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("typed", "show"),
        "us 3 true region=us n=3 debug=true\n"
    );

    // Refused before a run is made: each says which param and why.
    for (given, said) in [
        ("n=0", "`n`: must be >=1"),
        ("n=abc", "`n`: `abc` is not an integer"),
        ("region=asia", "`region`"),
        ("debug=maybe", "`debug`: `maybe` is not a boolean"),
        ("5", "takes named params only"),
    ] {
        let out = p.run(&dag, &["--", given]);
        assert_eq!(out.code, Some(2), "{given}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{given}: {}", out.stderr);
        assert!(out.stderr.contains("nothing ran"), "{}", out.stderr);
    }
    let runs = p.wharf().args(["history", "typed", "--json"]).run();
    assert_eq!(runs.code, Some(0), "{}", runs.stderr);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).expect("history json");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");

    // The file's own values are checked when it is validated, and a missing schema too.
    p.assert_refused(
        "params:\n  schema: {type: object, properties: {n: {type: integer, minimum: 1}}}\n  values:\n    n: 0\nsteps: [echo]\n",
        "`values` do not match the params schema: `n`: must be >=1",
    );
    p.assert_refused(
        "params:\n  schema: ./missing.json\nsteps: [echo]\n",
        "the schema file `./missing.json` is not found",
    );
    p.assert_refused(
        "params:\n  schema: {type: object}\n  other: 1\nsteps: [echo]\n",
        "other",
    );
}

// S07: `shellPackages` with `shell: nix-shell`: the step's line runs through
// `nix-shell -p PKG... --run LINE`. nix-shell needs the Nix package set from the network,
// which a test machine does not reach: a `nix-shell` on PATH stands in for it, recording
// the arguments it was given and running the `--run` line as nix-shell would.
#[test]
fn shell_packages_reach_nix_shell_as_its_packages() {
    let p = Place::new();
    let bin = p.path("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let fake = bin.join("nix-shell");
    std::fs::write(
        &fake,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$NIX_ARGS_FILE\"\nwhile [ \"$1\" != --run ]; do shift; done\nexec bash -c \"$2\"\n",
    )
    .expect("fake");
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&fake)
        .status()
        .expect("chmod");
    let args_file = p.path("nix-args");
    let dag = p.dag(
        "nix",
        "params: first\nenv:\n  - NIX_ARGS_FILE: ${NIX_ARGS_FILE}\nsteps:\n  - name: tool\n    shell: nix-shell --pure\n    shellPackages: [jq, curl]\n    command: echo \"got $1\"\n",
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = p
        .wharf()
        .env("PATH", &path)
        .env("NIX_ARGS_FILE", &args_file.to_string_lossy())
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("nix", "tool"), "got first\n");
    let args = std::fs::read_to_string(&args_file).expect("nix-shell was run");
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        [
            "--pure",
            "-p",
            "jq",
            "-p",
            "curl",
            "--run",
            "set -- first; echo \"got $1\""
        ],
        "{args:?}"
    );

    p.assert_refused(
        "steps:\n  - shellPackages: [jq]\n    command: jq --version\n",
        "`shellPackages` needs `shell: nix-shell`",
    );
    p.assert_refused(
        "steps:\n  - executor: {type: docker, config: {image: alpine}}\n    shell: nix-shell\n    shellPackages: [jq]\n    command: jq --version\n",
        "does not apply to a step in a container",
    );
}

// The inventory's appendix examples E1-E3, as written: each runs unchanged, with the
// result the inventory gives (E6 is `handlers_see_the_run_status`).
#[test]
fn the_appendix_examples_run_unchanged() {
    let p = Place::new();
    let e1 = p.dag(
        "e1",
        "steps:\n  - name: script-step\n    command: |\n      #!/bin/sh\n      echo line1\n      echo line2\n",
    );
    assert_eq!(p.run(&e1, &[]).code, Some(0));
    assert_eq!(p.logs("e1", "script-step"), "line1\nline2\n");

    let e2 = p.dag(
        "e2",
        "type: graph\nsteps:\n  - id: risky\n    command: sh -c \"exit 3\"\n    continueOn: failed\n  - name: report\n    depends: risky\n    command: echo \"code=${risky.exitCode} log=${risky.stdout}\"\n",
    );
    p.run(&e2, &[]);
    assert_eq!(p.status("e2")["status"], "partially_succeeded");
    let report = p.logs("e2", "report");
    let log = report
        .trim_end()
        .strip_prefix("code=3 log=")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(std::path::Path::new(log).is_file(), "{report}");

    let e3 = p.dag(
        "e3",
        "steps:\n  - name: only-prod\n    command: echo deploying\n    preconditions:\n      - condition: \"${ENV}\"\n        expected: prod\n    continueOn: skipped\n  - name: always\n    command: echo after\n",
    );
    assert_eq!(p.run(&e3, &[]).code, Some(0));
    let status = p.status("e3");
    assert_eq!(step(&status, "only-prod")["status"], "skipped", "{status}");
    assert_eq!(p.logs("e3", "always"), "after\n");
}
