//! The request log with 10,000,000 rows (30 days, 20 access keys, 25 models, 1,000 keys; results spread
//! independently of those: 90 % ok, 5 % 429, 4 % 502, 1 % no key): the page, a deep page, each filter
//! and combinations, p50/p95 at the client over loopback; then the CSV export of 1,000,000 rows, its
//! time and the process's resident memory while it streams (it must stay flat).
//!
//! `cargo bench --bench logs` (SQLite; with `KEYPOOL_TEST_POSTGRES_URL` also PostgreSQL).
//! `KEYPOOL_BENCH_LOG_ROWS` changes the row count. Goal: ≤ 100 ms p95 each page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use futures_util::StreamExt;
use keypool::config::DatabaseUrl;
use keypool::db::AnyConnection;
use keypool::startup::Application;

const ROUNDS: usize = 20;
const SPAN_MS: i64 = 30 * 86_400_000;
const CHUNK: i64 = 1_000_000;

fn rows_wanted() -> i64 {
    std::env::var("KEYPOOL_BENCH_LOG_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000)
}

/// Resident memory of this process (the server runs in it), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn seed(conn: &mut AnyConnection, total: i64, now: i64) {
    let postgres = matches!(conn, AnyConnection::Postgresql(_));
    diesel::sql_query(
        "INSERT INTO access_keys (name, token_hash, token_hint, created_at) \
         SELECT 'ak' || CAST(n AS TEXT), 'hash' || CAST(n AS TEXT), 'kp-…', 0 FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3 \
         UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 \
         UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15 \
         UNION ALL SELECT 16 UNION ALL SELECT 17 UNION ALL SELECT 18 UNION ALL SELECT 19 UNION ALL SELECT 20) t",
    )
    .execute(conn)
    .unwrap();
    // Indexes are built once after the rows (as a bulk load would), from the migration's own text.
    conn.batch_execute(
        "DROP INDEX request_log_time; DROP INDEX request_log_access_key; DROP INDEX request_log_model; \
         DROP INDEX request_log_class;",
    )
    .unwrap();
    let start = now - SPAN_MS;
    let step = SPAN_MS / total;
    let mut from = 0;
    while from < total {
        let to = (from + CHUNK).min(total);
        let series = if postgres {
            format!("SELECT CAST(i AS BIGINT) AS i FROM generate_series({from}, {} ) AS s(i)", to - 1)
        } else {
            format!(
                "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {}) SELECT i FROM n",
                to - 1
            )
        };
        diesel::sql_query(format!(
            "INSERT INTO request_log (at, access_key_id, key_id, method, path, model, status, latency_ms, ttfb_ms, \
             attempts, error, prompt_tokens, completion_tokens, total_tokens, cost) \
             SELECT {start} + i * {step}, (i % 20) + 1, (i % 1000) + 1, 'POST', '/v1/chat/completions', \
             'model-' || CAST(i % 25 AS TEXT), \
             CASE WHEN r < 90 THEN 200 WHEN r < 95 THEN 429 WHEN r < 99 THEN 502 ELSE 503 END, \
             100 + i % 900, 50 + i % 400, 1 + i % 3, \
             CASE WHEN r < 90 THEN NULL WHEN r < 95 THEN 'RPM limit reached for this model' \
                  WHEN r < 99 THEN 'no answer within 60 s (first_byte_timeout_s)' ELSE 'no key available' END, \
             CASE WHEN r < 90 THEN 100 + i % 50 END, CASE WHEN r < 90 THEN 200 + i % 70 END, \
             CASE WHEN r < 90 THEN 300 + i % 50 + i % 70 END, CASE WHEN r < 90 THEN 0.0012 END \
             FROM (SELECT i, (i * 7919) % 10007 % 100 AS r FROM ({series}) s0) s"
        ))
        .execute(conn)
        .unwrap();
        from = to;
    }
    // The same text in both migration trees.
    let indexes = include_str!("../migrations/sqlite/2026-11-30-000010_log_indexes/up.sql");
    conn.batch_execute("CREATE INDEX request_log_time ON request_log (at);").unwrap();
    conn.batch_execute(indexes).unwrap();
    if postgres {
        // What autovacuum leaves after a bulk load. SQLite gets no statistics: keypool never runs ANALYZE.
        common::analyze(conn);
    }
}

