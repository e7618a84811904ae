//! Background loops under supervision: each loop's task handle is kept, each tick is recorded (wall
//! time, in atomics), and a loop that panics or ends is restarted after a backoff, loudly
//! (`tracing::error!`) and counted. A loop that dies [`GIVE_UP_AFTER`] times in a row, each time within
//! [`STEADY`] of its start, or that is stopped for good, stays dead: `/healthz` then answers 503 naming
//! it, as it does for a loop whose last tick is far too old (stuck). `/metrics` shows every loop's last
//! tick and restarts.
//!
//! Loops run on the actix runtime's local set (`actix_web::rt::spawn`): their futures need not be `Send`.

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a loop's body is: one long-running future, started again on each restart.
pub type LoopFuture = Pin<Box<dyn Future<Output = ()>>>;

/// A loop that ran this long before dying is restarted with the first backoff again.
pub const STEADY: Duration = Duration::from_secs(60);
/// Deaths in a row, each within [`STEADY`] of the start, after which a loop is left dead.
pub const GIVE_UP_AFTER: u32 = 5;
/// The longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A loop is stale (stuck) when its last tick is older than this many periods, and never sooner than
/// [`MIN_STALE`]: a tick may wait for a slow database (a big prune, a catch-up after a large import).
const STALE_PERIODS: u32 = 10;
const MIN_STALE: Duration = Duration::from_secs(120);

const RUNNING: u8 = 0;
const RESTARTING: u8 = 1;
const DEAD: u8 = 2;

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One supervised loop's record.
struct Loop {
    name: &'static str,
    stale_after: Duration,
    /// Wall time of the last tick (ms since the epoch); 0 before the first.
    last_tick_ms: AtomicI64,
    /// Wall time the current run started.
    started_ms: AtomicI64,
    restarts: AtomicU64,
    state: AtomicU8,
    stopped: AtomicBool,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Loop {
    fn abort(&self) -> bool {
        match self.task.lock().ok().and_then(|t| t.clone()) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }
}

/// Handed to a loop's body: it calls [`Ticker::tick`] once per round.
#[derive(Clone)]
pub struct Ticker(Arc<Loop>);

impl Ticker {
    /// Records that the loop is alive and starting a round now.
    pub fn tick(&self) {
        self.0.last_tick_ms.store(wall_ms(), Ordering::Relaxed);
    }
}

/// What `/healthz` and `/metrics` say about one loop.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoopReport {
    pub name: &'static str,
    /// `running`, `restarting` (waiting out the backoff) or `dead`.
    pub state: &'static str,
    /// Wall time of the last tick (ms since the epoch), if it ticked.
    pub last_tick_at_ms: Option<i64>,
    /// Since the last tick (or since the start, before the first tick).
    pub last_tick_age_ms: i64,
    pub restarts: u64,
    /// False when the loop is dead or its last tick is far too old.
    pub healthy: bool,
}

impl LoopReport {
    /// Why the loop is not healthy, in one line.
    pub fn problem(&self) -> Option<String> {
        match (self.healthy, self.state) {
            (true, _) => None,
            (false, "dead") => Some(format!("background loop `{}` is dead", self.name)),
            (false, _) => {
                Some(format!("background loop `{}` has not ticked for {} s", self.name, self.last_tick_age_ms / 1000))
            }
        }
    }
}

/// The instance's background loops.
pub struct Supervisor {
    loops: Mutex<Vec<Arc<Loop>>>,
    first_backoff: Duration,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::with_backoff(Duration::from_secs(1))
    }
}

impl Supervisor {
    /// A supervisor whose first restart waits `first_backoff` (doubling up to 30 s).
    pub fn with_backoff(first_backoff: Duration) -> Self {
        Self { loops: Mutex::new(Vec::new()), first_backoff }
    }

