//! The in-memory pool of routable keys: a lock-free snapshot the proxy picks from, per-key atomics for
//! the state the proxy learns, the outcome buffer the writer drains, and the incident guard.
//!
//! The database is the truth and this is a cache of it (DESIGN.md §3 rule 4): `reload` reads the
//! `active` and `cooling` keys; a state the proxy decided and has not written yet (newer than the row's
//! `status_changed_at`) survives a reload, so nothing flips back. Picking never touches the database.

pub mod incident;
pub mod select;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;

use crate::db::usage::PoolRow;
use crate::domain::keys::KeyStatus;
use crate::domain::settings::{ProxySettings, Settings};
use crate::domain::usage::{RequestLogRow, StateChange, UsageBatch};
pub use incident::{Incident, IncidentGuard, Verdict};

const ROUTABLE: u8 = 0;
const COOLING: u8 = 1;
const DEAD: u8 = 2;

/// Request-log rows kept in memory while the database cannot take them; beyond, the oldest go.
pub const LOG_BUFFER_CAP: usize = 100_000;

/// One upstream key as the proxy sees it.
pub struct KeySlot {
    pub id: i64,
    pub key: Box<str>,
    balance_bits: AtomicU64,
    state: AtomicU8,
    cooling_until: AtomicI64,
    /// When the proxy last changed this key's state (0 = never).
    changed_at: AtomicI64,
    /// Requests in flight on this key right now.
    pub inflight: AtomicU32,
}

impl KeySlot {
    fn new(id: i64, key: &str) -> Self {
        Self {
            id,
            key: key.into(),
            balance_bits: AtomicU64::new(0),
            state: AtomicU8::new(DEAD),
            cooling_until: AtomicI64::new(0),
            changed_at: AtomicI64::new(0),
            inflight: AtomicU32::new(0),
        }
    }

    pub fn balance(&self) -> f64 {
        f64::from_bits(self.balance_bits.load(Ordering::Relaxed))
    }

    /// Whether the key may take a request at `now`.
    pub fn usable(&self, now: i64) -> bool {
        match self.state.load(Ordering::Relaxed) {
            ROUTABLE => true,
            COOLING => self.cooling_until.load(Ordering::Relaxed) <= now,
            _ => false,
        }
    }
}

