//! What each limited access key used in the current minute, day and month, in memory: the proxy asks
//! [`Quota::admit`] before a request (one uncontended lock, O(1)) and adds tokens and cost with
//! [`Quota::record`] when the answer ends. The writer publishes what this instance added since its
//! last tick and reads back the totals of every instance ([`QuotaBook::take`] / [`QuotaBook::settle`]),
//! so a count is `base` (the database's total at the last tick), plus `sent` (written, not read back
//! yet), plus `pending` (added here since): per-minute limits overshoot by at most what the other instances
//! admitted within one tick, and daily and monthly quotas converge within a tick or two.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::domain::access_limits::{AccessLimits, Counts, Period, QuotaDelta, Refusal};

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: i64,
    end: i64,
    base: Counts,
    sent: Counts,
    pending: Counts,
}

impl Window {
    fn total(&self) -> Counts {
        let mut c = self.base;
        c.add(self.sent);
        c.add(self.pending);
        c
    }
}

/// The counts of one access key.
#[derive(Debug, Default)]
pub struct Quota {
    windows: Mutex<[Window; 3]>,
}

/// Moves every window to the one holding `now`, starting a new one at zero.
fn roll(windows: &mut [Window; 3], now: i64, offset_min: i32) {
    for period in Period::ALL {
        let w = &mut windows[period.index()];
        if now >= w.end || now < w.start {
            let (start, end) = period.window(now, offset_min);
            *w = Window { start, end, ..Window::default() };
        }
    }
}

impl Quota {
    /// Admits one more request (counted at once) unless a quota is used up.
    pub fn admit(&self, limits: &AccessLimits, now: i64, offset_min: i32) -> Result<(), Refusal> {
        let Ok(mut w) = self.windows.lock() else { return Ok(()) };
        roll(&mut w, now, offset_min);
        let counts = [w[0].total(), w[1].total(), w[2].total()];
        let bounds = [(w[0].start, w[0].end), (w[1].start, w[1].end), (w[2].start, w[2].end)];
        if let Some(refusal) = limits.over(&counts, &bounds) {
            return Err(refusal);
        }
        for window in w.iter_mut() {
            window.pending.requests += 1;
        }
        Ok(())
    }

    /// Adds the tokens and estimated cost of a finished request.
    pub fn record(&self, tokens: i64, cost: f64, now: i64, offset_min: i32) {
        if tokens == 0 && cost == 0.0 {
            return;
        }
        let Ok(mut w) = self.windows.lock() else { return };
        roll(&mut w, now, offset_min);
        for window in w.iter_mut() {
            window.pending.tokens += tokens;
            window.pending.cost += cost;
        }
    }

    /// The counts of the current minute, day and month, with each window's end (for the bars).
    pub fn usage(&self, now: i64, offset_min: i32) -> [(Counts, i64); 3] {
        let Ok(mut w) = self.windows.lock() else { return [(Counts::default(), now); 3] };
        roll(&mut w, now, offset_min);
        [(w[0].total(), w[0].end), (w[1].total(), w[1].end), (w[2].total(), w[2].end)]
    }

    /// Forgets this minute's and today's counts (the admin's reset; the database rows go too).
    pub fn reset_day(&self) {
        if let Ok(mut w) = self.windows.lock() {
            for period in [Period::Minute, Period::Day] {
                let window = &mut w[period.index()];
                *window = Window { start: window.start, end: window.end, ..Window::default() };
            }
        }
    }

    fn take(&self, id: i64, now: i64, offset_min: i32, out: &mut Vec<QuotaDelta>) {
        let Ok(mut w) = self.windows.lock() else { return };
        roll(&mut w, now, offset_min);
        for period in Period::ALL {
            let window = &mut w[period.index()];
            let pending = std::mem::take(&mut window.pending);
            window.sent.add(pending);
            if !pending.is_zero() {
                out.push(QuotaDelta { access_key_id: id, period, window_start: window.start, counts: pending });
            }
        }
    }

    /// The database's totals are in: they include what was sent.
    fn settle(&self, id: i64, totals: &HashMap<(i64, i64, i64), Counts>) {
        let Ok(mut w) = self.windows.lock() else { return };
        for period in Period::ALL {
            let window = &mut w[period.index()];
            window.base = totals.get(&(id, period.code(), window.start)).copied().unwrap_or_default();
            window.sent = Counts::default();
        }
    }

    /// The write failed: what was sent is pending again.
    fn unsend(&self) {
        if let Ok(mut w) = self.windows.lock() {
            for window in w.iter_mut() {
                let sent = std::mem::take(&mut window.sent);
                window.pending.add(sent);
            }
        }
    }
}

