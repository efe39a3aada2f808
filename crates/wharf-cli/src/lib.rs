//! The `wharf` command line: argument parsing, terminal output and exit codes. Logic that
//! a server would also need lives in the library crates.

// What the commands print on stdout goes through these: once a reader stops reading
// (`wharf history | head`), the rest is dropped and the command goes on to its end (a run
// is never cut short for it), where std's own would panic.
macro_rules! println {
    () => {
        $crate::to_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::to_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

macro_rules! print {
    ($($arg:tt)*) => {
        $crate::to_stdout(format_args!($($arg)*))
    };
}

mod args;
mod commands;
mod error;
mod exit;
mod progress;
mod term;
mod time;

pub use exit::ExitCode;

/// A Dagu command wharf does not have, met as an unknown subcommand: what to do instead
/// (rather than clap's nearest spelling, which would point at an unrelated command).
fn dagu_only_command(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let instead = match name.as_str() {
        "worker" | "coordinator" => {
            "wharf has no workers or coordinator of its own: where one machine is not enough, \
             steps run as Docker Swarm jobs on an existing swarm (`backend: swarm`, \
             `workerSelector`; docs/docker.md, \"Docker Swarm\"), and `wharf start-all` is \
             the server and scheduler"
        }
        "schema" => {
            "the DAG fields are described in docs/dialect.md; `wharf validate FILE` checks a \
             file against them, naming the line and column of each error"
        }
        "upgrade" => {
            "wharf does not replace itself: install the new build (`cargo install --path \
             crates/wharf-cli`, or your package) and restart `wharf start-all`; the store \
             migrates itself when opened"
        }
        "sync" => {
            "wharf does not pull DAGs from git: keep the DAGs folder a git checkout and \
             update it with `git pull`"
        }
        "context" => {
            "wharf has no remote contexts: `WHARF_HOME` chooses the installation a command \
             works on (`wharf config` shows it)"
        }
        "license" => "wharf needs no license",
        "agent" => "wharf has no AI agent",
        _ => return None,
    };
    Some(format!(
        "`{name}` is a Dagu command wharf does not have: {instead}"
    ))
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn run() -> i32 {
    use clap::FromArgMatches;
    let parsed = args::command()
        .try_get_matches()
        .and_then(|m| args::Cli::from_arg_matches(&m));
    let args = match parsed {
        Ok(args) => args,
        Err(e) => {
            if let Some(why) = dagu_only_command(&e) {
                eprintln!("error: {why}");
                return ExitCode::Usage as i32;
            }
            let code = if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Success
            };
            let _ = e.print();
            return code as i32;
        }
    };
    let term = term::Term::detect();
    let needs_installation = !matches!(
        args.command,
        args::Command::Completions(_) | args::Command::Man(_) | args::Command::Version
    );
    if needs_installation {
        // The installation's settings (base configuration, global queues, default shell,
        // time zone) hold for every DAG this process reads.
        let home = wharf_store::default_home();
        if let Err(e) = wharf_engine::Installation::read(&home).and_then(|i| i.install()) {
            eprintln!("error: {e}");
            return ExitCode::Usage as i32;
        }
    }
    match args.dialect.as_deref() {
        Some("1") => wharf_spec::set_dialect(Some(wharf_spec::Dialect::V1)),
        Some("2") => wharf_spec::set_dialect(Some(wharf_spec::Dialect::V2)),
        _ => {}
    }
    let result = match args.command {
        args::Command::Run(a) => commands::run::run(&a, &term),
        args::Command::Exec(a) => commands::exec::run(&a, &term),
        args::Command::Validate(a) => commands::validate::run(&a, &term),
        args::Command::Dry(a) => {
            commands::dry::run(&a, &term, args.dialect.as_deref() == Some("2"))
        }
        args::Command::Ls(a) => commands::list::ls(&a),
        args::Command::Ps(a) => commands::list::ps(&a),
        args::Command::Status(a) => commands::status::run(&a),
        args::Command::History(a) => commands::history::run(&a),
        args::Command::Logs(a) => commands::logs::run(&a),
        args::Command::Stop(a) => commands::stop::run(&a),
        args::Command::Retry(a) => commands::run::retry(&a, &term),
        args::Command::Restart(a) => commands::run::restart(&a, &term),
        args::Command::Enqueue(a) => commands::run::enqueue(&a, &term),
        args::Command::Dequeue(a) => commands::run::dequeue(&a),
        args::Command::Suspend(a) => commands::run::suspend(&a.dag, true),
        args::Command::Resume(a) => commands::run::suspend(&a.dag, false),
        args::Command::Cleanup(a) => commands::cleanup::run(&a),
        args::Command::Migrate(args::MigrateCommand::History(a)) => commands::migrate::history(&a),
        args::Command::HumanTask(args::HumanTaskCommand::Complete(a)) => {
            commands::task::complete(&a)
        }
        args::Command::Config => Ok(commands::list::config()),
        args::Command::Rm(a) => commands::cleanup::rm(&a),
        args::Command::Completions(a) => {
            let shell = match a.shell {
                args::Shell::Bash => clap_complete::Shell::Bash,
                args::Shell::Zsh => clap_complete::Shell::Zsh,
                args::Shell::Fish => clap_complete::Shell::Fish,
            };
            let mut command = args::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "wharf", &mut script);
            Ok(print_bytes(&script))
        }
        args::Command::Man(a) => {
            let mut command = args::command();
            command.build();
            let page = match &a.command {
                None => clap_mangen::Man::new(command),
                Some(name) => match command.find_subcommand(name) {
                    Some(sub) => clap_mangen::Man::new(sub.clone()).title(format!("wharf-{name}")),
                    None => {
                        eprintln!("error: wharf has no command `{name}`");
                        return ExitCode::Usage as i32;
                    }
                },
            };
            let mut roff = Vec::new();
            match page.render(&mut roff) {
                Ok(()) => Ok(print_bytes(&roff)),
                Err(e) => {
                    eprintln!("error: cannot make the manual page: {e}");
                    Ok(ExitCode::Failure)
                }
            }
        }
        args::Command::Version => {
            println!("wharf {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::Success)
        }
        args::Command::Server(a) => commands::serve::serve(&a, false),
        args::Command::StartAll(a) => commands::serve::serve(&a, true),
        args::Command::Scheduler(a) => commands::serve::schedule(&a),
    };
    // The one place where a command's error is said and becomes the exit code.
    match result {
        Ok(code) => code as i32,
        Err(e) => {
            e.report();
            e.exit_code() as i32
        }
    }
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
/// Whether stdout's reader has gone: nothing more is written to it.
static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to stdout, or nothing once its reader has gone.
fn to_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT_GONE.store(true, Ordering::Relaxed);
        } else {
            drop(out);
            eprintln!("error: cannot write to stdout: {e}");
            STDOUT_GONE.store(true, Ordering::Relaxed);
        }
    }
}

fn print_bytes(bytes: &[u8]) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::Success,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::Success,
        Err(e) => {
            eprintln!("error: cannot write: {e}");
            ExitCode::Failure
        }
    }
}
