//! The in-memory pool of routable keys: a lock-free snapshot the proxy picks from, per-key atomics for
//! the state the proxy learns, per-(key, model) blocks, the outcome buffer the writer drains, and the
//! incident guard.
//!
//! The database is the truth and this is a cache of it (DESIGN.md §3 rule 4): `reload` reads the
//! `active`, `cooling` and `depleted` keys and the long (key, model) blocks; a state the proxy decided
//! and has not written yet (newer than the row's `status_changed_at`) survives a reload, so nothing
//! flips back. Picking never touches the database.
//!
//! Keys with money serve every model; keys without money (`depleted`, or at or below the minimum
//! balance) serve only the free models, which go to them first. A (key, model) block takes the key out
//! for that model only. Picks stay O(1): a model that many keys are blocked for gets its own list of
//! the others at the next rebuild (within one writer tick).

pub mod incident;
pub mod quota;
pub mod select;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;

use crate::db::usage::{BlockRow, Changes, KeyBlocks, PoolRow};
pub use crate::domain::key_state::ModelBlock;
use crate::domain::key_state::{BlockKind, Evidence, KeyStatus, Transition, decide};
use crate::domain::settings::{ProxySettings, Settings};
use crate::domain::tokens::Prices;
use crate::domain::usage::{PairBlock, RequestLogRow, StateChange, UsageBatch};
pub use incident::{Incident, IncidentGuard, Thresholds, Verdict};

const ROUTABLE: u8 = 0;
const COOLING: u8 = 1;
const DEAD: u8 = 2;
/// Valid, without money: free models only.
const FREE_ONLY: u8 = 3;

/// Request-log rows kept in memory while the database cannot take them (or not as fast as they come);
/// beyond, the oldest go (counted in `keypool_request_log_dropped_total`). About 10 MB: a longer
/// buffer only delays the loss when the writer cannot keep up, and it is what grew keypool's memory
/// past 200 MB at saturation (100,000 rows and the batches taken from them).
pub const LOG_BUFFER_CAP: usize = 30_000;
/// A model gets its own list of keys when more than this share (1/n) of the keys are blocked for it.
const OWN_LIST_SHARE: usize = 8;

/// One upstream key as the proxy sees it.
pub struct KeySlot {
    pub id: i64,
    pub key: Box<str>,
    balance_bits: AtomicU64,
    /// The charged part of the balance (for `/v1/user/info`).
    charge_bits: AtomicU64,
    state: AtomicU8,
    cooling_until: AtomicI64,
    /// When the proxy last changed this key's state (0 = never).
    changed_at: AtomicI64,
    /// Requests in flight on this key right now.
    pub inflight: AtomicU32,
    /// Whether `blocks` may hold anything (so an unblocked key costs no lock).
    has_blocks: AtomicBool,
    blocks: Mutex<Vec<ModelBlock>>,
}

impl KeySlot {
    fn new(id: i64, key: &str) -> Self {
        Self {
            id,
            key: key.into(),
            balance_bits: AtomicU64::new(0),
            charge_bits: AtomicU64::new(0),
            state: AtomicU8::new(DEAD),
            cooling_until: AtomicI64::new(0),
            changed_at: AtomicI64::new(0),
            inflight: AtomicU32::new(0),
            has_blocks: AtomicBool::new(false),
            blocks: Mutex::new(Vec::new()),
        }
    }

    pub fn balance(&self) -> f64 {
        f64::from_bits(self.balance_bits.load(Ordering::Relaxed))
    }

    /// The charged (paid-in) part of [`Self::balance`].
    pub fn charge_balance(&self) -> f64 {
        f64::from_bits(self.charge_bits.load(Ordering::Relaxed))
    }

