//! The dashboard's figures, each one SQL aggregate or a short sorted window; never all keys or all
//! history in memory.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::AnyConnection;
use super::statement::{Statement, Value};
use crate::domain::key_crypto::KeyCodec;
use crate::domain::keys::{KeyDetail, KeyEvent, KeyStatus};
use crate::domain::stats::Bucket;

/// Balance figures of the active keys.
#[derive(Debug, Clone, Default, PartialEq, QueryableByName)]
pub struct ActiveBalances {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub total: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub average: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub highest: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub lowest: Option<f64>,
}

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Nullable<Double>)]
    v: Option<f64>,
}

pub fn active_balances(conn: &mut AnyConnection) -> QueryResult<ActiveBalances> {
    diesel::sql_query(
        "SELECT COUNT(*) AS count, SUM(total_balance) AS total, AVG(total_balance) AS average, \
         MAX(total_balance) AS highest, MIN(total_balance) AS lowest FROM keys WHERE status = 'active'",
    )
    .get_result(conn)
}

/// The median balance of active keys: one or two rows read at the middle of the balance index.
pub fn active_median(conn: &mut AnyConnection, count: i64) -> QueryResult<Option<f64>> {
    if count == 0 {
        return Ok(None);
    }
    let at = |conn: &mut AnyConnection, offset: i64| -> QueryResult<Option<f64>> {
        Ok(diesel::sql_query(
            "SELECT total_balance AS v FROM keys WHERE status = 'active' ORDER BY total_balance LIMIT 1 OFFSET $1",
        )
        .bind::<BigInt, _>(offset)
        .get_result::<One>(conn)?
        .v)
    };
    let lower = at(conn, (count - 1) / 2)?;
    if count % 2 == 1 {
        return Ok(lower);
    }
    let upper = at(conn, count / 2)?;
    Ok(lower.zip(upper).map(|(a, b)| (a + b) / 2.0))
}

/// Lowest and highest balance of checked keys that are not invalid or disabled.
pub fn balance_range(conn: &mut AnyConnection) -> QueryResult<(Option<f64>, Option<f64>)> {
    #[derive(QueryableByName)]
    struct Range {
        #[diesel(sql_type = Nullable<Double>)]
        lo: Option<f64>,
        #[diesel(sql_type = Nullable<Double>)]
        hi: Option<f64>,
    }
    let r: Range = diesel::sql_query(
        "SELECT MIN(total_balance) AS lo, MAX(total_balance) AS hi FROM keys \
         WHERE status IN ('active', 'depleted', 'cooling') AND total_balance IS NOT NULL",
    )
    .get_result(conn)?;
    Ok((r.lo, r.hi))
}

/// Key counts per bucket, in one pass over the balances (a CASE names each key's bucket).
pub fn bucket_counts(conn: &mut AnyConnection, buckets: &[Bucket]) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<BigInt>)]
        bucket: Option<i64>,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut counts = vec![0; buckets.len()];
    if buckets.is_empty() {
        return Ok(counts);
    }
    let mut st = Statement::default();
    st.sql("SELECT bucket, COUNT(*) AS n FROM (SELECT CASE");
    for (i, b) in buckets.iter().enumerate() {
        st.sql(" WHEN total_balance > ").bind(Value::Float(b.low));
        if let Some(high) = b.high {
            st.sql(" AND total_balance <= ").bind(Value::Float(high));
        }
        st.sql(" THEN ").bind(Value::Int(i as i64));
    }
    st.sql(
        " END AS bucket FROM keys WHERE status IN ('active', 'depleted', 'cooling') AND total_balance IS NOT NULL) b",
    );
    st.sql(" GROUP BY bucket");
    for row in st.query().load::<Row>(conn)? {
        if let Some(slot) = row.bucket.and_then(|b| counts.get_mut(b as usize)) {
            *slot = row.n;
        }
    }
    Ok(counts)
}

/// The pool's usable balance over time since `since` (ms), from the snapshots.
pub fn trend(conn: &mut AnyConnection, since: i64) -> QueryResult<Vec<(i64, f64)>> {
    #[derive(QueryableByName)]
    struct Point {
        #[diesel(sql_type = BigInt)]
        taken_at: i64,
        #[diesel(sql_type = Double)]
        total_balance: f64,
    }
    let rows: Vec<Point> = diesel::sql_query(
        "SELECT taken_at, total_balance FROM pool_snapshots WHERE taken_at >= $1 ORDER BY taken_at LIMIT 5000",
    )
    .bind::<BigInt, _>(since)
    .load(conn)?;
    Ok(rows.into_iter().map(|p| (p.taken_at, p.total_balance)).collect())
}

