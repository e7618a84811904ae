//! What the proxy writes and reads: usage counters, key state changes and the request log, each batch
//! in one transaction (set-based statements per 200 keys; on SQLite, counters and log rows through
//! cached prepared statements, row by row); the keys the pool may route.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::AnyConnection;
use super::schema::{change_seq, key_model_blocks, request_log};
use super::statement::{Statement, Value};
use crate::domain::key_crypto::KeyCodec;
use crate::domain::key_state::{BlockKind, Evidence, KeyStatus, ModelBlock, Transition, decide};
use crate::domain::reason::Reason;
use crate::domain::usage::{PairBlock, Usage, UsageBatch};

/// A key the proxy may route (`active`, `cooling`, or `depleted` for free models), as loaded into
/// memory (read straight into this type: 100,000 of them are loaded at start-up).
#[derive(Debug, Clone, QueryableByName)]
pub struct PoolRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub status: KeyStatus,
    #[diesel(sql_type = Nullable<Double>)]
    pub total_balance: Option<f64>,
    /// The charged (paid-in) part of `total_balance`.
    #[diesel(sql_type = Nullable<Double>)]
    pub charge_balance: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub cooling_until: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub status_changed_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub checked_at: Option<i64>,
}

/// The long (key, model) blocks of loaded keys, by key id.
pub type KeyBlocks = std::collections::HashMap<i64, Vec<BlockRow>>;

/// A stored (key, model) block.
#[derive(Debug, Clone, PartialEq, QueryableByName, Queryable)]
pub struct BlockRow {
    #[diesel(sql_type = Text)]
    pub model: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = BigInt)]
    pub until_at: i64,
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
}

impl BlockRow {
    /// The block in memory (an unknown kind reads as "until the next check").
    pub fn to_block(&self) -> ModelBlock {
        ModelBlock {
            model: self.model.as_str().into(),
            kind: BlockKind::parse(&self.kind).unwrap_or(BlockKind::Refused),
            until: self.until_at,
            at: self.at,
            hinted: true,
            reason: self.reason.clone().unwrap_or_default(),
        }
    }
}

#[derive(QueryableByName)]
struct KeyBlockRow {
    #[diesel(sql_type = BigInt)]
    key_id: i64,
    #[diesel(embed)]
    block: BlockRow,
}

const POOL_COLUMNS: &str =
    "SELECT id, key, status, total_balance, charge_balance, cooling_until, status_changed_at, checked_at FROM keys";

/// The rows with their keys decrypted (a no-op for keys stored in clear).
fn open_rows(codec: &KeyCodec, rows: Vec<PoolRow>) -> QueryResult<Vec<PoolRow>> {
    rows.into_iter()
        .map(|mut r| {
            r.key = super::keys::open_key(codec, r.key)?;
            Ok(r)
        })
        .collect()
}

fn by_key(blocks: Vec<KeyBlockRow>) -> KeyBlocks {
    let mut out = KeyBlocks::new();
    for b in blocks {
        out.entry(b.key_id).or_default().push(b.block);
    }
    out
}

/// The states the proxy loads, as a SQL list (from the state machine).
fn routed_states() -> String {
    let states: Vec<String> =
        KeyStatus::ALL.into_iter().filter(|s| s.is_valid_for_routing()).map(|s| format!("'{}'", s.as_str())).collect();
    format!("({})", states.join(", "))
}

/// Every key the proxy routes and every block in force, and the change number they are current to.
/// Encrypted keys are decrypted here, once per load.
pub fn routable(conn: &mut AnyConnection, codec: &KeyCodec, now: i64) -> QueryResult<(Vec<PoolRow>, KeyBlocks, i64)> {
    conn.transaction(|conn| {
        let seq = change_seq(conn)?;
        // Raw SQL: the pool's columns (POOL_COLUMNS) and a JOIN of blocks, read by name.
        let rows = diesel::sql_query(format!("{POOL_COLUMNS} WHERE status IN {}", routed_states())).load(conn)?;
        let rows = open_rows(codec, rows)?;
        let blocks = diesel::sql_query(
            "SELECT key_id, model, kind, until_at, at, reason FROM key_model_blocks WHERE until_at > $1",
        )
        .bind::<BigInt, _>(now)
        .load(conn)?;
        Ok((rows, by_key(blocks), seq))
    })
}

