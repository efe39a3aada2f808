//! `git.checkout`: a repository brought to a ref at a path, by the `git` program: cloned
//! when the path holds none, else fetched from the repository and checked out there.
//!
//! Credentials never reach git's command line (where `ps` shows them) or a log: an HTTPS
//! token or password goes in an `Authorization` header given through git's environment
//! (`GIT_CONFIG_*`), an SSH key through `GIT_SSH_COMMAND`. git never asks for anything
//! (`GIT_TERMINAL_PROMPT=0`). The step prints one line of JSON: `{"repository", "path",
//! "ref", "commit", "cloned", "changed"}`.

use std::path::Path;

use serde_json::json;
use tokio::process::Command;
use wharf_engine::StepJob;
use wharf_spec::GitCheckout;

use crate::{Ended, Output};

pub(crate) async fn run(git: &GitCheckout, dir: &Path, job: &StepJob, out: &mut Output) -> Ended {
    let work = checkout(git, dir);
    let result = tokio::select! {
        r = work => r,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    match result {
        Ok(report) => {
            out.stdout(format!("{report}\n").as_bytes()).await;
            Ended::Done
        }
        Err(e) => Ended::Failed(e),
    }
}

/// A git command in `at` with the step's credentials; its stdout, or what it said.
struct Git<'a> {
    spec: &'a GitCheckout,
    dir: &'a Path,
}

impl Git<'_> {
    async fn run(&self, at: &Path, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(at)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let basic = match (&self.spec.token, &self.spec.username, &self.spec.password) {
            (Some(token), _, _) => Some(format!("x-access-token:{token}")),
            (None, Some(user), Some(password)) => Some(format!("{user}:{password}")),
            (None, Some(user), None) => Some(format!("{user}:")),
            _ => None,
        };
        if let Some(pair) = basic {
            use base64::Engine as _;
            let header = format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            );
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", header);
        }
        if let Some(key) = &self.spec.ssh_key_path {
            let key = wharf_spec::formats::resolve_path(self.dir, key);
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes",
                    key.display().to_string().replace('\'', "'\\''")
                ),
            );
        }
        let output = cmd.output().await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "git.checkout runs the git program, which is not installed".to_owned()
            } else {
                format!("cannot run git: {e}")
            }
        })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            let said = String::from_utf8_lossy(&output.stderr);
            let said = said
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned();
            Err(said)
        }
    }

    /// The commit `name` resolves to, if it does.
    async fn commit(&self, at: &Path, name: &str) -> Option<String> {
        self.run(
            at,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{name}^{{commit}}"),
            ],
        )
        .await
        .ok()
        .filter(|c| !c.is_empty())
    }
}

async fn checkout(spec: &GitCheckout, dir: &Path) -> Result<serde_json::Value, String> {
    let git = Git { spec, dir };
    let target = wharf_spec::formats::resolve_path(dir, &spec.path);
    let repository = local_or_url(&spec.repository, dir);
    let mut cloned = false;
    let before = match std::fs::metadata(&target) {
        Ok(m) if !m.is_dir() => {
            return Err(format!("{} is not a directory", target.display()));
        }
        Ok(_) if target.join(".git").exists() => {
            let dirty = git.run(&target, &["status", "--porcelain"]).await?;
            if !dirty.is_empty() && !spec.force {
                return Err(format!(
                    "{} has unstaged changes (set `force: true` to discard them)",
                    target.display()
                ));
            }
            git.commit(&target, "HEAD").await
        }
        Ok(_)
            if std::fs::read_dir(&target)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false) =>
        {
            return Err(format!(
                "{}: target directory is not a git repository and is not empty",
                target.display()
            ));
        }
        _ => {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot make the folder {}: {e}", parent.display()))?;
            }
            let target_text = target.to_string_lossy().into_owned();
            let depth = spec.depth.to_string();
            let mut args = vec!["clone", "--quiet", "--no-checkout"];
            if spec.depth > 0 {
                args.extend(["--depth", &depth, "--no-single-branch"]);
            }
            args.extend(["--", &repository, &target_text]);
            git.run(dir, &args)
                .await
                .map_err(|e| format!("clone failed: {}", redact(&e, spec)))?;
            cloned = true;
            None
        }
    };
    if !cloned {
        let depth = format!("--depth={}", spec.depth);
        let mut args = vec!["fetch", "--quiet", "--tags", "--force"];
        if spec.depth > 0 {
            args.push(&depth);
        }
        args.extend(["--", &repository, "+refs/heads/*:refs/remotes/origin/*"]);
        git.run(&target, &args)
            .await
            .map_err(|e| format!("fetch failed: {}", redact(&e, spec)))?;
    }
    // The ref: a branch, else a tag, else a commit; none: the repository's default branch.
    let (shown, commit) = match &spec.reference {
        Some(r) => {
            let mut found = None;
            for candidate in [
                format!("refs/remotes/origin/{r}"),
                format!("refs/tags/{r}"),
                r.clone(),
            ] {
                if let Some(c) = git.commit(&target, &candidate).await {
                    found = Some(c);
                    break;
                }
            }
            let commit = found.ok_or_else(|| {
                format!(
                    "ref `{r}` not found in {} (not a branch, a tag or a commit)",
                    spec.repository
                )
            })?;
            (r.clone(), commit)
        }
        None => {
            let head = git
                .run(
                    &target,
                    &["ls-remote", "--symref", "--", &repository, "HEAD"],
                )
                .await
                .map_err(|e| format!("cannot read the default branch: {}", redact(&e, spec)))?;
            let branch = head
                .lines()
                .find_map(|l| l.strip_prefix("ref: refs/heads/"))
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or("main")
                .to_owned();
            let commit = git
                .commit(&target, &format!("refs/remotes/origin/{branch}"))
                .await
                .ok_or_else(|| format!("the default branch `{branch}` not found"))?;
            (branch, commit)
        }
    };
    git.run(
        &target,
        &["checkout", "--quiet", "--force", "--detach", &commit],
    )
    .await
    .map_err(|e| format!("checkout of {shown} failed: {e}"))?;
    if spec.force {
        git.run(&target, &["clean", "-fdq"]).await?;
    }
    let changed = cloned || before.as_deref() != Some(commit.as_str());
    Ok(json!({
        "repository": redact(&spec.repository, spec),
        "path": spec.path,
        "ref": shown,
        "commit": commit,
        "cloned": cloned,
        "changed": changed,
    }))
}

/// A relative local repository path made the step folder's; URLs as they are.
fn local_or_url(repository: &str, dir: &Path) -> String {
    if repository.contains("://") || repository.contains('@') || repository.starts_with('/') {
        return repository.to_owned();
    }
    wharf_spec::formats::resolve_path(dir, repository)
        .to_string_lossy()
        .into_owned()
}

/// `text` without the step's secrets.
fn redact(text: &str, spec: &GitCheckout) -> String {
    let mut out = text.to_owned();
    for secret in [&spec.token, &spec.password].into_iter().flatten() {
        if !secret.is_empty() {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}
