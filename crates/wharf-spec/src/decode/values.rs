//! Values that several parts of a DAG share: exit codes, `env`, `params`, conditions.

use super::keys::*;
use super::{Decoder, Fields};
use crate::diag::Diagnostic;
use crate::formats;
use crate::model::*;
use crate::params::ParamsSchema;
use crate::yaml::{Entry, Kind, Node};

impl Decoder<'_> {
    pub(crate) fn exit_code(&mut self, node: &Node, what: &str) -> Option<i32> {
        let code = node
            .as_int()
            .or_else(|| node.as_str().and_then(|s| s.trim().parse().ok()));
        match code
            .and_then(|c| i32::try_from(c).ok())
            .filter(|c| (0..=255).contains(c))
        {
            Some(c) => Some(c),
            None => {
                self.error(
                    node.at(),
                    format!("{what} must be an exit code from 0 to 255"),
                );
                None
            }
        }
    }

    /// An exit code or a list of them.
    pub(crate) fn exit_codes(&mut self, node: &Node, what: &str) -> Vec<i32> {
        match node.as_seq() {
            Some(items) => items
                .iter()
                .filter_map(|n| self.exit_code(n, what))
                .collect(),
            None => self.exit_code(node, what).into_iter().collect(),
        }
    }

    pub(crate) fn env(&mut self, node: &Node, what: &str) -> Vec<EnvVar> {
        let mut vars = Vec::new();
        match &node.kind {
            Kind::Map(entries) => self.env_map(entries, what, &mut vars),
            Kind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        Kind::Map(entries) => self.env_map(entries, what, &mut vars),
                        Kind::Scalar(_) if !item.is_null() => {
                            let text = item.as_str().unwrap_or_default();
                            match text.split_once('=') {
                                Some((name, value)) if formats::is_var_name(name) => vars.push(EnvVar {
                                    name: name.to_owned(),
                                    value: value.to_owned(),
                                    span: item.at(),
                                }),
                                Some((name, _)) => self.error(
                                    item.at(),
                                    format!("invalid environment variable name `{name}` in {what}: use letters, digits and `_`, not starting with a digit"),
                                ),
                                None => self.diags.push(
                                    Diagnostic::error(item.at(), format!("an item of {what} must be `NAME=value`, found `{text}`"))
                                        .with_help("write `NAME=value`, or a mapping `NAME: value`"),
                                ),
                            }
                        }
                        _ => self.expected(
                            item,
                            &format!("an item of {what}"),
                            "`NAME=value` or a mapping",
                        ),
                    }
                }
            }
            _ => self.expected(node, what, "a mapping or a list of `NAME=value`"),
        }
        vars
    }

    pub(crate) fn env_map(&mut self, entries: &[Entry], what: &str, vars: &mut Vec<EnvVar>) {
        for entry in entries {
            let name = entry.key.as_str().unwrap_or_default();
            if !formats::is_var_name(name) {
                self.error(
                    entry.key.span,
                    format!("invalid environment variable name `{name}` in {what}: use letters, digits and `_`, not starting with a digit"),
                );
                continue;
            }
            let value = match &entry.value.kind {
                Kind::Scalar(s) if entry.value.is_null() => {
                    let _ = s;
                    String::new()
                }
                Kind::Scalar(s) => s.text.clone(),
                _ => {
                    self.expected(&entry.value, &format!("the value of `{name}`"), "a string");
                    continue;
                }
            };
            vars.push(EnvVar {
                name: name.to_owned(),
                value,
                span: entry.key.span,
            });
        }
    }

    /// `secrets`: a list of `{name, provider, key}`.
    pub(crate) fn secrets(&mut self, node: &Node) -> Vec<Secret> {
        let Kind::Seq(items) = &node.kind else {
            self.expected(node, "`secrets`", "a list of `{name, provider, key}`");
            return Vec::new();
        };
        let mut out: Vec<Secret> = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, "a secret", &SECRET_KEYS) else {
                continue;
            };
            let missing = |d: &mut Self, key: &str| {
                d.diags.push(
                    Diagnostic::error(item.at(), format!("a secret needs `{key}`"))
                        .with_help("write `{name: TOKEN, provider: env, key: MY_TOKEN}` or `{name: TOKEN, provider: file, key: ./token}`"),
                );
            };
            let name = self.opt_string(&f, "name");
            let key = self.opt_string(&f, "key");
            let provider = match f.get("provider") {
                None => None,
                Some(n) => match n.as_str() {
                    Some("env") => Some(SecretProvider::Env),
                    Some("file") => Some(SecretProvider::File),
                    other => {
                        self.enum_error(
                            n,
                            "a secret's `provider`",
                            other.unwrap_or_default(),
                            &["env", "file"],
                        );
                        continue;
                    }
                },
            };
            let (Some(name), Some(provider), Some(key)) = (name, provider, key) else {
                for k in ["name", "provider", "key"] {
                    if !f.has(k) {
                        missing(self, k);
                    }
                }
                continue;
            };
            if !crate::env::is_variable_name(&name) {
                self.error(
                    f.get("name").map_or(item.at(), |n| n.at()),
                    format!("a secret's `name` must be a variable name (letters, digits, `_`); found `{name}`"),
                );
                continue;
            }
            if out.iter().any(|s| s.name == name) {
                self.error(
                    f.get("name").map_or(item.at(), |n| n.at()),
                    format!("the secret `{name}` is declared twice"),
                );
                continue;
            }
            out.push(Secret {
                name,
                provider,
                key,
            });
        }
        out
    }

    /// `params`, and the schema they are checked against when it is the
    /// `{schema: …, values: …}` form.
    pub(crate) fn params_decl(
        &mut self,
        node: &Node,
        working_dir: &std::path::Path,
    ) -> (Vec<Param>, Option<ParamsSchema>) {
        let is_schema_form = matches!(&node.kind, Kind::Map(entries)
            if entries.iter().any(|e| e.key.as_str() == Some("schema")));
        if !is_schema_form {
            return (self.params(node), None);
        }
        let Some(f) = self.fields(node, "`params`", &PARAMS_SCHEMA_KEYS) else {
            return (Vec::new(), None);
        };
        let values = f.get("values").map(|n| self.params(n)).unwrap_or_default();
        if let Some(p) = values.iter().find(|p| p.name.is_none()) {
            let at = f.get("values").map_or(node.at(), Node::at);
            self.error(
                at,
                format!(
                    "`values` of a params schema are named (NAME: value); `{}` has no name",
                    p.value
                ),
            );
            return (values, None);
        }
        let Some(decl) = f.get("schema") else {
            return (values, None);
        };
        let schema = match &decl.kind {
            Kind::Map(_) => ParamsSchema::inline(decl.to_json(), self.dir),
            _ => match self.string(decl, "`schema`") {
                Some(reference) => ParamsSchema::from_file(&reference, working_dir, self.dir),
                None => return (values, None),
            },
        };
        match schema {
            Ok(schema) => {
                if let Err(why) = schema.check_values(&values) {
                    let at = f.get("values").map_or(decl.at(), Node::at);
                    self.error(
                        at,
                        format!("`values` do not match the params schema: {why}"),
                    );
                }
                (values, Some(schema))
            }
            Err(why) => {
                self.error(decl.at(), why);
                (values, None)
            }
        }
    }

    pub(crate) fn params(&mut self, node: &Node) -> Vec<Param> {
        let mut params = Vec::new();
        match &node.kind {
            Kind::Map(entries) => self.param_map(entries, &mut params),
            Kind::Seq(items) => {
                for item in items {
                    match &item.kind {
                        Kind::Map(entries) => self.param_map(entries, &mut params),
                        _ => {
                            if let Some(text) = self.string(item, "an item of `params`") {
                                params.push(formats::param_word(&text));
                            }
                        }
                    }
                }
            }
            _ => {
                let Some(line) = self.string(node, "`params`") else {
                    return params;
                };
                match shell_words::split(&line) {
                    Ok(words) => params.extend(words.iter().map(|w| formats::param_word(w))),
                    Err(_) => self.error(node.at(), "`params` has an unmatched quote"),
                }
            }
        }
        params
    }

    pub(crate) fn param_map(&mut self, entries: &[Entry], params: &mut Vec<Param>) {
        for entry in entries {
            let name = entry.key.as_str().unwrap_or_default();
            if !formats::is_var_name(name) {
                self.error(entry.key.span, format!("invalid param name `{name}`: use letters, digits and `_`, not starting with a digit"));
                continue;
            }
            let value = match &entry.value.kind {
                Kind::Scalar(s) => {
                    if entry.value.is_null() {
                        String::new()
                    } else {
                        s.text.clone()
                    }
                }
                _ => entry.value.to_json().to_string(),
            };
            params.push(Param {
                name: Some(name.to_owned()),
                value,
            });
        }
    }

    pub(crate) fn conditions(&mut self, f: &Fields) -> Vec<Condition> {
        let mut out = Vec::new();
        if f.has("precondition")
            && f.has("preconditions")
            && let Some(span) = f.key_span("precondition")
        {
            self.error(
                span,
                "`precondition` and `preconditions` are both set; use `preconditions`",
            );
        }
        for key in ["precondition", "preconditions"] {
            let Some(node) = f.get(key) else { continue };
            match &node.kind {
                Kind::Seq(items) => {
                    for item in items {
                        if let Some(c) = self.condition(item) {
                            out.push(c);
                        }
                    }
                }
                _ => out.extend(self.condition(node)),
            }
        }
        out
    }

    pub(crate) fn condition(&mut self, node: &Node) -> Option<Condition> {
        const KEYS: Keys = Keys {
            known: &["condition", "expected", "command", "negate", "eval"],
            ignored: &[],
            unsupported: &[],
        };
        let v2 = self.v2;
        if node.as_map().is_none() {
            let command = self.string(node, "a precondition")?;
            return Some(Condition::Command {
                command,
                negate: false,
                resolved: v2,
            });
        }
        let f = self.fields(node, "a precondition", &KEYS)?;
        let negate = self.opt_bool(&f, "negate").unwrap_or(false);
        let condition = self.opt_string(&f, "condition");
        let expected = self.opt_string(&f, "expected");
        let command = self.opt_string(&f, "command");
        if let Some(eval) = f.get("eval") {
            let text = self.string(eval, "`eval`")?;
            if !v2 {
                self.error(eval.at(), "a precondition's `eval` is Dagu 2.x: in 1.x a `condition` with backticks is evaluated");
                return None;
            }
            if condition.is_some() || command.is_some() {
                self.error(
                    eval.at(),
                    "a precondition has `eval` or `condition`, not both",
                );
                return None;
            }
            let Some(expected) = expected else {
                self.error(
                    eval.at(),
                    "a precondition with `eval` needs `expected`: the value its output must match",
                );
                return None;
            };
            return Some(Condition::Match {
                condition: crate::dialect::backticks(&text),
                expected,
                negate,
                how: MatchHow::Evaluated,
            });
        }
        match (condition, expected, command) {
            (Some(condition), Some(expected), None) => Some(Condition::Match {
                condition,
                expected,
                negate,
                how: if v2 {
                    MatchHow::Resolved
                } else {
                    MatchHow::Expanded
                },
            }),
            (Some(command), None, None) | (None, None, Some(command)) => Some(Condition::Command {
                command,
                negate,
                resolved: v2,
            }),
            (None, Some(_), None) => {
                self.error(
                    node.at(),
                    "a precondition with `expected` needs a `condition` to compare",
                );
                None
            }
            (None, None, None) => {
                self.error(
                    node.at(),
                    "a precondition needs `condition` (with `expected`) or `command`",
                );
                None
            }
            (_, _, Some(_)) => {
                self.error(
                    node.at(),
                    "a precondition takes either `command` or `condition`, not both",
                );
                None
            }
        }
    }
}

