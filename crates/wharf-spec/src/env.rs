//! The environment of a run, as the DAG defines it: `dotenv` files, then `env` (each value
//! expanded against what came before it and the host environment), then `params` (the
//! file's defaults, overridden by the ones given on the command line).
//!
//! Values go through an evaluator after expansion: a run substitutes backticks (command
//! substitution) there; `wharf dry` leaves them as written, since evaluating them runs
//! commands.

use std::path::Path;

use crate::expand::expand;
use crate::formats::resolve_path;
use crate::model::{Dag, Param};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Dotenv(String),
    Env,
    Param,
    /// The `output` of an earlier step.
    Output,
    /// One of `secrets`: its value is never shown.
    Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Named variables, in the order they were set (a later one replaces an earlier one
    /// of the same name, keeping its place).
    pub vars: Vec<Var>,
    /// `$1`, `$2`, ...
    pub positional: Vec<String>,
    /// The name of the param at each position, when it has one (`$1` of `TOKEN=x` is
    /// `TOKEN`'s value, so it is a credential as much as `TOKEN` is).
    pub positional_names: Vec<Option<String>>,
    /// Problems that do not stop a dry run (a missing dotenv file).
    pub notes: Vec<String>,
    /// Why the params given for the run are refused by the DAG's params schema: a run
    /// fails with it before any step starts.
    pub params_error: Option<String>,
}

impl Resolved {
    pub fn get(&self, name: &str) -> Option<&str> {
        if let Ok(i) = name.parse::<usize>() {
            return i
                .checked_sub(1)
                .and_then(|i| self.positional.get(i))
                .map(String::as_str);
        }
        self.vars
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }

    /// The value of a name as `${...}` reads it: a variable, a positional param, or a path
    /// into a variable that holds JSON (`${J.a.b}`, `${J.items[0].name}`: a string is
    /// given as it is, anything else as JSON text).
    pub fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.get(name) {
            return Some(v.to_owned());
        }
        // A field of a `foreach` item (`${foreach.item.id}`): the item is the variable
        // `foreach.item`. (A step's output has no fields to read: Dagu 2.x leaves
        // `${steps.ID.outputs.NAME.field}` as written.)
        const FOREACH: &str = "foreach.";
        let dotted = name
            .strip_prefix(FOREACH)
            .and_then(|rest| rest.split_once('.'))
            .map(|(item, field)| (&name[..FOREACH.len() + item.len()], field));
        // `${ID.outputs}`: every output the step published, as one JSON object.
        if let Some(id) = name.strip_suffix(".outputs")
            && !id.contains('.')
        {
            let prefix = format!("steps.{id}.outputs.");
            let fields: serde_json::Map<String, serde_json::Value> = self
                .vars
                .iter()
                .filter_map(|v| {
                    let field = v.name.strip_prefix(&prefix)?;
                    Some((field.to_owned(), serde_json::Value::String(v.value.clone())))
                })
                .collect();
            if !fields.is_empty() {
                return Some(serde_json::Value::Object(fields).to_string());
            }
        }
        // `${ID.outputs.NAME}`: the short form of `${steps.ID.outputs.NAME}` (else a
        // field of the variable `ID`, as a sub-DAG's result is read).
        if dotted.is_none()
            && name.contains(".outputs.")
            && !name.starts_with("steps.")
            && let Some(v) = self.get(&format!("steps.{name}"))
        {
            return Some(v.to_owned());
        }
        // The longest name before a dot that is a variable (`${id.output.version}` reads
        // the field `version` of `id.output`), else the first part (a namespace). A step
        // output (`${steps.ID.outputs.NAME}`) has no fields to read.
        let (var, path) = match dotted {
            Some(found) => found,
            None if name.starts_with("steps.") => name.split_once('.')?,
            None => name
                .match_indices('.')
                .rev()
                .map(|(at, _)| (&name[..at], &name[at + 1..]))
                .find(|(var, _)| self.get(var).is_some())
                .or_else(|| name.split_once('.'))?,
        };
        let Some(text) = self.get(var) else {
            return self.namespaced(var, path);
        };
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let mut at = &json;
        for part in path.split('.') {
            let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                at = at.get(key)?;
            }
            for index in indexes.split('[').filter(|i| !i.is_empty()) {
                at = at.get(index.strip_suffix(']')?.parse::<usize>().ok()?)?;
            }
        }
        Some(match at {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// Dagu 2.x's namespaced references: `${params.X}`, `${env.X}` (the step's variables,
    /// then wharf's environment), and the run's context (`${context.run.id}` or
    /// `${run.id}`, `${dag.name}`, `${step.name}`, `${paths.log_file}`, ...) from the
    /// `DAG_*` variables. `${steps.ID.outputs.NAME}` is a variable of its own, set when
    /// the step publishes it.
    fn namespaced(&self, space: &str, rest: &str) -> Option<String> {
        match space {
            "params" => self.get(rest).map(str::to_owned),
            "env" => self
                .get(rest)
                .map(str::to_owned)
                .or_else(|| std::env::var(rest).ok()),
            "context" => self.lookup(rest),
            "dag" | "run" | "step" | "paths" => {
                let var = match (space, rest) {
                    ("dag", "name") => "DAG_NAME",
                    ("run", "id") => "DAG_RUN_ID",
                    ("run", "status") => "DAG_RUN_STATUS",
                    ("step", "name") => "DAG_RUN_STEP_NAME",
                    ("paths", "log_file") => "DAG_RUN_LOG_FILE",
                    ("paths", "step_stdout_file") => "DAG_RUN_STEP_STDOUT_FILE",
                    ("paths", "step_stderr_file") => "DAG_RUN_STEP_STDERR_FILE",
                    ("paths", "step_output_file") => "DAGU_OUTPUT_FILE",
                    ("paths", "artifacts_dir") => "DAG_RUN_ARTIFACTS_DIR",
                    _ => return None,
                };
                self.get(var).map(str::to_owned)
            }
            _ => None,
        }
    }

    pub fn set(&mut self, name: &str, value: String, origin: Origin) {
        match self.vars.iter_mut().find(|v| v.name == name) {
            Some(v) => {
                v.value = value;
                v.origin = origin;
            }
            None => self.vars.push(Var {
                name: name.to_owned(),
                value,
                origin,
            }),
        }
    }

    /// Expands `text` against these variables, then the host environment.
    pub fn expand(&self, text: &str, host: &dyn Fn(&str) -> Option<String>) -> String {
        expand(text, |name| self.lookup(name).or_else(|| host(name)))
    }

    /// [`Resolved::expand`], single-quoted text left as written (Dagu 2.x).
    pub fn expand_unquoted(&self, text: &str, host: &dyn Fn(&str) -> Option<String>) -> String {
        crate::expand::expand_unquoted(text, |name| self.lookup(name).or_else(|| host(name)))
    }
}

/// Resolves the DAG's variables; `overrides` are the params given for this run.
pub fn resolve(dag: &Dag, overrides: &[Param], host: &dyn Fn(&str) -> Option<String>) -> Resolved {
    resolve_with(
        dag,
        overrides,
        host,
        &mut |r, text| Ok(r.expand(text, host)),
    )
}

/// Like [`resolve`], with each value the DAG's author wrote (`env`, the file's `params`)
/// turned into its value by `eval`, given the variables so far and the text as written: a
/// run expands variables and substitutes backticks there. An `Err` from `eval` becomes a
/// note, and the value is the text with its variables expanded.
///
/// Params given for the run (`overrides`) are data: taken as they are, never expanded or
/// evaluated, wherever they came from (the command line, the API, the UI).
pub fn resolve_with(
    dag: &Dag,
    overrides: &[Param],
    host: &dyn Fn(&str) -> Option<String>,
    eval: &mut dyn FnMut(&Resolved, &str) -> Result<String, String>,
) -> Resolved {
    let mut r = Resolved::default();
    // An `Err` is told as a note; the value is then the text with its variables expanded.
    let lenient = |r: &mut Resolved, name: &str, text: &str, got: Result<String, String>| {
        got.unwrap_or_else(|e| {
            r.notes.push(format!("{name}: {e}"));
            r.expand(text, host)
        })
    };
    for file in &dag.dotenv {
        let path = resolve_path(&dag.working_dir, file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (name, value) in parse_dotenv(&text) {
                    let value = if value.raw {
                        value.text
                    } else {
                        r.expand(&value.text, host)
                    };
                    r.set(&name, value, Origin::Dotenv(file.clone()));
                }
            }
            // `.env` is optional; a file the DAG names is not.
            Err(_) if file == ".env" => {}
            Err(e) => r.notes.push(format!("dotenv file {}: {e}", path.display())),
        }
    }
    // Dagu 2.x runs no command in `env` (only a param's `eval` does): a value is its
    // text with the variables before it put in.
    let v2 = dag.dialect == crate::Dialect::V2;
    for var in &dag.env {
        let got = if v2 {
            Ok(r.expand_unquoted(&var.value, host))
        } else {
            eval(&r, &var.value)
        };
        let value = lenient(&mut r, &var.name, &var.value, got);
        r.set(&var.name, value, Origin::Env);
    }
    let params = match crate::params::for_run(dag, overrides) {
        Ok(params) => params,
        Err(e) => {
            r.params_error = Some(e.to_string());
            merge_params(&dag.params, overrides)
        }
    };
    // A Dagu 2.x default is literal; its `eval` is what is evaluated. A param with an
    // `eval` and no default is not among the file's params: it is added.
    let mut params = params;
    for (name, _) in &dag.param_evals {
        if !params.iter().any(|(p, _)| p.name.as_deref() == Some(name)) {
            let p = Param {
                name: Some(name.clone()),
                value: String::new(),
            };
            params.push((p, false));
        }
    }
    for (i, (p, given)) in params.into_iter().enumerate() {
        let declared = p
            .name
            .as_ref()
            .and_then(|n| dag.param_evals.iter().find(|(e, _)| e == n));
        let value = match declared {
            _ if given => p.value,
            // References first (`${params.env}`), then the commands run.
            Some((name, expr)) => match eval(&r, &crate::expand::references(expr, |n| r.lookup(n)))
            {
                Ok(v) => v.trim().to_owned(),
                Err(e) if !p.value.is_empty() => {
                    r.notes.push(format!("{name}: {e}; its default is used"));
                    p.value
                }
                Err(e) => {
                    r.params_error
                        .get_or_insert_with(|| format!("the param `{name}`: `eval` failed: {e}"));
                    String::new()
                }
            },
            None if v2 => p.value,
            None => {
                let got = eval(&r, &p.value);
                lenient(
                    &mut r,
                    p.name.as_deref().unwrap_or("a param"),
                    &p.value,
                    got,
                )
            }
        };
        if let Some(name) = &p.name {
            // As in Dagu, the DAG's `env` (and dotenv) win over a param of the same name;
            // the param is still `$N` by its position.
            let shadowed = r
                .vars
                .iter()
                .any(|v| v.name == *name && matches!(v.origin, Origin::Env | Origin::Dotenv(_)));
            if !shadowed {
                r.set(name, value.clone(), Origin::Param);
            } else if given {
                r.notes.push(format!(
                    "the param `{name}` given for this run is not used: the DAG's env sets `{name}`, and env wins over params"
                ));
            }
        }
        if i >= r.positional.len() {
            r.positional.push(value);
            r.positional_names.push(p.name.clone());
        }
    }
    r
}

