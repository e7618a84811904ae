//! What the proxy writes and reads: usage counters, key state changes and the request log, each batch
//! in one transaction with a few set-based statements per 200 keys; the keys the pool may route.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::AnyConnection;
use super::schema::request_log;
use super::statement::{Statement, Value};
use crate::domain::usage::{Usage, UsageBatch};

/// A key the proxy may route (state `active` or `cooling`), as loaded into memory.
#[derive(Debug, Clone, QueryableByName)]
pub struct PoolRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Double>)]
    pub total_balance: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub cooling_until: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub status_changed_at: Option<i64>,
}

/// Every key in state `active` or `cooling`, and the change number they are current to.
pub fn routable(conn: &mut AnyConnection) -> QueryResult<(Vec<PoolRow>, i64)> {
    conn.transaction(|conn| {
        let seq = change_seq(conn)?;
        let rows = diesel::sql_query(
            "SELECT id, key, status, total_balance, cooling_until, status_changed_at FROM keys \
             WHERE status IN ('active', 'cooling')",
        )
        .load(conn)?;
        Ok((rows, seq))
    })
}

#[derive(QueryableByName)]
struct Seq {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The number of the latest change to any key (insert, delete, status, balance, cooling).
pub fn change_seq(conn: &mut AnyConnection) -> QueryResult<i64> {
    Ok(diesel::sql_query("SELECT n FROM change_seq WHERE id = 1").get_result::<Seq>(conn)?.n)
}

/// What changed after change number `since`: the changed keys (any state), the ids of deleted keys,
/// and the number this is current to.
pub fn changed_since(conn: &mut AnyConnection, since: i64) -> QueryResult<(Vec<PoolRow>, Vec<i64>, i64)> {
    #[derive(QueryableByName)]
    struct Gone {
        #[diesel(sql_type = BigInt)]
        key_id: i64,
    }
    conn.transaction(|conn| {
        let seq = change_seq(conn)?;
        if seq <= since {
            return Ok((Vec::new(), Vec::new(), seq));
        }
        let rows = diesel::sql_query(
            "SELECT id, key, status, total_balance, cooling_until, status_changed_at FROM keys \
             WHERE changed_seq > $1 AND changed_seq <= $2",
        )
        .bind::<BigInt, _>(since)
        .bind::<BigInt, _>(seq)
        .load(conn)?;
        let gone = diesel::sql_query("SELECT key_id FROM key_tombstones WHERE seq > $1 AND seq <= $2")
            .bind::<BigInt, _>(since)
            .bind::<BigInt, _>(seq)
            .load::<Gone>(conn)?;
        Ok((rows, gone.into_iter().map(|g| g.key_id).collect(), seq))
    })
}

/// Deletes tombstones every reader has long seen (older than `keep` changes).
pub fn prune_tombstones(conn: &mut AnyConnection, keep: i64) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM key_tombstones WHERE seq < (SELECT n FROM change_seq WHERE id = 1) - $1")
        .bind::<BigInt, _>(keep)
        .execute(conn)
}

/// Writes a batch in one transaction.
pub fn record(conn: &mut AnyConnection, batch: &UsageBatch) -> QueryResult<()> {
    conn.transaction(|conn| {
        let keys: Vec<(i64, Usage)> = batch.keys.iter().map(|(k, u)| (*k, *u)).collect();
        add_usage(conn, "keys", &keys)?;
        let access: Vec<(i64, Usage)> = batch.access_keys.iter().map(|(k, u)| (*k, *u)).collect();
        add_usage(conn, "access_keys", &access)?;
        let changes: Vec<_> = batch.changes.values().collect();
        for chunk in changes.chunks(200) {
            let cte = |st: &mut Statement| {
                st.sql("WITH v (id, new_status, reason, at, until_at) AS (VALUES ");
                for (i, c) in chunk.iter().enumerate() {
                    st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
                    st.bind(Value::Int(c.key_id)).sql(" AS BIGINT), CAST(");
                    st.bind(Value::Text(c.status.as_str().to_owned())).sql(" AS TEXT), CAST(");
                    st.bind(Value::Text(c.reason.clone())).sql(" AS TEXT), CAST(");
                    st.bind(Value::Int(c.at)).sql(" AS BIGINT), CAST(");
                    st.bind(Value::OptInt(c.cooling_until)).sql(" AS BIGINT))");
                }
                st.sql(")");
            };
            // A change made since (a check, an admin) is newer evidence and wins; disabled stays disabled.
            let newer = " keys.status <> 'disabled' AND COALESCE(keys.status_changed_at, 0) <= v.at";
            let mut st = Statement::default();
            cte(&mut st);
            st.sql(" INSERT INTO key_events (key_id, at, from_status, to_status, reason) ");
            st.sql(
                "SELECT keys.id, v.at, keys.status, v.new_status, v.reason FROM keys JOIN v ON keys.id = v.id WHERE",
            );
            st.sql(newer).sql(" AND keys.status <> v.new_status");
            st.execute(conn)?;
            let mut st = Statement::default();
            cte(&mut st);
            st.sql(" UPDATE keys SET status = v.new_status, status_reason = v.reason, status_changed_at = v.at, ");
            st.sql("cooling_until = v.until_at, last_error = v.reason FROM v WHERE keys.id = v.id AND");
            st.sql(newer);
            st.execute(conn)?;
        }
        insert_log(conn, &batch.log)?;
        Ok(())
    })
}

