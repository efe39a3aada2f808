//! Dagu 2.x `state.get`, `state.set`, `state.delete`, `state.list` and `state.diff`: small
//! JSON values kept across runs in the installation's store, each under a scope (`dag`,
//! `root_dag`, `global`, `custom`), a namespace and a key, versioned and hashed.
//!
//! A value is normalized before it is kept (keys sorted, compact; at most 1 MiB) and its
//! hash is the SHA-256 of that text, so the same value is the same hash whatever its
//! spelling. The step prints its result as a line of JSON and, with an `id`, each field of
//! it is an output (`${steps.ID.outputs.version}`; a string as its text, anything else as
//! JSON; a field the result has not is `0`, `""` or `null`).

use std::path::Path;

use serde_json::{Map, Value, json};
use wharf_engine::StepJob;
use wharf_spec::StateOp;
use wharf_store::{Put, StateEntry, StateRef, Store, Written};

use crate::{Ended, Output};

/// The largest value kept, normalized.
const MAX_VALUE: usize = 1 << 20;

/// Who runs the step: the namespaces of its `dag` and `root_dag` scopes, and who writes.
pub(crate) struct Caller<'a> {
    pub dag: &'a str,
    pub root: &'a str,
    /// A JSON object: the DAG, the run and the step.
    pub by: &'a str,
    pub home: &'a Path,
}

pub(crate) async fn run(
    op: StateOp,
    with: &Map<String, Value>,
    caller: &Caller<'_>,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let request = match Request::read(op, with, caller) {
        Ok(r) => r,
        Err(e) => return Ended::Failed(format!("state.{}: {e}", op.name())),
    };
    let home = caller.home.to_path_buf();
    let by = caller.by.to_owned();
    let work = tokio::task::spawn_blocking(move || {
        let store = Store::open(&home).map_err(|e| e.to_string())?;
        request.run(&store, &by)
    });
    let result = tokio::select! {
        r = work => r,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    let result = match result {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => return Ended::Failed(format!("state.{}: {e}", op.name())),
        Err(e) => return Ended::Failed(format!("state.{}: {e}", op.name())),
    };
    if let Some(file) = crate::output_file(job) {
        let records = op.outputs().iter().map(|name| {
            let text = match result.get(*name) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => match *name {
                    "version" | "previousVersion" => "0".into(),
                    "hash" | "prefix" => String::new(),
                    _ => "null".into(),
                },
            };
            ((*name).to_owned(), text)
        });
        if let Err(e) = crate::write_outputs(file, records) {
            return Ended::Failed(e);
        }
    }
    out.stdout(format!("{}\n", Value::Object(result)).as_bytes())
        .await;
    Ended::Done
}

/// A step's `with`, read and checked once its variables are resolved.
struct Request {
    op: StateOp,
    scope: String,
    namespace: String,
    /// The key (`prefix` for a list).
    key: String,
    /// `value`, normalized (`default` for a get).
    value: Option<String>,
    expected_version: Option<i64>,
    flag: bool,
    limit: u32,
}

