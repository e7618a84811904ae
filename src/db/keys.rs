//! Queries of the `keys` and `key_selections` tables. Listing, counting, selecting and exporting all
//! share one WHERE-clause builder, so a filter means the same thing everywhere; statements are built
//! from fixed fragments with every user value bound.
//!
//! Every function that reads or writes key text takes the [`KeyCodec`]: with `KEYPOOL_ENCRYPTION_KEY`
//! keys are stored encrypted (see [`crate::domain::key_crypto`]) and only the rows returned are
//! decrypted; without it they are stored and read in clear, as always.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Double, Nullable, Text};

use super::schema::{key_selections, keys};
use super::statement::{Statement, Value};
use super::{AnyConnection, Backend, backend_of};
use crate::domain::export::ExportScope;
use crate::domain::key_crypto::{CryptoError, KeyCodec};
use crate::domain::key_state::{self, Evidence, Transition};
use crate::domain::keys::{KeyFilter, KeyListQuery, KeyRow, KeyStatus, SortField};
use crate::domain::reason::Reason;

/// A keys-table row as read; `matching` is the window count of a search (NULL otherwise).
#[derive(QueryableByName)]
struct RowRecord {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text, deserialize_as = String)]
    status: KeyStatus,
    #[diesel(sql_type = Nullable<Text>)]
    status_reason: Option<String>,
    #[diesel(sql_type = Nullable<Double>)]
    total_balance: Option<f64>,
    #[diesel(sql_type = BigInt)]
    added_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    checked_at: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    last_error: Option<String>,
    #[diesel(sql_type = Bool)]
    selected: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    matching: Option<i64>,
}

/// A stored key's text: decrypted when encrypted, as it is when stored in clear.
pub fn open_key(codec: &KeyCodec, stored: String) -> QueryResult<String> {
    codec.open(stored).map_err(crypto_error)
}

/// A key that cannot be decrypted, as a query error (start-up refuses a wrong key, so this is rare).
pub fn crypto_error(e: CryptoError) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(Box::new(e))
}

impl RowRecord {
    fn into_row(self, codec: &KeyCodec) -> QueryResult<KeyRow> {
        Ok(KeyRow {
            id: self.id,
            key: open_key(codec, self.key)?,
            status: self.status,
            status_reason: self.status_reason,
            last_error: self.last_error,
            total_balance: self.total_balance,
            added_at: self.added_at,
            checked_at: self.checked_at,
            selected: self.selected,
        })
    }
}

/// ` WHERE …` for a filter on table alias `k` (always present, so callers can append ` AND …`).
///
/// Search: in clear, a substring of the key. Encrypted, a substring test over ciphertext means
/// nothing, so a search finds the key whose exact text it is (by the keyed hash, indexed), or, for up
/// to four characters, the keys whose last four characters contain it (the stored hint); keys still
/// stored in clear (before `encrypt-keys` finished) are searched by substring as before.
fn where_filter(st: &mut Statement, backend: Backend, codec: &KeyCodec, filter: &KeyFilter) {
    st.sql(" WHERE 1 = 1");
    if let Some(status) = filter.status {
        st.sql(" AND k.status = ").bind(Value::Text(status.as_str().to_owned()));
    }
    if let Some(failed) = filter.check_failed {
        st.sql(if failed { " AND k.last_error IS NOT NULL" } else { " AND k.last_error IS NULL" });
    }
    let instr = match backend {
        Backend::Sqlite => "instr(",
        Backend::Postgres => "strpos(",
    };
    if let (Some(search), Some(cipher)) = (&filter.search, codec.cipher()) {
        st.sql(" AND (k.key_hash = ").bind(Value::Text(cipher.lookup_hash(search)));
        if search.chars().count() <= 4 {
            st.sql(" OR ").sql(instr).sql("k.key_hint, ").bind(Value::Text(search.clone())).sql(") > 0");
        }
        st.sql(" OR (k.key_hash IS NULL AND ").sql(instr).sql("k.key, ").bind(Value::Text(search.clone()));
        st.sql(") > 0))");
    } else if let Some(search) = &filter.search {
        // A plain substring test: keys are case-sensitive, and no pattern characters to escape.
        st.sql(match backend {
            Backend::Sqlite => " AND instr(k.key, ",
            Backend::Postgres => " AND strpos(k.key, ",
        });
        st.bind(Value::Text(search.clone())).sql(") > 0");
    }
}

