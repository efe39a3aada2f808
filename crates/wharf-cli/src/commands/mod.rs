pub(crate) mod dry;
pub(crate) mod validate;

use std::path::Path;

use wharf_spec::Loaded;

use crate::term::Term;

/// Loads a DAG file and prints its diagnostics on stderr; None (after saying why) when the
/// file cannot be read or has errors.
pub(crate) fn load(path: &Path, term: &Term) -> Option<Loaded> {
    let shown = path.display().to_string();
    let loaded = match wharf_spec::load_file(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: cannot read {shown}: {}", io_reason(&e));
            return None;
        }
    };
    if !loaded.diagnostics.is_empty() {
        eprint!("{}", loaded.render(&shown, term.color_stderr));
    }
    Some(loaded)
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
