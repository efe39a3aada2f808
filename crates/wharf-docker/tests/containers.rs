//! Steps in containers of their own (`executor: docker`), against the real Docker daemon
//! and the images `scripts/test-images` builds. Nothing here skips: without Docker these
//! tests fail.

use std::process::Command;
use std::time::{Duration, Instant};

use wharf_testkit::{Place, Registry, Unique, docker, images_are_built, step, step_error};

fn container_step(name: &str, config: &str, command: Option<&str>) -> String {
    let command = command
        .map(|c| format!("    command: {c}\n"))
        .unwrap_or_default();
    format!("  - name: {name}\n{command}    executor:\n      type: docker\n      config:\n{config}")
}

#[test]
fn a_container_step_keeps_the_entrypoint_and_takes_the_command_as_cmd() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("entrypoint");
    let yaml = format!(
        "steps:\n{}{}",
        container_step(
            "job",
            "        image: wharf-test/dispatcher:latest\n        autoRemove: true\n",
            Some("send-emails --now")
        ),
        container_step(
            "default",
            "        image: wharf-test/dispatcher:latest\n        autoRemove: true\n",
            None
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "job"), "dispatch: send-emails --now\n");
    assert_eq!(
        p.logs(&u.name, "default"),
        "dispatch: default-job\n",
        "no command: the image's CMD"
    );
    assert!(u.containers().is_empty(), "autoRemove leaves nothing");
}

#[test]
fn exit_codes_streams_and_the_stderr_tail() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("exit");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "fails",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("sh -c 'echo to-stdout; echo to-stderr >&2; exit 42'")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    let status = p.status(&u.name);
    assert_eq!(step(&status, "fails")["exitCode"], 42);
    assert_eq!(p.logs(&u.name, "fails"), "to-stdout\n");
    let err = p
        .wharf()
        .args(["logs", &u.name, "--step", "fails", "--stderr"])
        .run();
    assert_eq!(err.stdout, "to-stderr\n");
    assert!(
        out.stderr.contains("to-stderr"),
        "the failing step's stderr tail: {}",
        out.stderr
    );
    assert_eq!(
        step(&status, "fails")["error"],
        "exit code 42: to-stderr",
        "the message ends with the stderr tail"
    );
    assert!(u.containers().is_empty());
}

#[test]
fn a_hundred_thousand_lines_arrive_complete_and_in_order() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("volume");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "count",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("seq 1 100000")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let log = p.logs(&u.name, "count");
    let expected: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert!(
        log == expected,
        "{} lines, last {:?}",
        log.lines().count(),
        log.lines().last()
    );
}

#[test]
fn an_oom_kill_is_reported_as_such() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("oom");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "hog",
            "        image: wharf-test/base:latest\n        autoRemove: true\n        host:\n          memory: 16777216\n          memorySwap: 16777216\n",
            Some("sh -c 'x=a; while true; do x=$x$x; done'")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    let status = p.status(&u.name);
    assert_eq!(step(&status, "hog")["exitCode"], 137);
    assert!(
        step_error(&status, "hog").contains("out of memory"),
        "{status}"
    );
}

#[test]
fn variables_params_and_outputs_reach_the_container() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("vars");
    let yaml = format!(
        "params: NAME=param\nenv:\n  - FROM_ENV: env-value\nsteps:\n  - name: host\n    command: echo produced\n    output: OUT\n{}",
        container_step(
            "show",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("sh -c 'echo \"$FROM_ENV $NAME $OUT $DAG_NAME ${STEP_OWN}\"; echo arg=${OUT}'")
        ) + "    env:\n      - STEP_OWN: own\n",
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs(&u.name, "show"),
        format!("env-value param produced {} own\narg=produced\n", u.name)
    );
}

