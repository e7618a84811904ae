//! Balance re-checks the proxy asks for: an answer saying "no money" for one request blocks that
//! (key, model) pair at once, and only a balance check decides whether the key has no money at all
//! (`depleted`). One task per instance, every writer tick, at most once per key per
//! [`RECHECK_EVERY_MS`]; results go through the checks' writer and come back to the pool as key
//! changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::db::{self, DbPool};
use crate::domain::clock::Clock;
use crate::pool::KeyPool;

/// A key is re-checked because of "no money" answers at most this often.
pub const RECHECK_EVERY_MS: i64 = 600_000;
/// Keys re-checked at once (the rest wait for the next tick).
const RECHECK_BATCH: usize = 20;

/// Checks the balance of keys whose answers said "no money" for a request (at most once per key per
/// [`RECHECK_EVERY_MS`]): the check, not one request's answer, decides whether a key is `depleted`.
/// Runs in the background; results go through the checks' writer and come back as key changes.
fn recheck(pool: &KeyPool, db: &DbPool, clock: &Clock, last: &mut HashMap<i64, i64>) {
    let now = clock.now_ms();
    let mut ids = pool.take_rechecks();
    if ids.is_empty() {
        return;
    }
    last.retain(|_, at| now - *at < RECHECK_EVERY_MS);
    ids.retain(|id| !last.contains_key(id));
    ids.truncate(RECHECK_BATCH);
    let keys: Vec<(i64, String)> =
        ids.iter().filter_map(|id| pool.slot(*id)).map(|s| (s.id, s.key.to_string())).collect();
    if keys.is_empty() {
        return;
    }
    for (id, _) in &keys {
        last.insert(*id, now);
    }
    let runtime = pool.runtime();
    let (upstream, min_balance) = (runtime.upstream.clone(), runtime.settings.min_balance);
    let timeout = Duration::from_secs(runtime.settings.check_timeout_secs.into());
    let (db, clock) = (db.clone(), clock.clone());
    actix_web::rt::spawn(async move {
        let client = super::client::SiliconFlow::new(&upstream, timeout, None);
        let mut results = Vec::with_capacity(keys.len());
        for (id, key) in keys {
            results.push((id, client.check(&key).await));
        }
        let now = clock.now_ms();
        let written = db::run(&db, move |conn| Ok(db::checks::record(conn, &results, min_balance, now)?)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not record the balance re-checks");
        }
    });
}

/// Runs the re-checks for the life of the server (under the supervisor), every writer tick.
pub async fn run(pool: Arc<KeyPool>, db: DbPool, clock: Clock, ticker: crate::supervise::Ticker) {
    let mut tick = actix_web::rt::time::interval(crate::pool::writer::TICK);
    let mut last = HashMap::new();
    loop {
        tick.tick().await;
        ticker.tick();
        recheck(&pool, &db, &clock, &mut last);
    }
}
