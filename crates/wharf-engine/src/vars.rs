//! The variables of a run and of each step, and command substitution (backticks).
//!
//! Order (SPEC §3): dotenv, the DAG's `env`, params, the outputs of earlier steps, the
//! step's `env`, the `DAG_*` variables; then the host environment. A name none of these
//! knows is left as written.

use std::path::Path;
use std::process::Stdio;

use wharf_spec::env::Resolved;

/// Replaces each `` `command` `` in `text` by the command's stdout (trailing newlines
/// trimmed), run by `sh -c` in `dir` with `env`. `` \` `` is a literal backtick.
pub fn substitute_sync(text: &str, env: &[(String, String)], dir: &Path) -> Result<String, String> {
    substitute(text, |cmd| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
        finish(cmd, out.status.success(), &out.stdout)
    })
}

/// [`substitute_sync`] for async callers (a condition checked while other steps run).
pub async fn substitute_async(
    text: &str,
    env: &[(String, String)],
    dir: &Path,
) -> Result<String, String> {
    let mut out = String::new();
    for piece in split(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Command(cmd) => {
                let result = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(&cmd)
                    .envs(env.iter().map(|(k, v)| (k, v)))
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

fn substitute(
    text: &str,
    mut run: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::new();
    for piece in split(text)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Command(cmd) => out.push_str(&run(&cmd)?),
        }
    }
    Ok(out)
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

/// The variables as `(name, value)` pairs for a process, `DAG_*` and the step's own last.
pub fn step_env(resolved: &Resolved) -> Vec<(String, String)> {
    resolved
        .vars
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

pub fn host(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_are_replaced_by_their_output() {
        let dir = std::env::temp_dir();
        let env = vec![("X".to_owned(), "42".to_owned())];
        assert_eq!(
            substitute_sync("a `echo $X` b", &env, &dir),
            Ok("a 42 b".into())
        );
        assert_eq!(
            substitute_sync(r"no \`subst\`", &env, &dir),
            Ok("no `subst`".into())
        );
        assert!(substitute_sync("`false`", &env, &dir).is_err());
        assert!(substitute_sync("`open", &env, &dir).is_err());
    }
}
