//! The selection strategies over a snapshot's slots. Each pick is O(1): random, round robin, least in
//! flight over a window of 64, and weighted by balance through an alias table (Vose's method: one
//! random column, one coin; two memory reads however many keys there are).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::KeySlot;
use crate::domain::proxy::SelectionStrategy;

/// Keys compared by `least_inflight` per pick.
pub const LEAST_INFLIGHT_WINDOW: usize = 64;
/// Picks tried by the strategy before falling back to a scan for any usable key.
const TRIES: usize = 8;

/// A key usable for `model` and not in `tried`, chosen by `strategy`.
pub fn pick(
    slots: &[Arc<KeySlot>],
    alias: &[(f32, u32)],
    strategy: SelectionStrategy,
    cursor: &AtomicUsize,
    model: &str,
    tried: &[i64],
    now: i64,
) -> Option<Arc<KeySlot>> {
    let n = slots.len();
    if n == 0 {
        return None;
    }
    let ok = |s: &KeySlot| s.usable_for(model, now) && !tried.contains(&s.id);
    let mut rng = rand::rng();
    for _ in 0..TRIES.min(n * 2) {
        let index = match strategy {
            SelectionStrategy::Random => rng.random_range(0..n),
            SelectionStrategy::RoundRobin => cursor.fetch_add(1, Ordering::Relaxed) % n,
            SelectionStrategy::Weighted => {
                let column = rng.random_range(0..n);
                let (keep, other) = alias.get(column).copied().unwrap_or((1.0, 0));
                if rng.random::<f32>() < keep { column } else { (other as usize).min(n - 1) }
            }
            SelectionStrategy::LeastInflight => {
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                let best = (0..LEAST_INFLIGHT_WINDOW.min(n))
                    .map(|i| &slots[(start + i) % n])
                    .filter(|s| ok(s))
                    .min_by_key(|s| s.inflight.load(Ordering::Relaxed));
                match best {
                    Some(s) => return Some(s.clone()),
                    None => start % n,
                }
            }
        };
        if ok(&slots[index]) {
            return Some(slots[index].clone());
        }
    }
    let start = rng.random_range(0..n);
    (0..n).map(|i| &slots[(start + i) % n]).find(|s| ok(s)).cloned()
}

