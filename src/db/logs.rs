//! Reading the request log: pages newest first by keyset on `id` (never OFFSET, never a COUNT over the
//! table), filters served by the indexes of `2026-11-30-000010_log_indexes` (`(access_key_id, id)`,
//! `(model, id)`, `(status class, id)`; none on the upstream key, which would slow the writer) and, on
//! the page, a bounded look through the newest ids ([`PAGE_SCAN`]); shared by the page, its CSV export
//! and `keypool logs`.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::statement::{Statement, Value};
use super::{AnyConnection, Backend, backend_of};
use crate::domain::logs::{AccessKeyRef, LogEntry, LogFilter, StatusClass};

/// The status class of a row, exactly as the index `request_log_class` is built on it (the planner
/// matches the expression text).
const CLASS_SQL: &str = "(CASE WHEN r.status < 400 THEN 'ok' WHEN r.status < 500 THEN '4xx' \
     WHEN r.status = 503 AND substr(r.error, 1, 16) = 'no key available' THEN 'no_key' ELSE '5xx' END)";

/// A time range with at most this many rows is read through the `at` index and sorted; a larger one
/// walks the id order (newest first) and stops at the page's end.
const SMALL_RANGE: i64 = 20_000;

/// A filter resolved against the database once (the access key's name, the time range's size), then
/// used for every slice.
#[derive(Debug, Clone)]
pub struct Plan {
    filter: LogFilter,
    from: Option<i64>,
    to: Option<i64>,
    /// The access key's id; `Some(None)` when the named access key does not exist (nothing matches).
    access_key_id: Option<Option<i64>>,
    /// Read the time range through its index (it is small).
    by_time: bool,
}

#[derive(QueryableByName)]
struct Record {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    access_key_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    access_key_name: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    key_id: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    key_text: Option<String>,
    #[diesel(sql_type = Text)]
    method: String,
    #[diesel(sql_type = Text)]
    path: String,
    #[diesel(sql_type = Nullable<Text>)]
    model: Option<String>,
    #[diesel(sql_type = BigInt)]
    status: i64,
    #[diesel(sql_type = BigInt)]
    latency_ms: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    ttfb_ms: Option<i64>,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    prompt_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    completion_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    total_tokens: Option<i64>,
    #[diesel(sql_type = Nullable<Double>)]
    cost: Option<f64>,
}

