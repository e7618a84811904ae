//! Queries of the `access_keys` table: the proxy's client tokens, stored as SHA-256 hashes.

use diesel::prelude::*;

use std::collections::HashMap;

use super::AnyConnection;
use super::schema::{access_key_quota, access_keys};
use super::statement::{Statement, Value};
use crate::domain::access_limits::{self, AccessLimits, Counts, Period, QuotaDelta};
use crate::domain::{FieldError, access_token};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_keys)]
pub struct AccessKey {
    pub id: i64,
    pub name: String,
    pub token_hash: String,
    /// A recognisable, non-secret fragment of the token (`kp-abcd…wxyz`).
    pub token_hint: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Requests through `/v1` with this key, and those that failed.
    pub request_count: i64,
    pub failure_count: i64,
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub models: Option<String>,
    pub free_only: bool,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpd: Option<i64>,
    pub spend_day: Option<f64>,
    pub spend_month: Option<f64>,
    pub note: Option<String>,
    /// The token shown to guests when this is the guest access key (restricted mode); else `None`.
    pub shared_token: Option<String>,
}

impl AccessKey {
    pub fn limits(&self) -> AccessLimits {
        AccessLimits {
            enabled: self.enabled,
            expires_at: self.expires_at,
            models: access_limits::models_from_stored(self.models.as_deref()),
            free_only: self.free_only,
            rpm: self.rpm,
            tpm: self.tpm,
            rpd: self.rpd,
            tpd: self.tpd,
            spend_day: self.spend_day,
            spend_month: self.spend_month,
            note: self.note.clone(),
        }
    }
}

#[derive(AsChangeset)]
#[diesel(table_name = access_keys, treat_none_as_null = true)]
struct LimitColumns {
    enabled: bool,
    expires_at: Option<i64>,
    models: Option<String>,
    free_only: bool,
    rpm: Option<i64>,
    tpm: Option<i64>,
    rpd: Option<i64>,
    tpd: Option<i64>,
    spend_day: Option<f64>,
    spend_month: Option<f64>,
    note: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = access_keys)]
struct NewAccessKey<'a> {
    name: &'a str,
    token_hash: &'a str,
    token_hint: &'a str,
    created_at: i64,
}

pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<AccessKey>> {
    access_keys::table.order(access_keys::id.asc()).select(AccessKey::as_select()).load(conn)
}

pub fn create(conn: &mut AnyConnection, name: &str, token_hash: &str, token_hint: &str, now: i64) -> QueryResult<i64> {
    diesel::insert_into(access_keys::table)
        .values(&NewAccessKey { name, token_hash, token_hint, created_at: now })
        .returning(access_keys::id)
        .get_result(conn)
}

/// Mints a token and stores an access key named `name` (already parsed). Returns (name, token), or
/// a field error when the name is taken: the unique index decides, so of two requests racing for one
/// name exactly one gets it. The token exists only in this return value.
pub fn create_named(
    conn: &mut AnyConnection,
    name: &str,
    now: i64,
) -> QueryResult<Result<(String, String), FieldError>> {
    let minted = access_token::mint();
    match create(conn, name, &minted.hash, &minted.hint, now) {
        Ok(_) => Ok(Ok((name.to_owned(), minted.token))),
        Err(e) if super::error::is_unique_violation(&e) => {
            Ok(Err(FieldError::new("name", "access_keys.name_taken").with("name", name)))
        }
        Err(e) => Err(e),
    }
}

/// Deletes by id; returns whether a row went.
pub fn revoke(conn: &mut AnyConnection, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(access_keys::table.find(id)).execute(conn)? > 0)
}

pub fn revoke_by_name(conn: &mut AnyConnection, name: &str) -> QueryResult<bool> {
    Ok(diesel::delete(access_keys::table.filter(access_keys::name.eq(name))).execute(conn)? > 0)
}

pub fn find(conn: &mut AnyConnection, id: i64) -> QueryResult<Option<AccessKey>> {
    access_keys::table.find(id).select(AccessKey::as_select()).first(conn).optional()
}

pub fn find_by_name(conn: &mut AnyConnection, name: &str) -> QueryResult<Option<AccessKey>> {
    access_keys::table.filter(access_keys::name.eq(name)).select(AccessKey::as_select()).first(conn).optional()
}

/// Stores the limits of `id`; returns whether the key exists.
pub fn set_limits(conn: &mut AnyConnection, id: i64, limits: &AccessLimits) -> QueryResult<bool> {
    let columns = LimitColumns {
        enabled: limits.enabled,
        expires_at: limits.expires_at,
        models: access_limits::models_to_stored(&limits.models),
        free_only: limits.free_only,
        rpm: limits.rpm,
        tpm: limits.tpm,
        rpd: limits.rpd,
        tpd: limits.tpd,
        spend_day: limits.spend_day,
        spend_month: limits.spend_month,
        note: limits.note.clone(),
    };
    Ok(diesel::update(access_keys::table.find(id)).set(&columns).execute(conn)? > 0)
}

