//! The DAG-level `container` (SPEC §5): one container for the run, its steps through
//! `docker exec`, against the real daemon and the images `scripts/test-images` builds.
//! Every test counts the containers labelled with its DAG before and after.

use std::time::{Duration, Instant};

use wharf_testkit::{OWNER, Unique, docker, images_are_built};
use wharf_testkit::{Place, step, step_error};

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A network or volume the test creates, removed at the end.
struct Resource {
    kind: &'static str,
    name: String,
}

impl Drop for Resource {
    fn drop(&mut self) {
        let _ = docker(&[self.kind, "rm", &self.name]);
    }
}

#[test]
fn steps_exec_in_one_container_even_without_a_shell_in_the_image() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("scratch");
    assert!(u.containers().is_empty());
    let yaml = r#"
env:
  - DAG_VAR: from-the-dag
  - SHADOWED: dag
params: P1=first
container:
  image: wharf-test/scratch:latest
  env:
    - FROM_HOST=${HOST_ONLY}
    - FROM_DAG=${DAG_VAR}
    - SHADOWED=container
steps:
  - name: env
    command: /busybox sh -c 'echo "$FROM_HOST $FROM_DAG $SHADOWED $P1 $OWN"'
    env:
      - OWN: step-env
  - name: write
    command: /busybox sh -c "echo shared > /marker; /busybox printf out-value"
    output: VALUE
  - name: docker-step
    executor:
      type: docker
      config:
        image: wharf-test/base:latest
        autoRemove: true
    command: sh -c 'test -e /marker && echo shared || echo own container'
  - name: docker-no-config
    executor: docker
    command: /busybox cat /marker
  - name: uses-output
    command: /busybox echo got ${VALUE}
  - name: in-dir
    command: /busybox pwd
    dir: /proc
  - name: fails
    command: /busybox sh -c 'echo oops >&2; exit 7'
    continueOn:
      failure: true
  - name: on-host
    executor: command
    command: echo "host $VALUE" > on-host.txt
handlerOn:
  exit:
    command: /busybox cat /proc/1/cmdline
