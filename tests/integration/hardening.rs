//! `/healthz` tells the truth: 503 for a database without keypool's schema and for a store that
//! cannot write (a real full disk when a tmpfs can be mounted, a failing write otherwise).

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use keypool::db::{AnyConnection, Backend};

use crate::support::{self, TestApp, TestDb};

async fn healthz(app: &TestApp) -> (u16, serde_json::Value) {
    let res = app.get("/healthz").await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

fn exec(conn: &mut AnyConnection, sql: &str) {
    conn.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[actix_web::test]
async fn healthz_is_503_for_a_database_without_the_schema() {
    let app = support::spawn().await;
    assert_eq!(healthz(&app).await.0, 200);

    // A database behind this build: the newest migration is not recorded as applied.
    let newest = keypool::db::newest_migration(app.state.backend).unwrap();
    let version = newest.clone();
    support::with_db(&app, move |conn| {
        diesel::sql_query(format!("DELETE FROM __diesel_schema_migrations WHERE version = '{version}'"))
            .execute(conn)
            .unwrap();
    })
    .await;
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "schema", "{body}");
    assert!(body["reason"].as_str().unwrap().contains(&newest), "{body}");
    let res = app.client.head(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 503, "HEAD too");

    // An empty re-created database: no migrations table, no core tables.
    support::with_db(&app, |conn| exec(conn, "DROP TABLE __diesel_schema_migrations; DROP TABLE key_selections")).await;
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "schema", "{body}");
    assert_eq!(body["status"], "unavailable");
}

#[actix_web::test]
async fn healthz_is_503_when_a_write_fails() {
    // Portable stand-in for a full disk: the probe's write fails the way SQLite/PostgreSQL report it.
    let app = support::spawn().await;
    assert_eq!(healthz(&app).await.0, 200);
    let backend = app.state.backend;
    support::with_db(&app, move |conn| match backend {
        Backend::Sqlite => exec(
            conn,
            "CREATE TRIGGER full_disk_insert BEFORE INSERT ON leases BEGIN SELECT RAISE(FAIL, 'disk full'); END; \
             CREATE TRIGGER full_disk_update BEFORE UPDATE ON leases BEGIN SELECT RAISE(FAIL, 'disk full'); END;",
        ),
        Backend::Postgres => exec(
            conn,
            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'disk full'; END $$; \
             CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE ON leases FOR EACH ROW EXECUTE FUNCTION full_disk();",
        ),
    })
    .await;
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unwritable", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("disk full"), "{body}");

    support::with_db(&app, move |conn| match backend {
        Backend::Sqlite => exec(conn, "DROP TRIGGER full_disk_insert; DROP TRIGGER full_disk_update;"),
        Backend::Postgres => exec(conn, "DROP TRIGGER full_disk ON leases; DROP FUNCTION full_disk();"),
    })
    .await;
    assert_eq!(healthz(&app).await.0, 200, "healthy again once writes succeed");
}

/// Unmounts the tmpfs when the test ends, passing or not.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// A real full disk needs a small tmpfs (root with mount rights, `keypool_can_mount` from build.rs) and
// SQLite's file.
#[cfg_attr(any(keypool_test_pg, not(keypool_can_mount)), ignore = "needs root to mount a tmpfs, and SQLite")]
#[actix_web::test]
async fn healthz_is_503_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount -t tmpfs failed although this machine runs as root with mount");
    let _guard = Mounted(dir.path().to_owned());
    let path = dir.path().join("keypool.db");
    let app = support::spawn_on(TestDb::Borrowed, keypool::config::DatabaseUrl::Sqlite(path), |_| {}).await;
    assert_eq!(healthz(&app).await.0, 200);

    // Empty the write-ahead log so the next write must grow a file, then fill the disk.
    support::with_db(&app, |conn| {
        for _ in 0..50 {
            if conn.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)").is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    })
    .await;
    let filler = dir.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8; 512]);
        let _ = f.flush();
    }
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unwritable", "{body}");

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(healthz(&app).await.0, 200, "healthy again with room on the disk");
    drop(app);
}
