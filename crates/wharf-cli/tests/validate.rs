//! `wharf validate`: the fixture tables of valid and invalid files.
//!
//! An invalid fixture says what it expects on the lines themselves: `# error: PHRASE` (or
//! `# warning: PHRASE`) on a line means a diagnostic of that severity at that line whose
//! message contains PHRASE; `# expect: error: PHRASE` in the first line means one anywhere.
//! Every diagnostic must be expected, and every expectation met. The whole output is also
//! kept as a snapshot, so the columns, carets and hints are reviewed as users see them.

use std::path::Path;

use regex::Regex;

use crate::common::{examples, fixtures};
use wharf_testkit::Wharf;

struct Expect {
    line: Option<usize>,
    severity: String,
    phrase: String,
}

fn expectations(source: &str) -> Vec<Expect> {
    let inline = Regex::new(r"#\s*(error|warning):\s*([^#]+)").expect("regex");
    let header = Regex::new(r"^#\s*expect:\s*(error|warning):\s*(.+)$").expect("regex");
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        if let Some(c) = header.captures(line) {
            out.push(Expect {
                line: None,
                severity: c[1].to_owned(),
                phrase: c[2].trim().to_owned(),
            });
            continue;
        }
        for c in inline.captures_iter(line) {
            out.push(Expect {
                line: Some(i + 1),
                severity: c[1].to_owned(),
                phrase: c[2].trim().to_owned(),
            });
        }
    }
    out
}

/// The diagnostics' first lines: (line, severity, message).
fn diagnostics(stderr: &str, file: &str) -> Vec<(usize, String, String)> {
    let head = Regex::new(&format!(
        r"(?m)^{}:(\d+):(\d+): (error|warning): (.*)$",
        regex::escape(file)
    ))
    .expect("regex");
    head.captures_iter(stderr)
        .map(|c| {
            (
                c[1].parse().expect("line"),
                c[3].to_owned(),
                c[4].to_owned(),
            )
        })
        .collect()
}

