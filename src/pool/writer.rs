//! The writer and keeper of the pool: every 250 ms it writes what the proxy learned in one transaction
//! (usage counters, state changes and request-log rows together, so a crash loses at most one tick of
//! them and the counters always agree with the log), returns keys whose cooling ended to `active`, asks
//! the database what changed since its last look (the `change_seq` counter: one tiny query, then only
//! the changed keys — an admin edit, an import, a check result, another instance's decision), rebuilds
//! the snapshot when a state changed, and once an hour prunes the request log and old tombstones. A
//! batch the database does not take is kept and written later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::KeyPool;
use crate::db::{self, DbPool};
use crate::domain::access_limits::Period;
use crate::domain::clock::Clock;
use crate::error::AppError;

/// How often the writer runs: usage counters, states and the log are written every tick.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the request log is pruned (by one instance).
pub const PRUNE_PERIOD_MS: i64 = 3_600_000;
const PRUNE_LOOK_EVERY: Duration = Duration::from_secs(60);

/// Writes everything pending now; on failure it stays pending. Returns whether the database took it.
pub async fn flush(pool: &KeyPool, db: &DbPool) -> bool {
    let _one_at_a_time = pool.flush_lock.lock().await;
    write(pool, db, pool.take_pending()).await
}

async fn write(pool: &KeyPool, db: &DbPool, batch: crate::domain::usage::UsageBatch) -> bool {
    if batch.is_empty() {
        return true;
    }
    let conn_pool = db.clone();
    let written = actix_web::web::block(move || {
        let result = conn_pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut conn| db::usage::record(&mut conn, &batch).map_err(|e| e.to_string()));
        (batch, result)
    })
    .await;
    match written {
        Ok((_, Ok(()))) => {
            database_answers(pool);
            true
        }
        Ok((batch, Err(e))) => {
            pool.restore_pending(batch);
            database_fails(pool, &e, "could not write proxy outcomes; they are kept and written when it answers");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "proxy writer task failed");
            false
        }
    }
}

/// Logs the database going away once (not every tick while it stays away).
fn database_fails(pool: &KeyPool, error: &str, what: &str) {
    if !pool.database_down.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(error, "{what}; the proxy goes on serving from memory");
    }
}

fn database_answers(pool: &KeyPool) {
    if pool.database_down.swap(false, std::sync::atomic::Ordering::Relaxed) {
        tracing::info!("the database answers again");
    }
}

/// Publishes what the limited access keys used here since the last tick and reads back every
/// instance's totals (one small transaction; nothing when no access key has a quota). On failure the
/// counts stay pending and are sent with the next tick.
pub async fn sync_quotas(pool: &KeyPool, db: &DbPool, now: i64) -> Result<(), AppError> {
    if pool.quotas.is_empty() {
        return Ok(());
    }
    // One sync at a time: a second one settling in between would forget what the first had sent.
    let _one_at_a_time = pool.flush_lock.lock().await;
    let offset = pool.runtime().proxy().upstream_utc_offset_min;
    let (deltas, ids) = pool.quotas.take(now, offset);
    let windows = Period::ALL.map(|p| (p, p.window(now, offset).0));
    let totals = db::run(db, move |conn| Ok(db::access_keys::publish_quota(conn, &deltas, &ids, windows)?)).await;
    match totals {
        Ok(totals) => {
            pool.quotas.settle(&totals);
            Ok(())
        }
        Err(e) => {
            pool.quotas.unsend();
            Err(e.into())
        }
    }
}

/// Reads every routable key from the database into the pool (at start-up).
pub async fn reload(pool: &KeyPool, db: &DbPool, now: i64) -> Result<(), AppError> {
    let codec = pool.codec().clone();
    let (rows, blocks, seq) = db::run(db, move |conn| Ok(db::usage::routable(conn, &codec, now)?)).await?;
    pool.reload(rows, &blocks, seq, now);
    Ok(())
}

/// Tombstones of deleted keys are kept for this many changes; a reader further behind reloads whole.
const TOMBSTONE_CHANGES: i64 = 1_000_000;

/// Brings the pool up to date with the database: only the keys changed since the last look (one
/// indexed query; nothing when nothing changed), or everything when too far behind.
pub async fn catch_up(pool: &KeyPool, db: &DbPool, now: i64) -> Result<(), AppError> {
    let since = pool.seq();
    let codec = pool.codec().clone();
    let changes = db::run(db, move |conn| Ok(db::usage::changed_since(conn, &codec, since)?)).await?;
    if changes.seq - since > TOMBSTONE_CHANGES {
        return reload(pool, db, now).await;
    }
    pool.apply_changes(changes, now);
    Ok(())
}

