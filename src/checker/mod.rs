//! Check jobs: one job at a time per instance, run on a thread of its own (the awc client is not
//! `Send`), with its workers, rate cap, retries and intervals; results are written in batches and the
//! progress is read from atomics by the page, the CLI and the schedule.

pub mod client;
pub mod recheck;
pub mod schedule;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use crate::db::{self, DbPool};
pub use crate::domain::checks::Progress;
use crate::domain::checks::{CheckOutcome, CheckParams, Interval, OutcomeClass};
use crate::domain::clock::Clock;
use client::SiliconFlow;

/// Everything a job needs besides its keys and parameters.
#[derive(Clone)]
pub struct JobContext {
    pub db: DbPool,
    pub clock: Clock,
    pub upstream: String,
    pub timeout: Duration,
    pub probe_model: Option<String>,
    pub min_balance: f64,
}

impl JobContext {
    /// The context of a job: the store, the clock, the upstream in force and the check settings.
    pub fn new(db: DbPool, clock: Clock, upstream: String, settings: &crate::domain::settings::Settings) -> Self {
        Self {
            db,
            clock,
            upstream,
            timeout: Duration::from_secs(settings.check_timeout_secs as u64),
            probe_model: settings.check_probe_model.clone(),
            min_balance: settings.min_balance,
        }
    }
}

/// The live state of a job, shared with whoever shows it.
pub struct Job {
    pub id: u64,
    pub total: usize,
    /// What the job covers, as a catalogue key (`checks.scope.all`, `checks.scope.scheduled` …): each
    /// viewer reads it in their own language, whoever started the job.
    pub label: String,
    /// The parameters it runs with.
    pub params: CheckParams,
    processed: AtomicUsize,
    counts: [AtomicUsize; 4],
    started: Instant,
    /// When the job finished (`None` while it runs); waiters are woken when it is set.
    finished: watch::Sender<Option<Instant>>,
    /// Set once when the job is asked to stop; workers waiting on it wake at once.
    stop: watch::Sender<bool>,
    stopped: AtomicBool,
}

impl Job {
    fn class_index(class: OutcomeClass) -> usize {
        match class {
            OutcomeClass::Active => 0,
            OutcomeClass::Depleted => 1,
            OutcomeClass::Invalid => 2,
            OutcomeClass::Transient => 3,
        }
    }

    pub fn progress(&self) -> Progress {
        let finished = *self.finished.borrow();
        let elapsed = finished.unwrap_or_else(Instant::now).duration_since(self.started);
        let processed = self.processed.load(Ordering::Relaxed);
        let speed = if elapsed.as_secs_f64() > 0.0 { processed as f64 / elapsed.as_secs_f64() } else { 0.0 };
        let remaining = self.total.saturating_sub(processed);
        let eta = (finished.is_none() && speed > 0.0).then(|| Duration::from_secs_f64(remaining as f64 / speed));
        Progress {
            id: self.id,
            label: self.label.clone(),
            total: self.total,
            processed,
            counts: OutcomeClass::ALL
                .iter()
                .map(|c| (*c, self.counts[Self::class_index(*c)].load(Ordering::Relaxed)))
                .collect(),
            elapsed,
            speed,
            eta,
            running: finished.is_none(),
            stopped: self.stopped.load(Ordering::Relaxed),
        }
    }

    pub fn is_running(&self) -> bool {
        self.finished.borrow().is_none()
    }

    /// Asks the job to stop: no new request starts, requests in flight are abandoned, every result
    /// already obtained is written.
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits until the job has finished or `deadline` passed; true when it finished.
    pub async fn wait_finished(&self, deadline: Duration) -> bool {
        let mut finished = self.finished.subscribe();
        let done = finished.wait_for(|f| f.is_some());
        matches!(actix_web::rt::time::timeout(deadline, done).await, Ok(Ok(_)))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartError {
    #[error("a check job is already running")]
    AlreadyRunning,
    #[error("there is nothing to check")]
    Empty,
    #[error("cannot start the job thread: {0}")]
    Thread(String),
}

/// The instance's check jobs: the current (or last) one.
#[derive(Default)]
pub struct Checker {
    current: Mutex<Option<Arc<Job>>>,
    next_id: AtomicU64,
}

impl Checker {
    /// The running job, or the last finished one.
    pub fn current(&self) -> Option<Arc<Job>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    pub fn start(
        &self,
        ctx: JobContext,
        keys: Vec<(i64, String)>,
        params: CheckParams,
        label: &str,
    ) -> Result<Arc<Job>, StartError> {
        if keys.is_empty() {
            return Err(StartError::Empty);
        }
        let mut current = self.current.lock().map_err(|_| StartError::Thread("lock poisoned".into()))?;
        if current.as_ref().is_some_and(|j| j.is_running()) {
            return Err(StartError::AlreadyRunning);
        }
        let job = Arc::new(Job {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            total: keys.len(),
            label: label.to_owned(),
            params,
            processed: AtomicUsize::new(0),
            counts: Default::default(),
            started: Instant::now(),
            finished: watch::channel(None).0,
            stop: watch::channel(false).0,
            stopped: AtomicBool::new(false),
        });
        let running = job.clone();
        std::thread::Builder::new()
            .name(format!("check-job-{}", job.id))
            .spawn(move || {
                actix_web::rt::System::new().block_on(run(ctx, keys, params, running.clone()));
                running.finished.send_replace(Some(Instant::now()));
            })
            .map_err(|e| StartError::Thread(e.to_string()))?;
        *current = Some(job.clone());
        Ok(job)
    }
}

/// Spaces requests `1/rate` apart across all workers of a job (they share one thread).
struct Pacer {
    gap: Option<Duration>,
    next: Cell<Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        Self { gap: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)), next: Cell::new(Instant::now()) }
    }

    async fn wait(&self) {
        let Some(gap) = self.gap else { return };
        let now = Instant::now();
        let slot = self.next.get().max(now);
        self.next.set(slot + gap);
        if slot > now {
            actix_web::rt::time::sleep_until(slot.into()).await;
        }
    }
}

