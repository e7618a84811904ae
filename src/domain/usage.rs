//! What the proxy learns per request, gathered in memory and written in batches: usage counters per
//! upstream key and per access key, key state changes, and request-log rows.

use std::collections::HashMap;

use super::keys::KeyStatus;

/// Requests, failures and the last use of one key (upstream key or access key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub requests: i64,
    pub failures: i64,
    pub last_used_at: i64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.requests += other.requests;
        self.failures += other.failures;
        self.last_used_at = self.last_used_at.max(other.last_used_at);
    }
}

/// A key state change decided by the proxy (invalid, depleted, cooling).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub key_id: i64,
    pub status: KeyStatus,
    pub reason: String,
    /// When it was decided: a newer change in the database (a check, an admin) wins over it.
    pub at: i64,
    /// For `cooling`: when the key may be used again.
    pub cooling_until: Option<i64>,
}

/// One request through `/v1`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestLogRow {
    pub at: i64,
    pub access_key_id: Option<i64>,
    /// The key of the last attempt.
    pub key_id: Option<i64>,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub status: u16,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub attempts: u32,
    pub error: Option<String>,
}

/// Everything not yet written. Counters and state changes are merged per key, so their size is
/// bounded by the number of keys; request-log rows are capped by the owner of the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageBatch {
    pub keys: HashMap<i64, Usage>,
    pub access_keys: HashMap<i64, Usage>,
    /// The latest change per key.
    pub changes: HashMap<i64, StateChange>,
    pub log: Vec<RequestLogRow>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.access_keys.is_empty() && self.changes.is_empty() && self.log.is_empty()
    }

    pub fn count_key(&mut self, key_id: i64, failed: bool, at: i64) {
        self.keys.entry(key_id).or_default().add(Usage { requests: 1, failures: i64::from(failed), last_used_at: at });
    }

    pub fn count_access_key(&mut self, id: i64, failed: bool, at: i64) {
        self.access_keys.entry(id).or_default().add(Usage {
            requests: 1,
            failures: i64::from(failed),
            last_used_at: at,
        });
    }

    /// Keeps the later of two changes of the same key.
    pub fn change(&mut self, change: StateChange) {
        match self.changes.get(&change.key_id) {
            Some(existing) if existing.at > change.at => {}
            _ => {
                self.changes.insert(change.key_id, change);
            }
        }
    }

    /// Puts a batch that could not be written back in front of what arrived since; the log keeps at
    /// most `log_cap` rows, dropping the oldest. Returns how many log rows were dropped.
    pub fn restore(&mut self, older: UsageBatch, log_cap: usize) -> usize {
        for (id, u) in older.keys {
            self.keys.entry(id).or_default().add(u);
        }
        for (id, u) in older.access_keys {
            self.access_keys.entry(id).or_default().add(u);
        }
        for (_, c) in older.changes {
            self.change(c);
        }
        let mut log = older.log;
        log.append(&mut self.log);
        let dropped = log.len().saturating_sub(log_cap);
        log.drain(..dropped);
        self.log = log;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64) -> RequestLogRow {
        RequestLogRow {
            at,
            access_key_id: None,
            key_id: None,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: None,
            status: 200,
            latency_ms: 1,
            ttfb_ms: None,
            attempts: 1,
            error: None,
        }
    }

    #[test]
    fn merges_counters_keeps_latest_change_and_caps_the_log() {
        let mut older = UsageBatch::default();
        older.count_key(1, false, 10);
        older.count_key(1, true, 20);
        older.change(StateChange {
            key_id: 1,
            status: KeyStatus::Cooling,
            reason: "429".into(),
            at: 20,
            cooling_until: Some(80),
        });
        older.log.extend([row(1), row(2)]);
        let mut newer = UsageBatch::default();
        newer.count_key(1, false, 30);
        newer.change(StateChange {
            key_id: 1,
            status: KeyStatus::Invalid,
            reason: "401".into(),
            at: 30,
            cooling_until: None,
        });
        newer.log.extend([row(3), row(4)]);
        let dropped = newer.restore(older, 3);
        assert_eq!(dropped, 1);
        assert_eq!(newer.keys[&1], Usage { requests: 3, failures: 1, last_used_at: 30 });
        assert_eq!(newer.changes[&1].status, KeyStatus::Invalid);
        assert_eq!(newer.log.iter().map(|r| r.at).collect::<Vec<_>>(), [2, 3, 4]);
    }
}
