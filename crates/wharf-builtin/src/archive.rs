//! `archive` steps (Dagu's `type: archive`, 2.x `archive.create`, `archive.extract`,
//! `archive.list`): zip, tar and tar.gz archives made, unpacked and listed in wharf's own
//! process. What a step did is one line of JSON on stdout (the counts, or the entries);
//! a failure says which path and why. Extraction never writes outside its destination:
//! an entry whose path leaves it (`../x`, `/etc/x`) fails the step before anything is
//! written, and no file is written through a link that leads out of it.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde_json::{Value, json};
use wharf_spec::ArchiveStep;

use crate::{Ended, Output};

pub(crate) async fn run(archive: &ArchiveStep, op: &str, dir: &Path, out: &mut Output) -> Ended {
    let (archive, op, dir) = (archive.clone(), op.to_owned(), dir.to_path_buf());
    // Large archives do not hold up the run's other steps.
    let done = tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        let result = act(&archive, &op, &dir, &mut notes);
        (result, notes)
    })
    .await;
    match done {
        Ok((result, notes)) => {
            if !notes.is_empty() {
                out.stderr(notes.join("\n").as_bytes()).await;
                out.stderr(b"\n").await;
            }
            match result {
                Ok(v) => {
                    out.stdout(format!("{v}\n").as_bytes()).await;
                    Ended::Done
                }
                Err(why) => Ended::Failed(why),
            }
        }
        Err(e) => Ended::Failed(format!("the archive step stopped: {e}")),
    }
}

/// The archive formats wharf makes and reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Zip,
    Tar,
    TarGz,
}

impl Format {
    fn named(name: &str) -> Result<Self, String> {
        match name.trim().to_lowercase().as_str() {
            "zip" => Ok(Self::Zip),
            "tar" => Ok(Self::Tar),
            "tar.gz" | "tgz" => Ok(Self::TarGz),
            other => Err(format!(
                "wharf has no archive format `{other}`: it makes and reads zip, tar and tar.gz (tgz)"
            )),
        }
    }

    /// From a file's name: `.zip`, `.tar`, `.tar.gz`, `.tgz`.
    fn of_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_lowercase();
        if name.ends_with(".zip") {
            Some(Self::Zip)
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(Self::TarGz)
        } else if name.ends_with(".tar") {
            Some(Self::Tar)
        } else {
            None
        }
    }

    /// From a file's first bytes, else its name.
    fn of_content(path: &Path) -> Result<Self, String> {
        let mut head = [0u8; 262];
        let mut file = fs::File::open(path).map_err(|e| missing(path, &e))?;
        let mut read = 0;
        while read < head.len() {
            match file.read(&mut head[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            }
        }
        let head = &head[..read];
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Ok(Self::Zip);
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            return Ok(Self::TarGz);
        }
        if head.len() >= 262 && &head[257..262] == b"ustar" {
            return Ok(Self::Tar);
        }
        Self::of_name(path).ok_or_else(|| {
            format!(
                "could not tell the format of {}: it is not a zip, tar or tar.gz archive (set `format` if it is one)",
                path.display()
            )
        })
    }
}

fn missing(path: &Path, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        format!("source not found: {}", path.display())
    } else {
        format!("cannot open {}: {e}", path.display())
    }
}

/// A path of the step's working directory (`~` is the home folder).
fn resolve(dir: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    dir.join(path)
}

fn act(a: &ArchiveStep, op: &str, dir: &Path, notes: &mut Vec<String>) -> Result<Value, String> {
    let started = Instant::now();
    let source = a
        .source
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or("an `archive` step needs `source`")?;
    let filters = Filters::new(&a.include, &a.exclude)?;
    let mut result = match op {
        "create" => create(a, &resolve(dir, source), dir, &filters, notes)?,
        "extract" => extract(a, &resolve(dir, source), dir, &filters, notes)?,
        "list" => list(a, &resolve(dir, source), &filters)?,
        other => {
            return Err(format!(
                "an `archive` step's command is `create`, `extract` or `list`, not `{other}`"
            ));
        }
    };
    if let Value::Object(m) = &mut result {
        m.insert("duration".into(), json!(format!("{:?}", started.elapsed())));
    }
    Ok(result)
}

