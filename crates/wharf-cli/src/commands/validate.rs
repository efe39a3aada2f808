use crate::ExitCode;
use crate::args::ValidateArgs;
use crate::commands::{load, plural};
use crate::term::Term;

pub(crate) fn run(args: &ValidateArgs, term: &Term) -> ExitCode {
    let mut code = ExitCode::Success;
    for path in &args.files {
        let shown = path.display();
        let Some(loaded) = load(path, term) else {
            code = ExitCode::Usage;
            continue;
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
    code
}
