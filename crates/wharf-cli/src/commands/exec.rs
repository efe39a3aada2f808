//! `wharf exec`: one command run as a run of its own, without a DAG file.
//!
//! The command becomes a one-step DAG (`exec-COMMAND`, step `main`), written where runs
//! sent to the API as a spec are kept (`$WHARF_HOME/specs/RUN_ID/NAME.yaml`), so that the
//! run is shown, logged and retried like any other. The step's `command` is the arguments
//! joined as shell words, so the shell gets each argument as it was given.

use std::path::{Path, PathBuf};

use crate::ExitCode;
use crate::args::ExecArgs;
use crate::commands::checked_name;
use crate::commands::run::{Record, run_id_of, start};
use crate::error::{Error, Result};
use crate::term::Term;

pub(crate) fn run(args: &ExecArgs, term: &Term) -> Result<ExitCode> {
    let Some(program) = args.command.first() else {
        return Err(Error::Usage(
            "a command is required: wharf exec [OPTIONS] -- COMMAND [ARGS...]".into(),
        ));
    };
    if !args.worker_label.is_empty() {
        return Err(Error::Usage(
            "`--worker-label`: the command runs on this machine, and a worker label selects \
             a Swarm node only for a step in a container (a DAG's `workerSelector`); leave \
             it out to run the command here"
                .into(),
        ));
    }
    let name = match &args.name {
        Some(name) => checked_name(name)?,
        None => default_name(program),
    };
    let cwd = std::env::current_dir()
        .map_err(|e| Error::Usage(format!("cannot read the current directory: {e}")))?;
    let workdir = match &args.workdir {
        Some(dir) => {
            let dir = cwd.join(dir);
            if !dir.is_dir() {
                return Err(Error::Usage(format!(
                    "the working directory {} {}",
                    dir.display(),
                    if dir.exists() {
                        "is not a directory"
                    } else {
                        "does not exist"
                    }
                )));
            }
            dir
        }
        None => cwd.clone(),
    };
    for pair in &args.env {
        if !pair.contains('=') || pair.starts_with('=') {
            return Err(Error::Usage(format!(
                "invalid `--env {pair}`: give KEY=VALUE"
            )));
        }
    }
    let mut dotenv = Vec::new();
    for file in &args.dotenv {
        let path = cwd.join(file);
        if !path.is_file() {
            return Err(Error::Usage(format!(
                "the dotenv file {} does not exist",
                path.display()
            )));
        }
        dotenv.push(path);
    }
    if let Some(base) = &args.base {
        let path = cwd.join(base);
        if !path.is_file() {
            return Err(Error::Usage(format!(
                "the base configuration {} does not exist",
                path.display()
            )));
        }
        wharf_spec::set_base_config(Some(path));
    }
    let run_id = run_id_of(args.run_id.as_deref())?;
    let spec = Spec {
        name: &name,
        command: &shell_words::join(&args.command),
        shell: args.shell.as_deref(),
        workdir: &workdir,
        env: &args.env,
        dotenv: &dotenv,
    }
    .yaml(wharf_spec::chosen_dialect() == Some(wharf_spec::Dialect::V2));

    let home = wharf_store::default_home();
    let dir = home.join("specs").join(wharf_store::safe_name(&run_id));
    let file = dir.join(format!("{name}.yaml"));
    if dir.exists() || recorded(&name, &run_id) {
        return Err(Error::Usage(format!(
            "a run with the id `{run_id}` was already started (of {name}, or from a spec); \
             choose another id"
        )));
    }
    std::fs::create_dir_all(&dir)
        .and_then(|()| wharf_store::write_private(&file, spec.as_bytes()))
        .map_err(|e| Error::Read {
            path: file.clone(),
            reason: format!("cannot keep the command's DAG there: {e}"),
        })?;
    let result = start(
        &super::run::Source::file(&file),
        Some(&run_id),
        None,
        &[],
        args.verbose,
        term,
        Record::New("cli"),
    );
    if result.is_err() && !recorded(&name, &run_id) {
        // Nothing of the run was kept: neither is its DAG.
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The one-step DAG of a command.
struct Spec<'a> {
    name: &'a str,
    command: &'a str,
    shell: Option<&'a str>,
    workdir: &'a Path,
    env: &'a [String],
    dotenv: &'a [PathBuf],
}

impl Spec<'_> {
    /// The DAG as YAML, in the 2.x dialect's keys when that dialect was chosen (where the
    /// file's name names the DAG). Every value is a double-quoted scalar (a JSON string is
    /// one), whatever it holds.
    fn yaml(&self, v2: bool) -> String {
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let mut out = String::new();
        if !v2 {
            out.push_str(&format!("name: {}\n", quote(self.name)));
        }
        out.push_str(&format!(
            "{}: {}\n",
            if v2 { "working_dir" } else { "workingDir" },
            quote(&self.workdir.to_string_lossy())
        ));
        if !self.env.is_empty() {
            out.push_str("env:\n");
            for pair in self.env {
                out.push_str(&format!("  - {}\n", quote(pair)));
            }
        }
        if !self.dotenv.is_empty() {
            out.push_str("dotenv:\n");
            for file in self.dotenv {
                out.push_str(&format!("  - {}\n", quote(&file.to_string_lossy())));
            }
        }
        out.push_str(&format!(
            "steps:\n  - name: main\n    command: {}\n",
            quote(self.command)
        ));
        if let Some(shell) = self.shell {
            out.push_str(&format!("    shell: {}\n", quote(shell)));
        }
        out
    }
}

/// `exec-` and the command's file name, as Dagu names it: each character other than a
/// letter, a digit, `_` and `-` made `_` (`python3.11` gives `exec-python3_11`).
fn default_name(program: &str) -> String {
    let base = Path::new(program)
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let safe: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() {
        "command".to_owned()
    } else {
        safe
    };
    let mut name = format!("exec-{safe}");
    name.truncate(wharf_spec::DAG_NAME_MAX);
    name
}

/// Whether the store holds the run.
fn recorded(name: &str, run_id: &str) -> bool {
    wharf_store::Store::open(&wharf_store::default_home())
        .ok()
        .and_then(|store| store.run(name, run_id).ok().flatten())
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_named_after_its_commands_file_name() {
        assert_eq!(default_name("echo"), "exec-echo");
        assert_eq!(default_name("/usr/bin/python3"), "exec-python3");
        assert_eq!(default_name("./my script.sh"), "exec-my_script_sh");
        assert_eq!(default_name("python3.11"), "exec-python3_11");
        assert_eq!(default_name("/"), "exec-command");
        assert_eq!(
            default_name(&"x".repeat(100)).len(),
            wharf_spec::DAG_NAME_MAX
        );
    }

    #[test]
    fn the_spec_reads_back_as_the_dag_it_describes() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = vec![
            "A=1".to_owned(),
            "QUOTE=it's \"x\" \\ $HOME\nnext".to_owned(),
        ];
        let spec = Spec {
            name: "exec-sh",
            command: &shell_words::join(["sh", "-c", "echo 'a b' \"$A\""]),
            shell: Some("bash -e"),
            workdir: dir.path(),
            env: &env,
            dotenv: &[],
        };
        for v2 in [false, true] {
            let loaded =
                wharf_spec::load_str(spec.yaml(v2), &dir.path().join("specs/exec-sh.yaml"));
            let dag = loaded
                .dag
                .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
            assert_eq!(dag.name, "exec-sh");
            assert_eq!(dag.working_dir, dir.path());
            assert_eq!(dag.steps.len(), 1);
            assert_eq!(dag.steps[0].name, "main");
        }
    }
}
