//! `wharf cleanup`: what crashed runs left behind.

use crate::ExitCode;
use crate::commands::open_store;

pub(crate) fn run() -> ExitCode {
    // Opening the store marks the runs of dead processes failed and kills what is left of
    // their steps, and says so.
    match open_store() {
        Some(_) => {
            eprintln!("cleanup done");
            ExitCode::Success
        }
        None => ExitCode::Failure,
    }
}
