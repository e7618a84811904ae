//! Writing check results (key state, balances, history) in batches, history retention, and leases
//! for work that must run on one instance at a time.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::AnyConnection;
use super::schema::{balance_history, leases};
use super::statement::{Statement, Value};
use crate::domain::checks::{Balances, CheckOutcome};
use crate::domain::key_state::{Evidence, Transition, decide};
use crate::domain::keys::KeyStatus;

/// Writes a batch of results in one transaction, a few set-based statements per 200 results (not
/// one per key). What a result does to a key's state is the state machine's decision against the state
/// found now (a disabled key keeps its state, but its balance is recorded); a transient failure only
/// sets the last error. A result with a balance ends the key's blocks that last until its next check.
pub fn record(
    conn: &mut AnyConnection,
    results: &[(i64, CheckOutcome)],
    min_balance: f64,
    now: i64,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        for chunk in results.chunks(200) {
            let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
            let current = super::usage::current_states(conn, &ids)?;
            let writes = ChunkWrites::decide(chunk, &current, min_balance, now);
            super::usage::write_moves(conn, &writes.moves)?;
            write_balances(conn, &writes.balances, now)?;
            write_errors(conn, &writes.errors, now)?;
        }
        Ok(())
    })
}

/// What one chunk of results writes: state moves, balances, and errors (`true` when the upstream
/// answered, so the key counts as checked).
struct ChunkWrites<'a> {
    moves: Vec<super::usage::Move<String>>,
    balances: Vec<(i64, &'a Balances)>,
    errors: Vec<(i64, String, bool)>,
}

impl<'a> ChunkWrites<'a> {
    /// Sorts the results of keys that still exist, each state move decided against `current`.
    fn decide(
        chunk: &'a [(i64, CheckOutcome)],
        current: &std::collections::HashMap<i64, (KeyStatus, i64)>,
        min_balance: f64,
        now: i64,
    ) -> Self {
        let mut writes = Self { moves: Vec::new(), balances: Vec::new(), errors: Vec::new() };
        for (id, outcome) in chunk {
            let Some((from, _)) = current.get(id).copied() else { continue };
            let (evidence, reason) = match outcome {
                CheckOutcome::Balance(b) => {
                    writes.balances.push((*id, b));
                    let reason = outcome.transition(min_balance).map(|(_, reason)| reason.encode()).unwrap_or_default();
                    (Evidence::Balance { total: b.total, min_balance }, reason)
                }
                CheckOutcome::Invalid(reason) => {
                    let reason = reason.encode();
                    writes.errors.push((*id, reason.clone(), true));
                    (Evidence::KeyInvalid, reason)
                }
                CheckOutcome::Transient(reason) => {
                    let reason = reason.encode();
                    writes.errors.push((*id, reason.clone(), false));
                    (Evidence::Transient, reason)
                }
            };
            if let Transition::Move { to, cooling_until } = decide(from, &evidence) {
                writes.moves.push(super::usage::Move { key_id: *id, from, to, cooling_until, reason, at: now });
            }
        }
        writes
    }
}

/// Stores the balances read, appends them to the history and ends the keys' blocks that last until
/// their next check.
fn write_balances(conn: &mut AnyConnection, balances: &[(i64, &Balances)], now: i64) -> QueryResult<()> {
    if balances.is_empty() {
        return Ok(());
    }
    // One `VALUES` list updates the whole chunk in a statement (diesel's DSL has no UPDATE … FROM).
    // Raw SQL: one batch UPDATE from a VALUES list per chunk (a statement per key would be thousands of round trips).
    let mut st = Statement::default();
    st.sql("WITH v (id, total, charge, gift) AS (VALUES ");
    for (i, (id, b)) in balances.iter().enumerate() {
        st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
        st.bind(Value::Int(*id)).sql(" AS BIGINT), CAST(").bind(Value::Float(b.total));
        st.sql(" AS DOUBLE PRECISION), CAST(").bind(Value::Float(b.charge));
        st.sql(" AS DOUBLE PRECISION), CAST(").bind(Value::Float(b.gift));
        st.sql(" AS DOUBLE PRECISION))");
    }
    st.sql(") UPDATE keys SET total_balance = v.total, charge_balance = v.charge, gift_balance = v.gift, ");
    st.sql("checked_at = ").bind(Value::Int(now)).sql(", last_error = NULL FROM v WHERE keys.id = v.id");
    st.execute(conn)?;

    let mut st = Statement::default();
    st.sql("INSERT INTO balance_history (key_id, total_balance, charge_balance, gift_balance, checked_at) ");
    st.sql("SELECT k.id, k.total_balance, k.charge_balance, k.gift_balance, k.checked_at FROM keys k WHERE k.checked_at = ");
    st.bind(Value::Int(now)).sql(" AND k.id IN (");
    st.bind_list(balances.iter().map(|(id, _)| Value::Int(*id)));
    st.sql(")");
    st.execute(conn)?;
    let checked: Vec<i64> = balances.iter().map(|(id, _)| *id).collect();
    super::usage::end_blocks_at_check(conn, &checked)?;
    Ok(())
}