/// Vose's alias table for `weights` (all positive): column `i` keeps itself with probability `.0`,
/// otherwise it gives `.1`. Built in O(n).
pub fn alias_table(weights: &[f64]) -> Vec<(f32, u32)> {
    let n = weights.len();
    let total: f64 = weights.iter().sum();
    if n == 0 || total <= 0.0 {
        return vec![(1.0, 0); n];
    }
    let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
    let mut table = vec![(1.0f32, 0u32); n];
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| scaled[*i] < 1.0);
    while let (Some(s), Some(l)) = (small.pop(), large.last().copied()) {
        table[s] = (scaled[s] as f32, l as u32);
        scaled[l] -= 1.0 - scaled[s];
        if scaled[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    for i in small.into_iter().chain(large) {
        table[i] = (1.0, i as u32);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::usage::Changes;
    use crate::domain::key_state::{Evidence, KeyStatus};
    use crate::domain::settings::Settings;
    use crate::pool::{KeyPool, Want};

    const ANY: Want<'static> = Want { model: "m", free: false };

    pub(crate) fn row(id: i64, status: KeyStatus, balance: f64) -> crate::db::usage::PoolRow {
        crate::db::usage::PoolRow {
            id,
            key: format!("sk-{id:030}"),
            status,
            total_balance: Some(balance),
            charge_balance: Some(balance),
            cooling_until: None,
            status_changed_at: Some(1),
            checked_at: Some(1),
        }
    }

    fn pool(balances: &[f64]) -> KeyPool {
        let pool = KeyPool::new(Settings::default(), "http://upstream".into());
        let rows = balances.iter().enumerate().map(|(i, b)| row(i as i64 + 1, KeyStatus::Active, *b)).collect();
        pool.reload(rows, &Default::default(), 1, 10);
        pool
    }

    fn with(pool: &KeyPool, strategy: SelectionStrategy) {
        let mut s = Settings::default();
        s.proxy.selection_strategy = strategy;
        pool.set_settings(s, "http://upstream".into());
    }

    #[test]
    fn weighted_follows_balance_and_keeps_the_broke_for_free_models() {
        let pool = pool(&[1.0, 99.0, 0.0]);
        let mut hits = [0usize; 4];
        for _ in 0..10_000 {
            hits[pool.pick(ANY, &[], 10).map_or(0, |s| s.id as usize)] += 1;
        }
        assert_eq!(hits[3], 0, "a key without balance serves no paid model");
        assert_eq!(hits[0], 0);
        assert!(hits[2] > 9_500 && hits[1] > 20, "{hits:?}");
        let free = Want { model: "free", free: true };
        for _ in 0..100 {
            assert_eq!(pool.pick(free, &[], 10).map(|s| s.id), Some(3), "free models go to the broke key first");
        }
        assert!(pool.pick(free, &[3], 10).is_some_and(|s| s.id != 3), "then to the others");
        assert_eq!(pool.snapshot().paid_keys(), 2);
        assert_eq!(pool.snapshot().free_only_keys(), 1);
    }

    #[test]
    fn alias_table_gives_each_column_its_share() {
        let weights = [1.0, 2.0, 3.0, 4.0];
        let table = alias_table(&weights);
        // The probability of each index: its own kept share plus what other columns give it.
        let mut p = [0.0f64; 4];
        for (i, (keep, other)) in table.iter().enumerate() {
            p[i] += f64::from(*keep) / 4.0;
            p[*other as usize] += (1.0 - f64::from(*keep)) / 4.0;
        }
        for (i, w) in weights.iter().enumerate() {
            assert!((p[i] - w / 10.0).abs() < 1e-6, "{p:?}");
        }
        assert!(alias_table(&[]).is_empty());
    }

    #[test]
    fn round_robin_visits_every_key_in_turn_and_tried_keys_are_skipped() {
        let pool = pool(&[5.0, 5.0, 5.0]);
        with(&pool, SelectionStrategy::RoundRobin);
        let ids: Vec<i64> = (0..6).filter_map(|_| pool.pick(ANY, &[], 10)).map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 3, 1, 2, 3]);
        for strategy in SelectionStrategy::ALL {
            with(&pool, strategy);
            for _ in 0..50 {
                assert_eq!(pool.pick(ANY, &[1, 3], 10).map(|s| s.id), Some(2), "{strategy:?}");
            }
            assert!(pool.pick(ANY, &[1, 2, 3], 10).is_none());
        }
    }

    #[test]
    fn least_inflight_prefers_the_idle_key() {
        let pool = pool(&[5.0, 5.0, 5.0]);
        with(&pool, SelectionStrategy::LeastInflight);
        let snap = pool.snapshot();
        snap.paid.slots[0].inflight.store(3, Ordering::Relaxed);
        snap.paid.slots[2].inflight.store(1, Ordering::Relaxed);
        for _ in 0..20 {
            assert_eq!(pool.pick(ANY, &[], 10).map(|s| s.id), Some(2));
        }
    }

    #[test]
    fn a_block_takes_the_key_out_for_its_model_only_until_it_ends() {
        let p = pool(&[5.0, 5.0]);
        let slot = p.snapshot().paid.slots[0].clone();
        let limit = Evidence::RateLimited { model: Some("m".into()), daily: true, until: 1_000 };
        p.apply(&slot, &limit, "HTTP 429: RPD limit reached", 20, false);
        for _ in 0..50 {
            assert_eq!(p.pick(ANY, &[], 30).map(|s| s.id), Some(2), "blocked for m");
        }
        let other = Want { model: "other", free: false };
        assert!((0..50).any(|_| p.pick(other, &[], 30).is_some_and(|s| s.id == 1)), "still serves other models");
        assert_eq!(p.take_pending().blocks.len(), 1, "a daily block is written");
        assert!(p.rebuild_due(30));
        p.rebuild(30);
        assert_eq!(p.next_change(), Some(1_000));
        assert!(p.pick(ANY, &[2], 999).is_none());
        assert!(p.rebuild_due(1_000), "the block's end is due");
        p.rebuild(1_000);
        assert_eq!(p.pick(ANY, &[2], 1_000).map(|s| s.id), Some(1), "the block ended");
    }

    #[test]
    fn a_model_most_keys_are_blocked_for_gets_its_own_list() {
        let balances = vec![5.0; 1_000];
        let p = pool(&balances);
        let snap = p.snapshot();
        for slot in &snap.paid.slots[..990] {
            let limit = Evidence::RateLimited { model: Some("m".into()), daily: false, until: 60_000 };
            p.apply(slot, &limit, "HTTP 429", 20, true);
        }
        p.rebuild(30);
        let own = &p.snapshot().by_model["m"];
        assert_eq!(own.slots.len(), 10, "only the ten open keys");
        for _ in 0..100 {
            assert!(p.pick(ANY, &[], 40).is_some_and(|s| s.id > 990));
        }
    }

    #[test]
    fn states_decided_by_the_proxy_survive_a_reload_and_cooling_ends() {
        let p = pool(&[5.0, 5.0]);
        with(&p, SelectionStrategy::RoundRobin);
        let slot = p.snapshot().paid.slots[0].clone();
        let cool = Evidence::RateLimited { model: None, daily: false, until: 1_000 };
        p.apply(&slot, &cool, "HTTP 429", 20, true);
        for _ in 0..10 {
            assert_eq!(p.pick(ANY, &[], 30).map(|s| s.id), Some(2), "a cooling key is skipped at once");
        }
        assert!(p.rebuild_due(30));
        p.rebuild(30);
        assert_eq!(p.snapshot().paid.slots.len(), 1);
        assert_eq!(p.next_change(), Some(1_000));
        // A reload from a database that has not seen the change yet keeps it.
        p.reload(vec![row(1, KeyStatus::Active, 5.0)], &Default::default(), 1, 40);
        assert!(p.snapshot().paid.slots.is_empty() && !slot.usable(40));
        assert!(p.rebuild_due(1_000), "the cooling end is due");
        p.rebuild(1_000);
        assert_eq!(p.pick(ANY, &[], 1_000).map(|s| s.id), Some(1));
    }

    #[test]
    fn blocks_from_the_database_and_a_check_that_ends_them() {
        let p = pool(&[5.0]);
        let stored = crate::db::usage::BlockRow {
            model: "Pro/m".into(),
            kind: "refused".into(),
            until_at: 50_000,
            at: 5,
            reason: Some("HTTP 403: real-name".into()),
        };
        let rows = vec![row(1, KeyStatus::Active, 5.0)];
        p.apply_changes(Changes { rows, blocks: [(1, vec![stored])].into(), deleted: vec![], seq: 2 }, 10);
        let pro = Want { model: "Pro/m", free: false };
        assert!(p.pick(pro, &[], 20).is_none(), "another instance's block is known");
        assert!(p.pick(ANY, &[], 20).is_some());
        // A check later than the block: the database no longer has it, and memory lets go too.
        let mut checked = row(1, KeyStatus::Active, 5.0);
        checked.checked_at = Some(30);
        p.apply_changes(Changes { rows: vec![checked], seq: 3, ..Changes::default() }, 40);
        assert!(p.pick(pro, &[], 40).is_some());
    }
}