#[test]
fn raw_docker_settings_work_in_either_casing_and_labels_name_the_run() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("casing");
    let yaml = format!(
        "steps:\n{}{}",
        container_step(
            "camel",
            "        image: wharf-test/base:latest\n        container:\n          workingDir: /tmp\n          env: [\"RAW=camel\"]\n        host:\n          memory: 67108864\n",
            Some("sh -c 'pwd; echo $RAW'")
        ),
        container_step(
            "api",
            "        image: wharf-test/base:latest\n        container:\n          WorkingDir: /home\n          Env: [\"RAW=api\"]\n        host:\n          Memory: 67108864\n",
            Some("sh -c 'pwd; echo $RAW'")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &["--run-id", "casing-run"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "camel"), "/tmp\ncamel\n");
    assert_eq!(p.logs(&u.name, "api"), "/home\napi\n");
    // Without autoRemove the containers stay, stopped, labelled with their run.
    let ids = u.containers();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let memory = docker(&["inspect", "--format", "{{.HostConfig.Memory}}", &id]);
        assert_eq!(memory, "67108864");
        let run = docker(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"wharf.run\"}}",
            &id,
        ]);
        assert_eq!(run, "casing-run");
        let running = docker(&["inspect", "--format", "{{.State.Running}}", &id]);
        assert_eq!(
            running, "false",
            "no container keeps running after its step"
        );
    }
}

#[test]
fn container_name_execs_into_a_running_container_and_image_creates_a_missing_one() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("named");
    // A container the user started.
    let target = u.user_container("target");
    let created = format!("{}-created", u.name);
    let yaml = format!(
        "steps:\n{}{}",
        container_step(
            "exec",
            &format!(
                "        containerName: {target}\n        exec:\n          user: worker\n          workingDir: /home/worker\n          env: [\"EXTRA=1\"]\n"
            ),
            Some("sh -c 'id -un; pwd; echo $EXTRA'")
        ),
        container_step(
            "create",
            &format!(
                "        image: wharf-test/base:latest\n        containerName: {created}\n        container:\n          labels: {{wharf.dag: {}}}\n",
                u.name
            ),
            Some("echo created")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "exec"), "worker\n/home/worker\n1\n");
    assert_eq!(p.logs(&u.name, "create"), "created\n");
    // A binary the container lacks: the exec's exit code (from exec inspect) is 126/127.
    let missing = format!(
        "steps:\n{}",
        container_step(
            "absent",
            &format!("        containerName: {target}\n"),
            Some("no-such-binary --flag")
        )
    );
    let missing_dag = p.dag(&format!("{}-missing", u.name), &missing);
    assert_eq!(p.run(&missing_dag, &[]).code, Some(1));
    let code = step(&p.status(&format!("{}-missing", u.name)), "absent")["exitCode"].as_i64();
    assert!(matches!(code, Some(126 | 127)), "{code:?}");
    // Again: the named container is now stopped, so it is removed and created anew.
    let again = p.run(&dag, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains(&format!("removing the stopped container {created}")),
        "{}",
        again.stderr
    );
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("name=^/{created}$")])
            .lines()
            .count(),
        1
    );
}

#[test]
fn pull_never_and_missing_images_say_what_is_wrong() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("pull");
    let yaml = format!(
        "type: graph\nsteps:\n{}{}{}",
        container_step(
            "never",
            "        image: wharf-test/absent:latest\n        pull: never\n",
            Some("true")
        ),
        container_step(
            "unreachable",
            "        image: 127.0.0.1:1/nothing/here:latest\n        pull: always\n",
            Some("true")
        ),
        container_step(
            "platform",
            "        image: wharf-test/base:latest\n        platform: linux/arm64\n        pull: never\n",
            Some("true")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    let status = p.status(&u.name);
    let error = |s: &str| step_error(&status, s);
    assert!(
        error("never").contains("not found locally, and pull is `never`"),
        "{}",
        error("never")
    );
    assert!(
        error("unreachable").contains("registry unreachable"),
        "{}",
        error("unreachable")
    );
    assert!(
        error("platform").contains("exists locally for linux/amd64, wanted linux/arm64"),
        "{}",
        error("platform")
    );
    assert!(u.containers().is_empty());
}

#[test]
fn a_missing_command_in_the_image_is_docker_exit_code_127() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("missing");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "nope",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("no-such-program")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    assert_eq!(p.run(&dag, &[]).code, Some(1));
    let status = p.status(&u.name);
    assert_eq!(step(&status, "nope")["exitCode"], 127);
    assert!(
        step_error(&status, "nope").contains("did not start"),
        "{status}"
    );
    assert!(u.containers().is_empty());
}

