//! Both migration trees must build the same schema: same version folders, same tables and columns.

use std::collections::BTreeSet;

use diesel::RunQueryDsl;
use diesel::sql_types::Text;
use keypool::config::DatabaseUrl;

use crate::support::TestDb;

#[derive(diesel::QueryableByName, Debug)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    nullable: String,
}

fn migration_folders(backend: &str) -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn columns(url: &DatabaseUrl) -> BTreeSet<(String, String, String)> {
    let pool = keypool::db::open(url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let query = match url {
        DatabaseUrl::Sqlite(_) => {
            "SELECT m.name AS table_name, p.name AS column_name, \
             CASE WHEN p.\"notnull\" = 1 OR p.pk = 1 THEN 'NO' ELSE 'YES' END AS nullable \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'"
        }
        DatabaseUrl::Postgres(_) => {
            "SELECT table_name::text AS table_name, column_name::text AS column_name, is_nullable::text AS nullable \
             FROM information_schema.columns WHERE table_schema = 'public'"
        }
    };
    let rows: Vec<ColumnRow> = diesel::sql_query(query).load(&mut *conn).unwrap();
    rows.into_iter()
        .filter(|r| r.table_name != "__diesel_schema_migrations")
        .map(|r| (r.table_name, r.column_name, r.nullable))
        .collect()
}

#[test]
fn migration_trees_have_the_same_versions() {
    let sqlite = migration_folders("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, migration_folders("postgres"));
}

#[test]
fn both_backends_build_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = columns(&DatabaseUrl::Sqlite(dir.path().join("schema.db")));
    assert!(sqlite.iter().any(|(t, c, _)| t == "access_keys" && c == "token_hash"));
    if std::env::var("KEYPOOL_TEST_POSTGRES_URL").map_or(true, |v| v.is_empty()) {
        eprintln!("KEYPOOL_TEST_POSTGRES_URL is not set: compared the SQLite schema only");
        return;
    }
    let (_db, url) = TestDb::new();
    let postgres = columns(&url);
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only in SQLite: {only_sqlite:?}\nonly in PostgreSQL: {only_postgres:?}"
    );
}
