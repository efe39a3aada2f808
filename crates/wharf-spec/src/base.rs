//! The base configuration (`base.yaml`): DAG fields every DAG of an installation inherits.
//!
//! A DAG's own key replaces the base's (a whole `mailOn`, `handlerOn`, `smtp`…), except
//! `env`, whose base entries come first and the DAG's after them (so the DAG's value of a
//! name wins, and its entries can use the base's). A DAG run as a sub-DAG does not inherit
//! the base's `handlerOn`, so one failure is not handled twice. The file is read at each
//! load of a DAG: a change to it applies to the next run.
//!
//! Problems in the base file are reported on the DAG that inherits them, naming the base
//! file with its line and column.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::diag::{Diagnostic, Pos, Span};
use crate::yaml::{Entry, Kind, Node};

static BASE: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Lines of base nodes are moved past this, so that their diagnostics can be told apart.
const BASE_LINES: usize = 1 << 40;

/// Keys a base configuration cannot set: they belong to one DAG.
const OWN_KEYS: &[&str] = &["steps", "name"];

/// Sets the base configuration every DAG loaded by this process inherits (None: none).
pub fn set_base_config(path: Option<PathBuf>) {
    *BASE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = path;
}

/// The base configuration this process's DAGs inherit.
pub fn base_config() -> Option<PathBuf> {
    BASE.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Merges the base configuration under `root` (a DAG document). Diagnostics of the base
/// file itself go to `diags`.
pub(crate) fn merge_under(root: &mut Node, sub_dag: bool, diags: &mut Vec<Diagnostic>) {
    let Some(path) = base_config() else { return };
    let Some(mut base) = read(&path, diags) else {
        return;
    };
    // A base in the other dialect (an installation's 1.x base.yaml under a DAG written
    // for Dagu 2.x, or the other way) is read in its own and spelled in the DAG's.
    let dag = crate::dialect::chosen().or_else(|| crate::dialect::marked_nodes([&*root]));
    if let Some(dag) = dag
        && crate::dialect::marked_nodes([&base]).is_some_and(|b| b != dag)
    {
        crate::dialect::respell(&mut base, dag);
    }
    let Kind::Map(own) = &mut root.kind else {
        return;
    };
    let Kind::Map(entries) = base.kind else {
        diags.push(whole(format!(
            "the base configuration {} must be a mapping of DAG fields",
            path.display()
        )));
        return;
    };
    let mut added = Vec::new();
    for entry in entries {
        let Some(key) = entry.key.as_str().map(str::to_owned) else {
            continue;
        };
        if OWN_KEYS.contains(&key.as_str()) {
            diags.push(whole(format!(
                "{}:{}: the base configuration cannot set `{key}`: it belongs to each DAG",
                path.display(),
                entry.key.span.start.line - BASE_LINES
            )));
            continue;
        }
        if sub_dag && matches!(key.as_str(), "handlerOn" | "handler_on") {
            continue;
        }
        match own
            .iter_mut()
            .find(|e| e.key.as_str() == Some(key.as_str()))
        {
            Some(mine) if key == "env" => {
                let mut items = env_items(entry.value);
                items.extend(env_items(mine.value.clone()));
                mine.value.kind = Kind::Seq(items);
            }
            Some(_) => {}
            None => added.push(entry),
        }
    }
    own.splice(0..0, added);
}

/// An `env` value as a list of its entries (a mapping is one entry per name).
fn env_items(node: Node) -> Vec<Node> {
    match node.kind {
        Kind::Seq(items) => items,
        Kind::Map(entries) => entries
            .into_iter()
            .map(|e| Node {
                span: e.key.span,
                key: None,
                kind: Kind::Map(vec![e]),
            })
            .collect(),
        _ => vec![node],
    }
}

fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Node> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            diags.push(whole(format!(
                "cannot read the base configuration {}: {e}",
                path.display()
            )));
            return None;
        }
    };
    let at = |d: &Diagnostic| {
        d.span
            .map(|s| format!(":{}:{}", s.start.line, s.start.col))
            .unwrap_or_default()
    };
    match crate::yaml::load(&text) {
        Err(d) => {
            diags.push(whole(format!(
                "the base configuration {}{}: {}",
                path.display(),
                at(&d),
                d.message
            )));
            None
        }
        Ok(doc) => {
            for d in doc.diagnostics {
                diags.push(whole(format!(
                    "{}{}: {}",
                    path.display(),
                    at(&d),
                    d.message
                )));
            }
            let mut root = doc.root?;
            shift(&mut root);
            Some(root)
        }
    }
}

/// Moves a base node's lines past [`BASE_LINES`].
fn shift(node: &mut Node) {
    let move_span = |s: &mut Span| {
        s.start.line += BASE_LINES;
        s.end.line += BASE_LINES;
    };
    move_span(&mut node.span);
    if let Some(k) = &mut node.key {
        move_span(k);
    }
    match &mut node.kind {
        Kind::Scalar(_) => {}
        Kind::Seq(items) => items.iter_mut().for_each(shift),
        Kind::Map(entries) => entries.iter_mut().for_each(|e: &mut Entry| {
            shift(&mut e.key);
            shift(&mut e.value);
        }),
    }
}

/// A diagnostic about content that came from the base file: it names that file, line and
/// column, and belongs to the DAG file as a whole.
pub(crate) fn relocate(d: &mut Diagnostic) {
    let Some(span) = d.span.filter(|s| s.start.line > BASE_LINES) else {
        return;
    };
    let file = base_config()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let Pos { line, col } = span.start;
    d.message = format!(
        "in the base configuration {file}:{}:{col}: {}",
        line - BASE_LINES,
        d.message
    );
    d.span = None;
}

fn whole(message: String) -> Diagnostic {
    Diagnostic {
        severity: crate::Severity::Error,
        span: None,
        message,
        help: None,
    }
}
