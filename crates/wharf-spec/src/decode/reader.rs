//! The reader: one mapping's fields against its key table, and the scalar readers every
//! part of the decoder uses. Each pushes a diagnostic for what it cannot read and returns
//! what it could.

use std::path::Path;

use super::keys::*;
use crate::diag::{Diagnostic, Span, did_you_mean};
use crate::yaml::{Entry, Kind, Node};

/// The mapping entries of one node, looked up by their camelCase names.
pub(crate) struct Fields<'n> {
    entries: Vec<(&'static str, &'n Entry)>,
    /// A key was rejected (unknown, or of the Dagu dialect but not run by wharf), so errors
    /// that follow from it, like a missing `command` next to `call` or `comand`, are noise.
    pub rejected: bool,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| &e.value)
            .filter(|n| !n.is_null())
    }

    /// The keys read (as the decoder names them) with their entries.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &'n Entry)> + '_ {
        self.entries.iter().copied()
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The key as the user wrote it, for messages.
    pub fn written(&self, key: &str) -> String {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, e)| e.key.as_str())
            .unwrap_or(key)
            .to_owned()
    }

    pub fn key_span(&self, key: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, e)| e.key.span)
    }
}

/// `working_dir` → `workingDir`.
pub(crate) fn snake_to_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) struct Decoder<'a> {
    pub diags: Vec<Diagnostic>,
    pub dir: &'a Path,
    /// The DAG's `shell` runs `nix-shell` (a step's `shellPackages` needs it).
    pub nix_shell: bool,
    /// The backend of docker steps that name none: the DAG's, else the installation's.
    pub backend: Option<crate::model::Backend>,
    /// The file is in Dagu's 2.x dialect: camelCase keys are refused.
    pub v2: bool,
}

