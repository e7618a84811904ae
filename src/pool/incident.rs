//! The incident guard, judged against traffic: an incident is when the recent attempts — for one model,
//! or overall — fail the transient way (rate limits, 5xx, connection errors, timeouts) across many
//! distinct keys, with no success in between. Then the fault is the upstream's (one model overloaded)
//! or our IP's, not the keys': the proxy makes one attempt per request (no failover storm), takes no
//! key out on its own guess (only where the upstream's `Retry-After` asked), gives back the pairs it
//! had taken out on its guess in the streak, and the dashboard shows a banner. A success ends it.
//!
//! A minority of keys at their own limits in a busy pool is never an incident: their failures are
//! broken up by the successes of the others. The thresholds are settings (`incident_min_keys`,
//! `incident_failure_pct`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// Only attempts within this window count.
pub const WINDOW_MS: i64 = 10_000;
/// Attempts remembered per scope (overall, and each model).
const RING: usize = 64;
/// How long an incident lasts after its last correlated failure without a success (longer if the
/// upstream's `Retry-After` says so, up to [`MAX_BACKOFF_MS`]).
pub const BACKOFF_MS: i64 = 30_000;
pub const MAX_BACKOFF_MS: i64 = 300_000;
/// Models tracked at once (beyond, the least recently failing go).
const MAX_MODELS: usize = 256;

/// An incident in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// The model it is about, or `None` for every model (our IP, the upstream).
    pub model: Option<String>,
    pub since: i64,
    pub until: i64,
    /// The last failure, a stored reason (`domain::reason`), e.g. an upstream 429 and its message.
    pub cause: String,
    /// Distinct keys that failed in the streak.
    pub keys: usize,
}

/// What a failure means, seen together with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing unusual: the failure is about this key (or this key and model).
    KeyFault,
    /// An incident is in progress for this request's model or overall: leave the key alone.
    Incident,
    /// This failure started an incident; the keys that failed in the streak (whose blocks, where
    /// keypool guessed them, can be given back).
    IncidentStarted(Vec<i64>),
}

impl Verdict {
    pub fn is_incident(&self) -> bool {
        !matches!(self, Self::KeyFault)
    }
}

/// The thresholds in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Distinct keys failing in a row.
    pub min_keys: usize,
    /// Share of the window's attempts that failed the transient way, in percent.
    pub failure_pct: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { min_keys: 5, failure_pct: 90 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    at: i64,
    key_id: i64,
    /// A transient-kind failure (true), or anything else (a success, or a failure about the key).
    failed: bool,
    success: bool,
}

#[derive(Default)]
struct Scope {
    ring: VecDeque<Attempt>,
    current: Option<Incident>,
    last_at: i64,
}

impl Scope {
    fn push(&mut self, a: Attempt) {
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(a);
        self.last_at = a.at;
    }

    /// The keys of the failing streak, if the recent attempts make an incident.
    fn judge(&self, now: i64, t: Thresholds) -> Option<Vec<i64>> {
        let recent: Vec<&Attempt> = self.ring.iter().filter(|a| a.at >= now - WINDOW_MS).collect();
        // Enough attempts to judge a share: twice the keys asked for.
        if recent.len() < t.min_keys * 2 {
            return None;
        }
        let failed = recent.iter().filter(|a| a.failed).count();
        if (failed as u64) * 100 < u64::from(t.failure_pct) * recent.len() as u64 {
            return None;
        }
        let mut streak: Vec<i64> = Vec::new();
        for a in recent.iter().rev() {
            if a.success {
                break;
            }
            if a.failed && !streak.contains(&a.key_id) {
                streak.push(a.key_id);
            }
        }
        (streak.len() >= t.min_keys).then_some(streak)
    }
}

#[derive(Default)]
struct State {
    overall: Scope,
    models: HashMap<String, Scope>,
}

#[derive(Default)]
pub struct IncidentGuard {
    state: Mutex<State>,
    /// When the last transient-kind failure was recorded: successes need no lock long after it.
    last_failure_at: AtomicI64,
}

