//! Dagu 2.x `file.*` actions on local files: stat, read, write, copy, move, delete, mkdir
//! and list; and `artifact.write`, `read` and `list`, the same in the run's artifacts
//! folder, never out of it. Paths are the step's working directory's when relative, `~` is the home
//! folder. What an action reports is one line of JSON on stdout (`file.read` with the
//! default `format: raw` prints the file's bytes instead); a failure says which path and
//! why.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};
use wharf_spec::{FileOp, FileStep};

use crate::{Ended, Output};

pub(crate) async fn run(file: &FileStep, dir: &Path, out: &mut Output) -> Ended {
    let (file, dir) = (file.clone(), dir.to_path_buf());
    // Copies of whole trees and large reads do not hold up the run's other steps.
    match tokio::task::spawn_blocking(move || act(&file, &dir)).await {
        Ok(Ok(bytes)) => {
            out.stdout(&bytes).await;
            Ended::Done
        }
        Ok(Err(why)) => Ended::Failed(why),
        Err(e) => Ended::Failed(format!("the file action stopped: {e}")),
    }
}

/// An `artifact.*` path: relative, without `..`, so that it stays in the run's folder.
fn artifact_path(path: &str, op: &str) -> Result<(), String> {
    if path.starts_with('/') || path.starts_with('~') {
        return Err(format!("{op}: artifact path must be relative: {path}"));
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(format!("{op}: artifact path must not contain ..: {path}"));
    }
    Ok(())
}

/// What the action prints, or why it failed.
fn act(f: &FileStep, dir: &Path) -> Result<Vec<u8>, String> {
    let family = if f.artifact { "artifact" } else { "file" };
    let op = format!("{family}.{}", f.op.name());
    let mut artifact;
    let f = if f.artifact {
        artifact_path(f.path.as_deref().unwrap_or_default(), &op)?;
        artifact = f.clone();
        // Folders in an artifact's path are made; a list names the whole folder by default.
        artifact.create_dirs = true;
        artifact.path.get_or_insert_with(|| ".".into());
        &artifact
    } else {
        f
    };
    let at = |p: &Option<String>| resolve(dir, p.as_deref().unwrap_or_default());
    let report = |v: Value| Ok(format!("{v}\n").into_bytes());
    match f.op {
        FileOp::Stat => match fs::metadata(at(&f.path)) {
            Ok(meta) => {
                let mut v = described(&at(&f.path), &meta);
                v.insert("exists".into(), json!(true));
                report(Value::Object(v))
            }
            Err(e) if e.kind() == ErrorKind::NotFound && f.missing_ok => {
                report(json!({"path": at(&f.path), "exists": false}))
            }
            Err(e) => Err(why(&op, &at(&f.path), &e)),
        },
        FileOp::Read => read(f, &at(&f.path), &op),
        FileOp::Write => write(f, &at(&f.path), &op).and_then(report),
        FileOp::Copy | FileOp::Move => {
            transfer(f, &at(&f.source), &at(&f.destination), &op).and_then(report)
        }
        FileOp::Delete => delete(f, &at(&f.path), &op).and_then(report),
        FileOp::Mkdir => {
            let path = at(&f.path);
            let existed = path.is_dir();
            fs::create_dir_all(&path).map_err(|e| why(&op, &path, &e))?;
            if let Some(mode) = f.mode {
                set_mode(&path, mode).map_err(|e| why(&op, &path, &e))?;
            }
            report(json!({"path": path, "created": !existed}))
        }
        FileOp::List => list(f, dir, &op).and_then(report),
    }
}

/// `path` relative to `dir`, `~` the home folder, `.` and `..` taken out.
fn resolve(dir: &Path, path: &str) -> PathBuf {
    wharf_spec::formats::resolve_path(dir, path)
}

fn why(op: &str, path: &Path, e: &std::io::Error) -> String {
    let what = match e.kind() {
        ErrorKind::NotFound => "no such file or directory".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    };
    format!("{op}: {}: {what}", path.display())
}