/// GETs `url` and reads the body as it streams; returns the bytes, the time, and the peak resident
/// memory seen meanwhile.
async fn export(client: &reqwest::Client, url: &str) -> (u64, Duration, f64) {
    let peak = Arc::new(AtomicU64::new(rss_mib().to_bits()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let now = rss_mib();
                if now > f64::from_bits(peak.load(Ordering::Relaxed)) {
                    peak.store(now.to_bits(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    let mut bytes = 0u64;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        bytes += chunk.unwrap().len() as u64;
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (bytes, took, f64::from_bits(peak.load(Ordering::Relaxed)))
}

async fn run(backend: &'static str, database: DatabaseUrl, rows: &mut Vec<String>, notes: &mut Vec<String>) {
    let app = Application::build(common::config(database)).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state.clone();
    actix_web::rt::spawn(app.into_server());
    let client = common::signed_in(&base).await;

    let total = rows_wanted();
    let now = state.now_ms();
    let seeding = Instant::now();
    let pool = state.db.clone();
    actix_web::web::block(move || seed(&mut pool.get().unwrap(), total, now)).await.unwrap();
    eprintln!("{backend}: seeded {total} log rows in {:.1} s", seeding.elapsed().as_secs_f64());

    let hour_ago = keypool::domain::logs::iso_time(now - 10 * 86_400_000);
    let window = format!(
        "from={}&to={}",
        &hour_ago[..16],
        &keypool::domain::logs::iso_time(now - 10 * 86_400_000 + 3_600_000)[..16]
    );
    let pages: Vec<(&str, String, bool)> = vec![
        ("page (with the selects' choices)", String::new(), false),
        ("first page (fragment)", String::new(), true),
        ("deep page (before=1000, the oldest)", "before=1000".into(), true),
        ("since=1h", "since=1h".into(), true),
        ("since=24h", "since=24h".into(), true),
        ("since=7d", "since=7d".into(), true),
        ("from/to: one hour 10 days ago", window.clone(), true),
        ("access_key=ak7 (name)", "access_key=ak7".into(), true),
        ("access_key=7 (id), deep", "access_key=7&before=1000000".into(), true),
        ("model=model-3", "model=model-3".into(), true),
        ("key=42", "key=42".into(), true),
        ("status=ok", "status=ok".into(), true),
        ("status=4xx", "status=4xx".into(), true),
        ("status=5xx", "status=5xx".into(), true),
        ("status=no_key", "status=no_key".into(), true),
        ("q=timeout (error text)", "q=timeout".into(), true),
        ("access_key + model", "access_key=ak3&model=model-7".into(), true),
        ("access_key + status=5xx", "access_key=ak3&status=5xx".into(), true),
        ("model + status=no_key", "model=model-4&status=no_key".into(), true),
        ("since=24h + model + status=4xx", "since=24h&model=model-9&status=4xx".into(), true),
        ("key + status=ok", "key=42&status=ok".into(), true),
        ("from/to + access_key", format!("{window}&access_key=ak5"), true),
        ("access_key + model (1 % of rows)", "access_key=ak1&model=model-5".into(), true),
        ("access_key + status=no_key", "access_key=ak1&status=no_key".into(), true),
        (
            "access_key + model + status=no_key (0.2 ‰ of rows)",
            "access_key=ak2&model=model-6&status=no_key".into(),
            true,
        ),
        ("access_key + q matching nothing (worst case: all 500,000 rows of ak1)", "access_key=ak1&q=zzz".into(), true),
    ];
    for (what, query, htmx) in pages {
        let (p50, p95) = common::time_get(&client, &format!("{base}/admin/logs?{query}"), htmx, ROUNDS).await;
        rows.push(format!("| {backend} | {what} | {p50:.1} | {p95:.1} |"));
    }

    // CSV of about 1,000,000 rows: the newest 3 days (10 M rows over 30 days).
    let before = rss_mib();
    let (bytes, took, peak) = export(&client, &format!("{base}/admin/logs/export?since=3d")).await;
    let lines = (total as f64 * 3.0 / 30.0).round();
    rows.push(format!(
        "| {backend} | CSV export since=3d (~{lines:.0} rows, {:.0} MiB) | {:.0} total | {:.0} rows/s |",
        bytes as f64 / 1_048_576.0,
        took.as_secs_f64() * 1000.0,
        lines / took.as_secs_f64()
    ));
    notes.push(format!(
        "{backend}: resident memory {before:.0} MiB before the export, peak {peak:.0} MiB while streaming {:.0} MiB of CSV",
        bytes as f64 / 1_048_576.0
    ));
}

fn main() {
    let (rows, notes) = actix_web::rt::System::new().block_on(async {
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        run("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), &mut rows, &mut notes).await;
        if let Some((url, drop_it)) = common::postgres("keypool_bench_logs") {
            run("PostgreSQL", url, &mut rows, &mut notes).await;
            drop_it();
        }
        (rows, notes)
    });
    println!("\n| backend | what | p50 ms | p95 ms |");
    println!("| --- | --- | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
    for n in notes {
        println!("\n{n}");
    }
}
