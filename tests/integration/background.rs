//! Background work: an idle instance writes nothing, and `/healthz` and `/metrics` report each
//! background loop (a killed loop is restarted and counted; a loop stopped for good makes `/healthz` 503).

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use keypool::db::{AnyConnection, Backend};

use crate::support::{self, TestApp};

#[derive(diesel::QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn change_seq(app: &TestApp) -> i64 {
    support::with_db(app, |c| keypool::db::usage::change_seq(c).unwrap()).await
}

async fn statuses(app: &TestApp) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let rows: Vec<Status> =
        support::with_db(app, |c| diesel::sql_query("SELECT status FROM keys ORDER BY id").load(c).unwrap()).await;
    rows.into_iter().map(|r| r.status).collect()
}

/// SQLite's count of commits by other connections, read on one connection held for the whole wait.
fn data_version(conn: &mut AnyConnection) -> i64 {
    diesel::sql_query("SELECT data_version AS n FROM pragma_data_version").get_result::<Number>(conn).unwrap().n
}

#[actix_web::test]
async fn an_idle_instance_writes_nothing() {
    // The schedule looks at its lease every second (the hourly check is not due), and an access key
    // with a quota makes the writer read every instance's counts each tick.
    let app = support::spawn_with(|c| c.schedule_tick = Duration::from_secs(1)).await;
    let ids = support::seed_active(&app, &[("sk-idle-a", 5.0), ("sk-idle-b", 5.0), ("sk-idle-c", 5.0)]).await;
    let minted = keypool::domain::access_token::mint();
    let now = app.state.now_ms();
    support::with_db(&app, move |c| {
        let id = keypool::db::access_keys::create(c, "limited", &minted.hash, &minted.hint, now).unwrap();
        let limits = keypool::domain::access_limits::AccessLimits { rpd: Some(1000), ..Default::default() };
        assert!(keypool::db::access_keys::set_limits(c, id, &limits).unwrap());
    })
    .await;
    app.state.access_keys.reload(&app.state.db, &app.state.pool.quotas).await.unwrap();
    assert!(!app.state.pool.quotas.is_empty());
    // Two keys cooled a moment ago; their cooling ends once the clock passes it.
    let until = app.state.now_ms() + 1_000;
    let cooled = format!("{}, {}", ids[0], ids[1]);
    support::with_db(&app, move |c| {
        c.batch_execute(&format!(
            "UPDATE keys SET status = 'cooling', cooling_until = {until}, status_reason = 'rate limited' \
             WHERE id IN ({cooled})"
        ))
        .unwrap();
    })
    .await;
    app.clock.advance(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(30);
    while statuses(&app).await.iter().any(|s| s != "active") {
        assert!(Instant::now() < deadline, "the writer ends the cooling: {:?}", statuses(&app).await);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }

    let ticks = || app.state.schedule_ticks.load(std::sync::atomic::Ordering::Relaxed);
    let schedule_ticks = ticks();
    let before = change_seq(&app).await;
    let sqlite = app.state.backend == Backend::Sqlite;
    let pool = app.state.db.clone();
    let versions = actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let first = sqlite.then(|| data_version(&mut conn));
        std::thread::sleep(Duration::from_secs(10));
        (first, sqlite.then(|| data_version(&mut conn)))
    })
    .await
    .unwrap();
    let after = change_seq(&app).await;
    assert_eq!(before, after, "an idle instance bumps change_seq ({before} → {after} in 10 s)");
    assert_eq!(versions.0, versions.1, "an idle instance commits nothing to the SQLite file in 10 s");
    assert!(ticks() >= schedule_ticks + 5, "the schedule looked at its lease meanwhile");
}

async fn healthz(app: &TestApp) -> (u16, serde_json::Value) {
    let res = app.get("/healthz").await;
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Polls `/healthz` until `done` holds for its answer (30 s at most).
async fn healthz_until(app: &TestApp, what: &str, done: impl Fn(u16, &serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = healthz(app).await;
        if done(status, &body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what}: /healthz said {status} {body}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cool_until_ended(app: &TestApp, id: i64) {
    let until = app.state.now_ms() - 1_000;
    support::with_db(app, move |c| {
        c.batch_execute(&format!(
            "UPDATE keys SET status = 'cooling', cooling_until = {until}, status_reason = 'rate limited' WHERE id = {id}"
        ))
        .unwrap();
    })
    .await;
}

#[actix_web::test]
async fn a_killed_background_loop_is_restarted_and_one_stopped_for_good_makes_healthz_503() {
    let app = support::spawn().await;
    let ids = support::seed_active(&app, &[("sk-loop-a", 5.0)]).await;
    let body = healthz_until(&app, "every loop ticks", |s, b| {
        s == 200
            && ["reloader", "writer", "recheck", "schedule"].iter().all(|l| b["loops"][l]["last_tick_at_ms"].is_i64())
    })
    .await;
    assert_eq!(body["loops"]["writer"]["restarts"], 0, "{body}");
    assert_eq!(body["loops"]["writer"]["state"], "running", "{body}");

    // Killed as a crash would kill it: restarted (after a second), counted, and working again.
    assert!(app.state.loops.kill("writer"));
    let body = healthz_until(&app, "the writer restarted", |_, b| {
        b["loops"]["writer"]["restarts"] == 1 && b["loops"]["writer"]["state"] == "running"
    })
    .await;
    let restarted_at = body["loops"]["writer"]["last_tick_at_ms"].as_i64().unwrap();
    let (status, _) = healthz(&app).await;
    assert_eq!(status, 200, "a restarted loop is healthy");
    healthz_until(&app, "the restarted writer ticks", |_, b| {
        b["loops"]["writer"]["last_tick_at_ms"].as_i64().is_some_and(|t| t > restarted_at)
    })
    .await;
    cool_until_ended(&app, ids[0]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while statuses(&app).await != ["active"] {
        assert!(Instant::now() < deadline, "the restarted writer ends cooling periods");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    app.login().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("keypool_loop_restarts_total{loop=\"writer\"} 1"), "{metrics}");
    assert!(metrics.contains("keypool_loop_restarts_total{loop=\"reloader\"} 0"), "{metrics}");
    assert!(metrics.contains("keypool_loop_last_tick_seconds{loop=\"writer\"} 1"), "{metrics}");
    assert!(metrics.contains("keypool_loop_up{loop=\"writer\"} 1"), "{metrics}");

    // Stopped for good: /healthz answers 503 and names it, whatever the database says.
    assert!(app.state.loops.stop("writer"));
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["database"], "ok", "{body}");
    assert_eq!(body["loops"]["writer"]["state"], "dead", "{body}");
    assert!(body["reason"].as_str().unwrap().contains("`writer`"), "{body}");
    assert_eq!(body["loops"]["reloader"]["healthy"], true, "{body}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("keypool_loop_up{loop=\"writer\"} 0"), "{metrics}");
}