fn order_by(backend: Backend, sort: SortField, descending: bool) -> &'static str {
    // NULL balances (never checked) sort as the smallest value on both backends.
    match (sort, descending, backend) {
        (SortField::Balance, false, Backend::Sqlite) => " ORDER BY k.total_balance ASC, k.id ASC",
        (SortField::Balance, true, Backend::Sqlite) => " ORDER BY k.total_balance DESC, k.id DESC",
        (SortField::Balance, false, Backend::Postgres) => " ORDER BY k.total_balance ASC NULLS FIRST, k.id ASC",
        (SortField::Balance, true, Backend::Postgres) => " ORDER BY k.total_balance DESC NULLS LAST, k.id DESC",
        (SortField::Checked, false, _) => " ORDER BY COALESCE(k.checked_at, k.added_at) ASC, k.id ASC",
        (SortField::Checked, true, _) => " ORDER BY COALESCE(k.checked_at, k.added_at) DESC, k.id DESC",
        (SortField::Added, false, _) => " ORDER BY k.added_at ASC, k.id ASC",
        (SortField::Added, true, _) => " ORDER BY k.added_at DESC, k.id DESC",
    }
}

const ROW_COLUMNS: &str = "SELECT k.id, k.key, k.status, k.status_reason, k.total_balance, k.added_at, k.checked_at, \
     k.last_error, (s.key_id IS NOT NULL) AS selected";

/// One page of the keys table, with whether each row is in `admin_id`'s selection. `matching` is
/// how many keys the filter matches: pages in the second half are read from the other end of the
/// index (reversed order, small offset) and flipped, so the last page costs what the first does.
pub fn list_page(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    admin_id: i64,
    q: &KeyListQuery,
    matching: i64,
) -> QueryResult<Vec<KeyRow>> {
    let backend = backend_of(conn);
    let size = q.size as i64;
    let offset = q.offset();
    let from_end = offset.min(matching) + size / 2 > matching / 2;
    let (descending, limit, offset) = if from_end {
        let end = (offset + size).min(matching);
        (!q.descending, (end - offset).max(0), (matching - end).max(0))
    } else {
        (q.descending, size, offset)
    };
    // Deferred join: the page's ids come from the sort index alone (index-only where the backend can),
    // and only those rows are read in full.
    // Raw SQL: filters, sort and keyset pagination assembled per request, with the backend's NULL ordering.
    let mut st = Statement::default();
    st.sql(ROW_COLUMNS).sql(", CAST(NULL AS BIGINT) AS matching FROM keys k JOIN (SELECT k.id FROM keys k");
    where_filter(&mut st, backend, codec, &q.filter);
    st.sql(order_by(backend, q.sort, descending));
    st.sql(" LIMIT ").bind(Value::Int(limit)).sql(" OFFSET ").bind(Value::Int(offset));
    st.sql(") page ON page.id = k.id LEFT JOIN key_selections s ON s.key_id = k.id AND s.admin_id = ");
    st.bind(Value::Int(admin_id));
    st.sql(order_by(backend, q.sort, descending));
    let mut rows: Vec<KeyRow> =
        st.query().load::<RowRecord>(conn)?.into_iter().map(|r| r.into_row(codec)).collect::<QueryResult<_>>()?;
    if from_end {
        rows.reverse();
    }
    Ok(rows)
}