/// The number of the latest change to any key (insert, delete, status, balance, cooling).
pub fn change_seq(conn: &mut AnyConnection) -> QueryResult<i64> {
    change_seq::table.find(1).select(change_seq::n).get_result(conn)
}

/// What changed since a change number.
#[derive(Debug, Default)]
pub struct Changes {
    /// The changed keys (any state) and their blocks.
    pub rows: Vec<PoolRow>,
    pub blocks: KeyBlocks,
    /// Ids of deleted keys.
    pub deleted: Vec<i64>,
    /// The change number this is current to.
    pub seq: i64,
}

/// What changed after change number `since`.
pub fn changed_since(conn: &mut AnyConnection, codec: &KeyCodec, since: i64) -> QueryResult<Changes> {
    #[derive(QueryableByName)]
    struct Gone {
        #[diesel(sql_type = BigInt)]
        key_id: i64,
    }
    conn.transaction(|conn| {
        let seq = change_seq(conn)?;
        if seq <= since {
            return Ok(Changes { seq, ..Changes::default() });
        }
        // Raw SQL: the pool's columns and blocks since a change number, and the tombstones table (not in the DSL
        // schema).
        let rows = diesel::sql_query(format!("{POOL_COLUMNS} WHERE changed_seq > $1 AND changed_seq <= $2"))
            .bind::<BigInt, _>(since)
            .bind::<BigInt, _>(seq)
            .load(conn)?;
        let rows = open_rows(codec, rows)?;
        let blocks = diesel::sql_query(
            "SELECT b.key_id, b.model, b.kind, b.until_at, b.at, b.reason FROM key_model_blocks b \
             JOIN keys k ON k.id = b.key_id WHERE k.changed_seq > $1 AND k.changed_seq <= $2",
        )
        .bind::<BigInt, _>(since)
        .bind::<BigInt, _>(seq)
        .load(conn)?;

        let gone = diesel::sql_query("SELECT key_id FROM key_tombstones WHERE seq > $1 AND seq <= $2")
            .bind::<BigInt, _>(since)
            .bind::<BigInt, _>(seq)
            .load::<Gone>(conn)?;
        Ok(Changes { rows, blocks: by_key(blocks), deleted: gone.into_iter().map(|g| g.key_id).collect(), seq })
    })
}

/// Deletes tombstones every reader has long seen (older than `keep` changes).
pub fn prune_tombstones(conn: &mut AnyConnection, keep: i64) -> QueryResult<usize> {
    // Raw SQL: a subquery on change_seq in the bound.
    diesel::sql_query("DELETE FROM key_tombstones WHERE seq < (SELECT n FROM change_seq WHERE id = 1) - $1")
        .bind::<BigInt, _>(keep)
        .execute(conn)
}

#[derive(QueryableByName)]
struct CurrentState {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text, deserialize_as = String)]
    status: KeyStatus,
    #[diesel(sql_type = Nullable<BigInt>)]
    status_changed_at: Option<i64>,
}

/// A decided move, ready to be written.
pub(crate) struct Move<R: AsRef<str>> {
    pub key_id: i64,
    pub from: KeyStatus,
    pub to: KeyStatus,
    pub cooling_until: Option<i64>,
    pub reason: R,
    pub at: i64,
}

/// Writes decided moves (data only: each row's new state, decided by the state machine) and their
/// events.
pub(crate) fn write_moves<R: AsRef<str>>(conn: &mut AnyConnection, moves: &[Move<R>]) -> QueryResult<()> {
    for chunk in moves.chunks(200) {
        let cte = |st: &mut Statement| {
            st.sql("WITH v (id, from_status, new_status, reason, at, until_at) AS (VALUES ");
            for (i, m) in chunk.iter().enumerate() {
                st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
                st.bind(Value::Int(m.key_id)).sql(" AS BIGINT), CAST(");
                st.bind(Value::Text(m.from.as_str().to_owned())).sql(" AS TEXT), CAST(");
                st.bind(Value::Text(m.to.as_str().to_owned())).sql(" AS TEXT), CAST(");
                st.bind(Value::Text(m.reason.as_ref().to_owned())).sql(" AS TEXT), CAST(");
                st.bind(Value::Int(m.at)).sql(" AS BIGINT), CAST(");
                st.bind(Value::OptInt(m.cooling_until)).sql(" AS BIGINT))");
            }
            st.sql(")");
        };
        // Raw SQL: batch writes from VALUES lists (one statement per kind of change).
        let mut st = Statement::default();
        cte(&mut st);
        st.sql(" INSERT INTO key_events (key_id, at, from_status, to_status, reason) ");
        st.sql("SELECT v.id, v.at, v.from_status, v.new_status, v.reason FROM v WHERE v.from_status <> v.new_status");
        st.execute(conn)?;
        let mut st = Statement::default();
        cte(&mut st);
        st.sql(" UPDATE keys SET status = v.new_status, status_reason = v.reason, status_changed_at = v.at, ");
        st.sql("cooling_until = v.until_at, last_error = v.reason FROM v WHERE keys.id = v.id");
        st.execute(conn)?;
    }
    Ok(())
}

