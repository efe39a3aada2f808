//! Preconditions and repeat conditions.
//!
//! A `command` condition holds when the command exits 0. A `condition` + `expected` holds
//! when the condition's value (variables expanded, backticks substituted) equals
//! `expected`, or matches it as a regex when it starts with `re:`. `negate` inverts either.

use std::path::Path;

use wharf_spec::{Condition, MatchHow};

/// Checks every condition, in order (as Dagu does: one that does not hold does not keep the
/// others from being evaluated); `Ok(None)` when all hold, `Ok(Some(why))` with each one
/// that does not, `Err` when one could not be evaluated.
pub async fn check(
    conditions: &[Condition],
    shell: &[String],
    env: &[(String, String)],
    dir: &Path,
    vars: &wharf_spec::env::Resolved,
) -> Result<Option<String>, String> {
    let expand = |t: &str| vars.expand(t, &crate::vars::host);
    let references = |t: &str| wharf_spec::expand::references(t, |n| vars.lookup(n));
    let mut unmet = Vec::new();
    for c in conditions {
        let (holds, text) = match c {
            Condition::Command {
                command,
                negate,
                resolved,
            } => {
                let command = if *resolved {
                    references(command)
                } else {
                    command.clone()
                };
                let ok = run_ok(&command, shell, env, dir).await?;
                (
                    ok != *negate,
                    format!(
                        "`{command}` {}",
                        if *negate { "succeeded" } else { "failed" }
                    ),
                )
            }
            Condition::Match {
                condition,
                expected,
                negate,
                how,
            } => {
                // A `num:` threshold may be a reference (a router's route, resolved as it
                // runs); any other `expected` of a 2.x condition is literal.
                let literal = if expected.starts_with("num:") {
                    references(expected)
                } else {
                    expected.clone()
                };
                let ok = match how {
                    MatchHow::Expanded => matches(condition, expected, env, dir, &expand).await?,
                    MatchHow::Resolved => text_matches(&references(condition), &literal)?,
                    MatchHow::Evaluated => {
                        let text = references(condition);
                        let value = crate::vars::evaluate_async(&text, &expand, env, dir).await?;
                        text_matches(value.trim(), &literal)?
                    }
                };
                (
                    ok != *negate,
                    format!(
                        "`{condition}` {} `{expected}`",
                        if *negate { "matched" } else { "did not match" }
                    ),
                )
            }
        };
        if !holds {
            unmet.push(text);
        }
    }
    Ok((!unmet.is_empty()).then(|| unmet.join("; ")))
}

/// Whether `condition`'s value matches `expected`.
pub async fn matches(
    condition: &str,
    expected: &str,
    env: &[(String, String)],
    dir: &Path,
    expand: &(dyn Fn(&str) -> String + Sync),
) -> Result<bool, String> {
    let value = crate::vars::evaluate_async(condition, expand, env, dir).await?;
    let expected = expand(expected);
    text_matches(&value, &expected)
}

/// `expected` against `value`, line by line as Dagu matches it: the condition holds when
/// one line equals `expected` (or the whole value does), or, with `re:`, when the regex
/// matches one line. An empty value is one empty line.
pub(crate) fn text_matches(value: &str, expected: &str) -> Result<bool, String> {
    if let Some(num) = expected.strip_prefix("num:") {
        // A number compared. A value that is not one cannot be: an error, not a
        // mismatch (a numeric gate that silently stopped gating would be worse).
        let pattern = wharf_spec::formats::numeric_pattern(num)
            .map_err(|e| format!("`{expected}` is not a numeric comparison: {e}"))?;
        return match wharf_spec::formats::finite_number(value) {
            Some(v) => pattern.holds(v, &pattern.threshold),
            None => Err(format!(
                "`{}` is not a number, so it cannot be compared with `{expected}`",
                value.trim()
            )),
        };
    }
    let mut lines = value.lines().map(|l| l.trim_end_matches('\r'));
    match expected.strip_prefix("re:") {
        Some(pattern) => {
            let re = regex::Regex::new(pattern)
                .map_err(|e| format!("`{expected}` is not a valid regex: {e}"))?;
            Ok(if value.is_empty() {
                re.is_match("")
            } else {
                lines.any(|l| re.is_match(l))
            })
        }
        None => {
            let expected = expected.trim();
            Ok(value.trim() == expected || lines.any(|l| l.trim() == expected))
        }
    }
}

/// Runs a command through the shell; whether it exited 0.
pub async fn run_ok(
    command: &str,
    shell: &[String],
    env: &[(String, String)],
    dir: &Path,
) -> Result<bool, String> {
    let status = crate::vars::step_process(tokio::process::Command::new(&shell[0]), env)
        .args(&shell[1..])
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .status()
        .await
        .map_err(|e| format!("cannot run the condition `{command}`: {e}"))?;
    Ok(status.success())
}

/// Whether the output text holds `pattern` (a substring, or a regex with `re:`).
pub fn text_matches_in(text: &str, pattern: &str) -> bool {
    match pattern.strip_prefix("re:") {
        Some(p) => regex::Regex::new(p).is_ok_and(|re| re.is_match(text)),
        None => text.contains(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_text_or_regex() {
        assert_eq!(text_matches("3", "re:^[1-5]$"), Ok(true));
        assert_eq!(text_matches("6", "re:^[1-5]$"), Ok(false));
        assert_eq!(text_matches("hello\n", "hello"), Ok(true));
        assert!(text_matches("x", "re:(").is_err());
        assert_eq!(text_matches("0.95", "num:>=0.9"), Ok(true));
        assert_eq!(text_matches(" 0.5\n", "num:>=0.9"), Ok(false));
        assert_eq!(text_matches("-3", "num:< -2"), Ok(true));
        assert!(text_matches("high", "num:>1").is_err());
        assert!(text_matches("1", "num:=1").is_err());
        // Line by line: one line that matches is enough, and `^…$` hold per line.
        assert_eq!(text_matches("starting\nready\n", "ready"), Ok(true));
        assert_eq!(text_matches("a\n3\nb", "re:^[1-5]$"), Ok(true));
        assert_eq!(text_matches("a\nb", "re:^[1-5]$"), Ok(false));
        assert_eq!(text_matches("readyness", "ready"), Ok(false));
        assert_eq!(text_matches("", "re:^$"), Ok(true));
        assert_eq!(text_matches("", ""), Ok(true));
    }
}