"#;
    let dag = p.dag(&u.name, yaml);
    let out = p
        .wharf()
        .env("HOST_ONLY", "host-value")
        .args(["run"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs(&u.name, "env"),
        "host-value from-the-dag container first step-env\n",
        "container env from host and DAG env, above the DAG env, under the step's"
    );
    assert_eq!(
        p.logs(&u.name, "docker-step"),
        "own container\n",
        "a docker step with its own image runs in its own container (the step's own wins)"
    );
    assert_eq!(
        p.logs(&u.name, "docker-no-config"),
        "shared\n",
        "a docker step without a container of its own runs in the DAG-level one"
    );
    assert_eq!(p.logs(&u.name, "uses-output"), "got out-value\n");
    assert_eq!(p.logs(&u.name, "in-dir"), "/proc\n");
    let status = p.status(&u.name);
    assert_eq!(step(&status, "fails")["exitCode"], 7);
    assert!(step_error(&status, "fails").ends_with("oops"), "{status}");
    assert_eq!(
        std::fs::read_to_string(p.path("on-host.txt")).expect("written on the host"),
        "host out-value\n"
    );
    let handler = p.logs(&u.name, "onExit");
    assert!(
        handler.starts_with("/.wharf/init\0keepalive"),
        "the handler runs in the container, kept alive by wharf: {handler:?}"
    );
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn the_image_entrypoint_is_not_involved_and_scripts_go_in_on_stdin() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("dispatch");
    let yaml = r#"
container:
  image: wharf-test/dispatcher:latest
steps:
  - name: plain
    command: echo not dispatched
  - name: explicit
    command: /usr/local/bin/dispatch send-emails
  - name: script
    script: |
      cd /etc
      echo "script in $(pwd) as $(id -u)"
  - name: shell-line
    shell: sh
    command: echo one | tr o O
"#;
    let dag = p.dag(&u.name, yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "plain"), "not dispatched\n");
    assert_eq!(p.logs(&u.name, "explicit"), "dispatch: send-emails\n");
    assert_eq!(p.logs(&u.name, "script"), "script in /etc as 0\n");
    assert_eq!(p.logs(&u.name, "shell-line"), "One\n");
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn volumes_bind_relative_parent_and_home_paths_and_named_volumes() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("volumes");
    let work = p.path("work");
    for dir in ["work/data", "outside", "home/cfg"] {
        std::fs::create_dir_all(p.path(dir)).expect("mkdir");
    }
    std::fs::write(p.path("work/data/in.txt"), "input\n").expect("write");
    std::fs::write(p.path("outside/o.txt"), "outside\n").expect("write");
    std::fs::write(p.path("home/cfg/c.txt"), "from home\n").expect("write");
    let volume = Resource {
        kind: "volume",
        name: format!("{}-vol", u.name),
    };
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("{OWNER}=1"),
        &volume.name,
    ]);
    let yaml = format!(
        r#"
workingDir: {work}
container:
  image: wharf-test/base:latest
  volumes:
    - ./data:/data
    - ../outside:/outside:ro
    - ~/cfg:/cfg:rw
    - {named}:/named
steps:
  - cat /data/in.txt /outside/o.txt /cfg/c.txt
  - sh -c 'echo written > /data/out.txt; echo kept > /named/v'
  - sh -c 'echo x > /outside/new 2>/dev/null && echo writable || echo read-only'
"#,
        work = work.display(),
        named = volume.name
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p
        .wharf()
        .env("HOME", &p.path("home").to_string_lossy())
        .args(["run"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "cmd_1"), "input\noutside\nfrom home\n");
    assert_eq!(
        std::fs::read_to_string(p.path("work/data/out.txt")).expect("bind mount"),
        "written\n"
    );
    assert_eq!(p.logs(&u.name, "cmd_3"), "read-only\n");
    assert!(u.containers().is_empty(), "{:?}", u.containers());
    let kept = docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/named", volume.name),
        "wharf-test/base:latest",
        "cat",
        "/named/v",
    ]);
    assert_eq!(kept, "kept", "the named volume outlives the container");
}

#[test]
fn user_working_dir_name_platform_restart_policy_and_a_custom_network_reach_docker() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("fields");
    let network = Resource {
        kind: "network",
        name: format!("{}-net", u.name),
    };
    docker(&[
        "network",
        "create",
        "--label",
        &format!("{OWNER}=1"),
        &network.name,
    ]);
    let name = format!("{}-c", u.name);
    let yaml = format!(
        r#"
container:
  image: wharf-test/base:latest
  name: {name}
  user: "1000:1000"
  workingDir: /home/worker
  platform: linux/amd64
  restartPolicy: unless-stopped
  network: {net}
  keepContainer: true
steps:
  - sh -c 'id -u; id -g; pwd'
"#,
        net = network.name
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "cmd_1"), "1000\n1000\n/home/worker\n");
    let inspect = docker(&[
        "inspect",
        "--format",
        "{{.State.Running}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}} {{.Config.User}}",
        &name,
    ]);
    assert_eq!(
        inspect,
        format!("true unless-stopped {0} {0} 1000:1000", network.name)
    );
    assert_eq!(u.containers().len(), 1, "kept: keepContainer");
    let _ = docker(&["rm", "-f", &name]);
}

