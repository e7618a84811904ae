//! The scheduled re-check: every `auto_check_minutes`, one instance (the one that takes the lease)
//! checks every key that is not disabled, gently; it also prunes old balance history.

use std::time::Duration;

use crate::db;
use crate::domain::checks::{CheckParams, Interval};
use std::sync::Arc;

use super::{Checker, JobContext};
use crate::db::DbPool;
use crate::domain::key_crypto::KeyCodec;
use crate::domain::settings::Settings;

/// The lease that is the schedule: taken for one period by the instance that runs it.
pub const LEASE: &str = "scheduled_check";

/// Parameters of scheduled checks: easy on the upstream.
pub fn gentle() -> CheckParams {
    CheckParams {
        concurrency: 4,
        interval: Interval::Fixed(Duration::from_secs(1)),
        retries: 1,
        retry_interval: Duration::from_secs(5),
        rate: 5.0,
    }
}

/// What the schedule needs: the store, this instance's checker and its name in the lease.
pub struct Schedule<'a> {
    pub db: &'a DbPool,
    pub checker: &'a Checker,
    pub codec: Arc<KeyCodec>,
    /// This instance's name in the lease.
    pub holder: &'a str,
    /// Overrides the period of `auto_check_minutes` (tests).
    pub period: Option<Duration>,
}

impl Schedule<'_> {
    /// One tick: when the period's lease is free, take it for the next period and start the job
    /// (`job`: its context, from the settings in force). The first run comes one full period after the
    /// schedule is first seen, not at start-up. An instance busy with another check does not take the
    /// period (it could not run it), and gives it back if its job cannot start after all, so another
    /// instance, or this one once free, runs it. Returns the job started and the end of the period
    /// this instance now holds.
    pub async fn tick(&self, settings: &Settings, job: JobContext, now: i64) -> Result<Option<(u64, i64)>, String> {
        let busy = self.checker.current().is_some_and(|job| job.is_running());
        if settings.auto_check_minutes == 0 || busy {
            return Ok(None);
        }
        let period = match self.period {
            Some(p) => p.as_millis() as i64,
            None => settings.auto_check_minutes as i64 * 60_000,
        };
        let retention = settings.history_retention_days as i64 * 86_400_000;
        let (holder, codec) = (self.holder.to_owned(), self.codec.clone());
        let (due, keys) = db::run(self.db, move |conn| {
            if !db::checks::claim_period(conn, LEASE, &holder, now, period)? {
                return Ok((false, Vec::new()));
            }
            db::checks::prune_history(conn, now - retention)?;
            Ok((true, db::keys::ids_for_check(conn, &codec, &db::keys::CheckScope::AllEnabled)?))
        })
        .await
        .map_err(|e| e.to_string())?;
        if !due || keys.is_empty() {
            return Ok(None);
        }
        match self.checker.start(job, keys, gentle(), "checks.scope.scheduled") {
            Ok(job) => Ok(Some((job.id, now + period))),
            Err(e) => {
                let holder = self.holder.to_owned();
                let released = db::run(self.db, move |conn| Ok(db::checks::release_period(conn, LEASE, &holder, now)?));
                released.await.map_err(|e| e.to_string())?;
                Err(format!("{e}; the period is left for another try"))
            }
        }
    }
}
