//! The real `wharf` binary, run with arguments and an environment, and what it printed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `wharf` binary of this workspace's build (`WHARF_BIN` names another): beside the
/// test's own executable, in the target folder.
pub fn wharf_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WHARF_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the test's executable");
    // target/<profile>/deps/<test> -> target/<profile>/wharf
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target folder");
    let bin = profile.join("wharf");
    assert!(
        bin.is_file(),
        "no wharf binary at {}: build the workspace first (cargo build, or cargo nextest run --workspace)",
        bin.display()
    );
    bin
}

pub struct Wharf {
    cmd: Command,
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Default for Wharf {
    fn default() -> Self {
        Self::new()
    }
}

impl Wharf {
    pub fn new() -> Self {
        let mut cmd = Command::new(wharf_bin());
        cmd.env_remove("NO_COLOR").env("HOME", "/home/tester");
        Self { cmd }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.cmd.env_remove(key);
        self
    }

    pub fn arg_path(mut self, path: &Path) -> Self {
        self.cmd.arg(path);
        self
    }

    pub fn arg_files(mut self, files: &[PathBuf]) -> Self {
        self.cmd.arg("validate").args(files);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn run(mut self) -> Output {
        let out = self.cmd.output().expect("run wharf");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