#[derive(Insertable)]
#[diesel(table_name = request_log)]
struct NewLogRow<'a> {
    at: i64,
    access_key_id: Option<i64>,
    key_id: Option<i64>,
    method: &'a str,
    path: &'a str,
    model: Option<&'a str>,
    status: i64,
    latency_ms: i64,
    ttfb_ms: Option<i64>,
    attempts: i64,
    error: Option<&'a str>,
}

/// Appends request-log rows: on SQLite one prepared insert run per row (diesel caches it; no SQL to
/// parse per batch), on PostgreSQL multi-row inserts of 1,000.
fn insert_log(conn: &mut AnyConnection, log: &[crate::domain::usage::RequestLogRow]) -> QueryResult<()> {
    let rows: Vec<NewLogRow<'_>> = log
        .iter()
        .map(|r| NewLogRow {
            at: r.at,
            access_key_id: r.access_key_id,
            key_id: r.key_id,
            method: &r.method,
            path: &r.path,
            model: r.model.as_deref(),
            status: i64::from(r.status),
            latency_ms: r.latency_ms,
            ttfb_ms: r.ttfb_ms,
            attempts: i64::from(r.attempts),
            error: r.error.as_deref(),
        })
        .collect();
    match conn {
        AnyConnection::Sqlite(c) => {
            diesel::insert_into(request_log::table).values(&rows).execute(c)?;
        }
        AnyConnection::Postgresql(c) => {
            for chunk in rows.chunks(1000) {
                diesel::insert_into(request_log::table).values(chunk).execute(c)?;
            }
        }
    }
    Ok(())
}

/// Adds request and failure counts and moves the last use forward, on `keys` or `access_keys`.
fn add_usage(conn: &mut AnyConnection, table: &'static str, rows: &[(i64, Usage)]) -> QueryResult<()> {
    for chunk in rows.chunks(200) {
        let mut st = Statement::default();
        st.sql("WITH v (id, n, f, at) AS (VALUES ");
        for (i, (id, u)) in chunk.iter().enumerate() {
            st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
            st.bind(Value::Int(*id)).sql(" AS BIGINT), CAST(");
            st.bind(Value::Int(u.requests)).sql(" AS BIGINT), CAST(");
            st.bind(Value::Int(u.failures)).sql(" AS BIGINT), CAST(");
            st.bind(Value::Int(u.last_used_at)).sql(" AS BIGINT))");
        }
        st.sql(") UPDATE ").sql(table).sql(" SET request_count = request_count + v.n, ");
        st.sql("failure_count = failure_count + v.f, last_used_at = CASE WHEN ").sql(table);
        st.sql(".last_used_at IS NULL OR ").sql(table).sql(".last_used_at < v.at THEN v.at ELSE ").sql(table);
        st.sql(".last_used_at END FROM v WHERE ").sql(table).sql(".id = v.id");
        st.execute(conn)?;
    }
    Ok(())
}

/// Returns keys whose cooling ended to `active`; returns how many.
pub fn end_cooling(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    conn.transaction(|conn| {
        diesel::sql_query(
            "INSERT INTO key_events (key_id, at, from_status, to_status, reason) \
             SELECT id, cooling_until, 'cooling', 'active', 'cooling ended' FROM keys \
             WHERE status = 'cooling' AND cooling_until <= $1",
        )
        .bind::<BigInt, _>(now)
        .execute(conn)?;
        diesel::sql_query(
            "UPDATE keys SET status = 'active', status_reason = 'cooling ended', status_changed_at = cooling_until \
             WHERE status = 'cooling' AND cooling_until <= $1",
        )
        .bind::<BigInt, _>(now)
        .execute(conn)
    })
}

/// Deletes request-log rows older than `before`; returns how many went.
pub fn prune_request_log(conn: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM request_log WHERE at < $1").bind::<BigInt, _>(before).execute(conn)
}
