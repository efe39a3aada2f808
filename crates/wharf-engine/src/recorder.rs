//! The run's writes to the store, off the run's critical path.
//!
//! One thread owns the store's connection and applies the writes in the order they were
//! sent; the dispatcher and the step tasks never wait for SQLite between a step's end and
//! the next step's start. Writes that come within a few milliseconds of each other share
//! one commit (a short step makes two writes, and each commit writes whole pages to the
//! WAL). The thread is woken only when it waits for a first write, or when it lingers
//! and a write must not wait (a flush, a call): for a few milliseconds after each commit
//! it lingers, so that the writes of a chain of short steps share a commit and a wake-up
//! every few milliseconds, not one each.
//! [`Recorder::flush`] waits for everything sent so far, which the run does before it
//! reports its end, so that whoever reads the store then (the CLI, `wharf stop`, a
//! retry) sees the whole run.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use wharf_store::Store;

use crate::Event;

/// How long the recorder waits for more writes to commit together.
const LINGER: Duration = Duration::from_millis(5);

/// A write; it can be applied again when its batch was undone (a full disk).
type Write = Box<dyn Fn(&Store) -> wharf_store::Result<()> + Send>;

enum Job {
    Write(&'static str, Write),
    Flush(Done),
    /// Work that needs its answer (a sub-DAG run's record): run on the thread's
    /// connection after the writes sent before it, in a transaction of its own.
    Call(Box<dyn FnOnce(&Store) + Send>),
}

/// Who waits for a flush: a thread, or a task (which must not block the runtime's thread:
/// the other steps and sub-DAG runs of the process run on it).
enum Done {
    Thread(std::sync::mpsc::Sender<()>),
    Task(tokio::sync::oneshot::Sender<()>),
}

impl Done {
    fn send(self) {
        match self {
            Self::Thread(s) => {
                let _ = s.send(());
            }
            Self::Task(s) => {
                let _ = s.send(());
            }
        }
    }
}

impl Job {
    /// Whether the thread must take it at once rather than linger for more.
    fn urgent(&self) -> bool {
        matches!(self, Job::Flush(_) | Job::Call(_))
    }
}

/// What the recorder's thread is doing, for whoever queues a job: whether to wake it.
#[derive(Default, Clone, Copy, PartialEq)]
enum Waits {
    /// Applying a batch (or already woken): it looks at the queue before it waits again.
    #[default]
    Busy,
    /// Waiting for a first job: any job wakes it.
    Idle,
    /// Lingering for more writes to share a commit: only an urgent job wakes it.
    Lingering,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    waits: Waits,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The first write that failed: the record no longer says what the run did.
    failure: Mutex<Option<String>>,
}

pub struct Recorder {
    /// wharf's home, where the store is.
    home: std::path::PathBuf,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    pub fn start(store: Store, events: UnboundedSender<Event>) -> Self {
        let home = store.home().to_path_buf();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            failure: Mutex::new(None),
        });
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wharf-recorder".into())
            .spawn(move || {
                let mut committed = false;
                while let Some(batch) = next_batch(&inner, committed) {
                    apply(&store, batch, &events, &inner);
                    committed = true;
                }
            })
            .ok();
        Self {
            home,
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// wharf's home, where the store is.
    pub fn home(&self) -> &std::path::Path {
        &self.home
    }

    /// Queues a job, waking the thread only when it would not look at the queue by itself
    /// in time.
    fn push(&self, job: Job) {
        let urgent = job.urgent();
        let Ok(mut q) = self.shared.queue.lock() else {
            return;
        };
        q.jobs.push(job);
        let wake = match q.waits {
            Waits::Idle => true,
            Waits::Lingering => urgent,
            Waits::Busy => false,
        };
        if wake {
            q.waits = Waits::Busy;
            // Woken after the lock is let go: a thread woken while it is held would wait
            // for it at once, and need a second wake-up.
            drop(q);
            self.shared.wake.notify_one();
        }
    }

    /// Why the record of the run is incomplete: the first write that failed, if any.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Queues a write; `what` names it if it fails.
    pub fn record(
        &self,
        what: &'static str,
        write: impl Fn(&Store) -> wharf_store::Result<()> + Send + 'static,
    ) {
        self.push(Job::Write(what, Box::new(write)));
    }

    /// Waits until every write sent so far is applied (blocking the thread).
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        self.push(Job::Flush(Done::Thread(done)));
        let _ = wait.recv();
    }

