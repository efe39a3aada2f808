//! Faults injected on purpose: a Docker daemon that stalls or goes away (a proxy in front
//! of the real one), a full disk (a tiny tmpfs for `WHARF_HOME`), and SIGKILL at chosen
//! moments. Against the real binary, the real daemon and real files; nothing here skips.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wharf_testkit::Place;
use wharf_testkit::{DockerProxy, TinyFs, Unique};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (bounded) until a container of the DAG runs.
fn until_running(u: &Unique) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=wharf.dag={}", u.name),
        ]);
        if !running.trim().is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "no container of {} ran", u.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `wharf run` of the DAG through the proxy, in the background.
fn spawn_through(p: &Place, dag: &Path, proxy: &DockerProxy) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("run")
        .arg(dag)
        .env("WHARF_HOME", p.home())
        .env("DOCKER_HOST", proxy.host())
        .env("WHARF_DOCKER_TIMEOUT", "2")
        .current_dir(p.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wharf")
}

/// Waits for the child at most `limit`; its exit code and stderr. Kills it past the limit
/// (and fails the test).
fn wait_at_most(child: Child, limit: Duration) -> (Option<i32>, String) {
    let pid = child.id();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) => (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        _ => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("wharf did not end within {:?}", started.elapsed());
        }
    }
}

/// `wharf cleanup` against the real daemon; then no container of the DAG is left.
fn cleaned_up(p: &Place, u: &Unique) {
    let out = p.wharf().args(["cleanup"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let left = u.containers();
    if !left.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(left.iter().map(String::as_str));
        docker(&args);
        panic!("containers left after wharf cleanup: {left:?}");
    }
}

fn container_step(u: &Unique, extra: &str) -> String {
    format!(
        "name: {}\nmaxCleanUpTimeSec: 1\nsteps:\n  - name: hang\n{extra}    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: true\n    command: sleep 60\n",
        u.name
    )
}

// 4. A stalled daemon: the step's timeout still ends the step, and the run.
#[test]
fn a_step_timeout_ends_the_step_while_docker_does_not_answer() {
    let p = Place::new();
    let u = Unique::new("stall-timeout");
    let proxy = DockerProxy::start(p.dir.path());
    let dag = p.dag(&u.name, &container_step(&u, "    timeoutSec: 4\n"));
    let child = spawn_through(&p, &dag, &proxy);
    until_running(&u);
    proxy.stall();
    // The timeout (4 s), twice the grace period (1 s) and the margin (10 s).
    let (code, stderr) = wait_at_most(child, Duration::from_secs(40));
    assert_eq!(code, Some(1), "{stderr}");
    let status = p.status(&u.name);
    let error = status["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out after 4s"), "{status}");
    assert_eq!(status["status"], "failed", "{status}");
    drop(proxy);
    cleaned_up(&p, &u);
}

// 4. A stalled daemon: a second signal ends the process.
#[test]
fn a_forced_stop_ends_the_process_while_docker_does_not_answer() {
    let p = Place::new();
    let u = Unique::new("stall-force");
    let proxy = DockerProxy::start(p.dir.path());
    let dag = p.dag(&u.name, &container_step(&u, ""));
    let child = spawn_through(&p, &dag, &proxy);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    until_running(&u);
    proxy.stall();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("first");
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("second");
    let (code, stderr) = wait_at_most(child, Duration::from_secs(15));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("forced to stop"), "{stderr}");
    let status = p.status(&u.name);
    assert_eq!(status["status"], "failed", "{status}");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("forced")),
        "{status}"
    );
    drop(proxy);
    cleaned_up(&p, &u);
}

// 4. A stalled daemon: `wharf stop` (one SIGTERM) ends the run.
#[test]
fn wharf_stop_ends_the_run_while_docker_does_not_answer() {
    let p = Place::new();
    let u = Unique::new("stall-stop");
    let proxy = DockerProxy::start(p.dir.path());
    let dag = p.dag(&u.name, &container_step(&u, ""));
    let child = spawn_through(&p, &dag, &proxy);
    until_running(&u);
    proxy.stall();
    let stop = p.wharf().args(["stop", &u.name]).run();
    assert_eq!(stop.code, Some(0), "{}", stop.stderr);
    // Twice the grace period (1 s), the margin (10 s), and the removal's deadline (2 s).
    let (code, stderr) = wait_at_most(child, Duration::from_secs(30));
    assert_eq!(code, Some(1), "{stderr}");
    let status = p.status(&u.name);
    assert_eq!(status["status"], "aborted", "{status}");
    drop(proxy);
    cleaned_up(&p, &u);
}