/// The lease that makes one instance at a time prune the request log and old tombstones.
pub const PRUNE_LEASE: &str = "prune_request_log";

/// The hourly clean-up, when this instance takes the period's lease: request-log rows and per-minute
/// roll-ups older than `request_log_retention_days`, hourly roll-ups older than
/// `rollup_retention_days`, and tombstones every reader has seen. `Some(rows deleted)` when it ran;
/// the first look anywhere only starts the clock.
pub async fn prune(pool: &KeyPool, db: &DbPool, instance: &str, now: i64) -> Result<Option<usize>, AppError> {
    let proxy = pool.runtime().proxy().clone();
    let before = now - i64::from(proxy.request_log_retention_days) * 86_400_000;
    let hours_before = now - i64::from(proxy.rollup_retention_days) * 86_400_000;
    let holder = instance.to_owned();
    Ok(db::run(db, move |conn| {
        if !db::checks::claim_period(conn, PRUNE_LEASE, &holder, now, PRUNE_PERIOD_MS)? {
            return Ok(None);
        }
        let log = db::usage::prune_request_log(conn, before)?;
        db::usage::prune_rollups(conn, crate::domain::usage::MINUTE, before)?;
        db::usage::prune_rollups(conn, crate::domain::usage::HOUR, hours_before)?;
        db::usage::prune_rollups(conn, crate::domain::usage::DAY, hours_before)?;
        db::usage::prune_tombstones(conn, TOMBSTONE_CHANGES)?;
        db::usage::prune_blocks(conn, now)?;
        // Quota windows: minutes after an hour; days and months after 400 days (the month's bars).
        db::access_keys::prune_quota(conn, now - 3_600_000, now - 400 * 86_400_000)?;
        Ok(Some(log))
    })
    .await?)
}

/// Keys whose cooling ended are also looked for in the database this often, whatever the pool knows.
const COOLING_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// When the writer last did its slower duties.
#[derive(Default)]
struct Looks {
    prune: Option<Instant>,
    cooling: Option<Instant>,
}

fn due(last: &mut Option<Instant>, every: Duration) -> bool {
    let due = last.is_none_or(|t| t.elapsed() >= every);
    if due {
        *last = Some(Instant::now());
    }
    due
}

/// Runs the writer for the life of the server (under the supervisor); `instance` names this instance
/// in the prune lease.
pub async fn run(pool: Arc<KeyPool>, db: DbPool, clock: Clock, instance: String, ticker: crate::supervise::Ticker) {
    let mut tick = actix_web::rt::time::interval(TICK);
    let mut looks = Looks::default();
    loop {
        tick.tick().await;
        ticker.tick();
        round(&pool, &db, &clock, &instance, &mut looks).await;
    }
}

/// One tick of the writer. With nothing to write it writes nothing: cooling periods are ended only
/// when a loaded key's has passed (and once a minute in case one is cooling unseen), quotas only
/// when an access key has one, and the prune lease is looked at once a minute.
async fn round(pool: &KeyPool, db: &DbPool, clock: &Clock, instance: &str, looks: &mut Looks) {
    let now = clock.now_ms();
    let written = flush(pool, db).await;
    if written && (pool.cooling_ended(now) || due(&mut looks.cooling, COOLING_SWEEP_EVERY)) {
        let ended = db::run(db, move |conn| Ok(db::usage::end_cooling(conn, now)?)).await;
        if let Err(e) = ended {
            database_fails(pool, &e.to_string(), "could not end cooling periods");
        }
    }
    if let Err(e) = sync_quotas(pool, db, clock.now_ms()).await {
        database_fails(pool, &e.to_string(), "could not publish access-key quota counts");
    }
    let now = clock.now_ms();
    match catch_up(pool, db, now).await {
        Ok(()) => database_answers(pool),
        Err(e) => database_fails(pool, &e.to_string(), "could not read key changes"),
    }
    if pool.rebuild_due(now) {
        pool.rebuild(now);
    }
    // Once an hour, by whichever instance takes the period's lease.
    if due(&mut looks.prune, PRUNE_LOOK_EVERY) {
        match prune(pool, db, instance, now).await {
            Ok(Some(n)) => tracing::info!(rows = n, "pruned the request log"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune the request log"),
        }
    }
}