/// What differs between the file's expectations and what wharf said (empty when all match).
fn check_expectations(path: &Path, stderr: &str, shown: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let source = std::fs::read_to_string(path).expect("fixture");
    let mut expected = expectations(&source);
    if source.is_empty() {
        // An empty file has no line to carry its expectation.
        expected.push(Expect {
            line: None,
            severity: "error".into(),
            phrase: "the file is empty".into(),
        });
    }
    let found = diagnostics(stderr, shown);
    for e in &expected {
        let hit = found.iter().any(|(line, sev, msg)| {
            *sev == e.severity && msg.contains(&e.phrase) && e.line.is_none_or(|l| l == *line)
        });
        if !hit {
            problems.push(format!(
                "{shown}: expected {} at line {:?} containing {:?}",
                e.severity, e.line, e.phrase
            ));
        }
    }
    for (line, sev, msg) in &found {
        let wanted = expected.iter().any(|e| {
            e.severity == *sev && msg.contains(&e.phrase) && e.line.is_none_or(|l| l == *line)
        });
        if !wanted {
            problems.push(format!("{shown}: unexpected {sev} at line {line}: {msg}"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("--- stderr of {shown} ---\n{stderr}"));
    }
    problems
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn invalid_fixtures_report_every_error_at_its_line() {
    let dir = fixtures().join("invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 30, "the invalid fixtures are missing");
    let mut problems = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let out = Wharf::new()
            .current_dir(&dir)
            .args(["validate", &name])
            .run();
        assert_eq!(out.code, Some(2), "{name} must be invalid\n{}", out.stderr);
        assert!(
            out.stdout.is_empty(),
            "{name}: nothing on stdout for an invalid file: {}",
            out.stdout
        );
        assert!(!out.stderr.contains("panicked"), "{name}: {}", out.stderr);
        problems.extend(check_expectations(&path, &out.stderr, &name));
        let stem = name.trim_end_matches(".yaml");
        insta::assert_snapshot!(format!("invalid__{stem}"), out.stderr);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn valid_fixtures_pass_with_only_their_warnings() {
    let dir = fixtures().join("valid");
    for path in yaml_files(&dir) {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let out = Wharf::new()
            .current_dir(&dir)
            .args(["validate", &name])
            .run();
        assert_eq!(out.code, Some(0), "{name} must be valid\n{}", out.stderr);
        assert!(
            out.stdout.starts_with(&format!("{name}: ok (")),
            "{name}: {}",
            out.stdout
        );
        let problems = check_expectations(&path, &out.stderr, &name);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn every_example_of_the_seed_validates() {
    let files = yaml_files(&examples());
    assert!(files.len() >= 10, "examples/ holds the seed's examples");
    let out = Wharf::new().current_dir(examples()).arg_files(&files).run();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), files.len(), "{}", out.stdout);
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
    // The seed's own "Container Field Configuration" publishes ports on the host network,
    // which Docker ignores: the one warning the examples deserve.
    assert_eq!(out.stderr.matches("warning:").count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`ports` are not published with `network: host`"),
        "{}",
        out.stderr
    );
}

#[test]
fn all_files_are_checked_and_the_exit_code_is_two_if_any_is_invalid() {
    let valid = fixtures().join("valid/graph.yaml");
    let invalid = fixtures().join("invalid/cycle.yaml");
    let out = Wharf::new()
        .args(["validate"])
        .args([&invalid, &valid])
        .run();
    assert_eq!(out.code, Some(2));
    assert!(
        out.stdout.contains("graph.yaml: ok (4 steps)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("cycle.yaml: invalid (2 errors)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let out = Wharf::new()
        .args(["validate", "/nonexistent/dag.yaml"])
        .run();
    assert_eq!(out.code, Some(2));
    assert_eq!(
        out.stderr,
        "error: cannot read /nonexistent/dag.yaml: no such file\n"
    );
}

#[test]
fn no_file_is_a_usage_error() {
    let out = Wharf::new().args(["validate"]).run();
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("FILE"), "{}", out.stderr);
}

#[test]
fn credentials_never_reach_the_output() {
    let dir = fixtures().join("invalid");
    let out = Wharf::new()
        .current_dir(&dir)
        .args(["validate", "registry-auths.yaml"])
        .run();
    assert_eq!(out.code, Some(2));
    for secret in ["hunter2-do-not-print", "hunter3-do-not-print"] {
        // The source line of a diagnostic is shown, so the test file puts the secrets on
        // lines that carry no diagnostic of their own, except gcr.io's; that one's line
        // is shown with the caret, which is the user's own text; the message never
        // repeats a value.
        for line in out.stderr.lines().filter(|l| l.contains(": error: ")) {
            assert!(
                !line.contains(secret),
                "a message repeats a credential: {line}"
            );
        }
    }
    assert!(
        !out.stderr.contains("hunter2-do-not-print"),
        "{}",
        out.stderr
    );
}

#[test]
fn colour_only_on_request_of_a_terminal_and_never_with_no_color() {
    let dir = fixtures().join("invalid");
    let out = Wharf::new()
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .args(["validate", "cycle.yaml"])
        .run();
    assert!(!out.stderr.contains('\x1b'), "{}", out.stderr);
}

#[test]
fn a_truncated_file_never_panics() {
    // Every prefix of every fixture: whatever is cut, the answer is a diagnostic.
    let tmp = tempfile::tempdir().expect("tmp");
    let mut sources = Vec::new();
    for sub in ["valid", "invalid"] {
        for path in yaml_files(&fixtures().join(sub)) {
            sources.push(std::fs::read_to_string(path).expect("read"));
        }
    }
    let mut files = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let cuts: Vec<usize> = (0..source.len())
            .step_by(7)
            .filter(|c| source.is_char_boundary(*c))
            .collect();
        for cut in cuts {
            let path = tmp.path().join(format!("t{i}_{cut}.yaml"));
            std::fs::write(&path, &source[..cut]).expect("write");
            files.push(path);
        }
    }
    for chunk in files.chunks(200) {
        let out = Wharf::new().args(["validate"]).args(chunk).run();
        assert!(matches!(out.code, Some(0 | 2)), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}