#[test]
fn ports_are_bound_while_steps_run_and_entrypoint_startup_waits_for_the_log_pattern() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("ports");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let yaml = format!(
        r#"
container:
  image: wharf-test/server:latest
  startup: entrypoint
  logPattern: ready to accept
  ports:
    - "127.0.0.1:{port}:8080"
    - "9999/udp"
steps:
  - name: fetch
    executor: command
    command: python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/').read().decode().strip())"
  - name: pid1
    command: cat /proc/1/cmdline
"#
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "fetch"), "hello from wharf-test/server\n");
    assert!(
        p.logs(&u.name, "pid1").starts_with("httpd"),
        "entrypoint: the image's own command is the main process"
    );
    assert!(out.stderr.contains("ready ("), "{}", out.stderr);
    let log_dir = p.status(&u.name)["logDir"]
        .as_str()
        .expect("logDir")
        .to_owned();
    let own = std::fs::read_to_string(std::path::Path::new(&log_dir).join("container.stdout"))
        .expect("the container's own output is kept");
    assert!(
        own.starts_with("starting\nserver ready to accept connections\n"),
        "{own:?}"
    );
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn network_none_host_and_another_containers_network() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("netmodes");
    let other = format!("{}-other", u.name);
    docker(&[
        "run",
        "-d",
        "--label",
        &format!("{OWNER}={}", u.name),
        "--name",
        &other,
        "wharf-test/base:latest",
        "sleep",
        "600",
    ]);
    let other_mac = docker(&["exec", &other, "cat", "/sys/class/net/eth0/address"]);
    assert!(!other_mac.is_empty());
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host's name")
        .trim()
        .to_owned();
    for (mode, check) in [
        ("none", "ls /sys/class/net"),
        (
            &format!("container:{other}") as &str,
            "cat /sys/class/net/eth0/address",
        ),
        ("host", "hostname"),
    ] {
        let dag = p.dag(
            &u.name,
            &format!("container:\n  image: wharf-test/base:latest\n  network: \"{mode}\"\nsteps:\n  - name: check\n    command: {check}\n"),
        );
        let out = p.run(&dag, &[]);
        assert_eq!(out.code, Some(0), "{mode}: {}", out.stderr);
        let seen = p.logs(&u.name, "check");
        match mode {
            "none" => assert_eq!(seen, "lo\n", "network none: loopback only"),
            "host" => assert_eq!(seen.trim(), host_name, "the host's network (and name)"),
            _ => assert_eq!(seen.trim(), other_mac, "the other container's network"),
        }
    }
    let _ = docker(&["rm", "-f", &other]);
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn command_startup_runs_the_command_as_the_main_process() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("startcmd");
    let yaml = r#"
container:
  image: wharf-test/dispatcher:latest
  startup: command
  command: ["sleep", "600"]
steps:
  - cat /proc/1/cmdline
"#;
    let dag = p.dag(&u.name, yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs(&u.name, "cmd_1"),
        "sleep\u{0}600\u{0}",
        "the command, not wrapped by the image's ENTRYPOINT"
    );
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

#[test]
fn wait_for_healthy_starts_steps_only_once_the_container_is_healthy() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("healthy");
    let yaml = r#"
maxCleanUpTimeSec: 1
container:
  image: wharf-test/healthy:latest
  startup: entrypoint
  waitFor: healthy
steps:
  - ls /tmp/ready
