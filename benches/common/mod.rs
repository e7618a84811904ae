//! What the benchmarks share: the app's configuration, a signed-in client, percentiles, and a
//! PostgreSQL database per run when `KEYPOOL_TEST_POSTGRES_URL` is set.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use keypool::config::{Config, DatabaseUrl};
use keypool::domain::clock::Clock;

pub fn config(database: DatabaseUrl) -> Config {
    Config {
        database,
        bind: "127.0.0.1:0".parse().unwrap(),
        admin_username: Some("admin".into()),
        admin_password: Some("bench-password".into()),
        secret: Some(vec![9u8; 64]),
        insecure_cookies: true,
        upstream_override: Some("http://127.0.0.1:9".into()),
        session_ttl: Duration::from_secs(3600),
        guest_session_ttl: Duration::from_secs(3600),
        schedule_tick: Duration::from_secs(3600),
        schedule_period: None,
        shutdown_grace: Duration::from_secs(5),
        trust_forwarded_for: false,
        workers: Some(2),
        body_pace: keypool::config::BodyPace::default(),
        max_connections_per_client: keypool::config::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        encryption_key: None,
        clock: Clock::system(),
    }
}

pub async fn signed_in(base: &str) -> reqwest::Client {
    let client =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client
        .post(format!("{base}/login"))
        .form(&[("username", "admin"), ("password", "bench-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    client
}

/// Starts a one-worker mock upstream with these routes on its own thread; returns its base URL.
pub fn start_mock(routes: fn(&mut actix_web::web::ServiceConfig)) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || actix_web::App::new().configure(routes))
                .workers(1)
                .backlog(4096)
                .bind("127.0.0.1:0")
                .unwrap();
            tx.send(server.addrs()[0].port()).unwrap();
            server.run().await.unwrap();
        });
    });
    format!("http://127.0.0.1:{}", rx.recv().unwrap())
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times `rounds` GETs of `url` (after 10 warm-ups) and returns (p50, p95) in ms.
pub async fn time_get(client: &reqwest::Client, url: &str, htmx: bool, rounds: usize) -> (f64, f64) {
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds + 10 {
        let started = Instant::now();
        let mut req = client.get(url);
        if htmx {
            req = req.header("hx-request", "true");
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let _ = res.bytes().await.unwrap();
        if round >= 10 {
            times.push(ms(started.elapsed()));
        }
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.95))
}

/// A fresh PostgreSQL database named `name` (dropped first), when the variable is set.
pub fn postgres(name: &str) -> Option<(DatabaseUrl, impl FnOnce())> {
    let server = std::env::var("KEYPOOL_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty())?;
    let mut admin = diesel::PgConnection::establish(&server).unwrap();
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(name);
    let name = name.to_owned();
    let drop_it = move || {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
    };
    Some((DatabaseUrl::Postgres(url.to_string()), drop_it))
}

/// Gives a pool realistic states and balances, as checks would: 70 % active with balances, 10 % each
/// depleted (0), invalid and unchecked; then fresh planner statistics (PostgreSQL: and the visibility map,
/// as autovacuum leaves it after a bulk change).
pub fn seed_states(conn: &mut keypool::db::AnyConnection) {
    diesel::sql_query(
        "UPDATE keys SET \
         status = CASE WHEN id % 10 < 7 THEN 'active' WHEN id % 10 = 7 THEN 'depleted' WHEN id % 10 = 8 THEN 'invalid' ELSE status END, \
         total_balance = CASE WHEN id % 10 < 7 THEN (id * 7919 % 20000) / 100.0 WHEN id % 10 = 7 THEN 0 ELSE NULL END, \
         checked_at = CASE WHEN id % 10 < 9 THEN added_at + id ELSE NULL END",
    )
    .execute(conn)
    .unwrap();
}

/// `ANALYZE` (SQLite) or `VACUUM ANALYZE` (PostgreSQL).
pub fn analyze(conn: &mut keypool::db::AnyConnection) {
    let sql = match conn {
        keypool::db::AnyConnection::Sqlite(_) => "ANALYZE",
        keypool::db::AnyConnection::Postgresql(_) => "VACUUM ANALYZE",
    };
    diesel::sql_query(sql).execute(conn).unwrap();
}
