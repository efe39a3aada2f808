//! Steps on the Swarm backend (`backend: swarm`), against a real single-node swarm made on
//! the running engine for the test (and left after it, when the test made it).

use std::process::Command;
use std::time::{Duration, Instant};

use wharf_testkit::{Place, Registry, Server, docker, images_are_built, step, step_error};

/// A single-node swarm on the running engine: made when the engine is in none, left (with
/// the bridge network the swarm made) when the test is over, however it ends.
struct Swarm {
    made: bool,
    had_gwbridge: bool,
}

impl Swarm {
    fn join() -> Self {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let had_gwbridge =
            !docker(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"]).is_empty();
        if state == "active" {
            return Self {
                made: false,
                had_gwbridge,
            };
        }
        let out = Command::new("docker")
            .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "docker swarm init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            made: true,
            had_gwbridge,
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.made {
            let _ = docker(&["swarm", "leave", "--force"]);
            if !self.had_gwbridge {
                let _ = docker(&["network", "rm", "docker_gwbridge"]);
            }
        }
    }
}

/// A named volume the test uses, removed however the test ends.
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "-f", &self.0]);
    }
}

/// A label the test put on a node, taken off however the test ends.
struct NodeLabel(String, String);

impl NodeLabel {
    fn add(node: &str, label: &str) -> Self {
        docker(&[
            "node",
            "update",
            "--label-add",
            &format!("{label}=yes"),
            node,
        ]);
        Self(node.to_owned(), label.to_owned())
    }
}

impl Drop for NodeLabel {
    fn drop(&mut self) {
        let _ = docker(&["node", "update", "--label-rm", &self.1, &self.0]);
    }
}

/// A network the test made, removed however the test ends.
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = docker(&["network", "rm", &self.0]);
    }
}

/// wharf's services still in the swarm.
fn services() -> String {
    docker(&["service", "ls", "-q", "--filter", "label=wharf.run"])
}

/// The same DAG on both backends: output, exit codes, env and params, outputs, working
/// directory, user, a named volume, resources.
fn same_dag(p: &Place, backend: &str, volume: &str) {
    std::fs::create_dir_all(p.path("dags")).expect("dags");
    let dag = p.dag(
        &format!("dags/both-{backend}"),
        &format!(
            r#"params: WHO=world
env:
  - GREETING: hello
type: graph
steps:
  - name: talk
    executor: {{type: docker, config: {{image: "wharf-test/base:latest", backend: {backend}, autoRemove: true, workingDir: /tmp, container: {{User: "1000"}}}}}}
    command: sh -c 'echo "$GREETING $WHO from $(pwd) as $(id -u)"; echo "to stderr" >&2'
    output: SAID
  - name: lines
    executor: {{type: docker, config: {{image: "wharf-test/base:latest", backend: {backend}, autoRemove: true}}}}
    command: sh -c 'for i in $(seq 1 300); do echo "o$i"; echo "e$i" >&2; done'
  - name: write
    container: {{image: "wharf-test/base:latest", backend: {backend}, volumes: ["{volume}:/data"]}}
    command: sh -c 'echo kept > /data/note'
  - name: read
    depends: [write, talk]
    container: {{image: "wharf-test/base:latest", backend: {backend}, volumes: ["{volume}:/data:ro"]}}
    command: sh -c 'echo "$(cat /data/note) ${{SAID}}"'
  - name: limited
    executor: {{type: docker, config: {{image: "wharf-test/base:latest", backend: {backend}, autoRemove: true, host: {{Memory: 67108864}}}}}}
    command: cat /sys/fs/cgroup/memory/memory.limit_in_bytes
  - name: fails
    depends: [read]
    executor: {{type: docker, config: {{image: "wharf-test/base:latest", backend: {backend}, autoRemove: true}}}}
    command: sh -c 'echo failing; exit 3'
"#
        ),
    );
    let out = p.run(&dag, &["-p", "WHO=swarmers"]);
    assert_eq!(out.code, Some(1), "{backend}: {}", out.stderr);
    let name = format!("both-{backend}");
    let status = p.status(&name);
    for s in ["talk", "lines", "write", "read", "limited"] {
        assert_eq!(
            step(&status, s)["status"],
            "succeeded",
            "{backend} {s}: {status}"
        );
    }
    assert_eq!(step(&status, "fails")["status"], "failed", "{status}");
    assert_eq!(step(&status, "fails")["exitCode"], 3, "{backend}: {status}");
    assert_eq!(
        p.logs(&name, "talk"),
        "hello swarmers from /tmp as 1000\n",
        "{backend}"
    );
    let stderr = p
        .wharf()
        .args(["logs", &name, "--step", "talk", "--stderr"])
        .run();
    assert_eq!(stderr.stdout, "to stderr\n", "{backend}");
    let expected: String = (1..=300).map(|i| format!("o{i}\n")).collect();
    assert_eq!(
        p.logs(&name, "lines"),
        expected,
        "{backend}: every line, in order"
    );
    let errs = p
        .wharf()
        .args(["logs", &name, "--step", "lines", "--stderr"])
        .run();
    let expected: String = (1..=300).map(|i| format!("e{i}\n")).collect();
    assert_eq!(errs.stdout, expected, "{backend}");
    assert_eq!(
        p.logs(&name, "read"),
        "kept hello swarmers from /tmp as 1000\n",
        "{backend}: the named volume and the output"
    );
    assert_eq!(p.logs(&name, "limited").trim(), "67108864", "{backend}");
    assert_eq!(p.logs(&name, "fails"), "failing\n", "{backend}");
    let ran_on = step(&status, "talk")["ranOn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if backend == "swarm" {
        assert!(
            ran_on.starts_with("swarm node ") && ran_on.contains(", task "),
            "{status}"
        );
        let text = p.wharf().args(["status", &name]).run().stdout;
        assert!(text.contains(&format!("on {ran_on}")), "{text}");
    } else {
        assert_eq!(ran_on, "", "{status}");
    }
}

