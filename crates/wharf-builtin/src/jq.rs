//! `type: jq`: the filter (`command`) over the JSON of `script`, on jaq. Each result is a
//! line: JSON indented by four spaces with its keys sorted (as Dagu prints it), or with
//! `raw: true` a string without quotes, `null` as an empty line, and arrays and objects
//! on one line. A filter that does not compile, input that is not JSON, and an error while
//! the filter runs (after the results before it) fail the step.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, RcIter};
use jaq_json::Val;
use serde_json::Value;

use crate::{Ended, Output};

pub(crate) async fn run(filter: &str, input: &str, raw: bool, out: &mut Output) -> Ended {
    let input: Value = match serde_json::from_str(input) {
        Ok(v) => v,
        Err(e) => return Ended::Failed(format!("the jq input (`script`) is not JSON: {e}")),
    };
    let results = match evaluate(filter, input) {
        Ok(r) => r,
        Err(e) => return Ended::Failed(e),
    };
    for result in results {
        match result {
            Ok(value) => {
                let mut line = render(&sorted(value), raw);
                line.push('\n');
                out.stdout(line.as_bytes()).await;
            }
            Err(e) => return Ended::Failed(format!("jq: {e}")),
        }
    }
    Ended::Done
}

/// Compiles `filter` and runs it on `input`: each result or error, in order. A plain path
/// (`.a.b[0]`) is walked as jq walks it, a missing key or null giving null.
pub(crate) fn evaluate(filter: &str, input: Value) -> Result<Vec<Result<Value, String>>, String> {
    if let Some(path) = plain_path(filter) {
        return Ok(vec![walk(input, &path)]);
    }
    let program = File {
        code: filter,
        path: (),
    };
    let loader = Loader::new(jaq_std::defs().chain(jaq_json::defs()));
    let arena = Arena::default();
    let modules = loader.load(&arena, program).map_err(|errs| {
        let at_end = format!("{errs:?}").contains(", \"\")");
        format!(
            "the jq filter `{filter}` is not valid jq{}",
            if at_end {
                ": it ends too early"
            } else {
                ": a syntax error"
            }
        )
    })?;
    let compiled = Compiler::default()
        .with_funs(jaq_std::funs().chain(jaq_json::funs()))
        .compile(modules)
        .map_err(|errs| {
            format!(
                "the jq filter `{filter}` does not compile (an unknown function or variable): {}",
                describe(&errs)
            )
        })?;
    let inputs = RcIter::new(core::iter::empty());
    Ok(compiled
        .run((Ctx::new([], &inputs), Val::from(input)))
        .map(|r| r.map(Value::from).map_err(|e| e.to_string()))
        .collect())
}

/// `filter` when it is a path of fields (jq identifiers) and indexes, as its parts.
fn plain_path(filter: &str) -> Option<Vec<wharf_spec::PathPart>> {
    let parts = wharf_spec::formats::select_path(filter)?;
    let identifier = |f: &str| {
        f.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts
        .iter()
        .all(|p| match p {
            wharf_spec::PathPart::Field(f) => identifier(f),
            wharf_spec::PathPart::Index(_) => true,
        })
        .then_some(parts)
}

/// The value at `path`, as jq finds it: null through a missing key, an index past the end
/// or a null; an error indexing a value that has no fields or items.
fn walk(mut value: Value, path: &[wharf_spec::PathPart]) -> Result<Value, String> {
    use wharf_spec::PathPart;
    let kind = |v: &Value| match v {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    for part in path {
        value = match (value, part) {
            (Value::Null, _) => Value::Null,
            (Value::Object(mut m), PathPart::Field(f)) => m.remove(f).unwrap_or(Value::Null),
            (Value::Array(mut a), PathPart::Index(i)) if *i < a.len() => a.swap_remove(*i),
            (Value::Array(_), PathPart::Index(_)) => Value::Null,
            (other, PathPart::Field(f)) => {
                return Err(format!("cannot index {} with \"{f}\"", kind(&other)));
            }
            (other, PathPart::Index(_)) => {
                return Err(format!("cannot index {} with number", kind(&other)));
            }
        };
    }
    Ok(value)
}

/// The names a compile error is about (`Undefined(Filter("nosuch"))` → `nosuch`).
fn describe<T: std::fmt::Debug>(errs: &T) -> String {
    let text = format!("{errs:?}");
    let names: Vec<&str> = text
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|n| !n.is_empty() && n.len() < 60)
        .collect();
    names.join(", ")
}

/// The value with every object's keys in order (as Go's encoder writes them).
pub(crate) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn render(value: &Value, raw: bool) -> String {
    if raw {
        return match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
    }
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if serde::Serialize::serialize(value, &mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(filter: &str, input: &str) -> Vec<Result<Value, String>> {
        evaluate(filter, serde_json::from_str(input).expect("json")).expect("compiles")
    }

    #[test]
    fn filters_and_prints_as_dagu_does() {
        let r = results(
            ".items[] | {b: .n, a: .name}",
            r#"{"items": [{"name": "x", "n": 1}]}"#,
        );
        let v = r[0].clone().expect("ok");
        assert_eq!(
            render(&sorted(v), false),
            "{\n    \"a\": \"x\",\n    \"b\": 1\n}"
        );
        let r = results(
            ".a, .b, .c, .d",
            r#"{"a": "text", "b": null, "c": [1, 2], "d": true}"#,
        );
        let raw: Vec<String> = r
            .into_iter()
            .map(|v| render(&v.expect("ok"), true))
            .collect();
        assert_eq!(raw, ["text", "", "[1,2]", "true"]);
        assert_eq!(
            results("map(select(. > 1)) | length", "[1, 2, 3]")[0],
            Ok(Value::from(2))
        );
        assert!(evaluate(".a |", Value::Null).is_err());
        assert!(results(".a.b", r#"{"a": "text"}"#)[0].is_err());
    }
}
