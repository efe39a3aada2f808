//! The run's writes to the store, off the run's critical path.
//!
//! One thread owns the store's connection and applies the writes in the order they were
//! sent; the dispatcher and the step tasks never wait for SQLite between a step's end and
//! the next step's start. Writes that come within a few milliseconds of each other share
//! one commit (a short step makes two writes, and each commit writes whole pages to the
//! WAL), and only the first write of such a batch wakes the thread: the rest are picked up
//! when it looks again. [`Recorder::flush`] waits for everything sent so far, which the
//! run does before it reports its end, so that whoever reads the store then (the CLI,
//! `wharf stop`, a retry) sees the whole run.

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

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// The thread waits for a first job and must be woken for one.
    idle: bool,
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
                while let Some(batch) = next_batch(&inner) {
                    apply(&store, batch, &events, &inner);
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

    fn push(&self, job: Job) {
        let urgent = matches!(job, Job::Flush(_) | Job::Call(_));
        let Ok(mut q) = self.shared.queue.lock() else {
            return;
        };
        q.jobs.push(job);
        if q.idle || urgent {
            q.idle = false;
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

    /// Queues a write that must not wait for others to share its commit: what lets
    /// `wharf cleanup` find a step's processes if wharf is killed right after it spawned them.
    pub fn record_now(
        &self,
        what: &'static str,
        write: impl Fn(&Store) -> wharf_store::Result<()> + Send + 'static,
    ) {
        self.push(Job::Write(what, Box::new(write)));
        // A flush nobody waits for: the thread commits at once instead of lingering.
        let (done, _) = tokio::sync::oneshot::channel();
        self.push(Job::Flush(Done::Task(done)));
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
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

/// Waits for a first job, then up to [`LINGER`] for more (not past a flush); None once
/// the recorder is closed and empty.
fn next_batch(shared: &Shared) -> Option<Vec<Job>> {
    let mut q = shared.queue.lock().ok()?;
    while q.jobs.is_empty() {
        if q.closed {
            return None;
        }
        q.idle = true;
        q = shared.wake.wait(q).ok()?;
    }
    q.idle = false;
    let until = Instant::now() + LINGER;
    while !q.closed
        && !q
            .jobs
            .iter()
            .any(|j| matches!(j, Job::Flush(_) | Job::Call(_)))
    {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        q = shared.wake.wait_timeout(q, left).ok()?.0;
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