/// The counts of every access key that has a quota.
#[derive(Debug, Default)]
pub struct QuotaBook {
    by_id: RwLock<HashMap<i64, Arc<Quota>>>,
}

impl QuotaBook {
    /// The counts of `id`, kept across reloads of the access keys.
    pub fn for_key(&self, id: i64) -> Arc<Quota> {
        if let Some(q) = self.by_id.read().ok().and_then(|m| m.get(&id).cloned()) {
            return q;
        }
        let Ok(mut map) = self.by_id.write() else { return Arc::default() };
        map.entry(id).or_default().clone()
    }

    pub fn get(&self, id: i64) -> Option<Arc<Quota>> {
        self.by_id.read().ok()?.get(&id).cloned()
    }

    /// Keeps only the keys that still have a quota.
    pub fn retain(&self, ids: &std::collections::HashSet<i64>) {
        if let Ok(mut map) = self.by_id.write() {
            map.retain(|id, _| ids.contains(id));
        }
    }

    fn all(&self) -> Vec<(i64, Arc<Quota>)> {
        self.by_id.read().map(|m| m.iter().map(|(id, q)| (*id, q.clone())).collect()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.read().map(|m| m.is_empty()).unwrap_or(true)
    }

    /// What was added since the last tick (now counted as sent), and the ids whose totals to read.
    pub fn take(&self, now: i64, offset_min: i32) -> (Vec<QuotaDelta>, Vec<i64>) {
        let mut deltas = Vec::new();
        let mut ids = Vec::new();
        for (id, q) in self.all() {
            q.take(id, now, offset_min, &mut deltas);
            ids.push(id);
        }
        (deltas, ids)
    }

    /// Totals by (access key, period code, window start), read after the write.
    pub fn settle(&self, totals: &HashMap<(i64, i64, i64), Counts>) {
        for (id, q) in self.all() {
            q.settle(id, totals);
        }
    }

    pub fn unsend(&self) {
        for (_, q) in self.all() {
            q.unsend();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::access_limits::Limit;

    fn limits() -> AccessLimits {
        AccessLimits { rpm: Some(3), tpd: Some(100), ..AccessLimits::default() }
    }

    #[test]
    fn admits_up_to_the_limit_then_refuses_until_the_window_ends() {
        let q = Quota::default();
        for _ in 0..3 {
            assert!(q.admit(&limits(), 1_000, 0).is_ok());
        }
        let refused = q.admit(&limits(), 59_999, 0).unwrap_err();
        assert!(matches!(refused, Refusal::Quota { limit: Limit::Rpm, resets_at: 60_000, .. }));
        assert!(q.admit(&limits(), 60_000, 0).is_ok());
        q.record(150, 0.0, 60_001, 0);
        let refused = q.admit(&limits(), 60_002, 0).unwrap_err();
        assert!(matches!(refused, Refusal::Quota { limit: Limit::Tpd, resets_at: 86_400_000, .. }));
    }

    #[test]
    fn other_instances_counts_arrive_with_the_totals_and_nothing_is_counted_twice() {
        let book = QuotaBook::default();
        let q = book.for_key(7);
        q.admit(&limits(), 1_000, 0).unwrap();
        let (deltas, ids) = book.take(1_100, 0);
        assert_eq!(ids, vec![7]);
        assert_eq!(deltas.len(), 3);
        assert!(deltas.iter().all(|d| d.counts.requests == 1));
        // Counted while the write is on its way.
        assert_eq!(q.usage(1_100, 0)[0].0.requests, 1);
        q.admit(&limits(), 1_200, 0).unwrap();
        // The database now holds ours (1) and another instance's (1).
        let totals: HashMap<_, _> = Period::ALL
            .iter()
            .map(|p| ((7, p.code(), p.window(1_000, 0).0), Counts { requests: 2, ..Counts::default() }))
            .collect();
        book.settle(&totals);
        assert_eq!(q.usage(1_300, 0)[0].0.requests, 3);
        assert!(q.admit(&limits(), 1_300, 0).is_err());
        // A failed write puts what was sent back to pending.
        let (deltas, _) = book.take(1_400, 0);
        assert!(deltas.iter().all(|d| d.counts.requests == 1));
        book.unsend();
        let (deltas, _) = book.take(1_500, 0);
        assert!(deltas.iter().all(|d| d.counts.requests == 1));
        q.reset_day();
        assert_eq!(q.usage(1_600, 0)[1].0.requests, 0);
        assert_eq!(q.usage(1_600, 0)[2].0.requests, 3);
    }
}
