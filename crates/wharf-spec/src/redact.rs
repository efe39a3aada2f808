//! Credentials out of a DAG file's text, and back in when a shown file is saved.
//!
//! A value is a credential when its key names one (`password`, `token`, `secret`, `auth`,
//! `*_KEY`, ...; [`is_secret_key`]), unless it only refers to a variable (`${TOKEN}`),
//! which says nothing. `KEY=value` words (items of `env` lists, `params` strings) count
//! too. The file is read as a YAML tree, so block scalars (`password: |` with the value on
//! the lines below), flow mappings, quoted values and anchors are all covered: a value
//! anchored elsewhere and used under a credential key through an alias is redacted where
//! it is written. Only the values' text is replaced; everything else of the file (its
//! comments, its layout) is shown as written. A file that is not valid YAML is redacted
//! line by line.

use crate::yaml::{Kind, Node};

pub const REDACTED: &str = "<redacted>";

/// Whether a key (or a variable's name) says its value is a credential.
pub fn is_secret_key(key: &str) -> bool {
    crate::env::is_secret_name(key)
        || key.eq_ignore_ascii_case("auth")
        || key.eq_ignore_ascii_case("password")
}

/// Whether a value only refers to a variable (`${TOKEN}`).
fn reference(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    v.starts_with("${") && v.ends_with('}')
}

/// `NAME=value` with the value redacted when NAME names a credential.
pub fn param(word: &str) -> String {
    match word.split_once('=') {
        Some((k, v)) if is_secret_key(k) && !reference(v) => format!("{k}={REDACTED}"),
        _ => word.to_owned(),
    }
}

/// A `<redacted>` in a text sent back for which the file has no value to keep.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "line {line}: {} says {REDACTED} but the file has no value to keep for it; write the value itself",
    key.as_ref().map_or_else(|| "a value".to_owned(), |k| format!("`{k}`"))
)]
pub struct RestoreError {
    pub line: usize,
    pub key: Option<String>,
}

/// A place in the text that holds a credential: a byte range and the key it belongs to.
#[derive(Debug, Clone)]
struct Site {
    start: usize,
    end: usize,
    key: String,
}

/// The file's text with every credential value replaced by `<redacted>`.
pub fn source(text: &str) -> String {
    if !may_hold_credentials(text) {
        return text.to_owned();
    }
    let Some(sites) = sites(text) else {
        return lines::redact(text);
    };
    replace(text, sites.iter().map(|s| (s.start, s.end, REDACTED)))
}

/// A text sent back after it was shown redacted: each `<redacted>` gets the value the old
/// text has for its key (the n-th `<redacted>` of a key the n-th value of that key), so
/// saving a shown file never writes the placeholder over a credential. A `<redacted>` for
/// which the old text has no value is an error, naming its line.
pub fn restore(new: &str, old: &str) -> Result<String, RestoreError> {
    let (Some(placeholders), Some(originals)) = (sites_of(new, true), sites(old)) else {
        return lines::restore(new, old);
    };
    let mut taken = vec![false; originals.len()];
    let mut edits = Vec::with_capacity(placeholders.len());
    for p in &placeholders {
        let found = originals
            .iter()
            .enumerate()
            .find(|(i, o)| !taken[*i] && o.key == p.key);
        let Some((i, o)) = found else {
            return Err(RestoreError {
                line: new[..p.start].matches('\n').count() + 1,
                key: Some(p.key.clone()),
            });
        };
        taken[i] = true;
        edits.push((p.start, p.end, &old[o.start..o.end]));
    }
    Ok(replace(new, edits.into_iter()))
}