    /// Runs `f` on the recorder's connection once the writes sent before it are applied,
    /// and gives its answer; the runtime's thread is not blocked meanwhile.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Option<T> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.push(Job::Call(Box::new(move |store| {
            let _ = done.send(f(store));
        })));
        answer.await.ok()
    }

    /// Waits until every write sent so far is applied, without blocking the runtime.
    pub async fn flushed(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.push(Job::Flush(Done::Task(done)));
        let _ = wait.await;
    }

    /// Applies what is queued and ends the thread.
    pub fn close(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closed = true;
        }
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

/// The next batch: the jobs queued once an urgent one comes, or [`LINGER`] after the
/// first write came (or after the last commit, when writes came since: they were not
/// woken for). Without jobs it waits for a first one. None once the recorder is closed
/// and empty.
fn next_batch(shared: &Shared, committed: bool) -> Option<Vec<Job>> {
    let mut q = shared.queue.lock().ok()?;
    let mut until = committed.then(|| Instant::now() + LINGER);
    while !q.closed && !q.jobs.iter().any(Job::urgent) {
        let Some(deadline) =
            until.or_else(|| (!q.jobs.is_empty()).then(|| Instant::now() + LINGER))
        else {
            q.waits = Waits::Idle;
            q = shared.wake.wait(q).ok()?;
            continue;
        };
        until = Some(deadline);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if !q.jobs.is_empty() {
                break;
            }
            // Nothing came while lingering: wait for a first job.
            until = None;
            continue;
        }
        q.waits = Waits::Lingering;
        q = shared.wake.wait_timeout(q, left).ok()?.0;
    }
    q.waits = Waits::Busy;
    if q.jobs.is_empty() {
        return None;
    }
    Some(std::mem::take(&mut q.jobs))
}

fn apply(store: &Store, batch: Vec<Job>, events: &UnboundedSender<Event>, shared: &Shared) {
    let mut writes = Vec::new();
    let mut flushed = Vec::new();
    for job in batch {
        match job {
            Job::Write(what, write) => writes.push((what, write)),
            Job::Flush(done) => flushed.push(done),
            Job::Call(call) => {
                // What was sent before the call is applied before it.
                apply_writes(store, std::mem::take(&mut writes), events, shared);
                call(store);
            }
        }
    }
    apply_writes(store, writes, events, shared);
    for done in flushed {
        done.send();
    }
}

