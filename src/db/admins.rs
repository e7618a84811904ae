//! Queries of the `admins` table (one admin account today; the table allows more later).

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::admins;

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
