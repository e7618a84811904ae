//! What the proxy learns per request, gathered in memory and written in batches: usage counters per
//! upstream key and per access key, key state changes, and request-log rows.

use std::collections::HashMap;

use super::key_state::{BlockKind, Evidence};

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

/// Evidence the proxy learned about a key, to be decided against the state the database has when it
/// is written (the key may have been disabled or checked since).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub key_id: i64,
    pub evidence: Evidence,
    pub reason: String,
    /// When it was learned: a newer change in the database (a check, an admin) wins over it.
    pub at: i64,
}

/// A long (key, model) block the proxy decided, written so a restart and the other instances know it.
#[derive(Debug, Clone, PartialEq)]
pub struct PairBlock {
    pub key_id: i64,
    pub model: String,
    pub kind: BlockKind,
    pub until: i64,
    pub at: i64,
    pub reason: String,
}

/// How a request through `/v1` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The upstream's answer was delivered whole (2xx/3xx).
    Ok,
    /// A mistake of the caller's, passed through (4xx) or refused by keypool (auth, body size).
    CallerError,
    /// Every attempt failed; the caller got the last failure or 502/504.
    UpstreamError,
    /// No key could be tried (503).
    NoKey,
    /// The stream broke after the first byte.
    StreamError,
    /// The caller went away before the end.
    ClientClosed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] =
        [Self::Ok, Self::CallerError, Self::UpstreamError, Self::NoKey, Self::StreamError, Self::ClientClosed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::CallerError => "caller_error",
            Self::UpstreamError => "upstream_error",
            Self::NoKey => "no_key",
            Self::StreamError => "stream_error",
            Self::ClientClosed => "client_closed",
        }
    }
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
    /// Tokens of the answer, when it said (`usage`).
    pub tokens: Option<super::tokens::TokenUsage>,
    /// Estimated cost at the price table's price; `None` without tokens or without a price.
    pub cost: Option<f64>,
    pub outcome: Outcome,
}

/// Everything not yet written. Counters and state changes are merged per key, so their size is
/// bounded by the number of keys; request-log rows are capped by the owner of the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageBatch {
    pub keys: HashMap<i64, Usage>,
    pub access_keys: HashMap<i64, Usage>,
    /// The latest change per key.
    pub changes: HashMap<i64, StateChange>,
    /// The latest block per (key, model).
    pub blocks: HashMap<(i64, String), PairBlock>,
    pub log: Vec<RequestLogRow>,
}

impl UsageBatch {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.access_keys.is_empty()
            && self.changes.is_empty()
            && self.blocks.is_empty()
            && self.log.is_empty()
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

    /// Keeps the later of two blocks of the same pair.
    pub fn block(&mut self, block: PairBlock) {
        let id = (block.key_id, block.model.clone());
        match self.blocks.get(&id) {
            Some(existing) if existing.at > block.at => {}
            _ => {
                self.blocks.insert(id, block);
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
        for (_, b) in older.blocks {
            self.block(b);
        }
        let mut log = older.log;
        log.append(&mut self.log);
        let dropped = log.len().saturating_sub(log_cap);
        log.drain(..dropped);
        self.log = log;
        dropped
    }
}

/// The roll-up periods, in milliseconds (days are UTC days).
pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// Upper bounds (ms) of the roll-ups' latency buckets; one more bucket holds everything longer.
pub const LATENCY_BOUNDS_MS: [i64; 11] = [25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000];
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// What one roll-up row sums: a period's bucket and an outcome, for one access key x model or for all
/// traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RollupKey {
    pub period: i64,
    pub bucket_at: i64,
    pub scope: Scope,
    pub outcome: Outcome,
}

/// Whose traffic a roll-up row sums.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every request (`traffic_rollups`: what the charts over time read).
    All,
    /// One access key (0: none) and model ('': none) (`usage_rollups`).
    Group { access_key_id: i64, model: String },
}

/// The sums of one roll-up row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RollupSums {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: f64,
    pub latency_sum_ms: i64,
    pub latency: [i64; LATENCY_BUCKETS],
}

impl RollupSums {
    pub fn add(&mut self, other: &RollupSums) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost += other.cost;
        self.latency_sum_ms += other.latency_sum_ms;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
    }

    /// The latency (ms) under which a share `q` (0–1) of the requests finished: the upper bound of the
    /// histogram bucket that reaches it (the last, open bucket reads as its lower bound). `None`
    /// without requests.
    pub fn latency_quantile(&self, q: f64) -> Option<i64> {
        let total: i64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (q * total as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return Some(
                    LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]),
                );
            }
        }
        None
    }
}

