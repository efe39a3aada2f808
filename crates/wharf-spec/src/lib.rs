//! The DAG language of wharf: a YAML file in Dagu's 1.x or 2.x dialect, read into a typed,
//! validated [`Dag`] with every problem reported as a [`Diagnostic`] with its position.
//!
//! ```text
//! source ──► yaml (node tree with spans, anchors, merge keys)
//!        ──► decode (typed model, key spellings, formats)  ──► graph (names, depends, cycles)
//! ```

mod auth;
mod base;
pub mod calls;
pub mod cron;
mod decode;
pub mod diag;
pub mod dialect;
mod docker_api;
pub mod env;
pub mod expand;
pub mod form;
pub mod formats;
mod graph;
pub mod migrate;
pub mod model;
pub mod params;
pub mod redact;
mod yaml;

use std::path::{Path, PathBuf};

pub use auth::decode_basic;
pub use base::{base_config, set_base_config};
pub use decode::set_default_backend;
/// The shape of `state.*` keys, prefixes, namespaces and scopes.
pub mod state {
    pub use crate::decode::state::{SCOPES, bad_key, bad_namespace, bad_prefix};
}
pub use diag::{Diagnostic, Severity};
pub use dialect::{Dialect, chosen as chosen_dialect, set_dialect};
pub use graph::{dependency_indices, dependents, execution_order};
pub use model::*;

/// What reading a file gave: the DAG when it has no errors, and all diagnostics in the
/// order of their positions.
#[derive(Debug)]
pub struct Loaded {
    pub dag: Option<Dag>,
    pub diagnostics: Vec<Diagnostic>,
    pub source: String,
}

impl Loaded {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }

    /// All diagnostics, rendered for a person, `file` naming the file as they gave it.
    pub fn render(&self, file: &str, color: bool) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(file, &self.source, color))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Whether `name` is letters, digits, `_`, `-` and `.`, not starting with `.` (the names a
/// DAG file or a queue can have).
pub fn is_portable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The longest DAG name (Dagu's limit).
pub const DAG_NAME_MAX: usize = 40;

/// Whether a run can be kept under `name`: a portable name of at most [`DAG_NAME_MAX`]
/// characters, as Dagu checks a DAG's name.
pub fn is_dag_name(name: &str) -> bool {
    name.len() <= DAG_NAME_MAX && is_portable_name(name)
}

/// The largest DAG file wharf reads (the same bound as a spec sent to the API).
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A settings file that cannot be read as flat settings.
#[derive(Debug, Clone, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SettingsError {
    pub line: usize,
    pub message: String,
}

/// Reads and checks a DAG file. A file over [`MAX_FILE_BYTES`] is not read past that: it
/// is an error.
pub fn load_file(path: &Path) -> std::io::Result<Loaded> {
    load_file_as(path, None)
}

/// Reads and checks a DAG file run as a sub-DAG: as [`load_file`], without the base
/// configuration's `handlerOn` (its parent's handlers handle its failure).
pub fn load_sub_dag_file(path: &Path, caller: Dialect) -> std::io::Result<Loaded> {
    load_file_as(path, Some(caller))
}

/// `caller`: the dialect of the DAG that runs this file as a sub-DAG (None: the file is
/// run itself), which a file whose keys do not tell its own is read in.
fn load_file_as(path: &Path, caller: Option<Dialect>) -> std::io::Result<Loaded> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let at = diag::Pos { line: 1, col: 1 };
        return Ok(Loaded {
            dag: None,
            diagnostics: vec![
                Diagnostic::error(
                    diag::Span { start: at, end: at },
                    format!(
                        "the file is larger than {} MiB, too large for a DAG file",
                        MAX_FILE_BYTES / (1024 * 1024)
                    ),
                )
                .with_help(
                    "split it into smaller DAGs, or keep large data in files the steps read",
                ),
            ],
            source: String::new(),
        });
    }
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.into_bytes()[..valid]).into_owned();
            let line = text.matches('\n').count() + 1;
            let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let at = diag::Pos { line, col };
            return Ok(Loaded {
                dag: None,
                diagnostics: vec![Diagnostic::error(
                    diag::Span { start: at, end: at },
                    "the file is not UTF-8 text",
                )],
                source: text,
            });
        }
    };
    Ok(load_str_as(source, path, caller))
}

/// Checks `source` as the content of the DAG file at `path` (used for its name and for
/// resolving relative paths; the file itself is not read).
pub fn load_str(source: String, path: &Path) -> Loaded {
    load_str_as(source, path, None)
}