/// A page of a search and how many keys match it, from one scan (a substring test cannot use an
/// index, so it should run once, not once to count and once to list). Empty past the last page.
pub fn search_page(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    admin_id: i64,
    q: &KeyListQuery,
) -> QueryResult<(Vec<KeyRow>, i64)> {
    let backend = backend_of(conn);
    // Raw SQL: a windowed count (COUNT(*) OVER ()) with the page, and the backend's substring function.
    let mut st = Statement::default();
    st.sql(ROW_COLUMNS).sql(", COUNT(*) OVER () AS matching");
    st.sql(" FROM keys k LEFT JOIN key_selections s ON s.key_id = k.id AND s.admin_id = ");
    st.bind(Value::Int(admin_id));
    where_filter(&mut st, backend, codec, &q.filter);
    st.sql(order_by(backend, q.sort, q.descending));
    st.sql(" LIMIT ").bind(Value::Int(q.size as i64)).sql(" OFFSET ").bind(Value::Int(q.offset()));
    let rows: Vec<RowRecord> = st.query().load(conn)?;
    let matching = rows.first().and_then(|r| r.matching).unwrap_or(0);
    Ok((rows.into_iter().map(|r| r.into_row(codec)).collect::<QueryResult<_>>()?, matching))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many keys match a filter.
pub fn count_matching(conn: &mut AnyConnection, codec: &KeyCodec, filter: &KeyFilter) -> QueryResult<i64> {
    let backend = backend_of(conn);
    // Raw SQL: the same dynamic filter as the page.
    let mut st = Statement::default();
    st.sql("SELECT COUNT(*) AS n FROM keys k");
    where_filter(&mut st, backend, codec, filter);
    Ok(st.query().get_result::<Count>(conn)?.n)
}

/// Unchecked keys whose last check failed transiently (a `last_error`, the state unchanged).
pub fn count_check_failed(conn: &mut AnyConnection) -> QueryResult<i64> {
    let failed =
        keys::table.filter(keys::status.eq(KeyStatus::Unchecked.as_str())).filter(keys::last_error.is_not_null());
    failed.count().get_result(conn)
}

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text, deserialize_as = String)]
    status: KeyStatus,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Keys per status (every status present, zero when none), from the trigger-kept counts.
pub fn count_by_status(conn: &mut AnyConnection) -> QueryResult<Vec<(KeyStatus, i64)>> {
    // Raw SQL: reads the key_status_counts view (kept by triggers), which diesel's schema does not declare.
    let rows: Vec<StatusCount> = diesel::sql_query("SELECT status, n FROM key_status_counts").load(conn)?;
    Ok(KeyStatus::ALL.into_iter().map(|s| (s, rows.iter().find(|r| r.status == s).map_or(0, |r| r.n))).collect())
}

/// Inserts the keys that are not there yet, in one transaction; returns the ids of those added.
/// Existing keys are left untouched (balance, dates and state kept). In clear, `key` is unique;
/// encrypted, `key_hash` is (and keys still stored in clear are looked up by their text first).
pub fn insert_new(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    keys: &[String],
    source: Option<&str>,
    now: i64,
) -> QueryResult<Vec<i64>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    #[derive(QueryableByName)]
    struct Clear {
        #[diesel(sql_type = Text)]
        key: String,
    }
    conn.transaction(|conn| {
        let mut added = Vec::new();
        for chunk in keys.chunks(500) {
            let chunk: Vec<&String> = if codec.is_encrypted() {
                // Raw SQL: a batch INSERT … ON CONFLICT DO NOTHING returning what was new (upsert is not in the
                // multi-backend DSL).
                let mut st = Statement::default();
                st.sql("SELECT key FROM keys WHERE key IN (");
                st.bind_list(chunk.iter().map(|k| Value::Text(k.clone()))).sql(")");
                let clear: std::collections::HashSet<String> =
                    st.load::<Clear>(conn)?.into_iter().map(|c| c.key).collect();
                chunk.iter().filter(|k| !clear.contains(*k)).collect()
            } else {
                chunk.iter().collect()
            };
            if chunk.is_empty() {
                continue;
            }
            let mut st = Statement::default();
            st.sql("INSERT INTO keys (key, key_hash, key_hint, added_at, source) VALUES ");
            for (i, key) in chunk.iter().enumerate() {
                let stored = codec.store(key);
                st.sql(if i == 0 { "(" } else { ", (" });
                st.bind(Value::Text(stored.key)).sql(", ");
                st.bind(Value::OptText(stored.hash)).sql(", ").bind(Value::OptText(stored.hint)).sql(", ");
                st.bind(Value::Int(now)).sql(", ");
                match source {
                    Some(s) => st.bind(Value::Text(s.to_owned())),
                    None => st.sql("NULL"),
                };
                st.sql(")");
            }
            st.sql(if codec.is_encrypted() {
                " ON CONFLICT (key_hash) DO NOTHING RETURNING id"
            } else {
                " ON CONFLICT (key) DO NOTHING RETURNING id"
            });
            added.extend(st.query_on(conn).load::<Id>(conn)?.into_iter().map(|r| r.id));
        }
        Ok(added)
    })
}

