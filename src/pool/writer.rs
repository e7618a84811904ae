//! The writer and keeper of the pool: every 250 ms it writes what the proxy learned (one transaction),
//! returns keys whose cooling ended to `active`, reloads the pool from the database when keys changed
//! there (at most every 500 ms, and every 10 s in any case for changes made elsewhere), rebuilds the
//! snapshot when a state changed, and once an hour prunes the request log. A batch the database does
//! not take is kept and written later.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::KeyPool;
use crate::db::{self, DbPool};
use crate::domain::clock::Clock;

/// How often the writer runs.
pub const TICK: Duration = Duration::from_millis(250);
/// A reload happens at least this often even without a known change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(10);
/// Reloads after a known change are at least this far apart.
const RELOAD_GAP: Duration = Duration::from_millis(500);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Writes what is pending now; on failure it stays pending. Returns whether the database took it.
pub async fn flush(pool: &KeyPool, db: &DbPool) -> bool {
    let _one_at_a_time = pool.flush_lock.lock().await;
    let batch = pool.take_pending();
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
        Ok((_, Ok(()))) => true,
        Ok((batch, Err(e))) => {
            tracing::warn!(error = %e, "could not write proxy outcomes; kept for the next try");
            pool.restore_pending(batch);
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "proxy writer task failed");
            false
        }
    }
}

/// Reads the routable keys from the database into the pool.
pub async fn reload(pool: &KeyPool, db: &DbPool, now: i64) -> Result<(), crate::error::AppError> {
    let rows = db::run(db, |conn| Ok(db::usage::routable(conn)?)).await?;
    pool.reload(rows, now);
    Ok(())
}

/// Runs the writer for the life of the server.
pub fn spawn(pool: Arc<KeyPool>, db: DbPool, clock: Clock) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(TICK);
        let mut last_reload = Instant::now();
        let mut last_prune: Option<Instant> = None;
        loop {
            tick.tick().await;
            let now = clock.now_ms();
            let written = flush(&pool, &db).await;
            if written {
                let ended = db::run(&db, move |conn| Ok(db::usage::end_cooling(conn, now)?)).await;
                if let Ok(n) = ended
                    && n > 0
                {
                    pool.mark_stale();
                }
            }
            let now = clock.now_ms();
            let since = last_reload.elapsed();
            if since >= RELOAD_EVERY || (since >= RELOAD_GAP && pool.take_stale()) {
                match reload(&pool, &db, now).await {
                    Ok(()) => last_reload = Instant::now(),
                    Err(e) => {
                        pool.mark_stale();
                        tracing::warn!(error = %e, "could not reload the key pool; serving from memory");
                    }
                }
            } else if pool.rebuild_due(now) {
                pool.rebuild(now);
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                let days = pool.runtime().proxy().request_log_retention_days;
                let before = now - i64::from(days) * 86_400_000;
                match db::run(&db, move |conn| Ok(db::usage::prune_request_log(conn, before)?)).await {
                    Ok(n) => {
                        last_prune = Some(Instant::now());
                        if n > 0 {
                            tracing::info!(rows = n, "pruned the request log");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not prune the request log"),
                }
            }
        }
    });
}
