//! Queries of the `admins` table (one admin account today; the table allows more later) and of
//! `admin_sessions`, the server-side record of each signed-in admin session.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::admins;

diesel::table! {
    /// One row per signed-in admin session; `id` is the SHA-256 (hex) of the token in the cookie.
    admin_sessions (id) {
        id -> Text,
        admin_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = admins)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    /// Bumped on every username or password change: sessions carrying an older value are ended.
    pub credentials_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = admins)]
struct NewAdmin<'a> {
    username: &'a str,
    password_hash: &'a str,
    credentials_version: i64,
    created_at: i64,
    updated_at: i64,
}

/// The `settings` row that keeps the hash of the admin password generated at first start (see
/// `startup::ensure_admin`), for the dashboard's "change the generated password" nudge.
///
/// Decision: the row keeps the generated password's hash rather than a flag that every way of
/// changing a password (the settings page, `keypool admin reset-password`, another instance) would
/// have to clear. The password is still the generated one exactly while the admin's hash equals it,
/// so any change ends the nudge, and nothing ever deletes the row.
pub const GENERATED_PASSWORD_SETTING: &str = "admin.generated_password_hash";

/// Whether admin `id` still signs in with the password generated at first start.
pub fn uses_generated_password(conn: &mut AnyConnection, id: i64) -> QueryResult<bool> {
    let Some(generated) = super::settings::get(conn, GENERATED_PASSWORD_SETTING)? else { return Ok(false) };
    Ok(find(conn, id)?.is_some_and(|a| a.password_hash == generated))
}

pub fn count(conn: &mut AnyConnection) -> QueryResult<i64> {
    admins::table.count().get_result(conn)
}

pub fn find(conn: &mut AnyConnection, id: i64) -> QueryResult<Option<Admin>> {
    admins::table.find(id).select(Admin::as_select()).first(conn).optional()
}

pub fn find_by_username(conn: &mut AnyConnection, username: &str) -> QueryResult<Option<Admin>> {
    admins::table.filter(admins::username.eq(username)).select(Admin::as_select()).first(conn).optional()
}

/// The first admin account (the one `keypool admin reset-password` resets by default).
pub fn first(conn: &mut AnyConnection) -> QueryResult<Option<Admin>> {
    admins::table.order(admins::id.asc()).select(Admin::as_select()).first(conn).optional()
}

pub fn create(conn: &mut AnyConnection, username: &str, password_hash: &str, now: i64) -> QueryResult<i64> {
    diesel::insert_into(admins::table)
        .values(&NewAdmin { username, password_hash, credentials_version: 1, created_at: now, updated_at: now })
        .returning(admins::id)
        .get_result(conn)
}

/// Sets new credentials and ends every existing session of this admin.
pub fn update_credentials(
    conn: &mut AnyConnection,
    id: i64,
    username: &str,
    password_hash: &str,
    now: i64,
) -> QueryResult<usize> {
    diesel::update(admins::table.find(id))
        .set((
            admins::username.eq(username),
            admins::password_hash.eq(password_hash),
            admins::credentials_version.eq(admins::credentials_version + 1),
            admins::updated_at.eq(now),
        ))
        .execute(conn)
}

#[derive(Insertable)]
#[diesel(table_name = admin_sessions)]
struct NewSession<'a> {
    id: &'a str,
    admin_id: i64,
    created_at: i64,
    expires_at: i64,
}

/// Records a new session (`id` is the token's hash) and prunes every expired one.
pub fn create_session(conn: &mut AnyConnection, id: &str, admin_id: i64, now: i64, expires_at: i64) -> QueryResult<()> {
    diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(now))).execute(conn)?;
    diesel::insert_into(admin_sessions::table)
        .values(&NewSession { id, admin_id, created_at: now, expires_at })
        .execute(conn)?;
    Ok(())
}

/// The admin of a live session row, if the row exists and has not expired.
pub fn session_admin(conn: &mut AnyConnection, id: &str, now: i64) -> QueryResult<Option<i64>> {
    admin_sessions::table
        .find(id)
        .filter(admin_sessions::expires_at.gt(now))
        .select(admin_sessions::admin_id)
        .first(conn)
        .optional()
}

/// Ends one session (sign-out).
pub fn delete_session(conn: &mut AnyConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.find(id)).execute(conn)
}

/// Ends every session of this admin ("sign out everywhere").
pub fn delete_sessions(conn: &mut AnyConnection, admin_id: i64) -> QueryResult<usize> {
    diesel::delete(admin_sessions::table.filter(admin_sessions::admin_id.eq(admin_id))).execute(conn)
}