/// Stores a parsed import in one transaction and says what happened.
pub fn import(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    parsed: crate::domain::keys::ParsedImport,
    source: Option<&str>,
    now: i64,
) -> QueryResult<crate::domain::keys::ImportOutcome> {
    let new_ids = insert_new(conn, codec, &parsed.keys, source, now)?;
    Ok(crate::domain::keys::ImportOutcome {
        added: new_ids.len(),
        present: parsed.keys.len() - new_ids.len(),
        new_ids,
        duplicates: parsed.duplicates,
        rejected: parsed.rejected,
    })
}

/// Adds or removes these keys from the admin's selection.
pub fn set_selected(conn: &mut AnyConnection, admin_id: i64, ids: &[i64], selected: bool) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    // Raw SQL: a batch INSERT … ON CONFLICT DO NOTHING of the ids given.
    let mut st = Statement::default();
    if selected {
        st.sql("INSERT INTO key_selections (admin_id, key_id) SELECT ").bind(Value::Int(admin_id));
        st.sql(", k.id FROM keys k WHERE k.id IN (");
    } else {
        st.sql("DELETE FROM key_selections WHERE admin_id = ").bind(Value::Int(admin_id)).sql(" AND key_id IN (");
    }
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            st.sql(", ");
        }
        st.bind(Value::Int(*id));
    }
    st.sql(")");
    if selected {
        st.sql(" ON CONFLICT DO NOTHING");
    }
    st.execute(conn)
}

/// Selects every key matching the filter, across all pages, in one statement.
pub fn select_matching(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    admin_id: i64,
    filter: &KeyFilter,
) -> QueryResult<usize> {
    let backend = backend_of(conn);
    // Raw SQL: INSERT … SELECT of every key the dynamic filter matches, in one statement.
    let mut st = Statement::default();
    st.sql("INSERT INTO key_selections (admin_id, key_id) SELECT ")
        .bind(Value::Int(admin_id))
        .sql(", k.id FROM keys k");
    where_filter(&mut st, backend, codec, filter);
    st.sql(" ON CONFLICT DO NOTHING");
    st.execute(conn)
}

pub fn clear_selection(conn: &mut AnyConnection, admin_id: i64) -> QueryResult<usize> {
    diesel::delete(key_selections::table.filter(key_selections::admin_id.eq(admin_id))).execute(conn)
}

pub fn count_selected(conn: &mut AnyConnection, admin_id: i64) -> QueryResult<i64> {
    key_selections::table.filter(key_selections::admin_id.eq(admin_id)).count().get_result(conn)
}

/// Deletes the admin's selected keys in one transaction; returns how many went.
pub fn delete_selected(conn: &mut AnyConnection, admin_id: i64) -> QueryResult<usize> {
    let selected = key_selections::table.filter(key_selections::admin_id.eq(admin_id)).select(key_selections::key_id);
    conn.transaction(|conn| diesel::delete(keys::table.filter(keys::id.eq_any(selected))).execute(conn))
}