/// Makes `id` the access key shown to guests: a new token is minted for it (the old one stops
/// working) and kept in clear, because guests are shown it; every other key's shared token goes.
/// `None` stops sharing. Returns whether the key exists.
pub fn share_with_guests(conn: &mut AnyConnection, id: Option<i64>) -> QueryResult<bool> {
    conn.transaction(|conn| {
        diesel::update(access_keys::table.filter(access_keys::shared_token.is_not_null()))
            .set(access_keys::shared_token.eq(None::<String>))
            .execute(conn)?;
        let Some(id) = id else { return Ok(true) };
        let minted = access_token::mint();
        let changed = diesel::update(access_keys::table.find(id))
            .set((
                access_keys::token_hash.eq(&minted.hash),
                access_keys::token_hint.eq(&minted.hint),
                access_keys::shared_token.eq(Some(&minted.token)),
            ))
            .execute(conn)?;
        Ok(changed > 0)
    })
}

/// The access key shown to guests, if any.
pub fn shared(conn: &mut AnyConnection) -> QueryResult<Option<AccessKey>> {
    access_keys::table
        .filter(access_keys::shared_token.is_not_null())
        .select(AccessKey::as_select())
        .first(conn)
        .optional()
}

/// Adds one tick's counts of this instance, then reads the totals of every instance for the current
/// windows of `ids`: by (access key, period code, window start). One transaction.
pub fn publish_quota(
    conn: &mut AnyConnection,
    deltas: &[QuotaDelta],
    ids: &[i64],
    windows: [(Period, i64); 3],
) -> QueryResult<HashMap<(i64, i64, i64), Counts>> {
    conn.transaction(|conn| {
        // Raw SQL: an upsert that adds to the stored counts (`excluded`), which diesel's DSL cannot say
        // for both backends through one connection type. Only for keys that still exist (one revoked
        // since its counts were taken has no row to refer to: its counts go with it). Writing first, and
        // reading only after, matters on SQLite: a transaction that reads and then writes cannot wait
        // for another writer and fails with "database is locked".
        for d in deltas {
            let mut st = Statement::default();
            st.sql(
                "INSERT INTO access_key_quota (access_key_id, period, window_start, requests, tokens, cost) SELECT ",
            );
            st.bind(Value::Int(d.access_key_id)).sql(", ");
            st.bind(Value::Int(d.period.code())).sql(", ");
            st.bind(Value::Int(d.window_start)).sql(", ");
            st.bind(Value::Int(d.counts.requests)).sql(", ");
            st.bind(Value::Int(d.counts.tokens)).sql(", ");
            st.bind(Value::Float(d.counts.cost)).sql(" WHERE EXISTS (SELECT 1 FROM access_keys WHERE id = ");
            st.bind(Value::Int(d.access_key_id));
            st.sql(
                ") ON CONFLICT (access_key_id, period, window_start) DO UPDATE SET \
                 requests = access_key_quota.requests + excluded.requests, \
                 tokens = access_key_quota.tokens + excluded.tokens, \
                 cost = access_key_quota.cost + excluded.cost",
            );
            st.execute(conn)?;
        }
        quota_totals(conn, ids, windows)
    })
}

/// Every instance's totals for the current windows of `ids`: by (access key, period code, window start).
pub fn quota_totals(
    conn: &mut AnyConnection,
    ids: &[i64],
    windows: [(Period, i64); 3],
) -> QueryResult<HashMap<(i64, i64, i64), Counts>> {
    let mut totals = HashMap::new();
    if ids.is_empty() {
        return Ok(totals);
    }
    for (period, start) in windows {
        let rows = access_key_quota::table
            .filter(access_key_quota::period.eq(period.code()))
            .filter(access_key_quota::window_start.eq(start))
            .filter(access_key_quota::access_key_id.eq_any(ids))
            .select((
                access_key_quota::access_key_id,
                access_key_quota::requests,
                access_key_quota::tokens,
                access_key_quota::cost,
            ))
            .load::<(i64, i64, i64, f64)>(conn)?;
        for (id, requests, tokens, cost) in rows {
            totals.insert((id, period.code(), start), Counts { requests, tokens, cost });
        }
    }
    Ok(totals)
}

/// Forgets this minute's and today's counts of `id` (every instance reads zero at its next tick).
pub fn reset_quota_day(conn: &mut AnyConnection, id: i64, minute_start: i64, day_start: i64) -> QueryResult<usize> {
    diesel::delete(
        access_key_quota::table.filter(access_key_quota::access_key_id.eq(id)).filter(
            (access_key_quota::period.eq(Period::Minute.code()).and(access_key_quota::window_start.eq(minute_start)))
                .or(access_key_quota::period.eq(Period::Day.code()).and(access_key_quota::window_start.eq(day_start))),
        ),
    )
    .execute(conn)
}

/// Deletes quota windows that ended before `before` (minutes after an hour, days and months after
/// the retention).
pub fn prune_quota(conn: &mut AnyConnection, minutes_before: i64, before: i64) -> QueryResult<usize> {
    use access_key_quota::{period, table, window_start};
    let minute = Period::Minute.code();
    let minutes = diesel::delete(table.filter(period.eq(minute)).filter(window_start.lt(minutes_before)));
    let older = diesel::delete(table.filter(period.ne(minute)).filter(window_start.lt(before)));
    Ok(minutes.execute(conn)? + older.execute(conn)?)
}
