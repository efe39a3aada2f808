//! `type: sftp` (`action: sftp.upload`, `sftp.download`): a file or a folder copied to or
//! from another machine over the SFTP subsystem of the run's SSH connection to it (the
//! same connection, host key check and login as an `ssh` step's).
//!
//! An uploaded file is written beside its destination and renamed over it, so the
//! destination is never seen half written; a downloaded one is written in place. Both
//! take the source's permission bits; missing parent folders are made. A folder is
//! copied whole, its structure kept. The step prints one line of JSON: what it did.

use std::path::Path;

use russh_sftp::client::SftpSession;
use russh_sftp::protocol::FileAttributes;
use tokio::io::AsyncWriteExt;
use wharf_engine::StepJob;
use wharf_spec::SshStep;

use crate::ssh::Sessions;
use crate::{Ended, Output};

/// What goes where.
pub(crate) struct Transfer<'a> {
    pub upload: bool,
    pub source: Option<&'a str>,
    pub destination: Option<&'a str>,
    /// The step's working directory: local paths and key files are relative to it.
    pub dir: &'a Path,
}

#[derive(Default)]
struct Copied {
    files: u64,
    dirs: u64,
    bytes: u64,
}

pub(crate) async fn run(
    sessions: &Sessions,
    config: &SshStep,
    transfer: &Transfer<'_>,
    job: &StepJob,
    out: &mut Output,
) -> Ended {
    let Some(source) = transfer.source.filter(|s| !s.trim().is_empty()) else {
        return Ended::Failed("source path is required for sftp step".into());
    };
    let Some(destination) = transfer.destination.filter(|s| !s.trim().is_empty()) else {
        return Ended::Failed("destination path is required for sftp step".into());
    };
    let work = async {
        let handle = crate::ssh::connection(sessions, config, transfer.dir).await?;
        let target = crate::ssh::target(config);
        let channel = match handle.channel_open_session().await {
            Ok(c) => c,
            Err(e) => {
                sessions
                    .open
                    .lock()
                    .await
                    .remove(&crate::ssh::cache_key(config));
                return Err(format!("{target}: cannot open a channel: {e}"));
            }
        };
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| format!("{target}: the server has no SFTP subsystem: {e}"))?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| format!("{target}: cannot start SFTP: {e}"))?;
        let mut copied = Copied::default();
        let result = if transfer.upload {
            let local = crate::ssh::path_of(source, transfer.dir);
            upload(&sftp, &local, destination, &mut copied).await
        } else {
            let local = crate::ssh::path_of(destination, transfer.dir);
            download(&sftp, source, &local, &mut copied).await
        };
        let _ = sftp.close().await;
        result.map(|()| copied)
    };
    let copied = tokio::select! {
        r = work => r,
        () = job.stop.cancelled() => return Ended::Stopped,
    };
    match copied {
        Ok(c) => {
            let line = serde_json::json!({
                "direction": if transfer.upload { "upload" } else { "download" },
                "source": source,
                "destination": destination,
                "files": c.files,
                "directories": c.dirs,
                "bytes": c.bytes,
            });
            out.stdout(format!("{line}\n").as_bytes()).await;
            Ended::Done
        }
        Err(e) => Ended::Failed(e),
    }
}

/// The local `from` (a file or a folder) to the remote path `to`.
async fn upload(
    sftp: &SftpSession,
    from: &Path,
    to: &str,
    copied: &mut Copied,
) -> Result<(), String> {
    let meta = tokio::fs::metadata(from)
        .await
        .map_err(|e| format!("failed to stat source {}: {e}", from.display()))?;
    remote_parents(sftp, to).await?;
    if !meta.is_dir() {
        return upload_file(sftp, from, to, &meta, copied).await;
    }
    // A folder, walked without recursion: (local, remote) pairs to visit. Folders take
    // their modes last, once nothing more is written in them.
    let mut pending = vec![(from.to_path_buf(), to.to_owned(), meta)];
    let mut folders = Vec::new();
    while let Some((local, remote, meta)) = pending.pop() {
        if meta.is_dir() {
            if !sftp.try_exists(remote.as_str()).await.unwrap_or(false) {
                sftp.create_dir(remote.as_str())
                    .await
                    .map_err(|e| format!("cannot make the remote folder {remote}: {e}"))?;
            }
            copied.dirs += 1;
            let mut entries = tokio::fs::read_dir(&local)
                .await
                .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| format!("cannot read {}: {e}", local.display()))?
            {
                let path = entry.path();
                let meta = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| format!("failed to stat source {}: {e}", path.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                pending.push((path, join(&remote, &name), meta));
            }
            folders.push((remote, meta));
        } else {
            upload_file(sftp, &local, &remote, &meta, copied).await?;
        }
    }
    for (remote, meta) in folders.iter().rev() {
        set_mode(sftp, remote, meta).await?;
    }
    Ok(())
}