#[test]
fn container_steps_run_as_swarm_jobs() {
    images_are_built();
    let swarm = Swarm::join();
    let p = Place::new();
    let volume = Volume(format!("wharf-swarm-test-{}", std::process::id()));
    let volume = &volume.0;

    same_dag(&p, "local", volume);
    same_dag(&p, "swarm", volume);
    assert!(services().is_empty(), "services left: {}", services());
    // The installation's default backend (`docker.backend`), which the server takes too.
    std::fs::write(p.home().join("config.yaml"), "docker:\n  backend: swarm\n").expect("config");
    // The node and task show in the API's node details and on the run page.
    {
        let s = Server::start(&p);
        let (_, v) = s.get("/dag-runs/both-swarm/latest");
        let nodes = v["dagRunDetails"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let talk = nodes
            .iter()
            .find(|n| n["step"]["name"] == "talk")
            .cloned()
            .unwrap_or_default();
        assert!(
            talk["ranOn"]
                .as_str()
                .unwrap_or_default()
                .starts_with("swarm node "),
            "{v}"
        );
        let (_, _, html) = s.page("GET", "/dags/both-swarm/runs/latest", "", "");
        assert!(html.contains("on swarm node "), "{html}");

        // The swarm's nodes are the API's workers (Dagu's Workers), with their labels,
        // and listed on the System page.
        let node = docker(&["info", "--format", "{{.Swarm.NodeID}}"]);
        let hostname = docker(&[
            "node",
            "inspect",
            "--format",
            "{{.Description.Hostname}}",
            &node,
        ]);
        let label = format!("wharf-test-{}", std::process::id());
        let _label = NodeLabel::add(&node, &label);
        let (code, v) = s.get("/workers");
        assert_eq!(code, 200, "{v}");
        let workers = v["workers"].as_array().cloned().unwrap_or_default();
        let me = workers
            .iter()
            .find(|w| w["id"] == hostname.as_str())
            .unwrap_or_else(|| panic!("no worker {hostname}: {v}"));
        assert_eq!(me["healthStatus"], "healthy", "{v}");
        assert_eq!(me["labels"][&label], "yes", "{v}");
        assert!(me["totalPollers"].as_i64().is_some_and(|n| n >= 1), "{v}");
        assert!(
            me["runningTasks"].is_array() && me["lastHeartbeatAt"].is_string(),
            "{v}"
        );
        let (_, _, html) = s.page("GET", "/system", "", "");
        assert!(
            html.contains(&format!("<td>{hostname}</td>"))
                && html.contains(&format!("{label}=yes")),
            "{html}"
        );

        // `workerSelector` picks workers by these labels: a step in a container runs as a
        // job on a node that has them all; labels no node has end the step within its
        // timeout, saying why; `local` keeps a step on this engine whatever the default.
        let selected = p.dag(
            "selected",
            &format!(
                "workerSelector: {{{label}: \"yes\"}}\ntype: graph\nsteps:\n  - name: there\n    container: {{image: \"wharf-test/base:latest\"}}\n    command: echo there\n  - name: nowhere\n    timeoutSec: 3\n    workerSelector: {{{label}: \"no\"}}\n    container: {{image: \"wharf-test/base:latest\"}}\n    command: echo never\n  - name: here\n    workerSelector: local\n    container: {{image: \"wharf-test/base:latest\"}}\n    command: echo here\n"
            ),
        );
        let out = p.run(&selected, &[]);
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        let status = p.status("selected");
        assert!(
            step(&status, "there")["ranOn"]
                .as_str()
                .unwrap_or_default()
                .starts_with("swarm node "),
            "{status}"
        );
        assert_eq!(p.logs("selected", "there"), "there\n");
        let error = step_error(&status, "nowhere");
        assert!(error.contains("no suitable node"), "{error}");
        assert_eq!(step(&status, "here")["status"], "succeeded", "{status}");
        assert!(
            !step(&status, "here")["ranOn"]
                .as_str()
                .unwrap_or_default()
                .starts_with("swarm node "),
            "{status}"
        );
        assert!(services().is_empty(), "services left: {}", services());
    }

    // Steps that name no backend run on the installation's.
    let plain = p.dag(
        "plain",
        "steps:\n  - name: where\n    executor: {type: docker, config: {image: \"wharf-test/base:latest\"}}\n    command: echo here\n",
    );
    assert_eq!(p.run(&plain, &[]).code, Some(0));
    let status = p.status("plain");
    assert!(
        step(&status, "where")["ranOn"]
            .as_str()
            .unwrap_or_default()
            .starts_with("swarm node "),
        "{status}"
    );
    std::fs::remove_file(p.home().join("config.yaml")).expect("config");

    // A constraint no node satisfies: the step ends within its timeout and says why.
    // So does a reservation no node can give; an image no node has is rejected, with
    // Swarm's reason; an overlay network named by the step is joined.
    let network = Network(format!("wharf-swarm-test-{}", std::process::id()));
    let created = Command::new("docker")
        .args([
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            "10.231.47.0/24",
            &network.0,
        ])
        .output()
        .expect("docker");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let nowhere = p.dag(
        "nowhere",
        &format!("type: graph\nsteps:\n  - name: gpu\n    timeoutSec: 3\n    executor: {{type: docker, config: {{image: \"wharf-test/base:latest\", backend: swarm, placement: {{constraints: [\"node.labels.gpu == true\"], preferences: [spread=node.labels.zone]}}}}}}\n    command: echo never\n  - name: huge\n    timeoutSec: 3\n    container: {{image: \"wharf-test/base:latest\", backend: swarm, resources: {{reservations: {{memory: 4096g}}}}}}\n    command: echo never\n  - name: missing\n    container: {{image: \"wharf-test/no-such-image:1\", backend: swarm}}\n    command: echo never\n  - name: joined\n    container: {{image: \"wharf-test/base:latest\", backend: swarm, network: {}}}\n    command: ip -4 addr\n", network.0),
    );
    let started = Instant::now();
    let out = p.run(&nowhere, &[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let status = p.status("nowhere");
    let error = step_error(&status, "gpu");
    assert!(error.contains("no suitable node"), "{error}");
    let error = step_error(&status, "huge");
    assert!(error.contains("insufficient resources"), "{error}");
    let error = step_error(&status, "missing");
    assert!(
        error.contains("Swarm rejected the job's task") && error.contains("no-such-image"),
        "{error}"
    );
    assert_eq!(step(&status, "joined")["status"], "succeeded", "{status}");
    assert!(
        p.logs("nowhere", "joined").contains("10.231.47."),
        "the overlay network"
    );
    assert!(services().is_empty(), "services left: {}", services());
    drop(network);

    // The DAG's default, and a stop: the job's service is labelled with its run while it
    // runs, and removed (its task stopped) by the stop.
    let long = p.dag(
        "long",
        "backend: swarm\nmaxCleanUpTimeSec: 2\nsteps:\n  - name: wait\n    executor: {type: docker, config: {image: \"wharf-test/base:latest\"}}\n    command: sh -c 'echo started; sleep 60'\n",
    );
    let mut child = p.spawn(&long);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p
        .wharf()
        .args(["logs", "long", "--step", "wait"])
        .run()
        .stdout
        .contains("started")
    {
        assert!(Instant::now() < deadline, "the job did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let run_id = p.status("long")["runId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let labelled = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=wharf.run={run_id}"),
    ]);
    assert_eq!(
        labelled.lines().count(),
        1,
        "the job's service, labelled with its run"
    );
    let out = p.wharf().args(["stop", "long"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = child.wait();
    assert_eq!(p.status("long")["status"], "aborted");
    assert!(services().is_empty(), "services left: {}", services());

    // A run killed outright leaves its job: `wharf cleanup` removes it.
    let mut child = p.spawn(&long);
    let deadline = Instant::now() + Duration::from_secs(20);
    while services().is_empty() {
        assert!(Instant::now() < deadline, "the job did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = p.wharf().args(["cleanup"]).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        services().is_empty(),
        "services left after cleanup: {}",
        services()
    );

    // A manager reached over ssh.
    let sshd = crate::builtin::Sshd::start(&p);
    let far = p.dag(
        "far-swarm",
        "steps:\n  - name: job\n    executor: {type: docker, config: {image: \"wharf-test/base:latest\", backend: swarm}}\n    command: echo from the far manager\n",
    );
    let out = p
        .wharf()
        .env("PATH", &ssh_with_keys(&p, &sshd, "user_key"))
        .env(
            "DOCKER_HOST",
            &format!("ssh://root@127.0.0.1:{}", sshd.port),
        )
        .args(["run"])
        .args([&far])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("far-swarm", "job"), "from the far manager\n");
    assert!(services().is_empty(), "services left: {}", services());
    drop(sshd);

    // Registry credentials go with the job (the node pulls with them).
    let mut registry = Registry::start(Some("s3cret-pw"));
    let image = registry.push("wharf-test/base:latest", "swarm-base:1");
    let private = p.dag(
        "private",
        &format!(
            "registryAuths:\n  {}:\n    username: tester\n    password: s3cret-pw\nsteps:\n  - name: pulled\n    executor: {{type: docker, config: {{image: \"{image}\", backend: swarm}}}}\n    command: echo pulled\n",
            registry.addr
        ),
    );
    let out = p.run(&private, &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("private", "pulled"), "pulled\n");
    assert!(!out.stderr.contains("s3cret-pw"));
    let _ = docker(&["image", "rm", &image]);
    assert!(services().is_empty(), "services left: {}", services());

    drop(swarm);
}

/// A directory whose `ssh` is the machine's, with the test sshd's key and known hosts:
/// put first in `PATH`, it is the ssh wharf runs.
fn ssh_with_keys(p: &Place, sshd: &crate::builtin::Sshd, key: &str) -> String {
    let bin = p.path(&format!("ssh-{key}"));
    std::fs::create_dir_all(&bin).expect("bin");
    let script = bin.join("ssh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes \"$@\"\n",
            sshd.file(key),
            sshd.file("known_hosts")
        ),
    )
    .expect("ssh");
    let mut perms = std::fs::metadata(&script).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).expect("chmod");
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

// Remote engines: `DOCKER_HOST=ssh://…` (a real sshd, the machine's ssh and docker CLI on
// the far side), and Docker contexts made by the docker CLI (`DOCKER_CONTEXT`, the config's
// `currentContext`).
#[test]
fn remote_engines_over_ssh_and_docker_contexts() {
    images_are_built();
    let p = Place::new();
    let sshd = crate::builtin::Sshd::start(&p);
    let dag = p.dag(
        "far",
        "steps:\n  - name: there\n    executor: {type: docker, config: {image: \"wharf-test/base:latest\", autoRemove: true}}\n    command: echo over there\n",
    );
    let host = format!("ssh://root@127.0.0.1:{}", sshd.port);
    let path = ssh_with_keys(&p, &sshd, "user_key");
    let out = p
        .wharf()
        .env("PATH", &path)
        .env("DOCKER_HOST", &host)
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs("far", "there"), "over there\n");

    // A key the server does not take: the step says what ssh said.
    let wrong = ssh_with_keys(&p, &sshd, "other_key");
    let out = p
        .wharf()
        .env("PATH", &wrong)
        .env("DOCKER_HOST", &host)
        .args(["run"])
        .args([&dag])
        .run();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = step_error(&p.status("far"), "there");
    assert!(
        error.contains("Permission denied") && error.contains(&host),
        "{error}"
    );

    // Contexts as the docker CLI writes them.
    let config = p.path("docker-config");
    std::fs::create_dir_all(&config).expect("config");
    let cli = |args: &[&str]| {
        let out = Command::new("docker")
            .env("DOCKER_CONFIG", &config)
            .args(args)
            .output()
            .expect("docker");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&[
        "context",
        "create",
        "far",
        "--docker",
        &format!("host={host}"),
    ]);
    cli(&[
        "context",
        "create",
        "nowhere",
        "--docker",
        "host=unix:///nonexistent/docker.sock",
    ]);
    let run = |env: &[(&str, &str)]| {
        let mut w = p
            .wharf()
            .env("PATH", &path)
            .env("DOCKER_CONFIG", &config.display().to_string())
            .env_remove("DOCKER_HOST");
        for (k, v) in env {
            w = w.env(k, v);
        }
        w.args(["run"]).args([&dag]).run()
    };
    let out = run(&[("DOCKER_CONTEXT", "far")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    cli(&["context", "use", "nowhere"]);
    let out = run(&[]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = step_error(&p.status("far"), "there");
    assert!(
        error.contains("nonexistent/docker.sock") && error.contains("Docker context nowhere"),
        "{error}"
    );
    cli(&["context", "use", "far"]);
    let out = run(&[]);
    assert_eq!(out.code, Some(0), "the current context: {}", out.stderr);
    let out = run(&[("DOCKER_CONTEXT", "missing")]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let error = step_error(&p.status("far"), "there");
    assert!(error.contains("no Docker context `missing`"), "{error}");
}
