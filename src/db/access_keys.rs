//! Queries of the `access_keys` table: the proxy's client tokens, stored as SHA-256 hashes.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::access_keys;
use crate::domain::{FieldError, access_token};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_keys)]
pub struct AccessKey {
    pub id: i64,
    pub name: String,
    pub token_hash: String,
    /// A recognisable, non-secret fragment of the token (`kp-abcd…wxyz`).
    pub token_hint: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Requests through `/v1` with this key, and those that failed.
    pub request_count: i64,
    pub failure_count: i64,
}

#[derive(Insertable)]
#[diesel(table_name = access_keys)]
struct NewAccessKey<'a> {
    name: &'a str,
    token_hash: &'a str,
    token_hint: &'a str,
    created_at: i64,
}

pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<AccessKey>> {
    access_keys::table.order(access_keys::id.asc()).select(AccessKey::as_select()).load(conn)
}

pub fn name_exists(conn: &mut AnyConnection, name: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(access_keys::table.filter(access_keys::name.eq(name)))).get_result(conn)
}

pub fn create(conn: &mut AnyConnection, name: &str, token_hash: &str, token_hint: &str, now: i64) -> QueryResult<i64> {
    diesel::insert_into(access_keys::table)
        .values(&NewAccessKey { name, token_hash, token_hint, created_at: now })
        .returning(access_keys::id)
        .get_result(conn)
}

/// Mints a token and stores an access key named `name` (already parsed). Returns (name, token), or
/// a field error when the name is taken. The token exists only in this return value.
pub fn create_named(
    conn: &mut AnyConnection,
    name: &str,
    now: i64,
) -> QueryResult<Result<(String, String), FieldError>> {
    if name_exists(conn, name)? {
        return Ok(Err(FieldError::new("name", "access_keys.name_taken").with("name", name)));
    }
    let minted = access_token::mint();
    create(conn, name, &minted.hash, &minted.hint, now)?;
    Ok(Ok((name.to_owned(), minted.token)))
}

/// Deletes by id; returns whether a row went.
pub fn revoke(conn: &mut AnyConnection, id: i64) -> QueryResult<bool> {
    Ok(diesel::delete(access_keys::table.find(id)).execute(conn)? > 0)
}

pub fn revoke_by_name(conn: &mut AnyConnection, name: &str) -> QueryResult<bool> {
    Ok(diesel::delete(access_keys::table.filter(access_keys::name.eq(name))).execute(conn)? > 0)
}
