//! A run's work directory (Dagu 2.x `dependencies`): the files its steps declare, copied
//! from the DAG's working directory when the run starts, so that the run works on a
//! snapshot of them; its steps run there unless they name a directory of their own.

use std::path::{Path, PathBuf};

/// The most a snapshot copies, as Dagu bounds it.
const MAX_ENTRIES: usize = 8192;
const MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Copies what `patterns` select below `source` into `work` (made); an error names the
/// declaration that matched nothing, the entry that cannot be copied, or the limit.
pub(crate) fn snapshot(source: &Path, patterns: &[String], work: &Path) -> Result<(), String> {
    let mut all = Vec::new();
    walk(source, "", &mut all).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let mut chosen: Vec<&(String, std::fs::Metadata)> = Vec::new();
    let mut picked = vec![false; all.len()];
    for pattern in patterns {
        let clean = pattern.trim_end_matches('/').trim_start_matches("./");
        let inside = format!("{clean}/");
        let mut matched = false;
        for (i, entry) in all.iter().enumerate() {
            let (rel, _) = entry;
            // A path names itself and, for a directory, everything in it.
            let hit =
                rel == clean || rel.starts_with(&inside) || wharf_spec::formats::glob(clean, rel);
            if hit {
                matched = true;
                if !picked[i] {
                    picked[i] = true;
                    chosen.push(entry);
                }
            }
        }
        if !matched {
            return Err(format!(
                "the dependency `{pattern}` matches nothing in {}",
                source.display()
            ));
        }
    }
    if chosen.len() > MAX_ENTRIES {
        return Err(format!(
            "the dependencies select {} entries; at most {MAX_ENTRIES} are copied",
            chosen.len()
        ));
    }
    let bytes: u64 = chosen.iter().map(|(_, m)| m.len()).sum();
    if bytes > MAX_BYTES {
        return Err(format!(
            "the dependencies are {} MiB; at most {} MiB are copied",
            bytes / (1024 * 1024),
            MAX_BYTES / (1024 * 1024)
        ));
    }
    std::fs::create_dir_all(work).map_err(|e| format!("cannot make {}: {e}", work.display()))?;
    for (rel, meta) in chosen {
        let from = source.join(rel);
        let to = work.join(rel);
        let kind = meta.file_type();
        let copied = if kind.is_symlink() {
            return Err(format!(
                "the dependency {} is a symbolic link",
                from.display()
            ));
        } else if kind.is_dir() {
            std::fs::create_dir_all(&to)
        } else if kind.is_file() {
            to.parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::copy(&from, &to).map(|_| ()))
        } else {
            return Err(format!(
                "the dependency {} is not a file or a directory",
                from.display()
            ));
        };
        copied.map_err(|e| format!("cannot copy {}: {e}", from.display()))?;
    }
    Ok(())
}

/// Every entry below `dir` (not `.git`), by its slash-separated path relative to the top.
fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, std::fs::Metadata)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" {
            continue;
        }
        let path = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            walk(&entry.path(), &path, out)?;
        }
        out.push((path, meta));
        if out.len() > MAX_ENTRIES * 4 {
            break;
        }
    }
    Ok(())
}

/// Copies what an earlier run left in its work directory (that of the run whose logs
/// are in `from`) into the work directory of the run whose logs go to `to`.
pub fn carry_over(from: &Path, to: &Path) -> Result<(), String> {
    let source = dir_of(from);
    let Ok(entries) = std::fs::read_dir(&source) else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    snapshot(&source, &names, &dir_of(to))
}

/// Where a run's work directory is: beside its logs.
pub(crate) fn dir_of(log_dir: &Path) -> PathBuf {
    log_dir.join("work")
}
