//! `git.worktree.add` and `git.worktree.remove` (Dagu 2.x): a linked worktree of the
//! repository the step's working directory is in, made or removed by the `git` program,
//! never touching a remote.
//!
//! Everything is checked before anything changes (the branch, the path, what is
//! registered, a dirty worktree, a branch not merged), and the operations on one
//! repository take turns: a lock file in its common Git directory is held from the first
//! look at its registrations until the outputs are written. The outputs go to the
//! step's `DAGU_OUTPUT_FILE` (declared by the action); stdout gets a line of JSON.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};
use wharf_engine::{StepJob, git};

use crate::{Ended, Output};

pub(crate) async fn run(
    add: bool,
    with: &Map<String, Value>,
    dir: &Path,
    (run, step): (&str, &str),
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let work = async {
        let repo = Repo::find(dir).await?;
        let _lock = repo.lock().await?;
        if add {
            worktree_add(&repo, with, run, step).await
        } else {
            worktree_remove(&repo, with).await
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    let outputs = match result {
        Ok(outputs) => outputs,
        Err(e) => return Ended::Failed(e),
    };
    let Some(file) = crate::output_file(job) else {
        return Ended::Failed("the step has no DAGU_OUTPUT_FILE to write its outputs to".into());
    };
    let records = outputs.iter().map(|(name, value)| {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        (name.clone(), text)
    });
    if let Err(e) = crate::write_outputs(file, records) {
        return Ended::Failed(e);
    }
    out.stdout(format!("{}\n", Value::Object(outputs)).as_bytes())
        .await;
    Ended::Done
}

fn text<'a>(with: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match with.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim())),
        Some(_) => Err(format!("`{key}` is empty once its variables are resolved")),
    }
}

fn flag(with: &Map<String, Value>, key: &str) -> bool {
    with.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The repository of the step's working directory.
struct Repo {
    /// Its working tree's top (a bare repository's own directory).
    root: PathBuf,
    /// The Git directory its worktrees share.
    common: PathBuf,
}

/// A registered worktree (`git worktree list --porcelain`).
#[derive(Debug)]
struct Registered {
    path: PathBuf,
    branch: Option<String>,
    bare: bool,
    primary: bool,
}

impl Repo {
    async fn find(dir: &Path) -> Result<Self, String> {
        let not_a_repo = || {
            format!(
                "{} is not inside a Git repository (git.worktree works in the step's working directory)",
                dir.display()
            )
        };
        let bare = git(dir, &["rev-parse", "--is-bare-repository"])
            .await
            .map_err(|_| not_a_repo())?
            == "true";
        let common = PathBuf::from(
            git(
                dir,
                &["rev-parse", "--path-format=absolute", "--git-common-dir"],
            )
            .await
            .map_err(|_| not_a_repo())?,
        );
        let root = if bare {
            common.clone()
        } else {
            PathBuf::from(
                git(dir, &["rev-parse", "--show-toplevel"])
                    .await
                    .map_err(|_| not_a_repo())?,
            )
        };
        Ok(Self { root, common })
    }

    /// Holds the repository's worktree lock (released when the file is dropped).
    async fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
        let path = self.common.join("wharf-worktree.lock");
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
                .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
        })
        .await
        .map_err(|e| format!("cannot lock the repository: {e}"))?
    }

    async fn registered(&self) -> Result<Vec<Registered>, String> {
        let listing = git(&self.root, &["worktree", "list", "--porcelain"]).await?;
        let mut found = Vec::new();
        for (i, block) in listing.split("\n\n").enumerate() {
            let mut entry = Registered {
                path: PathBuf::new(),
                branch: None,
                bare: false,
                primary: i == 0,
            };
            for line in block.lines() {
                if let Some(p) = line.strip_prefix("worktree ") {
                    entry.path = PathBuf::from(p);
                } else if let Some(b) = line.strip_prefix("branch refs/heads/") {
                    entry.branch = Some(b.to_owned());
                } else if line == "bare" {
                    entry.bare = true;
                }
            }
            if !entry.path.as_os_str().is_empty() {
                found.push(entry);
            }
        }
        Ok(found)
    }

    async fn branch_exists(&self, branch: &str) -> bool {
        git(
            &self.root,
            &[
                "show-ref",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
        )
        .await
        .is_ok()
    }

    /// `path` of `with` (relative to the repository's top), else `ROOT.worktrees/BRANCH`.
    fn path_of(&self, with_path: Option<&str>, branch: Option<&str>) -> Option<PathBuf> {
        let raw = match (with_path, branch) {
            (Some(p), _) => self.root.join(p),
            (None, Some(b)) => {
                let mut base = self.root.clone().into_os_string();
                base.push(".worktrees");
                PathBuf::from(base).join(b)
            }
            (None, None) => return None,
        };
        Some(clean(&raw))
    }
}