impl IncidentGuard {
    /// Records a transient-kind failure of `key_id` on `model`.
    pub fn record_failure(
        &self,
        key_id: i64,
        model: Option<&str>,
        at: i64,
        retry_after_s: Option<u64>,
        cause: &str,
        t: Thresholds,
    ) -> Verdict {
        self.last_failure_at.store(at, Ordering::Relaxed);
        let Ok(mut s) = self.state.lock() else { return Verdict::KeyFault };
        let attempt = Attempt { at, key_id, failed: true, success: false };
        let backoff = retry_after_s
            .map(|r| (r as i64).saturating_mul(1000).clamp(BACKOFF_MS, MAX_BACKOFF_MS))
            .unwrap_or(BACKOFF_MS);
        let mut verdict = Verdict::KeyFault;
        let State { overall, models } = &mut *s;
        let model_scope = model.map(|m| {
            if !models.contains_key(m) && models.len() >= MAX_MODELS {
                let oldest = models.iter().min_by_key(|(_, sc)| sc.last_at).map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    models.remove(&k);
                }
            }
            (m, models.entry(m.to_owned()).or_default())
        });
        let mut scopes: Vec<(Option<&str>, &mut Scope)> = vec![(None, overall)];
        if let Some((m, sc)) = model_scope {
            scopes.push((Some(m), sc));
        }
        for (name, scope) in scopes {
            scope.push(attempt);
            let ongoing = scope.current.as_ref().is_some_and(|i| i.until > at);
            if ongoing {
                if let Some(i) = scope.current.as_mut() {
                    i.until = i.until.max(at + backoff);
                    i.cause = cause.to_owned();
                }
                if verdict == Verdict::KeyFault {
                    verdict = Verdict::Incident;
                }
                continue;
            }
            if let Some(keys) = scope.judge(at, t) {
                tracing::warn!(
                    keys = keys.len(),
                    model = name.unwrap_or("(all)"),
                    cause,
                    "upstream incident: many keys failing at once; keys are left alone"
                );
                scope.current = Some(Incident {
                    model: name.map(str::to_owned),
                    since: at,
                    until: at + backoff,
                    cause: cause.to_owned(),
                    keys: keys.len(),
                });
                verdict = Verdict::IncidentStarted(keys);
            }
        }
        verdict
    }

    /// An attempt on `model` went through (or failed in a way that is about its key): an incident of
    /// that model and the overall one end, and the streaks are broken.
    pub fn record_success(&self, key_id: i64, model: Option<&str>, at: i64) {
        if at - self.last_failure_at.load(Ordering::Relaxed) > WINDOW_MS + BACKOFF_MS {
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        let attempt = Attempt { at, key_id, failed: false, success: true };
        let State { overall, models } = &mut *s;
        let mut ended = overall.current.take().is_some();
        overall.push(attempt);
        if let Some(scope) = model.and_then(|m| models.get_mut(m)) {
            ended |= scope.current.take().is_some();
            scope.push(attempt);
        }
        if ended {
            tracing::info!("upstream incident cleared by a successful request");
        }
    }

    /// Whether an incident is in progress for `model` (or overall) at `now`.
    pub fn active_for(&self, model: Option<&str>, now: i64) -> bool {
        if now - self.last_failure_at.load(Ordering::Relaxed) > MAX_BACKOFF_MS {
            return false;
        }
        let Ok(s) = self.state.lock() else { return false };
        let live = |sc: &Scope| sc.current.as_ref().is_some_and(|i| i.until > now);
        live(&s.overall) || model.and_then(|m| s.models.get(m)).is_some_and(live)
    }

    /// The incident in progress at `now`, if any: the overall one first, else the widest of a model.
    pub fn active(&self, now: i64) -> Option<Incident> {
        let s = self.state.lock().ok()?;
        let live = |sc: &Scope| sc.current.clone().filter(|i| i.until > now);
        live(&s.overall).or_else(|| s.models.values().filter_map(live).max_by_key(|i| i.keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds { min_keys: 5, failure_pct: 90 };

    #[test]
    fn many_keys_failing_in_a_row_is_an_incident_one_key_is_not() {
        let g = IncidentGuard::default();
        for t in 0..20 {
            assert_eq!(g.record_failure(1, Some("m"), t * 100, None, "HTTP 429", T), Verdict::KeyFault, "one key");
        }
        for k in 2..=4 {
            assert_eq!(g.record_failure(k, Some("m"), 2_500, None, "HTTP 429", T), Verdict::KeyFault);
        }
        assert_eq!(
            g.record_failure(5, Some("m"), 3_000, Some(90), "HTTP 429", T),
            Verdict::IncidentStarted(vec![5, 4, 3, 2, 1]),
            "five distinct keys in a row"
        );
        assert_eq!(g.record_failure(6, Some("m"), 3_000, None, "HTTP 429", T), Verdict::Incident);
        let i = g.active(3_001).unwrap_or_else(|| panic!("incident expected"));
        assert_eq!((i.model, i.since, i.until), (None, 3_000, 93_000), "the upstream's 90 s Retry-After");
        assert!(g.active_for(Some("other"), 3_001), "the overall incident covers every model");
        assert!(g.active(93_000).is_none(), "it clears after the back-off");
        g.record_failure(6, Some("m"), 94_000, None, "HTTP 503", T);
        g.record_success(7, Some("m"), 94_001);
        assert!(g.active(94_002).is_none());
    }

    #[test]
    fn a_minority_failing_among_successes_is_never_an_incident() {
        let g = IncidentGuard::default();
        for i in 0..2_000i64 {
            let key = i % 200;
            if key % 20 == 0 {
                assert_eq!(g.record_failure(key, Some("m"), i, None, "HTTP 429", T), Verdict::KeyFault);
            } else {
                g.record_success(key, Some("m"), i);
            }
        }
        assert!(g.active(2_000).is_none());
    }

    #[test]
    fn one_model_overloaded_is_its_own_incident() {
        let g = IncidentGuard::default();
        let mut started = false;
        for i in 0..12i64 {
            g.record_success(100 + i, Some("free"), i * 10);
            started |= g.record_failure(i, Some("busy"), i * 10 + 5, None, "HTTP 503", T).is_incident();
        }
        assert!(started, "every attempt on `busy` fails across 12 keys");
        assert!(g.active_for(Some("busy"), 200) && !g.active_for(Some("free"), 200));
        assert_eq!(g.active(200).and_then(|i| i.model).as_deref(), Some("busy"));
    }

    #[test]
    fn failures_spread_over_time_are_not_an_incident() {
        let g = IncidentGuard::default();
        for k in 0..10 {
            assert_eq!(g.record_failure(k, None, k * 3_000, None, "HTTP 500", T), Verdict::KeyFault);
        }
    }
}
