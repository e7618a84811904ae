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

pub fn active_balances(conn: &mut AnyConnection) -> QueryResult<ActiveBalances> {
    // Raw SQL: five aggregates in one pass, read by name.
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
    let at = |conn: &mut AnyConnection, skip: i64| -> QueryResult<Option<f64>> {
        use super::schema::keys as k;
        let active = k::table.filter(k::status.eq(KeyStatus::Active.as_str()));
        active.select(k::total_balance).order(k::total_balance).limit(1).offset(skip).get_result(conn)
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
    use super::schema::keys as k;
    let shown = [KeyStatus::Active, KeyStatus::Depleted, KeyStatus::Cooling].map(KeyStatus::as_str);
    k::table
        .select((diesel::dsl::min(k::total_balance), diesel::dsl::max(k::total_balance)))
        .filter(k::status.eq_any(shown))
        .filter(k::total_balance.is_not_null())
        .get_result(conn)
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
    // Raw SQL: one pass with a CASE naming each key's bucket, built from the bucket bounds.
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
    use super::schema::pool_snapshots as p;
    p::table
        .select((p::taken_at, p::total_balance))
        .filter(p::taken_at.ge(since))
        .order(p::taken_at)
        .limit(5000)
        .load(conn)
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
    // Raw SQL: the index order read backwards needs NULLS LAST on PostgreSQL only.
    diesel::sql_query(format!(
        "SELECT id, key, status, total_balance, added_at FROM keys WHERE status = 'active' ORDER BY {order} LIMIT $1"
    ))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .and_then(|lines| open_lines(codec, lines))
}

/// The most recently added keys.
pub fn recent_keys(conn: &mut AnyConnection, codec: &KeyCodec, limit: i64) -> QueryResult<Vec<KeyLine>> {
    // Raw SQL: shares KeyLine (read by name) with top_keys.
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
    // Raw SQL: fourteen columns read by name into KeyDetailRow, shared with the keys page's shape.
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
    use super::schema::balance_history as h;
    let mut rows: Vec<(i64, f64)> = h::table
        .select((h::checked_at, h::total_balance))
        .filter(h::key_id.eq(id))
        .order(h::checked_at.desc())
        .limit(1000)
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

#[derive(Queryable)]
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
    use super::schema::key_events as e;
    let rows: Vec<KeyEventRow> = e::table
        .select((e::at, e::from_status, e::to_status, e::reason))
        .filter(e::key_id.eq(id))
        .order((e::at.desc(), e::id.desc()))
        .limit(100)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| KeyEvent { at: r.at, from_status: r.from_status, to_status: r.to_status, reason: r.reason })
        .collect())
}

/// What the dashboard's first-run checklist ticks: whether any key exists, whether any was ever
/// checked, and whether an access key exists (a disabled one too: the step is to create one).
pub fn first_run_steps(conn: &mut AnyConnection) -> QueryResult<(bool, bool, bool)> {
    use super::schema::{access_keys, keys};
    let any = keys::table.select(keys::id).first::<i64>(conn).optional()?;
    let checked = keys::table.filter(keys::checked_at.is_not_null()).select(keys::id).first::<i64>(conn).optional()?;
    let access = access_keys::table.select(access_keys::id).first::<i64>(conn).optional()?;
    Ok((any.is_some(), checked.is_some(), access.is_some()))
}