    fn store_balances(&self, row: &PoolRow) {
        self.balance_bits.store(row.total_balance.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
        self.charge_bits.store(row.charge_balance.unwrap_or(0.0).to_bits(), Ordering::Relaxed);
    }

    /// Whether the key may take a request at `now` (as far as its own state goes).
    pub fn usable(&self, now: i64) -> bool {
        match self.state.load(Ordering::Relaxed) {
            ROUTABLE | FREE_ONLY => true,
            COOLING => self.cooling_until.load(Ordering::Relaxed) <= now,
            _ => false,
        }
    }

    /// Whether the (key, `model`) pair is blocked at `now`.
    pub fn blocked_for(&self, model: &str, now: i64) -> bool {
        if !self.has_blocks.load(Ordering::Relaxed) {
            return false;
        }
        self.blocks.lock().is_ok_and(|b| b.iter().any(|b| b.until > now && *b.model == *model))
    }

    /// Whether the key may take a request for `model` at `now`.
    pub fn usable_for(&self, model: &str, now: i64) -> bool {
        self.usable(now) && !self.blocked_for(model, now)
    }

    /// The blocks in force at `now`.
    pub fn blocks(&self, now: i64) -> Vec<ModelBlock> {
        if !self.has_blocks.load(Ordering::Relaxed) {
            return Vec::new();
        }
        self.blocks.lock().map(|b| b.iter().filter(|b| b.until > now).cloned().collect()).unwrap_or_default()
    }

    fn set_block(&self, block: ModelBlock) {
        if let Ok(mut blocks) = self.blocks.lock() {
            blocks.retain(|b| b.model != block.model);
            blocks.push(block);
            self.has_blocks.store(true, Ordering::Relaxed);
        }
    }

    /// Drops ended blocks; the earliest end of those left (i64::MAX: none).
    fn prune_blocks(&self, now: i64) -> i64 {
        if !self.has_blocks.load(Ordering::Relaxed) {
            return i64::MAX;
        }
        let Ok(mut blocks) = self.blocks.lock() else { return i64::MAX };
        blocks.retain(|b| b.until > now);
        if blocks.is_empty() {
            self.has_blocks.store(false, Ordering::Relaxed);
        }
        blocks.iter().map(|b| b.until).min().unwrap_or(i64::MAX)
    }

    /// The status this key has in memory.
    pub fn status(&self, now: i64) -> KeyStatus {
        match self.state.load(Ordering::Relaxed) {
            ROUTABLE => KeyStatus::Active,
            COOLING if self.cooling_until.load(Ordering::Relaxed) > now => KeyStatus::Cooling,
            COOLING => KeyStatus::Active,
            FREE_ONLY => KeyStatus::Depleted,
            _ => KeyStatus::Invalid,
        }
    }

    fn free_only(&self, min_balance: f64) -> bool {
        self.state.load(Ordering::Relaxed) == FREE_ONLY || self.balance() <= min_balance
    }
}

/// Merges the database's blocks of a key with those in memory: the database's stand; a block in
/// memory it lacks stays when it is a short one (never written), a daily one, or one that ends at the
/// next check and no check came after it (not written yet, or written and not yet read back).
fn merge_blocks(slot: &KeySlot, row: &PoolRow, stored: &[BlockRow]) {
    let Ok(mut blocks) = slot.blocks.lock() else { return };
    let checked = row.checked_at.unwrap_or(0);
    let mut next: Vec<ModelBlock> = stored.iter().map(BlockRow::to_block).collect();
    for b in blocks.drain(..) {
        let keep = !b.kind.is_persisted() || b.kind == BlockKind::DailyLimit || b.at > checked;
        if keep && !next.iter().any(|n| n.model == b.model) {
            next.push(b);
        }
    }
    slot.has_blocks.store(!next.is_empty(), Ordering::Relaxed);
    *blocks = next;
}

/// A key as the database has it, merged with what the proxy knows: `None` when it is not routed at
/// all (or the proxy has killed it since). A state the proxy decided after the row last changed (not
/// written yet) wins.
fn merge(old: Option<Arc<KeySlot>>, row: &PoolRow, blocks: &KeyBlocks) -> Option<Arc<KeySlot>> {
    let stored = blocks.get(&row.id).map_or(&[][..], Vec::as_slice);
    let local_newer =
        old.as_ref().is_some_and(|s| s.changed_at.load(Ordering::Relaxed) > row.status_changed_at.unwrap_or(0));
    if local_newer {
        let slot = old?;
        slot.store_balances(row);
        merge_blocks(&slot, row, stored);
        return Some(slot);
    }
    let state = match row.status {
        KeyStatus::Active => ROUTABLE,
        KeyStatus::Cooling => COOLING,
        KeyStatus::Depleted => FREE_ONLY,
        _ => return None,
    };
    let slot = match old {
        Some(s) if *s.key == *row.key => s,
        _ => Arc::new(KeySlot::new(row.id, &row.key)),
    };
    slot.store_balances(row);
    slot.state.store(state, Ordering::Relaxed);
    slot.cooling_until.store(row.cooling_until.unwrap_or(0), Ordering::Relaxed);
    merge_blocks(&slot, row, stored);
    Some(slot)
}

/// A list of keys to pick from, with the alias table of their weights for weighted picks in O(1).
#[derive(Default)]
pub struct Candidates {
    pub slots: Vec<Arc<KeySlot>>,
    alias: Vec<(f32, u32)>,
}

impl Candidates {
    fn weighted(slots: Vec<Arc<KeySlot>>) -> Self {
        let weights: Vec<f64> = slots.iter().map(|s| s.balance().max(0.01)).collect();
        Self { alias: select::alias_table(&weights), slots }
    }