#[test]
fn a_timed_out_container_is_stopped_within_the_grace_period_and_removed() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("timeout");
    let yaml = format!(
        "maxCleanUpTimeSec: 1\nsteps:\n{}    timeoutSec: 1\n",
        container_step(
            "sleepy",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("sh -c 'trap \"\" TERM; sleep 600'")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let started = Instant::now();
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let status = p.status(&u.name);
    assert!(
        step_error(&status, "sleepy").contains("timed out"),
        "{status}"
    );
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn cleanup_removes_the_containers_of_a_killed_run_and_nothing_else() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("crash");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "long",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("sleep 600")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    // An unlabelled container of someone else's must survive the clean-up.
    let bystander = format!("{}-bystander", u.name);
    docker(&[
        "run",
        "-d",
        "--name",
        &bystander,
        "wharf-test/base:latest",
        "sleep",
        "600",
    ]);
    let mut child = p.spawn(&dag);
    let deadline = Instant::now() + Duration::from_secs(20);
    while docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=wharf.dag={}", u.name),
    ])
    .is_empty()
    {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("SIGKILL wharf");
    let _ = child.wait();
    assert_eq!(
        u.containers().len(),
        1,
        "the killed run's container is still there"
    );
    let out = p.wharf().args(["cleanup"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // Another test's run may be cleaning it up at the same time (runs that use Docker do
    // that): what counts is that it goes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !u.containers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "still there: {:?}\n{}",
            u.containers(),
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &bystander]),
        "true"
    );
    let _ = docker(&["rm", "-f", &bystander]);
    assert_eq!(p.status(&u.name)["status"], "failed");
}

/// The containers of the DAG `name` in the state `state` for the step `step`.
fn containers_in(name: &str, step: &str, state: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=wharf.dag={name}"),
        "--filter",
        &format!("label=wharf.step={step}"),
        "--filter",
        &format!("status={state}"),
    ])
}