"#;
    let dag = p.dag(&u.name, yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "cmd_1"), "/tmp/ready\n");
    assert!(u.containers().is_empty(), "{:?}", u.containers());

    // No healthcheck in the image: a warning, then as `running`.
    let dag = p.dag(
        &u.name,
        "container:\n  image: wharf-test/base:latest\n  waitFor: healthy\nsteps:\n  - echo ran\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("warning: `waitFor: healthy`") && out.stderr.contains("no healthcheck"),
        "{}",
        out.stderr
    );
    assert_eq!(p.logs(&u.name, "cmd_1"), "ran\n");
    assert!(u.containers().is_empty(), "{:?}", u.containers());

    // A healthcheck of the DAG's own (Dagu 2.x): the steps wait for it.
    let dag = p.dag(
        &u.name,
        r#"max_clean_up_time_sec: 1
container:
  image: wharf-test/base:latest
  startup: command
  command: [sh, -c, "sleep 1; touch /tmp/ok; exec sleep 3600"]
  wait_for: healthy
  healthcheck:
    test: [CMD-SHELL, "test -f /tmp/ok"]
    interval: 200ms
    timeout: 1s
    start_period: 0s
    retries: 20
steps:
  - id: first
    run: ls /tmp/ok
"#,
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "first"), "/tmp/ok\n");
    assert!(u.containers().is_empty(), "{:?}", u.containers());

    // It takes the place of the image's: `[NONE]` turns the image's off.
    let dag = p.dag(
        &u.name,
        "container:\n  image: wharf-test/healthy:latest\n  startup: entrypoint\n  wait_for: healthy\n  healthcheck: {test: [NONE]}\nsteps:\n  - id: first\n    run: echo ran\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("no healthcheck"), "{}", out.stderr);
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

/// Runs a DAG whose container never gets ready; returns the run's error.
fn not_ready(p: &Place, u: &Unique, container: &str, env: &[(&str, &str)]) -> String {
    let yaml = format!(
        "maxCleanUpTimeSec: 1\ncontainer:\n{container}steps:\n  - name: never\n    command: echo never\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let mut w = p.wharf().args(["run"]).arg_path(&dag);
    for (k, v) in env {
        w = w.env(k, v);
    }
    let out = w.run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let status = p.status(&u.name);
    assert_eq!(status["status"], "failed");
    assert_eq!(step(&status, "never")["status"], "not_started", "{status}");
    assert!(u.containers().is_empty(), "removed: {:?}", u.containers());
    status["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn readiness_fails_at_once_on_exit_or_unhealthy_and_after_the_limit() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("notready");

    let started = Instant::now();
    let error = not_ready(
        &p,
        &u,
        "  image: wharf-test/base:latest\n  startup: command\n  command: [sh, -c, \"echo boom; exit 3\"]\n  logPattern: never-printed\n",
        &[],
    );
    assert!(
        error.contains("exited before it was ready")
            && error.contains("exit code 3")
            && error.contains("boom"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "at once");

    let started = Instant::now();
    let error = not_ready(
        &p,
        &u,
        "  image: wharf-test/unhealthy:latest\n  startup: entrypoint\n  waitFor: healthy\n",
        &[],
    );
    assert!(
        error.contains("turned unhealthy") && error.contains("health: unhealthy"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "at once");

    // A failing healthcheck of the DAG's own, over the healthy image's.
    let error = not_ready(
        &p,
        &u,
        "  image: wharf-test/healthy:latest\n  startup: entrypoint\n  waitFor: healthy\n  healthcheck:\n    test: [CMD-SHELL, \"echo not-yet; exit 1\"]\n    interval: 100ms\n    retries: 1\n",
        &[],
    );
    assert!(
        error.contains("turned unhealthy") && error.contains("not-yet"),
        "{error}"
    );

    let error = not_ready(
        &p,
        &u,
        "  image: wharf-test/base:latest\n  logPattern: never-printed\n",
        &[("WHARF_READY_TIMEOUT", "2")],
    );
    assert!(
        error.contains("not ready after 2s") && error.contains("last state: running"),
        "{error}"
    );
}

#[test]
fn a_stopped_step_loses_its_processes_and_the_container_goes_on() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("stepstop");
    let yaml = r#"
maxCleanUpTimeSec: 1
container:
  image: wharf-test/base:latest
steps:
  - name: stubborn
    shell: sh
    command: trap '' TERM; sleep 601 & sleep 602 & wait
    timeoutSec: 1
    continueOn:
      failure: true
  - name: graceful
    command: sh -c 'trap "echo got INT; exit 0" INT; echo started; while true; do sleep 0.1; done'
    signalOnStop: SIGINT
    timeoutSec: 1
    continueOn:
      failure: true
  - name: after
    command: ps -o comm,args
"#;
    let dag = p.dag(&u.name, yaml);
    let started = Instant::now();
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(15));
    let status = p.status(&u.name);
    assert!(
        step_error(&status, "stubborn").contains("timed out"),
        "{status}"
    );
    assert_eq!(p.logs(&u.name, "graceful"), "started\ngot INT\n");
    let ps = p.logs(&u.name, "after");
    assert!(
        !ps.contains("sleep 60"),
        "the stopped step's processes are gone, the container stayed: {ps}"
    );
    assert!(ps.contains("/.wharf/init keepalive"), "{ps}");
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

fn long_running(p: &Place, u: &Unique, extra: &str) -> std::path::PathBuf {
    let yaml = format!(
        "maxCleanUpTimeSec: 1\n{extra}container:\n  image: wharf-test/base:latest\nsteps:\n  - name: long\n    command: sh -c 'echo started; sleep 600'\n"
    );
    p.dag(&u.name, &yaml)
}

/// Waits until a run other than `before` has its step going.
fn until_started(p: &Place, u: &Unique, before: Option<&str>) -> String {
    let mut run_id = String::new();
    wait_until("the step to start", Duration::from_secs(30), || {
        let out = p.wharf().args(["status", &u.name, "--json"]).run();
        let Ok(status) = serde_json::from_str::<serde_json::Value>(&out.stdout) else {
            return false;
        };
        run_id = status["runId"].as_str().unwrap_or_default().to_owned();
        if Some(run_id.as_str()) == before || run_id.is_empty() {
            return false;
        }
        let out = p
            .wharf()
            .args(["logs", &u.name, "--run-id", &run_id, "--step", "long"])
            .run();
        out.stdout.contains("started")
    });
    run_id
}

#[test]
fn the_container_goes_on_ctrl_c_wharf_stop_and_dag_timeout() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("teardown");

    // Ctrl-C
    let dag = long_running(&p, &u, "");
    let mut child = p.spawn(&dag);
    let first = until_started(&p, &u, None);
    assert_eq!(u.containers().len(), 1);
    nix_kill(child.id(), "INT");
    assert_eq!(child.wait().expect("wait").code(), Some(1));
    assert!(u.containers().is_empty(), "Ctrl-C: {:?}", u.containers());
    assert_eq!(p.status(&u.name)["status"], "aborted");

    // wharf stop
    let mut child = p.spawn(&dag);
    until_started(&p, &u, Some(&first));
    let out = p.wharf().args(["stop", &u.name]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(child.wait().expect("wait").code(), Some(1));
    assert!(
        u.containers().is_empty(),
        "wharf stop: {:?}",
        u.containers()
    );

    // DAG timeout
    let dag = long_running(&p, &u, "timeoutSec: 2\n");
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(u.containers().is_empty(), "timeout: {:?}", u.containers());
    let status = p.status(&u.name);
    assert!(
        status["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{status}"
    );
}

fn nix_kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn after_a_crash_cleanup_removes_the_container() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("sharedcrash");
    let dag = long_running(&p, &u, "");
    let mut child = p.spawn(&dag);
    until_started(&p, &u, None);
    child.kill().expect("SIGKILL wharf");
    let _ = child.wait();
    assert_eq!(u.containers().len(), 1, "left behind by the killed run");
    let out = p.wharf().args(["cleanup"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    wait_until("the clean-up", Duration::from_secs(10), || {
        u.containers().is_empty()
    });
}

#[test]
fn a_kept_container_is_reused_by_the_next_run_and_a_foreign_one_is_named() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("keep");
    let name = format!("{}-kept", u.name);
    let yaml = format!(
        "container:\n  image: wharf-test/base:latest\n  name: {name}\n  keepContainer: true\nsteps:\n  - sh -c 'echo run >> /tmp/runs; wc -l < /tmp/runs'\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "cmd_1").trim(), "1");
    let id = docker(&["inspect", "--format", "{{.Id}} {{.State.Running}}", &name]);
    assert!(id.ends_with(" true"), "kept running: {id}");
    // Crash clean-up leaves a kept container alone.
    let out = p.wharf().args(["cleanup"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        p.logs(&u.name, "cmd_1").trim(),
        "2",
        "the same container again"
    );
    assert!(
        out.stderr.contains("reusing the container"),
        "{}",
        out.stderr
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.Id}} {{.State.Running}}", &name]),
        id
    );
    let _ = docker(&["rm", "-f", &name]);

    // The name held by a container wharf did not make: an error that says what to do.
    docker(&[
        "run",
        "-d",
        "--label",
        &format!("{OWNER}={}", u.name),
        "--name",
        &name,
        "wharf-test/base:latest",
        "sleep",
        "600",
    ]);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = p.status(&u.name)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(&format!("the container name `{name}` is taken"))
            && error.contains(&format!("docker rm -f {name}")),
        "{error}"
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true",
        "someone else's container is left alone"
    );
    let _ = docker(&["rm", "-f", &name]);
}

#[test]
fn exec_into_an_existing_container_waits_for_it_to_run_and_leaves_it() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("execform");
    let name = format!("{}-existing", u.name);
    docker(&[
        "create",
        "--label",
        &format!("{OWNER}={}", u.name),
        "--name",
        &name,
        "wharf-test/base:latest",
        "sleep",
        "600",
    ]);
    let yaml = format!(
        "container:\n  exec: {name}\n  user: \"1000\"\n  workingDir: /home/worker\n  env:\n    - MODE=exec\nsteps:\n  - sh -c 'echo $MODE $(id -u) $(pwd) $(hostname)'\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let mut child = p.spawn(&dag);
    // Not running yet: wharf waits for it.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().expect("try_wait").is_none(), "wharf waits");
    docker(&["start", &name]);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let hostname = docker(&["inspect", "--format", "{{.Config.Hostname}}", &name]);
    assert_eq!(
        p.logs(&u.name, "cmd_1"),
        format!("exec 1000 /home/worker {hostname}\n")
    );
    assert_eq!(
        docker(&["inspect", "--format", "{{.State.Running}}", &name]),
        "true",
        "not wharf's to remove"
    );
    // The string form is the same.
    let dag = p.dag(
        &u.name,
        &format!("container: {name}\nsteps:\n  - hostname\n"),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "cmd_1").trim(), hostname);
    let _ = docker(&["rm", "-f", &name]);
}

#[test]
fn the_image_is_pulled_per_pull_policy() {
    images_are_built();
    let mut registry = wharf_testkit::Registry::start(None);
    let image = registry.push("wharf-test/base:latest", "team/shared-base:v1");
    let p = Place::new();
    let u = Unique::new("sharedpull");
    let run = |policy: &str, image: &str| {
        let dag = p.dag(
            &u.name,
            &format!(
                "container:\n  image: {image}\n  pullPolicy: {policy}\nsteps:\n  - echo ran\n"
            ),
        );
        p.run(&dag, &[])
    };
    let out = run("never", &image);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("not found locally, and pull is `never`"),
        "{}",
        out.stderr
    );
    let out = run("missing", &image);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pulled {image}")),
        "{}",
        out.stderr
    );
    let out = run("missing", &image);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        !out.stderr.contains("pulled"),
        "present: no pull: {}",
        out.stderr
    );
    let out = run("true", &image);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pulled {image}")),
        "`true` is `always`: {}",
        out.stderr
    );
    let out = run("always", &format!("{}/team/absent:v1", registry.addr));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("image not found"), "{}", out.stderr);
    assert!(u.containers().is_empty(), "{:?}", u.containers());
}

