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

#[cfg_attr(not(keypool_pg_server), ignore = "needs PostgreSQL's server binaries (initdb): apt-get install postgresql")]
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

#[derive(diesel::QueryableByName, Debug)]
struct Counted {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    counter: i64,
    #[diesel(sql_type = BigInt)]
    logged: i64,
}

/// SIGKILL under proxy traffic loses at most one writer tick, and the counters always agree with the
/// request log: they are written with it, in the same transaction.
#[test]
fn sigkill_under_proxy_traffic_loses_at_most_a_tick_and_counters_agree_with_the_log() {
    const PARALLEL: usize = 8;
    const MAX_ATTEMPTS: i64 = 3;
    let upstream = mock::start();
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let ok = ["sk-ok-9-aaaaaaaaaaaaaaaaaaaaa", "sk-ok-9-bbbbbbbbbbbbbbbbbbbbb", "sk-ok-9-ccccccccccccccccccccc"];
    // Two keys the upstream refuses: their first requests move them to `invalid` (state changes) and
    // fail over to a good key (two attempts in one request).
    let invalid = ["sk-invalid-ddddddddddddddddddd", "sk-invalid-eeeeeeeeeeeeeeeeeee"];
    let tokens: Vec<String> = {
        let pool = keypool::db::open(&url, 1).unwrap();
        let mut conn = pool.get().unwrap();
        let keys: Vec<String> = ok.iter().chain(&invalid).map(|k| (*k).to_owned()).collect();
        keypool::db::keys::insert_new(&mut conn, &keypool::domain::key_crypto::KeyCodec::Plain, &keys, None, 1)
            .unwrap();
        diesel::sql_query("UPDATE keys SET status = 'active', total_balance = 5, status_changed_at = 1")
            .execute(&mut conn)
            .unwrap();
        (0..3)
            .map(|i| {
                let minted = keypool::domain::access_token::mint();
                keypool::db::access_keys::create(&mut conn, &format!("client {i}"), &minted.hash, &minted.hint, 1)
                    .unwrap();
                minted.token
            })
            .collect()
    };
    let (mut child, port, log) = start_server(dir.path(), Some(&env_url), &[("KEYPOOL_UPSTREAM_URL", &upstream.url)]);

    // Several clients send requests at a steady pace; each answer's arrival time is noted.
    let (answered, killed_at, sent) = actix_web::rt::System::new().block_on(async {
        let client = reqwest::Client::new();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..PARALLEL)
            .map(|w| {
                let (client, stop, sent) = (client.clone(), stop.clone(), sent.clone());
                let token = tokens[w % tokens.len()].clone();
                actix_web::rt::spawn(async move {
                    let mut answered = Vec::new();
                    // About 50 requests a second per client: a few hundred in all.
                    let mut pace = actix_web::rt::time::interval(Duration::from_millis(20));
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        pace.tick().await;
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let res = client
                            .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                            .bearer_auth(&token)
                            .json(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
                            .timeout(Duration::from_secs(30))
                            .send()
                            .await;
                        let Ok(res) = res else { break };
                        let status = res.status();
                        if res.bytes().await.is_err() {
                            break;
                        }
                        assert_eq!(status, 200, "every request is answered by a good key");
                        answered.push(Instant::now());
                    }
                    answered
                })
            })
            .collect();
        actix_web::rt::time::sleep(Duration::from_millis(4_000)).await;
        child.kill().unwrap();
        let killed_at = Instant::now();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut answered = Vec::new();
        for w in workers {
            answered.extend(w.await.unwrap().into_iter().filter(|t| *t <= killed_at));
        }
        (answered, killed_at, sent.load(std::sync::atomic::Ordering::Relaxed))
    });
    child.wait().unwrap();
    let log = log.lock().unwrap().clone();

    let pool = keypool::db::open(&url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let logged = diesel::sql_query("SELECT COUNT(*) AS n FROM request_log").get_result::<Count>(&mut conn).unwrap().n;
    let access: Vec<Counted> = diesel::sql_query(
        "SELECT a.name, a.request_count AS counter, \
         (SELECT COUNT(*) FROM request_log r WHERE r.access_key_id = a.id) AS logged FROM access_keys a ORDER BY a.id",
    )
    .load(&mut conn)
    .unwrap();
    let keys: Vec<Counted> = diesel::sql_query(
        "SELECT k.key AS name, k.request_count AS counter, \
         (SELECT COUNT(*) FROM request_log r WHERE r.key_id = k.id) AS logged FROM keys k ORDER BY k.id",
    )
    .load(&mut conn)
    .unwrap();
    let attempts = diesel::sql_query("SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) AS n FROM request_log")
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n;
    let statuses: Vec<KeyRow> =
        diesel::sql_query("SELECT key, status, request_count FROM keys ORDER BY id").load(&mut conn).unwrap();
    drop(conn);
    drop(pool);
    drop(db);

    // A tick is 250 ms; a loaded machine may delay it, so the margin is wide: what was answered more than
    // 2 s before the kill must be in the log.
    let late = answered.iter().filter(|t| killed_at.duration_since(**t) < Duration::from_millis(2_000)).count();
    let summary = format!(
        "sent {sent}, answered {} ({late} in the last 2 s), logged {logged}, attempts {attempts}; \
         access keys {access:?}; keys {keys:?}",
        answered.len()
    );
    println!("{summary}");
    assert!(answered.len() >= 100, "enough traffic to mean something: {summary}; log: {log:?}");
    // At most one tick lost: every request answered until shortly before the kill is in the log.
    assert!(logged >= (answered.len() - late) as i64, "more than a tick of the log lost: {summary}");
    assert!(logged as usize <= sent, "{summary}");
    // Access keys are counted with their log rows: exactly equal.
    for a in &access {
        assert_eq!(a.counter, a.logged, "access key {} counts what its log rows say: {summary}", a.name);
    }
    assert_eq!(access.iter().map(|a| a.counter).sum::<i64>(), logged, "{summary}");
    // Keys count attempts, as they end; the log counts requests as they end. A request's earlier
    // (failed) attempts are counted when they fail, so the counters may be ahead of the log by at most
    // the attempts of the requests in flight, never behind.
    let counted: i64 = keys.iter().map(|k| k.counter).sum();
    let in_flight = PARALLEL as i64 * MAX_ATTEMPTS;
    assert!(
        attempts <= counted && counted <= attempts + in_flight,
        "key counters ({counted}) agree with the attempts logged ({attempts}): {summary}"
    );
    for k in keys.iter().filter(|k| k.name.starts_with("sk-ok")) {
        assert!(
            k.logged <= k.counter && k.counter <= k.logged + PARALLEL as i64,
            "{} counts the requests it answered: {summary}",
            k.name
        );
    }
    // The state changes learned long before the kill are written.
    for s in statuses.iter().filter(|s| s.key.starts_with("sk-invalid")) {
        assert_eq!(s.status, "invalid", "{statuses:?}");
        assert!(s.request_count >= 1, "{statuses:?}");
    }
}

