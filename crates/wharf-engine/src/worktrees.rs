//! The worktrees a run made with `git.worktree.add` and `cleanup: on_success` or
//! `on_finish`, removed once its steps and handlers are done: after a success (or partial
//! success) for `on_success`, after any end for `on_finish`; never while it waits.
//!
//! What a run owns is read from its record: each such step that succeeded with
//! `worktree_created` true, its `path` and `branch` outputs (so a retry of the run, a new
//! process, still owns what an earlier attempt made). The worktree is removed only when
//! it still has that branch checked out and nothing uncommitted; the branch stays. A
//! removal that fails makes a run that succeeded fail, and is said in the run's error.

use std::path::Path;

use tokio::process::Command;
use wharf_spec::{Dag, Executor};
use wharf_store::{RunKey, Status};

use crate::SharedStore;

/// Removes what the run owns and its status asks for; what could not be removed, one
/// line each.
pub(crate) async fn clean_up(
    dag: &Dag,
    store: &SharedStore,
    run: RunKey,
    status: Status,
    expand: impl Fn(&str) -> String,
) -> Vec<String> {
    let succeeded = matches!(status, Status::Succeeded | Status::PartiallySucceeded);
    let ended = succeeded || matches!(status, Status::Failed | Status::Aborted | Status::Rejected);
    if !ended {
        return Vec::new();
    }
    let owned: Vec<(&str, String, String)> = dag
        .steps
        .iter()
        .filter_map(|s| match &s.executor {
            Executor::GitWorktree(w) if w.add => {
                let policy = w.with.get("cleanup")?.as_str().map(&expand)?;
                let applies = match policy.trim() {
                    "on_success" => succeeded,
                    "on_finish" => true,
                    _ => false,
                };
                applies.then(|| {
                    let id = s.id.clone().unwrap_or_else(|| s.name.clone());
                    (s.name.as_str(), id, policy.trim().to_owned())
                })
            }
            _ => None,
        })
        .collect();
    if owned.is_empty() {
        return Vec::new();
    }
    let outputs = store
        .call(move |s| s.outputs(run).unwrap_or_default())
        .await
        .unwrap_or_default();
    let steps = {
        let store = store.clone();
        store
            .call(move |s| s.steps(run).unwrap_or_default())
            .await
            .unwrap_or_default()
    };
    let mut problems = Vec::new();
    for (name, id, policy) in owned {
        let done = steps
            .iter()
            .any(|r| r.name == name && r.handler.is_none() && r.status == Status::Succeeded);
        let output = |field: &str| {
            let key = format!("steps.{id}.outputs.{field}");
            outputs
                .iter()
                .rev()
                .find(|o| o.name == key)
                .map(|o| o.value.clone())
        };
        if !done || output("worktree_created").as_deref() != Some("true") {
            continue;
        }
        let (Some(path), Some(branch)) = (output("path"), output("branch")) else {
            continue;
        };
        if let Err(why) = remove(Path::new(&path), &branch).await {
            problems.push(format!(
                "cleanup ({policy}) of the worktree {path} (branch {branch}): {why}"
            ));
        }
    }
    problems
}

/// `git ARGS` in `at`, never asking for anything: its stdout (trimmed), or what it said.
pub async fn git(at: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(at)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "the git program is not installed".to_owned()
            } else {
                format!("cannot run git: {e}")
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Removes the worktree at `path` if it still is `branch`'s and clean; gone already is
/// fine.
async fn remove(path: &Path, branch: &str) -> Result<(), String> {
    if !path.exists() {
        return Ok(());
    }
    let common = git(
        path,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await
    .map_err(|e| format!("it is no longer a Git worktree ({e})"))?;
    let head = git(path, &["symbolic-ref", "--quiet", "--short", "HEAD"])
        .await
        .unwrap_or_default();
    if head != branch {
        return Err(format!(
            "it has `{head}` checked out now, not `{branch}`; it is left as it is"
        ));
    }
    let changes = git(path, &["status", "--porcelain"]).await?;
    if !changes.is_empty() {
        return Err("it has uncommitted changes; it is left as it is".into());
    }
    let common = Path::new(&common);
    let at = common.parent().unwrap_or(common);
    git(
        at,
        &[
            &format!("--git-dir={}", common.display()),
            "worktree",
            "remove",
            &path.to_string_lossy(),
        ],
    )
    .await
    .map(|_| ())
}