/// `include` and `exclude`: globs over entry paths (`**` any folders, `*`, `?`, `[...]`
/// within one); a glob without `/` also matches an entry's own name.
struct Filters {
    include: Vec<(regex::Regex, bool)>,
    exclude: Vec<(regex::Regex, bool)>,
}

impl Filters {
    fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        let compile = |globs: &[String]| -> Result<Vec<(regex::Regex, bool)>, String> {
            globs
                .iter()
                .map(|g| glob(g).map(|r| (r, !g.contains('/'))))
                .collect()
        };
        Ok(Self {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    fn allows(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        let name = path.rsplit('/').next().unwrap_or(path);
        let hit = |(re, by_name): &(regex::Regex, bool)| {
            re.is_match(path) || (*by_name && re.is_match(name))
        };
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

fn glob(pattern: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                if chars.get(i + 2) == Some(&'/') {
                    re.push_str("(?:.*/)?");
                    i += 3;
                } else {
                    re.push_str(".*");
                    i += 2;
                }
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => match chars[i..].iter().position(|c| *c == ']') {
                Some(end) if end > 1 => {
                    let class: String = chars[i + 1..i + end].iter().collect();
                    let class = class
                        .strip_prefix('!')
                        .map_or(class.clone(), |c| format!("^{c}"));
                    re.push('[');
                    re.push_str(&class.replace('\\', "\\\\"));
                    re.push(']');
                    i += end + 1;
                    continue;
                }
                _ => re.push_str("\\["),
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| format!("the glob `{pattern}` is not valid: {e}"))
}

/// An entry of an archive, as read.
struct Entry {
    path: String,
    size: u64,
    mode: u32,
    mtime: Option<i64>,
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    /// A tar hard link: a path of the same archive.
    Hardlink(String),
    Other,
}

/// Reads every entry of the archive at `path`, calling `each` with its data for files.
fn read_entries(
    path: &Path,
    format: Format,
    each: &mut dyn FnMut(&Entry, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let file = fs::File::open(path).map_err(|e| missing(path, &e))?;
    let bad = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    match format {
        Format::Zip => {
            let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(&e))?;
            for i in 0..zip.len() {
                let mut f = zip.by_index(i).map_err(|e| bad(&e))?;
                let mode = f.unix_mode().unwrap_or(0);
                let kind = if f.is_dir() {
                    Kind::Dir
                } else if mode & 0o170000 == 0o120000 {
                    let mut target = String::new();
                    f.read_to_string(&mut target).map_err(|e| bad(&e))?;
                    Kind::Symlink(target)
                } else {
                    Kind::File
                };
                let mtime = f.last_modified().and_then(|t| {
                    jiff::civil::date(
                        i16::try_from(t.year()).ok()?,
                        i8::try_from(t.month()).ok()?,
                        i8::try_from(t.day()).ok()?,
                    )
                    .at(
                        i8::try_from(t.hour()).ok()?,
                        i8::try_from(t.minute()).ok()?,
                        i8::try_from(t.second()).ok()?,
                        0,
                    )
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()
                    .map(|z| z.timestamp().as_second())
                });
                let entry = Entry {
                    path: f.name().to_owned(),
                    size: f.size(),
                    mode: mode & 0o7777,
                    mtime,
                    kind,
                };
                each(&entry, &mut f)?;
            }
            Ok(())
        }
        Format::Tar => read_tar(tar::Archive::new(file), path, each),
        Format::TarGz => read_tar(
            tar::Archive::new(flate2::read::GzDecoder::new(file)),
            path,
            each,
        ),
    }
}

fn read_tar<R: Read>(
    mut archive: tar::Archive<R>,
    path: &Path,
    each: &mut dyn FnMut(&Entry, &mut dyn Read) -> Result<(), String>,
) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
    for item in archive.entries().map_err(|e| bad(&e))? {
        let mut item = item.map_err(|e| bad(&e))?;
        let header = item.header();
        let link = || -> Result<String, String> {
            Ok(item
                .link_name()
                .map_err(|e| bad(&e))?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default())
        };
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link()?),
            tar::EntryType::Link => Kind::Hardlink(link()?),
            // pax and GNU extension headers are read by the tar crate itself.
            _ => Kind::Other,
        };
        let entry = Entry {
            path: item
                .path()
                .map_err(|e| bad(&e))?
                .to_string_lossy()
                .into_owned(),
            size: header.size().unwrap_or(0),
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            mtime: header.mtime().ok().and_then(|m| i64::try_from(m).ok()),
            kind,
        };
        each(&entry, &mut item)?;
    }
    Ok(())
}

/// Go's way of showing a file's type and permissions (`-rw-r--r--`, `drwxr-xr-x`), as
/// Dagu's listing does.
fn mode_text(kind: &Kind, mode: u32) -> String {
    let mut s = String::from(match kind {
        Kind::Dir => 'd',
        Kind::Symlink(_) => 'L',
        _ => '-',
    });
    for (bit, c) in [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ] {
        s.push(if mode & bit != 0 { c } else { '-' });
    }
    s
}

fn rfc3339(secs: Option<i64>) -> String {
    secs.and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

fn format_of(a: &ArchiveStep, source: &Path) -> Result<Format, String> {
    match a.format.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(name) => Format::named(name),
        None => Format::of_content(source),
    }
}

/// The archive at `source` to read: its format, checked whole first with
/// `verifyIntegrity`.
fn opened(a: &ArchiveStep, source: &Path) -> Result<Format, String> {
    if source.is_dir() {
        return Err(format!(
            "source must be an archive, not a folder: {}",
            source.display()
        ));
    }
    let format = format_of(a, source)?;
    if a.verify_integrity {
        verify(source, format)?;
    }
    Ok(format)
}

fn list(a: &ArchiveStep, source: &Path, filters: &Filters) -> Result<Value, String> {
    let format = opened(a, source)?;
    let mut files = Vec::new();
    let mut total_size = 0u64;
    read_entries(source, format, &mut |e, _| {
        let path = e.path.trim_end_matches('/').to_owned();
        if path.is_empty() || e.kind == Kind::Other || !filters.allows(&path) {
            return Ok(());
        }
        if e.kind != Kind::Dir {
            total_size += e.size;
        }
        files.push(json!({
            "path": path,
            "size": e.size,
            "mode": mode_text(&e.kind, e.mode),
            "modTime": rfc3339(e.mtime),
            "isDir": e.kind == Kind::Dir,
        }));
        Ok(())
    })?;
    Ok(json!({
        "operation": "list",
        "source": a.source,
        "totalFiles": files.len(),
        "totalSize": total_size,
        "files": files,
        "verified": a.verify_integrity,
    }))
}

/// Reads every entry whole: an archive that is cut short or corrupt fails here.
fn verify(path: &Path, format: Format) -> Result<(), String> {
    read_entries(path, format, &mut |e, data| {
        io::copy(data, &mut io::sink())
            .map(|_| ())
            .map_err(|err| format!("{} is damaged at {}: {err}", path.display(), e.path))
    })
    .map_err(|e| format!("the integrity check failed: {e}"))
}

/// Where an entry goes under the destination: its path with `strip` leading folders
/// dropped (and only its name without `preserve`); None when nothing is left. An entry
/// that would leave the destination is an error.
fn landing(name: &str, strip: usize, preserve: bool) -> Result<Option<PathBuf>, String> {
    let path = Path::new(name);
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!("the entry `{name}` escapes destination"));
            }
        }
    }
    let parts: Vec<_> = parts.into_iter().skip(strip).collect();
    let Some(last) = parts.last() else {
        return Ok(None);
    };
    Ok(Some(if preserve {
        parts.iter().collect()
    } else {
        PathBuf::from(last)
    }))
}

