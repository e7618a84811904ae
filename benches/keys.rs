//! Keys at scale: one 100,000-key paste imported, the keys page sorted, paged and filtered, and an
//! export of all, against the real app (release build, in-process, loopback HTTP).
//!
//! `cargo bench --bench keys` runs it on SQLite, and on PostgreSQL too when `KEYPOOL_TEST_POSTGRES_URL`
//! is set (a database is created and dropped). Times are measured at the client over loopback, so they
//! include HTTP; they are an upper bound of the server time. Goals: import ≤ 3 s, each page ≤ 50 ms p95,
//! export ≤ 1 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use keypool::config::DatabaseUrl;
use keypool::startup::Application;

const KEYS: usize = 100_000;
const ROUNDS: usize = 100;

struct Row {
    backend: &'static str,
    what: String,
    p50: f64,
    p95: f64,
    note: String,
}

async fn run_backend(backend: &'static str, database: DatabaseUrl, rows: &mut Vec<Row>) {
    let app = Application::build(common::config(database)).await.expect("app starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state.clone();
    actix_web::rt::spawn(app.into_server());
    let client = common::signed_in(&base).await;

    let paste: String = (0..KEYS).map(|i| format!("sk-bench{i:0>40}\n")).collect();
    let started = Instant::now();
    let res = client
        .post(format!("{base}/admin/keys/import"))
        .header("content-type", "text/plain")
        .body(paste)
        .send()
        .await
        .unwrap();
    let import = started.elapsed();
    let body = res.text().await.unwrap();
    assert!(body.contains("100000"), "import answer: {body}");
    rows.push(Row {
        backend,
        what: format!("import {KEYS} keys (one paste)"),
        p50: common::ms(import),
        p95: common::ms(import),
        note: "1 run".into(),
    });

    // Give the pool realistic states and balances, as checks would.
    let pool = state.db.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().unwrap();
        common::seed_states(&mut conn);
        common::analyze(&mut conn);
    })
    .await
    .unwrap();

    let last = KEYS / 20;
    let pages = [
        ("keys page, sort balance desc, first page".to_owned(), "sort=balance&dir=desc".to_owned()),
        (format!("keys page, sort balance desc, last page ({last})"), format!("sort=balance&dir=desc&page={last}")),
        (
            format!("keys page, sort balance desc, middle page ({})", last / 2),
            format!("sort=balance&dir=desc&page={}", last / 2),
        ),
        ("keys page, sort last checked asc, first page".to_owned(), "sort=checked&dir=asc".to_owned()),
        ("keys page, filter status=active".to_owned(), "status=active&sort=balance&dir=desc".to_owned()),
        ("keys page, filter status=invalid, page 50".to_owned(), "status=invalid&page=50".to_owned()),
        ("keys page, filter status=check_failed".to_owned(), "status=check_failed".to_owned()),
        ("keys page, search part of a key".to_owned(), "q=0099999".to_owned()),
        ("keys page, 500 per page".to_owned(), "size=500&sort=balance&dir=desc".to_owned()),
    ];
    for (what, query) in pages {
        let url = format!("{base}/admin/keys?{query}");
        let (p50, p95) = common::time_get(&client, &url, true, ROUNDS).await;
        rows.push(Row { backend, what, p50, p95, note: format!("{ROUNDS} runs") });
    }

    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let bytes = client
            .get(format!("{base}/admin/keys/export?scope=all&with_balance=1"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        times.push(common::ms(started.elapsed()));
        size = bytes.len();
    }
    times.sort_by(f64::total_cmp);
    rows.push(Row {
        backend,
        what: format!("export all {KEYS} keys with balance"),
        p50: common::percentile(&times, 0.5),
        p95: common::percentile(&times, 0.95),
        note: format!("5 runs, {:.1} MB", size as f64 / 1e6),
    });
}

fn main() {
    let rows = actix_web::rt::System::new().block_on(async {
        let mut rows = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        run_backend("SQLite", DatabaseUrl::Sqlite(dir.path().join("bench.db")), &mut rows).await;
        if let Some((url, drop_it)) = common::postgres("keypool_bench_keys") {
            run_backend("PostgreSQL", url, &mut rows).await;
            drop_it();
        } else {
            eprintln!("KEYPOOL_TEST_POSTGRES_URL is not set: SQLite only");
        }
        rows
    });
    println!("\n| backend | what | p50 ms | p95 ms | runs |");
    println!("| --- | --- | ---: | ---: | --- |");
    for r in rows {
        println!("| {} | {} | {:.1} | {:.1} | {} |", r.backend, r.what, r.p50, r.p95, r.note);
    }
}