/// The file's params with the command line's applied. A named one replaces the default
/// of that name where it stands (or is added at the end). Positional ones take the places
/// of the file's positional defaults in order; those beyond them come right after the
/// file's last positional default (first, when it has none), so that `$1`, `$2`, ... are
/// the positional values given: `params: [{ENV: dev}]` run with `-- app ENV=prod` has
/// `$1` = `app` and `ENV` = `prod`.
/// Each comes with whether it was given for the run (true) or is the file's (false).
pub fn merge_params(defaults: &[Param], overrides: &[Param]) -> Vec<(Param, bool)> {
    let mut out: Vec<(Param, bool)> = defaults.iter().map(|p| (p.clone(), false)).collect();
    for (given, o) in overrides.iter().filter(|o| o.name.is_none()).enumerate() {
        let slot = out
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| p.name.is_none())
            .nth(given)
            .map(|(i, _)| i);
        match slot {
            Some(i) => out[i] = (o.clone(), true),
            None => {
                let after = out
                    .iter()
                    .rposition(|(p, _)| p.name.is_none())
                    .map_or(0, |i| i + 1);
                out.insert(after, (o.clone(), true));
            }
        }
    }
    for o in overrides {
        let Some(name) = &o.name else { continue };
        match out.iter_mut().find(|(p, _)| p.name.as_ref() == Some(name)) {
            Some((p, was_given)) => {
                p.value = o.value.clone();
                *was_given = true;
            }
            None => out.push((o.clone(), true)),
        }
    }
    out
}

