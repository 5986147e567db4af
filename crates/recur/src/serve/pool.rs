//! The bounded CPU pool: a fixed set of scoring threads fed by a bounded queue. A full queue
//! is refused at once (a fast 503), so latency never grows without bound; a job whose
//! deadline passed while it waited is dropped unrun.
//!
//! Single-ticket scores are micro-batched: a thread that picks up a score also takes the
//! scores already waiting behind it (up to `max_batch` tickets and `max_events` events, same
//! model) and runs them as one packed batch, which costs less per ticket than batch 1 for the
//! escalation BiGRU. It never waits for a batch to fill, so an idle server answers at batch-1
//! latency. The event cap bounds how long one batch holds a thread (and so the wait of the
//! requests behind it): 256 events take about 2.5 ms with int8 weights on a Zen 3 core.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use recur_data::schema::Ticket;
use tokio::sync::oneshot;

use super::error::ApiError;
use super::model::LoadedModel;

/// One ticket to score with a given model.
struct ScoreTask {
    model: Arc<LoadedModel>,
    ticket: Ticket,
    reply: oneshot::Sender<Result<f64, ApiError>>,
}

enum Task {
    Run(Box<dyn FnOnce() + Send>),
    Score(ScoreTask),
}

/// Scoring threads and their queue.
#[derive(Debug)]
pub struct Pool {
    tx: Sender<(Instant, Task)>,
    queued: Arc<AtomicUsize>,
    workers: usize,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Run(_) => "Run",
            Task::Score(_) => "Score",
        })
    }
}

struct Worker {
    rx: Receiver<(Instant, Task)>,
    batches: Arc<AtomicU64>,
    queued: Arc<AtomicUsize>,
    delay: Duration,
    max_batch: usize,
    max_events: usize,
}

impl Worker {
    fn run(self) {
        let mut next = None;
        loop {
            let (deadline, task) = match next.take() {
                Some(t) => t,
                None => match self.rx.recv() {
                    Ok(t) => t,
                    Err(_) => return,
                },
            };
            self.queued.fetch_sub(1, Ordering::Relaxed);
            if Instant::now() >= deadline {
                continue;
            }
            if !self.delay.is_zero() {
                thread::sleep(self.delay);
            }
            match task {
                // A panicking job drops its reply channel: the request gets a 500.
                Task::Run(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                Task::Score(first) => {
                    let mut events = first.ticket.events.len();
                    let mut batch = vec![first];
                    while batch.len() < self.max_batch {
                        match self.rx.try_recv() {
                            Ok((d, Task::Score(t)))
                                if Arc::ptr_eq(&t.model, &batch[0].model)
                                    && events + t.ticket.events.len() <= self.max_events =>
                            {
                                self.queued.fetch_sub(1, Ordering::Relaxed);
                                if Instant::now() < d {
                                    events += t.ticket.events.len();
                                    batch.push(t);
                                }
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.batches.fetch_add(1, Ordering::Relaxed);
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| score_batch(batch)));
                }
            }
        }
    }
}

/// Scores `batch` together; if that fails (one ticket has a non-finite feature), each alone.
fn score_batch(batch: Vec<ScoreTask>) {
    let model = batch[0].model.clone();
    let tickets: Vec<&Ticket> = batch.iter().map(|t| &t.ticket).collect();
    match model.score_tickets(&tickets) {
        Ok(p) => {
            for (t, p) in batch.into_iter().zip(p) {
                let _ = t.reply.send(Ok(p));
            }
        }
        Err(_) => {
            for t in batch {
                let r = model.score_tickets(&[&t.ticket]).map(|p| p[0]);
                let _ = t.reply.send(r);
            }
        }
    }
}

impl Pool {
    /// `workers` threads and room for `queue` waiting jobs, micro-batching up to `max_batch`
    /// scores of at most `max_events` events in all (a longer ticket runs alone) and counting
    /// model calls in `batches`; every job first sleeps `delay` (zero except in tests that need
    /// a deliberately slow model).
    pub fn new(
        workers: usize,
        queue: usize,
        (max_batch, max_events): (usize, usize),
        delay: Duration,
        batches: Arc<AtomicU64>,
    ) -> Self {
        let (tx, rx) = bounded::<(Instant, Task)>(queue);
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..workers.max(1) {
            let w = Worker {
                rx: rx.clone(),
                batches: batches.clone(),
                queued: queued.clone(),
                delay,
                max_batch: max_batch.max(1),
                max_events,
            };
            thread::Builder::new()
                .name(format!("recur-score-{i}"))
                .spawn(move || w.run())
                .expect("spawn a scoring thread");
        }
        Pool {
            tx,
            queued,
            workers: workers.max(1),
        }
    }

    /// Scoring threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    async fn submit<R>(
        &self,
        timeout: Duration,
        task: Task,
        rx: oneshot::Receiver<Result<R, ApiError>>,
    ) -> Result<R, ApiError> {
        let deadline = Instant::now() + timeout;
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.try_send((deadline, task)) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => ApiError::Overloaded,
                TrySendError::Disconnected(_) => ApiError::Unavailable("the scoring pool stopped".into()),
            });
        }
        let ms = timeout.as_millis() as u64;
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) if Instant::now() < deadline => Err(ApiError::Internal("a scoring job panicked".into())),
            Ok(Err(_)) | Err(_) => Err(ApiError::Timeout(ms)),
        }
    }

    /// Runs `f` on a scoring thread and awaits its result, or fails fast with 503 when the
    /// queue is full and with 504 when `timeout` passes first.
    pub async fn run<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.submit(timeout, Task::Run(job), rx).await
    }

    /// Scores one ticket with `model` (possibly batched with others), with the same limits
    /// as [`Pool::run`].
    pub async fn score(&self, timeout: Duration, model: Arc<LoadedModel>, ticket: Ticket) -> Result<f64, ApiError> {
        let (reply, rx) = oneshot::channel();
        self.submit(timeout, Task::Score(ScoreTask { model, ticket, reply }), rx)
            .await
    }
}