#[derive(Default)]
struct Counts {
    files: u64,
    bytes: u64,
    skipped: u64,
    errors: Vec<String>,
}

fn extract(
    a: &ArchiveStep,
    source: &Path,
    dir: &Path,
    filters: &Filters,
    notes: &mut Vec<String>,
) -> Result<Value, String> {
    let format = opened(a, source)?;
    // Every entry's path is checked before anything is written.
    read_entries(source, format, &mut |e, _| {
        landing(&e.path, a.strip_components, a.preserve_paths).map(|_| ())
    })?;
    let dest = resolve(dir, a.destination.as_deref().unwrap_or("."));
    if !a.dry_run {
        fs::create_dir_all(&dest)
            .map_err(|e| format!("cannot make the destination {}: {e}", dest.display()))?;
    }
    let root = if a.dry_run {
        dest.clone()
    } else {
        dest.canonicalize()
            .map_err(|e| format!("cannot read the destination {}: {e}", dest.display()))?
    };
    let mut counts = Counts::default();
    read_entries(source, format, &mut |e, data| {
        let Some(rel) = landing(&e.path, a.strip_components, a.preserve_paths)? else {
            if e.kind != Kind::Dir {
                counts.skipped += 1;
            }
            return Ok(());
        };
        let shown = rel.to_string_lossy().replace('\\', "/");
        if e.kind == Kind::Other
            || !filters.allows(&shown)
            || (e.kind == Kind::Dir && !a.preserve_paths)
        {
            if e.kind != Kind::Dir {
                counts.skipped += 1;
            }
            return Ok(());
        }
        if a.verbose {
            notes.push(format!("extract {shown}"));
        }
        if a.dry_run {
            if e.kind != Kind::Dir {
                counts.files += 1;
                counts.bytes += e.size;
            }
            return Ok(());
        }
        match write_entry(a, e, data, &root, &rel) {
            Ok(written) => {
                if e.kind != Kind::Dir {
                    counts.files += 1;
                    counts.bytes += written;
                }
                Ok(())
            }
            Err(why) if a.continue_on_error => {
                notes.push(format!("skipped: {why}"));
                counts.errors.push(why);
                Ok(())
            }
            Err(why) => Err(why),
        }
    })?;
    let mut v = json!({
        "operation": "extract",
        "source": a.source,
        "destination": a.destination.clone().unwrap_or_else(|| ".".into()),
        "filesExtracted": counts.files,
        "bytesExtracted": counts.bytes,
        "filesSkipped": counts.skipped,
        "verifyPerformed": a.verify_integrity,
    });
    if !counts.errors.is_empty() {
        v["errors"] = json!(counts.errors);
    }
    Ok(v)
}

