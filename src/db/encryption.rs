//! Encryption at rest of the stored keys: the start-up check of `KEYPOOL_ENCRYPTION_KEY` against the
//! database, and the batches of `keypool encrypt-keys` / `keypool decrypt-keys`.
//!
//! A key is encrypted in the database exactly when its `key_hash` is set (so "is anything encrypted?"
//! and "is anything still in clear?" are index lookups). The settings row [`CHECK_SETTING`] holds the
//! fingerprint of the encryption key in use ([`KeyCipher::check_value`]).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::AnyConnection;
use super::keys::crypto_error;
use super::schema::keys;
use super::statement::{Statement, Value};
use crate::domain::key_crypto::{KeyCipher, KeyCodec, is_sealed};

/// The settings row with the fingerprint of the encryption key the keys are stored under.
pub const CHECK_SETTING: &str = "encryption_key_check";

/// How the stored keys are kept, as found at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtRest {
    /// Some keys are stored encrypted.
    pub encrypted: bool,
    /// Some keys are stored in clear.
    pub in_clear: bool,
}

/// A row's new (id, key, key_hash, key_hint).
struct Update(i64, String, Option<String>, Option<String>);

#[derive(Queryable)]
struct Stored {
    id: i64,
    key: String,
}

/// Keys stored encrypted (`true`) or in clear, from id `after` on, in id order.
fn stored(encrypted: bool, after: i64) -> keys::BoxedQuery<'static, super::statement::AnyBackend, (BigInt, Text)> {
    let q = keys::table.select((keys::id, keys::key)).filter(keys::id.gt(after)).order(keys::id).into_boxed();
    if encrypted { q.filter(keys::key_hash.is_not_null()) } else { q.filter(keys::key_hash.is_null()) }
}

fn first(conn: &mut AnyConnection, encrypted: bool) -> QueryResult<Option<Stored>> {
    stored(encrypted, i64::MIN).first(conn).optional()
}

/// Whether `codec` can read this database: `Ok(Err(message))` when it cannot (encrypted keys and no
/// key, or another key: the stored fingerprint differs or a stored key does not decrypt). With a key,
/// records its fingerprint. Without a key this is one index lookup.
pub fn check_key(conn: &mut AnyConnection, codec: &KeyCodec, now: i64) -> QueryResult<Result<AtRest, String>> {
    let sealed = first(conn, true)?;
    let Some(cipher) = codec.cipher() else {
        if sealed.is_some() {
            return Ok(Err("the database holds encrypted keys but KEYPOOL_ENCRYPTION_KEY is not set: set it to the \
                           key they were encrypted with"
                .to_owned()));
        }
        return Ok(Ok(AtRest { encrypted: false, in_clear: true }));
    };
    let recorded = super::settings::get(conn, CHECK_SETTING)?;
    if let Some(stored) = &sealed {
        let other_key = recorded.as_deref().is_some_and(|r| r != cipher.check_value());
        if other_key || cipher.open(&stored.key).is_err() {
            return Ok(Err(format!(
                "KEYPOOL_ENCRYPTION_KEY is not the key the stored keys were encrypted with (key #{} does not \
                 decrypt): set the right key",
                stored.id
            )));
        }
    }
    if recorded.as_deref() != Some(cipher.check_value()) {
        super::settings::put_many(conn, &[(CHECK_SETTING.to_owned(), cipher.check_value().to_owned())], now)?;
    }
    Ok(Ok(AtRest { encrypted: sealed.is_some(), in_clear: first(conn, false)?.is_some() }))
}

/// How many keys are stored encrypted, and how many in clear.
pub fn counts(conn: &mut AnyConnection) -> QueryResult<(i64, i64)> {
    let (encrypted, total): (i64, i64) =
        keys::table.select((diesel::dsl::count(keys::key_hash), diesel::dsl::count_star())).get_result(conn)?;
    Ok((encrypted, total - encrypted))
}

