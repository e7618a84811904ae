//! Writing check results (key state, balances, history) in batches, history retention, and leases
//! for work that must run on one instance at a time.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::AnyConnection;
use super::statement::{Statement, Value};
use crate::domain::checks::CheckOutcome;

/// Writes a batch of results in one transaction, a few set-based statements per 200 results (not
/// one per key). A disabled key keeps its state (an admin decision) but its balance is recorded; a
/// transient failure only sets the last error.
pub fn record(
    conn: &mut AnyConnection,
    results: &[(i64, CheckOutcome)],
    min_balance: f64,
    now: i64,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        for chunk in results.chunks(200) {
            let mut balances = Vec::new();
            let mut invalid = Vec::new();
            let mut transient = Vec::new();
            for (id, outcome) in chunk {
                match (outcome, outcome.transition(min_balance)) {
                    (CheckOutcome::Balance(b), Some((status, reason))) => balances.push((*id, *b, status.as_str(), reason)),
                    (CheckOutcome::Invalid(message), _) => invalid.push((*id, message.as_str())),
                    (CheckOutcome::Transient(message), _) => transient.push((*id, message.as_str())),
                    (CheckOutcome::Balance(_), None) => {}
                }
            }
            if !balances.is_empty() {
                let cte = |st: &mut Statement| {
                    st.sql("WITH v (id, total, charge, gift, new_status, reason) AS (VALUES ");
                    for (i, (id, b, status, reason)) in balances.iter().enumerate() {
                        st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
                        st.bind(Value::Int(*id)).sql(" AS BIGINT), CAST(").bind(Value::Float(b.total));
                        st.sql(" AS DOUBLE PRECISION), CAST(").bind(Value::Float(b.charge));
                        st.sql(" AS DOUBLE PRECISION), CAST(").bind(Value::Float(b.gift));
                        st.sql(" AS DOUBLE PRECISION), CAST(").bind(Value::Text((*status).to_owned()));
                        st.sql(" AS TEXT), CAST(").bind(Value::Text(reason.clone())).sql(" AS TEXT))");
                    }
                    st.sql(")");
                };
                let mut st = Statement::default();
                cte(&mut st);
                st.sql(" INSERT INTO key_events (key_id, at, from_status, to_status, reason) SELECT keys.id, ");
                st.bind(Value::Int(now)).sql(", keys.status, v.new_status, v.reason FROM keys JOIN v ON keys.id = v.id");
                st.sql(" WHERE keys.status NOT IN ('disabled', v.new_status)");
                st.execute(conn)?;
                let mut st = Statement::default();
                cte(&mut st);
                st.sql(" UPDATE keys SET total_balance = v.total, charge_balance = v.charge, gift_balance = v.gift, ");
                st.sql("checked_at = ").bind(Value::Int(now)).sql(", last_error = NULL, ");
                st.sql("status_reason = CASE WHEN keys.status NOT IN ('disabled', v.new_status) THEN v.reason ELSE keys.status_reason END, ");
                st.sql("status_changed_at = CASE WHEN keys.status NOT IN ('disabled', v.new_status) THEN ").bind(Value::Int(now));
                st.sql(" ELSE keys.status_changed_at END, ");
                st.sql("status = CASE WHEN keys.status = 'disabled' THEN keys.status ELSE v.new_status END FROM v WHERE keys.id = v.id");
                st.execute(conn)?;

                let mut st = Statement::default();
                st.sql("INSERT INTO balance_history (key_id, total_balance, charge_balance, gift_balance, checked_at) ");
                st.sql("SELECT k.id, k.total_balance, k.charge_balance, k.gift_balance, k.checked_at FROM keys k WHERE k.checked_at = ");
                st.bind(Value::Int(now)).sql(" AND k.id IN (");
                for (i, (id, ..)) in balances.iter().enumerate() {
                    if i > 0 {
                        st.sql(", ");
                    }
                    st.bind(Value::Int(*id));
                }
                st.sql(")");
                st.execute(conn)?;
            }
            for (rows, invalid_state) in [(&invalid, true), (&transient, false)] {
                if rows.is_empty() {
                    continue;
                }
                let cte = |st: &mut Statement| {
                    st.sql("WITH v (id, message) AS (VALUES ");
                    for (i, (id, message)) in rows.iter().enumerate() {
                        st.sql(if i == 0 { "(CAST(" } else { ", (CAST(" });
                        st.bind(Value::Int(*id)).sql(" AS BIGINT), CAST(").bind(Value::Text((*message).to_owned())).sql(" AS TEXT))");
                    }
                    st.sql(")");
                };
                if invalid_state {
                    let mut st = Statement::default();
                    cte(&mut st);
                    st.sql(" INSERT INTO key_events (key_id, at, from_status, to_status, reason) SELECT keys.id, ");
                    st.bind(Value::Int(now)).sql(", keys.status, 'invalid', v.message FROM keys JOIN v ON keys.id = v.id");
                    st.sql(" WHERE keys.status NOT IN ('disabled', 'invalid')");
                    st.execute(conn)?;
                }
                let mut st = Statement::default();
                cte(&mut st);
                st.sql(" UPDATE keys SET last_error = v.message");
                if invalid_state {
                    st.sql(", checked_at = ").bind(Value::Int(now));
                    st.sql(", status_reason = CASE WHEN keys.status NOT IN ('disabled', 'invalid') THEN v.message ELSE keys.status_reason END");
                    st.sql(", status_changed_at = CASE WHEN keys.status NOT IN ('disabled', 'invalid') THEN ").bind(Value::Int(now));
                    st.sql(" ELSE keys.status_changed_at END");
                    st.sql(", status = CASE WHEN keys.status = 'disabled' THEN keys.status ELSE 'invalid' END");
                }
                st.sql(" FROM v WHERE keys.id = v.id");
                st.execute(conn)?;
            }
        }
        Ok(())
    })
}

/// Records the pool's usable balance now (after a check job).
pub fn snapshot_pool(conn: &mut AnyConnection, now: i64) -> QueryResult<usize> {
    diesel::sql_query(
        "INSERT INTO pool_snapshots (taken_at, active_keys, total_balance) \
         SELECT $1, COUNT(*), COALESCE(SUM(total_balance), 0) FROM keys WHERE status = 'active'",
    )
    .bind::<BigInt, _>(now)
    .execute(conn)
}

/// Deletes balance history older than `before`; returns how many rows went.
pub fn prune_history(conn: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM balance_history WHERE checked_at < $1").bind::<BigInt, _>(before).execute(conn)
}

pub fn history_count(conn: &mut AnyConnection) -> QueryResult<i64> {
    use super::schema::balance_history::dsl::*;
    balance_history.count().get_result(conn)
}

/// Claims the next period of a periodic job named `name`: true when this call is the one that may run
/// it now. The first call anywhere only starts the clock (the first run is one period later). Atomic
/// on both backends: of several instances ticking at once, one wins; a dead holder needs no takeover.
pub fn claim_period(conn: &mut AnyConnection, name: &str, holder: &str, now: i64, period: i64) -> QueryResult<bool> {
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
    let claimed =
        diesel::sql_query("UPDATE leases SET holder = $1, expires_at = $2 WHERE name = $3 AND expires_at <= $4")
            .bind::<Text, _>(holder)
            .bind::<BigInt, _>(now + period)
            .bind::<Text, _>(name)
            .bind::<BigInt, _>(now)
            .execute(conn)?;
    Ok(claimed > 0)
}
