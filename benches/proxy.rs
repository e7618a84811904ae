//! Gateway overhead, side by side in one run: a fast local mock of `/v1/chat/completions` (instant JSON,
//! and an SSE stream) called directly and through keypool (the real release binary, on SQLite, with
//! 100,000 active keys loaded), by an open-loop load generator in this process.
//!
//! `cargo bench --bench proxy` reports requests/s at saturation (64 connections), p50/p99 latency at a
//! fixed 1,000 requests/s (an open loop: each request is its own task, sent at its scheduled time),
//! stream time to first byte, and keypool's resident memory. Goals on this 2-core machine (mock,
//! keypool and the generator share both cores): p99 added ≤ 1 ms at 1,000 req/s; saturated throughput
//! through keypool ≥ 50 % of direct; resident memory ≤ 100 MB. The access key used has every limit
//! set (models, expiry, requests, tokens and spend per minute, day and month), high enough never to
//! refuse: each request is checked against all of them and counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use futures_util::StreamExt;

const KEYS: usize = 100_000;
/// Requests sent through keypool (each must end as one request-log row).
static PROXIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
const SATURATION: Duration = Duration::from_secs(5);
const CONNECTIONS: usize = 64;
const RATE: u64 = 1_000;
const RATE_SECONDS: u64 = 10;
const STREAMS: usize = 300;
const BODY: &str = r#"{"model":"Qwen/Qwen2.5-7B-Instruct","messages":[{"role":"user","content":"hi"}]}"#;
const STREAM_BODY: &str =
    r#"{"model":"Qwen/Qwen2.5-7B-Instruct","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

async fn chat(body: web::Bytes) -> HttpResponse {
    if body.windows(13).any(|w| w == br#""stream":true"#) {
        let frame = |t: &str| {
            web::Bytes::from(format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\
                 \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}},\"finish_reason\":null}}]}}\n\n"
            ))
        };
        let frames = ["Hel", "lo", " wor", "ld", "!"].map(frame);
        let done = web::Bytes::from_static(b"data: [DONE]\n\n");
        let stream = futures_util::stream::iter(frames.into_iter().chain([done]).map(Ok::<_, actix_web::Error>));
        return HttpResponse::Ok().content_type("text/event-stream").streaming(stream);
    }
    HttpResponse::Ok().content_type("application/json").body(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"Qwen/Qwen2.5-7B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
    )
}

