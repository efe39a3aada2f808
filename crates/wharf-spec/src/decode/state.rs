//! Dagu 2.x `state.*`: the `with` of `state.get`, `state.set`, `state.delete`,
//! `state.list` and `state.diff`, checked where it is written. Texts that hold variables
//! are checked again once resolved, when the step runs.

use super::keys::Keys;
use super::reader::Decoder;
use crate::model::{StateOp, StateStep};
use crate::yaml::Node;

const STATE_KEYS: &[&str] = &[
    "op",
    "scope",
    "namespace",
    "key",
    "prefix",
    "value",
    "default",
    "expectedVersion",
    "createOnly",
    "required",
    "update",
    "limit",
    "includeValues",
];

/// The scopes of an entry.
pub const SCOPES: &[&str] = &["dag", "root_dag", "global", "custom"];

/// Why `key` cannot be a state key (`what` names it), if it cannot.
pub fn bad_key(what: &str, key: &str) -> Option<String> {
    let shape = "`/` parts, none empty, `.` or `..`, no `\\`, no `/` at either end";
    if key.trim().is_empty() {
        return Some(format!("`{what}` is empty"));
    }
    let bad = key.contains('\\')
        || key.starts_with('/')
        || key.ends_with('/')
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    bad.then(|| format!("`{what}` `{key}` is not a state key: {shape}"))
}

/// Why `namespace` cannot be one, if it cannot.
pub fn bad_namespace(namespace: &str) -> Option<String> {
    if namespace.trim().is_empty() {
        return Some("`namespace` is empty".into());
    }
    (namespace.contains(['/', '\\']) || namespace == "." || namespace == "..").then(|| {
        format!("`namespace` `{namespace}` is not a namespace: no `/` or `\\`, not `.` or `..`")
    })
}

/// Why `prefix` cannot be a key prefix, if it cannot (a `/` may end it).
pub fn bad_prefix(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    if prefix.starts_with('/') || prefix.contains('\\') {
        return Some(format!(
            "`prefix` `{prefix}` is not a key prefix: no `/` at its start, no `\\`"
        ));
    }
    bad_key("prefix", prefix.strip_suffix('/').unwrap_or(prefix))
}

pub(crate) fn state_step(d: &mut Decoder, config: Option<&Node>, at: &Node) -> Option<StateStep> {
    let empty = super::empty_with(at);
    let config = config.unwrap_or(&empty);
    let keys = Keys {
        known: STATE_KEYS,
        ignored: &[],
        unsupported: &[],
    };
    let f = d.fields(config, "`with` of `state.*`", &keys)?;
    let op = f
        .get("op")
        .and_then(Node::as_str)
        .and_then(StateOp::parse)
        .unwrap_or(StateOp::Get);
    let action = format!("state.{}", op.name());
    let before = d.diags.len();
    let mut with = serde_json::Map::new();
    for (key, e) in f.entries() {
        let snake = crate::dialect::to_snake(key);
        if key == "op" {
            continue;
        }
        if !["scope", "namespace"].contains(&snake.as_str()) && !op.keys().contains(&snake.as_str())
        {
            d.error(
                e.key.span,
                format!(
                    "`{action}` takes no `{snake}`; it takes {}",
                    std::iter::once("scope")
                        .chain(std::iter::once("namespace"))
                        .chain(op.keys().iter().copied())
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            continue;
        }
        let value = &e.value;
        let text = value.as_str().map(str::trim);
        let variable = text.is_some_and(|t| t.contains("${"));
        match key {
            "value" | "default" => {
                with.insert(snake, value.to_json());
                continue;
            }
            "createOnly" | "required" | "update" | "includeValues" => match value.as_bool() {
                Some(b) => {
                    with.insert(snake, serde_json::Value::Bool(b));
                }
                None => d.expected(value, &format!("`{snake}`"), "true or false"),
            },
            "limit" => match value.as_int() {
                Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => {
                    with.insert(snake, n.into());
                }
                _ => d.expected(value, "`limit`", "a whole number, 0 or more (0: no limit)"),
            },
            "expectedVersion" => match (value.as_int(), text) {
                (Some(n), _) if n >= 0 => {
                    with.insert(snake, n.into());
                }
                (None, Some(t)) if variable || t.parse::<u64>().is_ok() => {
                    with.insert(snake, t.into());
                }
                _ => d.expected(
                    value,
                    "`expected_version`",
                    "a version, 0 or more (0: the key must not exist yet)",
                ),
            },
            _ => {
                let Some(t) = text.filter(|t| !t.is_empty() || key == "prefix") else {
                    d.error(value.at(), format!("`{snake}` is a non-empty string"));
                    continue;
                };
                if !variable {
                    let problem = match key {
                        "scope" if !SCOPES.contains(&t) => {
                            d.enum_error(value, "`scope`", t, SCOPES);
                            None
                        }
                        "namespace" => bad_namespace(t),
                        "key" => bad_key("key", t),
                        "prefix" => bad_prefix(t),
                        _ => None,
                    };
                    if let Some(problem) = problem {
                        d.error(value.at(), problem);
                    }
                }
                with.insert(snake, t.into());
            }
        }
    }
    let has = |k: &str| with.contains_key(k);
    if op != StateOp::List && !has("key") {
        d.error(
            config.at(),
            format!("`{action}` needs `with.key`: the state key"),
        );
    }
    if matches!(op, StateOp::Set | StateOp::Diff) && !has("value") {
        d.error(
            config.at(),
            format!(
                "`{action}` needs `with.value`: the JSON value to {}",
                if op == StateOp::Set {
                    "store"
                } else {
                    "compare"
                }
            ),
        );
    }
    if with.get("scope").and_then(|s| s.as_str()) == Some("custom") && !has("namespace") {
        d.error(
            config.at(),
            "`scope: custom` needs `namespace`: the namespace the entries are shared in",
        );
    }
    (d.diags.len() == before).then_some(StateStep { op, with })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_prefixes_and_namespaces_have_a_shape() {
        assert_eq!(bad_key("key", "cursors/feed"), None);
        for bad in ["", "/a", "a/", "a//b", "a/./b", "a/../b", "a\\b", ".."] {
            assert!(bad_key("key", bad).is_some(), "{bad}");
        }
        for good in ["", "cursors/", "cursors", "c/d/"] {
            assert_eq!(bad_prefix(good), None, "{good}");
        }
        for bad in ["/c", "a\\", "a//", "../"] {
            assert!(bad_prefix(bad).is_some(), "{bad}");
        }
        assert_eq!(bad_namespace("feed-sync"), None);
        for bad in ["", "a/b", "..", "a\\b"] {
            assert!(bad_namespace(bad).is_some(), "{bad}");
        }
    }
}
