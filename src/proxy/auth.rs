//! Access keys of the proxy, held in memory by hash so authenticating a request touches no database.
//! Last-used times are gathered in memory and written in one batch every few seconds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::{self, DbPool};
use crate::domain::access_token;
use crate::error::AppError;
use crate::state::AppState;

struct Entry {
    id: i64,
    /// Last use not yet written to the database (0 = nothing pending).
    pending_use: AtomicI64,
}

#[derive(Default)]
pub struct AccessKeyIndex {
    by_hash: RwLock<HashMap<String, Arc<Entry>>>,
}

impl AccessKeyIndex {
    /// Replaces the index with the table's contents.
    pub async fn reload(&self, pool: &DbPool) -> Result<(), AppError> {
        let rows = db::run(pool, |conn| Ok(db::access_keys::list(conn)?)).await?;
        let map = rows
            .into_iter()
            .map(|k| (k.token_hash, Arc::new(Entry { id: k.id, pending_use: AtomicI64::new(0) })))
            .collect();
        if let Ok(mut guard) = self.by_hash.write() {
            *guard = map;
        }
        Ok(())
    }

    /// The id of the access key the token is, if it is a current one; remembers the use.
    pub fn authenticate(&self, token: &str, now_ms: i64) -> Option<i64> {
        let hash = access_token::hash(token);
        let guard = self.by_hash.read().ok()?;
        let entry = guard.get(&hash)?;
        entry.pending_use.store(now_ms, Ordering::Relaxed);
        Some(entry.id)
    }

    /// Takes the pending last-used times, as (id, time) pairs.
    fn take_pending(&self) -> Vec<(i64, i64)> {
        let Ok(guard) = self.by_hash.read() else { return Vec::new() };
        guard
            .values()
            .filter_map(|e| {
                let at = e.pending_use.swap(0, Ordering::Relaxed);
                (at > 0).then_some((e.id, at))
            })
            .collect()
    }

    /// Writes pending last-used times now (also called on shutdown paths and by tests).
    pub async fn flush(&self, pool: &DbPool) -> Result<(), AppError> {
        let pending = self.take_pending();
        if pending.is_empty() {
            return Ok(());
        }
        db::run(pool, move |conn| Ok(db::access_keys::record_last_used(conn, &pending)?)).await
    }
}

/// Every 5 seconds for the life of the server: writes last-used times and reloads the index, so a key
/// created or revoked elsewhere (the CLI, another instance) takes effect within that time; the proxy's
/// in-memory settings are refreshed at the same pace.
pub fn spawn_last_used_flusher(state: actix_web::web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if let Err(e) = state.access_keys.flush(&state.db).await {
                tracing::warn!(error = %e, "could not record access-key use");
            }
            if let Err(e) = state.access_keys.reload(&state.db).await {
                tracing::warn!(error = %e, "could not reload access keys");
            }
            if let Err(e) = state.settings().await {
                tracing::warn!(error = %e, "could not reload settings");
            }
        }
    });
}