// 10. Docker gone mid-run is said in those words, for both kinds of container step.
#[test]
fn losing_docker_mid_step_is_reported_as_such() {
    let p = Place::new();
    let own = Unique::new("cut-own");
    let proxy = DockerProxy::start(p.dir.path());
    let dag = p.dag(&own.name, &container_step(&own, ""));
    let child = spawn_through(&p, &dag, &proxy);
    until_running(&own);
    proxy.cut();
    let (code, stderr) = wait_at_most(child, Duration::from_secs(40));
    assert_eq!(code, Some(1), "{stderr}");
    let status = p.status(&own.name);
    let error = status["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("Docker at unix://") && error.contains("docker-proxy.sock"),
        "{status}"
    );
    assert!(
        !error.contains("hyper") && !error.contains("without an exit code"),
        "{status}"
    );
    cleaned_up(&p, &own);

    let shared = Unique::new("cut-shared");
    std::fs::create_dir_all(p.path("shared")).expect("dir");
    let proxy = DockerProxy::start(&p.path("shared"));
    let dag = p.dag(
        &shared.name,
        &format!(
            "name: {}\nmaxCleanUpTimeSec: 1\ncontainer:\n  image: wharf-test/base:latest\nsteps:\n  - name: inside\n    command: sleep 60\n",
            shared.name
        ),
    );
    let child = spawn_through(&p, &dag, &proxy);
    until_running(&shared);
    // The step's exec is under way once the step is recorded running.
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.status(&shared.name)["steps"][0]["status"] != "running" {
        assert!(Instant::now() < deadline, "the step never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.cut();
    let (code, stderr) = wait_at_most(child, Duration::from_secs(40));
    assert_eq!(code, Some(1), "{stderr}");
    let status = p.status(&shared.name);
    let error = status["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Docker at unix://"), "{status}");
    assert!(!error.contains("is not running"), "{status}");
    cleaned_up(&p, &shared);
}

// 5. A full disk fails the step and the run, and the record says so.
#[test]
fn a_full_disk_fails_the_run_instead_of_reporting_success() {
    let p = Place::new();
    let fs = TinyFs::mount(p.home(), "512k");
    let dag = p.dag(
        "full",
        "steps:\n  - name: loud\n    command: seq 1 200000\n  - name: after\n    command: echo after-ran\n",
    );
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device") || out.stderr.contains("full"),
        "{}",
        out.stderr
    );
    // The record says what happened: the loud step failed for its log, the next never ran.
    let v = p.status("full");
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(v["steps"][0]["status"], "failed", "{v}");
    assert!(
        v["steps"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot write the log") && e.contains("No space left")),
        "{v}"
    );
    assert_eq!(v["steps"][1]["status"], "not_started", "{v}");
    assert!(!out.stdout.contains("after-ran"));
    drop(fs);
}

// 8a. SIGKILL moments after a run starts its steps: nothing of them survives cleanup.
#[test]
fn a_run_killed_as_its_steps_start_leaves_no_process_behind() {
    let p = Place::new();
    let name = format!("wharf-orphans-{}", std::process::id());
    let steps: String = (0..8)
        .map(|i| format!("  - name: s{i}\n    command: sleep 300; echo done\n"))
        .collect();
    let dag = p.dag(
        &name,
        &format!("name: {name}\ntype: graph\nsteps:\n{steps}"),
    );
    for delay_ms in [2u64, 5, 9, 14] {
        let child = p.spawn(&dag);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait_with_output();
        let out = p.wharf().args(["cleanup"]).run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let left = processes_of(&name);
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(left.is_empty(), "killed after {delay_ms} ms: left {left:?}");
        // A run that got as far as its record is failed now (one killed before it has none).
        let status = p.wharf().args(["status", &name, "--json"]).run();
        if status.code == Some(0) {
            let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
            assert_eq!(v["status"], "failed", "{v}");
        }
    }
}

/// Processes (not zombies) of a step of the DAG `dag`: their environment names it.
fn processes_of(dag: &str) -> Vec<i32> {
    let mark = format!("DAG_NAME={dag}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

// 8b. SIGKILL while a kept container's start is in flight: cleanup still gets it.
#[test]
fn a_run_killed_while_starting_a_kept_container_leaves_none_running() {
    let p = Place::new();
    for delay_ms in [50u64, 150, 300] {
        let u = Unique::new("kill-start");
        let dag = p.dag(
            &u.name,
            &format!(
                "name: {}\nsteps:\n  - name: kept\n    executor:\n      type: docker\n      config:\n        image: wharf-test/base:latest\n        autoRemove: false\n    command: sleep 60\n",
                u.name
            ),
        );
        let child = p.spawn(&dag);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait_with_output();
        let out = p.wharf().args(["cleanup"]).run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        // A start still in flight in the daemon lands within moments, or never.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut running = String::new();
        while Instant::now() < deadline {
            running = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=wharf.dag={}", u.name),
            ]);
            if !running.trim().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let all = u.containers();
        if !all.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(all.iter().map(String::as_str));
            docker(&args);
        }
        assert!(
            running.trim().is_empty(),
            "killed after {delay_ms} ms: a container runs after cleanup"
        );
    }
}
