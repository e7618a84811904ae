//! Checker throughput: 10,000 keys against a fast local mock of `/v1/user/info` at concurrency 64
//! with no rate cap (checks per second), and a run capped at 50 requests/s (the achieved rate).
//!
//! `cargo bench --bench checks` (SQLite; with `KEYPOOL_TEST_POSTGRES_URL` also PostgreSQL).
//! Goals on this 2-core machine: ≥ 2,000 checks/s uncapped; capped rate within ±10 %.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use diesel::{Connection, RunQueryDsl};
use keypool::checker::{Checker, JobContext};
use keypool::config::DatabaseUrl;
use keypool::domain::checks::{CheckParams, Interval};
use keypool::domain::clock::Clock;

const KEYS: usize = 10_000;
const CAPPED_KEYS: usize = 500;
const CAP: f64 = 50.0;

async fn user_info() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"code":20000,"message":"OK","status":true,"data":{"balance":"0.88","chargeBalance":"88.00","totalBalance":"88.88"}}"#)
}

async fn run_job(ctx: &JobContext, keys: Vec<(i64, String)>, params: CheckParams) -> (usize, Duration) {
    let checker = Checker::default();
    let job = checker.start(ctx.clone(), keys, params, "bench").unwrap();
    let started = Instant::now();
    while job.is_running() {
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    (job.progress().processed, started.elapsed())
}

async fn bench(backend: &str, url: DatabaseUrl, upstream: &str) -> Vec<String> {
    let pool = keypool::db::open(&url, 8).unwrap();
    let keys: Vec<String> = (0..KEYS + CAPPED_KEYS).map(|i| format!("sk-bench{i:0>40}")).collect();
    let ids = {
        let pool = pool.clone();
        actix_web::web::block(move || {
            keypool::db::keys::insert_new(
                &mut pool.get().unwrap(),
                &keypool::domain::key_crypto::KeyCodec::Plain,
                &keys,
                None,
                0,
            )
            .unwrap()
        })
        .await
        .unwrap()
    };
    let pairs: Vec<(i64, String)> = ids.iter().enumerate().map(|(i, id)| (*id, format!("sk-bench{i:0>40}"))).collect();
    let ctx = JobContext {
        db: pool,
        clock: Clock::system(),
        upstream: upstream.to_owned(),
        timeout: Duration::from_secs(15),
        probe_model: None,
        min_balance: 0.0,
    };
    let fast = CheckParams {
        concurrency: 64,
        interval: Interval::Fixed(Duration::ZERO),
        retries: 0,
        retry_interval: Duration::ZERO,
        rate: 0.0,
    };
    let (done, took) = run_job(&ctx, pairs[..KEYS].to_vec(), fast).await;
    let uncapped = done as f64 / took.as_secs_f64();
    let (done_capped, took_capped) = run_job(&ctx, pairs[KEYS..].to_vec(), CheckParams { rate: CAP, ..fast }).await;
    let achieved = done_capped as f64 / took_capped.as_secs_f64();
    vec![
        format!(
            "| {backend} | {KEYS} keys, concurrency 64, no cap | {uncapped:.0} checks/s | {:.2} s |",
            took.as_secs_f64()
        ),
        format!(
            "| {backend} | {CAPPED_KEYS} keys, cap {CAP}/s | {achieved:.1} checks/s ({:+.1} %) | {:.2} s |",
            (achieved / CAP - 1.0) * 100.0,
            took_capped.as_secs_f64()
        ),
    ]
}

fn main() {
    let rows = actix_web::rt::System::new().block_on(async {
        let upstream = common::start_mock(|c| {
            c.route("/v1/user/info", web::get().to(user_info));
        });
        let dir = tempfile::tempdir().unwrap();
        let mut rows = bench("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), &upstream).await;
        if let Some(server) = std::env::var("KEYPOOL_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty()) {
            let name = "keypool_bench_checks";
            let mut admin = diesel::PgConnection::establish(&server).unwrap();
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).unwrap();
            diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).unwrap();
            let mut url = url::Url::parse(&server).unwrap();
            url.set_path(name);
            rows.extend(bench("PostgreSQL", DatabaseUrl::Postgres(url.to_string()), &upstream).await);
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).unwrap();
        }
        rows
    });
    println!("\n| backend | run | rate | time |");
    println!("| --- | --- | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
}
