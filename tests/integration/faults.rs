//! Faults keypool must survive: the database stopped and started under proxy traffic, an import
//! killed mid-transaction, and SIGTERM in the middle of a stream.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::web;
use diesel::sql_types::{BigInt, Text};
use diesel::{Connection, RunQueryDsl};
use futures_util::StreamExt;
use keypool::config::DatabaseUrl;

use crate::mock;
use crate::process::{keypool, run, seed_routable, start_server, text, wait_with_deadline};
use crate::support::{self, TestApp, TestDb};

#[path = "pg_server.rs"]
mod pg_server;
use pg_server::PgServer;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName, Debug, PartialEq)]
struct KeyRow {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    request_count: i64,
}

/// What the database says after the outage: every key, and the number of request-log rows.
#[derive(Debug)]
struct Written {
    keys: Vec<KeyRow>,
    logged: i64,
}

/// Reads what was written, or `None` while the database does not answer (never panics on that).
async fn written(app: &TestApp) -> Option<Written> {
    let pool = app.state.db.clone();
    web::block(move || {
        let mut conn = pool.get().ok()?;
        let keys = diesel::sql_query("SELECT key, status, request_count FROM keys ORDER BY id").load(&mut conn).ok()?;
        let logged = diesel::sql_query("SELECT COUNT(*) AS n FROM request_log").get_result::<Count>(&mut conn).ok()?.n;
        Some(Written { keys, logged })
    })
    .await
    .ok()
    .flatten()
}

/// An answer within a minute, or a failure saying the server hung.
async fn within_a_minute(
    what: &str,
    request: impl std::future::Future<Output = reqwest::Response>,
) -> reqwest::Response {
    match tokio::time::timeout(Duration::from_secs(60), request).await {
        Ok(res) => res,
        Err(_) => panic!("{what}: no answer within a minute"),
    }
}