/// `text` with the byte ranges replaced (ranges in any order, not overlapping).
fn replace<'a>(text: &str, edits: impl Iterator<Item = (usize, usize, &'a str)>) -> String {
    let mut edits: Vec<(usize, usize, &str)> = edits.collect();
    edits.sort_by_key(|e| e.0);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, with) in edits {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(with);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Whether a credential key could be written in `text`: each key [`is_secret_key`] takes
/// holds one of these words, whatever its case; a text without any (and without an escape
/// that could spell one in a quoted key) has nothing to redact, and is not parsed again.
fn may_hold_credentials(text: &str) -> bool {
    // `PASSWORD` and `PASSWD` hold `pass`; `API_KEY`, `ACCESS_KEY` and `PRIVATE_KEY`
    // hold `_key`. A backslash may escape a letter of a key in double quotes.
    const WORDS: [&str; 8] = [
        "pass",
        "secret",
        "token",
        "apikey",
        "_key",
        "credential",
        "auth",
        "\\",
    ];
    let lower = text.to_ascii_lowercase();
    WORDS.iter().any(|w| lower.contains(w))
}

/// The credential values of a text, or None when it is not YAML.
fn sites(text: &str) -> Option<Vec<Site>> {
    sites_of(text, false)
}

/// The credential values of a text (`placeholders`: the `<redacted>` ones instead), in
/// the order they are written; None when the text is not YAML.
fn sites_of(text: &str, placeholders: bool) -> Option<Vec<Site>> {
    let doc = crate::yaml::load(text).ok()?;
    let offsets = Offsets::new(text);
    let mut walk = Walk {
        text,
        offsets: &offsets,
        placeholders,
        sites: Vec::new(),
        anchored: Vec::new(),
        in_auths: false,
    };
    if let Some(root) = &doc.root {
        walk.node(root, None);
        // A value that an alias puts under a credential key is redacted where it is
        // written: at its anchor.
        let anchored = std::mem::take(&mut walk.anchored);
        walk.find_anchors(root, &anchored);
    }
    let mut sites = walk.sites;
    sites.sort_by_key(|s| s.start);
    sites.dedup_by_key(|s| s.start);
    Some(sites)
}

struct Walk<'a> {
    text: &'a str,
    offsets: &'a Offsets,
    placeholders: bool,
    sites: Vec<Site>,
    /// (key, value) of credentials written as aliases: their anchors are to be found.
    anchored: Vec<(String, String)>,
    /// Below `registryAuths`: every value is a credential.
    in_auths: bool,
}

impl Walk<'_> {
    fn node(&mut self, node: &Node, key: Option<&str>) {
        match &node.kind {
            Kind::Map(entries) => {
                for e in entries.iter().filter(|e| !e.merged) {
                    let auths = matches!(e.key.as_str(), Some("registryAuths" | "registry_auths"));
                    // Every value under `registryAuths` but a username is a credential,
                    // whatever its key (a registry's base64 `user:password`, its JSON,
                    // the whole config).
                    let was = self.in_auths;
                    self.in_auths = was || auths;
                    self.node(&e.value, e.key.as_str());
                    self.in_auths = was;
                }
            }
            Kind::Seq(items) => items.iter().for_each(|i| self.node(i, None)),
            Kind::Scalar(s) => {
                let Some((start, end)) = self.value_range(node) else {
                    return;
                };
                let raw = &self.text[start..end];
                match key {
                    Some(k) if (self.in_auths && k != "username") || is_secret_key(k) => {
                        if raw.starts_with('*') {
                            self.anchored.push((k.to_owned(), s.text.clone()));
                        } else if self.wanted(&s.text) {
                            self.sites.push(Site {
                                start,
                                end,
                                key: k.to_owned(),
                            });
                        }
                    }
                    _ => self.words(start, raw),
                }
            }
        }
    }

    /// Whether a value is one to report: a credential, or (for placeholders) `<redacted>`.
    fn wanted(&self, value: &str) -> bool {
        let is_placeholder = value.trim() == REDACTED;
        if self.placeholders {
            is_placeholder
        } else {
            !value.trim().is_empty() && !reference(value) && !is_placeholder
        }
    }

    /// `KEY=value` words of a scalar's text whose KEY names a credential.
    fn words(&mut self, start: usize, raw: &str) {
        let mut at = 0;
        for piece in raw.split_inclusive(char::is_whitespace) {
            let word = piece.trim_end();
            let bare = word.trim_start_matches(['"', '\'', '-', '[']);
            let lead = word.len() - bare.len();
            if let Some((k, v)) = bare.split_once('=') {
                let tail = v
                    .chars()
                    .rev()
                    .take_while(|c| matches!(c, '"' | '\'' | ',' | ']'))
                    .map(char::len_utf8)
                    .sum::<usize>();
                let value = &v[..v.len() - tail];
                if !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && is_secret_key(k)
                    && self.wanted(value)
                {
                    let value_start = start + at + lead + k.len() + 1;
                    self.sites.push(Site {
                        start: value_start,
                        end: value_start + value.len(),
                        key: k.to_owned(),
                    });
                }
            }
            at += piece.len();
        }
    }

    /// The byte range of a scalar's value as written: without an anchor or tag before it,
    /// and, for a block scalar, without the blank lines and indentation after it.
    fn value_range(&self, node: &Node) -> Option<(usize, usize)> {
        let mut start = self.offsets.of(node.span.start.line, node.span.start.col)?;
        let end = self.offsets.of(node.span.end.line, node.span.end.col)?;
        if end < start {
            return None;
        }
        loop {
            let rest = &self.text[start..end];
            if rest.starts_with('&') || rest.starts_with('!') {
                let token = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let after = &rest[token..];
                start += token + (after.len() - after.trim_start().len());
            } else {
                break;
            }
        }
        let raw = &self.text[start..end];
        Some((start, start + raw.trim_end().len()))
    }

    /// Adds the anchored scalars whose text a credential key took through an alias.
    fn find_anchors(&mut self, node: &Node, anchored: &[(String, String)]) {
        match &node.kind {
            Kind::Map(entries) => {
                for e in entries.iter().filter(|e| !e.merged) {
                    self.find_anchors(&e.value, anchored);
                }
            }
            Kind::Seq(items) => items.iter().for_each(|i| self.find_anchors(i, anchored)),
            Kind::Scalar(s) => {
                let Some(start) = self.offsets.of(node.span.start.line, node.span.start.col) else {
                    return;
                };
                if !self.text[start..].starts_with('&') {
                    return;
                }
                if let Some((key, _)) = anchored.iter().find(|(_, v)| *v == s.text)
                    && self.wanted(&s.text)
                    && let Some((start, end)) = self.value_range(node)
                {
                    self.sites.push(Site {
                        start,
                        end,
                        key: key.clone(),
                    });
                }
            }
        }
    }
}

