//! Which DAG a `call` step runs, and the check that no chain of calls comes back to a DAG
//! it started from.

use std::path::{Path, PathBuf};

use crate::model::Dag;

/// How deep calls may nest (a DAG, its child, the child's child, ...).
pub const MAX_DEPTH: usize = 16;

/// The DAG `target` names for a step of `parent`: a document of the parent's file by its
/// `name`, else a file: `target` itself when it is a path (relative to the parent's
/// folder), else `TARGET.yaml` or `TARGET.yml` in the parent's folder, then in the DAGs
/// folder `dags`. A child without a `workingDir` works in its parent's.
pub fn resolve(parent: &Dag, target: &str, dags: Option<&Path>) -> Result<Dag, String> {
    let mut child = match parent.locals.iter().find(|l| l.name == target) {
        Some(local) => {
            let mut local = local.clone();
            // A document of the same file calls its siblings by name too.
            local.locals = parent.locals.clone();
            local
        }
        None => {
            let path = file_of(parent, target, dags)?;
            let loaded = crate::load_sub_dag_file(&path, parent.dialect)
                .map_err(|e| format!("cannot read the sub-DAG {}: {e}", path.display()))?;
            match loaded.dag {
                Some(dag) => dag,
                None => {
                    let first = loaded
                        .diagnostics
                        .iter()
                        .find(|d| d.is_error())
                        .map(|d| {
                            let at = d
                                .span
                                .map(|s| format!(":{}:{}", s.start.line, s.start.col))
                                .unwrap_or_default();
                            format!("{}{at}: {}", path.display(), d.message)
                        })
                        .unwrap_or_default();
                    return Err(format!(
                        "the sub-DAG `{target}` is invalid ({first}); `wharf validate {}` shows all",
                        path.display()
                    ));
                }
            }
        }
    };
    // A 1.x sub-DAG without `workingDir` works where its parent works; a 2.x one in its
    // own run's work directory (given when it runs), so that children started side by
    // side do not write over each other.
    if !child.working_dir_set && child.dialect != crate::Dialect::V2 {
        child.working_dir.clone_from(&parent.working_dir);
    }
    Ok(child)
}

/// The file of the DAG `target` names: a path (relative to `parent`'s folder) or a name
/// in the DAGs folder (`dags`).
fn file_of(parent: &Dag, target: &str, dags: Option<&Path>) -> Result<PathBuf, String> {
    let dir = parent.file.parent().unwrap_or(Path::new("/"));
    let is_path = target.contains('/') || target.ends_with(".yaml") || target.ends_with(".yml");
    let candidates: Vec<PathBuf> = if is_path {
        vec![crate::formats::resolve_path(dir, target)]
    } else {
        let mut folders = vec![dir];
        if let Some(dags) = dags.filter(|d| *d != dir) {
            folders.push(dags);
        }
        folders
            .into_iter()
            .flat_map(|f| {
                [
                    f.join(format!("{target}.yaml")),
                    f.join(format!("{target}.yml")),
                ]
            })
            .collect()
    };
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            let locals: Vec<&str> = parent.locals.iter().map(|l| l.name.as_str()).collect();
            format!(
                "no DAG `{target}`: not a document of {} ({}) and no file {}",
                parent.file.display(),
                if locals.is_empty() {
                    "it has no other documents".to_owned()
                } else {
                    format!("its documents: {}", locals.join(", "))
                },
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
}

/// The identity of a DAG in a chain of calls: its file and name.
pub fn identity(dag: &Dag) -> (PathBuf, String) {
    (dag.file.clone(), dag.name.clone())
}

/// Follows every `call` whose target is written out (not `${...}`) from `dag` down:
/// a chain that comes back to a DAG already in it, a target that cannot be found or
/// read, or a chain deeper than [`MAX_DEPTH`] is an error that names the chain.
/// `above` are the DAGs that called `dag` (the run's parents).
pub fn check(dag: &Dag, above: &[(PathBuf, String)], dags: Option<&Path>) -> Result<(), String> {
    let mut chain = above.to_vec();
    chain.push(identity(dag));
    walk(dag, &mut chain, dags)
}

fn walk(dag: &Dag, chain: &mut Vec<(PathBuf, String)>, dags: Option<&Path>) -> Result<(), String> {
    let named = |chain: &[(PathBuf, String)]| {
        chain
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(" → ")
    };
    if chain.len() > MAX_DEPTH {
        return Err(format!(
            "sub-DAGs nest deeper than {MAX_DEPTH} levels: {}",
            named(chain)
        ));
    }
    let steps = dag.steps.iter().chain(dag.handlers.iter().map(|(_, s)| s));
    for step in steps {
        let Some(call) = &step.call else { continue };
        if call.target.contains('$') {
            continue;
        }
        let child = resolve(dag, &call.target, dags)
            .map_err(|e| format!("step `{}` of `{}`: {e}", step.name, dag.name))?;
        let id = identity(&child);
        if chain.contains(&id) {
            chain.push(id);
            return Err(format!(
                "the sub-DAGs call each other in a cycle: {}",
                named(chain)
            ));
        }
        chain.push(id);
        walk(&child, chain, dags)?;
        chain.pop();
    }
    Ok(())
}