/// The current state of keys (for deciding evidence against it), by id.
pub(crate) fn current_states(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> QueryResult<std::collections::HashMap<i64, (KeyStatus, i64)>> {
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // Raw SQL: batch writes from VALUES lists (one statement per kind of change).
        let mut st = Statement::default();
        st.sql("SELECT id, status, status_changed_at FROM keys WHERE id IN (");
        st.bind_list(chunk.iter().map(|id| Value::Int(*id)));
        st.sql(")");
        for r in st.load::<CurrentState>(conn)? {
            out.insert(r.id, (r.status, r.status_changed_at.unwrap_or(0)));
        }
    }
    Ok(out)
}

/// Writes a batch in one transaction. Each state change is decided again against the key's state in
/// the database now: a change made since (a check, an admin) is newer evidence and wins, and the
/// state machine says what the evidence does to the state found (a disabled key stays disabled).
///
/// A failure returns its first error (say, "database or disk is full"), not the rollback's: SQLite
/// rolls such a transaction back itself, and diesel's own rollback then only finds no transaction.
pub fn record(conn: &mut AnyConnection, batch: &UsageBatch) -> QueryResult<()> {
    transaction_with_cause(conn, |conn| {
        // In id order: the rows' pages in order.
        let mut keys: Vec<(i64, Usage)> = batch.keys.iter().map(|(k, u)| (*k, *u)).collect();
        keys.sort_unstable_by_key(|(k, _)| *k);
        add_usage(conn, "keys", &keys)?;
        let mut access: Vec<(i64, Usage)> = batch.access_keys.iter().map(|(k, u)| (*k, *u)).collect();
        access.sort_unstable_by_key(|(k, _)| *k);
        add_usage(conn, "access_keys", &access)?;
        if !batch.changes.is_empty() {
            let ids: Vec<i64> = batch.changes.keys().copied().collect();
            let current = current_states(conn, &ids)?;
            let cooling: Vec<i64> =
                ids.iter().copied().filter(|id| current.get(id).is_some_and(|c| c.0 == KeyStatus::Cooling)).collect();
            let cooling_until = cooling_ends(conn, &cooling)?;
            // A cooling that had ended when the evidence came (the proxy saw the key active again, and
            // the writer had not yet said so) ends first, so no move is lost from the key's history.
            let cooling_ended = Reason::CoolingEnded.encode();
            let mut ended: Vec<Move<&str>> = Vec::new();
            let mut moves: Vec<Move<&str>> = Vec::new();
            for c in batch.changes.values() {
                let Some(&(mut from, changed_at)) = current.get(&c.key_id) else { continue };
                if changed_at > c.at {
                    continue;
                }
                if let Some(&until) = cooling_until.get(&c.key_id)
                    && until <= c.at
                    && let Transition::Move { to, cooling_until } = decide(from, &Evidence::CoolingEnded)
                {
                    ended.push(Move { key_id: c.key_id, from, to, cooling_until, reason: &cooling_ended, at: until });
                    from = to;
                }
                if let Transition::Move { to, cooling_until } = decide(from, &c.evidence) {
                    moves.push(Move { key_id: c.key_id, from, to, cooling_until, reason: c.reason.as_str(), at: c.at });
                }
            }
            write_moves(conn, &ended)?;
            write_moves(conn, &moves)?;
        }
        write_blocks(conn, batch.blocks.values())?;
        insert_log(conn, &batch.log)?;
        add_rollups(conn, &crate::domain::usage::rollups(&batch.log))?;
        Ok(())
    })
}

