//! The run's writes to the store, off the run's critical path.
//!
//! One thread owns the store's connection and applies the writes in the order they were
//! sent; the dispatcher and the step tasks never wait for SQLite between a step's end and
//! the next step's start. [`Recorder::flush`] waits for everything sent so far, which the
//! run does before it reports its end, so that whoever reads the store then (the CLI,
//! `wharf stop`, a retry) sees the whole run.

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;
use wharf_store::Store;

use crate::Event;

type Write = Box<dyn FnOnce(&Store) -> wharf_store::Result<()> + Send>;

enum Job {
    Write(&'static str, Write),
    Flush(Sender<()>),
}

pub struct Recorder {
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    pub fn start(store: Store, events: UnboundedSender<Event>) -> Self {
        let (tx, rx) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("wharf-recorder".into())
            .spawn(move || {
                // Whatever queued up while the last commit ran goes in one transaction.
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    jobs.extend(rx.try_iter().take(1000));
                    let mut flushed = Vec::new();
                    let result = store.batch(|| {
                        for job in jobs {
                            match job {
                                Job::Write(what, write) => {
                                    if let Err(e) = write(&store) {
                                        let _ = events.send(Event::Notice(format!(
                                            "could not record {what}: {e}"
                                        )));
                                    }
                                }
                                Job::Flush(done) => flushed.push(done),
                            }
                        }
                    });
                    if let Err(e) = result {
                        let _ = events.send(Event::Notice(format!(
                            "could not record the run's state: {e}"
                        )));
                    }
                    for done in flushed {
                        let _ = done.send(());
                    }
                }
            })
            .ok();
        Self {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(thread),
        }
    }

    /// Queues a write; `what` names it if it fails.
    pub fn record(
        &self,
        what: &'static str,
        write: impl FnOnce(&Store) -> wharf_store::Result<()> + Send + 'static,
    ) {
        if let Ok(jobs) = self.jobs.lock()
            && let Some(tx) = jobs.as_ref()
        {
            let _ = tx.send(Job::Write(what, Box::new(write)));
        }
    }

    /// Waits until every write sent so far is applied.
    pub fn flush(&self) {
        let (done, wait) = channel();
        let sent = self
            .jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.as_ref().map(|tx| tx.send(Job::Flush(done)).is_ok()));
        if sent == Some(true) {
            let _ = wait.recv();
        }
    }

    /// Applies what is queued and ends the thread.
    pub fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}