fn apply_writes(
    store: &Store,
    writes: Vec<(&'static str, Write)>,
    events: &UnboundedSender<Event>,
    shared: &Shared,
) {
    if writes.is_empty() {
        return;
    }
    let mut errors = commit(store, &writes);
    // The disk is full: the batch is undone, the reserve freed, and the batch applied again.
    if errors.iter().any(|(_, e)| wharf_store::is_full(e)) && store.release_reserve() {
        let _ = events.send(Event::Notice(
            "the disk is full: the space kept in reserve is used to record the run".into(),
        ));
        errors = commit(store, &writes);
    }
    for (what, e) in errors {
        let message = format!("could not record {what}: {e}");
        let _ = events.send(Event::Notice(message.clone()));
        if let Ok(mut f) = shared.failure.lock() {
            f.get_or_insert(message);
        }
    }
}

/// Applies the writes in one transaction; what failed. When the disk is full, nothing of
/// the batch is kept (so that it can be applied again as a whole).
fn commit(
    store: &Store,
    writes: &[(&'static str, Write)],
) -> Vec<(&'static str, wharf_store::Error)> {
    let mut errors = Vec::new();
    let result = store.batch(|| {
        for (what, write) in writes {
            if let Err(e) = write(store) {
                errors.push((*what, e));
            }
        }
        if errors.iter().any(|(_, e)| wharf_store::is_full(e)) {
            store.roll_back();
        }
    });
    if let Err(e) = result {
        errors.push(("the run's state", e));
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use wharf_store::{NewRun, RunKey, Status, Store};

    use super::{Recorder, Waits};

    /// A recorder on a store of its own, with a run of steps `a` to `d`.
    fn recorder() -> (tempfile::TempDir, Recorder, RunKey) {
        let home = tempfile::tempdir().expect("a folder");
        let store = Store::open(home.path()).expect("the store");
        let run = store
            .create_run(&NewRun {
                dag: "d",
                run_id: "r",
                file: Path::new("d.yaml"),
                params: &[],
                log_base: None,
                parent: None,
                queue: None,
            })
            .expect("a run");
        store
            .add_steps(run, &[("a", None), ("b", None), ("c", None), ("d", None)])
            .expect("its steps");
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        (home, Recorder::start(store, events), run)
    }

    /// The step's status as another process sees it in the store.
    fn seen(home: &Path, run: RunKey, step: &str) -> Status {
        let store = Store::open(home).expect("the store");
        let steps = store.steps(run).expect("the steps");
        steps
            .iter()
            .find(|s| s.name == step)
            .map(|s| s.status)
            .expect("the step")
    }

    /// Whether the step is seen running within `within` (polled, without any flush).
    fn seen_running(home: &Path, run: RunKey, step: &str, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if seen(home, run, step) == Status::Running {
                return true;
            }
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn start(recorder: &Recorder, run: RunKey, step: &'static str) {
        recorder.record("the step", move |s| s.start_step(run, step));
    }

    /// Waits until the thread waits for a first job (it lingers a few milliseconds after
    /// a commit, then waits).
    fn until_idle(recorder: &Recorder) {
        let until = Instant::now() + Duration::from_secs(5);
        while recorder.shared.queue.lock().expect("the queue").waits != Waits::Idle {
            assert!(
                Instant::now() < until,
                "the thread never waits for a first job"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn writes_nobody_waits_for_reach_the_store_in_each_state_of_the_thread() {
        let (home, recorder, run) = recorder();
        start(&recorder, run, "a");
        assert!(seen_running(home.path(), run, "a", Duration::from_secs(5)));
        // The thread waits for a first write: the write wakes it.
        until_idle(&recorder);
        start(&recorder, run, "b");
        assert!(seen_running(home.path(), run, "b", Duration::from_secs(5)));
        // Right after that commit it lingers: a write then does not wake it, and lands.
        start(&recorder, run, "c");
        assert!(seen_running(home.path(), run, "c", Duration::from_secs(5)));
        // It is busy with a call when the write comes: it finds the write afterwards.
        let (entered, busy) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let call = std::thread::scope(|scope| {
            let recorder = &recorder;
            let waiting = scope.spawn(move || {
                runtime.block_on(recorder.call(move |_| {
                    entered.send(()).expect("the test waits");
                    held.recv().expect("the test releases the call");
                }))
            });
            busy.recv().expect("the call runs");
            start(recorder, run, "d");
            release.send(()).expect("the call waits");
            waiting.join().expect("the call ends")
        });
        assert!(call.is_some(), "the call ran and answered");
        assert!(seen_running(home.path(), run, "d", Duration::from_secs(5)));
        recorder.close();
    }

    #[test]
    fn a_flush_returns_once_everything_sent_before_it_is_in_the_store() {
        let (home, recorder, run) = recorder();
        for step in ["a", "b", "c"] {
            start(&recorder, run, step);
        }
        recorder.flush();
        for step in ["a", "b", "c"] {
            assert_eq!(seen(home.path(), run, step), Status::Running, "{step}");
        }
        recorder.close();
    }
}