    /// Keys without money all weigh the same.
    fn uniform(slots: Vec<Arc<KeySlot>>) -> Self {
        Self { alias: vec![(1.0, 0); slots.len()], slots }
    }
}

/// The keys that were routable when the snapshot was built.
#[derive(Default)]
pub struct Snapshot {
    /// Keys with money: every model.
    pub paid: Candidates,
    /// Keys without money: free models only.
    pub free: Candidates,
    /// The paid keys not blocked for a model, for the models many keys are blocked for.
    by_model: HashMap<Box<str>, Candidates>,
    /// Total balance of the keys with money.
    pub total_balance: f64,
    /// The charged part of `total_balance`.
    pub charge_balance: f64,
    /// The earliest end of a cooling period or block among loaded keys (i64::MAX: none), when a
    /// rebuild is due.
    next_change: i64,
    /// The earliest end of a cooling period among loaded keys in the cooling state, passed or not
    /// (i64::MAX: none): once it has passed, the writer records the end in the database.
    cooling_ends: i64,
}

impl Snapshot {
    /// Keys with money routable now (billing endpoints count only these).
    pub fn paid_keys(&self) -> usize {
        self.paid.slots.len()
    }

    pub fn free_only_keys(&self) -> usize {
        self.free.slots.len()
    }
}

/// The settings the proxy reads on every request, kept in memory.
pub struct RuntimeSettings {
    pub settings: Settings,
    /// The upstream base URL in force (`KEYPOOL_UPSTREAM_URL` wins over the setting).
    pub upstream: String,
}

impl std::ops::Deref for RuntimeSettings {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl RuntimeSettings {
    pub fn proxy(&self) -> &ProxySettings {
        &self.settings.proxy
    }

    /// The incident thresholds in force.
    pub fn thresholds(&self) -> Thresholds {
        let p = self.proxy();
        Thresholds { min_keys: p.incident_min_keys as usize, failure_pct: p.incident_failure_pct }
    }
}

/// What to route a request for.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// The request's model (`""`: none).
    pub model: &'a str,
    /// Whether the model is free: keys without money first.
    pub free: bool,
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
    /// Keys whose "no money" answers ask for a balance check (drained by the writer).
    recheck: Mutex<Vec<i64>>,
    /// Request-log rows dropped because the buffer was full (the database away for long).
    pub dropped_log_rows: AtomicU64,
    pub incident: IncidentGuard,
    /// Whether the writer last found the database away (to log the change, not every tick).
    pub database_down: AtomicBool,
    /// One flush at a time, so "flushed" means everything taken so far is written.
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    /// Models asked for, and when last (for the dashboard's "keys per model now").
    recent_models: Mutex<HashMap<Box<str>, i64>>,
    /// The price table, for each request's estimated cost (reloaded with the settings).
    prices: ArcSwap<Prices>,
    /// Opens the stored keys as they are loaded (decrypted once here, never per request).
    codec: Arc<crate::domain::key_crypto::KeyCodec>,
    /// What each limited access key used this minute, day and month.
    pub quotas: quota::QuotaBook,
}

impl KeyPool {
    pub fn new(settings: Settings, upstream: String) -> Self {
        Self {
            loaded: RwLock::default(),
            snapshot: ArcSwap::from_pointee(Snapshot {
                next_change: i64::MAX,
                cooling_ends: i64::MAX,
                ..Snapshot::default()
            }),
            cursor: AtomicUsize::new(0),
            seq: AtomicI64::new(0),
            rebuild_due: AtomicBool::new(false),
            runtime: ArcSwap::from_pointee(RuntimeSettings { settings, upstream }),
            pending: Mutex::default(),
            recheck: Mutex::default(),
            dropped_log_rows: AtomicU64::new(0),
            incident: IncidentGuard::default(),
            database_down: AtomicBool::new(false),
            flush_lock: tokio::sync::Mutex::new(()),
            recent_models: Mutex::default(),
            codec: Arc::default(),
            prices: ArcSwap::from_pointee(Prices::default()),
            quotas: quota::QuotaBook::default(),
        }
    }