/// Byte offsets of 1-based (line, column in characters) positions.
struct Offsets {
    text_len: usize,
    /// (byte offset of the line, the line's text) per line.
    lines: Vec<(usize, usize)>,
    text: String,
}

impl Offsets {
    fn new(text: &str) -> Self {
        let mut lines = Vec::new();
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            lines.push((at, line.len()));
            at += line.len();
        }
        lines.push((at, 0));
        Self {
            text_len: text.len(),
            lines,
            text: text.to_owned(),
        }
    }

    fn of(&self, line: usize, col: usize) -> Option<usize> {
        let &(start, len) = self.lines.get(line.checked_sub(1)?)?;
        let line_text = &self.text[start..start + len];
        let within = line_text
            .char_indices()
            .nth(col.saturating_sub(1))
            .map_or(len, |(i, _)| i);
        Some((start + within).min(self.text_len))
    }
}

/// The same, line by line, for a text that is not valid YAML.
mod lines {
    use super::{REDACTED, is_secret_key, reference};

    /// The line with its credential values replaced, and the (key, value) of each.
    fn redact_line(line: &str) -> (String, Vec<(String, String)>) {
        let trimmed = line.trim_start().trim_start_matches("- ");
        if let Some((key, value)) = trimmed.split_once(':') {
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            let value = value.trim_end();
            let shown = value.trim_start();
            if is_secret_key(key) && !shown.is_empty() && !reference(shown) && shown != REDACTED {
                let cut = line.trim_end().len() - shown.len();
                return (
                    format!("{}{REDACTED}", &line[..cut]),
                    vec![(key.to_owned(), shown.to_owned())],
                );
            }
        }
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
                        && is_secret_key(k)
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
                    found.push((k.to_owned(), value.to_owned()));
                    out.push_str(&format!("{lead}{k}={REDACTED}{tail}{space}"));
                }
                _ => out.push_str(piece),
            }
        }
        (out, found)
    }

    pub(super) fn redact(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            out.push_str(&redact_line(body).0);
            out.push_str(end);
        }
        out
    }

    /// The key a `<redacted>` at byte `at` of `line` stands for.
    fn placeholder_key(line: &str, at: usize) -> Option<String> {
        let before = &line[..at];
        if let Some(k) = before.strip_suffix('=') {
            let start = k
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let key = &k[start..];
            return (!key.is_empty()).then(|| key.to_owned());
        }
        let k = before.trim_end().strip_suffix(':')?;
        let key = k
            .trim()
            .trim_start_matches("- ")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        (!key.is_empty()).then(|| key.to_owned())
    }

    pub(super) fn restore(new: &str, old: &str) -> Result<String, super::RestoreError> {
        let mut left: Vec<(String, String)> = old.lines().flat_map(|l| redact_line(l).1).collect();
        let mut out = String::with_capacity(new.len());
        for (n, line) in new.split_inclusive('\n').enumerate() {
            let mut rest = line;
            let mut done = 0;
            while let Some(at) = rest.find(REDACTED) {
                let key = placeholder_key(line, done + at);
                let value = key.as_ref().and_then(|k| {
                    let i = left.iter().position(|(key, _)| key == k)?;
                    Some(left.remove(i).1)
                });
                let Some(value) = value else {
                    return Err(super::RestoreError { line: n + 1, key });
                };
                out.push_str(&rest[..at]);
                out.push_str(&value);
                done += at + REDACTED.len();
                rest = &rest[at + REDACTED.len()..];
            }
            out.push_str(rest);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comments stay\nregistryAuths:\n  ghcr.io:\n    username: me\n    password: hunter2  \n  gcr.io:\n    auth: ${GCR_AUTH}\n  quay.io: \"bWU6YjY0cHc=\"\n  docker.io: '{\"username\": \"me\", \"password\": \"jsonpw\"}'\nenv:\n  - API_TOKEN=abc123\n  - DB_PASSWORD: \"s3cret\"\n  - PLAIN=visible\n  - CERT_KEY: |\n      line-one\n      line-two\n  - {token: flow-tok, n: 1}\nparams: API_TOKEN=tok WHO=me\nx-base: &pw anchored-pw\nsteps:\n  - name: s\n    env:\n      - password: *pw\n    command: echo hi\n";

    #[test]
    fn a_text_is_parsed_again_only_when_a_credential_key_could_be_in_it() {
        let plain = "steps:\n  - name: build\n    command: make all KEYS=1\n";
        assert!(!may_hold_credentials(plain));
        assert_eq!(source(plain), plain);
        // Every spelling of a key `is_secret_key` takes is caught by the quick look.
        for key in [
            "password",
            "PASSWD",
            "db_pass",
            "Secret",
            "MY_TOKEN",
            "apiKey",
            "API_KEY",
            "access_key",
            "PRIVATE_KEY",
            "gcp_credentials",
            "auth",
            "registryAuths",
            "SSH_KEY",
            "x_Key",
        ] {
            assert!(is_secret_key(key), "{key}");
            let text = format!("env:\n  - {key}: hunter2\n");
            assert!(may_hold_credentials(&text), "{key}");
            assert!(!source(&text).contains("hunter2"), "{key}");
        }
        // An escape in a quoted key could spell one without its letters.
        let escaped = "env:\n  - \"p\\x61ssword\": hunter2\n";
        assert!(may_hold_credentials(escaped));
        assert!(!source(escaped).contains("hunter2"), "{}", source(escaped));
    }

    #[test]
    fn every_form_of_credential_is_redacted_and_the_rest_kept() {
        let shown = source(FILE);
        for secret in [
            "hunter2",
            "abc123",
            "s3cret",
            "line-one",
            "line-two",
            "flow-tok",
            "tok ",
            "anchored-pw",
            "bWU6YjY0cHc=",
            "jsonpw",
        ] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        for kept in [
            "# comments stay",
            "${GCR_AUTH}",
            "PLAIN=visible",
            "username: me",
            "WHO=me",
            "&pw <redacted>",
            "password: *pw",
            "n: 1",
        ] {
            assert!(shown.contains(kept), "{kept}: {shown}");
        }
        // The redacted text is still YAML.
        assert!(crate::yaml::load(&shown).is_ok(), "{shown}");
    }

    #[test]
    fn a_shown_file_saved_with_edits_gets_every_credential_back() {
        let shown = source(FILE);
        let edited = shown
            .replace("PLAIN=visible", "PLAIN=changed")
            .replace("WHO=me", "WHO=you");
        let saved = restore(&edited, FILE).expect("restored");
        assert_eq!(
            saved,
            FILE.replace("PLAIN=visible", "PLAIN=changed")
                .replace("WHO=me", "WHO=you")
        );
        // A new `<redacted>` with nothing to keep is refused.
        let added = format!("{shown}other_secret: <redacted>\n");
        let e = restore(&added, FILE).expect_err("nothing to keep");
        assert!(e.to_string().contains("other_secret"), "{e}");
    }

    #[test]
    fn text_that_is_not_yaml_is_redacted_line_by_line() {
        let broken = "password: hunter2\nsteps: [unclosed\n";
        let shown = source(broken);
        assert!(
            !shown.contains("hunter2") && shown.contains("[unclosed"),
            "{shown}"
        );
        assert_eq!(restore(&shown, broken).expect("restored"), broken);
    }

    #[test]
    fn params_words() {
        assert_eq!(param("DB_PASSWORD=x"), "DB_PASSWORD=<redacted>");
        assert_eq!(param("WHO=x"), "WHO=x");
        assert_eq!(param("TOKEN=${T}"), "TOKEN=${T}");
    }
}
