//! Traffic read from the roll-ups, never from the request log: charts over time read the overall
//! `traffic_rollups` (a few rows per bucket), totals per model or access key read `usage_rollups` as
//! whole days plus the hours before the first whole day. Every query is a range of one period's
//! buckets (the primary key's prefix), so its cost follows the window, not the size of the log.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

use super::AnyConnection;
use super::statement::{Statement, Value};
use crate::domain::usage::{DAY, HOUR, LATENCY_BUCKETS, Outcome, RollupSums};

/// Sums per time step and outcome over all traffic (`traffic_rollups`), from `period` rows since
/// `since`, grouped into steps of `step` ms: a few rows per bucket whatever the keys and models.
pub fn series(
    conn: &mut AnyConnection,
    period: i64,
    since: i64,
    step: i64,
) -> QueryResult<Vec<(i64, Outcome, RollupSums)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        step_at: i64,
        #[diesel(sql_type = Text)]
        outcome: String,
        #[diesel(embed)]
        sums: SumsRow,
    }
    // Raw SQL: roll-up series grouped by a bucket expression computed from the period.
    let mut st = Statement::default();
    st.sql("SELECT bucket_at - (bucket_at % ").bind(Value::Int(step)).sql(") AS step_at, outcome, ").sql(SUMS);
    st.sql(" FROM traffic_rollups WHERE period = ").bind(Value::Int(period));
    st.sql(" AND bucket_at >= ").bind(Value::Int(since));
    st.sql(" GROUP BY 1, outcome ORDER BY 1");
    let rows: Vec<Row> = st.load(conn)?;
    Ok(rows.into_iter().map(|r| (r.step_at, Outcome::parse(&r.outcome), r.sums.into())).collect())
}

/// The per-group roll-ups since `since` (aligned down to its hour), read as whole UTC days where
/// possible and hours for the part before the first whole day: at most ~24 hourly rows plus one
/// daily row per group and day, however long the window.
fn window_rows(st: &mut Statement, columns: &'static str, since: i64) {
    let since = since - since.rem_euclid(HOUR);
    let first_day = since + (DAY - since.rem_euclid(DAY)) % DAY;
    st.sql("(SELECT ").sql(columns).sql(" FROM usage_rollups WHERE period = ").bind(Value::Int(DAY));
    st.sql(" AND bucket_at >= ").bind(Value::Int(first_day));
    st.sql(" UNION ALL SELECT ").sql(columns).sql(" FROM usage_rollups WHERE period = ").bind(Value::Int(HOUR));
    st.sql(" AND bucket_at >= ").bind(Value::Int(since)).sql(" AND bucket_at < ").bind(Value::Int(first_day));
    st.sql(") u");
}

const GROUP_COLUMNS: &str = "access_key_id, model, requests, prompt_tokens, completion_tokens, cost";

/// Totals per model (most tokens first, at most `limit`) or per access key (by cost), since `since`.
pub fn totals_by(conn: &mut AnyConnection, by: By, since: i64, limit: i64) -> QueryResult<Vec<Total>> {
    // Raw SQL: grouped sums over the roll-ups with a dynamic grouping column.
    let mut st = Statement::default();
    match by {
        By::Model => {
            st.sql("SELECT u.model AS name, ").sql(TOTALS).sql(" FROM ");
            window_rows(&mut st, GROUP_COLUMNS, since);
            st.sql(" WHERE u.model <> '' GROUP BY u.model ");
            st.sql("ORDER BY SUM(u.prompt_tokens) + SUM(u.completion_tokens) DESC, u.model LIMIT ");
        }
        By::AccessKey => {
            st.sql("SELECT COALESCE(a.name, '#' || CAST(u.access_key_id AS TEXT)) AS name, ").sql(TOTALS);
            st.sql(" FROM ");
            window_rows(&mut st, GROUP_COLUMNS, since);
            st.sql(" LEFT JOIN access_keys a ON a.id = u.access_key_id WHERE u.access_key_id <> 0 ");
            st.sql("GROUP BY u.access_key_id, a.name ORDER BY SUM(u.cost) DESC, SUM(u.requests) DESC LIMIT ");
        }
    }
    st.bind(Value::Int(limit));
    st.load(conn)
}

const TOTALS: &str = "CAST(SUM(u.requests) AS BIGINT) AS requests, CAST(SUM(u.prompt_tokens) AS BIGINT) AS \
     prompt_tokens, CAST(SUM(u.completion_tokens) AS BIGINT) AS completion_tokens, \
     CAST(SUM(u.cost) AS DOUBLE PRECISION) AS cost";

/// What [`totals_by`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    Model,
    AccessKey,
}

