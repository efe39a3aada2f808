//! A place for one test: a `WHARF_HOME` and a folder for DAG files; and reading what a run
//! recorded.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Output, Wharf, wharf_bin};

/// A place for one test: a `WHARF_HOME` and a folder for DAG files.
pub struct Place {
    pub dir: tempfile::TempDir,
}

impl Default for Place {
    fn default() -> Self {
        Self::new()
    }
}

impl Place {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dag(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.path(&format!("{name}.yaml"));
        std::fs::write(&path, yaml).expect("write dag");
        path
    }

    pub fn wharf(&self) -> Wharf {
        Wharf::new()
            .env("WHARF_HOME", &self.home().to_string_lossy())
            .current_dir(self.dir.path())
    }

    /// `wharf validate` of `yaml` (as `bad.yaml`) fails, saying `said` at a place in it.
    pub fn assert_refused(&self, yaml: &str, said: &str) {
        let dag = self.dag("bad", yaml);
        let out = self.wharf().args(["validate"]).args([&dag]).run();
        assert_ne!(out.code, Some(0), "{yaml}");
        assert!(out.stderr.contains(said), "{yaml}\n{}", out.stderr);
        assert!(out.stderr.contains("bad.yaml:"), "{}", out.stderr);
    }

    pub fn run(&self, dag: &Path, extra: &[&str]) -> Output {
        self.wharf().args(["run"]).args([dag]).args(extra).run()
    }

    /// Starts `wharf run DAG` in the background (its output piped).
    pub fn spawn(&self, dag: &Path) -> std::process::Child {
        std::process::Command::new(wharf_bin())
            .arg("run")
            .arg(dag)
            .env("WHARF_HOME", self.home())
            .env_remove("NO_COLOR")
            .current_dir(self.dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn wharf")
    }

    pub fn status(&self, dag: &str) -> Value {
        let out = self.wharf().args(["status", dag, "--json"]).run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        serde_json::from_str(&out.stdout).expect("status json")
    }

    pub fn logs(&self, dag: &str, step: &str) -> String {
        let out = self.wharf().args(["logs", dag, "--step", step]).run();
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        out.stdout
    }
}

pub fn step<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {status}"))
}

/// The recorded error of a step ("" when it has none).
pub fn step_error(status: &Value, name: &str) -> String {
    step(status, name)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Processes whose command line holds `marker` (ours, still alive).
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if text.contains(marker) && !zombie {
            found.push(format!("{} {}", name.to_string_lossy(), text));
        }
    }
    found
}
