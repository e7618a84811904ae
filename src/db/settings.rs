//! Queries of the `settings` table: a name → value store behind [`crate::domain::settings::Settings`].

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::AnyConnection;
use super::schema::settings;

/// Every stored row, by name.
pub fn load_all(conn: &mut AnyConnection) -> QueryResult<HashMap<String, String>> {
    let rows: Vec<(String, String)> = settings::table.select((settings::name, settings::value)).load(conn)?;
    Ok(rows.into_iter().collect())
}

/// The settings in force (defaults for anything never stored).
pub fn current(conn: &mut AnyConnection) -> QueryResult<crate::domain::settings::Settings> {
    Ok(crate::domain::settings::Settings::from_stored(&load_all(conn)?))
}

/// One value, if stored.
pub fn get(conn: &mut AnyConnection, name: &str) -> QueryResult<Option<String>> {
    settings::table.select(settings::value).filter(settings::name.eq(name)).first(conn).optional()
}

/// Writes several values in one transaction (insert or replace each).
pub fn put_many(conn: &mut AnyConnection, values: &[(String, String)], now: i64) -> QueryResult<()> {
    conn.transaction(|conn| {
        for (name, value) in values {
            // Raw SQL: diesel's upsert DSL is not available on the multi-backend connection.
            diesel::sql_query(
                "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind::<Text, _>(name)
            .bind::<Text, _>(value)
            .bind::<BigInt, _>(now)
            .execute(conn)?;
        }
        Ok(())
    })
}

/// Stores `value` unless the name already has one; returns the value that is stored afterwards.
/// Safe when several instances start at once on one database.
pub fn get_or_insert(conn: &mut AnyConnection, name: &str, value: &str, now: i64) -> QueryResult<String> {
    // Raw SQL: INSERT … ON CONFLICT DO NOTHING (upsert is not in the multi-backend DSL).
    diesel::sql_query(
        "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(value)
    .bind::<BigInt, _>(now)
    .execute(conn)?;
    settings::table.select(settings::value).filter(settings::name.eq(name)).first(conn)
}
