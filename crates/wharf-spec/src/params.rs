//! `params: {schema: …, values: …}`: params checked against a JSON Schema.
//!
//! Each value (the file's `values`, then the ones given for a run, all `NAME=value`) is
//! read as the type its property declares (`integer`, `number`, `boolean`, `string`; JSON
//! text when the property declares none), the schema's `default`s fill the names that have
//! no value, and the whole object is validated. The run's params are then the object's
//! members: the schema's properties in the order the schema lists them, then any others
//! by name, so `$1` is the first property.

use std::path::Path;

use serde_json::{Map, Value};

use crate::model::{Dag, Param};

/// A params schema, as the DAG names it.
#[derive(Debug, Clone)]
pub struct ParamsSchema {
    /// Where it was read from (a file path), or `inline`.
    pub source: String,
    /// The location the schema's relative `$ref`s resolve against.
    url: String,
    pub json: Value,
}

/// Why the params of a run are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("params: {0}")]
pub struct ParamsError(pub String);

impl ParamsSchema {
    /// Reads the schema `reference` names: a file, relative to `working_dir`, else to the
    /// DAG file's folder `dag_dir`, else to the current directory.
    pub fn from_file(reference: &str, working_dir: &Path, dag_dir: &Path) -> Result<Self, String> {
        if reference.starts_with("http://") || reference.starts_with("https://") {
            return Err(format!(
                "the schema `{reference}` is a URL; wharf reads a params schema from a file, \
                 so that a run never depends on a server: save it beside the DAG and name the file"
            ));
        }
        let given = Path::new(reference);
        let candidates: Vec<std::path::PathBuf> = if given.is_absolute() {
            vec![given.to_path_buf()]
        } else {
            let mut c = vec![working_dir.join(given), dag_dir.join(given)];
            if let Ok(cwd) = std::env::current_dir() {
                c.push(cwd.join(given));
            }
            let mut unique = Vec::new();
            for p in c {
                if !unique.contains(&p) {
                    unique.push(p);
                }
            }
            unique
        };
        let Some(path) = candidates.iter().find(|p| p.is_file()) else {
            let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            return Err(format!(
                "the schema file `{reference}` is not found (looked at {})",
                tried.join(", ")
            ));
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the schema {}: {e}", path.display()))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("the schema {} is not JSON: {e}", path.display()))?;
        let path = path.canonicalize().unwrap_or_else(|_| path.clone());
        let schema = Self {
            source: path.display().to_string(),
            url: url_of(&path),
            json,
        };
        schema.compile()?;
        Ok(schema)
    }

    /// A schema written in the DAG file itself.
    pub fn inline(json: Value, dag_dir: &Path) -> Result<Self, String> {
        let schema = Self {
            source: "inline".to_owned(),
            url: url_of(&dag_dir.join("params.schema.json")),
            json,
        };
        schema.compile()?;
        Ok(schema)
    }

    fn compile(&self) -> Result<(boon::Schemas, boon::SchemaIndex), String> {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        let invalid =
            |e: &dyn std::fmt::Display| format!("the schema {} is invalid: {e}", self.source);
        compiler
            .add_resource(&self.url, self.json.clone())
            .map_err(|e| invalid(&e))?;
        let index = compiler
            .compile(&self.url, &mut schemas)
            .map_err(|e| invalid(&e))?;
        Ok((schemas, index))
    }

    fn property(&self, name: &str) -> Option<&Value> {
        self.json.get("properties")?.get(name)
    }

    /// The type a value given as text is read as: the property's scalar `type`, or the
    /// type all of its `enum` members share.
    fn scalar_type(&self, name: &str) -> Option<&'static str> {
        const SCALARS: [&str; 4] = ["string", "integer", "number", "boolean"];
        let property = self.property(name)?;
        let declared = match property.get("type") {
            Some(Value::String(t)) => Some(t.as_str()),
            Some(Value::Array(ts)) if ts.len() == 1 => ts[0].as_str(),
            _ => None,
        };
        if let Some(t) = declared {
            return SCALARS.into_iter().find(|s| *s == t);
        }
        let members = property.get("enum")?.as_array()?;
        let kind = |v: &Value| match v {
            Value::String(_) => Some("string"),
            Value::Bool(_) => Some("boolean"),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
            Value::Number(_) => Some("number"),
            _ => None,
        };
        let first = kind(members.first()?)?;
        members
            .iter()
            .all(|m| kind(m) == Some(first))
            .then_some(first)
    }

