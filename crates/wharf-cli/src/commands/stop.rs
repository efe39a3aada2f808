//! `wharf stop`: asks the process running each run of the DAG to stop it, and waits.
//!
//! The process that runs a run owns its steps; it gets SIGTERM, as from a terminal's
//! `kill`, and does what it does for Ctrl-C: the steps' stop signals, the grace period,
//! the kill, the handlers, the record.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::ExitCode;
use crate::args::StopArgs;
use crate::commands::{dag_name, open_store};

pub(crate) fn run(args: &StopArgs) -> ExitCode {
    let Some(store) = open_store() else {
        return ExitCode::Failure;
    };
    let name = dag_name(&args.dag);
    let running = match store.running(Some(&name)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::Failure;
        }
    };
    if running.is_empty() {
        eprintln!("no run of `{name}` is running");
        return ExitCode::Success;
    }
    for run in &running {
        match run.pid {
            Some(pid) if pid > 0 => match kill(Pid::from_raw(pid), Signal::SIGTERM) {
                Ok(()) => eprintln!("stopping run {} of {name}", run.run_id),
                Err(e) => eprintln!(
                    "error: cannot signal the process of run {} (pid {pid}): {e}",
                    run.run_id
                ),
            },
            _ => eprintln!("error: run {} has no process to signal", run.run_id),
        }
    }
    // Wait for the runs to be recorded as ended: the grace period, handlers, and a margin.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut code = ExitCode::Success;
    for run in &running {
        loop {
            match store.run(&name, &run.run_id) {
                Ok(Some(r)) if r.status.is_final() => {
                    eprintln!("run {} of {name}: {}", r.run_id, r.status);
                    break;
                }
                Ok(Some(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(_) => {
                    eprintln!("error: run {} of {name} did not end in time", run.run_id);
                    code = ExitCode::Failure;
                    break;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    code = ExitCode::Failure;
                    break;
                }
            }
            let _ = store.reap_dead();
        }
    }
    code
}
