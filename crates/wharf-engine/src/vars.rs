//! The variables of a run and of each step, and command substitution (backticks).
//!
//! Order (SPEC §3): dotenv, the DAG's `env`, params, the outputs of earlier steps, the
//! step's `env`, the `DAG_*` variables; then the host environment. A name none of these
//! knows is left as written.

use std::path::Path;
use std::process::Stdio;

use wharf_spec::env::Resolved;

/// The value of `text` as the DAG's author wrote it: its variables expanded by `expand`,
/// each `` `command` `` replaced by the command's stdout (trailing newlines trimmed), run
/// by `sh -c` in `dir` with `env`. `` \` `` is a literal backtick.
///
/// Only the text as written is evaluated: the commands are the author's, and what a
/// variable holds (a param given for the run, an earlier step's output) is put in as data,
/// never run. A command sees the variables in its environment (`$NAME`).
pub fn evaluate_sync(
    text: &str,
    expand: &dyn Fn(&str) -> String,
    env: &[(String, String)],
    dir: &Path,
) -> Result<String, String> {
    let mut out = String::new();
    for piece in split(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&expand(&t)),
            Piece::Command(cmd) => {
                let result = step_process(std::process::Command::new("sh"), env)
                    .arg("-c")
                    .arg(&cmd)
                    .current_dir(dir)
                    .stdin(Stdio::null())
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
                out.push_str(&finish(&cmd, result.status.success(), &result.stdout)?);
            }
        }
    }
    Ok(out)
}

/// [`evaluate_sync`] for async callers (a condition checked while other steps run).
pub async fn evaluate_async(
    text: &str,
    expand: &(dyn Fn(&str) -> String + Sync),
    env: &[(String, String)],
    dir: &Path,
) -> Result<String, String> {
    let mut out = String::new();
    for piece in split(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&expand(&t)),
            Piece::Command(cmd) => {
                let result = step_process(tokio::process::Command::new("sh"), env)
                    .arg("-c")
                    .arg(&cmd)
                    .current_dir(dir)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .await
                    .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
                out.push_str(&finish(&cmd, result.status.success(), &result.stdout)?);
            }
        }
    }
    Ok(out)
}

fn finish(cmd: &str, ok: bool, stdout: &[u8]) -> Result<String, String> {
    if !ok {
        return Err(format!("the command `{cmd}` failed"));
    }
    Ok(String::from_utf8_lossy(stdout)
        .trim_end_matches(['\n', '\r'])
        .to_owned())
}

enum Piece {
    Text(String),
    Command(String),
}

fn split(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut in_command = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'`') => {
                current.push('`');
                chars.next();
            }
            '`' => {
                let piece = std::mem::take(&mut current);
                pieces.push(if in_command {
                    Piece::Command(piece)
                } else {
                    Piece::Text(piece)
                });
                in_command = !in_command;
            }
            c => current.push(c),
        }
    }
    if in_command {
        return Err("a backtick is not closed".into());
    }
    pieces.push(Piece::Text(current));
    Ok(pieces)
}

/// A container's `env`, top to bottom: an entry reads the entries before it (`$NAME`,
/// `${NAME}`, and in a 2.x file `${env.NAME}`), then what `expand` puts in (the run's
/// values); itself or a later entry stays as written.
pub(crate) fn chained_env(
    entries: impl IntoIterator<Item = (String, String)>,
    v2: bool,
    expand: &dyn Fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in entries {
        let earlier = |n: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let own = if v2 {
            let own = wharf_spec::expand::references(&value, |n| {
                n.strip_prefix("env.").and_then(&earlier)
            });
            wharf_spec::expand::expand_unquoted(&own, |n| earlier(n))
        } else {
            wharf_spec::expand::expand(&value, |n| earlier(n))
        };
        let value = expand(&own);
        env.push((name, value));
    }
    env
}

/// The variables as `(name, value)` pairs for a process, `DAG_*` and the step's own last.
pub fn step_env(resolved: &Resolved) -> Vec<(String, String)> {
    resolved
        .vars
        .iter()
        // References into steps (`id.exitCode`) are for `${...}`, not the environment.
        .filter(|v| !v.name.contains('.'))
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

/// Whether a variable of wharf's own environment reaches the processes of steps, as in
/// Dagu: `PATH`, `HOME`, `LANG`, `TZ`, `SHELL`, and the `DAGU_*`, `DAG_*` and `LC_*`
/// families. Any other reaches a step only when the DAG names it (`env: [{X: ${X}}]`).
pub fn passes_to_steps(name: &str) -> bool {
    matches!(name, "PATH" | "HOME" | "LANG" | "TZ" | "SHELL")
        || ["DAGU_", "DAG_", "LC_"].iter().any(|p| name.starts_with(p))
}

/// A process for a step's work (its command, a condition, a backtick): wharf's own
/// environment cut to what passes to steps, then `env`.
pub fn step_process<'e, C>(mut cmd: C, env: impl IntoIterator<Item = &'e (String, String)>) -> C
where
    C: EnvCommand,
{
    cmd.clear_env();
    for (k, v) in passing_host_env() {
        cmd.set_env(k, v);
    }
    for (k, v) in env {
        cmd.set_env(k.as_ref(), v.as_ref());
    }
    cmd
}

/// wharf's own variables that pass to steps: read once (wharf never changes its own
/// environment), not at each of a run's thousands of spawns.
fn passing_host_env() -> &'static [(std::ffi::OsString, std::ffi::OsString)] {
    static PASSING: std::sync::OnceLock<Vec<(std::ffi::OsString, std::ffi::OsString)>> =
        std::sync::OnceLock::new();
    PASSING.get_or_init(|| {
        std::env::vars_os()
            .filter(|(k, _)| k.to_str().is_some_and(passes_to_steps))
            .collect()
    })
}

/// What [`step_process`] needs of a command (std's and tokio's).
pub trait EnvCommand {
    fn clear_env(&mut self);
    fn set_env(&mut self, key: &std::ffi::OsStr, value: &std::ffi::OsStr);
}

impl EnvCommand for std::process::Command {
    fn clear_env(&mut self) {
        self.env_clear();
    }
    fn set_env(&mut self, key: &std::ffi::OsStr, value: &std::ffi::OsStr) {
        self.env(key, value);
    }
}

impl EnvCommand for tokio::process::Command {
    fn clear_env(&mut self) {
        self.env_clear();
    }
    fn set_env(&mut self, key: &std::ffi::OsStr, value: &std::ffi::OsStr) {
        self.env(key, value);
    }
}

pub fn host(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_written_are_run_values_are_not() {
        let dir = std::env::temp_dir();
        let env = vec![("X".to_owned(), "42".to_owned())];
        let expand = |t: &str| t.replace("${V}", "`touch /nonexistent/pwned`");
        assert_eq!(
            evaluate_sync("a `echo $X` b", &expand, &env, &dir),
            Ok("a 42 b".into())
        );
        assert_eq!(
            evaluate_sync(r"no \`subst\`", &expand, &env, &dir),
            Ok("no `subst`".into())
        );
        // A value holding backticks is put in as it is.
        assert_eq!(
            evaluate_sync("v=${V}", &expand, &env, &dir),
            Ok("v=`touch /nonexistent/pwned`".into())
        );
        assert!(evaluate_sync("`false`", &expand, &env, &dir).is_err());
        assert!(evaluate_sync("`open", &expand, &env, &dir).is_err());
    }
}