/// A key as the database has it, merged with what the proxy knows: `None` when it is not `active` or
/// `cooling` (or the proxy has killed it since). A state the proxy decided after the row last
/// changed (not written yet) wins.
fn merge(old: Option<Arc<KeySlot>>, row: &PoolRow) -> Option<Arc<KeySlot>> {
    let cooling = row.status == KeyStatus::Cooling.as_str();
    let routable = cooling || row.status == KeyStatus::Active.as_str();
    let local_newer =
        old.as_ref().is_some_and(|s| s.changed_at.load(Ordering::Relaxed) > row.status_changed_at.unwrap_or(0));
    if local_newer {
        let slot = old?;
        slot.balance_bits.store(row.total_balance.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
        return Some(slot);
    }
    if !routable {
        return None;
    }
    let slot = match old {
        Some(s) if *s.key == *row.key => s,
        _ => Arc::new(KeySlot::new(row.id, &row.key)),
    };
    slot.balance_bits.store(row.total_balance.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
    slot.state.store(if cooling { COOLING } else { ROUTABLE }, Ordering::Relaxed);
    slot.cooling_until.store(row.cooling_until.unwrap_or(0), Ordering::Relaxed);
    Some(slot)
}

/// The keys that were routable when the snapshot was built, with the alias table of their balances for
/// weighted picks in O(1).
#[derive(Default)]
pub struct Snapshot {
    pub slots: Vec<Arc<KeySlot>>,
    alias: Vec<(f32, u32)>,
    pub total_balance: f64,
    /// The earliest end of a cooling period among loaded keys (i64::MAX: none), when a rebuild is due.
    next_cooling_end: i64,
}

/// The settings the proxy reads on every request, kept in memory.
pub struct RuntimeSettings {
    pub settings: Settings,
    /// The upstream base URL in force (`KEYPOOL_UPSTREAM_URL` wins over the setting).
    pub upstream: String,
}

impl RuntimeSettings {
    pub fn proxy(&self) -> &ProxySettings {
        &self.settings.proxy
    }
}

pub struct KeyPool {
    loaded: RwLock<HashMap<i64, Arc<KeySlot>>>,
    snapshot: ArcSwap<Snapshot>,
    cursor: AtomicUsize,
    /// The database change number the loaded keys are current to.
    seq: AtomicI64,
    rebuild_due: AtomicBool,
    runtime: ArcSwap<RuntimeSettings>,
    pending: Mutex<UsageBatch>,
    /// Request-log rows dropped because the buffer was full (the database away for long).
    pub dropped_log_rows: AtomicU64,
    pub incident: IncidentGuard,
    /// Whether the writer last found the database away (to log the change, not every tick).
    pub database_down: AtomicBool,
    /// One flush at a time, so "flushed" means everything taken so far is written.
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
}

impl KeyPool {
    pub fn new(settings: Settings, upstream: String) -> Self {
        Self {
            loaded: RwLock::default(),
            snapshot: ArcSwap::from_pointee(Snapshot { next_cooling_end: i64::MAX, ..Snapshot::default() }),
            cursor: AtomicUsize::new(0),
            seq: AtomicI64::new(0),
            rebuild_due: AtomicBool::new(false),
            runtime: ArcSwap::from_pointee(RuntimeSettings { settings, upstream }),
            pending: Mutex::default(),
            dropped_log_rows: AtomicU64::new(0),
            incident: IncidentGuard::default(),
            database_down: AtomicBool::new(false),
            flush_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn runtime(&self) -> Arc<RuntimeSettings> {
        self.runtime.load_full()
    }

    /// New settings in force; a changed minimum balance reshapes the routable set.
    pub fn set_settings(&self, settings: Settings, upstream: String) {
        let min_changed = self.runtime.load().settings.min_balance != settings.min_balance;
        self.runtime.store(Arc::new(RuntimeSettings { settings, upstream }));
        if min_changed {
            self.rebuild_due.store(true, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Replaces the loaded keys with the database's `active` and `cooling` ones (current to change
    /// number `seq`), keeping states the proxy decided since the row was last changed, then rebuilds
    /// the snapshot.
    pub fn reload(&self, rows: Vec<PoolRow>, seq: i64, now: i64) {
        {
            let Ok(mut loaded) = self.loaded.write() else { return };
            let mut next = HashMap::with_capacity(rows.len());
            for row in rows {
                let old = loaded.remove(&row.id);
                if let Some(slot) = merge(old, &row) {
                    next.insert(row.id, slot);
                }
            }
            *loaded = next;
        }
        self.seq.store(seq, Ordering::Relaxed);
        self.rebuild(now);
    }

    /// Applies the keys changed (any state) and deleted since the last load, current to `seq`.
    pub fn apply_changes(&self, rows: Vec<PoolRow>, deleted: &[i64], seq: i64, now: i64) {
        if rows.is_empty() && deleted.is_empty() {
            self.seq.store(seq, Ordering::Relaxed);
            return;
        }
        {
            let Ok(mut loaded) = self.loaded.write() else { return };
            for id in deleted {
                loaded.remove(id);
            }
            for row in rows {
                let old = loaded.remove(&row.id);
                if let Some(slot) = merge(old, &row) {
                    loaded.insert(row.id, slot);
                }
            }
        }
        self.seq.store(seq, Ordering::Relaxed);
        self.rebuild(now);
    }

    /// The change number the loaded keys are current to.
    pub fn seq(&self) -> i64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Rebuilds the snapshot from the loaded keys (no database).
    pub fn rebuild(&self, now: i64) {
        self.rebuild_due.store(false, Ordering::Relaxed);
        let min_balance = self.runtime.load().settings.min_balance;
        let Ok(loaded) = self.loaded.read() else { return };
        let mut slots: Vec<Arc<KeySlot>> = Vec::with_capacity(loaded.len());
        let mut next_cooling_end = i64::MAX;
        for slot in loaded.values() {
            if slot.balance() <= min_balance {
                continue;
            }
            if slot.usable(now) {
                slots.push(slot.clone());
            } else if slot.state.load(Ordering::Relaxed) == COOLING {
                next_cooling_end = next_cooling_end.min(slot.cooling_until.load(Ordering::Relaxed));
            }
        }
        drop(loaded);
        slots.sort_unstable_by_key(|s| s.id);
        let weights: Vec<f64> = slots.iter().map(|s| s.balance().max(0.01)).collect();
        let alias = select::alias_table(&weights);
        let total_balance = slots.iter().map(|s| s.balance()).sum();
        self.snapshot.store(Arc::new(Snapshot { slots, alias, total_balance, next_cooling_end }));
    }

    /// Whether the snapshot should be rebuilt now (a state changed, or a cooling period ended).
    pub fn rebuild_due(&self, now: i64) -> bool {
        self.rebuild_due.load(Ordering::Relaxed) || self.snapshot.load().next_cooling_end <= now
    }

    /// Picks a usable key not in `tried`, by the strategy in force. O(1) or O(log n) per pick; a linear
    /// scan only when most keys of the snapshot died since it was built.
    pub fn pick(&self, tried: &[i64], now: i64) -> Option<Arc<KeySlot>> {
        let strategy = self.runtime.load().settings.proxy.selection_strategy;
        let snap = self.snapshot.load();
        select::pick(&snap.slots, &snap.alias, strategy, &self.cursor, tried, now)
    }

    /// When the first cooling key may be used again (for `Retry-After`), if any is cooling.
    pub fn next_cooling_end(&self) -> Option<i64> {
        let end = self.snapshot.load().next_cooling_end;
        (end != i64::MAX).then_some(end)
    }

    /// Applies a state the proxy decided for a key, and queues it for the database.
    pub fn change_state(&self, slot: &KeySlot, change: StateChange) {
        let state = match change.status {
            KeyStatus::Cooling => COOLING,
            KeyStatus::Active => ROUTABLE,
            _ => DEAD,
        };
        slot.cooling_until.store(change.cooling_until.unwrap_or(0), Ordering::Relaxed);
        slot.state.store(state, Ordering::Relaxed);
        slot.changed_at.store(change.at, Ordering::Relaxed);
        self.rebuild_due.store(true, Ordering::Relaxed);
        if let Ok(mut p) = self.pending.lock() {
            p.change(change);
        }
    }

    /// A loaded key by id.
    pub fn slot(&self, id: i64) -> Option<Arc<KeySlot>> {
        self.loaded.read().ok()?.get(&id).cloned()
    }

    /// Whether the proxy has put this key in cooling (and it has not ended by `now`).
    pub fn is_cooling(&self, slot: &KeySlot, now: i64) -> bool {
        slot.state.load(Ordering::Relaxed) == COOLING && slot.cooling_until.load(Ordering::Relaxed) > now
    }

    /// Counts one attempt on a key.
    pub fn count_attempt(&self, key_id: i64, failed: bool, at: i64) {
        if let Ok(mut p) = self.pending.lock() {
            p.count_key(key_id, failed, at);
        }
    }

    /// Counts one request of an access key and logs it.
    pub fn log_request(&self, row: RequestLogRow, failed: bool) {
        let Ok(mut p) = self.pending.lock() else { return };
        if let Some(id) = row.access_key_id {
            p.count_access_key(id, failed, row.at);
        }
        if p.log.len() >= LOG_BUFFER_CAP {
            // Drop the oldest tenth at once, so a long outage costs one move per 10,000 requests.
            let n = LOG_BUFFER_CAP / 10;
            p.log.drain(..n);
            self.dropped_log_rows.fetch_add(n as u64, Ordering::Relaxed);
        }
        p.log.push(row);
    }

    /// Takes everything not yet written.
    pub fn take_pending(&self) -> UsageBatch {
        self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }

    /// Takes the pending state changes and log rows (not the counters).
    pub fn take_changes(&self) -> UsageBatch {
        let Ok(mut p) = self.pending.lock() else { return UsageBatch::default() };
        UsageBatch { changes: std::mem::take(&mut p.changes), log: std::mem::take(&mut p.log), ..UsageBatch::default() }
    }

    /// Puts back a batch the database did not take.
    pub fn restore_pending(&self, batch: UsageBatch) {
        if let Ok(mut p) = self.pending.lock() {
            let dropped = p.restore(batch, LOG_BUFFER_CAP);
            self.dropped_log_rows.fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }

    /// Loaded keys by what the proxy knows of them: (routable now, cooling, dead since the load).
    pub fn counts(&self, now: i64) -> (usize, usize, usize) {
        let Ok(loaded) = self.loaded.read() else { return (0, 0, 0) };
        let mut c = (0, 0, 0);
        for s in loaded.values() {
            match s.state.load(Ordering::Relaxed) {
                ROUTABLE => c.0 += 1,
                COOLING if s.cooling_until.load(Ordering::Relaxed) <= now => c.0 += 1,
                COOLING => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_log_buffer_drops_the_oldest_rows_and_counts_them_but_keeps_state_changes() {
        let pool = KeyPool::new(Settings::default(), String::new());
        let slot = KeySlot::new(7, "sk-seven-aaaaaaaaaaaaaaaaaaa");
        pool.change_state(
            &slot,
            StateChange {
                key_id: 7,
                status: KeyStatus::Invalid,
                reason: "HTTP 401".into(),
                at: 1,
                cooling_until: None,
            },
        );
        let row = |at| RequestLogRow {
            at,
            access_key_id: Some(1),
            key_id: Some(7),
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: None,
            status: 200,
            latency_ms: 1,
            ttfb_ms: None,
            attempts: 1,
            error: None,
        };
        for at in 0..(LOG_BUFFER_CAP as i64 + 1) {
            pool.log_request(row(at), false);
        }
        assert_eq!(pool.dropped_log_rows.load(Ordering::Relaxed), (LOG_BUFFER_CAP / 10) as u64);
        let batch = pool.take_pending();
        assert_eq!(batch.log.len(), LOG_BUFFER_CAP - LOG_BUFFER_CAP / 10 + 1);
        assert_eq!(batch.log.first().map(|r| r.at), Some((LOG_BUFFER_CAP / 10) as i64), "the oldest went");
        assert_eq!(batch.changes[&7].status, KeyStatus::Invalid, "state changes are never dropped");
        assert_eq!(batch.access_keys[&1].requests, LOG_BUFFER_CAP as i64 + 1, "and every request is counted");
    }
}
