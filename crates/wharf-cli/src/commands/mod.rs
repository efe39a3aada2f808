pub(crate) mod cleanup;
pub(crate) mod dry;
pub(crate) mod exec;
pub(crate) mod history;
pub(crate) mod list;
pub(crate) mod logs;
pub(crate) mod migrate;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod status;
pub(crate) mod stop;
pub(crate) mod task;
pub(crate) mod validate;

use std::path::Path;

use wharf_spec::Loaded;

use crate::error::{Error, Result};
use crate::term::Term;

/// Loads a DAG file and prints its diagnostics on stderr.
pub(crate) fn load(path: &Path, term: &Term) -> Result<Loaded> {
    let loaded = wharf_spec::load_file(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        reason: io_reason(&e),
    })?;
    Ok(told(loaded, path, term))
}

/// The DAG as an earlier run ran it: `kept`, its text as the run kept it (credentials
/// redacted), read as the file at `path` with the credentials the file has now; the file
/// as it is now when nothing was kept, or when the kept text names a credential the file
/// no longer has. Prints the diagnostics on stderr.
pub(crate) fn load_as_ran(kept: Option<String>, path: &Path, term: &Term) -> Result<Loaded> {
    if let Some(kept) = kept {
        let now = std::fs::read_to_string(path).unwrap_or_default();
        match wharf_spec::redact::restore(&kept, &now) {
            Ok(text) => return Ok(told(wharf_spec::load_str(text, path), path, term)),
            Err(e) => eprintln!(
                "warning: the DAG as the run ran it has a credential (`{}`, line {}) that {} no longer has: running the file as it is now",
                e.key.as_deref().unwrap_or("?"),
                e.line,
                path.display()
            ),
        }
    }
    load(path, term)
}

fn told(loaded: Loaded, path: &Path, term: &Term) -> Loaded {
    if !loaded.diagnostics.is_empty() {
        eprint!(
            "{}",
            loaded.render(&path.display().to_string(), term.color_stderr)
        );
    }
    loaded
}

/// The DAG of a loaded file; the file's summary as the error when it is invalid.
pub(crate) fn valid(loaded: Loaded, path: &Path) -> Result<wharf_spec::Dag> {
    let errors = plural(loaded.errors(), "error");
    loaded.dag.ok_or_else(|| Error::Invalid {
        file: path.display().to_string(),
        errors,
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        _ => e.to_string(),
    }
}

pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Opens the store under `$WHARF_HOME` and marks runs whose process died as failed (telling
/// the user).
pub(crate) fn open_store() -> Result<wharf_store::Store> {
    open_store_reaping().map(|(store, _)| store)
}

/// [`open_store`], also saying how many dead runs it found (their containers may need
/// cleaning up too).
pub(crate) fn open_store_reaping() -> Result<(wharf_store::Store, usize)> {
    let home = wharf_store::default_home();
    let store = wharf_store::Store::open(&home).map_err(|source| Error::OpenStore {
        home: home.clone(),
        source,
    })?;
    let mut found = 0;
    match store.reap_dead() {
        Ok(dead) => {
            found = dead.len();
            for run in dead {
                eprintln!(
                    "note: run {} of {} was left running by a process that is gone; it is now marked failed",
                    run.run_id, run.dag
                );
            }
        }
        Err(e) => eprintln!("warning: cannot check for runs of dead processes: {e}"),
    }
    if found > 0 {
        // Places the dead runs held are free: the parked runs first in line get them.
        wharf_control::advance_parked(&store, &home, wharf_engine::queue_size_of);
    }
    Ok((store, found))
}

/// The DAG name that `arg` means: the name of the DAG in a file at that path (the file's
/// stem when the file cannot be read as a DAG), or `arg` itself as a name.
pub(crate) fn dag_name(arg: &str) -> String {
    let path = Path::new(arg);
    let looks_like_file = arg.ends_with(".yaml") || arg.ends_with(".yml") || arg.contains('/');
    if looks_like_file || path.is_file() {
        if let Ok(loaded) = wharf_spec::load_file(path)
            && let Some(dag) = loaded.dag
        {
            return dag.name;
        }
        if let Some(stem) = path.file_stem() {
            return stem.to_string_lossy().into_owned();
        }
    }
    arg.to_owned()
}

/// A name given with `--name`, if a DAG can have it.
pub(crate) fn checked_name(name: &str) -> Result<String> {
    if wharf_spec::is_dag_name(name) {
        Ok(name.to_owned())
    } else {
        Err(Error::Usage(format!(
            "invalid name `{name}`: at most 40 letters, digits, `_`, `-` and `.`"
        )))
    }
}

/// The run `run_id` of `dag`, or its latest.
pub(crate) fn find_run(
    store: &wharf_store::Store,
    dag: &str,
    run_id: Option<&str>,
) -> Result<wharf_store::RunRecord> {
    let found = match run_id {
        Some(id) => store.run(dag, id)?,
        None => store.latest_run(dag)?,
    };
    found.ok_or_else(|| match run_id {
        Some(id) => Error::NoSuchRun {
            dag: dag.to_owned(),
            run_id: id.to_owned(),
        },
        None => Error::NoRuns(dag.to_owned()),
    })
}

/// A single-threaded runtime for a command's async work.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
