//! Sub-DAGs (`call`), documents after the first as local DAGs, and `parallel`: the
//! inventory's rows S23, S24, G44, V08, V09 and C01-C03, through the real binary.

use std::time::{Duration, Instant};

use serde_json::Value;
use wharf_testkit::{Place, processes_with, step, step_error};

/// The sub-DAG runs a step of `status` started.
fn sub_runs<'a>(status: &'a Value, name: &str) -> &'a [Value] {
    step(status, name)["subRuns"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

// E5, C01, C02, G44, V09: a local sub-DAG with params; its outputs reach the parent; it
// works in the parent's working directory; the runs are linked.
#[test]
fn a_local_sub_dag_gets_params_gives_outputs_and_works_where_its_parent_works() {
    let p = Place::new();
    let work = p.path("work");
    std::fs::create_dir_all(&work).expect("work");
    let dag = p.dag(
        "parent",
        &format!(
            "workingDir: {}\nsteps:\n  - name: child-call\n    call: child\n    params: \"X=42 Y='two words'\"\n    output: R\n  - name: said\n    command: echo \"child said ${{R.outputs.ANSWER}}\"\n---\nname: child\nparams:\n  - X: \"0\"\n  - Y: \"\"\nsteps:\n  - name: answer\n    command: echo \"answer-${{X}} ${{Y}}\"\n    output: ANSWER\n  - name: where\n    command: pwd\n",
            work.display()
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("parent", "said"), "child said answer-42 two words\n");
    assert_eq!(p.logs("child", "where").trim_end(), work.to_string_lossy());

    let status = p.status("parent");
    let children = sub_runs(&status, "child-call");
    assert_eq!(children.len(), 1, "{status}");
    assert_eq!(children[0]["name"], "child");
    assert_eq!(children[0]["status"], "succeeded");
    assert_eq!(
        children[0]["params"],
        serde_json::json!(["X=42", "Y=two words"])
    );
    assert_eq!(children[0]["parent"]["runId"], status["runId"]);
    assert_eq!(children[0]["parent"]["step"], "child-call");
    // The child is a run of its own: its record and logs are reached by its id.
    let child_id = children[0]["runId"].as_str().unwrap_or_default();
    let out = p
        .wharf()
        .args(["status", "child", "--run-id", child_id])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("answer"), "{}", out.stdout);
    // The text status shows the tree.
    let out = p.wharf().args(["status", "parent"]).run();
    assert!(
        out.stdout
            .contains(&format!("↳ child {child_id}: succeeded")),
        "{}",
        out.stdout
    );
    // History lists runs started on their own, not the sub-DAG runs.
    let out = p.wharf().args(["history", "child"]).run();
    assert!(!out.stdout.contains(child_id), "{}", out.stdout);
}

// E4, C03, S24, V08: parallel over an earlier step's JSON list, at most `maxConcurrent`
// at once; the output collects the children's.
#[test]
fn parallel_runs_a_child_per_item_at_most_max_concurrent_at_once() {
    let p = Place::new();
    let dag = p.dag(
        "fan",
        "steps:\n  - name: list\n    command: echo '[\"a\",\"b\",\"c\",\"d\"]'\n    output: ITEMS\n  - name: fan\n    call: worker\n    parallel:\n      items: ${ITEMS}\n      maxConcurrent: 2\n    params: \"ITEM_NAME=${ITEM}\"\n    output: RESULTS\n  - name: summary\n    command: echo \"total=${RESULTS.summary.total} first=${RESULTS.outputs[0].RESULT}\"\n---\nname: worker\nparams:\n  - ITEM_NAME: \"\"\nsteps:\n  - command: |\n      date +%s%N > \"spans/${ITEM_NAME}.start\"\n      sleep 0.3\n      date +%s%N > \"spans/${ITEM_NAME}.end\"\n      echo \"processing ${ITEM_NAME}\"\n    output: RESULT\n",
    );
    std::fs::create_dir_all(p.path("spans")).expect("spans");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("fan", "summary"), "total=4 first=processing a\n");
    let status = p.status("fan");
    assert_eq!(sub_runs(&status, "fan").len(), 4, "{status}");
    // Never more than two children at once.
    let read = |item: &str, end: &str| -> u128 {
        std::fs::read_to_string(p.path(&format!("spans/{item}.{end}")))
            .expect("span")
            .trim()
            .parse()
            .expect("nanos")
    };
    let spans: Vec<(u128, u128)> = ["a", "b", "c", "d"]
        .iter()
        .map(|i| (read(i, "start"), read(i, "end")))
        .collect();
    for (start, _) in &spans {
        let running = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(running <= 2, "{running} children at once: {spans:?}");
    }
}

