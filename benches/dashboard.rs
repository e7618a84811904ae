//! The dashboard with 100,000 keys, 1,000,000 balance-history rows and a year of traffic roll-ups:
//! the page, each chart fragment (traffic ones included), a key's detail and the settings page with
//! each access key's usage, p50/p95 at the client over loopback (an upper bound of server time).
//!
//! `cargo bench --bench dashboard` (SQLite; with `KEYPOOL_TEST_POSTGRES_URL` also PostgreSQL).
//! Goal: ≤ 100 ms p95 each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use diesel::RunQueryDsl;
use keypool::config::DatabaseUrl;
use keypool::startup::Application;

const KEYS: usize = 100_000;
const HISTORY: i64 = 1_000_000;
const ROUNDS: usize = 50;

async fn run(backend: &'static str, database: DatabaseUrl, rows: &mut Vec<String>) {
    let app = Application::build(common::config(database)).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state.clone();
    actix_web::rt::spawn(app.into_server());
    let client = common::signed_in(&base).await;

    let seeding = Instant::now();
    let pool = state.db.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        let keys: Vec<String> = (0..KEYS).map(|i| format!("sk-dash{i:0>41}")).collect();
        keypool::db::keys::insert_new(&mut conn, &keypool::domain::key_crypto::KeyCodec::Plain, &keys, None, 0)
            .unwrap();
        common::seed_states(&mut conn);
        let series = match &mut *conn {
            keypool::db::AnyConnection::Sqlite(_) => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {HISTORY}) SELECT i FROM n"
            ),
            keypool::db::AnyConnection::Postgresql(_) => format!("SELECT i FROM generate_series(1, {HISTORY}) AS s(i)"),
        };
        diesel::sql_query(format!(
            "INSERT INTO balance_history (key_id, total_balance, charge_balance, gift_balance, checked_at) \
             SELECT (i % {KEYS}) + 1, (i % 5000) / 10.0, 0, 0, CAST(i AS BIGINT) * 1000 FROM ({series}) s"
        ))
        .execute(&mut conn)
        .unwrap();
        diesel::sql_query(format!(
            "INSERT INTO pool_snapshots (taken_at, active_keys, total_balance) \
             SELECT CAST(i AS BIGINT) * 3600000, 70000, 700000 + (i % 500) FROM ({}) s WHERE i <= 2160",
            series.replace(&HISTORY.to_string(), "2160")
        ))
        .execute(&mut conn)
        .unwrap();
        seed_rollups(&mut conn, &series);
        common::analyze(&mut conn);
    })
    .await
    .unwrap();
    eprintln!("{backend}: seeded {KEYS} keys and {HISTORY} history rows in {:.1} s", seeding.elapsed().as_secs_f64());

    let pages = [
        ("dashboard page", "/admin", false),
        ("dashboard refresh (fragment)", "/admin?refresh=30", true),
        ("chart: distribution, fixed buckets", "/admin/charts/distribution", true),
        ("chart: distribution, automatic buckets", "/admin/charts/distribution?buckets=auto", true),
        ("chart: states", "/admin/charts/status", true),
        ("chart: trend, all time, outliers capped", "/admin/charts/trend?period=all&outliers=cap", true),
        ("chart: trend, 7 days", "/admin/charts/trend?period=7d", true),
        ("chart: top 50", "/admin/charts/top?top=50", true),
        ("chart: top all (1000)", "/admin/charts/top?top=all", true),
        ("key detail (10 history rows of 1M)", "/admin/keys/4242", false),
        ("chart: traffic, 24 h (per-minute roll-ups)", "/admin/charts/traffic?window=24h", true),
        ("chart: traffic, 7 days", "/admin/charts/traffic?window=7d", true),
        ("chart: traffic, 30 days", "/admin/charts/traffic?window=30d", true),
        ("chart: latency, 30 days", "/admin/charts/latency?window=30d", true),
        ("chart: tokens per model, 30 days", "/admin/charts/tokens?window=30d", true),
        ("chart: cost per access key, 30 days", "/admin/charts/spend?window=30d", true),
        ("settings page (access keys' usage today / 7 d / 30 d)", "/admin/settings", false),
    ];
    for (what, path, htmx) in pages {
        let (p50, p95) = common::time_get(&client, &format!("{base}{path}"), htmx, ROUNDS).await;
        rows.push(format!("| {backend} | {what} | {p50:.1} | {p95:.1} |"));
    }
}

/// A year of traffic roll-ups as the writer leaves them: hourly and daily rows for 10 access keys x
/// 10 models x 3 outcomes (2.6 M + 0.1 M rows), a week of per-minute ones (3 x 5 x 2 groups: 0.3 M),
/// and the overall rows per bucket and outcome, ending now.
fn seed_rollups(conn: &mut keypool::db::AnyConnection, series: &str) {
    use keypool::domain::usage::{DAY, HOUR, MINUTE};
    let now = keypool::domain::clock::Clock::system().now_ms();
    let n = |count: i64| series.replace(&HISTORY.to_string(), &count.to_string());
    let three = "SELECT 'ok' AS o UNION ALL SELECT 'caller_error' UNION ALL SELECT 'upstream_error'";
    let two = "SELECT 'ok' AS o UNION ALL SELECT 'upstream_error'";
    for (period, count, keys, models, outcomes) in
        [(HOUR, 8760, 10, 10, three), (DAY, 365, 10, 10, three), (MINUTE, 7 * 1440, 3, 5, two)]
    {
        let start = now - now % period;
        let sums = "30, 3000, 9000, 0.05, 9000, 20, 8, 2";
        diesel::sql_query(format!(
            "INSERT INTO usage_rollups (period, bucket_at, access_key_id, model, outcome, requests, prompt_tokens, \
             completion_tokens, cost, latency_sum_ms, lat_2, lat_4, lat_6) \
             SELECT {period}, {start} - CAST(s.i AS BIGINT) * {period}, k.i, 'org/model-' || CAST(m.i AS TEXT), o.o, \
             {sums} FROM ({}) s, ({}) k, ({}) m, ({outcomes}) o",
            n(count),
            n(keys),
            n(models)
        ))
        .execute(conn)
        .unwrap();
        diesel::sql_query(format!(
            "INSERT INTO traffic_rollups (period, bucket_at, outcome, requests, prompt_tokens, completion_tokens, \
             cost, latency_sum_ms, lat_2, lat_4, lat_6) \
             SELECT {period}, {start} - CAST(s.i AS BIGINT) * {period}, o.o, {sums} FROM ({}) s, ({outcomes}) o",
            n(count)
        ))
        .execute(conn)
        .unwrap();
    }
}

fn main() {
    let rows = actix_web::rt::System::new().block_on(async {
        let mut rows = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        run("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), &mut rows).await;
        if let Some((url, drop_it)) = common::postgres("keypool_bench_dashboard") {
            run("PostgreSQL", url, &mut rows).await;
            drop_it();
        }
        rows
    });
    println!("\n| backend | what | p50 ms | p95 ms |");
    println!("| --- | --- | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
}