/// Whether `name` can be a variable: a letter or `_`, then letters, digits and `_`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret that could not be read: names the secret and where it looked, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{name}`: {why}")]
pub struct SecretError {
    pub name: String,
    pub why: String,
}

/// Reads the DAG's `secrets` (when a run starts): each name with its value.
pub fn read_secrets(
    dag: &Dag,
    host: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, SecretError> {
    dag.secrets
        .iter()
        .map(|s| {
            let failed = |why: String| SecretError {
                name: s.name.clone(),
                why,
            };
            let value = match s.provider {
                crate::model::SecretProvider::Env => host(&s.key).ok_or_else(|| {
                    failed(format!("the environment variable `{}` is not set", s.key))
                })?,
                crate::model::SecretProvider::File => {
                    let path = resolve_path(&dag.working_dir, &s.key);
                    let mut text = std::fs::read_to_string(&path)
                        .map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
                    if text.ends_with('\n') {
                        text.pop();
                        if text.ends_with('\r') {
                            text.pop();
                        }
                    }
                    text
                }
            };
            Ok((s.name.clone(), value))
        })
        .collect()
}

/// Hides secret values in text: each occurrence becomes `*******`.
#[derive(Debug, Clone, Default)]
pub struct Mask {
    /// Longest first, so that a value containing another is hidden whole.
    values: Vec<String>,
}

impl Mask {
    pub const HIDDEN: &'static str = "*******";

    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The length of the longest value: text that may be the start of a value that goes
    /// on in the next piece is at most one byte less.
    pub fn longest(&self) -> usize {
        self.values.first().map_or(0, String::len)
    }

    pub fn text(&self, text: &str) -> String {
        // Whole values (valid UTF-8) become ASCII: the text stays valid UTF-8.
        String::from_utf8_lossy(&self.bytes(text.as_bytes())).into_owned()
    }

    pub fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for v in &self.values {
            let v = v.as_bytes();
            if out.windows(v.len()).any(|w| w == v) {
                let mut next = Vec::with_capacity(out.len());
                let mut i = 0;
                while i < out.len() {
                    if out[i..].starts_with(v) {
                        next.extend_from_slice(Self::HIDDEN.as_bytes());
                        i += v.len();
                    } else {
                        next.push(out[i]);
                        i += 1;
                    }
                }
                out = next;
            }
        }
        out
    }
}

/// Whether a variable's name says it holds a credential, so that its value is never shown.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "PASS",
        "SECRET",
        "TOKEN",
        "APIKEY",
        "API_KEY",
        "ACCESS_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|word| upper.contains(word))
        || upper.ends_with("_KEY")
}

pub(crate) struct DotenvValue {
    pub text: String,
    /// Single-quoted: no expansion.
    pub raw: bool,
}

/// `KEY=value` lines, with `export`, comments, and single or double quotes.
pub(crate) fn parse_dotenv(text: &str) -> Vec<(String, DotenvValue)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !crate::formats::is_var_name(name) {
            continue;
        }
        let value = value.trim();
        let parsed = if let Some(inner) = value
            .strip_prefix('\'')
            .and_then(|v| v.rsplit_once('\''))
            .map(|(v, _)| v)
        {
            DotenvValue {
                text: inner.to_owned(),
                raw: true,
            }
        } else if let Some(inner) = value
            .strip_prefix('"')
            .and_then(|v| v.rsplit_once('"'))
            .map(|(v, _)| v)
        {
            let text = inner
                .replace("\\n", "\n")
                .replace("\\\"", "\"")
                .replace("\\\\", "\\");
            DotenvValue { text, raw: false }
        } else {
            let text = value
                .split(" #")
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_owned();
            DotenvValue { text, raw: false }
        };
        out.push((name.to_owned(), parsed));
    }
    out
}