impl Request {
    fn read(op: StateOp, with: &Map<String, Value>, caller: &Caller<'_>) -> Result<Self, String> {
        let text = |k: &str| with.get(k).and_then(Value::as_str).map(str::trim);
        let yes = |k: &str| with.get(k).and_then(Value::as_bool);
        let scope = text("scope").unwrap_or("dag").to_owned();
        if !wharf_spec::state::SCOPES.contains(&scope.as_str()) {
            return Err(format!(
                "`scope` must be one of: {}; found `{scope}`",
                wharf_spec::state::SCOPES.join(", ")
            ));
        }
        let namespace = match (text("namespace"), scope.as_str()) {
            (Some(n), _) => n.to_owned(),
            (None, "dag") => caller.dag.to_owned(),
            (None, "root_dag") => caller.root.to_owned(),
            (None, "global") => "_".to_owned(),
            (None, _) => return Err("`scope: custom` needs `namespace`".into()),
        };
        if let Some(problem) = wharf_spec::state::bad_namespace(&namespace) {
            return Err(problem);
        }
        let key = if op == StateOp::List {
            let prefix = text("prefix").unwrap_or_default().to_owned();
            if let Some(problem) = wharf_spec::state::bad_prefix(&prefix) {
                return Err(problem);
            }
            prefix
        } else {
            let key = text("key").unwrap_or_default().to_owned();
            if let Some(problem) = wharf_spec::state::bad_key("key", &key) {
                return Err(problem);
            }
            key
        };
        let value = match op {
            StateOp::Get => with.get("default").map(normalize).transpose()?,
            StateOp::Set | StateOp::Diff => {
                Some(normalize(with.get("value").unwrap_or(&Value::Null))?)
            }
            StateOp::Delete | StateOp::List => None,
        };
        let expected_version = match with.get("expected_version") {
            None => None,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => Some(s.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(
                || format!("`expected_version` must be a version (a whole number, 0 or more), found `{s}`"),
            )?),
            Some(other) => return Err(format!("`expected_version` must be a version, found {other}")),
        };
        let flag = match op {
            StateOp::Get => yes("required").unwrap_or(false),
            StateOp::Set => yes("create_only").unwrap_or(false),
            StateOp::Diff => yes("update").unwrap_or(true),
            StateOp::List => yes("include_values").unwrap_or(false),
            StateOp::Delete => false,
        };
        let limit = with
            .get("limit")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        Ok(Self {
            op,
            scope,
            namespace,
            key,
            value,
            expected_version,
            flag,
            limit,
        })
    }

    fn at(&self) -> StateRef<'_> {
        StateRef {
            scope: &self.scope,
            namespace: &self.namespace,
            key: &self.key,
        }
    }

    /// Where the entry is, in words.
    fn place(&self) -> String {
        format!("`{}` ({} {})", self.key, self.scope, self.namespace)
    }

    /// The start of every result: the operation and where.
    fn head(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("operation".into(), self.op.name().into());
        m.insert("scope".into(), self.scope.clone().into());
        m.insert("namespace".into(), self.namespace.clone().into());
        if self.op == StateOp::List {
            if !self.key.is_empty() {
                m.insert("prefix".into(), self.key.clone().into());
            }
        } else {
            m.insert("key".into(), self.key.clone().into());
        }
        m
    }

    fn run(&self, store: &Store, by: &str) -> Result<Map<String, Value>, String> {
        let mut result = self.head();
        let err = |e: wharf_store::Error| e.to_string();
        match self.op {
            StateOp::Get => match store.state_get(self.at()).map_err(err)? {
                Some(entry) => {
                    result.insert("found".into(), true.into());
                    result.insert("version".into(), entry.version.into());
                    result.insert("hash".into(), entry.hash.clone().into());
                    result.insert("value".into(), parsed(&entry.value));
                }
                None if self.flag => {
                    return Err(format!("no entry {} (`required: true`)", self.place()));
                }
                None => {
                    result.insert("found".into(), false.into());
                    if let Some(default) = &self.value {
                        result.insert("value".into(), parsed(default));
                    }
                }
            },
            StateOp::Set => {
                let value = self.value.as_deref().unwrap_or("null");
                let entry = self.put(store, value, self.expected_version, by)?;
                result.insert("version".into(), entry.version.into());
                result.insert("hash".into(), entry.hash.into());
                result.insert("created".into(), (entry.version == 1).into());
            }
            StateOp::Delete => {
                let deleted = store.state_delete(self.at()).map_err(err)?;
                result.insert("deleted".into(), deleted.into());
            }
            StateOp::List => {
                let entries = store
                    .state_list(&self.scope, &self.namespace, &self.key, self.limit)
                    .map_err(err)?;
                let entries: Vec<Value> = entries.iter().map(|e| self.listed(e)).collect();
                result.insert("entries".into(), entries.into());
            }
            StateOp::Diff => self.diff(store, by, &mut result)?,
        }
        Ok(result)
    }

    fn put(
        &self,
        store: &Store,
        value: &str,
        expected_version: Option<i64>,
        by: &str,
    ) -> Result<StateEntry, String> {
        let hash = hash(value);
        let put = Put {
            value,
            hash: &hash,
            expected_version,
            create_only: self.op == StateOp::Set && self.flag,
            updated_by: Some(by),
        };
        match store.state_put(self.at(), put).map_err(|e| e.to_string())? {
            Written::Done(entry) => Ok(entry),
            Written::Conflict { found } => Err(conflict(&self.place(), found, expected_version)),
        }
    }

    fn diff(&self, store: &Store, by: &str, result: &mut Map<String, Value>) -> Result<(), String> {
        let current = self.value.as_deref().unwrap_or("null");
        let current_hash = hash(current);
        let previous = store.state_get(self.at()).map_err(|e| e.to_string())?;
        let found = previous.as_ref().map(|p| p.version);
        if let Some(expected) = self.expected_version
            && found.unwrap_or(0) != expected
        {
            return Err(conflict(&self.place(), found, Some(expected)));
        }
        let changed = previous.as_ref().is_none_or(|p| p.hash != current_hash);
        let written = if changed && self.flag {
            Some(self.put(store, current, Some(found.unwrap_or(0)), by)?)
        } else {
            None
        };
        result.insert("changed".into(), changed.into());
        result.insert("foundPrevious".into(), previous.is_some().into());
        if let Some(p) = &previous {
            result.insert("previousVersion".into(), p.version.into());
        }
        // The entry as it now is: written, or as it was.
        if let Some(e) = written.as_ref().or(previous.as_ref()) {
            result.insert("version".into(), e.version.into());
            result.insert("hash".into(), e.hash.clone().into());
        }
        if let Some(p) = &previous {
            result.insert("previous".into(), parsed(&p.value));
        }
        result.insert("current".into(), parsed(current));
        Ok(())
    }

    fn listed(&self, e: &StateEntry) -> Value {
        let mut item = json!({
            "scope": e.scope,
            "namespace": e.namespace,
            "key": e.key,
            "version": e.version,
            "hash": e.hash,
            "createdAt": time(e.created_at),
            "updatedAt": time(e.updated_at),
        });
        if self.flag
            && let Some(m) = item.as_object_mut()
        {
            m.insert("value".into(), parsed(&e.value));
        }
        item
    }
}