/// When the cooling of these keys ends (keys without one are left out).
fn cooling_ends(conn: &mut AnyConnection, ids: &[i64]) -> QueryResult<std::collections::HashMap<i64, i64>> {
    #[derive(QueryableByName)]
    struct Until {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        cooling_until: i64,
    }
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        // Raw SQL: one UPDATE … FROM (VALUES …) for the keys whose cooling ended.
        let mut st = Statement::default();
        st.sql("SELECT id, cooling_until FROM keys WHERE cooling_until IS NOT NULL AND id IN (");
        st.bind_list(chunk.iter().map(|id| Value::Int(*id)));
        st.sql(")");
        for r in st.load::<Until>(conn)? {
            out.insert(r.id, r.cooling_until);
        }
    }
    Ok(out)
}

/// Runs `f` in a transaction; on failure, the error that made it fail, whatever the rollback says.
fn transaction_with_cause<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    let mut cause = None;
    let result = conn.transaction(|conn| {
        f(conn).map_err(|e| {
            cause = Some(e);
            diesel::result::Error::RollbackTransaction
        })
    });
    match (result, cause) {
        (Ok(value), _) => Ok(value),
        (Err(diesel::result::Error::RollbackTransaction), Some(cause)) => Err(cause),
        (Err(rollback), Some(cause)) => {
            tracing::debug!(error = %rollback, "the failed transaction's rollback failed too");
            Err(cause)
        }
        (Err(e), None) => Err(e),
    }
}

/// Upserts (key, model) blocks and moves their keys' change numbers, so the other instances read them.
fn write_blocks<'a>(conn: &mut AnyConnection, blocks: impl Iterator<Item = &'a PairBlock>) -> QueryResult<()> {
    let blocks: Vec<&PairBlock> = blocks.collect();
    for chunk in blocks.chunks(200) {
        // Raw SQL: a batch upsert of blocks (upsert is not in the multi-backend DSL).
        let mut st = Statement::default();
        st.sql("WITH v (key_id, model, kind, until_at, at, reason) AS (VALUES ");
        for (i, b) in chunk.iter().enumerate() {
            st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
            st.bind(Value::Int(b.key_id)).sql(" AS BIGINT), CAST(");
            st.bind(Value::Text(b.model.clone())).sql(" AS TEXT), CAST(");
            st.bind(Value::Text(b.kind.as_str().to_owned())).sql(" AS TEXT), CAST(");
            st.bind(Value::Int(b.until)).sql(" AS BIGINT), CAST(");
            st.bind(Value::Int(b.at)).sql(" AS BIGINT), CAST(");
            st.bind(Value::Text(b.reason.clone())).sql(" AS TEXT))");
        }
        // Only keys that still exist; the later block of a pair wins.
        st.sql(") INSERT INTO key_model_blocks (key_id, model, kind, until_at, at, reason) ");
        st.sql("SELECT k.id, v.model, v.kind, v.until_at, v.at, v.reason FROM v JOIN keys k ON k.id = v.key_id WHERE true ");
        st.sql("ON CONFLICT (key_id, model) DO UPDATE SET kind = excluded.kind, until_at = excluded.until_at, ");
        st.sql("at = excluded.at, reason = excluded.reason WHERE key_model_blocks.at <= excluded.at");
        st.execute(conn)?;
        // Touching `cooling_until` takes the next change number (the change-tracking triggers).
        let mut st = Statement::default();
        st.sql("UPDATE keys SET cooling_until = cooling_until WHERE id IN (");
        st.bind_list(chunk.iter().map(|b| Value::Int(b.key_id)));
        st.sql(")");
        st.execute(conn)?;
    }
    Ok(())
}

/// Ends the blocks that last until the key's next check, for keys just checked.
pub fn end_blocks_at_check(conn: &mut AnyConnection, ids: &[i64]) -> QueryResult<usize> {
    let kinds: Vec<BlockKind> = BlockKind::ALL.into_iter().filter(|k| k.ends_at_check()).collect();
    let mut n = 0;
    for chunk in ids.chunks(500) {
        // Raw SQL: a batch DELETE … WHERE (key_id, kind) IN a VALUES list.
        let mut st = Statement::default();
        st.sql("DELETE FROM key_model_blocks WHERE kind IN (");
        st.bind_list(kinds.iter().map(|k| Value::Text(k.as_str().to_owned())));
        st.sql(") AND key_id IN (");
        st.bind_list(chunk.iter().map(|id| Value::Int(*id)));
        st.sql(")");
        n += st.execute(conn)?;
    }
    Ok(n)
}