/// The DAG's folder for relative dotenv paths, for callers that report them.
pub fn dotenv_path(dag: &Dag, file: &str) -> std::path::PathBuf {
    resolve_path(Path::new(&dag.working_dir), file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_lines() {
        let vars =
            parse_dotenv("# c\nexport A=1\nB='x $A'\nC=\"q\\\"\" \nD=plain # note\nbad line\n");
        let got: Vec<(String, String, bool)> =
            vars.into_iter().map(|(n, v)| (n, v.text, v.raw)).collect();
        assert_eq!(
            got,
            vec![
                ("A".into(), "1".into(), false),
                ("B".into(), "x $A".into(), true),
                ("C".into(), "q\"".into(), false),
                ("D".into(), "plain".into(), false),
            ]
        );
    }

    #[test]
    fn params_override_by_name_and_position() {
        let defaults = vec![
            Param {
                name: None,
                value: "a".into(),
            },
            Param {
                name: Some("N".into()),
                value: "1".into(),
            },
        ];
        let overrides = vec![
            Param {
                name: None,
                value: "z".into(),
            },
            Param {
                name: Some("N".into()),
                value: "2".into(),
            },
        ];
        let merged = merge_params(&defaults, &overrides);
        assert_eq!((merged[0].0.value.as_str(), merged[0].1), ("z", true));
        assert_eq!((merged[1].0.value.as_str(), merged[1].1), ("2", true));
    }

    #[test]
    fn positional_values_given_come_before_named_defaults() {
        let p = |name: Option<&str>, value: &str| Param {
            name: name.map(str::to_owned),
            value: value.into(),
        };
        let shown = |merged: Vec<(Param, bool)>| -> Vec<String> {
            merged
                .into_iter()
                .map(|(p, _)| match p.name {
                    Some(n) => format!("{n}={}", p.value),
                    None => p.value,
                })
                .collect()
        };
        // G16: `params: [{ENV: dev}]` with `-- app ENV=prod`.
        let merged = merge_params(
            &[p(Some("ENV"), "dev")],
            &[p(None, "app"), p(Some("ENV"), "prod")],
        );
        assert_eq!(shown(merged), ["app", "ENV=prod"]);
        // More positional values than the file has: after its last positional one.
        let merged = merge_params(
            &[p(None, "a"), p(Some("N"), "1"), p(None, "b")],
            &[p(None, "x"), p(None, "y"), p(None, "z")],
        );
        assert_eq!(shown(merged), ["x", "N=1", "y", "z"]);
        // Fewer: the file's later ones stay.
        let merged = merge_params(&[p(None, "a"), p(None, "b")], &[p(None, "c")]);
        assert_eq!(shown(merged), ["c", "b"]);
    }

    #[test]
    fn secret_names() {
        for s in [
            "POSTGRES_PASSWORD",
            "GITHUB_TOKEN",
            "api_key",
            "AWS_SECRET_ACCESS_KEY",
            "GCR_AUTH",
        ] {
            assert!(is_secret_name(s), "{s}");
        }
        for s in ["PYTHONPATH", "NODE_ENV", "HOME"] {
            assert!(!is_secret_name(s), "{s}");
        }
    }

    #[test]
    fn json_paths_into_a_variable() {
        let mut r = Resolved::default();
        r.set(
            "J",
            r#"{"a":{"b":5},"items":[{"name":"first"}],"s":"text"}"#.into(),
            Origin::Output,
        );
        assert_eq!(r.lookup("J.a.b").as_deref(), Some("5"));
        assert_eq!(r.lookup("J.items[0].name").as_deref(), Some("first"));
        assert_eq!(r.lookup("J.s").as_deref(), Some("text"));
        assert_eq!(r.lookup("J.a").as_deref(), Some(r#"{"b":5}"#));
        assert_eq!(r.lookup("J.nope"), None);
        assert_eq!(r.lookup("J.items[3].name"), None);
        assert_eq!(r.expand("v=${J.a.b}", &|_| None), "v=5");
    }
}