/// Sleeps `d`, waking early when the job is stopped; false when stopped.
async fn pause(d: Duration, job: &Job) -> bool {
    tokio::select! {
        _ = actix_web::rt::time::sleep(d) => !job.stopping(),
        _ = stop_requested(job) => false,
    }
}

/// Resolves when the job is asked to stop (at once if it already was).
async fn stop_requested(job: &Job) {
    let mut stop = job.stop.subscribe();
    // The job holds the sender, so the channel cannot close while it is awaited.
    let _ = stop.wait_for(|s| *s).await;
}

fn interval_of(interval: Interval) -> Duration {
    match interval {
        Interval::Fixed(d) => d,
        Interval::Random { min, max } if max > min => {
            Duration::from_millis(rand::rng().random_range(min.as_millis() as u64..=max.as_millis() as u64))
        }
        Interval::Random { min, .. } => min,
    }
}

struct Shared {
    client: SiliconFlow,
    queue: RefCell<VecDeque<(i64, String)>>,
    pacer: Pacer,
    params: CheckParams,
}

/// One worker: takes keys until none is left or the job stops.
async fn worker(shared: Rc<Shared>, job: Arc<Job>, results: tokio::sync::mpsc::UnboundedSender<(i64, CheckOutcome)>) {
    loop {
        if job.stopping() {
            return;
        }
        let Some((id, key)) = shared.queue.borrow_mut().pop_front() else { return };
        let mut attempt = 0;
        let outcome = loop {
            shared.pacer.wait().await;
            let outcome = tokio::select! {
                outcome = shared.client.check(&key) => outcome,
                _ = stop_requested(&job) => return,
            };
            if matches!(outcome, CheckOutcome::Transient(_)) && attempt < shared.params.retries {
                attempt += 1;
                if !pause(shared.params.retry_interval, &job).await {
                    return;
                }
                continue;
            }
            break outcome;
        };
        if results.send((id, outcome)).is_err() {
            return;
        }
        if shared.queue.borrow().is_empty() || !pause(interval_of(shared.params.interval), &job).await {
            return;
        }
    }
}

async fn run(ctx: JobContext, keys: Vec<(i64, String)>, params: CheckParams, job: Arc<Job>) {
    let shared = Rc::new(Shared {
        client: SiliconFlow::new(&ctx.upstream, ctx.timeout, ctx.probe_model.clone()),
        queue: RefCell::new(keys.into()),
        pacer: Pacer::new(params.rate),
        params,
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..params.concurrency {
        actix_web::rt::spawn(worker(shared.clone(), job.clone(), tx.clone()));
    }
    drop(tx);
    // Results are written every 250 ms or 500 results, whichever comes first.
    let mut batch: Vec<(i64, CheckOutcome)> = Vec::new();
    let mut open = true;
    while open {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(250);
        while batch.len() < 500 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(result)) => batch.push(result),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            write(&ctx, std::mem::take(&mut batch), &job).await;
        }
    }
    if job.stopping() {
        job.stopped.store(true, Ordering::Relaxed);
    }
    // The pool's usable balance after the job: one point of the dashboard's trend.
    let (pool, now) = (ctx.db.clone(), ctx.clock.now_ms());
    let snapshot = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        db::checks::snapshot_pool(&mut conn, now).map_err(|e| e.to_string())
    })
    .await;
    if let Ok(Err(e)) = snapshot {
        tracing::warn!(error = %e, "could not record the pool snapshot");
    }
}

async fn write(ctx: &JobContext, batch: Vec<(i64, CheckOutcome)>, job: &Job) {
    for (_, outcome) in &batch {
        job.counts[Job::class_index(outcome.class(ctx.min_balance))].fetch_add(1, Ordering::Relaxed);
    }
    let n = batch.len();
    let pool = ctx.db.clone();
    let (min_balance, now) = (ctx.min_balance, ctx.clock.now_ms());
    let written = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        db::checks::record(&mut conn, &batch, min_balance, now).map_err(|e| e.to_string())
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not record check results"),
        Err(e) => tracing::error!(error = %e, "check writer failed"),
    }
    job.processed.fetch_add(n, Ordering::Relaxed);
}