#[actix_web::test]
async fn postgres_stopped_and_started_during_proxy_traffic_loses_nothing() {
    let Some(pg) = web::block(PgServer::start).await.unwrap() else { return };
    let upstream = mock::start();
    let mock_url = upstream.url.clone();
    let app = support::spawn_on(TestDb::Borrowed, DatabaseUrl::Postgres(pg.url()), move |c| {
        c.upstream_override = Some(mock_url);
    })
    .await;
    let token = support::access_key(&app).await;
    support::set_settings(&app, &[("selection_strategy", "round_robin"), ("max_attempts", "5")]).await;
    let ok = ["sk-ok-9-aaaaaaaaaaaaaaaaaaaaa", "sk-ok-9-bbbbbbbbbbbbbbbbbbbbb", "sk-ok-9-ccccccccccccccccccccc"];
    let invalid =
        ["sk-invalid-ddddddddddddddddddd", "sk-invalid-eeeeeeeeeeeeeeeeeee", "sk-invalid-fffffffffffffffffff"];
    // The good keys first: round robin goes by id, so the first three requests use only them and the
    // invalid keys are first met while the database is down.
    let seeded: Vec<(&str, f64)> = ok.iter().chain(&invalid).map(|k| (*k, 10.0)).collect();
    support::seed_active(&app, &seeded).await;
    app.login().await;

    let chat = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"model": "Qwen/Qwen2.5-7B-Instruct", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let chats = |key: &str| upstream.hits.of(&format!("chat Bearer {key}"));
    let mut sent = 0;
    for _ in 0..3 {
        assert_eq!(within_a_minute("a request before the outage", async { chat().await.unwrap() }).await.status(), 200);
        sent += 1;
    }
    assert!(invalid.iter().all(|k| chats(k) == 0), "the invalid keys are still untried");
    assert_eq!(within_a_minute("/healthz", app.get("/healthz")).await.status(), 200);

    let mut pg = web::block(move || {
        let mut pg = pg;
        pg.stop();
        pg
    })
    .await
    .unwrap();

    // The keys are in memory: every request is answered, and the invalid keys are failed over.
    for _ in 0..4 {
        let res = within_a_minute("a request while the database is down", async { chat().await.unwrap() }).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
        sent += 1;
    }
    for k in invalid {
        assert_eq!(chats(k), 1, "{k} was tried (and dropped) while the database was down");
    }
    let res = within_a_minute("/healthz while the database is down", app.get("/healthz")).await;
    assert_eq!(res.status(), 503);
    let res = within_a_minute("/admin while the database is down", app.get("/admin")).await;
    assert_eq!(res.status(), 503);
    let page = res.text().await.unwrap();
    assert!(page.contains("The database is not answering right now"), "{page}");
    for _ in 0..4 {
        let res = within_a_minute("a request while the database is down", async { chat().await.unwrap() }).await;
        assert_eq!(res.status(), 200);
        sent += 1;
    }
    assert!(invalid.iter().all(|k| chats(k) == 1), "a dead key is not tried again");

    let pg = web::block(move || {
        pg.restart();
        pg
    })
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(within_a_minute("a request after the outage", async { chat().await.unwrap() }).await.status(), 200);
        sent += 1;
    }

    // Everything learned during the outage reaches the database once it answers.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let flushed = keypool::pool::writer::flush(&app.state.pool, &app.state.db).await;
        let seen = if flushed { written(&app).await } else { None };
        if let Some(w) = &seen {
            let status = |k: &str| w.keys.iter().find(|r| r.key == k).map(|r| r.status.as_str());
            let ok_requests: i64 =
                w.keys.iter().filter(|r| ok.contains(&r.key.as_str())).map(|r| r.request_count).sum();
            if invalid.iter().all(|k| status(k) == Some("invalid"))
                && ok.iter().all(|k| status(k) == Some("active"))
                && ok_requests == sent
                && w.logged == sent
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "after the restart the database should hold what the proxy learned ({sent} requests); \
             flushed {flushed}, seen {seen:?}; server log:\n{}",
            pg.log()
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.state.pool.dropped_log_rows.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(within_a_minute("/healthz after the outage", app.get("/healthz")).await.status(), 200);
    let res = within_a_minute("/admin after the outage", app.get("/admin")).await;
    assert_eq!(res.status(), 200, "the admin works again with the same session");
    drop(app);
    drop(pg);
}

fn count_keys(url: &DatabaseUrl) -> i64 {
    let mut conn = keypool::db::connect(url).unwrap();
    diesel::sql_query("SELECT COUNT(*) AS n FROM keys").get_result::<Count>(&mut conn).unwrap().n
}

/// Whether the import's transaction is open: for SQLite its uncommitted pages spill into the
/// write-ahead log; PostgreSQL shows the backend inserting keys (or between two inserts).
fn import_transaction_open(db: &TestDb, url: &DatabaseUrl) -> bool {
    match (db, url) {
        (TestDb::Postgres { server_url, name }, _) => {
            let Ok(mut conn) = diesel::PgConnection::establish(server_url) else { return false };
            diesel::sql_query(
                "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = $1 \
                 AND state IN ('active', 'idle in transaction') AND query LIKE 'INSERT INTO keys%'",
            )
            .bind::<Text, _>(name.as_str())
            .get_result::<Count>(&mut conn)
            .is_ok_and(|c| c.n > 0)
        }
        (_, DatabaseUrl::Sqlite(path)) => {
            let wal = path.with_file_name(format!("{}-wal", path.file_name().unwrap().to_string_lossy()));
            std::fs::metadata(wal).is_ok_and(|m| m.len() > 1024 * 1024)
        }
        _ => unreachable!("a test database is SQLite or PostgreSQL"),
    }
}

