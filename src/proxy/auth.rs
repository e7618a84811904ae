//! Access keys of the proxy, held in memory by hash so authenticating a request touches no database.
//! Their use (requests, failures, last use) is counted by the pool's writer with the rest of the
//! proxy's outcomes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use crate::db::{self, DbPool};
use crate::domain::access_limits::AccessLimits;
use crate::domain::access_token;
use crate::error::AppError;
use crate::pool::quota::{Quota, QuotaBook};

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