/// Waits (bounded) until the next step's container is made, ahead, while `first` runs.
fn until_prepared(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_in(name, "first", "running").is_empty()
        || containers_in(name, "second", "created").is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the second step's container was not made while the first ran"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_next_containers_are_made_ahead_and_never_left_behind() {
    images_are_built();
    let p = Place::new();
    let config = "        image: wharf-test/base:latest\n        autoRemove: true\n";
    // Made ahead, then the run stopped, or its wharf killed: none of them stays.
    let u = Unique::new("ahead");
    let yaml = format!(
        "steps:\n{}{}{}",
        container_step("first", config, Some("sleep 600")),
        container_step("second", config, Some("echo two")),
        container_step("third", config, Some("echo three")),
    );
    let dag = p.dag(&u.name, &yaml);
    let mut child = p.spawn(&dag);
    until_prepared(&u.name);
    let out = p.wharf().args(["stop", &u.name]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(child.wait().expect("wait").code(), Some(1));
    assert!(u.containers().is_empty(), "left: {:?}", u.containers());
    let status = p.status(&u.name);
    assert_eq!(step(&status, "second")["status"], "not_started", "{status}");

    let mut child = p.spawn(&dag);
    until_prepared(&u.name);
    child.kill().expect("SIGKILL wharf");
    let _ = child.wait();
    let out = p.wharf().args(["cleanup"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !u.containers().is_empty() {
        assert!(Instant::now() < deadline, "left: {:?}", u.containers());
        std::thread::sleep(Duration::from_millis(50));
    }

    // A container made ahead is used only when the step's settings are still the same:
    // an output of the step before changes them, and the step gets a container of them.
    let u = Unique::new("ahead-outputs");
    let yaml = format!(
        "steps:\n{}    output: WORD\n{}{}{}    continueOn:\n      failure: true\n{}{}",
        container_step("first", config, Some("echo hi")),
        container_step("second", config, Some("echo got ${WORD}")),
        container_step("third", config, Some("echo three")),
        container_step("fails", config, Some("sh -c 'exit 3'")),
        container_step("after", config, Some("echo after")),
        container_step("never", config, Some("false")).replace(
            "  - name: never\n",
            "  - name: never\n    depends: [first]\n    preconditions:\n      - condition: \"${WORD}\"\n        expected: nope\n"
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "second"), "got hi\n");
    assert_eq!(p.logs(&u.name, "third"), "three\n");
    assert_eq!(p.logs(&u.name, "after"), "after\n");
    let status = p.status(&u.name);
    assert_eq!(step(&status, "fails")["exitCode"], 3, "{status}");
    assert_eq!(step(&status, "never")["status"], "skipped", "{status}");
    assert!(u.containers().is_empty(), "left: {:?}", u.containers());
}

/// Builds `tag` from the base image with `/marker` holding `word` (labelled for the
/// tests' clean-up), and returns the image's id.
fn marked_image(tag: &str, word: &str) -> String {
    use std::io::Write;
    let mut build = Command::new("docker")
        .args(["build", "-q", "--label", "wharf.test=1", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker build");
    build
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("FROM wharf-test/base:latest\nRUN echo {word} > /marker\n").as_bytes())
        .expect("Dockerfile");
    let out = build.wait_with_output().expect("docker build");
    assert!(out.status.success(), "docker build of {tag} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

// A container made ahead is made of the image its tag names then: a step before that
// moves the tag to another image (`docker build -t` of it, the usual build-then-run DAG)
// gets its step a container of the new one.
#[test]
fn a_container_made_ahead_is_not_used_once_a_step_moved_its_tag() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("ahead-tag");
    let tag = format!("wharf-test/{}:latest", u.name);
    let old = marked_image(&tag, "one");
    let yaml = format!(
        "steps:\n  - name: first\n    command: while [ ! -e go ]; do sleep 0.05; done; printf 'FROM wharf-test/base:latest\\nRUN echo two > /marker\\n' | docker build -q --label wharf.test=1 -t {tag} - >/dev/null\n{}",
        container_step(
            "second",
            &format!("        image: {tag}\n        autoRemove: true\n"),
            Some("cat /marker")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let child = p.spawn(&dag);
    // The second step's container is made (of the first image) while the first step waits.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers_in(&u.name, "second", "created").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the second step's container was not made ahead"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(p.path("go"), "").expect("go");
    let out = child.wait_with_output().expect("wharf");
    let new = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    docker(&["rmi", "-f", &tag, &old, &new]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(old, new);
    assert_eq!(p.logs(&u.name, "second"), "two\n");
    assert!(u.containers().is_empty(), "left: {:?}", u.containers());
}

#[test]
fn wharf_stop_gives_the_container_its_signal_and_redirects_get_its_output() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("stop");
    let yaml = format!(
        "steps:\n{}    signalOnStop: SIGINT\n    stdout: out/stopped.txt\n",
        container_step(
            "graceful",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some(
                "sh -c 'trap \"echo got INT; exit 0\" INT; echo started; while true; do sleep 0.1; done'"
            )
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let mut child = p.spawn(&dag);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(p.path("out/stopped.txt"))
        .unwrap_or_default()
        .contains("started")
    {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = p.wharf().args(["stop", &u.name]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(child.wait().expect("wait").code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(p.path("out/stopped.txt")).expect("redirect"),
        "started\ngot INT\n"
    );
    assert_eq!(p.logs(&u.name, "graceful"), "started\ngot INT\n");
    assert_eq!(step(&p.status(&u.name), "graceful")["status"], "aborted");
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn docker_host_may_be_a_tcp_address() {
    images_are_built();
    // A relay from a loopback TCP port to the daemon's socket stands for a daemon on TCP.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(unix) = std::os::unix::net::UnixStream::connect("/var/run/docker.sock") else {
                continue;
            };
            let (mut tcp_r, mut unix_w) = (
                conn.try_clone().expect("clone"),
                unix.try_clone().expect("clone"),
            );
            let (mut unix_r, mut tcp_w) = (unix, conn);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_r, &mut unix_w);
                let _ = unix_w.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut unix_r, &mut tcp_w);
                let _ = tcp_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    let p = Place::new();
    let u = Unique::new("tcp");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "over-tcp",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("echo over tcp")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p
        .wharf()
        .env("DOCKER_HOST", &format!("tcp://127.0.0.1:{port}"))
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "over-tcp"), "over tcp\n");
    let bad = p
        .wharf()
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(bad.code, Some(1));
    let status = p.status(&u.name);
    assert!(
        step_error(&status, "over-tcp").contains("cannot reach Docker at tcp://127.0.0.1:1"),
        "{status}"
    );
}

#[test]
fn images_are_pulled_from_a_registry_and_pull_errors_say_which() {
    images_are_built();
    let mut open = Registry::start(None);
    let locked = Registry::start(Some("s3cret-pass"));
    let image = open.push("wharf-test/dispatcher:latest", "team/dispatcher:v1");
    let p = Place::new();
    let u = Unique::new("pull");
    let yaml = format!(
        "type: graph\nsteps:\n{}{}{}",
        container_step(
            "pulled",
            &format!("        image: {image}\n        autoRemove: true\n"),
            Some("from-registry")
        ),
        container_step(
            "missing",
            &format!(
                "        image: {}/team/nothing:v1\n        autoRemove: true\n",
                open.addr
            ),
            Some("true")
        ),
        container_step(
            "refused",
            &format!(
                "        image: {}/team/private:v1\n        pull: always\n",
                locked.addr
            ),
            Some("true")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "pulled"), "dispatch: from-registry\n");
    assert_eq!(
        out.stderr.matches(&format!("pulled {image}")).count(),
        1,
        "one line per pull: {}",
        out.stderr
    );
    let status = p.status(&u.name);
    let error = |s: &str| step_error(&status, s);
    assert!(
        error("missing").contains("image not found"),
        "{}",
        error("missing")
    );
    assert!(
        error("refused").contains("authentication refused"),
        "{}",
        error("refused")
    );
    assert!(!out.stderr.contains("s3cret-pass"));
    // `always` pulls again even though the image is there now; `never` uses it.
    let again = format!(
        "steps:\n{}{}",
        container_step(
            "always",
            &format!("        image: {image}\n        pull: always\n        autoRemove: true\n"),
            Some("a")
        ),
        container_step(
            "never",
            &format!("        image: {image}\n        pull: never\n        autoRemove: true\n"),
            Some("n")
        ),
    );
    let dag = p.dag(&format!("{}-again", u.name), &again);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pulled {image}")),
        "{}",
        out.stderr
    );
    assert!(u.containers().is_empty());
}

#[test]
fn docker_tls_verify_uses_the_certificates_of_docker_cert_path() {
    images_are_built();
    let certs = tempfile::tempdir().expect("tmp");
    let dir = certs.path();
    let openssl = |args: &[&str]| wharf_testkit::tls::openssl(dir, args);
    wharf_testkit::tls::server_certificates(dir);
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").expect("ext");
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "client.csr",
        "-subj",
        "/CN=wharf-client",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "client.cnf",
    ]);
    // A TLS endpoint that wants a client certificate, relaying to the daemon's socket.
    let relay = r#"
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("server.pem", "server-key.pem")
ctx.load_verify_locations("ca.pem")
ctx.verify_mode = ssl.CERT_REQUIRED
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(16)
print(srv.getsockname()[1], flush=True)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data: break
            b.sendall(data)
    except OSError: pass
    finally:
        try: b.shutdown(socket.SHUT_WR)
        except OSError: pass
def serve(conn):
    try: tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError): conn.close(); return
    unix = socket.socket(socket.AF_UNIX); unix.connect("/var/run/docker.sock")
    threading.Thread(target=pipe, args=(tls, unix), daemon=True).start()
    pipe(unix, tls)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;
    let mut server = Command::new("python3")
        .arg("-c")
        .arg(relay)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().expect("stdout")),
        &mut port,
    )
    .expect("port");
    let port = port.trim().to_owned();

    let p = Place::new();
    let u = Unique::new("tls");
    let yaml = format!(
        "steps:\n{}",
        container_step(
            "over-tls",
            "        image: wharf-test/base:latest\n        autoRemove: true\n",
            Some("echo over tls")
        ),
    );
    let dag = p.dag(&u.name, &yaml);
    let host = format!("tcp://127.0.0.1:{port}");
    let run = |cert_path: &std::path::Path| {
        p.wharf()
            .env("DOCKER_HOST", &host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &cert_path.to_string_lossy())
            .args(["run"])
            .args([&dag])
            .run()
    };
    let out = run(dir);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "over-tls"), "over tls\n");
    // Without the client's certificates the daemon is not reached, and the step says why.
    let empty = tempfile::tempdir().expect("tmp");
    let out = run(empty.path());
    assert_eq!(out.code, Some(1));
    assert!(
        step(&p.status(&u.name), "over-tls")["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Docker"),
        "{}",
        out.stderr
    );
    let _ = server.kill();
    let _ = server.wait();
}