/// `path` without `.` and `..` (as written, not through links).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The same place, whether or not either has been through its links.
fn same(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| clean(p));
    canon(a) == canon(b)
}

/// The branch a step makes when it names none: `dagu/RUN/STEP`, what a branch name cannot
/// hold replaced.
fn generated(run: &str, step: &str) -> String {
    let safe = |s: &str| -> String {
        let mapped: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        mapped.trim_matches('-').to_owned()
    };
    format!("dagu/{}/{}", safe(run), safe(step))
}

async fn worktree_add(
    repo: &Repo,
    with: &Map<String, Value>,
    run: &str,
    step: &str,
) -> Result<Map<String, Value>, String> {
    let fail = |what: String| format!("git.worktree.add in {}: {what}", repo.root.display());
    // What `cleanup` asks for is done when the run ends (the engine's `worktrees`).
    match text(with, "cleanup")? {
        None | Some("never" | "on_success" | "on_finish") => {}
        Some(other) => {
            return Err(fail(format!(
                "`cleanup` is never, on_success or on_finish, not `{other}`"
            )));
        }
    }
    let explicit = text(with, "branch")?;
    let branch = explicit.map_or_else(|| generated(run, step), str::to_owned);
    if git(&repo.root, &["check-ref-format", "--branch", &branch])
        .await
        .is_err()
    {
        return Err(fail(format!("`{branch}` is not a valid branch name")));
    }
    let path = repo
        .path_of(text(with, "path")?, Some(&branch))
        .unwrap_or_default();
    let registered = repo.registered().await?;
    if let Some(r) = registered
        .iter()
        .find(|r| r.branch.as_deref() == Some(branch.as_str()))
    {
        if r.primary {
            return Err(fail(format!(
                "`{branch}` is checked out in the primary working tree"
            )));
        }
        if !same(&r.path, &path) {
            return Err(fail(format!(
                "`{branch}` is registered to the worktree {}, not {}",
                r.path.display(),
                path.display()
            )));
        }
        if !r.path.exists() {
            return Err(fail(format!(
                "the worktree of `{branch}` at {} is registered but its folder is gone (stale); `git.worktree.remove` unregisters it, then add it again",
                path.display()
            )));
        }
        // Already there: reused as it is.
        let commit = git(&r.path, &["rev-parse", "HEAD"])
            .await
            .unwrap_or_default();
        return Ok(outputs_add(&r.path, &branch, &commit, false, false));
    }
    if let Ok(mut entries) = std::fs::read_dir(&path)
        && entries.next().is_some()
    {
        return Err(fail(format!("{} exists and is not empty", path.display())));
    }
    if path.is_file() {
        return Err(fail(format!("{} is a file", path.display())));
    }
    let exists = repo.branch_exists(&branch).await;
    let path_text = path.to_string_lossy().into_owned();
    let created_branch = if exists {
        git(&repo.root, &["worktree", "add", &path_text, &branch])
            .await
            .map_err(|e| fail(format!("git worktree add: {e}")))?;
        false
    } else {
        if explicit.is_some() && !flag(with, "create_branch") {
            return Err(fail(format!(
                "the branch `{branch}` does not exist (set `create_branch: true` to make it)"
            )));
        }
        let base = match text(with, "base")? {
            None => "HEAD".to_owned(),
            Some(base) => resolve_base(repo, base).await.ok_or_else(|| {
                fail(format!(
                    "`base` {base} is not a commit, branch, remote branch or tag"
                ))
            })?,
        };
        git(
            &repo.root,
            &["worktree", "add", "-b", &branch, &path_text, &base],
        )
        .await
        .map_err(|e| fail(format!("git worktree add: {e}")))?;
        true
    };
    let commit = git(&path, &["rev-parse", "HEAD"]).await.unwrap_or_default();
    Ok(outputs_add(&path, &branch, &commit, true, created_branch))
}

/// `base` as a commit: a hash, then `refs/heads/`, `refs/remotes/origin/`, `refs/tags/`.
async fn resolve_base(repo: &Repo, base: &str) -> Option<String> {
    let candidates = [
        base.to_owned(),
        format!("refs/heads/{base}"),
        format!("refs/remotes/origin/{base}"),
        format!("refs/tags/{base}"),
    ];
    let hash = base.len() >= 4 && base.chars().all(|c| c.is_ascii_hexdigit());
    for (i, c) in candidates.iter().enumerate() {
        if i == 0 && !hash {
            continue;
        }
        if let Ok(commit) = git(
            &repo.root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{c}^{{commit}}"),
            ],
        )
        .await
        {
            return Some(commit);
        }
    }
    None
}

