//! Credentials out of what the server shows: YAML, parameters, environment values.
//!
//! A value is a credential when its key names one (`password`, `token`, `secret`, `auth`,
//! `*_KEY`, ...: the same rule as `wharf dry`), unless it only refers to a variable
//! (`${TOKEN}`), which says nothing.

pub(crate) const REDACTED: &str = "<redacted>";

fn secret_key(key: &str) -> bool {
    wharf_spec::env::is_secret_name(key)
        || key.eq_ignore_ascii_case("auth")
        || key.eq_ignore_ascii_case("password")
}

fn reference(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    v.starts_with("${") && v.ends_with('}')
}

/// A credential found on a line: its key and its value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    key: String,
    value: String,
}

/// The line with its credential values replaced, and what was replaced, in order.
fn redact_found(line: &str) -> (String, Vec<Found>) {
    let line = line.trim_end();
    let trimmed = line.trim_start().trim_start_matches("- ");
    if let Some((key, value)) = trimmed.split_once(':') {
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        let value = value.trim();
        if secret_key(key) && !value.is_empty() && !reference(value) && value != REDACTED {
            let cut = line.len() - value.len();
            return (
                format!("{}{REDACTED}", &line[..cut]),
                vec![Found {
                    key: key.to_owned(),
                    value: value.to_owned(),
                }],
            );
        }
    }
    // `KEY=value` words: items of env lists, params (`params: A=1 TOKEN=x`).
    let mut found = Vec::new();
    let mut out = String::with_capacity(line.len());
    for piece in line.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end();
        let space = &piece[word.len()..];
        let bare = word.trim_start_matches(['"', '\'', '-', '[']);
        let lead = &word[..word.len() - bare.len()];
        match bare.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && secret_key(k)
                    && !reference(v)
                    && v.trim_matches(['"', '\'', ',', ']']) != REDACTED =>
            {
                let tail_len = v
                    .chars()
                    .rev()
                    .take_while(|c| matches!(c, '"' | '\'' | ',' | ']'))
                    .map(char::len_utf8)
                    .sum::<usize>();
                let (value, tail) = v.split_at(v.len() - tail_len);
                found.push(Found {
                    key: k.to_owned(),
                    value: value.to_owned(),
                });
                out.push_str(&format!("{lead}{k}={REDACTED}{tail}{space}"));
            }
            _ => out.push_str(piece),
        }
    }
    (out, found)
}

/// A DAG file for showing: every credential value replaced by `<redacted>`.
pub(crate) fn yaml(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        out.push_str(&redact_found(line).0);
        out.push('\n');
    }
    out
}

/// The key a `<redacted>` at byte `at` of `line` stands for: the `KEY` of `KEY=<redacted>`,
/// or the key of `key: <redacted>`.
fn placeholder_key(line: &str, at: usize) -> Option<String> {
    let before = &line[..at];
    if let Some(k) = before.strip_suffix('=') {
        let key: String = k
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return (!key.is_empty()).then_some(key);
    }
    let k = before.trim_end().strip_suffix(':')?;
    let key = k
        .trim()
        .trim_start_matches("- ")
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then(|| key.to_owned())
}