/// Writes one entry under `root`; the bytes written.
fn write_entry(
    a: &ArchiveStep,
    e: &Entry,
    data: &mut dyn Read,
    root: &Path,
    rel: &Path,
) -> Result<u64, String> {
    let target = root.join(rel);
    let fail = |what: &str, err: &dyn std::fmt::Display| {
        format!("cannot {what} {}: {err}", target.display())
    };
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|err| fail("make the folder of", &err))?;
        // A link extracted before cannot lead a later entry out of the destination.
        let real = parent
            .canonicalize()
            .map_err(|err| fail("read the folder of", &err))?;
        if !real.starts_with(root) {
            return Err(format!(
                "the entry `{}` escapes destination through a link",
                e.path
            ));
        }
    }
    if e.kind == Kind::Dir {
        fs::create_dir_all(&target).map_err(|err| fail("make", &err))?;
        return Ok(0);
    }
    if fs::symlink_metadata(&target).is_ok() {
        if !a.overwrite {
            return Err(format!(
                "destination {} exists (overwrite disabled)",
                target.display()
            ));
        }
        if target.is_dir() && !target.is_symlink() {
            return Err(format!("destination {} is a folder", target.display()));
        }
        fs::remove_file(&target).map_err(|err| fail("replace", &err))?;
    }
    match &e.kind {
        Kind::Symlink(to) => {
            std::os::unix::fs::symlink(to, &target).map_err(|err| fail("link", &err))?;
            Ok(0)
        }
        Kind::Hardlink(to) => {
            let Some(from) = landing(to, a.strip_components, a.preserve_paths)? else {
                return Err(format!("the link `{}` leads nowhere", e.path));
            };
            fs::copy(root.join(from), &target).map_err(|err| fail("write", &err))
        }
        _ => {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(|err| fail("write", &err))?;
            let written = io::copy(data, &mut file).map_err(|err| fail("write", &err))?;
            use std::os::unix::fs::PermissionsExt;
            let mode = if e.mode == 0 { 0o644 } else { e.mode & 0o777 };
            let _ = file.set_permissions(fs::Permissions::from_mode(mode));
            if let Some(t) = e.mtime.and_then(|s| u64::try_from(s).ok()) {
                let _ =
                    file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t));
            }
            Ok(written)
        }
    }
}

