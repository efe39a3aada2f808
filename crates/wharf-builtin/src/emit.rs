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
            let Some(file) = crate::output_file(job) else {
                return Ended::Failed(
                    "the step has no DAGU_OUTPUT_FILE to write its outputs to".into(),
                );
            };
            if let Err(e) = crate::write_outputs(file, values.iter().cloned()) {
                return Ended::Failed(e);
            }
        }
        wharf_spec::Emit::Noop => {}
    }
    Ended::Done
}