fn outputs_add(
    path: &Path,
    branch: &str,
    commit: &str,
    created: bool,
    branch_created: bool,
) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "path": path.to_string_lossy(),
        "branch": branch,
        "commit": commit,
        "worktree_created": created,
        "branch_created": branch_created,
    }) else {
        return Map::new();
    };
    m
}

async fn worktree_remove(
    repo: &Repo,
    with: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let fail = |what: String| format!("git.worktree.remove in {}: {what}", repo.root.display());
    let branch = text(with, "branch")?;
    let path = repo.path_of(text(with, "path")?, None);
    let registered = repo.registered().await?;
    let by_path = path
        .as_ref()
        .and_then(|p| registered.iter().find(|r| same(&r.path, p)));
    let by_branch = branch.and_then(|b| registered.iter().find(|r| r.branch.as_deref() == Some(b)));
    let target = match (by_path, by_branch, &path) {
        (Some(p), Some(b), _) if !same(&p.path, &b.path) => {
            return Err(fail(format!(
                "`{}` is checked out at {}, not at {}",
                branch.unwrap_or_default(),
                b.path.display(),
                p.path.display()
            )));
        }
        (Some(p), _, _) => Some(p),
        // A path given that is no worktree of the branch: the branch's is not removed.
        (None, Some(b), Some(p)) if !same(&b.path, p) => {
            return Err(fail(format!(
                "`{}` is checked out at {}, not at {}",
                branch.unwrap_or_default(),
                b.path.display(),
                p.display()
            )));
        }
        (None, b, _) => b,
    };
    if let Some(t) = target
        && (t.primary || t.bare)
    {
        return Err(fail(format!(
            "{} is the repository's primary working tree; it is never removed",
            t.path.display()
        )));
    }
    let delete = flag(with, "delete_branch");
    let target_branch = target.and_then(|t| t.branch.clone());
    let named = branch.map(str::to_owned).or_else(|| target_branch.clone());
    // Everything is checked before anything changes.
    let stale = target.is_some_and(|t| !t.path.exists());
    if let Some(t) = target
        && !stale
        && !flag(with, "force")
    {
        let changes = git(&t.path, &["status", "--porcelain"])
            .await
            .unwrap_or_default();
        if !changes.is_empty() {
            return Err(fail(format!(
                "the worktree {} has uncommitted changes (set `force: true` to remove it anyway)",
                t.path.display()
            )));
        }
    }
    let branch_exists = match &named {
        Some(b) if delete => repo.branch_exists(b).await,
        _ => false,
    };
    if delete && branch_exists {
        let b = named.as_deref().unwrap_or_default();
        if let Some(other) = registered.iter().find(|r| {
            r.branch.as_deref() == Some(b) && target.is_none_or(|t| !same(&t.path, &r.path))
        }) {
            return Err(fail(format!(
                "`{b}` is checked out in {}: it is not deleted",
                other.path.display()
            )));
        }
        let merged = git(&repo.root, &["merge-base", "--is-ancestor", b, "HEAD"])
            .await
            .is_ok();
        if !merged && !flag(with, "force_delete_branch") {
            return Err(fail(format!(
                "`{b}` is not merged into HEAD (set `force_delete_branch: true` to delete it anyway)"
            )));
        }
    }
    let mut removed = false;
    if let Some(t) = target {
        let p = t.path.to_string_lossy().into_owned();
        if stale {
            git(&repo.root, &["worktree", "prune"])
                .await
                .map_err(|e| fail(format!("git worktree prune: {e}")))?;
        } else {
            let mut args = vec!["worktree", "remove"];
            if flag(with, "force") {
                args.push("--force");
            }
            args.push(&p);
            git(&repo.root, &args)
                .await
                .map_err(|e| fail(format!("git worktree remove: {e}")))?;
        }
        removed = true;
    }
    let mut deleted = false;
    if delete && branch_exists {
        let b = named.as_deref().unwrap_or_default();
        git(&repo.root, &["branch", "-D", b]).await.map_err(|e| {
            fail(format!(
                "the worktree was removed, but not the branch `{b}`: {e}"
            ))
        })?;
        deleted = true;
    }
    let shown_path = target
        .map(|t| t.path.to_string_lossy().into_owned())
        .or_else(|| path.map(|p| p.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let Value::Object(m) = json!({
        "path": shown_path,
        "branch": target_branch.or(named).unwrap_or_default(),
        "worktree_removed": removed,
        "branch_deleted": deleted,
    }) else {
        return Ok(Map::new());
    };
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_branches_and_clean_paths() {
        assert_eq!(generated("01ab-cd", "make it"), "dagu/01ab-cd/make-it");
        assert_eq!(
            clean(Path::new("/r/repo/../wt/./x")),
            PathBuf::from("/r/wt/x")
        );
    }
}