fn load_str_as(source: String, path: &Path, caller: Option<Dialect>) -> Loaded {
    let sub_dag = caller.is_some();
    let file = absolute(path);
    let dir = file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dag".into());
    let mut diagnostics = Vec::new();
    let mut dag = None;
    match yaml::load(&source) {
        Err(e) => diagnostics.push(e),
        Ok(doc) => {
            diagnostics.extend(doc.diagnostics);
            match doc.root {
                None => diagnostics.push(
                    Diagnostic::error_at_end("the file is empty: a DAG needs `steps`").with_help(
                        "start with `steps:` and a list of commands, e.g. `steps: [echo hello]`",
                    ),
                ),
                Some(mut root) => {
                    base::merge_under(&mut root, sub_dag, &mut diagnostics);
                    let mut others: Vec<yaml::Node> = doc.others.clone();
                    for other in &mut others {
                        base::merge_under(other, true, &mut diagnostics);
                    }
                    let mut made = Vec::new();
                    let mut extras = Vec::new();
                    let dialect = {
                        let mut docs: Vec<&mut yaml::Node> = vec![&mut root];
                        docs.extend(others.iter_mut());
                        dialect::read(&mut docs, &mut made, &mut diagnostics, &mut extras, caller)
                    };
                    let mut extras = extras.into_iter();
                    others.extend(made);
                    let mut decoder = decode::Decoder {
                        diags: Vec::new(),
                        dir: &dir,
                        nix_shell: false,
                        backend: None,
                        v2: dialect == Dialect::V2,
                    };
                    // The tree goes once decoded: a file of thousands of steps does not
                    // hold it and the model at once.
                    dag = decode_one(&mut decoder, root, &file, &stem);
                    let root_extras = extras.next().unwrap_or_default();
                    if let Some(dag) = &mut dag {
                        dag.dialect = dialect;
                        dag.param_evals = root_extras.evals;
                        dag.inferred = root_extras.inferred;
                        dag.dependencies = root_extras.dependencies;
                        if dialect == Dialect::V2 {
                            decoder.diags.extend(dialect::notices(dag));
                        }
                    }
                    // Later documents are local DAGs, named by their `name`.
                    let mut locals: Vec<Dag> = Vec::new();
                    for other in others {
                        let other_extras = extras.next().unwrap_or_default();
                        let named = other
                            .as_map()
                            .and_then(|entries| {
                                entries.iter().find(|e| e.key.as_str() == Some("name"))
                            })
                            .map(|e| e.value.at());
                        let Some(named) = named else {
                            decoder.diags.push(
                                Diagnostic::error(
                                    other.at(),
                                    "a document after the first is a local DAG and needs a `name`",
                                )
                                .with_help("add `name: NAME`; a step runs it with `call: NAME`"),
                            );
                            continue;
                        };
                        let Some(local) = decode_one(&mut decoder, other, &file, "") else {
                            continue;
                        };
                        let main_name = dag.as_ref().map(|d| d.name.as_str());
                        if locals.iter().any(|l| l.name == local.name)
                            || main_name == Some(local.name.as_str())
                        {
                            decoder.error(
                                named,
                                format!("the DAG name `{}` is used twice in this file", local.name),
                            );
                            continue;
                        }
                        let mut local = local;
                        local.dialect = dialect;
                        local.param_evals = other_extras.evals;
                        local.inferred = other_extras.inferred;
                        // A document's files are the run's: one work directory for all.
                        if let Some(dag) = &mut dag {
                            for d in other_extras.dependencies {
                                if !dag.dependencies.contains(&d) {
                                    dag.dependencies.push(d);
                                }
                            }
                        }
                        locals.push(local);
                    }
                    if let Some(dag) = &mut dag {
                        dag.locals = locals;
                    }
                    if dialect == Dialect::V2 {
                        for d in &mut decoder.diags {
                            d.message = dialect::speak_v2(&d.message);
                            d.help = d.help.as_deref().map(dialect::speak_v2);
                        }
                    }
                    diagnostics.extend(decoder.diags);
                }
            }
        }
    }
    diagnostics.iter_mut().for_each(base::relocate);
    // Positions in file order; whole-file problems last.
    diagnostics.sort_by_key(|d| {
        d.span
            .map_or((usize::MAX, 0), |s| (s.start.line, s.start.col))
    });
    // A problem of the base file is told once, not once per document that inherits it.
    let mut told = std::collections::HashSet::new();
    diagnostics.retain(|d| d.span.is_some() || told.insert(d.message.clone()));
    if diagnostics.iter().any(Diagnostic::is_error) {
        dag = None;
    }
    Loaded {
        dag,
        diagnostics,
        source,
    }
}

/// One document of a file as a DAG, its steps linked.
fn decode_one(
    decoder: &mut decode::Decoder,
    root: yaml::Node,
    file: &Path,
    default_name: &str,
) -> Option<Dag> {
    let decoded = decode::dag(decoder, &root, file, default_name);
    drop(root);
    let (mut decoded, raw) = decoded?;
    if !raw.is_empty() {
        graph::link(&mut decoder.diags, &mut decoded, raw);
    }
    over_ssh(&mut decoded, &mut decoder.diags);
    Some(decoded)
}