/// The latency bucket of a request.
pub fn latency_bucket(ms: i64) -> usize {
    LATENCY_BOUNDS_MS.iter().position(|&bound| ms <= bound).unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// The per-minute and per-hour roll-ups of some log rows, in key order (so concurrent writers on
/// one database take row locks in the same order).
pub fn rollups(log: &[RequestLogRow]) -> std::collections::BTreeMap<RollupKey, RollupSums> {
    let mut out = std::collections::BTreeMap::new();
    for row in log {
        let mut sums = RollupSums {
            requests: 1,
            prompt_tokens: row.tokens.map_or(0, |t| t.prompt_tokens),
            completion_tokens: row.tokens.map_or(0, |t| t.completion_tokens),
            cost: row.cost.unwrap_or(0.0),
            latency_sum_ms: row.latency_ms,
            latency: [0; LATENCY_BUCKETS],
        };
        sums.latency[latency_bucket(row.latency_ms)] = 1;
        let group = Scope::Group {
            access_key_id: row.access_key_id.unwrap_or(0),
            model: row.model.clone().unwrap_or_default(),
        };
        for period in [MINUTE, HOUR, DAY] {
            let bucket_at = row.at - row.at.rem_euclid(period);
            for scope in [Scope::All, group.clone()] {
                let key = RollupKey { period, bucket_at, scope, outcome: row.outcome };
                out.entry(key).or_insert_with(RollupSums::default).add(&sums);
            }
        }
    }
    out
}

impl Outcome {
    /// The outcome stored as text (request log, roll-ups); unknown text reads as an upstream error.
    pub fn parse(text: &str) -> Self {
        Self::ALL.into_iter().find(|o| o.as_str() == text).unwrap_or(Self::UpstreamError)
    }

    /// Whether the request failed on keypool's or the upstream's side (not the caller's).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::UpstreamError | Self::NoKey | Self::StreamError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollups_sum_the_rows_of_each_bucket_and_read_quantiles() {
        let mut log = Vec::new();
        for (at, latency, outcome) in [(1_000, 20, Outcome::Ok), (59_999, 80, Outcome::Ok), (60_000, 700, Outcome::Ok)]
        {
            let mut r = row(at);
            r.model = Some("m".into());
            r.access_key_id = Some(3);
            r.latency_ms = latency;
            r.outcome = outcome;
            r.tokens =
                Some(crate::domain::tokens::TokenUsage { prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });
            r.cost = Some(0.5);
            log.push(r);
        }
        let mut failed = row(61_000);
        failed.outcome = Outcome::NoKey;
        log.push(failed);
        let sums = rollups(&log);
        let key = |period, bucket_at, ak, model: &str, outcome| RollupKey {
            period,
            bucket_at,
            scope: Scope::Group { access_key_id: ak, model: model.into() },
            outcome,
        };
        let first_minute = sums[&key(MINUTE, 0, 3, "m", Outcome::Ok)];
        assert_eq!((first_minute.requests, first_minute.prompt_tokens, first_minute.completion_tokens), (2, 4, 10));
        assert_eq!((first_minute.cost, first_minute.latency_sum_ms), (1.0, 100));
        assert_eq!(first_minute.latency_quantile(0.5), Some(25));
        assert_eq!(first_minute.latency_quantile(0.99), Some(100));
        let hour = sums[&key(HOUR, 0, 3, "m", Outcome::Ok)];
        assert_eq!((hour.requests, hour.latency_quantile(0.99)), (3, Some(1_000)));
        assert_eq!(sums[&key(MINUTE, 60_000, 0, "", Outcome::NoKey)].requests, 1);
        let all = |period, bucket_at, outcome| RollupKey { period, bucket_at, scope: Scope::All, outcome };
        assert_eq!(sums[&all(DAY, 0, Outcome::Ok)].requests, 3);
        assert_eq!(sums[&all(MINUTE, 0, Outcome::Ok)], first_minute);
        // Minutes: 3 group rows + 3 all rows; hours and days: 2 + 2 each.
        assert_eq!(sums.len(), 14);
        assert_eq!(RollupSums::default().latency_quantile(0.5), None);
        assert_eq!(latency_bucket(1_000_000), LATENCY_BUCKETS - 1);
        assert_eq!(Outcome::parse("no_key"), Outcome::NoKey);
    }

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
            tokens: None,
            cost: None,
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn merges_counters_keeps_latest_change_and_caps_the_log() {
        let mut older = UsageBatch::default();
        older.count_key(1, false, 10);
        older.count_key(1, true, 20);
        older.change(StateChange {
            key_id: 1,
            evidence: Evidence::RateLimited { model: None, daily: false, until: 80 },
            reason: "429".into(),
            at: 20,
        });
        older.log.extend([row(1), row(2)]);
        let mut newer = UsageBatch::default();
        newer.count_key(1, false, 30);
        newer.change(StateChange { key_id: 1, evidence: Evidence::KeyInvalid, reason: "401".into(), at: 30 });
        newer.log.extend([row(3), row(4)]);
        let dropped = newer.restore(older, 3);
        assert_eq!(dropped, 1);
        assert_eq!(newer.keys[&1], Usage { requests: 3, failures: 1, last_used_at: 30 });
        assert_eq!(newer.changes[&1].evidence, Evidence::KeyInvalid);
        assert_eq!(newer.log.iter().map(|r| r.at).collect::<Vec<_>>(), [2, 3, 4]);
    }
}