/// Requests, tokens and cost of one model or access key.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Total {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub requests: i64,
    #[diesel(sql_type = BigInt)]
    pub prompt_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub completion_tokens: i64,
    #[diesel(sql_type = Double)]
    pub cost: f64,
}

/// Requests, tokens and cost per access key id since `since`.
pub fn per_access_key(conn: &mut AnyConnection, since: i64) -> QueryResult<Vec<(i64, Total)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        access_key_id: i64,
        #[diesel(embed)]
        total: Total,
    }
    // Raw SQL: grouped sums joined to the access keys.
    let mut st = Statement::default();
    st.sql("SELECT u.access_key_id, '' AS name, ").sql(TOTALS).sql(" FROM ");
    window_rows(&mut st, GROUP_COLUMNS, since);
    st.sql(" WHERE u.access_key_id <> 0 GROUP BY u.access_key_id");
    let rows: Vec<Row> = st.load(conn)?;
    Ok(rows.into_iter().map(|r| (r.access_key_id, r.total)).collect())
}

/// Measured cost per hour since `since`: (hour, cost) for hours with traffic.
pub fn hourly_cost(conn: &mut AnyConnection, since: i64) -> QueryResult<Vec<(i64, f64)>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        bucket_at: i64,
        #[diesel(sql_type = Double)]
        cost: f64,
    }
    // Raw SQL: grouped sums of the cost by hour.
    let mut st = Statement::default();
    st.sql("SELECT bucket_at, CAST(SUM(cost) AS DOUBLE PRECISION) AS cost FROM traffic_rollups WHERE period = ");
    st.bind(Value::Int(HOUR)).sql(" AND bucket_at >= ").bind(Value::Int(since));
    st.sql(" GROUP BY bucket_at ORDER BY bucket_at");
    let rows: Vec<Row> = st.load(conn)?;
    Ok(rows.into_iter().map(|r| (r.bucket_at, r.cost)).collect())
}

const SUMS: &str = "CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
     CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, CAST(SUM(cost) AS DOUBLE PRECISION) AS cost, \
     CAST(SUM(latency_sum_ms) AS BIGINT) AS latency_sum_ms, CAST(SUM(lat_0) AS BIGINT) AS lat_0, \
     CAST(SUM(lat_1) AS BIGINT) AS lat_1, CAST(SUM(lat_2) AS BIGINT) AS lat_2, CAST(SUM(lat_3) AS BIGINT) AS lat_3, \
     CAST(SUM(lat_4) AS BIGINT) AS lat_4, CAST(SUM(lat_5) AS BIGINT) AS lat_5, CAST(SUM(lat_6) AS BIGINT) AS lat_6, \
     CAST(SUM(lat_7) AS BIGINT) AS lat_7, CAST(SUM(lat_8) AS BIGINT) AS lat_8, CAST(SUM(lat_9) AS BIGINT) AS lat_9, \
     CAST(SUM(lat_10) AS BIGINT) AS lat_10, CAST(SUM(lat_11) AS BIGINT) AS lat_11";

#[derive(QueryableByName)]
struct SumsRow {
    #[diesel(sql_type = BigInt)]
    requests: i64,
    #[diesel(sql_type = BigInt)]
    prompt_tokens: i64,
    #[diesel(sql_type = BigInt)]
    completion_tokens: i64,
    #[diesel(sql_type = Double)]
    cost: f64,
    #[diesel(sql_type = BigInt)]
    latency_sum_ms: i64,
    #[diesel(sql_type = BigInt)]
    lat_0: i64,
    #[diesel(sql_type = BigInt)]
    lat_1: i64,
    #[diesel(sql_type = BigInt)]
    lat_2: i64,
    #[diesel(sql_type = BigInt)]
    lat_3: i64,
    #[diesel(sql_type = BigInt)]
    lat_4: i64,
    #[diesel(sql_type = BigInt)]
    lat_5: i64,
    #[diesel(sql_type = BigInt)]
    lat_6: i64,
    #[diesel(sql_type = BigInt)]
    lat_7: i64,
    #[diesel(sql_type = BigInt)]
    lat_8: i64,
    #[diesel(sql_type = BigInt)]
    lat_9: i64,
    #[diesel(sql_type = BigInt)]
    lat_10: i64,
    #[diesel(sql_type = BigInt)]
    lat_11: i64,
}

impl From<SumsRow> for RollupSums {
    fn from(r: SumsRow) -> Self {
        let latency: [i64; LATENCY_BUCKETS] = [
            r.lat_0, r.lat_1, r.lat_2, r.lat_3, r.lat_4, r.lat_5, r.lat_6, r.lat_7, r.lat_8, r.lat_9, r.lat_10,
            r.lat_11,
        ];
        Self {
            requests: r.requests,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost: r.cost,
            latency_sum_ms: r.latency_sum_ms,
            latency,
        }
    }
}