/// One file, written beside `to` and renamed over it.
async fn upload_file(
    sftp: &SftpSession,
    from: &Path,
    to: &str,
    meta: &std::fs::Metadata,
    copied: &mut Copied,
) -> Result<(), String> {
    let temporary = format!("{to}.wharf-{}", uuid::Uuid::now_v7().simple());
    let written = async {
        let mut local = tokio::fs::File::open(from)
            .await
            .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
        let mut remote = sftp
            .create(temporary.as_str())
            .await
            .map_err(|e| format!("cannot write {temporary}: {e}"))?;
        let bytes = tokio::io::copy(&mut local, &mut remote)
            .await
            .map_err(|e| format!("cannot upload {} to {to}: {e}", from.display()))?;
        remote
            .shutdown()
            .await
            .map_err(|e| format!("cannot upload {} to {to}: {e}", from.display()))?;
        set_mode(sftp, &temporary, meta).await?;
        // A server's plain rename does not replace a file: the old one goes first.
        if sftp.rename(temporary.as_str(), to).await.is_err() {
            let _ = sftp.remove_file(to).await;
            sftp.rename(temporary.as_str(), to)
                .await
                .map_err(|e| format!("cannot put the upload in place at {to}: {e}"))?;
        }
        Ok::<u64, String>(bytes)
    }
    .await;
    match written {
        Ok(bytes) => {
            copied.files += 1;
            copied.bytes += bytes;
            Ok(())
        }
        Err(e) => {
            let _ = sftp.remove_file(temporary.as_str()).await;
            Err(e)
        }
    }
}

/// The remote `from` (a file or a folder) to the local path `to`.
async fn download(
    sftp: &SftpSession,
    from: &str,
    to: &Path,
    copied: &mut Copied,
) -> Result<(), String> {
    let meta = sftp
        .metadata(from)
        .await
        .map_err(|e| format!("failed to stat remote {from}: {e}"))?;
    if let Some(parent) = to.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("cannot make the folder {}: {e}", parent.display()))?;
    }
    let mut pending = vec![(from.to_owned(), to.to_path_buf(), meta)];
    let mut folders = Vec::new();
    while let Some((remote, local, meta)) = pending.pop() {
        if meta.is_dir() {
            tokio::fs::create_dir_all(&local)
                .await
                .map_err(|e| format!("cannot make the folder {}: {e}", local.display()))?;
            copied.dirs += 1;
            let entries = sftp
                .read_dir(remote.as_str())
                .await
                .map_err(|e| format!("cannot read the remote folder {remote}: {e}"))?;
            for entry in entries {
                let name = entry.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                let path = join(&remote, &name);
                // The entry's own attributes may be a link's: ask for what it leads to.
                let meta = sftp
                    .metadata(path.as_str())
                    .await
                    .map_err(|e| format!("failed to stat remote {path}: {e}"))?;
                pending.push((path, local.join(&name), meta));
            }
            folders.push((local, meta));
        } else {
            let mut remote_file = sftp
                .open(remote.as_str())
                .await
                .map_err(|e| format!("cannot read the remote file {remote}: {e}"))?;
            let mut file = tokio::fs::File::create(&local)
                .await
                .map_err(|e| format!("cannot write {}: {e}", local.display()))?;
            let bytes = tokio::io::copy(&mut remote_file, &mut file)
                .await
                .map_err(|e| format!("cannot download {remote}: {e}"))?;
            file.flush()
                .await
                .map_err(|e| format!("cannot write {}: {e}", local.display()))?;
            local_mode(&local, &meta).await?;
            copied.files += 1;
            copied.bytes += bytes;
        }
    }
    for (local, meta) in folders.iter().rev() {
        local_mode(local, meta).await?;
    }
    Ok(())
}

/// The remote folders above `path`, made where missing.
async fn remote_parents(sftp: &SftpSession, path: &str) -> Result<(), String> {
    let Some((parent, _)) = path.rsplit_once('/') else {
        return Ok(());
    };
    let mut made = String::new();
    for part in parent.split('/') {
        if part.is_empty() {
            if made.is_empty() {
                made.push('/');
            }
            continue;
        }
        if !made.is_empty() && !made.ends_with('/') {
            made.push('/');
        }
        made.push_str(part);
        if !sftp.try_exists(made.as_str()).await.unwrap_or(false) {
            sftp.create_dir(made.as_str())
                .await
                .map_err(|e| format!("cannot make the remote folder {made}: {e}"))?;
        }
    }
    Ok(())
}

/// A remote path's permission bits set to a local file's.
async fn set_mode(sftp: &SftpSession, path: &str, meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let attrs = FileAttributes {
        permissions: Some(meta.permissions().mode() & 0o7777),
        ..FileAttributes::empty()
    };
    sftp.set_metadata(path, attrs)
        .await
        .map_err(|e| format!("cannot set the permissions of {path}: {e}"))
}

/// A local path's permission bits set to a remote file's.
async fn local_mode(path: &Path, meta: &FileAttributes) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(mode) = meta.permissions else {
        return Ok(());
    };
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .await
        .map_err(|e| format!("cannot set the permissions of {}: {e}", path.display()))
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