/// Deletes blocks that ended before `before`.
pub fn prune_blocks(conn: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(key_model_blocks::table.filter(key_model_blocks::until_at.lt(before))).execute(conn)
}

/// Every block in force on a key (for its detail page).
pub fn blocks_of(conn: &mut AnyConnection, key_id: i64, now: i64) -> QueryResult<Vec<BlockRow>> {
    use key_model_blocks as b;
    b::table
        .select((b::model, b::kind, b::until_at, b::at, b::reason))
        .filter(b::key_id.eq(key_id))
        .filter(b::until_at.gt(now))
        .order(b::until_at)
        .load(conn)
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
    prompt_tokens: Option<i64>,
    completion_tokens: Option<i64>,
    total_tokens: Option<i64>,
    cost: Option<f64>,
    outcome: &'static str,
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
            prompt_tokens: r.tokens.map(|t| t.prompt_tokens),
            completion_tokens: r.tokens.map(|t| t.completion_tokens),
            total_tokens: r.tokens.map(|t| t.total_tokens),
            cost: r.cost,
            outcome: r.outcome.as_str(),
        })
        .collect();
    match conn {
        // Row by row rather than diesel's batch insert, which wraps the rows in a savepoint: when
        // SQLite rolls the whole transaction back (a full disk), rolling back to that savepoint fails
        // and its error would hide the cause.
        AnyConnection::Sqlite(c) => {
            for row in &rows {
                diesel::insert_into(request_log::table).values(row).execute(c)?;
            }
        }
        AnyConnection::Postgresql(c) => {
            for chunk in rows.chunks(1000) {
                diesel::insert_into(request_log::table).values(chunk).execute(c)?;
            }
        }
    }
    Ok(())
}

/// Adds roll-up sums to their rows (created at zero when new), one statement per row: a tick has a
/// few rows per access key x model x outcome, whatever the request rate.
fn add_rollups(
    conn: &mut AnyConnection,
    rollups: &std::collections::BTreeMap<crate::domain::usage::RollupKey, crate::domain::usage::RollupSums>,
) -> QueryResult<()> {
    use crate::domain::usage::Scope;
    for (k, v) in rollups {
        // Raw SQL: a batch upsert that adds to the roll-up counters.
        let mut st = Statement::default();
        match &k.scope {
            Scope::Group { access_key_id, model } => {
                st.sql("INSERT INTO usage_rollups (period, bucket_at, access_key_id, model, outcome, ");
                st.sql(SUM_COLUMNS).sql(") VALUES (");
                st.bind(Value::Int(k.period)).sql(", ");
                st.bind(Value::Int(k.bucket_at)).sql(", ");
                st.bind(Value::Int(*access_key_id)).sql(", ");
                st.bind(Value::Text(model.clone())).sql(", ");
            }
            Scope::All => {
                st.sql("INSERT INTO traffic_rollups (period, bucket_at, outcome, ").sql(SUM_COLUMNS).sql(") VALUES (");
                st.bind(Value::Int(k.period)).sql(", ");
                st.bind(Value::Int(k.bucket_at)).sql(", ");
            }
        }
        st.bind(Value::Text(k.outcome.as_str().to_owned())).sql(", ");
        st.bind(Value::Int(v.requests)).sql(", ");
        st.bind(Value::Int(v.prompt_tokens)).sql(", ");
        st.bind(Value::Int(v.completion_tokens)).sql(", ");
        st.bind(Value::Float(v.cost)).sql(", ");
        st.bind(Value::Int(v.latency_sum_ms));
        for n in v.latency {
            st.sql(", ").bind(Value::Int(n));
        }
        match &k.scope {
            Scope::Group { .. } => {
                st.sql(") ON CONFLICT (period, bucket_at, access_key_id, model, outcome) DO UPDATE SET ");
                st.sql(&ADD_USAGE);
            }
            Scope::All => {
                st.sql(") ON CONFLICT (period, bucket_at, outcome) DO UPDATE SET ").sql(&ADD_TRAFFIC);
            }
        }
        st.execute(conn)?;
    }
    Ok(())
}

const SUM_COLUMNS: &str = "requests, prompt_tokens, completion_tokens, cost, latency_sum_ms, lat_0, lat_1, lat_2, \
     lat_3, lat_4, lat_5, lat_6, lat_7, lat_8, lat_9, lat_10, lat_11";

