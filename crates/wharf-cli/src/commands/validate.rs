use crate::ExitCode;
use crate::args::ValidateArgs;
use crate::commands::{load, plural};
use crate::error::Result;
use crate::term::Term;

/// Every file checked; the files that cannot be read are said, and the others checked on.
pub(crate) fn run(args: &ValidateArgs, term: &Term) -> Result<ExitCode> {
    let mut code = ExitCode::Success;
    for path in &args.files {
        let shown = path.display();
        let loaded = match load(path, term) {
            Ok(l) => l,
            Err(e) => {
                e.report();
                code = ExitCode::Usage;
                continue;
            }
        };
        match &loaded.dag {
            Some(dag) => {
                let warnings = match loaded.warnings() {
                    0 => String::new(),
                    n => format!(", {}", plural(n, "warning")),
                };
                println!(
                    "{shown}: ok ({}{warnings})",
                    plural(dag.steps.len(), "step")
                );
                // Dagu 2.x: the dependencies references made.
                for (producer, consumer, field) in &dag.inferred {
                    println!("  inferred: {producer} -> {consumer} ({field})");
                }
            }
            None => {
                code = ExitCode::Usage;
                let warnings = match loaded.warnings() {
                    0 => String::new(),
                    n => format!(", {}", plural(n, "warning")),
                };
                eprintln!(
                    "{shown}: invalid ({}{warnings})",
                    plural(loaded.errors(), "error")
                );
            }
        }
    }
    Ok(code)
}
