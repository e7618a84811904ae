//! Access keys of the proxy, held in memory by hash so authenticating a request touches no database.
//! Their use (requests, failures, last use) is counted by the pool's writer with the rest of the
//! proxy's outcomes.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use crate::db::{self, DbPool};
use crate::domain::access_token;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Default)]
pub struct AccessKeyIndex {
    /// Access-key id by token hash.
    by_hash: RwLock<HashMap<String, i64>>,
}

impl AccessKeyIndex {
    /// Replaces the index with the table's contents.
    pub async fn reload(&self, pool: &DbPool) -> Result<(), AppError> {
        let rows = db::run(pool, |conn| Ok(db::access_keys::list(conn)?)).await?;
        let map = rows.into_iter().map(|k| (k.token_hash, k.id)).collect();
        if let Ok(mut guard) = self.by_hash.write() {
            *guard = map;
        }
        Ok(())
    }

    /// The id of the access key the token is, if it is a current one.
    pub fn authenticate(&self, token: &str) -> Option<i64> {
        let hash = access_token::hash(token);
        self.by_hash.read().ok()?.get(&hash).copied()
    }
}

/// Every 5 seconds for the life of the server: reloads the access keys and the settings, so a key
/// created or revoked elsewhere (the CLI, another instance) and settings saved elsewhere take effect
/// within that time.
/// Loads the price table into the pool (at start, every few seconds and after an edit).
pub async fn reload_prices(state: &AppState) -> Result<(), crate::error::AppError> {
    let prices = crate::db::run(&state.db, |conn| Ok(crate::db::prices::load(conn)?)).await?;
    state.pool.set_prices(prices);
    Ok(())
}

pub fn spawn_reloader(state: actix_web::web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            if let Err(e) = state.access_keys.reload(&state.db).await {
                tracing::warn!(error = %e, "could not reload access keys");
            }
            if let Err(e) = state.settings().await {
                tracing::warn!(error = %e, "could not reload settings");
            }
            if let Err(e) = reload_prices(&state).await {
                tracing::warn!(error = %e, "could not reload the price table");
            }
        }
    });
}
