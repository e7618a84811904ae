//! What every request handler shares: the store, the configuration and in-memory indexes.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{Backend, DbPool};
use crate::proxy::auth::AccessKeyIndex;
use crate::web::throttle::Throttle;

pub struct AppState {
    pub db: DbPool,
    pub backend: Backend,
    pub config: Config,
    /// Failed admin sign-ins per client address.
    pub login_throttle: Throttle,
    /// Failed guest-password attempts per client address.
    pub guest_throttle: Throttle,
    /// The proxy's access keys by hash, in memory.
    pub access_keys: Arc<AccessKeyIndex>,
    /// This instance's check jobs.
    pub checker: crate::checker::Checker,
    /// Schedule ticks so far (for tests and metrics).
    pub schedule_ticks: std::sync::atomic::AtomicU64,
    /// Names this instance in leases.
    pub instance_id: String,
}

impl AppState {
    pub fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// The settings in force, read from the database.
    pub async fn settings(&self) -> Result<crate::domain::settings::Settings, crate::error::AppError> {
        crate::db::run(&self.db, |conn| Ok(crate::db::settings::current(conn)?)).await
    }

    /// The upstream base URL in force: `KEYPOOL_UPSTREAM_URL` wins over the stored setting.
    pub fn effective_upstream<'a>(&'a self, stored: &'a str) -> &'a str {
        self.config.upstream_override.as_deref().unwrap_or(stored)
    }
}