// K04, K05, S26: a step's own `container:`: with `image` a fresh container for the step
// (removed after it unless `keepContainer`), with `exec` or a name the step runs in a
// running container.
#[test]
fn a_step_container_creates_one_or_execs_into_a_running_one() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("stepcontainer");
    let target = u.user_container("target");
    std::fs::create_dir_all(p.path("data")).expect("data");
    std::fs::write(p.path("data/f"), "from the host\n").expect("f");
    let kept = format!("{}-kept", u.name);
    let yaml = format!(
        "env:\n  - WHO: me\nsteps:\n  - name: fresh\n    container:\n      image: wharf-test/base:latest\n      env:\n        - GREETING: \"hello ${{WHO}}\"\n      volumes:\n        - ./data:/data:ro\n      workingDir: /data\n      user: \"1000\"\n    command: sh -c 'echo $GREETING; id -u; pwd; cat f'\n  - name: kept\n    container:\n      image: wharf-test/base:latest\n      name: {kept}\n      keepContainer: true\n    command: echo kept\n  - name: by-name\n    container: {target}\n    command: hostname\n  - name: as-root\n    container:\n      exec: {target}\n      user: root\n      workingDir: /tmp\n    command: sh -c 'id -u; pwd'\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs(&u.name, "fresh"),
        "hello me\n1000\n/data\nfrom the host\n"
    );
    assert_eq!(p.logs(&u.name, "kept"), "kept\n");
    let hostname = docker(&["inspect", "--format", "{{.Config.Hostname}}", &target]);
    assert_eq!(p.logs(&u.name, "by-name").trim(), hostname.trim());
    assert_eq!(p.logs(&u.name, "as-root"), "0\n/tmp\n");
    // The fresh container is gone; the kept one and the user's are there.
    let mut left: Vec<String> = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=wharf.dag={}", u.name),
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect();
    left.sort();
    let mut expected = vec![kept.clone(), target.clone()];
    expected.sort();
    assert_eq!(left, expected);
}