// G26: `logOutput: merged` holds for steps exec'd into the DAG's container and for a
// step's own container.
#[test]
fn merged_logs_in_the_shared_and_an_own_container() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("merged");
    let yaml = "logOutput: merged\ncontainer:\n  image: wharf-test/base:latest\nsteps:\n  - name: shared\n    command: sh -c 'echo o; sleep 0.2; echo e >&2'\n  - name: own\n    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: true\n    command: sh -c 'echo o2; sleep 0.2; echo e2 >&2'\n";
    let dag = p.dag(&u.name, yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "shared"), "o\ne\n");
    assert_eq!(p.logs(&u.name, "own"), "o2\ne2\n");
    assert!(u.containers().is_empty());
}

// G22: secrets are hidden in the logs of steps in the DAG's container and in their own.
#[test]
fn secrets_are_hidden_in_container_logs() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("secrets");
    let yaml = "secrets:\n  - {name: TOKEN, provider: env, key: WHARF_TEST_DOCKER_TOKEN}\ncontainer:\n  image: wharf-test/base:latest\n  env:\n    - TOKEN=${TOKEN}\nsteps:\n  - name: shared\n    command: sh -c 'echo \"t=$TOKEN\"; echo \"$TOKEN\" >&2'\n  - name: own\n    container:\n      image: wharf-test/base:latest\n      env:\n        - TOKEN=${TOKEN}\n    command: sh -c 'echo \"t=$TOKEN\"'\n";
    let dag = p.dag(&u.name, yaml);
    let out = p
        .wharf()
        .env("WHARF_TEST_DOCKER_TOKEN", "docker-secret-value")
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "shared"), "t=*******\n");
    assert_eq!(p.logs(&u.name, "own"), "t=*******\n");
    let err = p
        .wharf()
        .args(["logs", &u.name, "--step", "shared", "--stderr"])
        .run();
    assert_eq!(err.stdout, "*******\n");
    assert!(u.containers().is_empty());
}