/// Deletes every key in the `invalid` state, in one transaction.
pub fn delete_invalid(conn: &mut AnyConnection) -> QueryResult<usize> {
    let invalid = keys::table.filter(keys::status.eq(KeyStatus::Invalid.as_str()));
    conn.transaction(|conn| diesel::delete(invalid).execute(conn))
}

pub fn delete_one(conn: &mut AnyConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(keys::table.find(id)).execute(conn)
}

/// Disables (remembering the state to return to) or re-enables keys: one key, or the selection.
/// Each change is also a key event. What each state becomes is the state machine's table
/// ([`key_state::moves`] / [`key_state::decide`]), carried into the SQL as data.
pub fn set_disabled(conn: &mut AnyConnection, target: KeyTarget, disabled: bool, now: i64) -> QueryResult<usize> {
    let reason = if disabled { Reason::DisabledByAdmin } else { Reason::EnabledByAdmin }.encode();
    conn.transaction(|conn| {
        let new_status = |st: &mut Statement| new_status(st, disabled);
        // Raw SQL: the state machine's moves carried into one UPDATE … FROM (VALUES …) with its events.
        let mut ev = Statement::default();
        ev.sql("INSERT INTO key_events (key_id, at, from_status, to_status, reason) SELECT id, ").bind(Value::Int(now));
        ev.sql(", status, ");
        new_status(&mut ev);
        ev.sql(", ").bind(Value::Text(reason.clone())).sql(" FROM keys WHERE ");
        moving(&mut ev, disabled);
        target_clause(&mut ev, target);
        ev.execute(conn)?;
        let mut st = Statement::default();
        st.sql("UPDATE keys SET previous_status = ");
        st.sql(if disabled { "status" } else { "NULL" }).sql(", status = ");
        new_status(&mut st);
        st.sql(", status_reason = ").bind(Value::Text(reason.clone()));
        st.sql(", status_changed_at = ").bind(Value::Int(now)).sql(" WHERE ");
        moving(&mut st, disabled);
        target_clause(&mut st, target);
        st.execute(conn)
    })
}

fn admin_evidence(disabled: bool, previous: Option<KeyStatus>) -> Evidence {
    if disabled { Evidence::AdminDisable } else { Evidence::AdminEnable { previous } }
}

/// `status IN (…)`: the states the admin's action moves.
fn moving(st: &mut Statement, disabled: bool) {
    let from: Vec<KeyStatus> = key_state::moves(&admin_evidence(disabled, None))
        .into_iter()
        .map(|(from, _)| from)
        .chain((!disabled).then_some(KeyStatus::Disabled))
        .collect();
    st.sql("status IN (");
    for (i, s) in from.iter().enumerate() {
        st.sql(if i == 0 { "" } else { ", " }).bind(Value::Text(s.as_str().to_owned()));
    }
    st.sql(")");
}

/// The new state of a moved key: `disabled`, or, enabling, the state machine's answer for the state it
/// had before (`previous_status`).
fn new_status(st: &mut Statement, disabled: bool) {
    let to = |previous| match key_state::decide(KeyStatus::Disabled, &admin_evidence(disabled, previous)) {
        Transition::Move { to, .. } => to,
        _ => KeyStatus::Disabled,
    };
    if disabled {
        st.bind(Value::Text(KeyStatus::Disabled.as_str().to_owned()));
        return;
    }
    st.sql("CASE previous_status");
    for previous in KeyStatus::ALL {
        st.sql(" WHEN ").bind(Value::Text(previous.as_str().to_owned()));
        st.sql(" THEN ").bind(Value::Text(to(Some(previous)).as_str().to_owned()));
    }
    st.sql(" ELSE ").bind(Value::Text(to(None).as_str().to_owned())).sql(" END");
}

fn target_clause(st: &mut Statement, target: KeyTarget) {
    match target {
        KeyTarget::One(id) => st.sql(" AND id = ").bind(Value::Int(id)),
        KeyTarget::SelectionOf(admin) => {
            st.sql(" AND id IN (SELECT key_id FROM key_selections WHERE admin_id = ").bind(Value::Int(admin)).sql(")")
        }
    };
}