/// A file's metadata as the actions report it.
fn described(path: &Path, meta: &fs::Metadata) -> Map<String, Value> {
    use std::os::unix::fs::PermissionsExt;
    let kind = if meta.is_dir() {
        "directory"
    } else if meta.is_file() {
        "file"
    } else if meta.file_type().is_symlink() {
        "symlink"
    } else {
        "other"
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    let mut v = Map::new();
    v.insert("path".into(), json!(path));
    v.insert("type".into(), json!(kind));
    v.insert("size".into(), json!(meta.len()));
    v.insert(
        "mode".into(),
        json!(format!("{:04o}", meta.permissions().mode() & 0o7777)),
    );
    v.insert("modified".into(), json!(modified));
    v
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

fn read(f: &FileStep, path: &Path, op: &str) -> Result<Vec<u8>, String> {
    let meta = fs::metadata(path).map_err(|e| why(op, path, &e))?;
    if meta.is_dir() {
        return Err(format!("{op}: {}: cannot read a directory", path.display()));
    }
    if f.max_bytes > 0 && meta.len() > f.max_bytes {
        return Err(format!(
            "{op}: {} is {} bytes: it exceeds max_bytes ({})",
            path.display(),
            meta.len(),
            f.max_bytes
        ));
    }
    let bytes = fs::read(path).map_err(|e| why(op, path, &e))?;
    if !f.json {
        return Ok(bytes);
    }
    let mut v = described(path, &meta);
    v.insert(
        "content".into(),
        json!(String::from_utf8_lossy(&bytes).into_owned()),
    );
    Ok(format!("{}\n", Value::Object(v)).into_bytes())
}

fn write(f: &FileStep, path: &Path, op: &str) -> Result<Value, String> {
    let content = f.content.as_deref().unwrap_or_default();
    let existed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(format!("{op}: {}: is a directory", path.display()));
        }
        Ok(_) if !f.overwrite => {
            return Err(format!(
                "{op}: {}: file exists (set `overwrite: true` to replace it)",
                path.display()
            ));
        }
        Ok(_) => true,
        Err(_) => false,
    };
    let result = |created: bool| json!({"path": path, "created": created, "replaced": existed && created, "bytes": content.len(), "dry_run": f.dry_run});
    if f.dry_run {
        return Ok(result(false));
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    if f.create_dirs {
        fs::create_dir_all(parent).map_err(|e| why(op, parent, &e))?;
    }
    let mode = f.mode.unwrap_or(0o600);
    if f.atomic {
        // Beside it, then renamed over it: a reader sees the old file or the new one.
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let temp = parent.join(format!(
            ".{}.wharf-{}",
            name.unwrap_or_default(),
            std::process::id()
        ));
        let written = new_file(&temp, mode)
            .and_then(|mut file| {
                file.write_all(content.as_bytes())
                    .and_then(|()| file.sync_all())
            })
            .and_then(|()| set_mode(&temp, mode))
            .and_then(|()| fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(why(op, path, &e));
        }
    } else {
        new_file(path, mode)
            .and_then(|mut file| file.write_all(content.as_bytes()))
            .and_then(|()| set_mode(path, mode))
            .map_err(|e| why(op, path, &e))?;
    }
    Ok(result(true))
}

/// A file made empty (created with `mode` when new) for writing.
fn new_file(path: &Path, mode: u32) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

/// `file.copy` and `file.move`.
fn transfer(f: &FileStep, source: &Path, dest: &Path, op: &str) -> Result<Value, String> {
    let moving = f.op == FileOp::Move;
    let verb = if moving { "move" } else { "copy" };
    if source == dest {
        return Err(format!(
            "{op}: the source and the destination are the same path"
        ));
    }
    let meta = fs::symlink_metadata(source).map_err(|e| why(op, source, &e))?;
    if meta.is_dir() {
        if !f.recursive {
            return Err(format!(
                "{op}: {} is a directory: recursive is required to {verb} a directory",
                source.display()
            ));
        }
        let real = fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        if dest.starts_with(source) || dest.starts_with(&real) {
            return Err(format!(
                "{op}: the destination must not be inside source: {} is in {}",
                dest.display(),
                source.display()
            ));
        }
    }
    if fs::symlink_metadata(dest).is_ok() && !f.overwrite {
        return Err(format!(
            "{op}: the destination exists: {} (set `overwrite: true` to replace it)",
            dest.display()
        ));
    }
    let done_key = if moving { "moved" } else { "copied" };
    let result = |done: bool| json!({"source": source, "destination": dest, done_key: done, "dry_run": f.dry_run});
    if f.dry_run {
        return Ok(result(false));
    }
    if let Some(parent) = dest.parent()
        && f.create_dirs
    {
        fs::create_dir_all(parent).map_err(|e| why(op, parent, &e))?;
    }
    if moving {
        if let Ok(old) = fs::symlink_metadata(dest) {
            let removed = if old.is_dir() {
                fs::remove_dir_all(dest)
            } else {
                fs::remove_file(dest)
            };
            removed.map_err(|e| why(op, dest, &e))?;
        }
        match fs::rename(source, dest) {
            Ok(()) => {}
            // Another file system: copied, then the source removed.
            Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                copy_tree(source, dest).map_err(|e| why(op, dest, &e))?;
                let removed = if meta.is_dir() {
                    fs::remove_dir_all(source)
                } else {
                    fs::remove_file(source)
                };
                removed.map_err(|e| why(op, source, &e))?;
            }
            Err(e) => return Err(why(op, dest, &e)),
        }
    } else {
        copy_tree(source, dest).map_err(|e| why(op, dest, &e))?;
    }
    Ok(result(true))
}