/// A SQLite file with `KEYS` active keys (balances 1–200) and one access key with every limit set;
/// returns the token.
fn seed(path: &std::path::Path) -> String {
    let url = keypool::config::DatabaseUrl::Sqlite(path.to_owned());
    let pool = keypool::db::open(&url, 2).unwrap();
    let mut conn = pool.get().unwrap();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("sk-bench{i:0>43}")).collect();
    keypool::db::keys::insert_new(&mut conn, &keypool::domain::key_crypto::KeyCodec::Plain, &keys, None, 0).unwrap();
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "UPDATE keys SET status = 'active', total_balance = 1 + (id * 7919 % 20000) / 100.0, \
         checked_at = 1, status_changed_at = 1",
    )
    .execute(&mut conn)
    .unwrap();
    let minted = keypool::domain::access_token::mint();
    let id = keypool::db::access_keys::create(&mut conn, "bench", &minted.hash, &minted.hint, 0).unwrap();
    // Every limit set (high enough never to refuse): each request is checked against all of them,
    // counted, and published by the writer every tick.
    let limits = keypool::domain::access_limits::AccessLimits {
        expires_at: Some(i64::MAX / 2),
        models: vec!["Qwen/*".to_owned(), "deepseek-ai/*".to_owned()],
        rpm: Some(1_000_000_000),
        tpm: Some(1_000_000_000_000),
        rpd: Some(1_000_000_000),
        tpd: Some(1_000_000_000_000),
        spend_day: Some(1e9),
        spend_month: Some(1e9),
        ..Default::default()
    };
    keypool::db::access_keys::set_limits(&mut conn, id, &limits).unwrap();
    minted.token
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_keypool(db: &std::path::Path, upstream: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keypool"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("KEYPOOL_UPSTREAM_URL", upstream)
        .env("KEYPOOL_ADMIN_PASSWORD", "bench-password")
        .env("RUST_LOG", "warn")
        .envs(std::env::var("KEYPOOL_WORKERS").ok().map(|v| ("KEYPOOL_WORKERS", v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the keypool binary starts")
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn client() -> awc::Client {
    let connector = awc::Connector::new().limit(4096).timeout(Duration::from_secs(5));
    awc::Client::builder().connector(connector).timeout(Duration::from_secs(30)).finish()
}

#[derive(Clone)]
struct Target {
    url: String,
    token: Option<String>,
}

impl Target {
    async fn post(
        &self,
        client: &awc::Client,
        body: &'static str,
    ) -> Option<awc::ClientResponse<impl futures_util::Stream<Item = Result<web::Bytes, awc::error::PayloadError>>>>
    {
        let mut req = client.post(&self.url).insert_header(("content-type", "application/json"));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
            PROXIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let res = req.send_body(body).await.ok()?;
        res.status().is_success().then_some(res)
    }

    /// One whole request; false when it failed.
    async fn call(&self, client: &awc::Client) -> bool {
        match self.post(client, BODY).await {
            Some(mut res) => res.body().await.is_ok(),
            None => false,
        }
    }
}

/// Requests per second with `CONNECTIONS` callers, each sending its next request when the last ended.
async fn saturate(client: &awc::Client, target: &Target) -> (f64, usize) {
    saturate_for(client, target, SATURATION).await
}

async fn saturate_for(client: &awc::Client, target: &Target, length: Duration) -> (f64, usize) {
    let deadline = Instant::now() + length;
    let done = Rc::new(RefCell::new((0usize, 0usize)));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..CONNECTIONS {
        let (client, target, done) = (client.clone(), target.clone(), done.clone());
        tasks.push(actix_web::rt::spawn(async move {
            while Instant::now() < deadline {
                let ok = target.call(&client).await;
                let mut d = done.borrow_mut();
                if ok { d.0 += 1 } else { d.1 += 1 }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, failed) = *done.borrow();
    (ok as f64 / started.elapsed().as_secs_f64(), failed)
}

/// Latencies (ms) at a fixed rate, each from its scheduled send time.
async fn fixed_rate(client: &awc::Client, target: &Target) -> (f64, f64, usize) {
    let total = (RATE * RATE_SECONDS) as usize;
    let gap = Duration::from_secs_f64(1.0 / RATE as f64);
    let latencies = Rc::new(RefCell::new(Vec::with_capacity(total)));
    let failed = Rc::new(RefCell::new(0usize));
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + gap * i as u32;
        let (client, target, latencies, failed) = (client.clone(), target.clone(), latencies.clone(), failed.clone());
        tasks.push(actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep_until(due.into()).await;
            // Timed from the send: the timer wakes tasks on a 1 ms grid, which would add up to 1 ms of
            // the generator's own lateness to both sides. Requests are independent tasks (an open
            // loop), so a stall in keypool still shows: later requests are sent on time and wait.
            let sent = Instant::now();
            if target.call(&client).await {
                latencies.borrow_mut().push(common::ms(sent.elapsed()));
            } else {
                *failed.borrow_mut() += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut l = latencies.borrow().clone();
    l.sort_by(f64::total_cmp);
    let failed = *failed.borrow();
    (common::percentile(&l, 0.5), common::percentile(&l, 0.99), failed)
}

/// Time to the first byte of a streamed completion (ms): p50, p99.
async fn stream_ttfb(client: &awc::Client, target: &Target) -> (f64, f64) {
    let mut times = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let started = Instant::now();
        let mut res = target.post(client, STREAM_BODY).await.expect("stream starts");
        let first = res.next().await.expect("a first chunk").unwrap();
        assert!(first.starts_with(b"data: "));
        times.push(common::ms(started.elapsed()));
        let mut rest = Vec::new();
        while let Some(chunk) = res.next().await {
            rest.extend_from_slice(&chunk.unwrap());
        }
        assert!(rest.ends_with(b"data: [DONE]\n\n"), "the stream arrived whole");
    }
    times.sort_by(f64::total_cmp);
    (common::percentile(&times, 0.5), common::percentile(&times, 0.99))
}

/// Nanoseconds per pick with `n` routable keys, by strategy (in process, no HTTP), for a model a
/// tenth of the keys are blocked for (their per-model limit), as the picks of a busy pool see it.
fn pick_cost(n: usize) -> Vec<(&'static str, f64)> {
    use keypool::domain::key_state::{Evidence, KeyStatus};
    use keypool::domain::proxy::SelectionStrategy;
    let rows: Vec<keypool::db::usage::PoolRow> = (0..n)
        .map(|i| keypool::db::usage::PoolRow {
            id: i as i64 + 1,
            key: format!("sk-pick{i:0>44}"),
            status: KeyStatus::Active,
            total_balance: Some(1.0 + (i * 7919 % 20000) as f64 / 100.0),
            charge_balance: None,
            cooling_until: None,
            status_changed_at: Some(1),
            checked_at: Some(1),
        })
        .collect();
    let mut settings = keypool::domain::settings::Settings::default();
    let pool = keypool::pool::KeyPool::new(settings.clone(), String::new());
    pool.reload(rows, &Default::default(), 1, 10);
    let limit = Evidence::RateLimited { model: Some("m".into()), daily: true, until: i64::MAX };
    for slot in pool.snapshot().paid.slots.iter().step_by(10) {
        pool.apply(slot, &limit, "HTTP 429: RPD limit reached", 10, false);
    }
    pool.rebuild(10);
    let want = keypool::pool::Want { model: "m", free: false };
    SelectionStrategy::ALL
        .into_iter()
        .map(|strategy| {
            settings.proxy.selection_strategy = strategy;
            pool.set_settings(settings.clone(), String::new());
            let rounds = 1_000_000;
            let started = Instant::now();
            for _ in 0..rounds {
                std::hint::black_box(pool.pick(want, &[], 10));
            }
            (strategy.as_str(), started.elapsed().as_nanos() as f64 / rounds as f64)
        })
        .collect()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (small, large) = (pick_cost(1_000), pick_cost(KEYS));
    let mock = common::start_mock(|c| {
        c.route("/v1/chat/completions", web::post().to(chat));
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.db");
    let seeding = Instant::now();
    let token = seed(&db);
    println!("seeded {KEYS} active keys in {:.1} s", seeding.elapsed().as_secs_f64());
    let port = free_port();
    let child = start_keypool(&db, &mock, port);
    let base = format!("http://127.0.0.1:{port}");
    let direct = Target { url: format!("{mock}/v1/chat/completions"), token: None };
    let proxied = Target { url: format!("{base}/v1/chat/completions"), token: Some(token) };

    let report = actix_web::rt::System::new().block_on(async move {
        let client = client();
        let ready = Instant::now();
        while client.get(format!("{base}/healthz")).send().await.map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(ready.elapsed() < Duration::from_secs(60), "keypool did not start");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        // The pool is loaded before the server listens; one request proves a key is routed.
        assert!(proxied.call(&client).await, "a request through keypool succeeds");
        let idle_rss = rss_mb(child.id());
        for target in [&direct, &proxied] {
            for _ in 0..500 {
                target.call(&client).await;
            }
        }
        let sat_direct = saturate(&client, &direct).await;
        // `PERF_OUT=FILE` records a profile of keypool during its saturated run (needs `perf`).
        let perf = std::env::var("PERF_OUT").ok().map(|out| {
            Command::new("perf")
                .args(["record", "-F", "1999", "-g", "-p", &child.id().to_string(), "-o", &out, "--", "sleep", "4"])
                .spawn()
                .unwrap()
        });
        let sat_proxy = saturate(&client, &proxied).await;
        if let Some(mut p) = perf {
            p.wait().unwrap();
        }
        let rate_direct = fixed_rate(&client, &direct).await;
        let rate_proxy = fixed_rate(&client, &proxied).await;
        let ttfb_direct = stream_ttfb(&client, &direct).await;
        let ttfb_proxy = stream_ttfb(&client, &proxied).await;
        let loaded_rss = rss_mb(child.id());
        // `PROXY_SUSTAIN_S=600`: then saturate keypool for that long, sampling its memory every 5 s.
        let sustained = match std::env::var("PROXY_SUSTAIN_S").ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(secs) => {
                let pid = child.id();
                let peak = Rc::new(RefCell::new(0f64));
                let sampler = {
                    let peak = peak.clone();
                    let end = Instant::now() + Duration::from_secs(secs);
                    actix_web::rt::spawn(async move {
                        while Instant::now() < end {
                            actix_web::rt::time::sleep(Duration::from_secs(5)).await;
                            let now = rss_mb(pid);
                            let mut p = peak.borrow_mut();
                            *p = p.max(now);
                        }
                    })
                };
                let (rate, failed) = saturate_for(&client, &proxied, Duration::from_secs(secs)).await;
                sampler.await.unwrap();
                let peak = *peak.borrow();
                Some((secs, rate, failed, peak, rss_mb(pid)))
            }
            None => None,
        };
        (
            child,
            idle_rss,
            loaded_rss,
            sat_direct,
            sat_proxy,
            rate_direct,
            rate_proxy,
            ttfb_direct,
            ttfb_proxy,
            sustained,
        )
    });
    let (mut child, idle_rss, loaded_rss, sat_d, sat_p, rate_d, rate_p, ttfb_d, ttfb_p, sustained) = report;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    // SIGTERM writes what is buffered: every request sent must be in the log, unless the writer dropped
    // rows (counted by keypool_request_log_dropped_total).
    let logged: i64 = {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let pool = keypool::db::open(&keypool::config::DatabaseUrl::Sqlite(db.clone()), 1).unwrap();
        let mut conn = pool.get().unwrap();
        diesel::sql_query("SELECT COUNT(*) AS n FROM request_log").get_result::<N>(&mut conn).unwrap().n
    };
    let proxied = PROXIED.load(std::sync::atomic::Ordering::Relaxed);

    println!();
    println!("proxy benchmark: {KEYS} keys, SQLite, 2 cores shared by mock, keypool and load generator");
    println!("| measure | direct to mock | through keypool | keypool adds / ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| saturated req/s ({CONNECTIONS} connections, {} s) | {:.0} | {:.0} | {:.0} % of direct |",
        SATURATION.as_secs(),
        sat_d.0,
        sat_p.0,
        100.0 * sat_p.0 / sat_d.0
    );
    println!("| p50 at {RATE} req/s (ms) | {:.3} | {:.3} | +{:.3} ms |", rate_d.0, rate_p.0, rate_p.0 - rate_d.0);
    println!("| p99 at {RATE} req/s (ms) | {:.3} | {:.3} | +{:.3} ms |", rate_d.1, rate_p.1, rate_p.1 - rate_d.1);
    println!("| stream first byte p50 (ms) | {:.3} | {:.3} | +{:.3} ms |", ttfb_d.0, ttfb_p.0, ttfb_p.0 - ttfb_d.0);
    println!("| stream first byte p99 (ms) | {:.3} | {:.3} | +{:.3} ms |", ttfb_d.1, ttfb_p.1, ttfb_p.1 - ttfb_d.1);
    println!("| keypool resident memory, idle / after load (MB) | | {idle_rss:.1} / {loaded_rss:.1} | |");
    if let Some((secs, rate, failed, peak, end)) = sustained {
        println!(
            "| sustained saturation, {secs} s: req/s, failed; memory peak / at the end (MB) | | {rate:.0}, {failed}; {peak:.1} / {end:.1} | |"
        );
    }
    println!();
    println!("| pick (ns, in process; a model 10 % of the keys are blocked for) | 1,000 keys | {KEYS} keys |");
    println!("| --- | ---: | ---: |");
    for ((name, a), (_, b)) in small.iter().zip(&large) {
        println!("| {name} | {a:.0} | {b:.0} |");
    }
    println!("failed requests: saturation {} / {}, fixed rate {} / {}", sat_d.1, sat_p.1, rate_d.2, rate_p.2);
    println!(
        "request log: {logged} rows for {proxied} requests sent through keypool ({} dropped)",
        proxied as i64 - logged
    );
    println!(
        "goals: p99 added ≤ 1 ms: {}; saturated ≥ 50 % of direct: {}; memory ≤ 100 MB: {}",
        verdict(rate_p.1 - rate_d.1 <= 1.0),
        verdict(sat_p.0 >= 0.5 * sat_d.0),
        verdict(loaded_rss.max(sustained.map_or(0.0, |s| s.3)) <= 100.0)
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
