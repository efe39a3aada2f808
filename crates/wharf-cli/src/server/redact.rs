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

/// The line with its credential value replaced, when it has one.
fn redact_line(line: &str) -> Option<String> {
    let line = line.trim_end();
    let trimmed = line.trim_start().trim_start_matches("- ");
    if let Some((key, value)) = trimmed.split_once(':') {
        let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
        let value = value.trim();
        if secret_key(key) && !value.is_empty() && !reference(value) && value != REDACTED {
            let cut = line.len() - value.len();
            return Some(format!("{}{REDACTED}", &line[..cut]));
        }
    }
    // `KEY=value` words: items of env lists, params (`params: A=1 TOKEN=x`).
    let mut changed = false;
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
                changed = true;
                let tail: String = v
                    .chars()
                    .rev()
                    .take_while(|c| matches!(c, '"' | '\'' | ',' | ']'))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                out.push_str(&format!("{lead}{k}={REDACTED}{tail}{space}"));
            }
            _ => out.push_str(piece),
        }
    }
    changed.then_some(out)
}

/// A DAG file for showing: every credential value replaced by `<redacted>`.
pub(crate) fn yaml(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        match redact_line(line) {
            Some(r) => out.push_str(&r),
            None => out.push_str(line.trim_end()),
        }
        out.push('\n');
    }
    out
}

/// A spec sent back after it was shown redacted: each line that still says
/// `<redacted>` gets the value the file has on the same line (same key, same
/// indentation), so saving a page never writes the placeholder over a credential.
pub(crate) fn restore(new: &str, old: &str) -> String {
    let originals: Vec<(String, &str)> = old
        .lines()
        .filter_map(|l| redact_line(l).map(|r| (r, l)))
        .collect();
    let mut out = String::with_capacity(new.len());
    for line in new.lines() {
        let kept = originals
            .iter()
            .find(|(shown, _)| shown == line.trim_end())
            .map(|(_, original)| *original);
        out.push_str(kept.unwrap_or(line));
        out.push('\n');
    }
    if !new.ends_with('\n') {
        out.pop();
    }
    out
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
        let saved = super::restore(&edited, yaml);
        assert!(
            saved.contains("password: hunter2") && saved.contains("API_TOKEN=abc123"),
            "{saved}"
        );
        assert!(
            saved.contains("PLAIN=changed") && !saved.contains("<redacted>"),
            "{saved}"
        );
        assert_eq!(super::param("DB_PASSWORD=x"), "DB_PASSWORD=<redacted>");
        assert_eq!(super::param("WHO=x"), "WHO=x");
        assert_eq!(
            super::yaml("params: API_TOKEN=tok WHO=me\nparams: [\"SECRET_KEY=abc\", B=1]\n"),
            "params: API_TOKEN=<redacted> WHO=me\nparams: [\"SECRET_KEY=<redacted>\", B=1]\n"
        );
    }
}