/// A file or folder to put in an archive: where it is, and its path in the archive.
struct Item {
    disk: PathBuf,
    name: String,
    meta: fs::Metadata,
}

/// The source and, for a folder, everything under it (by name), the destination itself
/// left out (an archive made inside the folder it packs).
fn gather(source: &Path, follow: bool, skip: &Path) -> Result<Vec<Item>, String> {
    let stat = |p: &Path| {
        if follow {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        }
    };
    let meta = stat(source).map_err(|e| missing(source, &e))?;
    let base = source
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "archive".into());
    let mut items = vec![Item {
        disk: source.to_path_buf(),
        name: base,
        meta,
    }];
    let mut i = 0;
    while i < items.len() {
        if items[i].meta.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&items[i].disk)
                .map_err(|e| format!("cannot read {}: {e}", items[i].disk.display()))?
                .flatten()
                .map(|c| c.path())
                .collect();
            children.sort();
            for child in children {
                if child.canonicalize().ok().as_deref() == Some(skip) {
                    continue;
                }
                let meta =
                    stat(&child).map_err(|e| format!("cannot read {}: {e}", child.display()))?;
                let name = format!(
                    "{}/{}",
                    items[i].name,
                    child.file_name().unwrap_or_default().to_string_lossy()
                );
                items.push(Item {
                    disk: child,
                    name,
                    meta,
                });
            }
        }
        i += 1;
    }
    items.sort_by(|x, y| x.name.cmp(&y.name));
    Ok(items)
}

fn create(
    a: &ArchiveStep,
    source: &Path,
    dir: &Path,
    filters: &Filters,
    notes: &mut Vec<String>,
) -> Result<Value, String> {
    let dest = a
        .destination
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .map(|d| resolve(dir, d));
    let format = match a.format.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(name) => Format::named(name)?,
        None => dest
            .as_deref()
            .and_then(Format::of_name)
            .ok_or("could not infer format: name the destination .zip, .tar, .tar.gz or .tgz, or set `format`")?,
    };
    if dest.is_none() && !a.dry_run {
        return Err("destination is required for create".into());
    }
    let skip = dest
        .as_deref()
        .and_then(|d| Some(d.parent()?.canonicalize().ok()?.join(d.file_name()?)))
        .unwrap_or_default();
    let items: Vec<Item> = gather(source, a.follow_symlinks, &skip)?
        .into_iter()
        .filter(|it| filters.allows(&it.name))
        .collect();
    let files = items.iter().filter(|it| !it.meta.is_dir()).count() as u64;
    let bytes: u64 = items
        .iter()
        .filter(|it| it.meta.is_file())
        .map(|it| it.meta.len())
        .sum();
    if a.verbose {
        notes.extend(items.iter().map(|it| format!("add {}", it.name)));
    }
    if let Some(dest) = dest.as_deref().filter(|_| !a.dry_run) {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("cannot make the folder of {}: {e}", dest.display()))?;
        }
        // Written beside, then renamed: a failure leaves no half archive behind.
        let partial = dest.with_file_name(format!(
            ".{}.partial",
            dest.file_name().unwrap_or_default().to_string_lossy()
        ));
        let written = fs::File::create(&partial)
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))
            .and_then(|f| write_archive(f, format, &items, a));
        if let Err(why) = written.and_then(|()| {
            fs::rename(&partial, dest).map_err(|e| format!("cannot write {}: {e}", dest.display()))
        }) {
            let _ = fs::remove_file(&partial);
            return Err(why);
        }
        if a.verify_integrity {
            verify(dest, format)?;
        }
    }
    Ok(json!({
        "operation": "create",
        "source": a.source,
        "destination": a.destination.clone().unwrap_or_default(),
        "filesAdded": files,
        "bytesArchived": bytes,
        "verifyPerformed": a.verify_integrity && !a.dry_run,
    }))
}