/// A DAG-level `ssh`: its steps and handlers that name no executor run there. Every `ssh`
/// step needs a `host`, its own or the DAG's.
fn over_ssh(dag: &mut Dag, diags: &mut Vec<Diagnostic>) {
    let defaults = dag.ssh.clone();
    let handlers = [
        &mut dag.handlers.init,
        &mut dag.handlers.success,
        &mut dag.handlers.failure,
        &mut dag.handlers.abort,
        &mut dag.handlers.wait,
        &mut dag.handlers.exit,
    ];
    let steps = dag
        .steps
        .iter_mut()
        .chain(handlers.into_iter().filter_map(|h| h.as_deref_mut()));
    for step in steps {
        if defaults.is_some()
            && step.call.is_none()
            && matches!(step.executor, Executor::Local { explicit: false })
        {
            step.executor = Executor::Ssh(Box::default());
        }
        if let Executor::Ssh(cfg) = &step.executor
            && cfg
                .over(defaults.as_ref())
                .host
                .is_none_or(|h| h.trim().is_empty())
        {
            diags.push(
                Diagnostic::error(
                    step.span,
                    format!("the `ssh` step `{}` has no `host`", step.name),
                )
                .with_help("set `host` in its `config`, or in the DAG's `ssh:`"),
            );
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return formats::resolve_path(Path::new("/"), &path.to_string_lossy());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    formats::resolve_path(&cwd, &path.to_string_lossy())
}

/// A settings file (wharf's `config.yaml`): nested mappings of scalars, flattened to
/// dotted keys (`auth.token`). Lists are not allowed; the error names the line.
pub fn flat_settings(source: &str) -> Result<Vec<(String, String)>, SettingsError> {
    settings(source, None)
}

/// The settings of a file of another program (Dagu's `config.yaml`): its scalar values by
/// dotted key, and the keys that hold lists (which are not an error there).
#[derive(Debug, Default)]
pub struct ForeignSettings {
    pub values: Vec<(String, String)>,
    pub lists: Vec<String>,
    /// The lists of mappings (`queues.config`), each item's scalar values by key.
    pub tables: Vec<(String, Vec<Settings>)>,
}

/// Settings by dotted key, in the file's order.
pub type Settings = Vec<(String, String)>;

/// Like [`flat_settings`], for a file of another program: a key that holds a list is not
/// an error; it is named in [`ForeignSettings::lists`].
pub fn flat_settings_with_lists(source: &str) -> Result<ForeignSettings, SettingsError> {
    let mut lists = Vec::new();
    let values = settings(source, Some(&mut lists))?;
    let mut tables = Vec::new();
    if let Some(root) = yaml::load(source).ok().and_then(|d| d.root) {
        for key in &lists {
            let mut node = Some(&root);
            for part in key.split('.') {
                node = node
                    .and_then(yaml::Node::as_map)
                    .and_then(|m| m.iter().find(|e| e.key.as_str() == Some(part)))
                    .map(|e| &e.value);
            }
            let items = node.and_then(yaml::Node::as_seq).unwrap_or_default();
            let rows: Vec<Settings> = items
                .iter()
                .filter_map(yaml::Node::as_map)
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|e| {
                            Some((e.key.as_str()?.to_owned(), e.value.as_str()?.to_owned()))
                        })
                        .collect()
                })
                .collect();
            if !rows.is_empty() {
                tables.push((key.clone(), rows));
            }
        }
    }
    Ok(ForeignSettings {
        values,
        lists,
        tables,
    })
}

fn settings(
    source: &str,
    mut lists: Option<&mut Vec<String>>,
) -> Result<Vec<(String, String)>, SettingsError> {
    fn walk(
        node: &yaml::Node,
        prefix: &str,
        out: &mut Vec<(String, String)>,
        lists: &mut Option<&mut Vec<String>>,
    ) -> Result<(), SettingsError> {
        match &node.kind {
            yaml::Kind::Map(entries) => {
                for e in entries {
                    let key = e.key.as_str().ok_or_else(|| SettingsError {
                        line: e.key.span.start.line,
                        message: "a key must be text".into(),
                    })?;
                    let full = if prefix.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&e.value, &full, out, lists)?;
                }
                Ok(())
            }
            yaml::Kind::Scalar(s) => {
                out.push((prefix.to_owned(), s.text.clone()));
                Ok(())
            }
            yaml::Kind::Seq(_) => match lists {
                Some(lists) => {
                    lists.push(prefix.to_owned());
                    Ok(())
                }
                None => Err(SettingsError {
                    line: node.span.start.line,
                    message: format!("`{prefix}` takes a single value, not a list"),
                }),
            },
        }
    }
    let doc = yaml::load(source).map_err(|d| SettingsError {
        line: d.span.map_or(0, |s| s.start.line),
        message: d.message,
    })?;
    let mut out = Vec::new();
    if let Some(root) = doc.root {
        walk(&root, "", &mut out, &mut lists)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_names_are_those_a_dag_file_can_have() {
        assert!(is_portable_name("nightly-backup_2.0"));
        for bad in ["", ".hidden", "a/b", "a b", "ü", ".."] {
            assert!(!is_portable_name(bad), "{bad}");
        }
        assert!(is_dag_name(&"x".repeat(DAG_NAME_MAX)));
        assert!(!is_dag_name(&"x".repeat(DAG_NAME_MAX + 1)));
    }
}