#[test]
fn sigkill_during_a_100000_key_import_leaves_all_or_none() {
    const KEYS: i64 = 100_000;
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let file = dir.path().join("keys.txt");
    let keys: String = (0..KEYS).map(|i| format!("sk-import{i:0>40}\n")).collect();
    std::fs::write(&file, keys).unwrap();
    // Migrations first, so the only transaction the import opens is the one that adds the keys.
    let out = run(keypool(dir.path(), Some(&env_url)).arg("migrate"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut child = keypool(dir.path(), Some(&env_url))
        .args(["import", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !import_transaction_open(&db, &url) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the import ended ({status}) before its transaction was seen open");
        }
        assert!(Instant::now() < deadline, "the import's transaction was never seen open");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = count_keys(&url);
    println!("keys after SIGKILL: {after_kill}");
    assert!(after_kill == 0 || after_kill == KEYS, "all or none, not {after_kill}");

    // Run again, to its end: exactly the file's keys, once each.
    let out = run(keypool(dir.path(), Some(&env_url)).args(["import", file.to_str().unwrap()]), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("added {}, already present {after_kill}, duplicates in input 0, rejected 0", KEYS - after_kill)
    );
    assert_eq!(count_keys(&url), KEYS);
    drop(db);
}

/// Whether a new connection gets an HTTP answer from the server.
async fn answers_a_new_connection(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1"))
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.ok().flatten().unwrap_or(false)
}

#[test]
fn sigterm_during_a_stream_lets_it_finish() {
    stop_during_a_stream("-TERM");
}

#[test]
fn sigint_during_a_stream_lets_it_finish_too() {
    stop_during_a_stream("-INT");
}

/// Sends `signal` to `keypool serve` while a stream is under way: the stream ends whole, new
/// connections are refused, the request is logged and the process exits 0.
fn stop_during_a_stream(signal: &str) {
    let upstream = mock::start();
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let token = seed_routable(&url, "sk-trickle-aaaaaaaaaaaaaaaaaaa");
    let (child, port, log) = start_server(dir.path(), Some(&env_url), &[("KEYPOOL_UPSTREAM_URL", &upstream.url)]);
    let pid = child.id().to_string();

    let streamed = actix_web::rt::System::new().block_on(async {
        let client = reqwest::Client::new();
        let res = client
            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"model": "m", "messages": [], "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut stream = res.bytes_stream();
        let mut text = String::new();
        while !text.contains("data: {") {
            let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
            let Ok(Some(Ok(chunk))) = chunk else { panic!("no first chunk: {text:?}") };
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(!text.contains("[DONE]"), "the stream is still going when {signal} comes: {text}");
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success());

        // The server stops taking connections (its listener closes; at the latest, the process ends).
        let deadline = Instant::now() + Duration::from_secs(30);
        while answers_a_new_connection(port).await {
            assert!(Instant::now() < deadline, "new connections are still answered long after {signal}");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }

        // The stream already under way goes on to its end.
        let rest = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
                    Err(e) => {
                        text.push_str(&format!("\n<error: {e}>"));
                        break;
                    }
                }
            }
        })
        .await;
        assert!(rest.is_ok(), "the stream did not end: {text}");
        drop(stream);
        drop(client);
        text
    });
    assert!(streamed.ends_with("data: [DONE]\n\n"), "{streamed}");
    for i in 0..10 {
        assert!(streamed.contains(&format!("\"content\":\"{i} \"")), "chunk {i} arrived: {streamed}");
    }
    assert_eq!(streamed.matches("data: {").count(), 10, "{streamed}");

    let out = wait_with_deadline(child, Duration::from_secs(60));
    assert!(out.status.success(), "exit 0 after {signal} ({}): {:?}", out.status, log.lock().unwrap());
    let pool = keypool::db::open(&url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    #[derive(diesel::QueryableByName, Debug)]
    struct Logged {
        #[diesel(sql_type = BigInt)]
        status: i64,
        #[diesel(sql_type = Text)]
        path: String,
    }
    let rows: Vec<Logged> = diesel::sql_query("SELECT status, path FROM request_log").load(&mut conn).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].status, rows[0].path.as_str()), (200, "/v1/chat/completions"));
    drop(conn);
    drop(pool);
    drop(db);
}