/// `column = table.column + excluded.column` for every summed column of `table`.
fn add_sums(table: &str) -> String {
    SUM_COLUMNS.split(", ").map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect::<Vec<_>>().join(", ")
}

static ADD_USAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| add_sums("usage_rollups"));
static ADD_TRAFFIC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| add_sums("traffic_rollups"));

/// Deletes roll-ups (by group and overall) of `period` older than `before`.
pub fn prune_rollups(conn: &mut AnyConnection, period: i64, before: i64) -> QueryResult<usize> {
    let mut deleted = 0;
    for sql in [
        "DELETE FROM usage_rollups WHERE period = $1 AND bucket_at < $2",
        "DELETE FROM traffic_rollups WHERE period = $1 AND bucket_at < $2",
    ] {
        // Raw SQL: the table is chosen by the period (one statement text per table).
        deleted += diesel::sql_query(sql).bind::<BigInt, _>(period).bind::<BigInt, _>(before).execute(conn)?;
    }
    Ok(deleted)
}

diesel::define_sql_function! {
    /// SQLite's two-argument `max`: the later of two times.
    #[sql_name = "max"]
    fn later(a: BigInt, b: BigInt) -> BigInt;
}

diesel::define_sql_function! {
    /// A time that may be missing, as 0 when it is.
    #[sql_name = "coalesce"]
    fn or_zero(a: Nullable<BigInt>, b: BigInt) -> BigInt;
}

/// On SQLite, one prepared update run per row (diesel caches it, as for the log: the counters are
/// written every tick, with the log).
macro_rules! add_usage_each {
    ($conn:expr, $table:ident, $rows:expr) => {{
        use super::schema::$table::dsl as t;
        for (id, u) in $rows {
            diesel::update(t::$table.filter(t::id.eq(*id)))
                .set((
                    t::request_count.eq(t::request_count + u.requests),
                    t::failure_count.eq(t::failure_count + u.failures),
                    t::last_used_at.eq(later(or_zero(t::last_used_at, 0i64), u.last_used_at).nullable()),
                ))
                .execute($conn)?;
        }
    }};
}

/// Adds request and failure counts and moves the last use forward, on `keys` or `access_keys`: on
/// SQLite a prepared update per row, on PostgreSQL set-based updates of 200 rows.
fn add_usage(conn: &mut AnyConnection, table: &'static str, rows: &[(i64, Usage)]) -> QueryResult<()> {
    if let AnyConnection::Sqlite(c) = conn {
        match table {
            "keys" => add_usage_each!(c, keys, rows),
            "access_keys" => add_usage_each!(c, access_keys, rows),
            other => {
                return Err(diesel::result::Error::QueryBuilderError(format!("no usage counters on {other}").into()));
            }
        }
        return Ok(());
    }
    for chunk in rows.chunks(200) {
        // Raw SQL: one batch UPDATE … FROM (VALUES …) of the keys' counters.
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

/// Decides "cooling ended" for keys whose cooling is over; returns how many moved.
pub fn end_cooling(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    conn.transaction(|conn| {
        #[derive(QueryableByName)]
        struct Due {
            #[diesel(sql_type = BigInt)]
            id: i64,
            #[diesel(sql_type = Text, deserialize_as = String)]
            status: KeyStatus,
            #[diesel(sql_type = BigInt)]
            cooling_until: i64,
        }
        // Raw SQL: reads due keys and moves them through the state machine in one batch.
        let due: Vec<Due> = diesel::sql_query(
            "SELECT id, status, cooling_until FROM keys WHERE cooling_until IS NOT NULL AND cooling_until <= $1 \
             AND status = $2",
        )
        .bind::<BigInt, _>(now)
        .bind::<Text, _>(KeyStatus::Cooling.as_str())
        .load(conn)?;
        let reason = Reason::CoolingEnded.encode();
        let reason = reason.as_str();
        let moves: Vec<Move<&str>> = due
            .iter()
            .filter_map(|d| {
                let from = d.status;
                match decide(from, &Evidence::CoolingEnded) {
                    Transition::Move { to, cooling_until } => {
                        Some(Move { key_id: d.id, from, to, cooling_until, reason, at: d.cooling_until })
                    }
                    _ => None,
                }
            })
            .collect();
        write_moves(conn, &moves)?;
        Ok(moves.len())
    })
}

/// Deletes request-log rows older than `before`; returns how many went.
pub fn prune_request_log(conn: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(request_log::table.filter(request_log::at.lt(before))).execute(conn)
}
