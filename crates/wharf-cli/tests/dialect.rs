//! Dagu 2.x files: the dialect decided per file, the 2.x forms run through the same
//! engine, and validation that speaks 2.x.

use wharf_testkit::{Place, images_are_built, step, step_error};

// A current Dagu file: snake_case keys, `run` (a line, a script), `action: exec`,
// `action: docker.run`, a step's own `container`, `consts`, declared params, namespaced
// references, outputs through DAGU_OUTPUT_FILE, and `graph` by default.
#[test]
fn a_dagu_2_file_runs_unchanged() {
    images_are_built();
    let p = Place::new();
    let dag = p.dag(
        "current",
        r#"working_dir: /tmp
consts:
  - name_part: hello
  - greeting: ${consts.name_part}
env:
  SERVICE: api
params:
  - name: WHO
    type: string
    default: world
    enum: [world, you]
steps:
  - id: first
    run: echo "${consts.greeting} ${params.WHO} from $(pwd) as $DAG_NAME"
  - id: build
    depends: first
    run: |
      printf 'tag=v1.2.3\n' >> "$DAGU_OUTPUT_FILE"
      printf 'notes<<END\nline one\nline two\nEND\n' >> "$DAGU_OUTPUT_FILE"
      echo "run ${context.run.id} of ${dag.name}"
    outputs:
      - name: tag
      - name: notes
  - id: direct
    depends: build
    action: exec
    with:
      command: echo
      args: [argv, "${steps.build.outputs.tag}", "$HOME", "${SERVICE}-$SERVICE", "$UNSET"]
  - id: boxed
    depends: build
    action: docker.run
    with:
      image: wharf-test/base:latest
      auto_remove: true
      command: echo "in a box ${steps.build.outputs.tag}"
  - id: own
    depends: build
    container:
      image: wharf-test/base:latest
      working_dir: /etc
      pull_policy: missing
    run: pwd
  - id: notes
    depends: build
    retry_policy: {limit: 1, interval_sec: 1}
    run: |
      printf '%s\n' "${steps.build.outputs.notes}"
  - id: alone
    run: echo "no depends, runs at once"
"#,
    );
    let dry = p.wharf().args(["dry"]).args([&dag]).run();
    assert!(dry.stdout.contains("dialect: Dagu 2.x"), "{}", dry.stdout);
    assert!(dry.stdout.contains("type: graph"), "{}", dry.stdout);
    let out = p.run(&dag, &["-p", "WHO=you"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("current", "first"),
        "hello you from /tmp as current\n"
    );
    let run_id = p.status("current")["runId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        p.logs("current", "build"),
        format!("run {run_id} of current\n")
    );
    assert_eq!(
        p.logs("current", "direct"),
        "argv v1.2.3 $HOME api-api $UNSET\n",
        "exec is argv: the DAG's env is put in, no shell expands the rest"
    );
    assert_eq!(p.logs("current", "boxed"), "in a box v1.2.3\n");
    assert_eq!(p.logs("current", "own"), "/etc\n");
    assert_eq!(p.logs("current", "notes"), "line one\nline two\n");
    let status = p.status("current");
    assert_eq!(step(&status, "alone")["status"], "succeeded");
    // Declared params are checked: an enum, a type, a required one.
    let out = p.run(&dag, &["-p", "WHO=nobody"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("`WHO`: value must be one of"),
        "{}",
        out.stderr
    );
    let typed = p.dag(
        "typed",
        "params:\n  - name: COUNT\n    type: integer\n    default: 3\n  - name: TOKEN\n    required: true\nsteps:\n  - id: show\n    run: echo ${params.COUNT}\n",
    );
    let out = p.run(&typed, &["-p", "COUNT=many TOKEN=t"]);
    assert!(
        out.stderr.contains("`COUNT`: `many` is not an integer"),
        "{}",
        out.stderr
    );
    let out = p.run(&typed, &[]);
    assert!(out.stderr.contains("TOKEN"), "required: {}", out.stderr);
    let out = p.run(&typed, &["-p", "TOKEN=t"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("typed", "show"), "3\n");
    // References that cannot resolve are notices of `validate`; `\${...}` is the text.
    let notes = p.dag(
        "notes",
        "params:\n  - name: A\n    default: x\nsteps:\n  - id: build\n    run: echo tag=1 >> \"$DAGU_OUTPUT_FILE\"\n    outputs: [tag]\n  - id: use\n    run: echo ${params.B} ${steps.build.outputs.tag} ${steps.nope.outputs.x}\n  - id: literal\n    run: echo '\\${params.A}' ${params.A}\n",
    );
    let out = p.wharf().args(["validate"]).args([&notes]).run();
    assert_eq!(out.code, Some(0), "notices are not errors: {}", out.stderr);
    for said in [
        "`${params.B}`: no param `B` is declared; it is left as written",
        "`${steps.nope.outputs.x}`: no step has the id `nope`",
    ] {
        assert!(out.stderr.contains(said), "{said}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("params.A"), "{}", out.stderr);
    let handler = p.dag(
        "handler",
        "handler_on:\n  success:\n    run: echo ${steps.a.outputs.x}\nsteps:\n  - id: a\n    run: echo hi there\n",
    );
    let told = p.wharf().args(["validate"]).args([&handler]).run();
    assert_eq!(told.code, Some(0), "{}", told.stderr);
    assert!(
        told.stderr.contains("a handler reads no step's outputs"),
        "{}",
        told.stderr
    );
    // A step that reads another's output comes after it, as if it said so in `depends`.
    assert!(
        out.stdout.contains("inferred: build -> use (steps[1].run)"),
        "{}",
        out.stdout
    );
    let _ = p.run(&notes, &[]);
    assert_eq!(p.logs("notes", "literal"), "${params.A} x\n");
    let inferred = p.dag(
        "inferred",
        "steps:\n  - id: deploy\n    run: echo deploying ${steps.build.outputs.image}\n  - id: build\n    run: sleep 0.2; echo image=v1.2.3 >> \"$DAGU_OUTPUT_FILE\"\n    outputs: [image]\n",
    );
    let out = p.run(&inferred, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("inferred", "deploy"), "deploying v1.2.3\n");
    // Two steps that read each other's outputs: a cycle, named.
    p.assert_refused(
        "steps:\n  - id: a\n    run: echo ${steps.b.outputs.y}\n    outputs: [x]\n  - id: b\n    run: echo ${steps.a.outputs.x}\n    outputs: [y]\n",
        "cycle",
    );
    // In a chain, an output of a later step cannot be there.
    p.assert_refused(
        "type: chain\nsteps:\n  - id: a\n    run: echo ${steps.b.outputs.y}\n  - id: b\n    run: echo hi\n    outputs: [y]\n",
        "`a` reads an output of `b`, which comes after it in the chain",
    );
    // A declared output the step does not write fails it, saying which.
    let bad = p.dag(
        "bad-outputs",
        "steps:\n  - id: build\n    run: echo tag=v9\n    outputs: [tag]\n",
    );
    let out = p.run(&bad, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("the output `tag` was not emitted"),
        "{}",
        out.stderr
    );
}

// The rule: snake_case keys, `run` holding a command, `action`/`with`, `consts`, declared
// params mean 2.x; camelCase keys and `executor` mean 1.x; both is an error naming one of
// each; a one-word `run` in a file with neither is read as 1.x, with a warning; `--dialect`
// decides.
#[test]
fn the_dialect_is_decided_per_file_and_never_silently() {
    let p = Place::new();
    let mixed = p.dag(
        "mixed",
        "workingDir: /tmp\nsteps:\n  - name: a\n    command: echo a\n    retry_policy: {limit: 1}\n",
    );
    let out = p.wharf().args(["validate"]).args([&mixed]).run();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains(
            "mixes Dagu 1.x and Dagu 2.x: `workingDir` (line 1) is 1.x, `retry_policy` is 2.x"
        ) && out.stderr.contains("mixed.yaml:5:"),
        "{}",
        out.stderr
    );
    let one_word = p.dag("word", "steps:\n  - name: a\n    run: child\n");
    let out = p.wharf().args(["validate"]).args([&one_word]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`run: child` is read as Dagu 1.x: a call of the DAG `child`"),
        "{}",
        out.stderr
    );
    // Chosen as 2.x, the same file runs `child` as a command.
    let out = p
        .wharf()
        .args(["--dialect", "2", "dry"])
        .args([&one_word])
        .run();
    assert!(out.stdout.contains("dialect: Dagu 2.x"), "{}", out.stdout);
    // A 1.x file stays 1.x: chain by default, `executor`, camelCase.
    let old = p.dag(
        "old",
        "workingDir: /tmp\nsteps:\n  - name: a\n    command: echo a\n  - name: b\n    executor: {type: command}\n    command: echo b\n",
    );
    let out = p.wharf().args(["dry"]).args([&old]).run();
    assert!(
        out.stdout.contains("dialect: Dagu 1.x") && out.stdout.contains("type: chain"),
        "{}",
        out.stdout
    );
    // Chosen as 2.x, its camelCase keys are refused with their 2.x spelling.
    let out = p
        .wharf()
        .args(["--dialect", "2", "validate"])
        .args([&old])
        .run();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("`workingDir` is the Dagu 1.x spelling")
            && out.stderr.contains("write `working_dir`"),
        "{}",
        out.stderr
    );
    // The installation's setting does the same for every command.
    std::fs::create_dir_all(p.home()).expect("home");
    std::fs::write(p.home().join("config.yaml"), "dialect: 2\n").expect("config");
    let out = p.wharf().args(["dry"]).args([&one_word]).run();
    assert!(out.stdout.contains("dialect: Dagu 2.x"), "{}", out.stdout);
}

// Problems in a 2.x file are told in 2.x words.
#[test]
fn a_2x_file_is_told_about_in_2x_words() {
    let p = Place::new();
    for (yaml, said) in [
        (
            "steps:\n  - id: empty\n    retry_policy: {limit: 1}\n",
            "the step has no `run` and no `action`",
        ),
        // What Dagu 2.0 renamed or made an error.
        (
            "steps:\n  - id: a\n    dir: /tmp\n    run: echo a\n",
            "a step has no `dir` in Dagu 2.x",
        ),
        (
            "precondition: test -f x\nsteps:\n  - id: a\n    run: echo a\n",
            "a DAG has no `precondition` in Dagu 2.x",
        ),
        (
            "handler_on:\n  cancel: {run: echo bye}\nsteps:\n  - id: a\n    run: echo a\n",
            "`handler_on` has no `cancel` in Dagu 2.x",
        ),
        (
            "steps:\n  - id: a\n    container: {image: alpine, work_dir: /x}\n    run: echo a\n",
            "a container has no `work_dir` in Dagu 2.x",
        ),
        (
            "type: chain\nsteps:\n  - id: a\n    run: echo a\n  - id: b\n    depends: a\n    run: echo b\n",
            "a step of a `type: chain` DAG has no `depends` in Dagu 2.x",
        ),
        (
            "steps:\n  - id: build-app\n    run: echo a\n",
            "`build-app` is not a step id of Dagu 2.x",
        ),
        (
            "steps:\n  - id: Outputs\n    run: echo a\n",
            "`Outputs` is a reserved word, not a step id",
        ),
        (
            "steps:\n  a:\n    run: echo a\n",
            "`steps` is a list in Dagu 2.x, not a mapping",
        ),
        // `consts` is an ordered list of literal values.
        (
            "consts:\n  service: api\nsteps:\n  - id: a\n    run: echo a\n",
            "`consts` is a list of `- NAME: value` entries",
        ),
        (
            "consts:\n  - a: ${consts.b}\n  - b: x\nsteps:\n  - id: s\n    run: echo a\n",
            "`${consts.b}`: a const can use only the consts before it",
        ),
        (
            "consts:\n  - a: ${params.x}\nsteps:\n  - id: s\n    run: echo a\n",
            "a const is known when the file is read, not a value of the run",
        ),
        (
            "steps:\n  - id: s\n    action: http.request\n    with: {method: GET, url: \"http://x/${consts.missing}\"}\n",
            "`${consts.missing}`: no const `missing` is defined",
        ),
        // What wharf does not do is named, with what it does instead.
        (
            "catchup_window: 6h\noverlap_policy: sometimes\nsteps:\n  - id: a\n    run: echo a\n",
            "`overlap_policy` must be one of: skip, all, latest",
        ),
        (
            "steps:\n  - id: a\n    run: echo a\n    approval: {prompt: ok, rewind_to: a}\n",
            "`rewind_to` is not supported by wharf",
        ),
        (
            "steps:\n  - id: a\n    action: k8s.run\n    with: {image: b}\n",
            "wharf has no action `k8s.run`",
        ),
        (
            "container:\n  image: alpine\n  pull_policy: fallback\n  healthcheck: {test: [CMD]}\nsteps:\n  - id: a\n    run: echo a\n",
            "invalid `healthcheck.test`: `CMD` needs the program to run after it",
        ),
        (
            "container:\n  image: alpine\n  healthcheck: {test: [RUN, x]}\nsteps:\n  - id: a\n    run: echo a\n",
            "it must start with NONE, CMD or CMD-SHELL",
        ),
        (
            "container:\n  image: alpine\n  healthcheck: {interval: 1s}\nsteps:\n  - id: a\n    run: echo a\n",
            "`healthcheck` needs `test`",
        ),
        (
            "container:\n  image: alpine\n  healthcheck: {test: \"pg_isready\", interval: soon}\nsteps:\n  - id: a\n    run: echo a\n",
            "`healthcheck.interval` must be a duration of at least 1ms",
        ),
        (
            "container:\n  image: alpine\n  healthcheck: {test: [NONE], retries: -1}\nsteps:\n  - id: a\n    run: echo a\n",
            "`healthcheck.retries` must be a whole number",
        ),
        (
            "steps:\n  - id: a\n    run: echo a\n    container: {image: alpine, backend: swarm, healthcheck: {test: [NONE]}}\n",
            "a Swarm job gets no `healthcheck`",
        ),
        (
            "container: {exec: box, healthcheck: {test: [NONE]}}\nsteps:\n  - id: a\n    run: echo a\n",
            "`healthcheck` does not apply with `exec`",
        ),
        (
            "steps:\n  - id: a\n    run: echo a\n    retry_policy: {limt: 1}\n",
            "`retry_policy` needs `limit`",
        ),
        (
            "steps:\n  - id: a\n    run: echo a\n    with: {timeout: 3}\n",
            "a `run` step takes no `with.timeout`",
        ),
        (
            "steps:\n  - run: echo a\n    outputs: [tag]\n",
            "a step with `outputs` needs an `id`",
        ),
        (
            "params:\n  - name: X\n    defualt: 1\nsteps:\n  - run: echo a\n",
            "a param declaration has no `defualt`",
        ),
        (
            "working_dir: /tmp\nsteps:\n  - id: a\n    run: echo a\n    timeoutSec: 3\n",
            "mixes Dagu 1.x and Dagu 2.x",
        ),
        (
            "steps:\n  - id: each\n    run: echo ${item}\n    foreach: [a, b]\n",
            "a `foreach` step has no `run`: its body's steps run",
        ),
        (
            "params:\n  - name: N\n    type: float\nsteps:\n  - run: echo a\n",
            "a param's `type` is string, integer, number or boolean, not `float`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
    // Dagu 2.15 names the first document by its file: a `name` there is used, and told.
    let dag = p.dag(
        "named",
        "name: called\nsteps:\n  - id: a\n    run: echo a\n",
    );
    let out = p.wharf().args(["validate"]).args([&dag]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("since Dagu 2.15 the first document has no `name`"),
        "{said}"
    );
}

// 2.x preconditions (a value matched with `re:`, a negated command check; a DAG-level one
// not met aborts the run) and a sub-DAG through `action: dag.run` with object params, in
// a local document with declared, typed params.
#[test]
fn preconditions_and_sub_dags_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "parent",
        r#"params:
  - name: environment
    type: string
    default: staging
preconditions:
  - condition: ${params.environment}
    expected: re:^(staging|production)$
steps:
  - id: optional
    preconditions:
      - condition: test -f /nonexistent/flag
        negate: true
    run: echo optional ran
  - id: gated
    preconditions:
      - condition: ${params.environment}
        expected: production
    run: echo should not run
  - id: deploy
    depends: optional
    action: dag.run
    with:
      dag: child
      params: {TARGET: "${params.environment}", COUNT: 2}
---
name: child
params:
  - name: TARGET
    default: none
  - name: COUNT
    type: integer
    default: 1
steps:
  - id: show
    run: echo "child got ${params.TARGET} x${params.COUNT}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("parent");
    assert_eq!(step(&status, "optional")["status"], "succeeded");
    assert_eq!(step(&status, "gated")["status"], "skipped");
    assert_eq!(p.logs("child", "show"), "child got staging x2\n");
    let out = p.run(&dag, &["-p", "environment=dev"]);
    assert_ne!(out.code, Some(0));
    assert_eq!(p.status("parent")["status"], "aborted");
    assert!(
        out.stderr.contains("precondition not met"),
        "{}",
        out.stderr
    );
}

// The named step types as actions: `jq.filter` runs in wharf; `http.request`, `ssh.run` and
// `mail.send` become wharf's http, ssh and mail steps (their settings checked as theirs).
#[test]
fn builtin_actions_map_onto_wharfs_steps() {
    let p = Place::new();
    let dag = p.dag(
        "actions",
        "smtp: {host: 127.0.0.1, port: 2525}\nsteps:\n  - id: filter\n    action: jq.filter\n    with:\n      filter: .name\n      data:\n        name: World\n      raw: true\n  - id: h\n    action: http.request\n    with: {method: POST, url: \"http://127.0.0.1:1/x\", body: \"{}\", skip_tls_verify: true}\n  - id: s\n    action: ssh.run\n    with: {command: uptime, host: example.org, user: deploy, port: 2222}\n  - id: m\n    action: mail.send\n    with: {to: a@example.org, from: b@example.org, subject: hi, message: hello}\n",
    );
    let out = p.wharf().args(["dry"]).args([&dag]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for said in [
        "in wharf (an HTTP request)",
        "run: POST http://127.0.0.1:1/x",
        "over ssh on deploy@example.org:2222",
        "run: uptime",
        "in wharf (a mail)",
    ] {
        assert!(out.stdout.contains(said), "{said}: {}", out.stdout);
    }
    let only_jq = p.dag(
        "jq",
        "steps:\n  - id: filter\n    action: jq.filter\n    with:\n      filter: .name\n      data:\n        name: World\n      raw: true\n",
    );
    let out = p.run(&only_jq, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("jq", "filter"), "World\n");
    for (yaml, said) in [
        (
            "steps:\n  - id: h\n    action: http.request\n    with: {url: \"http://x\"}\n",
            "needs `with.method`",
        ),
        (
            "steps:\n  - id: s\n    action: ssh.run\n    with: {host: h}\n",
            "`action: ssh.run` needs `with.command`",
        ),
        (
            "steps:\n  - id: j\n    action: jq.filter\n    with: {filter: ., input: data.json}\n",
            "wharf's `jq.filter` takes no `with.input`",
        ),
        (
            "steps:\n  - id: h\n    action: http.request\n    with: {method: GET, url: \"http://x\", retries: 3}\n",
            "unknown key `retries`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// `defaults` (step fields every step has unless it sets them), `labels` (2.6's `tags`),
// and `parallel` over a sub-DAG run with `action: dag.run`.
#[test]
fn defaults_labels_and_parallel_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "fanout",
        r#"labels: [etl, nightly]
defaults:
  env:
    - MODE: batch
steps:
  - id: a
    run: echo "mode $MODE"
  - id: b
    env:
      - MODE: own
    run: echo "mode $MODE"
  - id: fan
    action: dag.run
    with:
      dag: child
    parallel:
      items: [x, y]
---
name: child
steps:
  - id: show
    run: echo "item $1"
"#,
    );
    let dry = p.wharf().args(["dry"]).args([&dag]).run();
    assert!(dry.stdout.contains("tags: etl, nightly"), "{}", dry.stdout);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("fanout", "a"), "mode batch\n");
    assert_eq!(p.logs("fanout", "b"), "mode own\n");
    let fan = p.logs("fanout", "fan");
    assert!(fan.contains(r#""succeeded":2"#), "{fan}");
}

// `foreach`: its body runs once per item (a run of a local sub-DAG made from it, at most
// `max_concurrent` at once), `${foreach.NAME}` the item; what wharf's foreach lacks is
// refused.
#[test]
fn foreach_runs_its_body_once_per_item() {
    let p = Place::new();
    let dag = p.dag(
        "loop",
        "steps:\n  - id: each\n    foreach:\n      items: [alpha, beta]\n      as: word\n      max_concurrent: 2\n      steps:\n        - id: shout\n          run: echo \"word=${foreach.word} ${foreach.index}\" | tr a-z A-Z | sed 's/^WORD/word/' >> \"$DAGU_OUTPUT_FILE\"\n          outputs: [{name: word}]\n        - id: after\n          depends: shout\n          run: echo \"done ${foreach.word}\"\n      collect:\n        loud: ${steps.shout.outputs.word}\n    output: RESULT\n  - id: next\n    depends: each\n    run: echo \"${RESULT.summary.succeeded} of ${RESULT.summary.total} - ${RESULT.outputs[1].loud}\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let each: serde_json::Value =
        serde_json::from_str(&p.logs("loop", "each")).expect("the result is JSON");
    assert_eq!(
        each,
        serde_json::json!({
            "summary": {"total": 2, "succeeded": 2, "failed": 0},
            "items": [
                {"index": 0, "key": "0", "status": "succeeded", "outputs": {"loud": "ALPHA 0"}},
                {"index": 1, "key": "1", "status": "succeeded", "outputs": {"loud": "BETA 1"}},
            ],
            "outputs": [{"loud": "ALPHA 0"}, {"loud": "BETA 1"}],
        })
    );
    assert_eq!(p.logs("loop", "next"), "2 of 2 - BETA 1\n");
}

// `foreach` over a JSON array an earlier step published, objects as items (`${foreach.NAME.field}`),
// keys, an empty list, and what fails: a duplicate key (before any body runs), items that
// are not a JSON array, a `collect` left unresolved.
#[test]
fn foreach_items_keys_and_failures() {
    let p = Place::new();
    let dag = p.dag(
        "episodes",
        r#"steps:
  - id: list
    run: echo 'episodes=[{"slug":"intro","url":"u/1"},{"slug":"deep","url":"u/2"}]' >> "$DAGU_OUTPUT_FILE"
    outputs: [{name: episodes, type: json}]
  - id: summarize
    depends: list
    foreach:
      items: ${steps.list.outputs.episodes}
      as: episode
      key: ${foreach.episode.slug}
      steps:
        - id: fetch
          run: echo "path=/t/${foreach.key}-${foreach.index}" >> "$DAGU_OUTPUT_FILE"
          outputs: [{name: path}]
        - id: sum
          depends: fetch
          run: echo "md=# ${steps.fetch.outputs.path} from ${foreach.episode.url}" >> "$DAGU_OUTPUT_FILE"
          outputs: [{name: md}]
      collect:
        markdown: ${steps.sum.outputs.md}
    output: SUMMARIES
  - id: none
    depends: summarize
    foreach:
      items: []
      steps: [{id: never, run: exit 1}]
    output: NONE
  - id: show
    depends: none
    run: echo "${SUMMARIES.items[1].key} ${SUMMARIES.outputs[0].markdown} ${NONE.summary.total}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("episodes", "show"), "deep # /t/intro-0 from u/1 0\n");

    let dag = p.dag(
        "dups",
        "steps:\n  - id: dup\n    foreach:\n      items: [{k: same}, {k: same}]\n      key: ${foreach.item.k}\n      steps: [{id: b, run: touch body-ran}]\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("`foreach.key` is `same` for more than one item"),
        "{}",
        out.stderr
    );
    assert!(!p.path("body-ran").exists(), "a body ran");

    let dag = p.dag(
        "notarray",
        "params:\n  - name: items\n    default: \"a b\"\nsteps:\n  - id: e\n    foreach:\n      items: ${params.items}\n      steps: [{id: b, run: echo ran}]\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("`foreach.items` is not a JSON array once resolved: a b"),
        "{}",
        out.stderr
    );

    let dag = p.dag(
        "uncollected",
        "steps:\n  - id: e\n    foreach:\n      items: [x]\n      steps: [{id: b, run: echo ran}]\n      collect:\n        missing: ${steps.b.outputs.nothing}\n    output: R\n    continue_on: {failure: true}\n  - id: after\n    depends: e\n    run: echo ${R.items[0].status}\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(p.logs("uncollected", "after"), "failed\n", "{}", out.stderr);
    assert!(
        p.logs("uncollected", "e")
            .contains(r#""error":"`collect.missing`: `${steps.b.outputs.nothing}` has no value""#),
        "{}",
        p.logs("uncollected", "e")
    );

    p.assert_refused(
        "steps:\n  - id: e\n    foreach:\n      items: [a]\n      as: index\n      steps: [{id: x, run: echo hi}]\n",
        "`as` names the item",
    );
    p.assert_refused(
        "steps:\n  - id: e\n    foreach:\n      items: [a]\n      collect: {9x: y}\n      steps: [{id: x, run: echo hi}]\n",
        "`9x` is not an output name",
    );
    p.assert_refused(
        "steps:\n  - id: e\n    foreach:\n      items: [a]\n      each: 2\n      steps: [{id: x, run: echo hi}]\n",
        "`foreach` has no `each`",
    );
    p.assert_refused(
        "steps:\n  - id: e\n    run: echo\n    foreach:\n      items: [a]\n      steps: [{id: x, run: echo hi}]\n",
        "a `foreach` step has no `run`",
    );
}

// 2.x `env` (a mapping, `${env.X}` of an earlier one) and `secrets` (hidden in the log).
#[test]
fn env_and_secrets_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "envs",
        "env:\n  A: one\n  B: ${env.A}-two\nsecrets:\n  - name: TOKEN\n    provider: env\n    key: WHARF_TEST_SECRET_TOKEN\nsteps:\n  - id: show\n    env:\n      C: ${env.B}-three\n    run: echo \"$A $B $C ${env.C} $TOKEN\"\n",
    );
    let out = p
        .wharf()
        .env("WHARF_TEST_SECRET_TOKEN", "s3kr1t-value")
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = p.logs("envs", "show");
    assert!(
        log.starts_with("one one-two one-two-three one-two-three "),
        "{log}"
    );
    assert!(!log.contains("s3kr1t-value"), "{log}");
    // 2.x runs no command in `env`: `$(...)` and backticks are the value's text.
    let dag = p.dag(
        "texts",
        "env:\n  TODAY: $(date)\n  TICK: \"`echo x`\"\n  A: one\n  QUOTED: \"'$A' $A\"\nsteps:\n  - id: show\n    env:\n      MINE: $(hostname)\n    run: printf '%s|%s|%s|%s\\n' \"$TODAY\" \"$TICK\" \"$MINE\" \"$QUOTED\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Single-quoted variables are left as written.
    assert_eq!(
        p.logs("texts", "show"),
        "$(date)|`echo x`|$(hostname)|'$A' one\n"
    );
}

// 2.x params: a `default` is literal (backticks and `$(...)` stay text); `eval` runs its
// commands once references are put in, unless the run is given the param; a failed
// `eval` falls back to the default, and without one fails the run before any step.
#[test]
fn param_eval_and_literal_defaults_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "evals",
        r#"params:
  - name: today
    eval: "$(printf 20260131)"
  - name: env
    default: prod
  - name: service
    eval: "`printf '%s-api' ${params.env}`"
  - name: literal
    default: "`echo no` $(echo no)"
  - name: broken
    default: fallback
    eval: "$(exit 3)"
steps:
  - id: show
    env:
      LIT: ${params.literal}
    run: echo "${params.today} ${params.service} ${params.broken} $LIT"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("evals", "show"),
        "20260131 prod-api fallback `echo no` $(echo no)\n"
    );
    assert!(
        out.stderr
            .contains("broken: the command `exit 3` failed; its default is used"),
        "{}",
        out.stderr
    );
    let out = p.run(&dag, &["--", "env=dev", "today=given"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("evals", "show"),
        "given dev-api fallback `echo no` $(echo no)\n"
    );

    let dag = p.dag(
        "evalfails",
        "params:\n  - name: x\n    eval: \"$(exit 3)\"\nsteps:\n  - id: never\n    run: touch ran\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("the param `x`: `eval` failed: the command `exit 3` failed"),
        "{}",
        out.stderr
    );
    assert!(!p.path("ran").exists());
    p.assert_refused(
        "params:\n  - name: x\n    eval: [a]\nsteps:\n  - run: echo\n",
        "`eval` is a string",
    );
}

// 2.x `file.*` actions on real files: write (mode, create_dirs, no overwrite by default),
// read (raw and JSON), stat (missing_ok), copy and move of trees, list with a glob,
// delete; each refusal at validation and each runtime failure names its reason.
#[test]
fn file_actions_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "files",
        r#"params:
  - name: who
    default: world
steps:
  - id: w
    action: file.write
    with: {path: out/a.txt, content: "hello ${params.who}", create_dirs: true, mode: "0640"}
  - id: again
    depends: w
    action: file.write
    with: {path: out/a.txt, content: x}
    continue_on: {failure: true}
  - id: r
    depends: again
    action: file.read
    with: {path: out/a.txt}
    output: TEXT
  - id: rj
    depends: r
    action: file.read
    with: {path: out/a.txt, format: json}
    output: META
  - id: st
    depends: rj
    action: file.stat
    with: {path: nope.txt, missing_ok: true}
    output: ST
  - id: cp
    depends: st
    action: file.copy
    with: {source: out, destination: copy/out, recursive: true, create_dirs: true}
  - id: mv
    depends: cp
    action: file.move
    with: {source: copy/out/a.txt, destination: moved.txt}
  - id: ls
    depends: mv
    action: file.list
    with: {path: ., recursive: true, pattern: "**/*.txt"}
    output: LS
  - id: del
    depends: ls
    action: file.delete
    with: {path: copy, recursive: true}
  - id: show
    depends: del
    run: echo "${TEXT} | ${META.mode} ${META.size} | ${ST.exists} | ${LS.count} ${LS.entries[0].name} ${LS.entries[1].name}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("files", "show"),
        "hello world | 0640 11 | false | 2 moved.txt out/a.txt\n"
    );
    assert!(
        out.stderr.contains("again: failed")
            && out
                .stderr
                .contains("a.txt: file exists (set `overwrite: true` to replace it)"),
        "{}",
        out.stderr
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p.path("moved.txt"))
        .expect("moved")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert!(!p.path("copy").exists() && !p.path("copy/out/a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(p.path("out/a.txt")).expect("kept"),
        "hello world"
    );

    for (with, said) in [
        (
            "action: file.read\n    with: {path: out}",
            "cannot read a directory",
        ),
        (
            "action: file.read\n    with: {path: moved.txt, max_bytes: 3}",
            "exceeds max_bytes",
        ),
        (
            "action: file.delete\n    with: {path: out}",
            "recursive is required to delete a directory",
        ),
        (
            "action: file.copy\n    with: {source: out, destination: out/inner, recursive: true}",
            "destination must not be inside source",
        ),
        (
            "action: file.copy\n    with: {source: out, destination: elsewhere}",
            "recursive is required to copy a directory",
        ),
        (
            "action: file.move\n    with: {source: out/a.txt, destination: moved.txt}",
            "the destination exists",
        ),
        (
            "action: file.stat\n    with: {path: missing.txt}",
            "missing.txt: no such file or directory",
        ),
    ] {
        let dag = p.dag("fails", &format!("steps:\n  - id: f\n    {with}\n"));
        let out = p.run(&dag, &[]);
        assert_eq!(out.code, Some(1), "{with}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{with}: {}", out.stderr);
    }
    for (yaml, said) in [
        (
            "steps:\n  - id: f\n    action: file.write\n    with: {path: x}\n",
            "`file.write` needs `with.content`",
        ),
        (
            "steps:\n  - id: f\n    action: file.copy\n    with: {source: x}\n",
            "`file.copy` needs `with.destination`",
        ),
        (
            "steps:\n  - id: f\n    action: file.read\n    with: {path: x, content: y}\n",
            "content",
        ),
        (
            "steps:\n  - id: f\n    action: file.chmod\n    with: {path: x}\n",
            "wharf has no action `file.chmod`",
        ),
        (
            "steps:\n  - id: f\n    action: file.write\n    with: {path: x, content: y, mode: rw}\n",
            "`mode` is permission bits in octal",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// 2.x `dag.enqueue`: the child's run goes to its queue with its params and runs on its
// own; the step reports its id and status without waiting for it.
#[test]
fn dag_enqueue_in_2x() {
    let p = Place::new();
    p.dag(
        "child",
        "params:\n  - name: who\n    default: nobody\nsteps:\n  - id: hi\n    run: echo \"hi ${params.who}\"\n",
    );
    let dag = p.dag(
        "parent",
        "params:\n  - name: name\n    default: there\nsteps:\n  - id: enq\n    action: dag.enqueue\n    with:\n      dag: child.yaml\n      params: {who: \"${params.name}\"}\n    output: R\n  - id: show\n    depends: enq\n    run: echo \"${R.name} ${R.dagRunId}\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let shown = p.logs("parent", "show");
    let run_id = shown
        .trim()
        .strip_prefix("child ")
        .expect("the enqueued run's id")
        .to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = p
            .wharf()
            .args(["status", "child", "--run-id", &run_id, "--json"])
            .run();
        if status.stdout.contains("\"status\": \"succeeded\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the enqueued run did not end: {}",
            status.stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = p
        .wharf()
        .args(["logs", "child", "--run-id", &run_id, "--step", "hi"])
        .run();
    assert_eq!(log.stdout, "hi there\n");

    // `parallel`: one run per item (items that come to the same params are one run),
    // the child's name given; the parent does not wait for them.
    let fan = p.dag(
        "fan",
        "steps:\n  - id: enq\n    action: dag.enqueue\n    with:\n      dag: child.yaml\n      params: {who: \"${ITEM}\"}\n    parallel:\n      items: [ann, bob, ann]\n    output: R\n  - id: show\n    depends: enq\n    run: echo \"${R.summary.total} ${R.runs[1].params} ${R.runs[0].name}\"\n",
    );
    let out = p.run(&fan, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("fan", "show"), "2 who=bob child\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let history = p.wharf().args(["history", "child", "--json"]).run();
        if history.stdout.matches("\"succeeded\"").count() >= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the enqueued runs did not end: {}",
            history.stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let dag = p.dag(
        "local",
        "steps:\n  - id: enq\n    action: dag.enqueue\n    with: {dag: inner}\n---\nname: inner\nsteps:\n  - run: echo inner\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("`inner` is a DAG of this file"),
        "{}",
        out.stderr
    );
    // `with.queue`: the run waits in that queue, behind the run that holds its place.
    let blocker = p.dag(
        "blocker",
        "queue: batch\nsteps:\n  - id: hold\n    run: sleep 30\n",
    );
    let out = p
        .wharf()
        .args(["enqueue"])
        .args([&blocker])
        .args(["--run-id", "b1"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    until_status(&p, "blocker", "b1", "running");
    let queued = p.dag(
        "queued",
        "steps:\n  - id: enq\n    action: dag.enqueue\n    with: {dag: child.yaml, queue: batch, params: {who: later}}\n    output: R\n  - id: show\n    depends: enq\n    run: echo \"${R.status} ${R.dagRunId}\"\n",
    );
    let out = p.run(&queued, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let shown = p.logs("queued", "show");
    let (said, run_id) = shown.trim().split_once(' ').expect("status and id");
    assert_eq!(said, "queued", "{shown}");
    until_status(&p, "child", run_id, "queued");
    let out = p.wharf().args(["stop", "blocker"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    until_status(&p, "child", run_id, "succeeded");
    p.assert_refused(
        "steps:\n  - id: enq\n    action: dag.enqueue\n    with: {dag: child, queue: \"\"}\n",
        "`queue` is empty",
    );
    p.assert_refused(
        "steps:\n  - id: enq\n    action: dag.enqueue\n    with: {params: {a: 1}}\n",
        "`dag.enqueue` needs `with.dag`",
    );
}

// 2.x `log.write`, `outputs.write` (read as `${ID.outputs.NAME}` and
// `${steps.ID.outputs.NAME}`, objects as JSON) and `noop`, also as a handler.
#[test]
fn log_outputs_and_noop_actions_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "emits",
        r#"handler_on:
  success:
    action: log.write
    with: {message: "done ${dag.name}"}
env:
  SHA: abc123
steps:
  - id: info
    action: outputs.write
    with:
      values:
        version: "1.2.3"
        commit: $SHA
        meta: {a: 1}
        multi: "x\ny"
  - id: say
    depends: info
    action: log.write
    with:
      message: "v=${info.outputs.version} c=${info.outputs.commit} m=${steps.info.outputs.meta} ${steps.info.outputs.meta.a}"
    output: SAID
  - id: nothing
    depends: say
    action: noop
  - id: show
    depends: nothing
    run: |
      printf '%s|%s\n' "${SAID}" "${steps.info.outputs.multi}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // An output has no fields to read: a nested path is left as written.
    assert_eq!(
        p.logs("emits", "show"),
        "v=1.2.3 c=abc123 m={\"a\":1} ${steps.info.outputs.meta.a}|x\ny\n"
    );
    assert_eq!(p.logs("emits", "onSuccess"), "done emits\n");
    assert_eq!(p.logs("emits", "nothing"), "");
    for (yaml, said) in [
        (
            "steps:\n  - id: a\n    action: log.write\n",
            "`log.write` needs `with.message`",
        ),
        (
            "steps:\n  - id: a\n    action: log.write\n    with: {message: hi, level: info}\n",
            "`log.write` has no `with.level`",
        ),
        (
            "steps:\n  - id: a\n    action: outputs.write\n    with: {values: {}}\n",
            "`with.values` is a mapping of one or more output names",
        ),
        (
            "steps:\n  - id: a\n    action: outputs.write\n",
            "`outputs.write` needs `with.values`",
        ),
        (
            "steps:\n  - id: a\n    action: noop\n    with: {x: 1}\n",
            "`noop` takes no `with`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// 2.x object-form `output` (values written, or read from stdout, stderr or a file, decoded
// and selected) as `${ID.output.*}` and `${steps.ID.outputs.*}`, kept out of the run's
// outputs; `stdout.outputs` as the run's outputs; a step with only `output` publishes it;
// `${ID.exit_code}` and `${ID.output}` of a string-form output.
#[test]
fn published_outputs_in_2x() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("reports/prod")).unwrap();
    std::fs::write(
        p.path("reports/prod/report.json"),
        r#"{"path": "/srv/r.html"}"#,
    )
    .unwrap();
    let dag = p.dag(
        "publish",
        r#"type: chain
params:
  - name: environment
    default: prod
steps:
  - id: inspect
    run: |
      printf '{"version":"v1.2.3","artifact":{"url":"https://example.test/app.tgz"},"n":[4,5]}'
      printf 'warning: low disk\n' >&2
    output:
      version: {from: stdout, decode: json, select: .version}
      artifact: {from: stdout, decode: json, select: .artifact}
      second: {from: stdout, decode: json, select: ".n[1]"}
      warn: {from: stderr, decode: yaml, select: .warning}
      report: {from: file, path: "reports/${params.environment}/report.json", decode: json, select: .path}
      meta: {env: stg, approved: true}
      wrapped: {value: {from: literal}}
  - id: relabel
    output:
      label: "ver - ${inspect.output.version}"
  - id: notify
    run: printf '{"id":"msg-1","status":"sent","extra":1}'
    stdout:
      outputs:
        fields:
          messageId: {decode: json, select: .id}
          state: {decode: json, select: .status}
          env: {value: "${params.environment}"}
  - id: ticket
    run: echo T-42
    stdout: {outputs: ticketId}
  - id: all
    run: printf '{"a":"1","b":{"c":2}}'
    stdout:
      outputs: {decode: json}
  - id: version
    run: echo '{"v":"1.2"}'
    output: VERSION
  - id: show
    run: |
      echo "${inspect.output.version} ${inspect.output.artifact.url} ${inspect.output.second} ${inspect.output.warn}"
      echo "${inspect.output.report} ${inspect.output.meta.env} ${inspect.output.wrapped.from} ${steps.inspect.outputs.version}"
      echo "${relabel.output.label}|${steps.relabel.outputs.label}"
      echo "${steps.notify.outputs.messageId} ${notify.outputs.state} ${steps.notify.outputs.env} ${steps.ticket.outputs.ticketId}"
      echo "${steps.all.outputs.a} ${steps.all.outputs.b} ${version.exit_code} ${version.output.v}"
      printf '%s\n' '${ticket.outputs}'
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("publish", "show"),
        "v1.2.3 https://example.test/app.tgz 5 low disk\n\
         /srv/r.html stg literal v1.2.3\n\
         ver - v1.2.3|ver - v1.2.3\n\
         msg-1 sent prod T-42\n\
         1 {c:2} 0 1.2\n\
         {\"ticketId\":\"T-42\"}\n"
    );
    // The step that only publishes ran nothing; `stdout.outputs` are the run's outputs,
    // an object-form `output` is the step's own.
    assert_eq!(p.logs("publish", "relabel"), "");
    let status = p.status("publish");
    let outputs = status["outputs"].as_object().expect("outputs");
    assert_eq!(
        outputs["steps.notify.outputs.messageId"], "msg-1",
        "{status}"
    );
    assert_eq!(outputs["steps.ticket.outputs.ticketId"], "T-42", "{status}");
    assert_eq!(outputs["steps.all.outputs.b"], "{\"c\":2}", "{status}");
    assert!(
        !outputs
            .keys()
            .any(|k| k.contains("inspect") || k.contains("relabel")),
        "{status}"
    );

    // A value that cannot be read fails the step that publishes it.
    for (name, yaml, said) in [
        (
            "not-json",
            "steps:\n  - id: a\n    run: echo plain\n    output:\n      v: {from: stdout, decode: json}\n",
            "`output.v`: the step's stdout is not JSON",
        ),
        (
            "nothing-there",
            "steps:\n  - id: a\n    run: echo '{\"a\":1}'\n    output:\n      v: {from: stdout, decode: json, select: .b}\n",
            "has nothing at the path `select` names",
        ),
        (
            "no-file",
            "steps:\n  - id: a\n    run: \"true\"\n    output:\n      v: {from: file, path: missing.txt}\n",
            "cannot read",
        ),
    ] {
        let dag = p.dag(name, yaml);
        let out = p.run(&dag, &[]);
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{name}: {}", out.stderr);
    }
    for (yaml, said) in [
        (
            "steps:\n  - id: a\n    run: echo\n    output:\n      v: {value: 1, from: stdout}\n",
            "`value` cannot be combined with `from`",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    output:\n      v: {from: file}\n",
            "`from: file` needs `path`",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    output:\n      v: {from: stdout, select: .a}\n",
            "`select` reads a decoded value",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    output:\n      v: {from: stdout, decode: xml}\n",
            "`decode` is text, json or yaml",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    output:\n      v: {from: stdout, decode: json, select: \"a b\"}\n",
            "`select` is a path into the value",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    stdout:\n      outputs: {fields: {}}\n",
            "`stdout.outputs.fields` must be a mapping of output names",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    stderr:\n      outputs: x\n",
            "wharf's `stderr` has no `outputs`",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    output:\n      1bad: x\n",
            "an output's name is letters, digits and `_`, found `1bad`",
        ),
        (
            "steps:\n  - id: a\n    run: echo\n    stdout:\n      outputs: {fields: {bad-name: {decode: json}}}\n",
            "found `bad-name`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// 2.x `wait.*`: a time to pass or come, a file to appear or go, an HTTP endpoint to answer
// with a status (asked again after refusals and other statuses); a wait that never ends is
// ended by the step's timeout.
#[test]
fn wait_actions_in_2x() {
    use std::io::{Read, Write};
    let p = Place::new();
    // An endpoint that is not ready twice (503), then answers 204 to a POST with the header.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (n, conn) in listener.incoming().enumerate() {
            let mut conn = conn.expect("accept");
            // The request whole: its head, then its body (which may come apart).
            let mut text = String::new();
            let mut buf = [0u8; 4096];
            while !text.ends_with('}') {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(len) => text.push_str(&String::from_utf8_lossy(&buf[..len])),
                }
            }
            let status = if n < 2 {
                "503 Service Unavailable"
            } else {
                "204 No Content"
            };
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            seen.push(text);
            if n >= 2 {
                return seen;
            }
        }
        seen
    });
    std::fs::write(p.path("lock"), "").expect("lock");
    let lock = p.path("lock");
    let remover = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::remove_file(lock).expect("remove");
    });
    let dag = p.dag(
        "waits",
        &format!(
            r#"type: chain
steps:
  - id: pause
    action: wait.duration
    with: {{duration: 250ms}}
  - id: past
    action: wait.until
    with: {{until: "2020-01-02T03:04:05Z"}}
  - id: unlocked
    action: wait.file
    with: {{path: lock, state: missing, poll_interval: 50ms}}
  - id: ready
    action: wait.http
    with:
      method: POST
      url: http://127.0.0.1:{port}/ready
      status: 204
      headers: {{X-Probe: wharf}}
      body: '{{"index":"customers"}}'
      poll_interval: 100ms
      request_timeout: 2s
"#
        ),
    );
    let started = std::time::Instant::now();
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    remover.join().expect("remover");
    let seen = server.join().expect("server");
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[2].starts_with("POST /ready"), "{}", seen[2]);
    assert!(
        seen[2].to_ascii_lowercase().contains("x-probe: wharf"),
        "{}",
        seen[2]
    );
    assert!(seen[2].ends_with(r#"{"index":"customers"}"#), "{}", seen[2]);
    assert_eq!(p.logs("waits", "unlocked"), "lock is gone\n");
    assert!(p.logs("waits", "ready").contains("answered 204"));

    // A file that never comes: the step's timeout ends the wait.
    let dag = p.dag(
        "never",
        "steps:\n  - id: w\n    action: wait.file\n    with: {path: never.flag, poll_interval: 50ms}\n    timeout_sec: 1\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("never");
    assert_eq!(step(&status, "w")["status"], "failed", "{status}");
    assert_eq!(step(&status, "w")["exitCode"], 124, "{status}");

    for (yaml, said) in [
        (
            "steps:\n  - id: a\n    action: wait.duration\n    with: {duration: soon}\n",
            "`soon` is not a duration",
        ),
        (
            "steps:\n  - id: a\n    action: wait.duration\n",
            "`wait.duration` needs `with.duration`",
        ),
        (
            "steps:\n  - id: a\n    action: wait.until\n    with: {until: tomorrow}\n",
            "`tomorrow` is not a time",
        ),
        (
            "steps:\n  - id: a\n    action: wait.file\n    with: {path: x, state: gone}\n",
            "`state` is exists or missing",
        ),
        (
            "steps:\n  - id: a\n    action: wait.http\n    with: {url: http://x, status: 700}\n",
            "`status` is an HTTP status",
        ),
        (
            "steps:\n  - id: a\n    action: wait.file\n    with: {path: x, url: http://x}\n",
            "`wait.file` has no `with.url`",
        ),
        (
            "steps:\n  - id: a\n    action: wait.forever\n",
            "wharf has no action `wait.forever`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// 2.x artifacts: `artifact.write`/`read`/`list` in the run's own folder (and never out of
// it), `stdout: {artifact: PATH}`, and `DAG_RUN_ARTIFACTS_DIR` for a step's process.
#[test]
fn artifacts_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "arts",
        r#"steps:
  - id: save
    action: artifact.write
    with: {path: reports/r.json, content: '{"status":"ok"}'}
  - id: inspect
    depends: save
    action: artifact.read
    with: {path: reports/r.json, format: json}
    output: R
  - id: report
    depends: inspect
    run: echo "from the shell" && ls "$DAG_RUN_ARTIFACTS_DIR/reports"
    stdout: {artifact: logs/report.log}
  - id: list
    depends: report
    action: artifact.list
    with: {recursive: true}
    output: L
  - id: show
    depends: list
    run: echo "${R.size} ${R.type} ${L.count} ${L.entries[0].name} ${L.entries[1].name}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("arts", "show"),
        "15 file 2 logs/report.log reports/r.json\n"
    );
    let status = p.status("arts");
    let dir = std::path::Path::new(status["logDir"].as_str().expect("logDir")).join("artifacts");
    assert_eq!(
        std::fs::read_to_string(dir.join("logs/report.log")).expect("the stdout artifact"),
        "from the shell\nr.json\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("reports/r.json")).expect("the written artifact"),
        r#"{"status":"ok"}"#
    );
    for (with, said) in [
        (
            "{path: ../escape.txt, content: x}",
            "artifact path must not contain ..: ../escape.txt",
        ),
        (
            "{path: /etc/x, content: x}",
            "artifact path must be relative: /etc/x",
        ),
    ] {
        let dag = p.dag(
            "escape",
            &format!("steps:\n  - id: w\n    action: artifact.write\n    with: {with}\n"),
        );
        let out = p.run(&dag, &[]);
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(out.stderr.contains(said), "{}", out.stderr);
    }
    assert!(!p.path("escape.txt").exists());
    for (yaml, said) in [
        (
            "steps:\n  - id: w\n    action: artifact.write\n    with: {path: a, content: x, overwrite: true, atomic: false}\n",
            "remove `atomic: false`",
        ),
        (
            "steps:\n  - id: w\n    action: artifact.read\n",
            "`artifact.read` needs `with.path`",
        ),
        (
            "steps:\n  - id: w\n    action: artifact.delete\n    with: {path: a}\n",
            "wharf has no action `artifact.delete`",
        ),
        (
            "steps:\n  - id: w\n    run: echo hi\n    stdout: {artifact: ../x}\n",
            "relative, without `..`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// The 2.x run context: `${step.id}`, `${run.started_at}`, the attempt's own files
// (`${paths.step_output_file}`), `${run.root_name}` in a sub-DAG's run, `DAG_PARAMS_JSON`.
#[test]
fn run_context_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "ctx",
        r#"params:
  - name: who
    default: you
steps:
  - id: first
    run: echo "file=$(basename ${paths.step_output_file})" >> "${context.paths.step_output_file}"; echo "${step.id} ${trigger.type} ${run.started_at}"; printf '%s\n' "$DAG_PARAMS_JSON"
    outputs: [{name: file}]
    retry_policy: {limit: 1, interval_sec: 0}
  - id: second
    depends: first
    action: dag.run
    with: {dag: child}
  - id: third
    depends: second
    run: echo "${steps.first.outputs.file}"
---
name: child
steps:
  - id: c
    run: echo "root=${run.root_name} ${trigger.type}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = p.logs("ctx", "first");
    let mut lines = log.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with("first manual 20") && first.ends_with('Z'),
        "{log}"
    );
    assert_eq!(lines.next(), Some(r#"{"who":"you"}"#), "{log}");
    let child = p.wharf().args(["logs", "child", "--step", "c"]).run();
    assert_eq!(child.stdout, "root=ctx subdag\n");
    assert_eq!(p.logs("ctx", "third"), "1-first.1.outputs\n");
}

// The run's context where Dagu 2.x gives it: the run's id in the DAG's `env`, an attempt
// id of its own, a work directory for the run, and the attempt's files even inside single
// quotes (a retried step reads its second attempt's).
#[test]
fn run_identity_attempts_and_work_dir_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "ident",
        r#"env:
  - RUN_ENV=${run.id}/${dag.name}
steps:
  - id: look
    run: |
      test -d '${paths.work_dir}'
      test "$DAG_RUN_WORK_DIR" = '${paths.work_dir}'
      printf '%s %s %s\n' "$RUN_ENV" '${attempt.id}' '${paths.step_stdout_file}'
      test -f "$DAG_RUN_WORK_DIR/again" || { touch "$DAG_RUN_WORK_DIR/again"; exit 3; }
    retry_policy: {limit: 1, interval_sec: 0}
"#,
    );
    let out = p.run(&dag, &["--run-id", "ident-1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = p.logs("ident", "look");
    let words: Vec<&str> = log.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{log}");
    assert_eq!(words[0], "ident-1/ident", "{log}");
    assert!(
        words[1].len() > 10 && words[1] != "ident-1" && !words[1].contains('$'),
        "{log}"
    );
    assert!(
        words[2].ends_with("1-look.2.stdout") && words[2].starts_with('/'),
        "{log}"
    );
}

// A sub-DAG file whose keys do not tell its dialect (a one-word `run:`) is read in the
// dialect of the 2.x DAG that runs it (its `run` a command, not a call); alone it is 1.x,
// with a warning.
#[test]
fn an_undecided_sub_dag_file_takes_its_callers_dialect() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("sub")).expect("sub");
    std::fs::write(
        p.path("sub/ext.yaml"),
        "steps:\n  - id: where\n    run: pwd\n",
    )
    .expect("child");
    let dag = p.dag(
        "caller",
        "working_dir: /usr\nsteps:\n  - id: c\n    action: dag.run\n    with: {dag: sub/ext.yaml}\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Run as a 2.x sub-DAG without a working directory of its own: in its run's own.
    let log = p.wharf().args(["logs", "ext", "--step", "where"]).run();
    assert!(log.stdout.trim_end().ends_with("/work"), "{}", log.stdout);
    let alone = p
        .wharf()
        .args(["validate"])
        .args([&p.path("sub/ext.yaml")])
        .run();
    let said = format!("{}{}", alone.stdout, alone.stderr);
    assert!(said.contains("`run: pwd` is read as Dagu 1.x"), "{said}");
}

// 2.x preconditions: a `condition` with `expected` compares the text with only its
// references put in (`$(...)` is text), `expected` is literal, `eval` runs its commands,
// and a command check gets its references before the shell runs it.
#[test]
fn precondition_values_evals_and_commands_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "gates",
        r#"params:
  - name: env
    default: prod
  - name: flag
    default: "on"
steps:
  - id: literal_text
    preconditions:
      - condition: "$(echo prod) ${params.env}"
        expected: "$(echo prod) prod"
    run: echo text compared as written
  - id: literal_expected
    preconditions:
      - condition: ${params.env}
        expected: ${params.env}
    run: echo never
  - id: evaluated
    preconditions:
      - eval: "$(printf 1.2.3)"
        expected: re:^1\.2\.
    run: echo version matched
  - id: command
    preconditions:
      - condition: test "${params.flag}" = on
    run: echo flag on
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("gates", "literal_text"),
        "text compared as written\n"
    );
    assert_eq!(p.logs("gates", "evaluated"), "version matched\n");
    assert_eq!(p.logs("gates", "command"), "flag on\n");
    let status = p.status("gates");
    assert_eq!(
        step(&status, "literal_expected")["status"],
        "skipped",
        "{status}"
    );
    p.assert_refused(
        "steps:\n  - id: a\n    preconditions:\n      - eval: \"$(date)\"\n    run: echo hi\n",
        "a precondition with `eval` needs `expected`",
    );
    p.assert_refused(
        "steps:\n  - id: a\n    preconditions:\n      - eval: \"$(date)\"\n        condition: x\n        expected: y\n    run: echo hi\n",
        "a precondition has `eval` or `condition`, not both",
    );

    // A numeric comparison with a value that is no number fails the step (whatever
    // `negate` says, and before a condition that is merely not met); one that does not
    // hold skips it; a DAG's own fails the run, and its failure handler runs.
    let numeric = p.dag(
        "numeric",
        "type: graph\nsteps:\n  - id: nan\n    preconditions:\n      - condition: \"$UNDEFINED_NUMBER\"\n        expected: \"num:>=0.8\"\n      - condition: actual\n        expected: expected\n    run: echo never\n  - id: negated\n    preconditions:\n      - condition: \"${params.missing}\"\n        expected: \"num:>=0.8\"\n        negate: true\n    run: echo never\n  - id: low\n    preconditions:\n      - condition: \" 0.5\"\n        expected: \"num:>=0.8\"\n    run: echo never\n  - id: high\n    preconditions:\n      - condition: \"0.87\"\n        expected: \"num:>=0.8\"\n    run: echo high\n",
    );
    let out = p.run(&numeric, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("numeric");
    assert!(
        step_error(&status, "nan")
            .contains("is not a number, so it cannot be compared with `num:>=0.8`"),
        "{status}"
    );
    assert_eq!(step(&status, "negated")["status"], "failed", "{status}");
    assert_eq!(step(&status, "low")["status"], "skipped", "{status}");
    assert_eq!(p.logs("numeric", "high"), "high\n");
    let gated = p.dag(
        "gated",
        "preconditions:\n  - condition: \"soon\"\n    expected: \"num:>1\"\nhandler_on:\n  failure:\n    run: echo failed > failure-ran.txt\n  abort:\n    run: echo aborted > abort-ran.txt\nsteps:\n  - id: main\n    run: echo never\n",
    );
    let out = p.run(&gated, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(p.status("gated")["status"], "failed");
    assert!(p.path("failure-ran.txt").exists(), "{}", out.stderr);
    assert!(!p.path("abort-ran.txt").exists());
}

// `wharf dry --dialect 2` of a 1.x file prints it in 2.x words (a migration aid): the
// printed file is 2.x, and it runs as the 1.x file does. A 2.x file is planned as usual.
#[test]
fn dry_dialect_2_writes_a_1x_file_in_2x_words() {
    let p = Place::new();
    let old = p.dag(
        "old",
        r#"workingDir: /tmp
params:
  - ENV: staging
env:
  - GREETING: hello
handlerOn:
  success:
    command: echo "done ${DAG_NAME}"
steps:
  - name: build
    command: echo "${GREETING} building ${ENV} in $(pwd)"
    retryPolicy: {limit: 1, intervalSec: 0}
  - name: word
    command: hostname
    output: HOST
  - name: script-step
    script: |
      echo line1
      echo line2
  - name: filter
    executor:
      type: jq
      config: {raw: true}
    command: .name
    script: '{"name": "jq ran"}'
  - name: child
    call: sub
    params: "X=42"
  - name: fan
    call: sub
    parallel:
      items: [a, b]
      maxConcurrent: 1
---
name: sub
params:
  - X: "0"
steps:
  - command: echo sub ${X}
"#,
    );
    let out = p.wharf().args(["--dialect", "2", "dry"]).args([&old]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for said in [
        "type: chain",
        "working_dir: /tmp",
        "handler_on:",
        "retry_policy:",
        "interval_sec: 0",
        "action: jq.filter",
        "action: dag.run",
        "max_concurrent: 1",
        "run: |",
    ] {
        assert!(out.stdout.contains(said), "{said}:\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("command:"), "{}", out.stdout);
    let new = p.path("new.yaml");
    std::fs::write(&new, &out.stdout).expect("write");
    let dry = p.wharf().args(["dry"]).args([&new]).run();
    assert!(dry.stdout.contains("dialect: Dagu 2.x"), "{}", dry.stdout);
    for file in [&old, &new] {
        let out = p.run(file, &[]);
        assert_eq!(out.code, Some(0), "{}: {}", file.display(), out.stderr);
    }
    for step in ["build", "word", "script-step", "filter", "onSuccess"] {
        let logs = |dag: &str| p.logs(dag, step).replace("done new", "done old");
        assert_eq!(logs("old"), logs("new"), "{step}");
    }
    assert_eq!(p.logs("new", "filter"), "jq ran\n");
    // A 2.x file: planned, not rewritten.
    let two = p.dag("two", "steps:\n  - id: a\n    run: echo a b\n");
    let out = p.wharf().args(["--dialect", "2", "dry"]).args([&two]).run();
    assert!(out.stdout.contains("dialect: Dagu 2.x"), "{}", out.stdout);
    // A `hitl` step is a step that does nothing, then waits for the same approval.
    let hitl = p.dag(
        "hitl",
        "steps:\n  - name: ask\n    executor: {type: hitl, config: {prompt: ok?, input: [WHO], required: [WHO]}}\n",
    );
    let out = p
        .wharf()
        .args(["--dialect", "2", "dry"])
        .args([&hitl])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("    action: noop\n    approval:\n      prompt: ok?\n"),
        "{}",
        out.stdout
    );
    // What has no 2.x form is said, not guessed.
    let archive = p.dag(
        "archive",
        "workingDir: /tmp\nsteps:\n  - name: pack\n    type: archive\n    config: {source: a, destination: a.zip}\n    command: ${OP}\n",
    );
    let out = p
        .wharf()
        .args(["--dialect", "2", "dry"])
        .args([&archive])
        .run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("names its operation through a variable, which a 2.x action cannot"),
        "{}",
        out.stderr
    );
}

// A container's `shell` (2.x): a step's command line runs through it as it is, in a step's
// own container and in the DAG-level one; without it, the line is the container's argv.
#[test]
fn a_containers_shell_runs_command_lines_in_2x() {
    images_are_built();
    let p = Place::new();
    let dag = p.dag(
        "shells",
        r#"params:
  - name: who
    default: you
steps:
  - id: own
    container:
      image: wharf-test/base:latest
      shell: [/bin/sh, -c]
    run: echo "own ${params.who}" && exit 3
    continue_on: {exit_code: [3]}
  - id: words
    depends: own
    container:
      image: wharf-test/base:latest
    run: echo a && b
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(p.logs("shells", "own"), "own you\n", "{}", out.stderr);
    assert_eq!(step(&p.status("shells"), "own")["exitCode"], 3);
    assert_eq!(p.logs("shells", "words"), "a && b\n");
    let shared = p.dag(
        "shared",
        "params:\n  - name: who\n    default: you\ncontainer:\n  image: wharf-test/base:latest\n  shell: sh\nsteps:\n  - id: one\n    run: echo \"shared ${params.who}\" | tr a-z A-Z\n",
    );
    let out = p.run(&shared, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("shared", "one"), "SHARED YOU\n");
}

// 2.x `dependencies`: the files a step names are copied into the run's work directory,
// where its steps run (`DAG_RUN_WORK_DIR`, `${paths.work_dir}`); what matches nothing
// fails the run before any step; unsafe paths are refused.
#[test]
fn file_dependencies_in_2x() {
    let p = Place::new();
    for (file, text) in [
        (
            "scripts/backup.sh",
            "echo backup with $(cat config/app.yaml)\n",
        ),
        ("scripts/sub/x.txt", "x\n"),
        ("config/app.yaml", "name: app\n"),
        ("config/other.yaml", "left out\n"),
    ] {
        std::fs::create_dir_all(p.path(file).parent().expect("folder")).expect("mkdir");
        std::fs::write(p.path(file), text).expect("write");
    }
    let dag = p.dag(
        "deps",
        r#"steps:
  - id: backup
    run: sh scripts/backup.sh; ls config scripts/sub; test "$(pwd)" = "${paths.work_dir}" && test "$PWD" = "$DAG_RUN_WORK_DIR" && echo in the work dir
    dependencies:
      - scripts/**
      - config/app.yaml
  - id: later
    depends: backup
    run: echo changed > config/app.yaml
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("deps", "backup"),
        "backup with name: app\nconfig:\napp.yaml\n\nscripts/sub:\nx.txt\nin the work dir\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("config/app.yaml")).expect("source"),
        "name: app\n",
        "the run works on its own copy"
    );
    let none = p.dag(
        "none",
        "steps:\n  - id: a\n    run: touch ran\n    dependencies: nothing/*.sh\n",
    );
    let out = p.run(&none, &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("the dependency `nothing/*.sh` matches nothing"),
        "{}",
        out.stderr
    );
    assert!(!p.path("ran").exists());
    for (dep, said) in [
        ("../x", "cannot be above the working directory"),
        ("/etc/passwd", "relative to the working directory"),
        ("\"${params.x}\"", "are literal: no references"),
        (".git/config", "cannot be in `.git`"),
    ] {
        p.assert_refused(
            &format!("steps:\n  - id: a\n    run: echo hi\n    dependencies: [{dep}]\n"),
            said,
        );
    }
}

// 2.x params as scalar fields: constraints (`minimum`, `maximum`, `min_length`,
// `max_length`, `pattern`, `one_of`) are checked before anything runs; `params` may also
// be the object schema itself.
#[test]
fn param_constraints_and_object_schemas_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "bounded",
        "params:\n  - name: replicas\n    type: integer\n    minimum: 1\n    maximum: 20\n    default: 2\n  - name: tag\n    type: string\n    pattern: ^v[0-9]+$\n    min_length: 2\n    default: v1\nsteps:\n  - id: show\n    run: echo ${params.replicas} ${params.tag}\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("bounded", "show"), "2 v1\n");
    for (given, said) in [("replicas=40", "replicas"), ("tag=latest", "tag")] {
        let out = p.run(&dag, &["--", given]);
        assert_eq!(
            out.code,
            Some(2),
            "refused before anything runs: {}",
            out.stderr
        );
        assert!(out.stderr.contains(said), "{given}: {}", out.stderr);
    }
    let schema = p.dag(
        "schema",
        "params:\n  type: object\n  properties:\n    environment:\n      type: string\n      enum: [staging, production]\n    notify:\n      type: boolean\n      default: true\n  required: [environment]\nsteps:\n  - id: show\n    run: echo ${params.environment} ${params.notify}\n",
    );
    let out = p.run(&schema, &["--", "environment=staging"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("schema", "show"), "staging true\n");
    let out = p.run(&schema, &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("environment"), "{}", out.stderr);
    p.assert_refused(
        "params:\n  - name: a\n    type: integer\n  - plain: 1\nsteps:\n  - id: s\n    run: echo hi\n",
        "`type` is checked only when every param is declared with `name`",
    );
}

// A `run` list: each item a command line, in order, the first that fails ending the step;
// a number is its text, a one-key mapping (YAML's reading of `- echo key: value`) is
// `key: value`, empty items are skipped; a list of only empty items is refused.
#[test]
fn run_lists_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "lists",
        "steps:\n  - id: a\n    run:\n      - echo one\n      - \"\"\n      - echo key: value\n      - exit 7\n      - echo never\n    continue_on: {exit_code: [7]}\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(p.logs("lists", "a"), "one\nkey: value\n", "{}", out.stderr);
    assert_eq!(step(&p.status("lists"), "a")["exitCode"], 7);
    p.assert_refused(
        "steps:\n  - id: a\n    run: [\"\", \"  \"]\n",
        "`run` has no command: every item is empty",
    );
}

// Dagu 2.x `router.route`: each target runs when its pattern matches (not first-match),
// a target routed away is skipped without stopping what follows it, a numeric route on a
// value that is not a number fails the router and runs no target.
#[test]
fn router_route_sends_the_run_down_matching_routes() {
    let p = Place::new();
    let dag = p.dag(
        "route",
        r#"params:
  - name: STATUS
    default: "503"
  - name: CONF
    default: "0.95"
  - name: LIMIT
    default: "0.9"
steps:
  - id: pick
    action: router.route
    with:
      value: ${params.STATUS}
      routes:
        "re:.*": [catch_all]
        "re:^5\\d\\d$": [server_error, page]
        "200": [ok]
  - id: ok
    run: echo ok
  - id: server_error
    run: echo 5xx
  - id: page
    run: echo paging
  - id: catch_all
    run: echo other
  - id: after_ok
    depends: [ok]
    run: echo after
  - id: score
    action: router.route
    with:
      value: ${params.CONF}
      routes:
        "num:>=${params.LIMIT}": [approve]
        "num:<${params.LIMIT}": [review]
  - id: approve
    run: echo approve
  - id: review
    run: echo review
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("route", "pick"),
        "Router evaluating: 503\n  200 -> [ok]\n  re:^5\\d\\d$ -> [server_error page]\n  re:.* -> [catch_all]\n"
    );
    let status = p.status("route");
    let of = |name: &str| {
        step(&status, name)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for (name, want) in [
        ("ok", "skipped"),
        ("server_error", "succeeded"),
        ("page", "succeeded"),
        ("catch_all", "succeeded"),
        ("after_ok", "succeeded"),
        ("approve", "succeeded"),
        ("review", "skipped"),
    ] {
        assert_eq!(of(name), want, "{name}: {status}");
    }
    assert_eq!(status["status"], "succeeded");

    let out = p.run(&dag, &["--", "STATUS=200", "CONF=high"]);
    assert_ne!(out.code, Some(0));
    let status = p.status("route");
    let of = |name: &str| {
        step(&status, name)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(of("ok"), "succeeded");
    assert_eq!(of("server_error"), "skipped");
    assert_eq!(of("catch_all"), "succeeded");
    assert_eq!(of("score"), "failed");
    assert!(
        step(&status, "score")["error"]
            .as_str()
            .is_some_and(|e| e.contains("`high` is not a number")),
        "{status}"
    );
    for name in ["approve", "review"] {
        assert!(
            !["succeeded", "running"].contains(&of(name).as_str()),
            "{name}: {status}"
        );
    }
    assert_eq!(status["status"], "failed");

    for (yaml, said) in [
        (
            "type: chain\nsteps:\n  - id: r\n    action: router.route\n    with: {value: x, routes: {a: [t]}}\n  - id: t\n    run: echo\n",
            "router steps require type 'graph'",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {value: x, routes: {a: [nope]}}\n",
            "references non-existent step `nope`",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {value: x, routes: {a: [t], b: [t]}}\n  - id: t\n    run: echo\n",
            "is targeted by multiple routes",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {value: x, routes: {'num:=1': [t]}}\n  - id: t\n    run: echo\n",
            "numeric comparison is invalid",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {value: x, routes: {'re:(': [t]}}\n  - id: t\n    run: echo\n",
            "regexp is invalid",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {routes: {a: [t]}}\n  - id: t\n    run: echo\n",
            "with.value is required",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {value: x}\n",
            "with.routes is required",
        ),
        (
            "steps:\n  - id: r\n    action: router.route\n    with: {value: x, routes: {a: []}}\n",
            "has no targets",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// Dagu 2.x `data.convert` and `data.pick`: data from `with.data` or a file, re-encoded
// (keys sorted: JSON by two spaces, YAML in blocks, CSV with a header) or a value picked
// with a jq path (a missing one is null, an impossible one an error).
#[test]
fn data_convert_and_pick_in_2x() {
    let p = Place::new();
    std::fs::write(p.path("people.csv"), "name,age\nalice,30\n\"bob, jr\",25\n").expect("csv");
    std::fs::write(
        p.path("config.json"),
        r#"{"database": {"host": "db.local", "port": 5432}, "tags": ["a", "b"]}"#,
    )
    .expect("json");
    let dag = p.dag(
        "data",
        r#"type: chain
steps:
  - id: to_yaml
    action: data.convert
    with: {from: json, to: yaml, data: '{"name": "alice", "age": 30}'}
  - id: csv_json
    action: data.convert
    with: {from: csv, to: json, input: ./people.csv}
  - id: headerless
    action: data.convert
    with: {from: csv, to: json, has_header: false, columns: [name, age], data: "alice,30\n"}
  - id: to_csv
    action: data.convert
    with: {from: json, to: csv, headers: false, columns: [name, age], data: '[{"name": "alice", "age": 30}, {"name": "bob", "age": 25}]'}
  - id: native
    action: data.convert
    with:
      from: yaml
      to: tsv
      data:
        - {k: "x y", v: 1}
        - {k: "z", v: true}
  - id: host
    action: data.pick
    with: {from: json, input: config.json, select: .database.host, raw: true}
    output: HOST
  - id: user
    action: data.pick
    with: {from: yaml, data: "user:\n  name: alice\n  age: 30\n", select: .user}
  - id: as_yaml
    action: data.pick
    with: {from: json, input: config.json, select: ., to: yaml}
  - id: missing
    action: data.pick
    with: {from: json, data: '{"a": 1}', select: .b.c}
  - id: use
    run: echo "host=${HOST}"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for (step, want) in [
        ("to_yaml", "age: 30\nname: alice\n"),
        (
            "csv_json",
            "[\n  {\n    \"age\": \"30\",\n    \"name\": \"alice\"\n  },\n  {\n    \"age\": \"25\",\n    \"name\": \"bob, jr\"\n  }\n]\n",
        ),
        (
            "headerless",
            "[\n  {\n    \"age\": \"30\",\n    \"name\": \"alice\"\n  }\n]\n",
        ),
        ("to_csv", "alice,30\nbob,25\n"),
        ("native", "k\tv\nx y\t1\nz\ttrue\n"),
        ("host", "db.local\n"),
        ("user", "{\n  \"age\": 30,\n  \"name\": \"alice\"\n}\n"),
        (
            "as_yaml",
            "database:\n  host: db.local\n  port: 5432\ntags:\n  - a\n  - b\n",
        ),
        ("missing", "null\n"),
        ("use", "host=db.local\n"),
    ] {
        assert_eq!(p.logs("data", step), want, "{step}");
    }

    let bad = p.dag(
        "baddata",
        r#"type: graph
steps:
  - id: notjson
    action: data.convert
    with: {from: json, to: yaml, data: '{"a": '}
  - id: syntax
    action: data.pick
    with: {from: json, data: '{"a": 1}', select: '.a['}
  - id: shape
    action: data.pick
    with: {from: json, data: '{"a": 1}', select: '.a[0]'}
"#,
    );
    assert_ne!(p.run(&bad, &[]).code, Some(0));
    let status = p.status("baddata");
    let error = |s: &str| step_error(&status, s);
    assert!(
        error("notjson").contains("failed to decode JSON"),
        "{status}"
    );
    assert!(
        error("syntax").contains("failed to resolve select path"),
        "{status}"
    );
    assert!(
        error("shape").contains("failed to resolve select path"),
        "{status}"
    );
    assert!(
        error("shape").contains("cannot index number with number"),
        "{status}"
    );

    for (with, said) in [
        ("{to: json, data: x}", "needs `with.from`"),
        (
            "{from: xml, to: json, data: x}",
            "must be one of: json, yaml, csv, tsv, text",
        ),
        ("{from: json, to: yaml, data: x, input: y}", "not both"),
        ("{from: json, to: yaml}", "needs `with.data`"),
        ("{from: json, data: x}", "needs `with.to`"),
        (
            "{from: csv, to: json, data: x, delimiter: ab}",
            "delimiter must be a single character",
        ),
    ] {
        p.assert_refused(
            &format!("steps:\n  - action: data.convert\n    with: {with}\n"),
            said,
        );
    }
    for (with, said) in [
        ("{from: json, data: x}", "with.select is required"),
        (
            "{from: json, data: x, select: ., raw: true, to: yaml}",
            "raw and to are mutually exclusive",
        ),
    ] {
        p.assert_refused(
            &format!("steps:\n  - action: data.pick\n    with: {with}\n"),
            said,
        );
    }
}

// Dagu 2.x `template.render`: a Go template over `with.data` (its text never expanded by
// wharf), to stdout or a file; a missing key, bad syntax or a removed function fail it.
#[test]
fn template_render_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "tmpl",
        r#"type: chain
env:
  - MESSAGE_TEMPLATE: "Deploy {{ .version }} complete"
  - REGION: eu-west
steps:
  - id: config
    action: template.render
    with:
      template: |
        name: {{ .service }}
        replicas: {{ .replicas }}
        region: {{ .region | upper }}
        {{- range $i, $h := .hosts }}
        host{{ $i }}: {{ $h }}
        {{- end }}
        keep: ${env.REGION}
      data:
        service: checkout
        replicas: 3
        region: ${REGION}
        hosts: [a.local, b.local]
      output: ./build/config.yaml
  - id: message
    action: template.render
    with:
      template_ref: "${env.MESSAGE_TEMPLATE}"
      data:
        version: "1.4.0"
    output: MESSAGE
  - id: use
    run: echo "$MESSAGE"
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("build/config.yaml")).expect("rendered"),
        "name: checkout\nreplicas: 3\nregion: EU-WEST\nhost0: a.local\nhost1: b.local\nkeep: ${env.REGION}\n"
    );
    assert_eq!(p.logs("tmpl", "config"), "", "the output went to the file");
    assert_eq!(p.logs("tmpl", "message"), "Deploy 1.4.0 complete");
    assert_eq!(p.logs("tmpl", "use"), "Deploy 1.4.0 complete\n");

    let bad = p.dag(
        "badtmpl",
        r#"type: graph
steps:
  - id: missing
    action: template.render
    with: {template: "{{ .nope }}", data: {a: 1}}
  - id: syntax
    action: template.render
    with: {template: "{{ if .a }}open"}
  - id: hermetic
    action: template.render
    with: {template: "{{ env \"HOME\" }}"}
"#,
    );
    assert_ne!(p.run(&bad, &[]).code, Some(0));
    let status = p.status("badtmpl");
    let error = |s: &str| step_error(&status, s);
    assert!(
        error("missing").contains("map has no entry for key"),
        "{status}"
    );
    assert!(
        error("syntax").contains("template: parse error"),
        "{status}"
    );
    assert!(
        error("hermetic").contains("function \"env\" not defined"),
        "{status}"
    );

    for (with, said) in [
        (
            "{data: {a: 1}}",
            "requires exactly one of with.template or with.template_ref",
        ),
        (
            "{template: x, template_ref: \"${env.X}\"}",
            "requires exactly one of with.template or with.template_ref",
        ),
        (
            "{template_ref: \"pre ${env.X} post\"}",
            "must be one complete scoped value reference",
        ),
    ] {
        p.assert_refused(
            &format!("steps:\n  - action: template.render\n    with: {with}\n"),
            said,
        );
    }
}

// Dagu 2.x `git.checkout`: clone when the path holds no repository, else fetch and check
// out; a branch, tag or commit (the default branch, fetched anew, when none); local
// changes kept unless `force`.
#[test]
fn git_checkout_in_2x() {
    let p = Place::new();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let up = p.path("up");
    std::fs::create_dir_all(&up).expect("up");
    git(&up, &["init", "-q", "-b", "main"]);
    std::fs::write(up.join("f.txt"), "one\n").expect("f");
    git(&up, &["add", "."]);
    git(&up, &["commit", "-qm", "one"]);
    git(&up, &["tag", "v1"]);
    let first = git(&up, &["rev-parse", "HEAD"]);
    git(&up, &["checkout", "-qb", "feature"]);
    std::fs::write(up.join("f.txt"), "feature\n").expect("f");
    git(&up, &["commit", "-qam", "feature"]);
    git(&up, &["checkout", "-q", "main"]);

    let dag = |name: &str, with: &str| {
        p.dag(
            name,
            &format!("steps:\n  - id: co\n    action: git.checkout\n    with: {{repository: ./up, path: ./src, {with}}}\n"),
        )
    };
    let report = |name: &str| -> serde_json::Value {
        serde_json::from_str(p.logs(name, "co").trim()).expect("report")
    };
    let file = || std::fs::read_to_string(p.path("src/f.txt")).expect("f.txt");
    assert_eq!(p.run(&dag("clone", "depth: 0"), &[]).code, Some(0));
    let r = report("clone");
    assert_eq!(
        (
            r["cloned"].as_bool(),
            r["changed"].as_bool(),
            r["ref"].as_str()
        ),
        (Some(true), Some(true), Some("main"))
    );
    assert_eq!(r["commit"], first);
    // A new upstream commit is picked up by a run with no ref.
    std::fs::write(up.join("f.txt"), "two\n").expect("f");
    git(&up, &["commit", "-qam", "two"]);
    assert_eq!(p.run(&dag("update", "force: false"), &[]).code, Some(0));
    assert_eq!(
        (
            report("update")["cloned"].as_bool(),
            report("update")["changed"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(file(), "two\n");
    assert_eq!(p.run(&dag("same", "force: false"), &[]).code, Some(0));
    assert_eq!(report("same")["changed"], false);
    for (name, with, want) in [
        ("branch", "ref: feature", "feature\n"),
        ("tag", "ref: v1", "one\n"),
        ("commit", &format!("ref: {first}") as &str, "one\n"),
    ] {
        assert_eq!(p.run(&dag(name, with), &[]).code, Some(0), "{name}");
        assert_eq!(file(), want, "{name}");
    }
    // Local changes: kept (the step fails) unless `force`.
    std::fs::write(p.path("src/f.txt"), "mine\n").expect("edit");
    assert_ne!(p.run(&dag("dirty", "ref: main"), &[]).code, Some(0));
    let why = p.status("dirty")["steps"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("unstaged changes"), "{why}");
    assert_eq!(file(), "mine\n");
    assert_eq!(
        p.run(&dag("forced", "ref: main, force: true"), &[]).code,
        Some(0)
    );
    assert_eq!(file(), "two\n");

    std::fs::write(p.path("plain"), "x").expect("file");
    std::fs::create_dir_all(p.path("full")).expect("dir");
    std::fs::write(p.path("full/x"), "x").expect("file");
    for (name, with, said) in [
        (
            "notdir",
            "repository: ./up, path: ./plain",
            "not a directory",
        ),
        (
            "notrepo",
            "repository: ./up, path: ./full",
            "target directory is not a git repository and is not empty",
        ),
        (
            "noref",
            "repository: ./up, path: ./src, ref: nope",
            "not found",
        ),
        (
            "norepo",
            "repository: ./missing, path: ./other",
            "clone failed",
        ),
    ] {
        let f = p.dag(
            name,
            &format!("steps:\n  - id: co\n    action: git.checkout\n    with: {{{with}}}\n"),
        );
        assert_ne!(p.run(&f, &[]).code, Some(0), "{name}");
        let why = p.status(name)["steps"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(why.contains(said), "{name}: {why}");
    }
    // A token goes to git as a header through its environment: never in a message.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let f = p.dag(
        "token",
        &format!("steps:\n  - id: co\n    action: git.checkout\n    with: {{repository: \"http://127.0.0.1:{port}/x.git\", path: ./t, token: s3cr3t-tok}}\n"),
    );
    let out = p.run(&f, &[]);
    assert_ne!(out.code, Some(0));
    let status = p.status("token");
    let why = status["steps"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("clone failed"), "{why}");
    assert!(!format!("{}{}{status}", out.stdout, out.stderr).contains("s3cr3t-tok"));
    for (with, said) in [
        ("{path: x}", "repository is required"),
        ("{repository: x}", "path is required"),
        (
            "{repository: x, path: y, ssh_key_path: k, token: t}",
            "ssh_key_path cannot be combined with token or password",
        ),
        (
            "{repository: x, path: y, token: t, username: u}",
            "token cannot be combined with username/password",
        ),
        ("{repository: x, path: y, branch: b}", "invalid keys"),
    ] {
        p.assert_refused(
            &format!("steps:\n  - action: git.checkout\n    with: {with}\n"),
            said,
        );
    }
}

/// Debian's redis-server on a loopback port of the test's, without persistence.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
            ])
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child, port }
    }

    /// `redis-cli`'s answer, as the server's own tool reads the data.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Dagu 2.x `redis.<command>`: commands from the action's name and `with`, a DAG-level
// `redis:` under a step's own settings, pipelines, scripts, locks and output formats,
// against a real redis-server.
#[test]
fn redis_actions_in_2x() {
    let redis = Redis::start();
    let p = Place::new();
    let dag = p.dag(
        "cache",
        &format!(
            r#"type: chain
redis:
  url: redis://127.0.0.1:1
steps:
  - id: set
    action: redis.set
    with: {{url: "redis://127.0.0.1:{port}/2", key: greet, value: hello redis, ttl: 600}}
  - id: get
    action: redis.get
    with: {{host: 127.0.0.1, port: {port}, db: 2, key: greet}}
  - id: missing
    action: redis.get
    with: {{url: "redis://127.0.0.1:{port}", key: nope}}
  - id: hset
    action: redis.hset
    with: {{url: "redis://127.0.0.1:{port}", key: h, field: name, value: Alice}}
  - id: hmget
    action: redis.hmget
    with: {{url: "redis://127.0.0.1:{port}", key: h, keys: [name, other], output_format: raw, null_value: N/A}}
  - id: push
    action: redis.rpush
    with: {{url: "redis://127.0.0.1:{port}", key: l, values: [a, b, c]}}
  - id: csv
    action: redis.lrange
    with: {{url: "redis://127.0.0.1:{port}", key: l, start: 0, stop: -1, output_format: csv}}
  - id: jsonl
    action: redis.lrange
    with: {{url: "redis://127.0.0.1:{port}", key: l, start: 0, stop: -1, output_format: jsonl}}
  - id: pipe
    action: redis.get
    with:
      url: "redis://127.0.0.1:{port}"
      key: unused
      pipeline:
        - {{command: SET, key: p1, value: v1}}
        - {{command: GET, key: p1}}
        - {{command: GET, key: nothing}}
  - id: script
    action: redis.get
    with: {{url: "redis://127.0.0.1:{port}", key: unused, script: "return redis.call('SET', KEYS[1], ARGV[1])", script_keys: [sk], script_args: [scripted]}}
  - id: locked
    action: redis.incr
    with: {{url: "redis://127.0.0.1:{port}", key: counter, lock: mylock}}
"#,
            port = redis.port
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for (step, want) in [
        ("set", "\"OK\"\n"),
        ("get", "\"hello redis\"\n"),
        ("missing", ""),
        ("hmget", "Alice\nN/A\n"),
        ("csv", "a,b,c\n"),
        ("jsonl", "\"a\"\n\"b\"\n\"c\"\n"),
        ("pipe", "[\n  \"OK\",\n  \"v1\",\n  \"\"\n]\n"),
        ("script", "\"OK\"\n"),
        ("locked", "1\n"),
    ] {
        assert_eq!(p.logs("cache", step), want, "{step}");
    }
    assert_eq!(redis.cli(&["-n", "2", "get", "greet"]), "hello redis");
    let ttl: i64 = redis
        .cli(&["-n", "2", "ttl", "greet"])
        .parse()
        .expect("ttl");
    assert!((1..=600).contains(&ttl), "{ttl}");
    assert_eq!(redis.cli(&["get", "sk"]), "scripted");
    assert_eq!(
        redis.cli(&["exists", "dagu:lock:mylock"]),
        "0",
        "the lock is released"
    );

    // A held lock, a failing pipeline command, and settings checked when the step runs.
    redis.cli(&["set", "dagu:lock:busy", "someone-else", "EX", "60"]);
    let bad = p.dag(
        "badcache",
        &format!(
            r#"type: graph
redis:
  url: "redis://127.0.0.1:{port}"
steps:
  - id: held
    action: redis.incr
    with: {{key: c, lock: busy, lock_retry: 2, lock_wait: 10ms}}
  - id: pipefail
    action: redis.get
    with:
      key: unused
      pipeline:
        - {{command: SET, key: s, value: x}}
        - {{command: LPUSH, key: s, value: y}}
  - id: sentinel
    action: redis.get
    with: {{key: k, mode: sentinel}}
  - id: cluster
    action: redis.get
    with: {{key: k, mode: cluster}}
  - id: halftls
    action: redis.get
    with: {{key: k, tls_cert: c.pem}}
"#,
            port = redis.port
        ),
    );
    assert_ne!(p.run(&bad, &[]).code, Some(0));
    let status = p.status("badcache");
    let error = |s: &str| step_error(&status, s);
    assert!(
        error("held").contains("lock is held by another process"),
        "{status}"
    );
    assert!(
        error("pipefail").contains("pipeline execution failed"),
        "{status}"
    );
    assert!(
        error("sentinel").contains("sentinel_master is required for sentinel mode"),
        "{status}"
    );
    assert!(
        error("cluster").contains("cluster_addrs is required for cluster mode"),
        "{status}"
    );
    assert!(
        error("halftls").contains("both tls_cert and tls_key must be provided together"),
        "{status}"
    );
    assert_eq!(redis.cli(&["get", "s"]), "x");

    for (action, with, said) in [
        (
            "get",
            "{key: k, command: SET}",
            "command must be \"GET\" for this action",
        ),
        ("get", "{key: k, mode: swarm}", "enum"),
        ("get", "{key: k, port: 70000}", "maximum"),
        ("get", "{key: k, db: 16}", "maximum"),
        ("get", "{key: k, output_format: xml}", "enum"),
    ] {
        p.assert_refused(
            &format!("steps:\n  - action: redis.{action}\n    with: {with}\n"),
            said,
        );
    }
}

/// Polls `wharf status` of a run until it has `status` (20 s at most).
fn until_status(p: &Place, dag: &str, run_id: &str, status: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = p
            .wharf()
            .args(["status", dag, "--run-id", run_id, "--json"])
            .run();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout)
            && v["status"] == status
        {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {run_id} of {dag} is not {status}: {}",
            out.stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// `action: human.task` (Dagu 2.x): the run stops `waiting` at it without running
// anything; `wharf status` shows the task's resolved prompt and its form; `wharf
// human-task complete` checks and coerces the answer, records it once, and takes the run
// up again, the form's fields the step's outputs; the run's own form is used even when the
// file changes; a child DAG with a task is refused before it starts.
#[test]
fn human_tasks_wait_for_a_person_and_go_on_with_their_answer() {
    let p = Place::new();
    let form = r#"env:
  - TARGET: api
steps:
  - id: release_review
    action: human.task
    with:
      prompt: Choose the release target for ${TARGET}
      form:
        type: object
        properties:
          environment:
            type: string
            enum: [staging, production]
          replicas:
            type: integer
            minimum: 1
            default: 2
          notify:
            type: boolean
            default: true
        required: [environment]
  - id: record_release
    depends: release_review
    env:
      TARGET: ${steps.release_review.outputs.environment}
      REPLICAS: ${steps.release_review.outputs.replicas}
      NOTIFY: ${steps.release_review.outputs.notify}
    run: printf '%s,%s,%s\n' "$TARGET" "$REPLICAS" "$NOTIFY" > release.txt
"#;
    let dag = p.dag("typed", form);
    let out = p.wharf().args(["validate"]).args([&dag]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("declares no output"), "{}", out.stderr);
    let out = p.wharf().args(["dry"]).args([&dag]).run();
    assert!(
        out.stdout.contains(
            "release_review  waits for a person: Choose the release target for ${TARGET} (form: environment, replicas, notify)"
        ),
        "{}",
        out.stdout
    );
    // Reaching the task, the run exits 0: it waits, it did not fail.
    let out = p.run(&dag, &["--run-id", "form1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let shown = p
        .wharf()
        .args(["status", "typed", "--run-id", "form1"])
        .run();
    assert_eq!(shown.code, Some(0), "{}", shown.stderr);
    assert!(shown.stderr.is_empty(), "{}", shown.stderr);
    assert!(
        shown.stdout.contains("Waiting: human task release_review")
            && shown
                .stdout
                .contains("prompt: Choose the release target for api")
            && shown.stdout.contains(r#""additionalProperties":false"#),
        "{}",
        shown.stdout
    );
    let status = until_status(&p, "typed", "form1", "waiting");
    assert_eq!(
        status["humanTasks"][0]["step"], "release_review",
        "{status}"
    );
    assert_eq!(
        status["humanTasks"][0]["form"]["properties"]["replicas"],
        serde_json::json!({"type": "integer", "minimum": 1, "default": 2}),
        "{status}"
    );
    assert_eq!(step(&status, "record_release")["status"], "not_started");

    // The file changes under the waiting run: its own form still counts.
    p.dag("typed", &form.replace("[environment]", "[region]"));
    let complete = |args: &[&str]| {
        p.wharf()
            .args(["human-task", "complete", "--run-id", "form1", "--step"])
            .args(args)
            .args(["typed"])
            .run()
    };
    for (args, said) in [
        (vec!["release_review"], "`environment` is required"),
        (
            vec!["release_review", "--input", "environment=dev"],
            "`environment` must be one of",
        ),
        (
            vec![
                "release_review",
                "--input",
                "environment=staging",
                "--input",
                "replicas=0",
            ],
            "`replicas` must be at least 1",
        ),
        (
            vec![
                "release_review",
                "--inputs-json",
                r#"{"environment": "staging", "replicas": "3"}"#,
            ],
            "`replicas` must be an integer",
        ),
        (
            vec![
                "release_review",
                "--inputs-json",
                r#"{"environment": "a", "environment": "b"}"#,
            ],
            "`environment` is a duplicate",
        ),
        (
            vec!["release_review", "--input", "environment"],
            "key=value",
        ),
        (
            vec!["release_review", "--input", "region=eu"],
            "declares no field `region`",
        ),
        (vec!["record_release"], "no human task `record_release`"),
    ] {
        let out = complete(&args);
        assert_ne!(out.code, Some(0), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("Usage"), "{}", out.stderr);
    }
    assert!(!p.path("release.txt").exists(), "nothing ran yet");
    let out = complete(&["release_review", "--input", "environment=production"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Completed human task release_review; DAG-run resume requested.\n"
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let status = until_status(&p, "typed", "form1", "succeeded");
    assert_eq!(step(&status, "release_review")["status"], "succeeded");
    assert_eq!(
        std::fs::read_to_string(p.path("release.txt")).expect("the step after it ran"),
        "production,2,true\n"
    );
    // The same answer again (its fields in another order) is a repeat; another is not.
    let out = complete(&[
        "release_review",
        "--inputs-json",
        r#"{"notify": true, "replicas": 2, "environment": "production"}"#,
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Human task release_review was already completed.\n"
    );
    let out = complete(&["release_review", "--input", "environment=staging"]);
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("different input"), "{}", out.stderr);

    // Two tasks: the first completed leaves the run waiting; the second takes it up, once.
    let two = p.dag(
        "two",
        "steps:\n  - id: review_a\n    action: human.task\n    with:\n      prompt: Confirm A\n  - id: review_b\n    action: human.task\n    with:\n      prompt: Confirm B\n  - id: deploy\n    depends: [review_a, review_b]\n    run: printf 'deployed\\n' >> deployed.txt\n",
    );
    let out = p.run(&two, &["--run-id", "two1"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = until_status(&p, "two", "two1", "waiting");
    assert_eq!(
        status["humanTasks"].as_array().map(Vec::len),
        Some(2),
        "{status}"
    );
    let done = |step: &str, extra: &[&str]| {
        p.wharf()
            .args(["human-task", "complete", "-r", "two1", "--step", step])
            .args(extra)
            .args([&two])
            .run()
    };
    let out = done("review_a", &["--input", "note=x"]);
    assert!(
        out.stderr.contains("does not accept input"),
        "{}",
        out.stderr
    );
    let out = done("review_a", &[]);
    assert_eq!(
        out.stdout, "Completed human task review_a; DAG-run remains waiting.\n",
        "{}",
        out.stderr
    );
    assert!(!p.path("deployed.txt").exists());
    let out = done("review_b", &[]);
    assert_eq!(
        out.stdout, "Completed human task review_b; DAG-run resume requested.\n",
        "{}",
        out.stderr
    );
    until_status(&p, "two", "two1", "succeeded");
    let out = done("review_b", &[]);
    assert_eq!(out.stdout, "Human task review_b was already completed.\n");
    assert_eq!(
        std::fs::read_to_string(p.path("deployed.txt")).expect("deployed"),
        "deployed\n"
    );

    // A child DAG with a task fails its caller's step before the child starts.
    let parent = p.dag(
        "parent",
        "steps:\n  - id: run_child\n    action: dag.run\n    with:\n      dag: child\n---\nname: child\nsteps:\n  - id: review\n    action: human.task\n    with:\n      prompt: Review child work\n",
    );
    let out = p.wharf().args(["validate"]).args([&parent]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = p.run(&parent, &[]);
    assert_ne!(out.code, Some(0));
    let status = p.status("parent");
    assert!(
        step_error(&status, "run_child").contains("human tasks are not permitted in child DAGs"),
        "{status}"
    );
    assert_eq!(
        status["steps"][0]["subRuns"],
        serde_json::Value::Null,
        "{status}"
    );

    // What a task cannot be.
    for (yaml, said) in [
        (
            "steps:\n  - name: t\n    action: human.task\n    with: {prompt: x}\n",
            "needs an `id`",
        ),
        (
            "steps:\n  - id: t\n    action: human.task\n    with: {prompt: '  '}\n",
            "`with.prompt` is text",
        ),
        (
            "steps:\n  - id: t\n    action: human.task\n    timeout_sec: 5\n    with: {prompt: x}\n",
            "has no `timeout_sec`",
        ),
        (
            "steps:\n  - id: t\n    action: human.task\n    with: {prompt: x, form: null}\n",
            "`with.form` is empty",
        ),
        (
            "steps:\n  - id: t\n    action: human.task\n    with:\n      prompt: x\n      form: {type: object, properties: {n: {type: integer, minLength: 2}}}\n",
            "`with.form.properties.n.minLength` is for string fields",
        ),
        (
            "steps:\n  - id: t\n    action: human.task\n    with:\n      prompt: x\n      form: {type: object, properties: {n: {type: integer, default: x}}}\n",
            "`with.form.properties.n.default` must be an integer",
        ),
        (
            "steps:\n  - id: each\n    foreach:\n      items: [1]\n      steps:\n        - id: t\n          action: human.task\n          with: {prompt: x}\n",
            "`foreach.steps` cannot hold a `human.task`",
        ),
        (
            "handler_on:\n  failure:\n    id: h\n    action: human.task\n    with: {prompt: x}\nsteps:\n  - id: a\n    run: 'true'\n",
            "a handler cannot be a `human.task`",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
    // A DAG's `defaults` of what only a process has do not reach a task.
    let out = p
        .wharf()
        .args(["validate"])
        .args([p.dag(
            "defaults",
            "defaults:\n  retry_policy: {limit: 2, interval_sec: 1}\n  timeout_sec: 60\nsteps:\n  - id: t\n    action: human.task\n    with: {prompt: x}\n",
        )])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

// An installation's base.yaml in one dialect under DAGs in the other (a Dagu 1.30
// base.yaml kept while DAGs are written for 2.x, or the other way): the base is read in its
// own dialect and spelled in the DAG's, so neither is refused as mixing them.
#[test]
fn a_base_configuration_in_the_other_dialect_is_read_in_its_own() {
    let p = Place::new();
    let home = p.path("dagu");
    std::fs::create_dir_all(home.join("dags")).expect("dagu home");
    let base = home.join("base.yaml");
    let wharf = || p.wharf().env("DAGU_HOME", &home.to_string_lossy());
    // A 1.x base under a 2.x DAG.
    std::fs::write(
        &base,
        "histRetentionDays: 3\nenv:\n  - FROM_BASE: one\nhandlerOn:\n  failure:\n    command: echo \"base handler $FROM_BASE\" >> trail\n    continueOn: {failure: true}\n",
    )
    .expect("base");
    let two = p.dag(
        "two",
        "working_dir: .\nsteps:\n  - id: fail\n    run: echo \"${FROM_BASE}\" > seen; exit 1\n",
    );
    let out = wharf().args(["validate"]).args([&two]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = wharf().args(["run"]).args([&two]).run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("mixes"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("seen")).expect("ran"),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("trail")).expect("the base's handler ran"),
        "base handler one\n"
    );
    // A 2.x base under a 1.x DAG.
    std::fs::write(
        &base,
        "hist_retention_days: 3\nenv:\n  - FROM_BASE: two\nhandler_on:\n  failure:\n    command: echo \"base handler $FROM_BASE\" >> trail\n    continue_on: {failure: true}\n",
    )
    .expect("base");
    let one = p.dag(
        "one",
        "workingDir: .\nsteps:\n  - name: fail\n    command: echo \"${FROM_BASE}\" > seen; exit 1\n    retryPolicy: {limit: 0}\n",
    );
    let out = wharf().args(["run"]).args([&one]).run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(!out.stderr.contains("mixes"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("seen")).expect("ran"),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("trail")).expect("the base's handler ran"),
        "base handler one\nbase handler two\n"
    );
}

/// An S3-compatible server (moto's, from PyPI) on a loopback port, checking every
/// request's signature against the one key it made.
struct S3Server {
    child: std::process::Child,
    port: u16,
    key_id: String,
    secret: String,
}

impl S3Server {
    fn start() -> Self {
        use std::io::BufRead as _;
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/s3_server.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with moto (scripts/test installs it from PyPI)");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("READY "))
            .expect("the S3 server did not start");
        let words: Vec<&str> = ready.split_whitespace().collect();
        // Its further output is read (and dropped) so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            port: words[1].parse().expect("port"),
            key_id: words[2].to_owned(),
            secret: words[3].to_owned(),
            child,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// `s3.upload`, `s3.download`, `s3.list` and `s3.delete` (Dagu 2.x) against an
// S3-compatible server that checks each request's Signature Version 4: the DAG's `s3:`
// under each step's `with`, credentials from the step's environment, a listing with and
// without `recursive`, a delete by prefix; wrong credentials, a missing key and a missing
// file fail the step saying so.
#[test]
fn s3_actions_move_objects_through_a_real_s3_compatible_server() {
    let s3 = S3Server::start();
    let p = Place::new();
    std::fs::create_dir_all(p.path("dist")).expect("dist");
    std::fs::write(p.path("dist/app.json"), "{\"v\": 1}\n").expect("file");
    std::fs::write(p.path("dist/notes.txt"), "two\n").expect("file");
    let dag = p.dag(
        "s3",
        &format!(
            r#"env:
  - AWS_ACCESS_KEY_ID: {key}
  - AWS_SECRET_ACCESS_KEY: {secret}
s3:
  bucket: wharf-test
  endpoint: http://127.0.0.1:{port}
  region: us-east-1
  force_path_style: true
type: chain
steps:
  - id: up
    action: s3.upload
    with:
      source: dist/app.json
      key: releases/v1/app.json
      metadata: {{build: "42"}}
      tags: {{team: data}}
      storage_class: STANDARD
  - id: up2
    action: s3.upload
    with:
      source: dist/notes.txt
      key: releases/v1/docs/notes.txt
  - id: odd
    action: s3.upload
    with:
      source: dist/notes.txt
      key: "releases/v1/odd names/é+1 (copy).txt"
  - id: oddback
    action: s3.download
    with:
      key: "releases/v1/odd names/é+1 (copy).txt"
      destination: fetched/odd.txt
  - id: all
    action: s3.list
    with:
      prefix: releases/
      recursive: true
  - id: top
    action: s3.list
    with:
      prefix: releases/v1/
      output_format: jsonl
  - id: down
    action: s3.download
    with:
      key: releases/v1/app.json
      destination: fetched/deep/app.json
  - id: clean
    action: s3.delete
    with:
      prefix: releases/
  - id: after
    action: s3.list
"#,
            key = s3.key_id,
            secret = s3.secret,
            port = s3.port
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let up: serde_json::Value = serde_json::from_str(&p.logs("s3", "up")).expect("json");
    assert_eq!(up["key"], "releases/v1/app.json");
    assert_eq!(up["size"], 9);
    assert_eq!(up["content_type"], "application/json");
    let all: serde_json::Value = serde_json::from_str(&p.logs("s3", "all")).expect("json");
    let keys: Vec<&str> = all["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "releases/v1/app.json",
            "releases/v1/docs/notes.txt",
            "releases/v1/odd names/é+1 (copy).txt"
        ],
        "{all}"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("fetched/odd.txt")).expect("downloaded"),
        "two\n"
    );
    assert_eq!(all["objects"][0]["size"], 9);
    // Not recursive: the object at this level, and each folder below as one prefix.
    let top: Vec<serde_json::Value> = p
        .logs("s3", "top")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a json line"))
        .collect();
    assert_eq!(top.len(), 3, "{top:?}");
    assert_eq!(
        top[2],
        serde_json::json!({"key": "releases/v1/odd names/", "prefix": true})
    );
    assert_eq!(top[0]["key"], "releases/v1/app.json");
    assert_eq!(
        top[1],
        serde_json::json!({"key": "releases/v1/docs/", "prefix": true})
    );
    assert_eq!(
        std::fs::read_to_string(p.path("fetched/deep/app.json")).expect("downloaded"),
        "{\"v\": 1}\n"
    );
    let clean: serde_json::Value = serde_json::from_str(&p.logs("s3", "clean")).expect("json");
    assert_eq!(clean["count"], 3, "{clean}");
    let after: serde_json::Value = serde_json::from_str(&p.logs("s3", "after")).expect("json");
    assert_eq!(after["count"], 0, "{after}");

    // What goes wrong is told: a wrong secret (the server checks the signature), a key
    // that is not there, a file that is not there, no bucket.
    let failing = |name: &str, with: &str, said: &str| {
        let dag = p.dag(
            name,
            &format!(
                "s3:\n  endpoint: http://127.0.0.1:{port}\n  access_key_id: {key}\n  secret_access_key: {secret}\nsteps:\n  - id: s\n    {with}\n",
                port = s3.port,
                key = s3.key_id,
                secret = s3.secret,
            ),
        );
        let out = p.run(&dag, &[]);
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        let error = step_error(&p.status(name), "s");
        assert!(error.contains(said), "{name}: {error}");
    };
    failing("nobucket", "action: s3.list", "bucket is required");
    failing(
        "missing",
        "action: s3.download\n    with: {bucket: wharf-test, key: nope.txt, destination: nope.txt}",
        "s3: download failed: NoSuchKey",
    );
    failing(
        "nofile",
        "action: s3.upload\n    with: {bucket: wharf-test, key: k, source: absent.bin}",
        "s3: source not found",
    );
    failing(
        "badkey",
        "action: s3.list\n    with: {bucket: wharf-test, secret_access_key: wrong}",
        "SignatureDoesNotMatch",
    );
    assert!(!p.path("nope.txt").exists());

    for (with, said) in [
        ("{bucket: b, part_size: 10}", "remove `part_size`"),
        ("{bucket: b, sse: DES}", "`sse` (enum)"),
        ("{bucket: b, colour: red}", "colour"),
    ] {
        p.assert_refused(
            &format!("steps:\n  - id: s\n    action: s3.upload\n    with: {with}\n"),
            said,
        );
    }
    p.assert_refused(
        "steps:\n  - id: s\n    action: s3.list\n    with: {bucket: b, output_format: xml}\n",
        "`output_format` (enum)",
    );
    p.assert_refused(
        "steps:\n  - id: s\n    action: s3.download\n    with: {bucket: b, prefix: x}\n",
        "`s3.download` takes no `prefix`",
    );
}

// `git.worktree.add` and `git.worktree.remove` (Dagu 2.x) on a real repository: a
// generated branch and its default path, an explicit branch from a tag, an add that finds
// its worktree there already, the outputs used by later steps; a dirty worktree, an
// unmerged branch and an occupied path refused before anything changes; a remove of
// nothing is no error.
#[test]
fn git_worktrees_are_added_and_removed_in_the_steps_repository() {
    let p = Place::new();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(p.path("repo"))
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git (scripts/test installs it)");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    std::fs::create_dir_all(p.path("repo")).expect("repo");
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "one"]);
    git(&["tag", "v1.0.0"]);
    let tagged = git(&["rev-parse", "HEAD"]);
    git(&["commit", "-q", "--allow-empty", "-m", "two"]);
    let dag = p.dag(
        "trees",
        r#"working_dir: ./repo
type: chain
steps:
  - id: gen
    action: git.worktree.add
  - id: hotfix
    action: git.worktree.add
    with: {branch: hotfix, create_branch: true, base: v1.0.0, path: ../wt/hotfix}
  - id: again
    action: git.worktree.add
    with: {branch: hotfix, create_branch: true, path: ../wt/hotfix}
  - id: use
    working_dir: ${steps.gen.outputs.path}
    run: echo "$(pwd) ${steps.gen.outputs.branch} ${steps.again.outputs.worktree_created} ${steps.hotfix.outputs.commit}"
  - id: dirty
    run: git -C ../wt/hotfix -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m fix && touch ../wt/hotfix/untracked
  - id: refused
    action: git.worktree.remove
    with: {branch: hotfix}
    continue_on: {failure: true}
  - id: unmerged
    action: git.worktree.remove
    with: {branch: hotfix, force: true, delete_branch: true}
    continue_on: {failure: true}
  - id: gone
    action: git.worktree.remove
    with: {branch: hotfix, force: true, delete_branch: true, force_delete_branch: true}
  - id: nothing
    action: git.worktree.remove
    with: {branch: never-made}
  - id: occupy
    run: mkdir -p ../wt/taken && touch ../wt/taken/file
  - id: taken
    action: git.worktree.add
    with: {branch: taken, create_branch: true, path: ../wt/taken}
    continue_on: {failure: true}
"#,
    );
    let out = p.run(&dag, &[]);
    let status = p.status("trees");
    assert_eq!(
        status["status"], "partially_succeeded",
        "{}\n{status}",
        out.stderr
    );
    let made: serde_json::Value = serde_json::from_str(&p.logs("trees", "gen")).expect("json");
    let branch = made["branch"].as_str().expect("branch").to_owned();
    assert!(branch.starts_with("dagu/"), "{made}");
    assert_eq!(made["worktree_created"], true);
    assert_eq!(made["branch_created"], true);
    let default_path = format!("{}.worktrees/{branch}", p.path("repo").display());
    assert_eq!(made["path"], default_path.as_str());
    assert_eq!(
        p.logs("trees", "use"),
        format!("{default_path} {branch} false {tagged}\n")
    );
    assert!(
        step_error(&status, "refused").contains("uncommitted changes"),
        "{status}"
    );
    assert!(
        step_error(&status, "unmerged").contains("not merged"),
        "{status}"
    );
    // Refused before anything changed: the dirty worktree was still there for `gone`.
    let gone: serde_json::Value = serde_json::from_str(&p.logs("trees", "gone")).expect("json");
    assert_eq!(gone["worktree_removed"], true, "{gone}");
    assert_eq!(gone["branch_deleted"], true, "{gone}");
    assert!(!p.path("wt/hotfix").exists());
    assert_eq!(git(&["branch", "--list", "hotfix"]), "");
    let nothing: serde_json::Value =
        serde_json::from_str(&p.logs("trees", "nothing")).expect("json");
    assert_eq!(nothing["worktree_removed"], false);
    assert!(
        step_error(&status, "taken").contains("is not empty"),
        "{status}"
    );
    assert!(p.path("wt/taken/file").exists());
    assert_eq!(git(&["branch", "--list", "taken"]), "", "no branch made");
    assert!(git(&["worktree", "list"]).contains(&branch));

    // `cleanup`: what the run made goes when it ends as the policy says; the branch stays;
    // a worktree with uncommitted changes stays and fails a run that succeeded.
    let cleanup = |name: &str, policy: &str, then: &str| {
        let dag = p.dag(
            name,
            &format!(
                "working_dir: ./repo\ntype: chain\nsteps:\n  - id: add\n    action: git.worktree.add\n    with: {{branch: {name}, create_branch: true, path: ../wt/{name}, cleanup: {policy}}}\n  - id: then\n    run: {then}\n"
            ),
        );
        let _ = p.run(&dag, &[]);
        let status = p.status(name);
        (status, p.path(&format!("wt/{name}")).exists())
    };
    let (status, kept) = cleanup("okclean", "on_success", "'true'");
    assert_eq!(status["status"], "succeeded", "{status}");
    assert!(!kept, "removed after a success");
    assert_eq!(git(&["branch", "--list", "okclean"]), "okclean");
    let (status, kept) = cleanup("failkeep", "on_success", "'false'");
    assert_eq!(status["status"], "failed", "{status}");
    assert!(kept, "kept for inspection after a failure");
    let (status, kept) = cleanup("failclean", "on_finish", "'false'");
    assert_eq!(status["status"], "failed", "{status}");
    assert!(!kept, "removed after any end");
    let (status, kept) = cleanup("dirtykeep", "on_success", "touch ../wt/dirtykeep/new");
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("uncommitted changes"),
        "{status}"
    );
    assert!(kept, "a dirty worktree is never removed");

    for (with, said) in [
        (
            "action: git.worktree.add\n    with: {cleanup: sometimes}",
            "`cleanup` must be one of",
        ),
        (
            "action: git.worktree.add\n    with: {branch: x, base: main}",
            "needs `create_branch: true`",
        ),
        (
            "action: git.worktree.remove",
            "needs `branch`, `path`, or both",
        ),
        (
            "action: git.worktree.remove\n    with: {branch: x, force_delete_branch: true}",
            "needs `delete_branch: true`",
        ),
        (
            "action: git.worktree.remove\n    with: {branch: x, base: y}",
            "takes no `base`",
        ),
        (
            "action: git.worktree.add\n    with: {create_branch: maybe}",
            "true or false",
        ),
        (
            "action: git.worktree.prune",
            "wharf has no action `git.worktree.prune`",
        ),
    ] {
        p.assert_refused(&format!("steps:\n  - id: s\n    {with}\n"), said);
    }
}

#[test]
fn state_actions_keep_values_across_runs() {
    let p = Place::new();
    let json = |dag: &str, step: &str| -> serde_json::Value {
        serde_json::from_str(p.logs(dag, step).trim()).expect("a line of JSON")
    };
    // A cursor read, moved on and written back under the version it was read at; a
    // snapshot compared with the last run's; a sub-DAG writing into its root's namespace.
    let cursor = p.dag(
        "cursor",
        r#"type: chain
steps:
  - id: load
    action: state.get
    with:
      key: cursors/feed
      default: {last_id: 0}
  - id: next
    run: echo $(( $(printf '%s' '${steps.load.outputs.value}' | sed 's/[^0-9]//g') + 5 ))
    output: NEXT
  - id: save
    action: state.set
    with:
      key: cursors/feed
      expected_version: "${steps.load.outputs.version}"
      value: {last_id: "${NEXT}"}
  - id: snapshot
    action: state.diff
    with:
      key: snapshots/feed
      value: {count: 2, items: [b, a]}
  - id: peek
    action: state.diff
    with: {key: snapshots/other, value: 1, update: false}
  - id: child
    action: dag.run
    with: {dag: child}
  - id: from_child
    action: state.get
    with: {scope: root_dag, key: from-child, required: true}
  - id: report
    run: echo "found=${steps.load.outputs.found} v=${steps.save.outputs.version} created=${steps.save.outputs.created} changed=${steps.snapshot.outputs.changed}"
"#,
    );
    p.dag(
        "child",
        "steps:\n  - action: state.set\n    with: {scope: root_dag, key: from-child, value: hello}\n",
    );
    let out = p.run(&cursor, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let load = json("cursor", "load");
    assert_eq!(load["found"], false, "{load}");
    assert_eq!(load["value"], serde_json::json!({"last_id": 0}), "{load}");
    assert!(load.get("version").is_none(), "{load}");
    assert_eq!(
        p.logs("cursor", "report"),
        "found=false v=1 created=true changed=true\n"
    );
    let peek = json("cursor", "peek");
    assert_eq!(peek["changed"], true);
    assert_eq!(peek["foundPrevious"], false);
    assert!(peek.get("version").is_none(), "not written: {peek}");
    assert_eq!(json("cursor", "from_child")["value"], "hello");

    let out = p.run(&cursor, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let load = json("cursor", "load");
    assert_eq!(
        (&load["found"], &load["version"], &load["value"]),
        (
            &serde_json::json!(true),
            &serde_json::json!(1),
            &serde_json::json!({"last_id": "5"})
        ),
        "{load}"
    );
    assert_eq!(load["hash"].as_str().map(str::len), Some(64), "{load}");
    assert_eq!(
        p.logs("cursor", "report"),
        "found=true v=2 created=false changed=false\n"
    );
    let snapshot = json("cursor", "snapshot");
    assert_eq!(snapshot["previousVersion"], 1, "{snapshot}");
    assert_eq!(snapshot["version"], 1, "unchanged, not written: {snapshot}");
    assert_eq!(snapshot["previous"], snapshot["current"], "{snapshot}");
    assert_eq!(
        json("cursor", "peek")["foundPrevious"],
        false,
        "update: false"
    );

    // Shared namespaces, another DAG's own, listing, deleting, and the guards.
    let other = p.dag(
        "other",
        r#"type: chain
steps:
  - id: theirs
    action: state.get
    with: {scope: dag, namespace: cursor, key: cursors/feed}
  - id: shared
    action: state.set
    with: {scope: custom, namespace: pipeline-v1, key: a/one, value: [1, 2]}
  - action: state.set
    with: {scope: custom, namespace: pipeline-v1, key: a/two, value: {x: true}}
  - action: state.set
    with: {scope: custom, namespace: pipeline-v1, key: b, value: null}
  - action: state.set
    with: {scope: global, key: a/one, value: elsewhere}
  - id: listed
    action: state.list
    with: {scope: custom, namespace: pipeline-v1, prefix: a/, include_values: true}
  - id: first
    action: state.list
    with: {scope: custom, namespace: pipeline-v1, limit: 1}
  - id: drop
    action: state.delete
    with: {scope: custom, namespace: pipeline-v1, key: b}
  - id: drop_again
    action: state.delete
    with: {scope: custom, namespace: pipeline-v1, key: b}
  - id: stale
    action: state.set
    with: {scope: dag, namespace: cursor, key: cursors/feed, expected_version: 1, value: {}}
    continue_on: {failure: true}
  - id: taken
    action: state.set
    with: {scope: custom, namespace: pipeline-v1, key: a/one, create_only: true, value: 0}
    continue_on: {failure: true}
  - id: missing
    action: state.get
    with: {key: never, required: true}
    continue_on: {failure: true}
"#,
    );
    let _ = p.run(&other, &[]);
    let status = p.status("other");
    assert_eq!(status["status"], "partially_succeeded", "{status}");
    assert_eq!(json("other", "theirs")["version"], 2);
    let listed = json("other", "listed");
    let entries = listed["entries"].as_array().expect("entries");
    let keys: Vec<&str> = entries.iter().filter_map(|e| e["key"].as_str()).collect();
    assert_eq!(keys, ["a/one", "a/two"], "{listed}");
    assert_eq!(entries[0]["value"], serde_json::json!([1, 2]));
    assert_eq!(entries[1]["value"], serde_json::json!({"x": true}));
    assert!(
        entries[0]["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{listed}"
    );
    let first = json("other", "first");
    assert_eq!(
        first["entries"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    assert!(first["entries"][0].get("value").is_none(), "{first}");
    assert_eq!(json("other", "drop")["deleted"], true);
    assert_eq!(json("other", "drop_again")["deleted"], false);
    assert!(
        step_error(&status, "stale").contains("is at version 2, not 1"),
        "{status}"
    );
    assert!(
        step_error(&status, "taken").contains("`create_only: true`"),
        "{status}"
    );
    assert!(
        step_error(&status, "missing").contains("no entry `never`"),
        "{status}"
    );

    // Eight writers at once, each wanting to be the one that creates the key: one is.
    let race = p.dag(
        "race",
        &format!(
            "steps:\n{}",
            (0..8)
                .map(|i| format!(
                    "  - id: w{i}\n    action: state.set\n    with: {{key: owner, create_only: true, value: {i}}}\n    continue_on: {{failure: true}}\n"
                ))
                .collect::<String>()
        ),
    );
    let _ = p.run(&race, &[]);
    let status = p.status("race");
    let won = (0..8)
        .filter(|i| step(&status, &format!("w{i}"))["status"] == "succeeded")
        .count();
    assert_eq!(won, 1, "{status}");

    // A secret of the run is never kept.
    let secret = p.dag(
        "secret",
        "secrets:\n  - name: TOKEN\n    provider: env\n    key: STATE_TEST_TOKEN\nsteps:\n  - action: state.set\n    with: {key: t, value: {token: \"${TOKEN}\"}}\n",
    );
    let out = p
        .wharf()
        .env("STATE_TEST_TOKEN", "s3cr3t-v4lue")
        .args(["run"])
        .args([&secret])
        .run();
    assert_ne!(out.code, Some(0));
    let status = p.status("secret");
    assert!(
        status.to_string().contains("holds a secret of the run"),
        "{status}"
    );
    assert!(!status.to_string().contains("s3cr3t-v4lue"));

    for (with, said) in [
        ("action: state.get", "`state.get` needs `with.key`"),
        (
            "action: state.set\n    with: {key: a}",
            "needs `with.value`",
        ),
        (
            "action: state.get\n    with: {key: a, scope: custom}",
            "`scope: custom` needs `namespace`",
        ),
        (
            "action: state.get\n    with: {key: a, scope: team}",
            "`scope` must be one of: dag, root_dag, global, custom",
        ),
        (
            "action: state.get\n    with: {key: a//b}",
            "is not a state key",
        ),
        (
            "action: state.get\n    with: {key: a, namespace: x/y}",
            "is not a namespace",
        ),
        (
            "action: state.get\n    with: {key: a, prefix: b}",
            "`state.get` takes no `prefix`",
        ),
        (
            "action: state.list\n    with: {prefix: /a}",
            "is not a key prefix",
        ),
        ("action: state.list\n    with: {limit: -1}", "0 or more"),
        (
            "action: state.set\n    with: {key: a, value: 1, expected_version: soon}",
            "`expected_version` must be a version",
        ),
        (
            "action: state.diff\n    with: {key: a, value: 1, update: maybe}",
            "true or false",
        ),
        ("action: state.frob", "wharf has no action `state.frob`"),
    ] {
        p.assert_refused(&format!("steps:\n  - id: s\n    {with}\n"), said);
    }
    let dry = p.wharf().args(["dry"]).args([&cursor]).run();
    assert!(
        dry.stdout.contains("in wharf (state.diff)"),
        "{}",
        dry.stdout
    );
}

// A DAG's shell given with `-c` (`[sh, -c]`, a wrapper that passes its arguments on) runs
// a multi-line script too: the script's file is named where the command line would be.
#[test]
fn a_script_runs_through_a_shell_given_with_its_c() {
    let p = Place::new();
    std::fs::write(
        p.path("wrapper"),
        "#!/bin/sh\nprintf '%s\\n' \"$1\" > first-arg.txt\nexec /bin/sh \"$@\"\n",
    )
    .expect("wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.path("wrapper"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let dag = p.dag(
        "wrapped",
        "params:\n  - name: arg\nworking_dir: .\nshell:\n  - ./wrapper\n  - \"${params.arg}\"\nsteps:\n  - id: write\n    run: |\n      test \"$(cat first-arg.txt)\" = \"-c\"\n      printf '%s\\n' done > wrapped.txt\n",
    );
    let out = p.run(&dag, &["--", "arg=-c"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("wrapped.txt")).expect("written"),
        "done\n"
    );
    let plain = p.dag(
        "plain_c",
        "shell: [sh, -c]\nsteps:\n  - id: two\n    run: |\n      a=1\n      echo \"a=$a\"\n",
    );
    let out = p.run(&plain, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("plain_c", "two"), "a=1\n");
}

// Shell-style forms in fields wharf expands itself (no shell after it): applied to a
// name the run knows, left as written otherwise.
#[test]
fn shell_style_env_forms_in_fields_without_a_shell() {
    let p = Place::new();
    let dag = p.dag(
        "styles",
        "working_dir: .\nenv:\n  - SERVICE=api\n  - EMPTY: \"\"\nsteps:\n  - id: write\n    action: file.write\n    with:\n      path: shell-style.txt\n      content: |\n        ${SERVICE:-fallback}\n        ${EMPTY:-fallback}\n        ${SERVICE:1:2}\n        ${MISSING:-default}\n        ${MISSING:4:10}\n  - id: direct\n    action: exec\n    with:\n      command: /bin/sh\n      args: [-c, 'printf \"%s\\n\" \"$1\" > direct-exec.txt', _, \"${SERVICE} ${MISSING}\"]\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("shell-style.txt")).expect("written"),
        "api\nfallback\npi\n${MISSING:-default}\n${MISSING:4:10}\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("direct-exec.txt")).expect("written"),
        "api ${MISSING}\n"
    );
}

// A handler is no step of the graph: in 2.x `${paths.step_stdout_file}` and a step's
// outputs stay as written there and `DAG_RUN_STEP_STDOUT_FILE` is not set; a step has them.
#[test]
fn handlers_have_no_step_files_in_2x() {
    let p = Place::new();
    let dag = p.dag(
        "handled",
        "handler_on:\n  success:\n    run: |\n      printf '%s|%s|%s|%s\\n' '${paths.step_stdout_file}' \"${DAG_RUN_STEP_STDOUT_FILE:-UNSET}\" '${run.status}' '${steps.ok.outputs.v}' > handler.txt\nsteps:\n  - id: ok\n    run: |\n      printf '%s\\n' '${paths.step_stdout_file}' \"$DAG_RUN_STEP_STDERR_FILE\"\n      echo v=1 >> \"$DAGU_OUTPUT_FILE\"\n    outputs:\n      - name: v\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("handler.txt")).expect("written"),
        "${paths.step_stdout_file}|UNSET|succeeded|${steps.ok.outputs.v}\n"
    );
    let step = p.logs("handled", "ok");
    let lines: Vec<&str> = step.lines().collect();
    assert!(
        lines.len() == 2 && lines[0].ends_with(".stdout") && lines[1].ends_with(".stderr"),
        "{step}"
    );
}

// A 2.x sub-DAG that names no working directory works in its own run's work directory
// (children side by side do not write over each other); one that names it works there;
// a `foreach` body works where its DAG does.
// A param's `eval` sees wharf's environment.
#[test]
fn a_2x_sub_dag_works_in_its_own_run_directory() {
    let p = Place::new();
    std::fs::create_dir_all(p.path("parent-work")).expect("dir");
    std::fs::create_dir_all(p.path("pinned")).expect("dir");
    let dag = p.dag(
        "parent",
        "working_dir: parent-work\nparams:\n  - name: combined\n    eval: $(printf '%s-x' \"$WHARF_TEST_EVAL_VALUE\")\nsteps:\n  - id: fan\n    action: dag.run\n    with: {dag: child}\n    parallel:\n      items: [a, b]\n  - id: pinned\n    action: dag.run\n    with: {dag: pinned}\n  - id: show\n    run: printf '%s\\n' '${params.combined}'\n  - id: each\n    foreach:\n      items: [a]\n      steps:\n        - id: body\n          run: pwd > body.txt\n---\nname: child\nsteps:\n  - id: inspect\n    run: |\n      test \"$PWD\" = \"$DAG_RUN_WORK_DIR\"\n      test \"$PWD\" = '${paths.work_dir}'\n      test ! -e out.txt\n      echo mine > out.txt\n---\nname: pinned\nworking_dir: pinned\nsteps:\n  - id: here\n    run: pwd\n",
    );
    let out = p
        .wharf()
        .env("WHARF_TEST_EVAL_VALUE", "scope")
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(!p.path("parent-work/out.txt").exists());
    let here = p.wharf().args(["logs", "pinned", "--step", "here"]).run();
    assert!(
        here.stdout.trim_end().ends_with("/pinned"),
        "{}",
        here.stdout
    );
    assert_eq!(p.logs("parent", "show"), "scope-x\n");
    // A `foreach` body is the DAG's own steps: it works where the DAG does.
    assert!(p.path("parent-work/body.txt").exists());
}

// A one-line 2.x `run` stays one command: a value that puts a line break in it fails the
// step before any shell starts (nothing of it runs).
#[test]
fn a_line_break_put_into_a_command_fails_before_it_runs() {
    let p = Place::new();
    let dag = p.dag(
        "broken",
        "working_dir: .\nparams:\n  - name: x\n    default: a\nsteps:\n  - id: one\n    run: echo ${params.x} > ran.txt\n  - id: list\n    depends: []\n    run:\n      - echo first > first.txt\n      - echo ${params.x} > list.txt\n",
    );
    let out = p.run(&dag, &["--", "x=a\nb"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status("broken");
    assert!(
        step_error(&status, "one").contains("line break"),
        "{status}"
    );
    assert!(
        step_error(&status, "list").contains("line break"),
        "{status}"
    );
    for file in ["ran.txt", "first.txt", "list.txt"] {
        assert!(!p.path(file).exists(), "{file}");
    }
    let out = p.run(&dag, &["--", "x=plain"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("ran.txt")).expect("ran"),
        "plain\n"
    );
}

// `NAME=value` in DAGU_OUTPUT_FILE may hold `<<` in its value; an `outputs` with nothing
// in it declares nothing and is refused.
#[test]
fn declared_outputs_read_values_holding_a_heredoc_marker() {
    let p = Place::new();
    let dag = p.dag(
        "marker",
        "steps:\n  - id: b\n    run: printf 'v=prefix<<suffix\\n' >> \"$DAGU_OUTPUT_FILE\"\n    outputs:\n      - name: v\n  - id: c\n    depends: b\n    run: printf '%s\\n' '${steps.b.outputs.v}'\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("marker", "c"), "prefix<<suffix\n");
    for empty in ["outputs: []", "outputs:", "outputs: null"] {
        p.assert_refused(
            &format!("steps:\n  - id: a\n    run: echo\n    {empty}\n"),
            "`outputs` must be a non-empty list of outputs",
        );
    }
}

// A step whose sub-DAG runs all ended well, one of them partially, partially succeeds
// itself, and so does its run (exit 0); the summary counts that child as succeeded.
#[test]
fn a_sub_dag_that_partially_succeeded_makes_its_step_partially_succeed() {
    let p = Place::new();
    let dag = p.dag(
        "partial",
        "steps:\n  - id: fan\n    action: dag.run\n    with:\n      dag: child\n      params: {item: \"${ITEM}\"}\n    parallel:\n      items: [ok, partial]\n  - id: one\n    action: dag.run\n    with: {dag: child, params: {item: ok}}\n  - id: after\n    depends: fan\n    run: echo after\n---\nname: child\nparams:\n  - name: item\n    default: ok\nsteps:\n  - id: maybe\n    run: test \"${params.item}\" = ok\n    continue_on: {failure: true}\n  - id: fine\n    depends: maybe\n    run: echo fine\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("partial");
    assert_eq!(status["status"], "partially_succeeded", "{status}");
    assert_eq!(
        step(&status, "fan")["status"],
        "partially_succeeded",
        "{status}"
    );
    assert_eq!(step(&status, "one")["status"], "succeeded", "{status}");
    assert_eq!(p.logs("partial", "after"), "after\n");
    let summary: serde_json::Value =
        serde_json::from_str(p.logs("partial", "fan").trim()).expect("json");
    assert_eq!(
        summary["summary"],
        serde_json::json!({"total": 2, "succeeded": 2, "failed": 0}),
        "{summary}"
    );
}

// A script's `#!` line picks its interpreter, whatever the DAG's shell; a shell the step
// names itself runs the script instead (the `#!` line a comment), as in Dagu 2.x.
#[test]
fn a_steps_own_shell_runs_a_script_in_place_of_its_shebang() {
    let p = Place::new();
    let dag = p.dag(
        "bang",
        "working_dir: .\nshell: [sh, -c]\nsteps:\n  - id: root\n    run: |\n      #!/bin/sh\n      echo shebang-won > root.txt\n  - id: own\n    with:\n      shell: sh\n    run: |\n      #!/bin/false\n      echo step-shell-won > own.txt\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("root.txt")).expect("root"),
        "shebang-won\n"
    );
    assert_eq!(
        std::fs::read_to_string(p.path("own.txt")).expect("own"),
        "step-shell-won\n"
    );
}

// `wharf run --only STEP`: only those steps run, the others are recorded skipped and hold
// none back; `--outputs-from RUN` gives them an earlier run's outputs and work files.
#[test]
fn only_some_steps_run_with_an_earlier_runs_outputs() {
    let p = Place::new();
    let steps = p.dag(
        "three",
        "type: chain\nsteps:\n  - id: first\n    run: echo first\n  - id: second\n    run: echo second\n  - id: third\n    run: echo third\n",
    );
    let out = p.run(&steps, &["--only", "second"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status("three");
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(step(&status, "first")["status"], "skipped", "{status}");
    assert_eq!(step(&status, "third")["status"], "skipped", "{status}");
    assert_eq!(p.logs("three", "second"), "second\n");

    let outputs = p.dag(
        "reuse",
        "type: chain\nsteps:\n  - id: produce\n    run: |\n      printf 'value=from-source\\n' >> \"$DAGU_OUTPUT_FILE\"\n      echo shared > \"$DAG_RUN_WORK_DIR/shared.txt\"\n    outputs:\n      - name: value\n  - id: consume\n    run: |\n      printf '%s\\n' '${steps.produce.outputs.value}'\n      cat \"$DAG_RUN_WORK_DIR/shared.txt\" 2>/dev/null || echo missing\n",
    );
    let out = p.run(&outputs, &["--run-id", "source"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = p.run(&outputs, &["--only", "consume", "--outputs-from", "source"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("reuse", "consume"), "from-source\nshared\n");
    let out = p.run(&outputs, &["--only", "consume"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("reuse", "consume"),
        "${steps.produce.outputs.value}\nmissing\n"
    );

    let before = p.wharf().args(["history", "three", "--json"]).run().stdout;
    for (args, said) in [
        (
            &["--outputs-from", "source"][..],
            "--outputs-from requires --only",
        ),
        (&["--only", "missing"][..], "unknown step \"missing\""),
    ] {
        let out = p.run(&steps, args);
        assert_eq!(out.code, Some(2), "{}", out.stderr);
        assert!(out.stderr.contains(said), "{}", out.stderr);
    }
    let after = p.wharf().args(["history", "three", "--json"]).run().stdout;
    assert_eq!(before, after, "no run recorded");
}

// A container's `env` is read top to bottom, as the DAG's is: an entry reads the ones
// before it (`${env.NAME}`, `$NAME`) and the run's values; itself or a later one stays as
// written. So for the DAG-level container and a step's own.
#[test]
fn a_containers_env_entries_read_the_ones_before_them() {
    images_are_built();
    let p = Place::new();
    let dag = p.dag(
        "chained",
        "env:\n  - ROOT=r\ncontainer:\n  image: wharf-test/base:latest\n  shell: [sh, -c]\n  env:\n    - BASE=api\n    - HOST=${env.BASE}.internal\n    - SELF=${env.SELF_NOWHERE}\n    - LATER=$AFTER_NOWHERE\n    - FROM_ROOT=${env.ROOT}\nsteps:\n  - id: shared\n    run: printf '%s|%s|%s|%s|%s\\n' \"$BASE\" \"$HOST\" \"$SELF\" \"$LATER\" \"$FROM_ROOT\"\n  - id: own\n    container:\n      image: wharf-test/base:latest\n      shell: [sh, -c]\n      env:\n        - BASE=web\n        - HOST=${env.BASE}.internal\n    run: printf '%s|%s\\n' \"$BASE\" \"$HOST\"\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs("chained", "shared"),
        "api|api.internal|${env.SELF_NOWHERE}|$AFTER_NOWHERE|r\n"
    );
    assert_eq!(p.logs("chained", "own"), "web|web.internal\n");
}