/// A key by its id with what the dashboard shows of it.
#[derive(Debug, Clone, QueryableByName)]
pub struct KeyLine {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub status: KeyStatus,
    #[diesel(sql_type = Nullable<Double>)]
    pub total_balance: Option<f64>,
    #[diesel(sql_type = BigInt)]
    pub added_at: i64,
}

/// The active keys with the highest balances.
pub fn top_keys(conn: &mut AnyConnection, codec: &KeyCodec, limit: i64) -> QueryResult<Vec<KeyLine>> {
    // The order of the (status, balance, id) index read backwards, on both backends.
    let order = match super::backend_of(conn) {
        super::Backend::Sqlite => "total_balance DESC, id DESC",
        super::Backend::Postgres => "total_balance DESC NULLS LAST, id DESC",
    };
    diesel::sql_query(format!(
        "SELECT id, key, status, total_balance, added_at FROM keys WHERE status = 'active' ORDER BY {order} LIMIT $1"
    ))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .and_then(|lines| open_lines(codec, lines))
}

/// The most recently added keys.
pub fn recent_keys(conn: &mut AnyConnection, codec: &KeyCodec, limit: i64) -> QueryResult<Vec<KeyLine>> {
    diesel::sql_query(
        "SELECT id, key, status, total_balance, added_at FROM keys ORDER BY added_at DESC, id DESC LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)
    .and_then(|lines| open_lines(codec, lines))
}

fn open_lines(codec: &KeyCodec, lines: Vec<KeyLine>) -> QueryResult<Vec<KeyLine>> {
    lines.into_iter().map(|l| Ok(KeyLine { key: super::keys::open_key(codec, l.key)?, ..l })).collect()
}

#[derive(QueryableByName)]
struct KeyDetailRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub status: KeyStatus,
    #[diesel(sql_type = Nullable<Text>)]
    pub status_reason: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    pub total_balance: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub charge_balance: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub gift_balance: Option<f64>,
    #[diesel(sql_type = BigInt)]
    pub added_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub checked_at: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub source: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub request_count: i64,
    #[diesel(sql_type = BigInt)]
    pub failure_count: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_used_at: Option<i64>,
}

/// One key in full, for its detail page.
pub fn key_detail(conn: &mut AnyConnection, codec: &KeyCodec, id: i64) -> QueryResult<Option<KeyDetail>> {
    let row: Option<KeyDetailRow> = diesel::sql_query(
        "SELECT id, key, status, status_reason, total_balance, charge_balance, gift_balance, added_at, checked_at,          last_error, source, request_count, failure_count, last_used_at FROM keys WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .optional()?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(KeyDetail {
        id: r.id,
        key: super::keys::open_key(codec, r.key)?,
        status: r.status,
        status_reason: r.status_reason,
        total_balance: r.total_balance,
        charge_balance: r.charge_balance,
        gift_balance: r.gift_balance,
        added_at: r.added_at,
        checked_at: r.checked_at,
        last_error: r.last_error,
        source: r.source,
        request_count: r.request_count,
        failure_count: r.failure_count,
        last_used_at: r.last_used_at,
    }))
}

/// A key's balance history, oldest first (the latest 1,000 points).
pub fn key_history(conn: &mut AnyConnection, id: i64) -> QueryResult<Vec<(i64, f64)>> {
    #[derive(QueryableByName)]
    struct Point {
        #[diesel(sql_type = BigInt)]
        checked_at: i64,
        #[diesel(sql_type = Double)]
        total_balance: f64,
    }
    let mut rows: Vec<Point> = diesel::sql_query(
        "SELECT checked_at, total_balance FROM balance_history WHERE key_id = $1 ORDER BY checked_at DESC LIMIT 1000",
    )
    .bind::<BigInt, _>(id)
    .load(conn)?;
    rows.reverse();
    Ok(rows.into_iter().map(|p| (p.checked_at, p.total_balance)).collect())
}

#[derive(QueryableByName)]
struct KeyEventRow {
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub from_status: KeyStatus,
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub to_status: KeyStatus,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
}

/// A key's state changes, newest first (the latest 100).
pub fn key_events(conn: &mut AnyConnection, id: i64) -> QueryResult<Vec<KeyEvent>> {
    let rows: Vec<KeyEventRow> = diesel::sql_query(
        "SELECT at, from_status, to_status, reason FROM key_events WHERE key_id = $1 ORDER BY at DESC, id DESC LIMIT 100",
    )
    .bind::<BigInt, _>(id)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| KeyEvent { at: r.at, from_status: r.from_status, to_status: r.to_status, reason: r.reason })
        .collect())
}
