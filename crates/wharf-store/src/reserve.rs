//! Space kept in reserve under `WHARF_HOME` for a full disk.

use std::path::Path;

use crate::{Error, Store};

/// A file of space kept in reserve: when the disk fills up (a step's log took the rest),
/// removing it lets the run record how it ended.
pub(crate) const RESERVE_FILE: &str = "wharf.db.reserve";
const RESERVE_BYTES: usize = 256 * 1024;

impl Store {
    /// Frees the space kept in reserve under `WHARF_HOME` for a full disk, so that the end
    /// of what is under way can still be recorded. False when there was none left.
    pub fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.home.join(RESERVE_FILE)).is_ok()
    }
}

/// Writes the reserve file when it is missing (real bytes: a sparse file reserves nothing).
/// A disk too full for it goes without.
pub(crate) fn keep_reserve(home: &Path) {
    let path = home.join(RESERVE_FILE);
    if path.exists() {
        return;
    }
    let written = std::fs::write(&path, vec![0u8; RESERVE_BYTES]);
    if written.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Whether an error says the disk is full.
pub fn is_full(e: &Error) -> bool {
    match e {
        Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            f.code == rusqlite::ErrorCode::DiskFull
        }
        Error::Io(e) => e.raw_os_error() == Some(nix::libc::ENOSPC),
        _ => false,
    }
}