fn conflict(place: &str, found: Option<i64>, expected: Option<i64>) -> String {
    match (found, expected) {
        (Some(v), Some(0)) => format!(
            "conflict: {place} exists already (version {v}); `expected_version: 0` requires that it does not"
        ),
        (Some(v), Some(e)) => format!(
            "conflict: {place} is at version {v}, not {e} as `expected_version` requires (another run wrote it since)"
        ),
        (None, Some(e)) => format!(
            "conflict: there is no entry {place}, not version {e} as `expected_version` requires"
        ),
        (Some(v), None) => {
            format!("conflict: {place} exists already (version {v}) and `create_only: true` is set")
        }
        (None, None) => format!("conflict: {place} changed while it was written"),
    }
}

/// The value as kept: object keys sorted, compact, whole numbers without a fraction.
fn normalize(value: &Value) -> Result<String, String> {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 =>
                {
                    #[allow(clippy::cast_possible_truncation)]
                    Value::from(f as i64)
                }
                _ => v.clone(),
            },
            other => other.clone(),
        }
    }
    let text = sorted(value).to_string();
    if text.len() > MAX_VALUE {
        return Err(format!(
            "the value is {} bytes as JSON, over the 1 MiB a state entry may hold (keep large data in artifacts or files)",
            text.len()
        ));
    }
    Ok(text)
}

fn hash(normalized: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, normalized.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Milliseconds since the epoch in RFC 3339, UTC.
fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_its_hash_whatever_its_spelling() {
        let a = normalize(&json!({"b": 1.0, "a": [1, {"d": 2, "c": 3}]})).unwrap();
        let b = normalize(&json!({"a": [1, {"c": 3, "d": 2}], "b": 1})).unwrap();
        assert_eq!(a, r#"{"a":[1,{"c":3,"d":2}],"b":1}"#);
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(
            hash(&a),
            hash(&normalize(&json!({"a": [1], "b": 1})).unwrap())
        );
        assert_eq!(hash("null").len(), 64);
        let big = Value::String("x".repeat(MAX_VALUE));
        assert!(normalize(&big).unwrap_err().contains("over the 1 MiB"));
    }
}