/// Sets the last error of keys whose check failed.
fn write_errors(conn: &mut AnyConnection, errors: &[(i64, String, bool)], now: i64) -> QueryResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    // Raw SQL: one batch UPDATE from a VALUES list per chunk.
    let mut st = Statement::default();
    st.sql("WITH v (id, message, answered) AS (VALUES ");
    for (i, (id, message, answered)) in errors.iter().enumerate() {
        st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
        st.bind(Value::Int(*id)).sql(" AS BIGINT), CAST(").bind(Value::Text(message.clone()));
        st.sql(" AS TEXT), CAST(").bind(Value::Int(i64::from(*answered))).sql(" AS BIGINT))");
    }
    // A key the upstream refused was checked; a transient failure checked nothing.
    st.sql(") UPDATE keys SET last_error = v.message, checked_at = CASE WHEN v.answered = 1 THEN ");
    st.bind(Value::Int(now)).sql(" ELSE keys.checked_at END FROM v WHERE keys.id = v.id");
    st.execute(conn)?;
    Ok(())
}

/// Records the pool's usable balance now (after a check job).
pub fn snapshot_pool(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    // Raw SQL: an INSERT … SELECT with aggregates, one statement on both backends.
    diesel::sql_query(
        "INSERT INTO pool_snapshots (taken_at, active_keys, total_balance) \
         SELECT $1, COUNT(*), COALESCE(SUM(total_balance), 0) FROM keys WHERE status = 'active'",
    )
    .bind::<BigInt, _>(now)
    .execute(conn)
}

/// Deletes balance history older than `before`; returns how many rows went.
pub fn prune_history(conn: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(balance_history::table.filter(balance_history::checked_at.lt(before))).execute(conn)
}

pub fn history_count(conn: &mut AnyConnection) -> QueryResult<i64> {
    use super::schema::balance_history::dsl::*;
    balance_history.count().get_result(conn)
}

/// Claims the next period of a periodic job named `name`: true when this call is the one that may run
/// it now. The first call anywhere only starts the clock (the first run is one period later). Atomic
/// on both backends: of several instances ticking at once, one wins; a dead holder needs no takeover.
pub fn claim_period(conn: &mut AnyConnection, name: &str, holder: &str, now: i64, period: i64) -> QueryResult<bool> {
    // Raw SQL: diesel's upsert DSL is not available on the multi-backend connection.
    let created = diesel::sql_query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(holder)
    .bind::<BigInt, _>(now + period)
    .execute(conn)?;
    if created > 0 {
        return Ok(false);
    }
    let expired = leases::table.filter(leases::name.eq(name)).filter(leases::expires_at.le(now));
    let claimed =
        diesel::update(expired).set((leases::holder.eq(holder), leases::expires_at.eq(now + period))).execute(conn)?;
    Ok(claimed > 0)
}

/// Gives back a period `holder` claimed but could not run: the lease expires now, so the next tick of
/// any instance takes it.
pub fn release_period(conn: &mut AnyConnection, name: &str, holder: &str, now: i64) -> QueryResult<usize> {
    let held = leases::table.filter(leases::name.eq(name)).filter(leases::holder.eq(holder));
    diesel::update(held).set(leases::expires_at.eq(now)).execute(conn)
}