/// Texts matched against output may be regexes when they start with `re:`.
pub(crate) fn check_match_pattern(d: &mut Decoder, node: &Node, text: &str) {
    if let Some(pattern) = text.strip_prefix("re:")
        && let Err(e) = regex::Regex::new(pattern)
    {
        d.error(
            node.span,
            format!(
                "`{text}` is not a valid regex: {}",
                crate::formats::regex_error(&e)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::with_node;
    use super::*;

    #[test]
    fn env_as_a_list_of_words_or_of_maps_and_as_a_map() {
        for yaml in [
            "[A=1, B=two words]",
            "[{A: 1}, {B: two words}]",
            "{A: 1, B: two words}",
        ] {
            let (vars, errors) = with_node(yaml, |d, n| d.env(n, "`env`"));
            assert!(errors.is_empty(), "{yaml}: {errors:?}");
            let pairs: Vec<(&str, &str)> = vars
                .iter()
                .map(|v| (v.name.as_str(), v.value.as_str()))
                .collect();
            assert_eq!(pairs, [("A", "1"), ("B", "two words")], "{yaml}");
        }
        let (_, errors) = with_node("[NOEQUALS]", |d, n| d.env(n, "`env`"));
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn params_as_words_a_list_and_a_map() {
        let (p, _) = with_node("\"first NAME=x\"", |d, n| d.params(n));
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name.as_deref(), p[0].value.as_str()), (None, "first"));
        assert_eq!(
            (p[1].name.as_deref(), p[1].value.as_str()),
            (Some("NAME"), "x")
        );
        let (p, _) = with_node("[{A: 1}, B=2]", |d, n| d.params(n));
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].name.as_deref(), Some("B"));
    }

    #[test]
    fn conditions_and_patterns() {
        let (c, errors) = with_node(
            "preconditions:\n  - condition: \"`date +%u`\"\n    expected: \"re:[1-5]\"\n  - command: test -f x\n",
            |d, n| {
                d.fields(n, "a step", &super::super::keys::STEP_KEYS)
                    .map(|f| d.conditions(&f))
            },
        );
        assert!(errors.is_empty(), "{errors:?}");
        let c = c.expect("fields");
        assert_eq!(c.len(), 2);
        assert!(
            matches!(&c[1], Condition::Command { command, negate: false, .. } if command == "test -f x")
        );
        let (_, errors) = with_node("re:(", |d, n| check_match_pattern(d, n, "re:("));
        assert!(errors[0].contains("not a valid regex"), "{errors:?}");
    }
}