fn write_archive(
    file: fs::File,
    format: Format,
    items: &[Item],
    a: &ArchiveStep,
) -> Result<(), String> {
    let level = a.compression_level.filter(|l| *l >= 0);
    let fail =
        |it: &Item, e: &dyn std::fmt::Display| format!("cannot add {}: {e}", it.disk.display());
    match format {
        Format::Zip => {
            use std::os::unix::fs::PermissionsExt;
            let mut zip = zip::ZipWriter::new(file);
            for it in items {
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated)
                    .compression_level(level)
                    .unix_permissions(it.meta.permissions().mode() & 0o777);
                if it.meta.is_dir() {
                    zip.add_directory(format!("{}/", it.name), options)
                        .map_err(|e| fail(it, &e))?;
                } else if it.meta.file_type().is_symlink() {
                    let to = fs::read_link(&it.disk).map_err(|e| fail(it, &e))?;
                    zip.add_symlink(it.name.as_str(), to.to_string_lossy(), options)
                        .map_err(|e| fail(it, &e))?;
                } else {
                    zip.start_file(it.name.as_str(), options)
                        .map_err(|e| fail(it, &e))?;
                    let mut f = fs::File::open(&it.disk).map_err(|e| fail(it, &e))?;
                    io::copy(&mut f, &mut zip).map_err(|e| fail(it, &e))?;
                }
            }
            let mut inner = zip
                .finish()
                .map_err(|e| format!("cannot finish the zip: {e}"))?;
            inner
                .flush()
                .map_err(|e| format!("cannot finish the zip: {e}"))?;
            inner
                .sync_all()
                .map_err(|e| format!("cannot finish the zip: {e}"))
        }
        Format::Tar => {
            let f = write_tar(file, items, a)?;
            f.sync_all()
                .map_err(|e| format!("cannot finish the tar: {e}"))
        }
        Format::TarGz => {
            let gz = flate2::write::GzEncoder::new(
                file,
                level.map_or(flate2::Compression::default(), |l| {
                    flate2::Compression::new(u32::try_from(l).unwrap_or(6))
                }),
            );
            let gz = write_tar(gz, items, a)?;
            let f = gz
                .finish()
                .map_err(|e| format!("cannot finish the tar.gz: {e}"))?;
            f.sync_all()
                .map_err(|e| format!("cannot finish the tar.gz: {e}"))
        }
    }
}

fn write_tar<W: Write>(out: W, items: &[Item], a: &ArchiveStep) -> Result<W, String> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(a.follow_symlinks);
    tar.mode(tar::HeaderMode::Complete);
    for it in items {
        let name = if it.meta.is_dir() {
            format!("{}/", it.name)
        } else {
            it.name.clone()
        };
        tar.append_path_with_name(&it.disk, &name)
            .map_err(|e| format!("cannot add {}: {e}", it.disk.display()))?;
    }
    tar.into_inner()
        .map_err(|e| format!("cannot finish the tar: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_doublestar_does() {
        let f = Filters::new(&["**/*.csv".into()], &["**/skip/**".into()]).expect("globs");
        assert!(f.allows("data/a.csv"));
        assert!(f.allows("a.csv"));
        assert!(f.allows("x/y/z.csv"));
        assert!(!f.allows("x/skip/z.csv"));
        assert!(!f.allows("x/y/z.txt"));
        let by_name = Filters::new(&["*.txt".into()], &[]).expect("glob");
        assert!(by_name.allows("srcdir/keep.txt") && !by_name.allows("srcdir/skip.log"));
        let one = Filters::new(&["src/?.rs".into()], &[]).expect("glob");
        assert!(one.allows("src/a.rs") && !one.allows("src/ab.rs") && !one.allows("a.rs"));
        let class = Filters::new(&["[ab]*".into()], &[]).expect("glob");
        assert!(class.allows("b.md") && !class.allows("c.md"));
    }

    #[test]
    fn entries_that_leave_the_destination_are_refused() {
        assert!(landing("../x", 0, true).is_err());
        assert!(landing("/etc/passwd", 0, true).is_err());
        assert!(landing("a/../../x", 0, true).is_err());
        assert_eq!(
            landing("./top/sub/f.txt", 1, true).expect("ok"),
            Some(PathBuf::from("sub/f.txt"))
        );
        assert_eq!(
            landing("top/sub/f.txt", 0, false).expect("ok"),
            Some(PathBuf::from("f.txt"))
        );
        assert_eq!(landing("top/", 1, true).expect("ok"), None);
    }

    #[test]
    fn modes_read_as_go_shows_them() {
        assert_eq!(mode_text(&Kind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_text(&Kind::Dir, 0o755), "drwxr-xr-x");
    }
}
