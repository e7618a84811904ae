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
    pub metrics: Arc<crate::proxy::metrics::ProxyMetrics>,
    /// The upstream's model list, kept for a minute.
    pub models_cache: Arc<crate::proxy::billing::ModelsCache>,
    /// How the upstream keys are stored: encrypted (`KEYPOOL_ENCRYPTION_KEY`) or in clear. Every query
    /// that reads or writes key text takes it.
    pub codec: Arc<crate::domain::key_crypto::KeyCodec>,
    /// The gateway's share of the above (the same pool, access keys, metrics and cache).
    pub gateway: actix_web::web::Data<crate::proxy::Gateway>,
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

    /// Checks a change against the stored settings and stores it (the settings page and `keypool
    /// settings set`), then puts the saved settings in force. `Ok(Err(..))`: the field errors, nothing
    /// stored. New passwords are hashed first, outside the transaction: argon2 would hold a database
    /// connection for most of a second.
    pub async fn save_settings(
        &self,
        change: crate::domain::settings::SettingsChange,
    ) -> Result<Result<std::sync::Arc<crate::pool::RuntimeSettings>, crate::domain::FieldErrors>, crate::error::AppError>
    {
        use crate::error::AppError;
        let passwords = change.passwords();
        let hashed: std::collections::HashMap<String, String> = tokio::task::spawn_blocking(move || {
            passwords
                .into_iter()
                .map(|pw| crate::domain::password::hash(&pw).map(|h| (pw, h)))
                .collect::<Result<_, _>>()
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(AppError::Internal)?;
        let now = self.now_ms();
        let stored = crate::db::run(&self.db, move |conn| {
            let current = crate::db::settings::current(conn)?;
            let prehashed = |clear: &str| hashed.get(clear).cloned().ok_or_else(|| "not hashed beforehand".to_owned());
            match current.apply(&change, prehashed) {
                Ok(rows) => Ok(crate::db::settings::put_many(conn, &rows, now).map(Ok)?),
                Err(errors) => Ok(Err(errors)),
            }
        })
        .await?;
        match stored {
            Ok(_) => Ok(Ok(self.reload_settings().await?)),
            Err(errors) => Ok(Err(errors)),
        }
    }

    /// The context of a check job from the settings in force.
    pub fn job_context(&self) -> crate::checker::JobContext {
        let settings = self.settings();
        let upstream = self.effective_upstream(&settings.upstream_url).to_owned();
        crate::checker::JobContext::new(self.db.clone(), self.config.clock.clone(), upstream, &settings)
    }

    /// Loads the price table into the pool (at start, every few seconds and after an edit).
    pub async fn reload_prices(&self) -> Result<(), crate::error::AppError> {
        let prices = crate::db::run(&self.db, |conn| Ok(crate::db::prices::load(conn)?)).await?;
        self.pool.set_prices(prices);
        Ok(())
    }

    /// The upstream base URL in force: `KEYPOOL_UPSTREAM_URL` wins over the stored setting.
    pub fn effective_upstream<'a>(&'a self, stored: &'a str) -> &'a str {
        self.config.upstream_override.as_deref().unwrap_or(stored)
    }
}