// A sub-DAG with a DAG-level container gets a container of its own per child run, its
// docker steps run as usual, and nothing is left behind: after the run, and after a stop
// of the parent while a child's container step runs.
#[test]
fn sub_dags_get_their_own_containers_and_leave_none_after_a_run_or_a_stop() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("subdag");
    let child = &u.name;
    let dag = p.dag(
        "fan-parent",
        &format!(
            r#"
steps:
  - name: fan
    call: {child}
    parallel: ["a", "b"]
    output: R
  - name: after
    command: echo "${{R.summary.succeeded}} ${{R.outputs[0].HOST}} ${{R.outputs[1].HOST}}"
---
name: {child}
container:
  image: wharf-test/base:latest
steps:
  - name: inside
    command: hostname
    output: HOST
  - name: own
    executor:
      type: docker
      config:
        image: wharf-test/base:latest
        autoRemove: true
    command: echo own-${{1}}
"#
        ),
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let said = p.logs("fan-parent", "after");
    let words: Vec<&str> = said.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{said}");
    assert_eq!(words[0], "2", "{said}");
    assert_ne!(
        words[1], words[2],
        "each child run has its own container: {said}"
    );
    assert!(
        u.containers().is_empty(),
        "left behind: {:?}",
        u.containers()
    );

    // Stopped while a child's container step sleeps: the containers go with it.
    let stopped = p.dag(
        "stop-parent",
        &format!(
            "maxCleanUpTimeSec: 1\nsteps:\n  - name: hold\n    call: {child}-sleeper\n---\nname: {child}-sleeper\nsteps:\n  - name: nap\n    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: true\n    command: sleep 300\n"
        ),
    );
    let sleeper = Unique {
        name: format!("{child}-sleeper"),
    };
    let running = p.spawn(&stopped);
    wait_until("the child's container", Duration::from_secs(30), || {
        !sleeper.containers().is_empty()
    });
    let out = p.wharf().args(["stop", "stop-parent"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let output = running.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        sleeper.containers().is_empty(),
        "left behind: {:?}",
        sleeper.containers()
    );
    assert_eq!(p.status("stop-parent")["status"], "aborted");
}
