//! What every request handler shares: the store, the configuration and in-memory indexes.

use std::sync::Arc;

use crate::config::Config;
use crate::db::{Backend, DbPool};
use crate::domain::throttle::Throttle;
use crate::proxy::auth::AccessKeyIndex;

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
    /// The routable keys, in memory, and what the proxy learned but has not written yet.
    pub pool: Arc<crate::pool::KeyPool>,
    /// The proxy's counters and histograms.
    pub metrics: crate::proxy::metrics::ProxyMetrics,
    /// The upstream's model list, kept for a minute.
    pub models_cache: crate::proxy::billing::ModelsCache,
    /// How the upstream keys are stored: encrypted (`KEYPOOL_ENCRYPTION_KEY`) or in clear. Every query
    /// that reads or writes key text takes it.
    pub codec: Arc<crate::domain::key_crypto::KeyCodec>,
    /// Orders [`AppState::reload_settings`] reads.
    pub settings_read: tokio::sync::Mutex<()>,
    /// The background loops (reloader, writer, re-checks, schedule), supervised and reported.
    pub loops: Arc<crate::supervise::Supervisor>,
}

impl AppState {
    pub fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// The settings in force, from memory: no database read. Saves, the start and the reloader (every
    /// few seconds, for saves made elsewhere) refresh them with [`AppState::reload_settings`].
    pub fn settings(&self) -> std::sync::Arc<crate::pool::RuntimeSettings> {
        self.pool.runtime()
    }

    /// Reads the settings from the database and puts them in force. One read at a time, so a read that
    /// began before a save cannot put the old settings back after the save's own read put the new ones.
    pub async fn reload_settings(
        &self,
    ) -> Result<std::sync::Arc<crate::pool::RuntimeSettings>, crate::error::AppError> {
        let _in_order = self.settings_read.lock().await;
        let settings = crate::db::run(&self.db, |conn| Ok(crate::db::settings::current(conn)?)).await?;
        let upstream = self.effective_upstream(&settings.upstream_url).to_owned();
        self.pool.set_settings(settings, upstream);
        Ok(self.pool.runtime())
    }

    /// The upstream base URL in force: `KEYPOOL_UPSTREAM_URL` wins over the stored setting.
    pub fn effective_upstream<'a>(&'a self, stored: &'a str) -> &'a str {
        self.config.upstream_override.as_deref().unwrap_or(stored)
    }
}