/// Copies a file, or a directory with everything in it (into an existing one, merged).
fn copy_tree(source: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(source)?;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(source)?;
        let _ = fs::remove_file(dest);
        return std::os::unix::fs::symlink(target, dest);
    }
    if !meta.is_dir() {
        fs::copy(source, dest)?;
        return Ok(());
    }
    fs::create_dir_all(dest)?;
    fs::set_permissions(dest, meta.permissions())?;
    for entry in fs::read_dir(source)? {
        let entry = entry?;
        copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(())
}

fn delete(f: &FileStep, path: &Path, op: &str) -> Result<Value, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound && f.missing_ok => {
            return Ok(json!({"path": path, "deleted": false}));
        }
        Err(e) => return Err(why(op, path, &e)),
    };
    if path.parent().is_none() {
        return Err(format!("{op}: refusing to delete {}", path.display()));
    }
    if meta.is_dir() && !f.recursive {
        return Err(format!(
            "{op}: {} is a directory: recursive is required to delete a directory",
            path.display()
        ));
    }
    if f.dry_run {
        return Ok(json!({"path": path, "deleted": false, "dry_run": true}));
    }
    let removed = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    removed.map_err(|e| why(op, path, &e))?;
    Ok(json!({"path": path, "deleted": true}))
}

fn list(f: &FileStep, dir: &Path, op: &str) -> Result<Value, String> {
    let written = f.path.as_deref().unwrap_or_default();
    let root = resolve(dir, written);
    let meta = fs::metadata(&root).map_err(|e| why(op, &root, &e))?;
    if !meta.is_dir() {
        return Err(format!("{op}: {} is not a directory", root.display()));
    }
    let mut found: Vec<(String, fs::Metadata)> = Vec::new();
    let mut pending = vec![(root.clone(), String::new())];
    while let Some((at, rel)) = pending.pop() {
        for entry in fs::read_dir(&at).map_err(|e| why(op, &at, &e))? {
            let entry = entry.map_err(|e| why(op, &at, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() && f.recursive {
                pending.push((entry.path(), rel.clone()));
            }
            if (meta.is_dir() && !f.include_dirs)
                || f.pattern
                    .as_deref()
                    .is_some_and(|p| !wharf_spec::formats::glob(p, &rel))
            {
                continue;
            }
            found.push((rel, meta));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let entries: Vec<Value> = found
        .iter()
        .map(|(rel, meta)| {
            let shown = Path::new(written).join(rel);
            let mut v = described(&shown, meta);
            v.insert("name".into(), json!(rel));
            Value::Object(v)
        })
        .collect();
    Ok(json!({"path": root, "count": entries.len(), "entries": entries}))
}