// S24, V08: items written in the file, objects read with `${ITEM.field}`; a child that
// fails fails the step, and the summary counts it.
#[test]
fn parallel_over_objects_and_a_failing_child() {
    let p = Place::new();
    std::fs::write(
        p.path("deploy.yaml"),
        "params:\n  - REGION: \"\"\n  - SIZE: \"0\"\nsteps:\n  - name: go\n    command: test \"${SIZE}\" -lt 3 && echo \"${REGION}:${SIZE}\"\n    output: DONE\n",
    )
    .expect("child file");
    let dag = p.dag(
        "regions",
        "steps:\n  - name: each\n    call: deploy\n    parallel:\n      - {region: eu, size: 1}\n      - {region: us, size: 2}\n      - {region: ap, size: 5}\n    params:\n      REGION: ${ITEM.region}\n      SIZE: ${ITEM.size}\n    output: ALL\n    continueOn:\n      failure: true\n  - name: after\n    command: echo \"${ALL.summary.succeeded} of ${ALL.summary.total}\"\n",
    );
    let dry = p.wharf().args(["dry"]).args([&dag]).run();
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(
        dry.stdout.contains("calls the DAG: deploy")
            && dry
                .stdout
                .contains("one run per item: 3 items, at most 10 at once"),
        "{}",
        dry.stdout
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("regions");
    assert_eq!(status["status"], "partially_succeeded", "{status}");
    assert_eq!(step(&status, "each")["status"], "failed", "{status}");
    assert!(
        step_error(&status, "each").contains("1 of 3 sub-DAG runs did not succeed"),
        "{status}"
    );
    assert_eq!(p.logs("regions", "after"), "2 of 3\n");
    let children = sub_runs(&status, "each");
    let params: Vec<&Value> = children.iter().map(|c| &c["params"]).collect();
    assert_eq!(
        params,
        [
            &serde_json::json!(["REGION=eu", "SIZE=1"]),
            &serde_json::json!(["REGION=us", "SIZE=2"]),
            &serde_json::json!(["REGION=ap", "SIZE=5"])
        ]
    );
}

// G44: later documents are local DAGs; each needs a name of its own. A call that names no
// DAG, and DAGs that call each other in a cycle, are refused before any step runs.
#[test]
fn local_dags_are_checked_and_cycles_are_refused_before_anything_runs() {
    let p = Place::new();
    p.assert_refused(
        "steps: [echo one]\n---\nsteps: [echo two]\n",
        "a document after the first is a local DAG and needs a `name`",
    );
    p.assert_refused(
        "steps: [echo one]\n---\nname: a\nsteps: [echo two]\n---\nname: a\nsteps: [echo three]\n",
        "the DAG name `a` is used twice in this file",
    );
    p.assert_refused(
        "steps:\n  - command: echo hi\n    parallel: [a, b]\n",
        "`parallel` belongs to a step that runs a sub-DAG",
    );

    let dag = p.dag(
        "loop",
        "steps:\n  - name: first\n    command: touch ran-first\n  - name: go\n    call: a\n---\nname: a\nsteps:\n  - call: b\n---\nname: b\nsteps:\n  - call: a\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("loop");
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(error.contains("cycle: loop → a → b → a"), "{status}");
    assert!(!p.path("ran-first").exists());

    let dag = p.dag("lost", "steps:\n  - call: nowhere\n");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("lost");
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no DAG `nowhere`"),
        "{status}"
    );
}

// Stopping the parent stops its children: their processes are gone, every run aborted.
#[test]
fn stopping_a_parent_stops_its_running_children() {
    let p = Place::new();
    let marker = format!("1001.{}", std::process::id());
    let dag = p.dag(
        "holder",
        &format!(
            "maxCleanUpTimeSec: 1\nsteps:\n  - name: hold\n    call: sleeper\n    parallel: [1, 2]\n---\nname: sleeper\nsteps:\n  - command: sleep {marker}\n"
        ),
    );
    let child = p.spawn(&dag);
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker).len() < 2 {
        assert!(Instant::now() < deadline, "the children did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = p.wharf().args(["stop", "holder"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        processes_with(&marker).is_empty(),
        "{:?}",
        processes_with(&marker)
    );
    let status = p.status("holder");
    assert_eq!(status["status"], "aborted", "{status}");
    let children = sub_runs(&status, "hold");
    assert_eq!(children.len(), 2, "{status}");
    for c in children {
        assert_eq!(c["status"], "aborted", "{c}");
    }
}

// A retry of a parent whose child failed runs that child's failed part again, in the same
// child run, and leaves the children that succeeded as they were.
#[test]
fn retrying_a_parent_retries_only_the_failed_part_of_its_failed_child() {
    let p = Place::new();
    let dag = p.dag(
        "batch",
        "steps:\n  - name: each\n    call: item\n    parallel: [\"1\", \"2\", \"3\"]\n  - name: done\n    command: echo all done\n---\nname: item\nsteps:\n  - name: prepare\n    command: echo \"prepared $1\" >> trail\n  - name: work\n    command: test \"$1\" != 2 || test -f fixed\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let first = p.status("batch");
    let run_id = first["runId"].as_str().unwrap_or_default().to_owned();
    let before: Vec<Value> = sub_runs(&first, "each").to_vec();
    assert_eq!(before.len(), 3, "{first}");
    assert_eq!(
        before
            .iter()
            .map(|c| c["status"].clone())
            .collect::<Vec<_>>(),
        ["succeeded", "failed", "succeeded"]
    );

    std::fs::write(p.path("fixed"), "").expect("fix");
    let out = p
        .wharf()
        .args(["retry", "batch", "--run-id", &run_id])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let after = p.status("batch");
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(p.logs("batch", "done"), "all done\n");
    let children = sub_runs(&after, "each");
    assert_eq!(children.len(), 3, "no new child runs: {after}");
    for (b, a) in before.iter().zip(children) {
        assert_eq!(b["runId"], a["runId"], "{after}");
        assert_eq!(a["status"], "succeeded", "{after}");
    }
    // The succeeded children were not run again; the failed one ran only its failed step.
    assert_eq!(before[0]["finishedAt"], children[0]["finishedAt"]);
    assert_eq!(before[2]["finishedAt"], children[2]["finishedAt"]);
    let trail = std::fs::read_to_string(p.path("trail")).expect("trail");
    let mut lines: Vec<&str> = trail.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["prepared 1", "prepared 2", "prepared 3"], "{trail}");
    let work = step(&children[1], "work");
    assert_eq!(work["attempts"], 2, "{after}");
}

// C04: a child calls a grandchild; the tree has both levels. A DAG that calls itself
// through a variable is stopped by the chain check when the step starts.
#[test]
fn children_call_grandchildren_and_a_call_through_a_variable_cannot_loop() {
    let p = Place::new();
    let dag = p.dag(
        "top",
        "steps:\n  - name: down\n    call: middle\n---\nname: middle\nsteps:\n  - name: deeper\n    call: bottom\n    output: B\n  - name: relay\n    command: echo \"bottom said ${B.outputs.WORD}\"\n    output: RELAYED\n---\nname: bottom\nsteps:\n  - command: echo deep\n    output: WORD\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("top");
    let middle = &sub_runs(&status, "down")[0];
    assert_eq!(middle["name"], "middle", "{status}");
    let bottom = &sub_runs(middle, "deeper")[0];
    assert_eq!(bottom["name"], "bottom", "{status}");
    assert_eq!(bottom["status"], "succeeded", "{status}");
    assert_eq!(p.logs("middle", "relay"), "bottom said deep\n");

    let dag = p.dag(
        "again",
        "params: NEXT=again\nsteps:\n  - name: self\n    call: ${NEXT}\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("again");
    assert!(
        step_error(&status, "self").contains("would be a cycle"),
        "{status}"
    );
    assert!(sub_runs(&status, "self").is_empty(), "{status}");
}

// A sub-DAG step that times out stops its child: the child run ends aborted and its
// processes are gone; the step fails with 124 as any step that times out.
#[test]
fn a_timed_out_sub_dag_step_stops_its_child() {
    let p = Place::new();
    let marker = format!("1002.{}", std::process::id());
    let dag = p.dag(
        "slowcall",
        &format!(
            "maxCleanUpTimeSec: 1\nsteps:\n  - name: wait\n    call: napper\n    timeoutSec: 1\n---\nname: napper\nsteps:\n  - command: sleep {marker}\n"
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        processes_with(&marker).is_empty(),
        "{:?}",
        processes_with(&marker)
    );
    let status = p.status("slowcall");
    assert_eq!(step(&status, "wait")["exitCode"], 124, "{status}");
    let children = sub_runs(&status, "wait");
    assert_eq!(children.len(), 1, "{status}");
    assert_eq!(children[0]["status"], "aborted", "{status}");
}

// C01: a DAG called by name that is not beside its caller is looked for in the DAGs
// folder (`$WHARF_DAGS`, else `dags` in wharf's home).
#[test]
fn a_dag_called_by_name_is_found_in_the_dags_folder() {
    let p = Place::new();
    std::fs::create_dir_all(p.home().join("dags")).expect("dags");
    std::fs::write(
        p.home().join("dags/shared-task.yaml"),
        "steps:\n  - name: hello\n    command: echo from the dags folder\n",
    )
    .expect("child");
    std::fs::create_dir_all(p.path("elsewhere")).expect("elsewhere");
    let dag = p.path("elsewhere/caller.yaml");
    std::fs::write(&dag, "steps:\n  - name: go\n    call: shared-task\n").expect("caller");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("shared-task", "hello"), "from the dags folder\n");

    let other = p.path("other-dags");
    std::fs::create_dir_all(&other).expect("other");
    std::fs::write(
        other.join("shared-task.yaml"),
        "steps:\n  - name: hello\n    command: echo from WHARF_DAGS\n",
    )
    .expect("child");
    let out = p
        .wharf()
        .env("WHARF_DAGS", &other.to_string_lossy())
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("shared-task", "hello"), "from WHARF_DAGS\n");
}