// K06: what a step's container cannot take is refused when the file is loaded.
#[test]
fn a_step_container_refuses_what_it_cannot_do() {
    let p = Place::new();
    for (yaml, said) in [
        (
            "steps:\n  - container:\n      exec: a\n      image: alpine:3\n    command: \"true\"\n",
            "not both",
        ),
        (
            "steps:\n  - container:\n      exec: a\n      volumes: [\"/x:/x\"]\n    command: \"true\"\n",
            "does not apply with `exec`",
        ),
        (
            "steps:\n  - container:\n      image: alpine:3\n      startup: entrypoint\n    command: \"true\"\n",
            "`startup` does not apply to a step's `container`",
        ),
        (
            "steps:\n  - container:\n      image: alpine:3\n    type: docker\n    command: \"true\"\n",
            "`type` and `container` are both set",
        ),
    ] {
        p.assert_refused(yaml, said);
    }
}

// K25, S03: several commands in a step's own container run one after the other in that
// one container (its filesystem shared); the first that fails ends the step.
#[test]
fn several_commands_run_in_one_own_container() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("multicmd");
    let target = u.user_container("target");
    let yaml = format!(
        "type: graph\nsteps:\n  - name: shared-fs\n    container:\n      image: wharf-test/base:latest\n    command:\n      - touch /tmp/made\n      - ls /tmp/made\n      - echo \"$GREETING\"\n    env:\n      - GREETING: hello\n  - name: stops\n    container:\n      image: wharf-test/base:latest\n    command: [\"echo 1\", \"false\", \"echo 3\"]\n    continueOn:\n      failure: true\n  - name: by-name\n    container: {target}\n    command: [\"touch /tmp/by-name\", \"ls /tmp/by-name\"]\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status = p.status(&u.name);
    assert_eq!(status["status"], "partially_succeeded", "{status}");
    assert_eq!(p.logs(&u.name, "shared-fs"), "/tmp/made\nhello\n");
    assert_eq!(p.logs(&u.name, "stops"), "1\n");
    assert_eq!(step(&status, "stops")["exitCode"], 1, "{status}");
    assert_eq!(p.logs(&u.name, "by-name"), "/tmp/by-name\n");
    // Only the user's container is left.
    let left = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=wharf.dag={}", u.name),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(left.trim(), target);
}
