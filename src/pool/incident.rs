//! The incident guard: when many different keys fail the same transient way within a short window
//! (rate limits, 5xx, connection errors, timeouts), the fault is the upstream's or our IP's, not the
//! keys'. While an incident lasts, the proxy changes no key's state and makes one attempt per request
//! (no failover storm); the dashboard shows a banner. A success, or a quiet back-off period, ends it.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Distinct keys that must fail within [`WINDOW_MS`] to declare an incident.
pub const DISTINCT_KEYS: usize = 5;
pub const WINDOW_MS: i64 = 10_000;
/// How long an incident lasts after its last correlated failure (longer if the upstream's
/// `Retry-After` says so, up to [`MAX_BACKOFF_MS`]).
pub const BACKOFF_MS: i64 = 30_000;
pub const MAX_BACKOFF_MS: i64 = 300_000;

/// An incident in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub since: i64,
    pub until: i64,
    /// The last failure's message, e.g. "HTTP 429: rate limited".
    pub cause: String,
    pub keys: usize,
}

/// What a failure means, seen together with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing unusual: the failure is about this key.
    KeyFault,
    /// An incident is in progress: leave the key alone.
    Incident,
    /// This failure started an incident; the keys that failed in the window (whose cooling, if any,
    /// was the incident's doing and can be undone).
    IncidentStarted(Vec<i64>),
}

impl Verdict {
    pub fn is_incident(&self) -> bool {
        !matches!(self, Self::KeyFault)
    }
}

#[derive(Default)]
struct State {
    recent: VecDeque<(i64, i64)>,
    current: Option<Incident>,
}

#[derive(Default)]
pub struct IncidentGuard {
    state: Mutex<State>,
}

impl IncidentGuard {
    /// Records a correlated-kind failure of `key_id`.
    pub fn record_failure(&self, key_id: i64, at: i64, retry_after_s: Option<u64>, cause: &str) -> Verdict {
        let Ok(mut s) = self.state.lock() else { return Verdict::KeyFault };
        while s.recent.front().is_some_and(|(t, _)| *t < at - WINDOW_MS) {
            s.recent.pop_front();
        }
        s.recent.retain(|(_, k)| *k != key_id);
        s.recent.push_back((at, key_id));
        let backoff = retry_after_s
            .map(|r| (r as i64).saturating_mul(1000).clamp(BACKOFF_MS, MAX_BACKOFF_MS))
            .unwrap_or(BACKOFF_MS);
        let keys = s.recent.len();
        let ongoing = s.current.as_ref().is_some_and(|i| i.until > at);
        if !ongoing && keys < DISTINCT_KEYS {
            return Verdict::KeyFault;
        }
        let since = s.current.as_ref().filter(|_| ongoing).map_or(at, |i| i.since);
        s.current =
            Some(Incident { since, until: at + backoff, cause: cause.to_owned(), keys: keys.max(DISTINCT_KEYS) });
        if ongoing {
            return Verdict::Incident;
        }
        tracing::warn!(keys, cause, "upstream incident: many keys failing at once; key states are frozen");
        Verdict::IncidentStarted(s.recent.iter().map(|(_, k)| *k).collect())
    }

    /// A request went through: the upstream works, so an incident ends.
    pub fn record_success(&self) {
        if let Ok(mut s) = self.state.lock()
            && s.current.take().is_some()
        {
            s.recent.clear();
            tracing::info!("upstream incident cleared by a successful request");
        }
    }

    /// The incident in progress at `now`, if any.
    pub fn active(&self, now: i64) -> Option<Incident> {
        let s = self.state.lock().ok()?;
        s.current.clone().filter(|i| i.until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_keys_failing_together_is_an_incident_one_key_is_not() {
        let g = IncidentGuard::default();
        for t in 0..20 {
            assert_eq!(g.record_failure(1, t * 100, None, "HTTP 429"), Verdict::KeyFault, "one key failing often");
        }
        for k in 2..=4 {
            assert_eq!(g.record_failure(k, 2_500, None, "HTTP 429"), Verdict::KeyFault);
        }
        assert_eq!(
            g.record_failure(5, 3_000, Some(90), "HTTP 429"),
            Verdict::IncidentStarted(vec![1, 2, 3, 4, 5]),
            "five distinct keys within 10 s"
        );
        assert_eq!(g.record_failure(6, 3_000, None, "HTTP 429"), Verdict::Incident);
        let i = g.active(3_001).unwrap_or_else(|| panic!("incident expected"));
        assert_eq!((i.since, i.until), (3_000, 33_000), "the last failure had no Retry-After");
        assert!(g.active(33_000).is_none(), "it clears after the back-off");
        g.record_failure(6, 4_000, None, "HTTP 503");
        assert!(g.active(4_001).is_some());
        g.record_success();
        assert!(g.active(4_002).is_none());
    }

    #[test]
    fn failures_spread_over_time_are_not_an_incident() {
        let g = IncidentGuard::default();
        for k in 0..10 {
            assert_eq!(g.record_failure(k, k * 3_000, None, "HTTP 500"), Verdict::KeyFault);
        }
    }
}
