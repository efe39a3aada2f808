//! `wharf dry`: the plan, without running anything.

use crate::common::{examples, fixtures};
use wharf_testkit::Wharf;

fn dry(dir: &std::path::Path, file: &str, extra: &[&str]) -> wharf_testkit::Output {
    Wharf::new()
        .current_dir(dir)
        .args(["dry", file])
        .args(extra)
        .run()
}

fn scrub(text: &str, dir: &std::path::Path) -> String {
    let canonical = dir.canonicalize().expect("dir");
    let parent = canonical.parent().expect("parent").display().to_string();
    text.replace(&canonical.display().to_string(), "[DIR]")
        .replace(&dir.display().to_string(), "[DIR]")
        .replace(&parent, "[FIXTURES]")
}

#[test]
fn parallel_groups_follow_the_previous_item_and_precede_the_next() {
    let dir = fixtures().join("valid");
    let out = dry(&dir, "parallel-groups.yaml", &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    insta::assert_snapshot!(scrub(&out.stdout, &dir));
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!(". {name} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("left").ends_with("after: setup"), "{}", out.stdout);
    assert!(
        line("join").ends_with("after: left, right, cmd_4"),
        "{}",
        out.stdout
    );
    assert!(
        !line("independent").contains("after"),
        "depends: [] removes the chain: {}",
        out.stdout
    );
    assert!(
        line("extra").ends_with("after: independent, setup"),
        "depends adds to the chain: {}",
        out.stdout
    );
}

#[test]
fn graph_order_puts_each_step_after_its_dependencies() {
    let dir = fixtures().join("valid");
    let out = dry(&dir, "graph.yaml", &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let order: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .split_once(". ")
                .map(|(_, rest)| rest.split_whitespace().next().unwrap_or_default())
        })
        .collect();
    assert_eq!(order, ["fetch", "lint", "build", "publish"]);
}

#[test]
fn merge_keys_are_applied_and_local_keys_win() {
    let dir = fixtures().join("valid");
    let out = dry(&dir, "merge-keys.yaml", &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    insta::assert_snapshot!(scrub(&out.stdout, &dir));
    assert!(
        out.stdout
            .contains("retry up to 3 times every 1s; timeout 30s"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("retry up to 3 times every 1s; timeout 5s"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout
            .matches("in a new container from alpine:3")
            .count(),
        2,
        "{}",
        out.stdout
    );
}

#[test]
fn params_from_the_command_line_override_the_defaults() {
    let dir = fixtures().join("valid");
    let out = dry(&dir, "everything-else.yaml", &["--", "NAME=cli", "one"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("NAME=cli  (param)"), "{}", out.stdout);
    assert!(
        out.stdout.contains("$1=one  (positional param)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("$2=second  (positional param)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("B=1-b  (env)"),
        "env values expand earlier ones: {}",
        out.stdout
    );
}

#[test]
fn credentials_are_redacted() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(
        tmp.path().join("secret.yaml"),
        r#"
registryAuths:
  ghcr.io:
    username: someone
    password: literal-registry-password
  docker.io:
    username: ${HUB_USER}
    password: ${HUB_PASSWORD}
env:
  - DB_PASSWORD=literal-env-password
  - COPY=${HUB_PASSWORD}
  - PLAIN=visible
container:
  image: postgres:16
  env:
    - POSTGRES_PASSWORD=container-password
steps:
  - name: s
    command: echo hi
    env:
      - API_TOKEN=step-token
"#,
    )
    .expect("write");
    let out = Wharf::new()
        .current_dir(tmp.path())
        .env("HUB_PASSWORD", "host-env-password")
        .args(["dry", "secret.yaml"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    for secret in [
        "literal-registry-password",
        "literal-env-password",
        "host-env-password",
        "container-password",
        "step-token",
        "someone",
    ] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
    assert!(out.stdout.contains("PLAIN=visible"), "{}", out.stdout);
    assert!(
        out.stdout.contains("DB_PASSWORD=<redacted>"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("COPY=<redacted>"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("registry auths: ghcr.io (username/password), docker.io (username/password)"),
        "{}",
        out.stdout
    );
}

#[test]
fn placement_of_each_kind_of_step() {
    let dir = fixtures().join("valid");
    let out = dry(&dir, "container-everything.yaml", &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    insta::assert_snapshot!(scrub(&out.stdout, &dir).replace("/home/tester", "[HOME]"));
    let line = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.contains(&format!(". {name} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("cmd_1").ends_with("in the shared container (busybox:latest)"),
        "{}",
        out.stdout
    );
    assert!(
        line("on-host").contains("on-host  on the host"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_seed_examples_plan_without_docker() {
    let out = Wharf::new()
        .current_dir(examples())
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .args(["dry", "multi-registry.yaml"])
        .run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("in a new container from myorg/processor:latest"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("in a new container from ghcr.io/myorg/analyzer:v2"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_invalid_file_plans_nothing() {
    let dir = fixtures().join("invalid");
    let out = dry(&dir, "cycle.yaml", &[]);
    assert_eq!(out.code, Some(2));
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("dependency cycle"), "{}", out.stderr);
}
