//! Registry authentication (SPEC §6) against real registries the tests start: Debian's
//! `docker-registry` on loopback, with htpasswd (bcrypt) auth or without.

use std::path::Path;

use wharf_testkit::{Place, step_error};
use wharf_testkit::{Registry, Unique, b64, docker, images_are_built};

/// A password whose JSON, in the standard base64 alphabet, holds `+` and `/`: the daemon
/// reads such a header as no credentials at all unless it is sent as base64url.
const PASSWORD: &str = "pw?~>?~>?~>s3cret";
const USER: &str = "tester";

/// A step that pulls `image` every time and runs `echo pulled`.
fn pulling_step(name: &str, image: &str) -> String {
    format!(
        "  - name: {name}\n    command: echo pulled\n    executor:\n      type: docker\n      config:\n        image: {image}\n        pull: always\n        autoRemove: true\n"
    )
}

/// Everything a run left in WHARF_HOME, as text.
fn home_text(home: &Path) -> String {
    let mut text = String::new();
    let mut stack = vec![home.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    text
}

fn assert_secret_kept(p: &Place, outputs: &[&str]) {
    let secrets = [PASSWORD.to_owned(), b64(&format!("{USER}:{PASSWORD}"))];
    let home = home_text(&p.home());
    for secret in &secrets {
        assert!(
            !home.contains(secret.as_str()),
            "a credential in WHARF_HOME"
        );
        for out in outputs {
            assert!(
                !out.contains(secret.as_str()),
                "a credential in the output: {out}"
            );
        }
    }
}

#[test]
fn every_shape_of_registry_auths_pulls_from_a_locked_registry() {
    images_are_built();
    let mut registry = Registry::start(Some(PASSWORD));
    let image = registry.push("wharf-test/dispatcher:latest", "team/app:v1");
    let addr = registry.addr.clone();
    let p = Place::new();
    let u = Unique::new("shapes");
    let basic = b64(&format!("{USER}:{PASSWORD}"));
    let config = format!(r#"{{"auths": {{"{addr}": {{"auth": "{basic}"}}}}}}"#);
    let json_entry = format!(r#"{{"username": "{USER}", "password": "{PASSWORD}"}}"#);
    let shapes = [
        (
            "user-password",
            format!(
                "registryAuths:\n  {addr}:\n    username: {USER}\n    password: ${{REG_PASS}}\n"
            ),
        ),
        (
            "auth-field",
            format!("registryAuths:\n  {addr}:\n    auth: {basic}\n"),
        ),
        (
            "base64-string",
            format!("registryAuths:\n  {addr}: \"{basic}\"\n"),
        ),
        (
            "json-string",
            format!("registryAuths:\n  {addr}: '{json_entry}'\n"),
        ),
        (
            "scheme-and-path-in-key",
            format!("registryAuths:\n  \"http://{addr}/v2/\":\n    auth: {basic}\n"),
        ),
        (
            "whole-config",
            "registryAuths: ${WHOLE_CONFIG}\n".to_owned(),
        ),
    ];
    let mut outputs = Vec::new();
    for (shape, auths) in &shapes {
        let yaml = format!("{auths}steps:\n{}", pulling_step("pull", &image));
        let dag = p.dag(&u.name, &yaml);
        let out = p
            .wharf()
            .env("REG_PASS", PASSWORD)
            .env("WHOLE_CONFIG", &config)
            .args(["run"])
            .arg_path(&dag)
            .run();
        assert_eq!(out.code, Some(0), "{shape}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("pulled {image}")),
            "{shape}: {}",
            out.stderr
        );
        let dry = p.wharf().args(["dry"]).arg_path(&dag).run();
        let validate = p.wharf().args(["validate"]).arg_path(&dag).run();
        outputs.extend([
            out.stdout,
            out.stderr,
            dry.stdout,
            dry.stderr,
            validate.stdout,
            validate.stderr,
        ]);
    }
    // The DAG-level container pulls with them too.
    let yaml = format!(
        "registryAuths:\n  {addr}:\n    username: {USER}\n    password: ${{REG_PASS}}\ncontainer:\n  image: {image}\n  pullPolicy: always\nsteps:\n  - name: env\n    command: env\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p
        .wharf()
        .env("REG_PASS", PASSWORD)
        .args(["run"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pulled {image}")),
        "{}",
        out.stderr
    );
    assert!(
        p.logs(&u.name, "env").contains("DAG_NAME="),
        "the step's environment is in its log, where the check below looks"
    );
    let status = p.wharf().args(["status", &u.name, "--json"]).run();
    let history = p.wharf().args(["history", &u.name]).run();
    outputs.extend([out.stdout, out.stderr, status.stdout, history.stdout]);
    // The same in Dagu 2.x words: `registry_auths`, the DAG-level container's
    // `pull_policy`, a `docker.run` action's `pull`.
    let yaml = format!(
        "registry_auths:\n  {addr}:\n    auth: {basic}\ncontainer:\n  image: {image}\n  pull_policy: always\nsteps:\n  - id: show\n    run: env\n  - id: own\n    action: docker.run\n    with: {{image: {image}, pull: always, auto_remove: true, command: echo own}}\n"
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.wharf().args(["run"]).arg_path(&dag).run();
    assert_eq!(out.code, Some(0), "2.x: {}", out.stderr);
    assert!(
        out.stderr.matches(&format!("pulled {image}")).count() >= 2,
        "2.x: {}",
        out.stderr
    );
    // The image has an entrypoint: the command is its CMD, as in 1.x.
    assert_eq!(p.logs(&u.name, "own"), "dispatch: echo own\n");
    outputs.extend([out.stdout, out.stderr]);
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    assert_secret_kept(&p, &refs);
    assert!(u.containers().is_empty());
}

#[test]
fn credentials_come_from_the_dag_then_docker_auth_config_then_the_docker_config() {
    images_are_built();
    let mut registry = Registry::start(Some(PASSWORD));
    let image = registry.push("wharf-test/base:latest", "team/order:v1");
    let addr = registry.addr.clone();
    let p = Place::new();
    let u = Unique::new("order");
    let good = b64(&format!("{USER}:{PASSWORD}"));
    let bad = b64(&format!("{USER}:wrong"));
    let env_config = |auth: &str| format!(r#"{{"auths": {{"{addr}": {{"auth": "{auth}"}}}}}}"#);
    // A Docker config folder with `auths`, and one that names a credential helper.
    let plain = p.path("docker-plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    std::fs::write(plain.join("config.json"), env_config(&good)).expect("config");
    let helped = p.path("docker-helped");
    std::fs::create_dir_all(&helped).expect("mkdir");
    std::fs::write(
        helped.join("config.json"),
        format!(r#"{{"auths": {{"{addr}": {{}}}}, "credHelpers": {{"{addr}": "wharftest"}}}}"#),
    )
    .expect("config");
    let store = p.path("docker-store");
    std::fs::create_dir_all(&store).expect("mkdir");
    std::fs::write(store.join("config.json"), r#"{"credsStore": "wharftest"}"#).expect("config");
    // The credential helper: answers for this registry only, and logs what it was asked.
    let bin = p.path("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let helper = bin.join("docker-credential-wharftest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> {asked}\nif [ \"$server\" = \"{addr}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            asked = p.path("asked.txt").display()
        ),
    )
    .expect("helper");
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&helper)
        .status()
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let run = |auths: &str, env: &[(&str, &str)]| {
        let yaml = format!("{auths}steps:\n{}", pulling_step("pull", &image));
        let dag = p.dag(&u.name, &yaml);
        let mut w = p
            .wharf()
            .env("PATH", &path)
            .env(
                "DOCKER_CONFIG",
                &p.path("no-docker-config").to_string_lossy(),
            )
            .env("DOCKER_AUTH_CONFIG", "");
        for (k, v) in env {
            w = w.env(k, v);
        }
        let out = w.args(["run"]).arg_path(&dag).run();
        let error = step_error(&p.status(&u.name), "pull");
        (out, error)
    };
    let dag_bad = format!("registryAuths:\n  {addr}:\n    auth: {bad}\n");
    let dag_other = format!("registryAuths:\n  other.example:5000:\n    auth: {bad}\n");
    let env_good = env_config(&good);
    let env_bad = env_config(&bad);
    let plain_dir = plain.to_string_lossy().into_owned();
    let helped_dir = helped.to_string_lossy().into_owned();
    let store_dir = store.to_string_lossy().into_owned();

    // Nothing anywhere: anonymous, refused, and the error says so.
    let (out, error) = run("", &[]);
    assert_eq!(out.code, Some(1));
    assert!(
        error.contains("authentication refused") && error.contains("without credentials"),
        "{error}"
    );
    // The DAG's entry wins over a good DOCKER_AUTH_CONFIG, and the error names it.
    let (out, error) = run(&dag_bad, &[("DOCKER_AUTH_CONFIG", &env_good)]);
    assert_eq!(out.code, Some(1));
    assert!(
        error.contains("authentication refused")
            && error.contains(&format!("registry {addr}"))
            && error.contains("`registryAuths` of the DAG"),
        "{error}"
    );
    // An entry for another registry does not stand in the way.
    let (out, _) = run(&dag_other, &[("DOCKER_AUTH_CONFIG", &env_good)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // DOCKER_AUTH_CONFIG wins over the Docker config.
    let (out, error) = run(
        "",
        &[
            ("DOCKER_AUTH_CONFIG", &env_bad),
            ("DOCKER_CONFIG", &plain_dir),
        ],
    );
    assert_eq!(out.code, Some(1));
    assert!(error.contains("DOCKER_AUTH_CONFIG"), "{error}");
    // The Docker config: `auths`, `credHelpers`, `credsStore`.
    let (out, _) = run("", &[("DOCKER_CONFIG", &plain_dir)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (out, _) = run("", &[("DOCKER_CONFIG", &helped_dir)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (out, _) = run("", &[("DOCKER_CONFIG", &store_dir)]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(p.path("asked.txt")).expect("the helper was asked"),
        format!("{addr}\n{addr}\n")
    );
    // `~/.docker/config.json` when DOCKER_CONFIG is not set.
    let home = p.path("home-dir");
    std::fs::create_dir_all(home.join(".docker")).expect("mkdir");
    std::fs::copy(plain.join("config.json"), home.join(".docker/config.json")).expect("copy");
    let yaml = format!("steps:\n{}", pulling_step("pull", &image));
    let dag = p.dag(&u.name, &yaml);
    let out = p
        .wharf()
        .env("HOME", &home.to_string_lossy())
        .env("DOCKER_AUTH_CONFIG", "")
        .env_remove("DOCKER_CONFIG")
        .args(["run"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_secret_kept(&p, &[&out.stdout, &out.stderr]);
}

#[test]
fn pull_policies_with_a_local_tag_the_registry_lacks() {
    images_are_built();
    let mut registry = Registry::start(Some(PASSWORD));
    let pushed = registry.push("wharf-test/base:latest", "team/pushed:v1");
    let local = format!("{}/team/local-only:v1", registry.addr);
    docker(&["tag", "wharf-test/base:latest", &local]);
    let p = Place::new();
    let u = Unique::new("policies");
    let auths = format!(
        "registryAuths:\n  {}:\n    username: {USER}\n    password: '{PASSWORD}'\n",
        registry.addr
    );
    let step = |name: &str, image: &str, pull: &str| {
        format!(
            "  - name: {name}\n    command: echo ran\n    executor:\n      type: docker\n      config:\n        image: {image}\n        pull: {pull}\n        autoRemove: true\n"
        )
    };
    let absent = format!("{}/team/nowhere:v1", registry.addr);
    let yaml = format!(
        "{auths}type: graph\nsteps:\n{}{}{}{}{}{}{}",
        step("local-missing", &local, "missing"),
        step("local-never", &local, "never"),
        step("local-always", &local, "always"),
        step("pushed-always", &pushed, "always"),
        // Dagu 2.x `fallback`: a pull that fails uses the local image, when there is one.
        step("local-fallback", &local, "fallback"),
        step("pushed-fallback", &pushed, "fallback"),
        step("absent-fallback", &absent, "fallback"),
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    let _ = docker(&["image", "rm", &local]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pull of {local} failed")),
        "the fallback is told: {}",
        out.stderr
    );
    let status = p.status(&u.name);
    let error = step_error(&status, "absent-fallback");
    assert!(error.contains("image not found"), "{error}");
    for ok in [
        "local-missing",
        "local-never",
        "pushed-always",
        "local-fallback",
        "pushed-fallback",
    ] {
        assert_eq!(
            wharf_testkit::step(&status, ok)["status"],
            "succeeded",
            "{ok}: {status}"
        );
    }
    let error = step_error(&status, "local-always");
    assert!(error.contains("image not found"), "{error}");
    assert!(u.containers().is_empty());
}

#[test]
fn the_multi_registry_example_with_local_registries() {
    images_are_built();
    let mut hub = Registry::start(Some(PASSWORD));
    let mut ghcr = Registry::start(Some("other-Pa55/+"));
    let mut gcr = Registry::start(None);
    let processor = hub.push("wharf-test/dispatcher:latest", "myorg/processor:latest");
    let analyzer = ghcr.push("wharf-test/dispatcher:latest", "myorg/analyzer:v2");
    let reporter = gcr.push("wharf-test/dispatcher:latest", "myproject/reporter:stable");
    let p = Place::new();
    let u = Unique::new("multireg");
    let yaml = format!(
        r#"registryAuths:
  {hub}:
    username: ${{DOCKERHUB_USER}}
    password: ${{DOCKERHUB_TOKEN}}
  {ghcr}:
    username: ${{GITHUB_USER}}
    password: ${{GITHUB_TOKEN}}
  {gcr}:
    auth: ${{GCR_AUTH}}
steps:
  - executor:
      type: docker
      config:
        image: {processor}
    command: process-data
  - executor:
      type: docker
      config:
        image: {analyzer}
    command: analyze-results
  - executor:
      type: docker
      config:
        image: {reporter}
    command: generate-report
"#,
        hub = hub.addr,
        ghcr = ghcr.addr,
        gcr = gcr.addr
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p
        .wharf()
        .env("DOCKERHUB_USER", USER)
        .env("DOCKERHUB_TOKEN", PASSWORD)
        .env("GITHUB_USER", USER)
        .env("GITHUB_TOKEN", "other-Pa55/+")
        .env("GCR_AUTH", &b64("anyone:anything"))
        .args(["run"])
        .arg_path(&dag)
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(p.logs(&u.name, "docker_1"), "dispatch: process-data\n");
    assert_eq!(p.logs(&u.name, "docker_2"), "dispatch: analyze-results\n");
    assert_eq!(p.logs(&u.name, "docker_3"), "dispatch: generate-report\n");
    assert_secret_kept(&p, &[&out.stdout, &out.stderr]);
    for c in u.containers() {
        let _ = docker(&["rm", "-f", &c]);
    }
}

#[test]
fn an_unreachable_registry_says_so() {
    images_are_built();
    let p = Place::new();
    let u = Unique::new("unreachable");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let yaml = format!(
        "registryAuths:\n  127.0.0.1:{port}:\n    username: {USER}\n    password: '{PASSWORD}'\nsteps:\n{}",
        pulling_step("pull", &format!("127.0.0.1:{port}/team/none:v1"))
    );
    let dag = p.dag(&u.name, &yaml);
    let out = p.run(&dag, &[]);
    assert_eq!(out.code, Some(1));
    let error = step_error(&p.status(&u.name), "pull");
    assert!(error.contains("registry unreachable"), "{error}");
    assert_secret_kept(&p, &[&out.stdout, &out.stderr]);
}