    /// The price table in force.
    pub fn prices(&self) -> Arc<Prices> {
        self.prices.load_full()
    }

    pub fn set_prices(&self, prices: Prices) {
        if **self.prices.load() != prices {
            self.prices.store(Arc::new(prices));
        }
    }

    /// The same pool, reading keys stored under `codec` (encrypted at rest, or in clear).
    pub fn with_codec(mut self, codec: Arc<crate::domain::key_crypto::KeyCodec>) -> Self {
        self.codec = codec;
        self
    }

    /// How the loaded keys are stored.
    pub fn codec(&self) -> &Arc<crate::domain::key_crypto::KeyCodec> {
        &self.codec
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

    /// Replaces the loaded keys with the database's routed ones (current to change number `seq`),
    /// keeping states the proxy decided since the row was last changed, then rebuilds the snapshot.
    pub fn reload(&self, rows: Vec<PoolRow>, blocks: &KeyBlocks, seq: i64, now: i64) {
        {
            let Ok(mut loaded) = self.loaded.write() else { return };
            let mut next = HashMap::with_capacity(rows.len());
            for row in rows {
                let old = loaded.remove(&row.id);
                if let Some(slot) = merge(old, &row, blocks) {
                    next.insert(row.id, slot);
                }
            }
            *loaded = next;
        }
        self.seq.store(seq, Ordering::Relaxed);
        self.rebuild(now);
    }

    /// Applies the keys changed (any state) and deleted since the last load.
    pub fn apply_changes(&self, changes: Changes, now: i64) {
        let Changes { rows, blocks, deleted, seq } = changes;
        if rows.is_empty() && deleted.is_empty() {
            self.seq.store(seq, Ordering::Relaxed);
            return;
        }
        {
            let Ok(mut loaded) = self.loaded.write() else { return };
            for id in &deleted {
                loaded.remove(id);
            }
            for row in rows {
                let old = loaded.remove(&row.id);
                if let Some(slot) = merge(old, &row, &blocks) {
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
        let mut paid: Vec<Arc<KeySlot>> = Vec::with_capacity(loaded.len());
        let mut free: Vec<Arc<KeySlot>> = Vec::new();
        let mut next_change = i64::MAX;
        let mut cooling_ends = i64::MAX;
        let mut blocked: HashMap<Box<str>, usize> = HashMap::new();
        for slot in loaded.values() {
            let block_end = slot.prune_blocks(now);
            if slot.state.load(Ordering::Relaxed) == COOLING {
                cooling_ends = cooling_ends.min(slot.cooling_until.load(Ordering::Relaxed));
            }
            if !slot.usable(now) {
                if slot.state.load(Ordering::Relaxed) == COOLING {
                    next_change = next_change.min(slot.cooling_until.load(Ordering::Relaxed));
                }
                continue;
            }
            if slot.free_only(min_balance) {
                free.push(slot.clone());
                continue;
            }
            if block_end != i64::MAX {
                next_change = next_change.min(block_end);
                for b in slot.blocks(now) {
                    *blocked.entry(b.model).or_default() += 1;
                }
            }
            paid.push(slot.clone());
        }
        drop(loaded);
        paid.sort_unstable_by_key(|s| s.id);
        free.sort_unstable_by_key(|s| s.id);
        let by_model = blocked
            .into_iter()
            .filter(|(_, n)| *n * OWN_LIST_SHARE > paid.len())
            .map(|(model, _)| {
                let open = paid.iter().filter(|s| !s.blocked_for(&model, now)).cloned().collect();
                (model, Candidates::weighted(open))
            })
            .collect();
        let total_balance = paid.iter().map(|s| s.balance()).sum();
        let charge_balance = paid.iter().map(|s| s.charge_balance()).sum();
        self.snapshot.store(Arc::new(Snapshot {
            paid: Candidates::weighted(paid),
            free: Candidates::uniform(free),
            by_model,
            total_balance,
            charge_balance,
            next_change,
            cooling_ends,
        }));
    }

    /// Whether the snapshot should be rebuilt now (a state changed, or a cooling period ended).
    pub fn rebuild_due(&self, now: i64) -> bool {
        self.rebuild_due.load(Ordering::Relaxed) || self.snapshot.load().next_change <= now
    }

    /// Picks a key for `want` not in `tried`, by the strategy in force: for a free model, keys without
    /// money first. O(1) per pick.
    pub fn pick(&self, want: Want<'_>, tried: &[i64], now: i64) -> Option<Arc<KeySlot>> {
        let strategy = self.runtime.load().settings.proxy.selection_strategy;
        let snap = self.snapshot.load();
        let from = |c: &Candidates| select::pick(&c.slots, &c.alias, strategy, &self.cursor, want.model, tried, now);
        if want.free
            && let Some(slot) = from(&snap.free)
        {
            return Some(slot);
        }
        from(snap.by_model.get(want.model).unwrap_or(&snap.paid))
    }

    /// When the first key out for `model` may be used again (for `Retry-After`), if one is out.
    pub fn next_change(&self) -> Option<i64> {
        let end = self.snapshot.load().next_change;
        (end != i64::MAX).then_some(end)
    }

    /// Applies what the proxy decided about a key (a move, or a (key, model) block) and queues it for
    /// the database. `hinted`: the upstream asked for it (its own `Retry-After`).
    /// `evidence` is what the decision came from: the writer decides it again against the state the
    /// database has then.
    pub fn apply(&self, slot: &KeySlot, evidence: &Evidence, reason: &str, at: i64, hinted: bool) {
        let transition = decide(slot.status(at), evidence);
        match transition {
            Transition::Keep => {}
            Transition::Move { to, cooling_until } => {
                let state = match to {
                    KeyStatus::Cooling => COOLING,
                    KeyStatus::Active => ROUTABLE,
                    KeyStatus::Depleted => FREE_ONLY,
                    _ => DEAD,
                };
                slot.cooling_until.store(cooling_until.unwrap_or(0), Ordering::Relaxed);
                slot.state.store(state, Ordering::Relaxed);
                slot.changed_at.store(at, Ordering::Relaxed);
                self.rebuild_due.store(true, Ordering::Relaxed);
                if let Ok(mut p) = self.pending.lock() {
                    p.change(StateChange {
                        key_id: slot.id,
                        evidence: evidence.clone(),
                        reason: reason.to_owned(),
                        at,
                    });
                }
            }
            Transition::Block { model, kind, until } => {
                let block = ModelBlock { model: model.into(), kind, until, at, hinted, reason: reason.to_owned() };
                if kind.is_persisted()
                    && let Ok(mut p) = self.pending.lock()
                {
                    p.block(PairBlock {
                        key_id: slot.id,
                        model: block.model.to_string(),
                        kind,
                        until,
                        at,
                        reason: reason.to_owned(),
                    });
                }
                slot.set_block(block);
                self.rebuild_due.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Gives back the rate-limit blocks of `model` on these keys that keypool guessed (no
    /// `Retry-After` from the upstream): an incident's doing, not the keys'.
    pub fn unblock_guessed(&self, keys: &[i64], model: &str) {
        for slot in keys.iter().filter_map(|id| self.slot(*id)) {
            if let Ok(mut blocks) = slot.blocks.lock() {
                blocks.retain(|b| !(b.kind == BlockKind::RateLimit && !b.hinted && *b.model == *model));
            }
        }
        self.rebuild_due.store(true, Ordering::Relaxed);
    }

    /// Asks for a balance check of a key (a "no money" answer); the writer runs them.
    pub fn ask_recheck(&self, key_id: i64) {
        if let Ok(mut r) = self.recheck.lock()
            && !r.contains(&key_id)
            && r.len() < 10_000
        {
            r.push(key_id);
        }
    }

    /// The keys waiting for a balance check.
    pub fn take_rechecks(&self) -> Vec<i64> {
        self.recheck.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    /// A loaded key by id.
    pub fn slot(&self, id: i64) -> Option<Arc<KeySlot>> {
        self.loaded.read().ok()?.get(&id).cloned()
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

    /// Takes everything not yet written (counters with their log rows: one lock), and notes the models
    /// asked for.
    pub fn take_pending(&self) -> UsageBatch {
        let batch = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        self.note_models(&batch);
        batch
    }

    fn note_models(&self, batch: &UsageBatch) {
        if batch.log.is_empty() {
            return;
        }
        let Ok(mut models) = self.recent_models.lock() else { return };
        for row in &batch.log {
            if let Some(m) = row.model.as_deref() {
                if let Some(at) = models.get_mut(m) {
                    *at = (*at).max(row.at);
                } else if models.len() < 1_000 {
                    models.insert(m.into(), row.at);
                }
            }
        }
    }

    /// The models asked for since `since`, with how many keys can serve each at `now`: (model, keys
    /// with money, keys without money if the model is free). Scans the keys: for pages, not requests.
    pub fn serving(&self, since: i64, now: i64) -> Vec<(String, usize, usize)> {
        let models: Vec<String> = self
            .recent_models
            .lock()
            .map(|m| m.iter().filter(|(_, at)| **at >= since).map(|(m, _)| m.to_string()).collect())
            .unwrap_or_default();
        let runtime = self.runtime();
        let snap = self.snapshot();
        let mut out: Vec<(String, usize, usize)> = models
            .into_iter()
            .map(|m| {
                let paid = snap.paid.slots.iter().filter(|s| s.usable_for(&m, now)).count();
                let free = if runtime.proxy().is_free_model(&m) {
                    snap.free.slots.iter().filter(|s| s.usable_for(&m, now)).count()
                } else {
                    0
                };
                (m, paid, free)
            })
            .collect();
        out.sort();
        out
    }

    /// Puts back a batch the database did not take.
    pub fn restore_pending(&self, batch: UsageBatch) {
        if let Ok(mut p) = self.pending.lock() {
            let dropped = p.restore(batch, LOG_BUFFER_CAP);
            self.dropped_log_rows.fetch_add(dropped as u64, Ordering::Relaxed);
        }
    }

    /// Whether a loaded key is cooling and its cooling has ended (the writer then records the end).
    /// O(1): read from the snapshot, which every state change rebuilds within the writer's tick (a scan
    /// of 100,000 keys on every tick under load took a core for milliseconds, 4 times a second).
    pub fn cooling_ended(&self, now: i64) -> bool {
        self.snapshot.load().cooling_ends <= now
    }

    /// Loaded keys by what the proxy knows of them: (routable now, cooling, out since the load).
    /// Keys without money count as routable (for free models).
    pub fn counts(&self, now: i64) -> (usize, usize, usize) {
        let Ok(loaded) = self.loaded.read() else { return (0, 0, 0) };
        let mut c = (0, 0, 0);
        for s in loaded.values() {
            match s.state.load(Ordering::Relaxed) {
                ROUTABLE | FREE_ONLY => c.0 += 1,
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
        slot.state.store(ROUTABLE, Ordering::Relaxed);
        pool.apply(&slot, &Evidence::KeyInvalid, "HTTP 401", 1, false);
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
            tokens: None,
            cost: None,
            outcome: crate::domain::usage::Outcome::Ok,
        };
        for at in 0..(LOG_BUFFER_CAP as i64 + 1) {
            pool.log_request(row(at), false);
        }
        assert_eq!(pool.dropped_log_rows.load(Ordering::Relaxed), (LOG_BUFFER_CAP / 10) as u64);
        let batch = pool.take_pending();
        assert_eq!(batch.log.len(), LOG_BUFFER_CAP - LOG_BUFFER_CAP / 10 + 1);
        assert_eq!(batch.log.first().map(|r| r.at), Some((LOG_BUFFER_CAP / 10) as i64), "the oldest went");
        assert_eq!(batch.changes[&7].evidence, Evidence::KeyInvalid, "state changes are never dropped");
        assert_eq!(batch.access_keys[&1].requests, LOG_BUFFER_CAP as i64 + 1, "and every request is counted");
    }
}