#[derive(Debug, Clone, Copy)]
pub enum KeyTarget {
    One(i64),
    SelectionOf(i64),
}

/// ` AND …` for an export scope (after a `WHERE` on table alias `k`).
fn export_scope(st: &mut Statement, scope: ExportScope, admin_id: i64) {
    match scope {
        ExportScope::All => {}
        ExportScope::Valid => {
            st.sql(" AND k.status = 'active'");
        }
        ExportScope::Selection => {
            st.sql(" AND k.id IN (SELECT key_id FROM key_selections WHERE admin_id = ")
                .bind(Value::Int(admin_id))
                .sql(")");
        }
        ExportScope::MinBalance(min) => {
            st.sql(" AND k.total_balance >= ")
                .bind(Value::Float(min))
                .sql(" AND k.status NOT IN ('invalid', 'disabled')");
        }
    }
}

/// How many keys an export scope holds (an empty one is refused before a download starts).
pub fn count_export(conn: &mut AnyConnection, scope: ExportScope, admin_id: i64) -> QueryResult<i64> {
    // Raw SQL: the export's dynamic scope.
    let mut st = Statement::default();
    st.sql("SELECT COUNT(*) AS n FROM keys k WHERE 1 = 1");
    export_scope(&mut st, scope, admin_id);
    Ok(st.query().get_result::<Count>(conn)?.n)
}

/// One slice of an export, in id order, after `after_id`: (id, key, total balance).
pub fn export_chunk(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    scope: ExportScope,
    admin_id: i64,
    after_id: i64,
    limit: i64,
) -> QueryResult<Vec<(i64, String, Option<f64>)>> {
    #[derive(QueryableByName)]
    struct Item {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        key: String,
        #[diesel(sql_type = Nullable<Double>)]
        total_balance: Option<f64>,
    }
    // Raw SQL: keyset slices over the dynamic export scope.
    let mut st = Statement::default();
    st.sql("SELECT k.id, k.key, k.total_balance FROM keys k WHERE k.id > ").bind(Value::Int(after_id));
    export_scope(&mut st, scope, admin_id);
    st.sql(" ORDER BY k.id ASC LIMIT ").bind(Value::Int(limit));
    let items: Vec<Item> = st.query().load(conn)?;
    items.into_iter().map(|i| Ok((i.id, open_key(codec, i.key)?, i.total_balance))).collect()
}

/// Runs an export in slices of 5,000 keys, handing each encoded slice to `write` (which returns
/// false to stop, e.g. when the client went away). Returns how many keys were written.
pub fn export_each(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    request: &crate::domain::export::ExportRequest,
    admin_id: i64,
    mut write: impl FnMut(String) -> bool,
) -> QueryResult<usize> {
    let sep = request.separator.text();
    let mut after = 0;
    let mut written = 0;
    loop {
        let chunk = export_chunk(conn, codec, request.scope, admin_id, after, 5_000)?;
        let Some((last, _, _)) = chunk.last() else { return Ok(written) };
        after = *last;
        let mut piece = String::with_capacity(chunk.len() * 64);
        for (_, key, balance) in &chunk {
            if written > 0 {
                piece.push_str(sep);
            }
            piece.push_str(&request.item(key, *balance));
            written += 1;
        }
        if !write(piece) {
            return Ok(written);
        }
    }
}

/// A key as a guest sees it.
#[derive(Debug, Clone, QueryableByName)]
pub struct GuestCard {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub status: KeyStatus,
    #[diesel(sql_type = Nullable<Double>)]
    pub total_balance: Option<f64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub checked_at: Option<i64>,
}

/// The statuses guests see after the usable keys (disabled keys are the admin's business).
const GUEST_OTHER_STATUSES: &str = "('depleted', 'invalid', 'cooling', 'unchecked')";