/// A full disk (on SQLite: the database at its page limit) fails the writer's transaction with the
/// real cause, not with what the rollback of an already rolled-back transaction says.
#[test]
fn a_full_database_fails_the_batch_with_the_real_cause() {
    let (db, url) = TestDb::new();
    if !matches!(url, DatabaseUrl::Sqlite(_)) {
        return;
    }
    let pool = keypool::db::open(&url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let pages = diesel::sql_query("SELECT page_count AS n FROM pragma_page_count()").get_result::<Count>(&mut conn);
    let pages = pages.unwrap().n;
    diesel::sql_query(format!("PRAGMA max_page_count = {}", pages + 4)).execute(&mut conn).unwrap();
    let mut batch = keypool::domain::usage::UsageBatch::default();
    for at in 0..5_000 {
        batch.log.push(keypool::domain::usage::RequestLogRow {
            at,
            access_key_id: None,
            key_id: None,
            method: "POST".into(),
            path: "/v1/chat/completions".into(),
            model: Some("m".repeat(200)),
            status: 200,
            latency_ms: 1,
            ttfb_ms: None,
            attempts: 1,
            error: None,
            tokens: None,
            cost: None,
            outcome: keypool::domain::usage::Outcome::Ok,
        });
    }
    let error = keypool::db::usage::record(&mut conn, &batch).unwrap_err().to_string();
    assert!(error.contains("full"), "the cause, not {error:?}");
    let logged = diesel::sql_query("SELECT COUNT(*) AS n FROM request_log").get_result::<Count>(&mut conn).unwrap().n;
    assert_eq!(logged, 0, "nothing of the batch is written");
    // With room again, the same connection takes the batch.
    diesel::sql_query("PRAGMA max_page_count = 1073741823").execute(&mut conn).unwrap();
    keypool::db::usage::record(&mut conn, &batch).unwrap();
    drop(conn);
    drop(pool);
    drop(db);
}

/// A key rate-limited again just after its cooling ended (the proxy saw it active; the writer had not
/// yet said so) keeps both moves in its history: cooling ended, then cooling again.
#[test]
fn a_cooling_that_ended_before_new_evidence_is_written_first() {
    use keypool::domain::key_state::Evidence;
    use keypool::domain::usage::{StateChange, UsageBatch};
    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Event {
        #[diesel(sql_type = Text)]
        from_status: String,
        #[diesel(sql_type = Text)]
        to_status: String,
        #[diesel(sql_type = BigInt)]
        at: i64,
    }
    let (db, url) = TestDb::new();
    let pool = keypool::db::open(&url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let ids = keypool::db::keys::insert_new(
        &mut conn,
        &keypool::domain::key_crypto::KeyCodec::Plain,
        &["sk-cool-aaaaaaaaaaaaaaaaaaaaa".to_owned()],
        None,
        1,
    )
    .unwrap();
    diesel::sql_query(
        "UPDATE keys SET status = 'cooling', total_balance = 5, cooling_until = 1000, status_changed_at = 500",
    )
    .execute(&mut conn)
    .unwrap();
    let mut batch = UsageBatch::default();
    batch.change(StateChange {
        key_id: ids[0],
        evidence: Evidence::RateLimited { model: None, daily: false, until: 5_000 },
        reason: "HTTP 429".into(),
        at: 2_000,
    });
    keypool::db::usage::record(&mut conn, &batch).unwrap();
    let events: Vec<Event> =
        diesel::sql_query("SELECT from_status, to_status, at FROM key_events WHERE key_id = $1 ORDER BY at")
            .bind::<BigInt, _>(ids[0])
            .load(&mut conn)
            .unwrap();
    let moved = |from: &str, to: &str, at| Event { from_status: from.into(), to_status: to.into(), at };
    assert_eq!(events, [moved("cooling", "active", 1_000), moved("active", "cooling", 2_000)]);
    let until = diesel::sql_query("SELECT cooling_until AS n FROM keys").get_result::<Count>(&mut conn).unwrap().n;
    assert_eq!(until, 5_000);
    drop(conn);
    drop(pool);
    drop(db);
}
