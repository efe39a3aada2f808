//! Dagu 2.x `log.write`, `outputs.write` and `noop`: steps wharf does itself, with no
//! process.

use crate::{Ended, Output};

/// `log.write` (the message, ending in a newline), `outputs.write` (each value as a
/// record of the step's `DAGU_OUTPUT_FILE`, read once the step succeeded) and `noop`.
pub(crate) async fn run(
    emit: &wharf_spec::Emit,
    job: &wharf_engine::StepJob,
    out: &mut Output,
) -> Ended {
    match emit {
        wharf_spec::Emit::Log(message) => {
            let mut text = message.clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            out.stdout(text.as_bytes()).await;
        }
        wharf_spec::Emit::Outputs(values) => {
            let Some((_, file)) = job.env.iter().rev().find(|(k, _)| k == "DAGU_OUTPUT_FILE")
            else {
                return Ended::Failed(
                    "the step has no DAGU_OUTPUT_FILE to write its outputs to".into(),
                );
            };
            let mut records = String::new();
            for (name, value) in values {
                // A delimiter that is no line of the value.
                let mut delimiter = "WHARF_VALUE".to_owned();
                while value.lines().any(|l| l == delimiter) {
                    delimiter.push('_');
                }
                records.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
            }
            if let Err(e) = std::fs::write(file, records) {
                return Ended::Failed(format!("cannot write the step's outputs to {file}: {e}"));
            }
        }
        wharf_spec::Emit::Noop => {}
    }
    Ended::Done
}