fn guest_slice(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    usable: bool,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<GuestCard>> {
    let backend = backend_of(conn);
    // Raw SQL: keyset slices ordered by balance with the backend's NULL ordering.
    let mut st = Statement::default();
    st.sql("SELECT k.key, k.status, k.total_balance, k.checked_at FROM keys k WHERE k.status ");
    st.sql(if usable { "= 'active'" } else { "IN " });
    if !usable {
        st.sql(GUEST_OTHER_STATUSES);
    }
    st.sql(order_by(backend, SortField::Balance, true));
    st.sql(" LIMIT ").bind(Value::Int(limit)).sql(" OFFSET ").bind(Value::Int(offset));
    let cards: Vec<GuestCard> = st.query().load(conn)?;
    cards.into_iter().map(|c| Ok(GuestCard { key: open_key(codec, c.key)?, ..c })).collect()
}

/// A page of the guest page: usable (active) keys by balance, highest first, then the others by
/// balance. `usable` is the number of active keys; each part is read in its own index order.
pub fn guest_cards(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    usable: i64,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<GuestCard>> {
    if offset >= usable {
        return guest_slice(conn, codec, false, offset - usable, limit);
    }
    let mut cards = guest_slice(conn, codec, true, offset, limit)?;
    let missing = limit - cards.len() as i64;
    if missing > 0 {
        cards.extend(guest_slice(conn, codec, false, 0, missing)?);
    }
    Ok(cards)
}

/// Sum of the total balances of active keys.
pub fn usable_balance(conn: &mut AnyConnection) -> QueryResult<f64> {
    let active = keys::table.filter(keys::status.eq(KeyStatus::Active.as_str()));
    let total: Option<f64> = active.select(diesel::dsl::sum(keys::total_balance)).get_result(conn)?;
    Ok(total.unwrap_or(0.0))
}

/// Which keys a check job covers.
#[derive(Debug, Clone)]
pub enum CheckScope {
    One(i64),
    SelectionOf(i64),
    Matching(KeyFilter),
    /// Every key that is not disabled.
    AllEnabled,
    Ids(Vec<i64>),
}

/// The (id, key) pairs of a check scope, in id order.
pub fn ids_for_check(
    conn: &mut AnyConnection,
    codec: &KeyCodec,
    scope: &CheckScope,
) -> QueryResult<Vec<(i64, String)>> {
    #[derive(QueryableByName)]
    struct Pair {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        key: String,
    }
    let backend = backend_of(conn);
    let mut out = Vec::new();
    let chunks: Vec<Vec<i64>> = match scope {
        CheckScope::Ids(ids) => ids.chunks(500).map(<[i64]>::to_vec).collect(),
        _ => vec![Vec::new()],
    };
    for chunk in chunks {
        // Raw SQL: the dynamic check scope (all, selection, filter) in one SELECT.
        let mut st = Statement::default();
        st.sql("SELECT k.id, k.key FROM keys k");
        match scope {
            CheckScope::One(id) => {
                st.sql(" WHERE k.id = ").bind(Value::Int(*id));
            }
            CheckScope::SelectionOf(admin) => {
                st.sql(" WHERE k.id IN (SELECT key_id FROM key_selections WHERE admin_id = ")
                    .bind(Value::Int(*admin))
                    .sql(")");
            }
            CheckScope::Matching(filter) => where_filter(&mut st, backend, codec, filter),
            CheckScope::AllEnabled => {
                st.sql(" WHERE k.status <> 'disabled'");
            }
            CheckScope::Ids(_) => {
                st.sql(" WHERE k.id IN (");
                for (i, id) in chunk.iter().enumerate() {
                    if i > 0 {
                        st.sql(", ");
                    }
                    st.bind(Value::Int(*id));
                }
                st.sql(")");
            }
        }
        st.sql(" ORDER BY k.id");
        for p in st.query().load::<Pair>(conn)? {
            out.push((p.id, open_key(codec, p.key)?));
        }
    }
    Ok(out)
}