impl Decoder<'_> {
    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(span, message));
    }

    pub(crate) fn warning(&mut self, span: Span, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(span, message));
    }

    pub(crate) fn expected(&mut self, node: &Node, what: &str, expected: &str) {
        self.error(
            node.at(),
            format!("{what} must be {expected}, found {}", node.describe()),
        );
    }

    /// Reads a mapping's keys against `keys`: unknown keys are errors (with a hint), Dagu
    /// keys that wharf does not implement are warnings or errors, and a key written both
    /// in camelCase and in snake_case is an error.
    pub(crate) fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        keys: &Keys,
    ) -> Option<Fields<'n>> {
        let Some(entries) = node.as_map() else {
            self.expected(node, what, "a mapping");
            return None;
        };
        let mut fields: Vec<(&'static str, &'n Entry)> = Vec::with_capacity(entries.len());
        let mut rejected = false;
        for entry in entries {
            let Some(raw) = entry.key.as_str() else {
                self.error(entry.key.span, format!("{what} has an empty key"));
                continue;
            };
            if raw.starts_with("x-") {
                // Extension fields, as in Compose files: a place for anchors.
                continue;
            }
            let camel = snake_to_camel(raw);
            if self.v2 && camel == raw && raw.chars().any(|c| c.is_ascii_uppercase()) {
                let snake = crate::dialect::to_snake(raw);
                if keys.known.contains(&raw) {
                    self.diags.push(
                        Diagnostic::error(
                            entry.key.span,
                            format!("`{raw}` is the Dagu 1.x spelling: keys of a Dagu 2.x file are snake_case"),
                        )
                        .with_help(format!("write `{snake}`")),
                    );
                    rejected = true;
                    continue;
                }
            }
            // A snake_case key names a camelCase one with an acronym in any case
            // (`skip_tls_verify` is `skipTLSVerify`).
            let found = keys.known.iter().find(|k| **k == camel).or_else(|| {
                raw.contains('_')
                    .then(|| keys.known.iter().find(|k| k.eq_ignore_ascii_case(&camel)))
                    .flatten()
            });
            let Some(&canonical) = found else {
                if let Some(ignored) = keys.ignored.iter().find(|k| **k == camel) {
                    self.warning(
                        entry.key.span,
                        format!("`{raw}` is not supported by wharf and is ignored"),
                    );
                    let _ = ignored;
                } else if let Some((_, hint)) = keys.unsupported.iter().find(|(k, _)| *k == camel) {
                    rejected = true;
                    self.diags.push(
                        Diagnostic::error(
                            entry.key.span,
                            format!("`{raw}` is not supported by wharf"),
                        )
                        .with_help(*hint),
                    );
                } else {
                    let all = keys
                        .known
                        .iter()
                        .chain(keys.ignored)
                        .copied()
                        .chain(keys.unsupported.iter().map(|(k, _)| *k));
                    rejected = true;
                    let mut d =
                        Diagnostic::error(entry.key.span, format!("unknown key `{raw}` in {what}"));
                    d = match did_you_mean(&camel, all) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!(
                            "accepted keys: {} (and keys starting with `x-`, a place for YAML anchors)",
                            if self.v2 {
                                keys.known
                                    .iter()
                                    .map(|k| crate::dialect::to_snake(k))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            } else {
                                keys.known.join(", ")
                            }
                        )),
                    };
                    self.diags.push(d);
                }
                continue;
            };
            if let Some(slot) = fields.iter_mut().find(|(k, _)| *k == canonical) {
                match (slot.1.merged, entry.merged) {
                    (true, false) => slot.1 = entry,
                    (false, true) => {}
                    _ => {
                        let first = slot.1.key.as_str().unwrap_or_default().to_owned();
                        self.diags.push(
                            Diagnostic::error(
                                entry.key.span,
                                format!("`{raw}` and `{first}` are the same key; set it once"),
                            )
                            .with_help(format!(
                                "`{first}` is at line {}; camelCase and snake_case spellings name the same field",
                                slot.1.key.span.start.line
                            )),
                        );
                    }
                }
                continue;
            }
            fields.push((canonical, entry));
        }
        Some(Fields {
            entries: fields,
            rejected,
        })
    }

    pub(crate) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Scalar(s) if !node.is_null() => Some(s.text.clone()),
            _ => {
                self.expected(node, what, "a string");
                None
            }
        }
    }

    pub(crate) fn opt_string(&mut self, f: &Fields, key: &str) -> Option<String> {
        let node = f.get(key)?;
        self.string(node, &format!("`{}`", f.written(key)))
    }

    pub(crate) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        let value = node.as_bool();
        if value.is_none() {
            self.expected(node, what, "true or false");
        }
        value
    }

    pub(crate) fn opt_bool(&mut self, f: &Fields, key: &str) -> Option<bool> {
        let node = f.get(key)?;
        self.bool(node, &format!("`{}`", f.written(key)))
    }

    /// A whole number ≥ 0; `lenient` also takes one written as a quoted string.
    pub(crate) fn uint(&mut self, node: &Node, what: &str, lenient: bool) -> Option<u64> {
        let value = node.as_int().or_else(|| {
            lenient
                .then(|| node.as_str().and_then(|s| s.trim().parse::<i64>().ok()))
                .flatten()
        });
        match value {
            Some(v) if v >= 0 => Some(v.unsigned_abs()),
            _ => {
                let found = match node.as_str() {
                    Some(s) => format!("`{s}`"),
                    None => node.describe().to_owned(),
                };
                self.error(
                    node.at(),
                    format!("{what} must be a whole number, 0 or more, found {found}"),
                );
                None
            }
        }
    }

    pub(crate) fn opt_uint(&mut self, f: &Fields, key: &str) -> Option<u64> {
        let node = f.get(key)?;
        self.uint(node, &format!("`{}`", f.written(key)), false)
    }

    /// `logOutput`: `separate` or `merged`.
    pub(crate) fn log_output(&mut self, f: &Fields) -> Option<crate::model::LogOutput> {
        use crate::model::LogOutput;
        let node = f.get("logOutput")?;
        match node.as_str() {
            Some("separate") => Some(LogOutput::Separate),
            Some("merged") => Some(LogOutput::Merged),
            other => {
                self.enum_error(
                    node,
                    "`logOutput`",
                    other.unwrap_or_default(),
                    &["separate", "merged"],
                );
                None
            }
        }
    }

    /// A string or a list of strings.
    pub(crate) fn strings(&mut self, node: &Node, what: &str) -> Vec<String> {
        match &node.kind {
            Kind::Seq(items) => items
                .iter()
                .filter_map(|n| self.string(n, &format!("an item of {what}")))
                .collect(),
            _ => self.string(node, what).into_iter().collect(),
        }
    }

    /// A shell line as a string (split into words) or a list of words.
    pub(crate) fn words(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        match &node.kind {
            Kind::Seq(_) => Some(self.strings(node, what)),
            _ => {
                let line = self.string(node, what)?;
                match shell_words::split(&line) {
                    Ok(words) => Some(words),
                    Err(_) => {
                        self.error(node.at(), format!("{what} has an unmatched quote"));
                        None
                    }
                }
            }
        }
    }

    pub(crate) fn enum_error(&mut self, node: &Node, what: &str, found: &str, accepted: &[&str]) {
        let mut d = Diagnostic::error(
            node.at(),
            format!(
                "{what} must be one of: {}; found `{found}`",
                accepted.join(", ")
            ),
        );
        if let Some(s) = did_you_mean(found, accepted.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.diags.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::super::with_node;
    use super::*;

    const KEYS: Keys = Keys {
        known: &["workingDir", "name"],
        ignored: &["otel"],
        unsupported: &[],
    };

    #[test]
    fn both_spellings_unknown_keys_and_extensions() {
        let (found, errors) = with_node("working_dir: /a\nname: n\nx-anchor: 1\n", |d, n| {
            d.fields(n, "the DAG", &KEYS)
                .map(|f| (f.has("workingDir"), f.written("workingDir")))
        });
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(found, Some((true, "working_dir".to_owned())));
        let (_, errors) = with_node("workingDir: /a\nworking_dir: /b\n", |d, n| {
            d.fields(n, "the DAG", &KEYS).is_some()
        });
        assert_eq!(errors.len(), 1, "{errors:?}");
        let (_, errors) = with_node("nmae: x\n", |d, n| d.fields(n, "the DAG", &KEYS).is_some());
        assert!(errors.iter().any(|e| e.contains("nmae")), "{errors:?}");
        let (_, errors) = with_node("steps: x\n", |d, n| d.fields(n, "the DAG", &KEYS).is_some());
        assert!(!errors.is_empty());
    }

    #[test]
    fn scalars_say_what_they_expected() {
        let (v, errors) = with_node("[1]", |d, n| d.string(n, "`name`"));
        assert_eq!(v, None);
        assert!(errors[0].contains("`name` must be"), "{errors:?}");
        let (v, errors) = with_node("\"30\"", |d, n| d.uint(n, "`timeoutSec`", true));
        assert_eq!((v, errors.len()), (Some(30), 0));
        let (v, errors) = with_node("-1", |d, n| d.uint(n, "`timeoutSec`", false));
        assert_eq!(v, None);
        assert_eq!(errors.len(), 1);
        let (v, _) = with_node("[a, b]", |d, n| d.strings(n, "`tags`"));
        assert_eq!(v, ["a", "b"]);
    }

    #[test]
    fn snake_case_becomes_camel_case() {
        assert_eq!(snake_to_camel("max_active_steps"), "maxActiveSteps");
        assert_eq!(snake_to_camel("name"), "name");
    }
}
