//! What `wharf run` shows while a run goes on, on stderr.
//!
//! Off a terminal: one plain line per event. On a terminal: finished steps as lines that
//! stay, and below them the running steps with their elapsed time, redrawn a few times a
//! second. At the end: the run's result, and the tail of each failed step's stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wharf_engine::{Event, Status, StepReport};

use crate::term::Term;
use crate::time;

const TAIL_LINES: usize = 20;

pub(crate) struct Progress {
    live: bool,
    color: bool,
    /// Running steps: name, attempt (0: the DAG-level container, starting), since, what it
    /// is busy with.
    active: Vec<(String, u32, Instant, Option<String>)>,
    drawn: usize,
    failed: Vec<(String, PathBuf)>,
    frame: usize,
    dag: String,
    /// What was drawn since the last [`Progress::flush`].
    pending: Vec<u8>,
    /// Where in `pending` the live area starts, when it is drawn there and not yet shown
    /// (a later event of the same flush draws it again instead).
    unshown_live: Option<usize>,
}

impl Progress {
    pub fn new(term: &Term) -> Self {
        Self {
            live: term.live_stderr,
            color: term.color_stderr,
            active: Vec::new(),
            drawn: 0,
            failed: Vec::new(),
            dag: String::new(),
            frame: 0,
            pending: Vec::new(),
            unshown_live: None,
        }
    }

    fn paint(&self, status: Status, text: String) -> String {
        if !self.color {
            return text;
        }
        let code = match status {
            Status::Succeeded => "32",
            Status::Failed | Status::Aborted => "31",
            Status::Skipped | Status::NotStarted | Status::Queued => "2",
            Status::PartiallySucceeded | Status::Waiting => "33",
            Status::Rejected => "31",
            Status::Running => "36",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// Prints lines that stay (above the live area) at the next [`Progress::flush`]. The
    /// live area's clearing, the lines and the live area again go to the terminal in one
    /// write: stderr is unbuffered, and a write per piece was several system calls per
    /// event.
    fn emit(&mut self, lines: &[String]) {
        self.clear();
        for line in lines {
            self.pending.extend_from_slice(line.as_bytes());
            self.pending.push(b'\n');
        }
        if self.live {
            self.unshown_live = Some(self.pending.len());
        }
        let mut frame = std::mem::take(&mut self.pending);
        self.draw(&mut frame);
        self.pending = frame;
    }

    /// Writes what was drawn since the last flush, in one write.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            let _ = std::io::stderr().lock().write_all(&self.pending);
            self.pending.clear();
        }
        self.unshown_live = None;
    }

    /// Takes the live area away: out of `pending` when it was drawn there and not yet
    /// shown, else off the terminal.
    fn clear(&mut self) {
        if let Some(at) = self.unshown_live.take() {
            self.pending.truncate(at);
            self.drawn = 0;
        } else if self.live && self.drawn > 0 {
            let _ = write!(self.pending, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, frame: &mut Vec<u8>) {
        if !self.live {
            return;
        }
        const SPIN: [&str; 4] = ["|", "/", "-", "\\"];
        let spin = SPIN[self.frame % SPIN.len()];
        let shown = self.active.len().min(10);
        for (name, attempt, since, busy) in self.active.iter().take(shown) {
            let state = if *attempt == 0 { "starting" } else { "running" };
            let retry = if *attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            let busy = busy
                .as_deref()
                .map(|b| format!(", {b}"))
                .unwrap_or_default();
            let line = format!(
                "{spin} {name}: {state}{retry} {}{busy}",
                time::duration(since.elapsed())
            );
            let _ = writeln!(frame, "{}", self.paint(Status::Running, line));
        }
        self.drawn = shown;
        if self.active.len() > shown {
            let _ = writeln!(
                frame,
                "  ... and {} more running",
                self.active.len() - shown
            );
            self.drawn += 1;
        }
    }

    /// Redraws the running steps (call a few times a second on a terminal).
    pub fn tick(&mut self) {
        if self.live && !self.active.is_empty() {
            self.frame += 1;
            self.emit(&[]);
        }
        self.flush();
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted { dag, run_id, .. } => {
                self.dag = dag.clone();
                self.emit(&[format!("run {dag} {run_id}")]);
            }
            Event::StepStarted {
                name,
                attempt,
                handler,
            } => {
                self.active.retain(|(n, ..)| n != name);
                self.active
                    .push((name.clone(), *attempt, Instant::now(), None));
                if !self.live {
                    let what = match (handler, attempt) {
                        (Some(h), _) => format!("{name} (on {h}): running"),
                        (None, 1) => format!("{name}: running"),
                        (None, n) => format!("{name}: running (attempt {n})"),
                    };
                    self.emit(&[what]);
                }
            }
            Event::StepFinished(report) => {
                self.active.retain(|(n, ..)| *n != report.name);
                let line = self.step_line(report);
                if report.status == Status::Failed
                    && let Some(stderr) = &report.stderr
                {
                    self.failed.push((report.name.clone(), stderr.clone()));
                }
                self.emit(&[line]);
            }
            Event::ContainerStarting { what } => {
                let name = format!("container {what}");
                self.active.push((name.clone(), 0, Instant::now(), None));
                if !self.live {
                    self.emit(&[format!("{name}: starting")]);
                }
            }
            Event::ContainerReady {
                what,
                duration,
                error,
            } => {
                let name = format!("container {what}");
                self.active.retain(|(n, ..)| *n != name);
                let line = match error {
                    None => self.paint(
                        Status::Succeeded,
                        format!("{name}: ready ({})", time::duration(*duration)),
                    ),
                    Some(e) => self.paint(
                        Status::Failed,
                        format!("{name}: not ready ({}): {e}", time::duration(*duration)),
                    ),
                };
                self.emit(&[line]);
            }
            Event::Notice(text) => self.emit(&[format!("note: {text}")]),
            Event::Activity { name, text } => {
                if let Some(entry) = self.active.iter_mut().find(|(n, ..)| n == name) {
                    entry.3 = text.clone();
                }
            }
            Event::RunFinished {
                status,
                duration,
                error,
            } => {
                let mut lines = Vec::new();
                for (name, path) in std::mem::take(&mut self.failed) {
                    let tail = tail(&path, TAIL_LINES);
                    if !tail.is_empty() {
                        lines.push(format!("--- stderr of {name} (last lines) ---"));
                        lines.extend(tail);
                    }
                }
                let error = error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                let text = format!(
                    "{} {status} in {}{error}",
                    self.dag,
                    time::duration(*duration)
                );
                lines.push(self.paint(*status, text));
                self.emit(&lines);
            }
        }
    }

    fn step_line(&self, r: &StepReport) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(r.name.len() + 48);
        match r.handler {
            Some(h) => _ = write!(text, "{} (on {h}): {}", r.name, r.status),
            None => _ = write!(text, "{}: {}", r.name, r.status),
        }
        if r.status != Status::Skipped && r.status != Status::NotStarted {
            _ = write!(text, " ({})", time::duration(r.duration));
        }
        if r.attempts > 1 {
            _ = write!(text, " after {} attempts", r.attempts);
        }
        if let Some(e) = &r.error
            && r.status != Status::Succeeded
        {
            _ = write!(text, ": {e}");
        }
        self.paint(r.status, text)
    }

    /// Leaves the terminal clean.
    pub fn finish(&mut self) {
        self.clear();
        self.flush();
    }
}

/// The last `n` lines of a file.
fn tail(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect()
}

/// How often the live area is redrawn.
pub(crate) const TICK: Duration = Duration::from_millis(120);