impl Record {
    fn into_entry(self) -> LogEntry {
        LogEntry {
            id: self.id,
            at: self.at,
            access_key_id: self.access_key_id,
            access_key_name: self.access_key_name,
            key_id: self.key_id,
            key: self.key_text,
            method: self.method,
            path: self.path,
            model: self.model,
            status: self.status,
            latency_ms: self.latency_ms,
            ttfb_ms: self.ttfb_ms,
            attempts: self.attempts,
            error: self.error,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.total_tokens,
            cost: self.cost,
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct OptId {
    #[diesel(sql_type = Nullable<BigInt>)]
    id: Option<i64>,
}

/// Resolves `filter` at `now` (a `since` counts back from it).
pub fn plan(conn: &mut AnyConnection, filter: &LogFilter, now: i64) -> QueryResult<Plan> {
    let (from, to) = filter.bounds(now);
    let access_key_id = match &filter.access_key {
        None => None,
        Some(AccessKeyRef::Id(id)) => Some(Some(*id)),
        Some(AccessKeyRef::Name(name)) => {
            // Raw SQL: the request log's dynamic filters, planned once for keyset pages.
            let mut st = Statement::default();
            st.sql("SELECT MIN(id) AS id FROM access_keys WHERE name = ").bind(Value::Text(name.clone()));
            Some(st.load::<OptId>(conn)?.into_iter().next().and_then(|r| r.id))
        }
    };
    let by_time = if from.is_some() || to.is_some() {
        let mut st = Statement::default();
        st.sql("SELECT COUNT(*) AS n FROM (SELECT 1 FROM request_log r WHERE 1 = 1");
        time_bounds(&mut st, from, to, true);
        st.sql(" LIMIT ").bind(Value::Int(SMALL_RANGE + 1)).sql(") t");
        st.load::<Count>(conn)?.into_iter().next().map_or(0, |c| c.n) <= SMALL_RANGE
    } else {
        false
    };
    Ok(Plan { filter: filter.clone(), from, to, access_key_id, by_time })
}

fn time_bounds(st: &mut Statement, from: Option<i64>, to: Option<i64>, indexed: bool) {
    // A unary `+` keeps the planner off the `at` index: a large range is best read in id order.
    let column = if indexed { " AND r.at" } else { " AND +r.at" };
    if let Some(from) = from {
        st.sql(column).sql(" >= ").bind(Value::Int(from));
    }
    if let Some(to) = to {
        st.sql(column).sql(" < ").bind(Value::Int(to));
    }
}

const COLUMNS: &str = "SELECT r.id, r.at, r.access_key_id, a.name AS access_key_name, r.key_id, k.key AS key_text, \
     r.method, r.path, r.model, r.status, r.latency_ms, r.ttfb_ms, r.attempts, r.error, r.prompt_tokens, \
     r.completion_tokens, r.total_tokens, r.cost FROM request_log r";

const JOINS: &str = " LEFT JOIN access_keys a ON a.id = r.access_key_id LEFT JOIN keys k ON k.id = r.key_id";

/// The ids one page of the log page looks through at most. A filter that matches few rows (or none)
/// would otherwise read an index's whole range, up to the whole log, before answering; the page says
/// how far it looked and offers to look further.
pub const PAGE_SCAN: i64 = 100_000;

/// A page of the log page: up to `limit` matching rows below `before`, looked for among the
/// [`PAGE_SCAN`] ids below it. `searched_to`: the lowest id looked at, when rows may remain older
/// than it (a "search older" link continues from there).
pub fn bounded_page(
    conn: &mut AnyConnection,
    plan: &Plan,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<(Vec<LogEntry>, Option<i64>)> {
    let ceiling = match before {
        Some(b) => b,
        None => {
            // Raw SQL: keyset pagination with a bounded scan (a LIMIT inside the window).
            let mut st = Statement::default();
            st.sql("SELECT MAX(id) AS id FROM request_log");
            match st.load::<OptId>(conn)?.into_iter().next().and_then(|r| r.id) {
                Some(max) => max + 1,
                None => return Ok((Vec::new(), None)),
            }
        }
    };
    let floor = ceiling - PAGE_SCAN;
    let rows = query_page(conn, plan, Some(ceiling), Some(floor), limit)?;
    let searched_to = ((rows.len() as i64) < limit && floor > 1).then_some(floor);
    Ok((rows, searched_to))
}

/// Up to `limit` rows matching the plan with an id below `before` (all: from the newest), newest first.
pub fn page(conn: &mut AnyConnection, plan: &Plan, before: Option<i64>, limit: i64) -> QueryResult<Vec<LogEntry>> {
    query_page(conn, plan, before, None, limit)
}

fn query_page(
    conn: &mut AnyConnection,
    plan: &Plan,
    before: Option<i64>,
    floor: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<LogEntry>> {
    if plan.access_key_id == Some(None) {
        return Ok(Vec::new());
    }
    let backend = backend_of(conn);
    let f = &plan.filter;
    // Raw SQL: keyset pagination over the dynamic filters.
    let mut st = Statement::default();
    st.sql(COLUMNS);
    if plan.by_time && backend == Backend::Sqlite {
        // SQLite without statistics reads a one-sided range in id order, the whole table when it is old.
        st.sql(" INDEXED BY request_log_time");
    }
    st.sql(JOINS).sql(" WHERE 1 = 1");
    if let Some(before) = before {
        st.sql(" AND r.id < ").bind(Value::Int(before));
    }
    if let Some(floor) = floor {
        st.sql(" AND r.id >= ").bind(Value::Int(floor));
    }
    time_bounds(&mut st, plan.from, plan.to, plan.by_time);
    if let Some(Some(id)) = plan.access_key_id {
        st.sql(" AND r.access_key_id = ").bind(Value::Int(id));
    }
    if let Some(model) = &f.model {
        st.sql(" AND r.model = ").bind(Value::Text(model.clone()));
    }
    if let Some(key) = f.key_id {
        st.sql(" AND r.key_id = ").bind(Value::Int(key));
    }
    if let Some(class) = f.class {
        st.sql(" AND ").sql(CLASS_SQL).sql(match class {
            StatusClass::Ok => " = 'ok'",
            StatusClass::CallerError => " = '4xx'",
            StatusClass::UpstreamError => " = '5xx'",
            StatusClass::NoKey => " = 'no_key'",
        });
    }
    if let Some(q) = &f.search {
        st.sql(match backend {
            Backend::Sqlite => " AND instr(lower(r.error), lower(",
            Backend::Postgres => " AND strpos(lower(r.error), lower(",
        });
        st.bind(Value::Text(q.clone())).sql(")) > 0");
    }
    st.sql(" ORDER BY r.id DESC LIMIT ").bind(Value::Int(limit));
    Ok(st.load::<Record>(conn)?.into_iter().map(Record::into_entry).collect())
}

/// Calls `write` with the matching rows, newest first, in slices of `slice` rows (constant memory);
/// starts below `before` (all: from the newest); stops early when `write` returns false. Returns how
/// many rows were written.
pub fn each_slice(
    conn: &mut AnyConnection,
    plan: &Plan,
    mut before: Option<i64>,
    slice: i64,
    mut write: impl FnMut(&[LogEntry]) -> bool,
) -> QueryResult<usize> {
    let mut written = 0;
    loop {
        let rows = page(conn, plan, before, slice)?;
        let Some(last) = rows.last() else { return Ok(written) };
        before = Some(last.id);
        written += rows.len();
        if !write(&rows) || (rows.len() as i64) < slice {
            return Ok(written);
        }
    }
}

/// The models seen in the log (at most `limit`, by name), read by skipping through the `(model, id)`
/// index one model at a time rather than scanning the rows.
pub fn models(conn: &mut AnyConnection, limit: i64) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Model {
        #[diesel(sql_type = Nullable<Text>)]
        v: Option<String>,
    }
    // Raw SQL: SELECT DISTINCT over a bounded recent window.
    let mut st = Statement::default();
    st.sql(
        "WITH RECURSIVE m(v) AS (SELECT MIN(model) FROM request_log \
         UNION ALL SELECT (SELECT MIN(model) FROM request_log WHERE model > m.v) FROM m WHERE m.v IS NOT NULL) \
         SELECT v FROM m WHERE v IS NOT NULL LIMIT ",
    )
    .bind(Value::Int(limit));
    Ok(st.load::<Model>(conn)?.into_iter().filter_map(|m| m.v).collect())
}

/// The access keys for the filter's select: (id, name), by name.
pub fn access_keys(conn: &mut AnyConnection) -> QueryResult<Vec<(i64, String)>> {
    #[derive(QueryableByName)]
    struct Named {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        name: String,
    }
    // Raw SQL: SELECT DISTINCT over a bounded recent window.
    let mut st = Statement::default();
    st.sql("SELECT id, name FROM access_keys ORDER BY name");
    Ok(st.load::<Named>(conn)?.into_iter().map(|n| (n.id, n.name)).collect())
}