    fn typed(&self, name: &str, text: &str) -> Result<Value, String> {
        let bad = |what: &str| format!("`{name}`: `{text}` is not {what}");
        Ok(match self.scalar_type(name) {
            Some("string") => Value::String(text.to_owned()),
            Some("integer") => {
                let t = text.trim();
                t.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| t.parse::<u64>().map(Value::from))
                    .map_err(|_| bad("an integer"))?
            }
            Some("number") => {
                let n: f64 = text.trim().parse().map_err(|_| bad("a number"))?;
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    #[allow(clippy::cast_possible_truncation)]
                    Value::from(n as i64)
                } else {
                    serde_json::Number::from_f64(n)
                        .map(Value::Number)
                        .ok_or_else(|| bad("a finite number"))?
                }
            }
            Some(_) => match text.trim() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Value::Bool(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Value::Bool(false),
                _ => return Err(bad("a boolean (true or false)")),
            },
            None => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
        })
    }

    /// The object the schema checks: `values` with `given` applied, then the defaults.
    /// `Err` when a value cannot be read as its property's type.
    fn object(&self, values: &[Param], given: &[Param]) -> Result<Map<String, Value>, String> {
        let mut object = Map::new();
        for p in values.iter().chain(given) {
            let Some(name) = &p.name else {
                return Err(format!(
                    "`{}` has no name: a DAG whose params have a schema takes named params only (NAME=value)",
                    p.value
                ));
            };
            object.insert(name.clone(), self.typed(name, &p.value)?);
        }
        if let Some(Value::Object(properties)) = self.json.get("properties") {
            for (name, property) in properties {
                if let Some(default) = property.get("default")
                    && !object.contains_key(name)
                {
                    object.insert(name.clone(), default.clone());
                }
            }
        }
        Ok(object)
    }

    /// Validates `object`; `relaxed` leaves out `required` (the file's own `values` need
    /// not name what a run must be given).
    fn validate(&self, object: &Map<String, Value>, relaxed: bool) -> Result<(), String> {
        let checked = if relaxed && self.json.get("required").is_some() {
            let mut json = self.json.clone();
            if let Value::Object(m) = &mut json {
                m.remove("required");
            }
            Self {
                source: self.source.clone(),
                url: self.url.clone(),
                json,
            }
        } else {
            self.clone()
        };
        let (schemas, index) = checked.compile()?;
        let instance = Value::Object(object.clone());
        schemas.validate(&instance, index).map_err(|e| {
            let mut problems = Vec::new();
            leaves(&e, &mut problems);
            problems.join("; ")
        })
    }

    /// The params of a run: the file's `values` with `given` applied, checked; each with
    /// whether it was given for the run.
    pub fn params(
        &self,
        values: &[Param],
        given: &[Param],
    ) -> Result<Vec<(Param, bool)>, ParamsError> {
        let object = self.object(values, given).map_err(ParamsError)?;
        self.validate(&object, false).map_err(ParamsError)?;
        let mut order: Vec<&String> = Vec::new();
        if let Some(Value::Object(properties)) = self.json.get("properties") {
            order.extend(properties.keys().filter(|k| object.contains_key(*k)));
        }
        let mut others: Vec<&String> = object.keys().filter(|k| !order.contains(k)).collect();
        others.sort();
        order.extend(others);
        Ok(order
            .into_iter()
            .map(|name| {
                let was_given = given.iter().any(|p| p.name.as_ref() == Some(name));
                let value = match &object[name] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (
                    Param {
                        name: Some(name.clone()),
                        value,
                    },
                    was_given,
                )
            })
            .collect())
    }

    /// Checks the file's own `values` (without `required`): what `wharf validate` reports.
    pub fn check_values(&self, values: &[Param]) -> Result<(), String> {
        let object = self.object(values, &[])?;
        self.validate(&object, true)
    }
}

/// Params as Dagu takes them in one text (`--params`, the API's `params`): a JSON object
/// (`{"A": "1"}`: `A=1`), a JSON list (its items as words), or shell words
/// (`A=1 B="two words"`).
pub fn words(text: &str) -> Result<Vec<String>, String> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        match v {
            Value::Object(m) => {
                return Ok(m
                    .into_iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect());
            }
            Value::Array(items) => {
                return Ok(items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect());
            }
            _ => {}
        }
    }
    shell_words::split(trimmed).map_err(|_| {
        format!(
            "`params` has a quote that is not closed: {trimmed}; close it, or write the params as JSON"
        )
    })
}

/// The params of a run of `dag` with `given` applied, each with whether it was given:
/// the file's params merged with the given ones, or, with a schema, checked against it.
pub fn for_run(dag: &Dag, given: &[Param]) -> Result<Vec<(Param, bool)>, ParamsError> {
    match &dag.params_schema {
        None => Ok(crate::env::merge_params(&dag.params, given)),
        Some(schema) => schema.params(&dag.params, given),
    }
}

/// Checks the params given for a run of `dag` before the run is made.
pub fn check(dag: &Dag, given: &[String]) -> Result<(), ParamsError> {
    let given: Vec<Param> = given
        .iter()
        .map(|w| crate::formats::param_word(w))
        .collect();
    for_run(dag, &given).map(|_| ())
}

fn leaves(e: &boon::ValidationError, out: &mut Vec<String>) {
    if e.causes.is_empty() {
        let at = e.instance_location.to_string();
        let at = at.trim_start_matches('/');
        if at.is_empty() {
            out.push(e.kind.to_string());
        } else {
            out.push(format!("`{}`: {}", at.replace('/', "."), e.kind));
        }
    }
    for cause in &e.causes {
        leaves(cause, out);
    }
}

fn url_of(path: &Path) -> String {
    let mut url = String::from("file://");
    for part in path.to_string_lossy().split('/').filter(|p| !p.is_empty()) {
        url.push('/');
        for b in part.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                url.push(b as char);
            } else {
                url.push_str(&format!("%{b:02X}"));
            }
        }
    }
    url
}
