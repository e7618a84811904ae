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

#[cfg_attr(not(keypool_test_pg), ignore = "compares with PostgreSQL: set KEYPOOL_TEST_POSTGRES_URL")]
#[test]
fn both_backends_build_the_same_tables_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = columns(&DatabaseUrl::Sqlite(dir.path().join("schema.db")));
    assert!(sqlite.iter().any(|(t, c, _)| t == "access_keys" && c == "token_hash"));
    let (_db, url) = TestDb::new();
    let postgres = columns(&url);
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "only in SQLite: {only_sqlite:?}\nonly in PostgreSQL: {only_postgres:?}"
    );
}

/// `src/db/schema.rs` as diesel's `print-schema` would write it from a SQLite file built by the
/// migrations: tables in name order, columns in their order, every integer as `BigInt` (epoch ms and
/// ids), `joinable!` from the foreign keys.
fn generated_schema() -> String {
    #[derive(diesel::QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        name: String,
    }
    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        not_null: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pk: i64,
    }
    #[derive(diesel::QueryableByName)]
    struct Foreign {
        #[diesel(sql_type = Text)]
        target: String,
        #[diesel(sql_type = Text)]
        source: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let pool = keypool::db::open(&DatabaseUrl::Sqlite(dir.path().join("schema.db")), 1).unwrap();
    let mut conn = pool.get().unwrap();
    let tables: Vec<Table> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '__diesel_schema_migrations' ORDER BY name",
    )
    .load(&mut *conn)
    .unwrap();
    let mut out = String::from(
        "// @generated from the SQLite migrations by `tests/integration/schema.rs`: do not edit by hand.\n\
         // After a migration, `KEYPOOL_BLESS_SCHEMA=1 cargo test schema_rs` rewrites it. Only SQL types that\n\
         // `MultiConnection` supports on both backends; times are unix epoch milliseconds.\n",
    );
    let mut joins = Vec::new();
    let mut declared = Vec::new();
    for t in &tables {
        let columns: Vec<Column> = diesel::sql_query(format!(
            "SELECT name, type AS kind, \"notnull\" AS not_null, pk FROM pragma_table_info('{}') ORDER BY cid",
            t.name
        ))
        .load(&mut *conn)
        .unwrap();
        let mut keys: Vec<&Column> = columns.iter().filter(|c| c.pk > 0).collect();
        keys.sort_by_key(|c| c.pk);
        let keys: Vec<&str> = keys.iter().map(|c| c.name.as_str()).collect();
        if keys.is_empty() {
            // As `print-schema` does: diesel needs a primary key; such a table is read by raw SQL only.
            out.push_str(&format!("\n// `{}` has no primary key: not declared (raw SQL only).\n", t.name));
            continue;
        }
        declared.push(t.name.clone());
        out.push_str(&format!("\ndiesel::table! {{\n    {} ({}) {{\n", t.name, keys.join(", ")));
        for c in &columns {
            let kind = c.kind.to_ascii_uppercase();
            let ty = if kind.contains("INT") {
                "BigInt"
            } else if kind.contains("BOOL") {
                "Bool"
            } else if kind.contains("DOUBLE") || kind.contains("REAL") {
                "Double"
            } else {
                "Text"
            };
            let ty = if c.not_null == 1 || c.pk > 0 { ty.to_owned() } else { format!("Nullable<{ty}>") };
            out.push_str(&format!("        {} -> {ty},\n", c.name));
        }
        out.push_str("    }\n}\n");
        let foreign: Vec<Foreign> = diesel::sql_query(format!(
            "SELECT \"table\" AS target, \"from\" AS source FROM pragma_foreign_key_list('{}')",
            t.name
        ))
        .load(&mut *conn)
        .unwrap();
        joins.extend(
            foreign.into_iter().map(|f| format!("diesel::joinable!({} -> {} ({}));\n", t.name, f.target, f.source)),
        );
    }
    joins.sort();
    out.push('\n');
    for j in joins {
        out.push_str(&j);
    }
    out.push_str("\ndiesel::allow_tables_to_appear_in_same_query!(\n");
    for t in tables.iter().filter(|t| declared.contains(&t.name)) {
        out.push_str(&format!("    {},\n", t.name));
    }
    out.push_str(");\n");
    out
}

#[test]
fn schema_rs_is_what_the_migrations_build() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db/schema.rs");
    let generated = generated_schema();
    if std::env::var("KEYPOOL_BLESS_SCHEMA").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written == generated,
        "src/db/schema.rs differs from what the migrations build; run `KEYPOOL_BLESS_SCHEMA=1 cargo test schema_rs` \
         and review the diff"
    );
}
