//! Access keys of the proxy, held in memory by hash so authenticating a request touches no database.
//! Their use (requests, failures, last use) is counted by the pool's writer with the rest of the
//! proxy's outcomes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::{self, DbPool};
use crate::domain::access_limits::AccessLimits;
use crate::domain::access_token;
use crate::error::AppError;
use crate::pool::quota::{Quota, QuotaBook};
use crate::state::AppState;

/// An access key as the proxy knows it: who it is, what it may do, and (when it has quotas) its counts.
#[derive(Debug)]
pub struct Client {
    pub id: i64,
    pub name: String,
    pub limits: AccessLimits,
    pub quota: Option<Arc<Quota>>,
}

#[derive(Default)]
pub struct AccessKeyIndex {
    /// Access keys by token hash.
    by_hash: RwLock<HashMap<String, Arc<Client>>>,
}

impl AccessKeyIndex {
    /// Replaces the index with the table's contents; the counts of keys with quotas are kept in
    /// `quotas` across reloads.
    pub async fn reload(&self, pool: &DbPool, quotas: &QuotaBook) -> Result<(), AppError> {
        let rows = db::run(pool, |conn| Ok(db::access_keys::list(conn)?)).await?;
        let mut limited = HashSet::new();
        let map = rows
            .into_iter()
            .map(|k| {
                let limits = k.limits();
                let quota = limits.has_quota().then(|| {
                    limited.insert(k.id);
                    quotas.for_key(k.id)
                });
                (k.token_hash, Arc::new(Client { id: k.id, name: k.name, limits, quota }))
            })
            .collect();
        quotas.retain(&limited);
        if let Ok(mut guard) = self.by_hash.write() {
            *guard = map;
        }
        Ok(())
    }

    /// The access key the token is, if it is a current one (disabled and expired ones included: the
    /// caller says why they are refused).
    pub fn authenticate(&self, token: &str) -> Option<Arc<Client>> {
        let hash = access_token::hash(token);
        self.by_hash.read().ok()?.get(&hash).cloned()
    }
}

/// Loads the price table into the pool (at start, every few seconds and after an edit).
pub async fn reload_prices(state: &AppState) -> Result<(), crate::error::AppError> {
    let prices = crate::db::run(&state.db, |conn| Ok(crate::db::prices::load(conn)?)).await?;
    state.pool.set_prices(prices);
    Ok(())
}

/// How often the reloader runs.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Every [`RELOAD_EVERY`] for the life of the server (under the supervisor): reloads the access keys,
/// the settings and the prices, so a key created or revoked elsewhere (the CLI, another instance) and
/// settings saved elsewhere take effect within that time.
pub async fn run_reloader(state: actix_web::web::Data<AppState>, ticker: crate::supervise::Ticker) {
    let mut tick = actix_web::rt::time::interval(RELOAD_EVERY);
    loop {
        tick.tick().await;
        ticker.tick();
        if let Err(e) = state.access_keys.reload(&state.db, &state.pool.quotas).await {
            tracing::warn!(error = %e, "could not reload access keys");
        }
        if let Err(e) = state.reload_settings().await {
            tracing::warn!(error = %e, "could not reload settings");
        }
        if let Err(e) = reload_prices(&state).await {
            tracing::warn!(error = %e, "could not reload the price table");
        }
    }
}