/// One batch of `encrypt-keys`: encrypts up to `limit` keys stored in clear with an id above `after`,
/// in one transaction. Returns how many, and the last id seen (`None` when there were none left).
pub fn encrypt_batch(
    conn: &mut AnyConnection,
    cipher: &KeyCipher,
    after: i64,
    limit: i64,
) -> QueryResult<(usize, Option<i64>)> {
    conn.transaction(|conn| {
        let rows: Vec<Stored> = stored(false, after).limit(limit).load(conn)?;
        let mut updates = Vec::with_capacity(rows.len());
        for r in &rows {
            // A value already sealed (but without its hash) is only completed.
            let plain = if is_sealed(&r.key) { cipher.open(&r.key).map_err(crypto_error)? } else { r.key.clone() };
            let stored = KeyCodec::Encrypted(Box::new(cipher.clone())).store(&plain);
            updates.push(Update(r.id, stored.key, stored.hash, stored.hint));
        }
        update_rows(conn, updates)?;
        Ok((rows.len(), rows.last().map(|r| r.id)))
    })
}

/// One batch of `decrypt-keys`: stores up to `limit` encrypted keys with an id above `after` in clear,
/// in one transaction. Returns how many, and the last id seen (`None` when there were none left).
pub fn decrypt_batch(
    conn: &mut AnyConnection,
    cipher: &KeyCipher,
    after: i64,
    limit: i64,
) -> QueryResult<(usize, Option<i64>)> {
    conn.transaction(|conn| {
        let rows: Vec<Stored> = stored(true, after).limit(limit).load(conn)?;
        let mut updates = Vec::with_capacity(rows.len());
        for r in &rows {
            let plain = if is_sealed(&r.key) { cipher.open(&r.key).map_err(crypto_error)? } else { r.key.clone() };
            updates.push(Update(r.id, plain, None, None));
        }
        update_rows(conn, updates)?;
        Ok((rows.len(), rows.last().map(|r| r.id)))
    })
}

/// Sets `key`, `key_hash` and `key_hint` of a batch of rows in one statement
/// (`UPDATE … FROM (VALUES …)`, which both backends take; `columnN` are the VALUES' column names on both).
fn update_rows(conn: &mut AnyConnection, rows: Vec<Update>) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // Raw SQL: one batch UPDATE from a VALUES list per batch of keys.
    let mut st = Statement::default();
    st.sql("UPDATE keys SET key = v.column2, key_hash = v.column3, key_hint = v.column4 FROM (VALUES ");
    for (i, Update(id, key, hash, hint)) in rows.into_iter().enumerate() {
        st.sql(if i == 0 { "(" } else { ", (" });
        st.bind(Value::Int(id)).sql(", ").bind(Value::Text(key)).sql(", ");
        st.bind(Value::OptText(hash)).sql(", ").bind(Value::OptText(hint)).sql(")");
    }
    st.sql(") AS v WHERE keys.id = v.column1");
    st.execute(conn)?;
    Ok(())
}

/// After `encrypt-keys`: on SQLite, rebuilds the file (`VACUUM`), since the space the keys in clear
/// took keeps their bytes until reused. Returns whether it did; PostgreSQL keeps old row versions
/// until its own vacuum (`VACUUM FULL keys` rewrites the table at once).
pub fn scrub(conn: &mut AnyConnection) -> QueryResult<bool> {
    use diesel::connection::SimpleConnection;
    if super::backend_of(conn) != super::Backend::Sqlite {
        return Ok(false);
    }
    conn.batch_execute("VACUUM")?;
    Ok(true)
}

/// Forgets the recorded key fingerprint (after `decrypt-keys` left nothing encrypted).
pub fn forget_check(conn: &mut AnyConnection) -> QueryResult<usize> {
    diesel::delete(super::schema::settings::table.filter(super::schema::settings::name.eq(CHECK_SETTING))).execute(conn)
}