    /// Starts a loop ticking about every `period` and keeps it running: `body` makes its future,
    /// again after each death.
    pub fn spawn<F>(&self, name: &'static str, period: Duration, body: F)
    where
        F: Fn(Ticker) -> LoopFuture + 'static,
    {
        let entry = Arc::new(Loop {
            name,
            stale_after: (period * STALE_PERIODS).max(MIN_STALE),
            last_tick_ms: AtomicI64::new(0),
            started_ms: AtomicI64::new(wall_ms()),
            restarts: AtomicU64::new(0),
            state: AtomicU8::new(RUNNING),
            stopped: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        if let Ok(mut loops) = self.loops.lock() {
            loops.push(entry.clone());
        }
        actix_web::rt::spawn(supervise(entry, body, self.first_backoff));
    }

    fn find(&self, name: &str) -> Option<Arc<Loop>> {
        self.loops.lock().ok()?.iter().find(|l| l.name == name).cloned()
    }

    /// Kills the loop's running task, as a crash would: it is restarted after the backoff and counted.
    /// False when there is no such loop running.
    pub fn kill(&self, name: &str) -> bool {
        self.find(name).is_some_and(|l| l.abort())
    }

    /// Stops the loop for good (it is reported dead). False when there is no such loop.
    pub fn stop(&self, name: &str) -> bool {
        let Some(entry) = self.find(name) else { return false };
        entry.stopped.store(true, Ordering::SeqCst);
        entry.state.store(DEAD, Ordering::SeqCst);
        entry.abort();
        tracing::error!(r#loop = name, "background loop `{name}` stopped for good");
        true
    }

    /// Every loop, in the order they were started.
    pub fn report(&self) -> Vec<LoopReport> {
        let now = wall_ms();
        let loops = self.loops.lock().map(|l| l.clone()).unwrap_or_default();
        loops.iter().map(|l| report_of(l, now)).collect()
    }

    /// The loops' part of `/metrics`.
    pub fn render(&self, out: &mut String) {
        let report = self.report();
        out.push_str(
            "# HELP keypool_loop_last_tick_seconds When each background loop last ticked (Unix time; 0: never).\n\
             # TYPE keypool_loop_last_tick_seconds gauge\n",
        );
        for r in &report {
            let at = r.last_tick_at_ms.unwrap_or(0) as f64 / 1000.0;
            let _ = writeln!(out, "keypool_loop_last_tick_seconds{{loop=\"{}\"}} {at}", r.name);
        }
        out.push_str(
            "# HELP keypool_loop_restarts_total Restarts of each background loop after it panicked or ended.\n\
             # TYPE keypool_loop_restarts_total counter\n",
        );
        for r in &report {
            let _ = writeln!(out, "keypool_loop_restarts_total{{loop=\"{}\"}} {}", r.name, r.restarts);
        }
        out.push_str(
            "# HELP keypool_loop_up Whether each background loop runs and ticks (0: dead or stuck).\n\
             # TYPE keypool_loop_up gauge\n",
        );
        for r in &report {
            let _ = writeln!(out, "keypool_loop_up{{loop=\"{}\"}} {}", r.name, u8::from(r.healthy));
        }
    }
}

fn report_of(l: &Loop, now: i64) -> LoopReport {
    let last = l.last_tick_ms.load(Ordering::Relaxed);
    let since = if last > 0 { last } else { l.started_ms.load(Ordering::Relaxed) };
    let age = (now - since).max(0);
    let state = match l.state.load(Ordering::SeqCst) {
        RUNNING => "running",
        RESTARTING => "restarting",
        _ => "dead",
    };
    LoopReport {
        name: l.name,
        state,
        last_tick_at_ms: (last > 0).then_some(last),
        last_tick_age_ms: age,
        restarts: l.restarts.load(Ordering::Relaxed),
        healthy: state != "dead" && age <= l.stale_after.as_millis() as i64,
    }
}

/// How a run of a loop ended, in words for the log.
fn how_it_ended(result: Result<(), tokio::task::JoinError>) -> String {
    match result {
        Ok(()) => "ended".to_owned(),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-text payload".to_owned());
            format!("panicked: {message}")
        }
        Err(_) => "was killed".to_owned(),
    }
}

/// Runs the loop, restarting it after each death until it is stopped or keeps dying.
async fn supervise<F>(entry: Arc<Loop>, body: F, first_backoff: Duration)
where
    F: Fn(Ticker) -> LoopFuture + 'static,
{
    let name = entry.name;
    let mut rapid_deaths = 0u32;
    loop {
        let started = Instant::now();
        entry.started_ms.store(wall_ms(), Ordering::Relaxed);
        let handle = actix_web::rt::spawn(body(Ticker(entry.clone())));
        if let Ok(mut task) = entry.task.lock() {
            *task = Some(handle.abort_handle());
        }
        let how = how_it_ended(handle.await);
        if entry.stopped.load(Ordering::SeqCst) {
            entry.state.store(DEAD, Ordering::SeqCst);
            return;
        }
        rapid_deaths = if started.elapsed() < STEADY { rapid_deaths + 1 } else { 1 };
        if rapid_deaths >= GIVE_UP_AFTER {
            entry.state.store(DEAD, Ordering::SeqCst);
            tracing::error!(
                r#loop = name,
                "background loop `{name}` {how}, its {rapid_deaths}th death in a row within a minute of starting: \
                 left dead (/healthz answers 503 until the instance restarts)"
            );
            return;
        }
        let backoff = (first_backoff * 2u32.pow(rapid_deaths - 1)).min(MAX_BACKOFF);
        let restarts = entry.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        entry.state.store(RESTARTING, Ordering::SeqCst);
        tracing::error!(r#loop = name, restarts, "background loop `{name}` {how}; restarting it in {backoff:?}");
        actix_web::rt::time::sleep(backoff).await;
        if entry.stopped.load(Ordering::SeqCst) {
            return;
        }
        entry.state.store(RUNNING, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn ticking(t: Ticker) -> LoopFuture {
        Box::pin(async move {
            loop {
                t.tick();
                actix_web::rt::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    fn one(s: &Supervisor, name: &str) -> LoopReport {
        let found = s.report().into_iter().find(|r| r.name == name);
        found.unwrap_or_else(|| panic!("{name} is not reported"))
    }

    #[actix_web::test]
    async fn a_killed_loop_is_restarted_and_counted_and_a_stopped_one_is_dead() {
        let s = Supervisor::with_backoff(Duration::from_millis(10));
        s.spawn("ticker", Duration::from_millis(10), ticking);
        until("the first tick", || one(&s, "ticker").last_tick_at_ms.is_some()).await;
        assert!(s.kill("ticker"));
        until("the restart", || one(&s, "ticker").restarts == 1 && one(&s, "ticker").state == "running").await;
        let after = one(&s, "ticker").last_tick_at_ms;
        until("a tick after the restart", || one(&s, "ticker").last_tick_at_ms > after).await;
        assert!(one(&s, "ticker").healthy);
        assert!(s.stop("ticker"));
        let r = one(&s, "ticker");
        assert_eq!((r.state, r.healthy), ("dead", false));
        assert_eq!(r.problem().as_deref(), Some("background loop `ticker` is dead"));
        assert!(!s.kill("nothing") && !s.stop("nothing"));
        let mut metrics = String::new();
        s.render(&mut metrics);
        assert!(metrics.contains("keypool_loop_restarts_total{loop=\"ticker\"} 1"), "{metrics}");
        assert!(metrics.contains("keypool_loop_up{loop=\"ticker\"} 0"), "{metrics}");
    }

    #[actix_web::test]
    async fn a_loop_that_keeps_panicking_is_left_dead() {
        let s = Supervisor::with_backoff(Duration::from_millis(1));
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        s.spawn("crashing", Duration::from_millis(10), move |t| {
            let runs = counted.clone();
            Box::pin(async move {
                t.tick();
                if runs.fetch_add(1, Ordering::SeqCst) < 100 {
                    panic!("deliberate test panic");
                }
            })
        });
        until("the supervisor to give up", || one(&s, "crashing").state == "dead").await;
        let r = one(&s, "crashing");
        assert_eq!(r.restarts, u64::from(GIVE_UP_AFTER - 1));
        assert_eq!(runs.load(Ordering::SeqCst), u64::from(GIVE_UP_AFTER));
        assert!(!r.healthy);
    }

    #[test]
    fn a_loop_is_stale_after_many_periods_and_never_sooner_than_two_minutes() {
        let entry = Loop {
            name: "slow",
            stale_after: (Duration::from_millis(250) * STALE_PERIODS).max(MIN_STALE),
            last_tick_ms: AtomicI64::new(1_000_000),
            started_ms: AtomicI64::new(0),
            restarts: AtomicU64::new(0),
            state: AtomicU8::new(RUNNING),
            stopped: AtomicBool::new(false),
            task: Mutex::new(None),
        };
        assert!(report_of(&entry, 1_000_000 + 119_000).healthy);
        let stale = report_of(&entry, 1_000_000 + 121_000);
        assert!(!stale.healthy);
        assert_eq!(stale.problem().as_deref(), Some("background loop `slow` has not ticked for 121 s"));
    }
}
