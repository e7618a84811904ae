//! Writing check results (key state, balances, history) in batches, history retention, and leases
//! for work that must run on one instance at a time.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Text};

use super::AnyConnection;
use crate::domain::checks::CheckOutcome;

/// Writes a batch of results in one transaction. A disabled key keeps its state (an admin decision),
/// but its balance is still recorded. A transient failure only sets the last error.
pub fn record(
    conn: &mut AnyConnection,
    results: &[(i64, CheckOutcome)],
    min_balance: f64,
    now: i64,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        for (id, outcome) in results {
            match (outcome, outcome.transition(min_balance)) {
                (CheckOutcome::Balance(b), Some((status, reason))) => {
                    diesel::sql_query(
                        "UPDATE keys SET total_balance = $1, charge_balance = $2, gift_balance = $3, checked_at = $4, \
                         last_error = NULL, \
                         status_reason = CASE WHEN status NOT IN ('disabled', $5) THEN $6 ELSE status_reason END, \
                         status_changed_at = CASE WHEN status NOT IN ('disabled', $5) THEN $4 ELSE status_changed_at END, \
                         status = CASE WHEN status = 'disabled' THEN status ELSE $5 END WHERE id = $7",
                    )
                    .bind::<Double, _>(b.total)
                    .bind::<Double, _>(b.charge)
                    .bind::<Double, _>(b.gift)
                    .bind::<BigInt, _>(now)
                    .bind::<Text, _>(status.as_str())
                    .bind::<Text, _>(reason)
                    .bind::<BigInt, _>(*id)
                    .execute(conn)?;
                    diesel::sql_query(
                        "INSERT INTO balance_history (key_id, total_balance, charge_balance, gift_balance, checked_at) \
                         SELECT id, $1, $2, $3, $4 FROM keys WHERE id = $5",
                    )
                    .bind::<Double, _>(b.total)
                    .bind::<Double, _>(b.charge)
                    .bind::<Double, _>(b.gift)
                    .bind::<BigInt, _>(now)
                    .bind::<BigInt, _>(*id)
                    .execute(conn)?;
                }
                (CheckOutcome::Invalid(message), _) => {
                    diesel::sql_query(
                        "UPDATE keys SET checked_at = $1, last_error = $2, \
                         status_reason = CASE WHEN status NOT IN ('disabled', 'invalid') THEN $2 ELSE status_reason END, \
                         status_changed_at = CASE WHEN status NOT IN ('disabled', 'invalid') THEN $1 ELSE status_changed_at END, \
                         status = CASE WHEN status = 'disabled' THEN status ELSE 'invalid' END WHERE id = $3",
                    )
                    .bind::<BigInt, _>(now)
                    .bind::<Text, _>(message)
                    .bind::<BigInt, _>(*id)
                    .execute(conn)?;
                }
                (CheckOutcome::Transient(_), _) | (CheckOutcome::Balance(_), None) => {
                    let message = match outcome {
                        CheckOutcome::Transient(m) => m.as_str(),
                        _ => "",
                    };
                    diesel::sql_query("UPDATE keys SET last_error = $1 WHERE id = $2")
                        .bind::<Text, _>(message)
                        .bind::<BigInt, _>(*id)
                        .execute(conn)?;
                }
            }
        }
        Ok(())
    })
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
