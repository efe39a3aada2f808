//! Space kept in reserve under `WHARF_HOME` for a full disk.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{Error, Store};

/// This process gave up the space kept in reserve: the disk is full, and what is left of
/// it is for recording how runs end.
static RELEASED: AtomicBool = AtomicBool::new(false);

/// Whether this process has used the space kept in reserve (the disk is full): step logs
/// stop taking space from then on, so that the end of the run can still be recorded.
pub fn reserve_released() -> bool {
    RELEASED.load(Ordering::Relaxed)
}

/// A file of space kept in reserve: when the disk fills up (a step's log took the rest),
/// removing it lets the run record how it ended.
pub(crate) const RESERVE_FILE: &str = "wharf.db.reserve";
const RESERVE_BYTES: usize = 256 * 1024;

impl Store {
    /// Writes the reserve file when it is missing (real bytes: a sparse file reserves
    /// nothing). When the disk has no room for it, the WAL is first emptied into the
    /// database (a new store holds its migrations' pages in both until the first
    /// checkpoint, and a checkpoint costs a sync, so only then); a disk still too full
    /// goes without.
    pub(crate) fn keep_reserve(&self) {
        let path = self.home.join(RESERVE_FILE);
        if path.exists() {
            return;
        }
        let write = || {
            let written = std::fs::write(&path, vec![0u8; RESERVE_BYTES]);
            if written.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            written.is_ok()
        };
        if !write() {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            write();
        }
    }

    /// Frees the space kept in reserve under `WHARF_HOME` for a full disk, so that the end
    /// of what is under way can still be recorded. False when there was none left.
    pub fn release_reserve(&self) -> bool {
        RELEASED.store(true, Ordering::Relaxed);
        std::fs::remove_file(self.home.join(RESERVE_FILE)).is_ok()
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