/// A spec sent back after it was shown redacted: each `<redacted>` gets the file's value
/// for its key back, so saving a page never writes the placeholder over a credential.
///
/// A line shown unchanged gets its own values back. Otherwise (a line edited, moved or
/// added) the n-th `<redacted>` of a key takes the n-th value of that key in the file
/// that no unchanged line took. A `<redacted>` for which the file has no value is an error:
/// the placeholder is never written.
pub(crate) fn restore(new: &str, old: &str) -> Result<String, String> {
    let old_lines: Vec<&str> = old.lines().collect();
    let originals: Vec<(String, Vec<Found>)> = old_lines.iter().map(|l| redact_found(l)).collect();
    let mut taken = vec![false; originals.len()];
    let lines: Vec<&str> = new.lines().collect();
    // First, the lines shown unchanged: each takes one old line that shows the same.
    let mut kept: Vec<Option<usize>> = vec![None; lines.len()];
    for (i, line) in lines.iter().enumerate() {
        if !line.contains(REDACTED) {
            continue;
        }
        if let Some(j) = (0..originals.len())
            .find(|&j| !taken[j] && !originals[j].1.is_empty() && originals[j].0 == line.trim_end())
        {
            taken[j] = true;
            kept[i] = Some(j);
        }
    }
    // The values no unchanged line took, per key, in file order.
    let mut left: Vec<Found> = originals
        .iter()
        .zip(&taken)
        .filter(|(_, t)| !**t)
        .flat_map(|((_, found), _)| found.iter().cloned())
        .collect();
    let mut out = String::with_capacity(new.len());
    for (i, line) in lines.iter().enumerate() {
        if let Some(j) = kept[i] {
            out.push_str(old_lines[j]);
        } else {
            let mut rest = *line;
            let mut done = 0;
            while let Some(at) = rest.find(REDACTED) {
                let key = placeholder_key(line, done + at);
                let value = key.as_ref().and_then(|k| {
                    let n = left.iter().position(|f| &f.key == k)?;
                    Some(left.remove(n).value)
                });
                let Some(value) = value else {
                    return Err(format!(
                        "line {}: {} says {REDACTED} but the file has no value to keep for it; write the value itself",
                        i + 1,
                        key.map_or_else(|| "a value".to_owned(), |k| format!("`{k}`")),
                    ));
                };
                out.push_str(&rest[..at]);
                out.push_str(&value);
                done += at + REDACTED.len();
                rest = &rest[at + REDACTED.len()..];
            }
            out.push_str(rest);
        }
        out.push('\n');
    }
    if !new.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// `NAME=value` with the value redacted when NAME names a credential.
pub(crate) fn param(word: &str) -> String {
    match word.split_once('=') {
        Some((k, v)) if secret_key(k) && !reference(v) => format!("{k}={REDACTED}"),
        _ => word.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_are_redacted_in_the_yaml_shown() {
        let yaml = "registryAuths:\n  ghcr.io:\n    username: me\n    password: hunter2  \n  gcr.io:\n    auth: ${GCR_AUTH}\nenv:\n  - API_TOKEN=abc123\n  - DB_PASSWORD: \"s3cret\"\n  - PLAIN=visible\n";
        let shown = super::yaml(yaml);
        for secret in ["hunter2", "abc123", "s3cret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("${GCR_AUTH}")
                && shown.contains("PLAIN=visible")
                && shown.contains("username: me")
        );
        // Saved as shown, with one line edited: the credentials come back.
        let edited = shown.replace("PLAIN=visible", "PLAIN=changed");
        let saved = super::restore(&edited, yaml).unwrap();
        assert!(
            saved.contains("password: hunter2") && saved.contains("API_TOKEN=abc123"),
            "{saved}"
        );
        assert!(
            saved.contains("PLAIN=changed") && !saved.contains("<redacted>"),
            "{saved}"
        );
        // An edit on a line that holds two credentials keeps both.
        let two = "params: API_TOKEN=tok DB_PASSWORD='p w' WHO=me\n";
        let edited = super::yaml(two).replace("WHO=me", "WHO=you");
        assert_eq!(
            super::restore(&edited, two).unwrap(),
            "params: API_TOKEN=tok DB_PASSWORD='p w' WHO=you\n"
        );
        // A line moved and edited, a key written as `key: <redacted>`.
        let old = "a:\n  password: hunter2\nb: 1\n";
        let new = "b: 2\na:\n    password: <redacted>\n";
        assert_eq!(
            super::restore(new, old).unwrap(),
            "b: 2\na:\n    password: hunter2\n"
        );
        // A placeholder with nothing to keep is refused, never written.
        assert!(super::restore("token: <redacted>\n", "b: 1\n").is_err());
        assert_eq!(super::param("DB_PASSWORD=x"), "DB_PASSWORD=<redacted>");
        assert_eq!(super::param("WHO=x"), "WHO=x");
        assert_eq!(
            super::yaml("params: API_TOKEN=tok WHO=me\nparams: [\"SECRET_KEY=abc\", B=1]\n"),
            "params: API_TOKEN=<redacted> WHO=me\nparams: [\"SECRET_KEY=<redacted>\", B=1]\n"
        );
    }
}
