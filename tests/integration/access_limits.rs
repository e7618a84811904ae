//! Access keys with limits at the gateway: each limit admits exactly what it should and refuses the
//! rest with the right status, message and `Retry-After`; quotas hold under parallel requests, across
//! two instances on one database and across a restart; `/v1/models` lists only the allowed models.

use std::time::Duration;

use futures_util::StreamExt;
use keypool::domain::access_limits::AccessLimits;
use keypool::domain::settings::next_day_boundary;

use crate::mock::{FREE_MODELS, PAID_MODEL};
use crate::support::{self, Gateway, TestApp};

const KEY: &str = "sk-ok-limits-aaaaaaaaaaaaaaaaaaaaaa";
/// The default `upstream_utc_offset` (UTC+8), in minutes.
const UTC8: i32 = 480;

/// Creates an access key named `name` with `limits`; returns its token.
async fn limited(app: &TestApp, name: &str, limits: AccessLimits) -> String {
    let minted = keypool::domain::access_token::mint();
    let (hash, hint, now, name) = (minted.hash.clone(), minted.hint.clone(), app.state.now_ms(), name.to_owned());
    support::with_db(app, move |c| {
        let id = keypool::db::access_keys::create(c, &name, &hash, &hint, now).unwrap();
        assert!(keypool::db::access_keys::set_limits(c, id, &limits).unwrap());
    })
    .await;
    app.state.access_keys.reload(&app.state.db, &app.state.pool.quotas).await.unwrap();
    minted.token
}

/// A chat request (JSON answer: 1 prompt + 3 completion tokens) with `token`: (status, Retry-After,
/// the error's code, its message).
async fn ask(app: &TestApp, token: &str, model: &str) -> (u16, Option<i64>, String, String) {
    let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    let res = app.client.post(app.url("/v1/chat/completions")).bearer_auth(token).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let json: serde_json::Value = res.json().await.unwrap_or_default();
    let code = json["error"]["code"].as_str().unwrap_or_default().to_owned();
    let message = json["error"]["message"].as_str().unwrap_or_default().to_owned();
    (status, retry, code, message)
}

/// Moves the clock to a minute's first second, so the minute does not end during the test.
fn start_of_a_minute(app: &TestApp) {
    let now = app.state.now_ms();
    app.clock.advance(Duration::from_millis((60_000 - now.rem_euclid(60_000)) as u64 + 1_000));
}

fn secs_until(app: &TestApp, at: i64) -> i64 {
    (at - app.state.now_ms() + 999) / 1000
}

#[actix_web::test]
async fn request_limits_admit_exactly_their_count_and_then_say_which_limit_and_when_it_resets() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let app = &gw.app;
    start_of_a_minute(app);

    let rpm = limited(app, "rpm", AccessLimits { rpm: Some(3), ..AccessLimits::default() }).await;
    for _ in 0..3 {
        assert_eq!(ask(app, &rpm, PAID_MODEL).await.0, 200);
    }
    let minute_end = (app.state.now_ms() / 60_000 + 1) * 60_000;
    let (status, retry, code, message) = ask(app, &rpm, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (429, "access_key_rpm_limit"), "{message}");
    assert_eq!(retry, Some(secs_until(app, minute_end)));
    assert!(message.contains("`rpm` reached its limit of 3 requests per minute"), "{message}");
    assert!(message.contains("resets at") && message.contains("(UTC+8)"), "{message}");
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(ask(app, &rpm, PAID_MODEL).await.0, 200, "a new minute admits again");

    let rpd = limited(app, "rpd", AccessLimits { rpd: Some(2), ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &rpd, PAID_MODEL).await.0, 200);
    assert_eq!(ask(app, &rpd, FREE_MODELS[0]).await.0, 200, "every model counts");
    let (status, retry, code, message) = ask(app, &rpd, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (429, "access_key_rpd_limit"), "{message}");
    let midnight = next_day_boundary(app.state.now_ms(), UTC8);
    assert_eq!(retry, Some(secs_until(app, midnight)), "until midnight at UTC+8");
    app.clock.advance(Duration::from_millis((midnight - app.state.now_ms()) as u64));
    assert_eq!(ask(app, &rpd, PAID_MODEL).await.0, 200, "the next day admits again");
    // Refused requests were not counted: exactly 2 + 1 reached the upstream with this key.
}

#[actix_web::test]
async fn token_and_spend_limits_admit_while_under_and_report_the_overshoot_of_the_last_request() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let app = &gw.app;
    start_of_a_minute(app);
    // 1 prompt + 3 completion tokens at 1 per token: 4 per request.
    let price = keypool::domain::tokens::Price { input_per_m: 1_000_000.0, output_per_m: 1_000_000.0 };
    let at = app.state.now_ms();
    support::with_db(app, move |c| keypool::db::prices::set(c, PAID_MODEL, price, at).unwrap()).await;
    app.state.reload_prices().await.unwrap();

    let tpm = limited(app, "tpm", AccessLimits { tpm: Some(6), ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &tpm, PAID_MODEL).await.0, 200, "0 of 6");
    assert_eq!(ask(app, &tpm, PAID_MODEL).await.0, 200, "4 of 6: admitted, ends at 8");
    let (status, retry, code, message) = ask(app, &tpm, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (429, "access_key_tpm_limit"), "{message}");
    assert!(message.contains("6 tokens per minute (used: over by 2)"), "{message}");
    assert!(retry.is_some_and(|s| (1..=60).contains(&s)));

    let tpd = limited(app, "tpd", AccessLimits { tpd: Some(8), ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &tpd, PAID_MODEL).await.0, 200);
    assert_eq!(ask(app, &tpd, PAID_MODEL).await.0, 200);
    let (status, retry, code, _) = ask(app, &tpd, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (429, "access_key_tpd_limit"));
    assert_eq!(retry, Some(secs_until(app, next_day_boundary(app.state.now_ms(), UTC8))));

    let day = limited(app, "spend-day", AccessLimits { spend_day: Some(6.0), ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &day, PAID_MODEL).await.0, 200);
    assert_eq!(ask(app, &day, PAID_MODEL).await.0, 200);
    let (status, _, code, message) = ask(app, &day, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (429, "access_key_spend_day_limit"), "{message}");
    assert!(message.contains("6 spent per day (used: over by 2)"), "{message}");
    assert_eq!(ask(app, &day, "unpriced/model").await.0, 429, "refused before the model's price matters");

    let month = limited(app, "spend-month", AccessLimits { spend_month: Some(4.0), ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &month, FREE_MODELS[0]).await.0, 200, "no price: costs nothing");
    assert_eq!(ask(app, &month, PAID_MODEL).await.0, 200);
    let (status, retry, code, _) = ask(app, &month, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (429, "access_key_spend_month_limit"));
    let (_, month_end) = keypool::domain::access_limits::Period::Month.window(app.state.now_ms(), UTC8);
    assert_eq!(retry, Some(secs_until(app, month_end)), "until the 1st at UTC+8");
}

#[actix_web::test]
async fn models_expiry_and_disabled_keys_are_refused_with_403_and_401() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let app = &gw.app;

    let qwen = limited(app, "qwen", AccessLimits { models: vec!["Qwen/*".into()], ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &qwen, FREE_MODELS[0]).await.0, 200);
    let (status, _, code, message) = ask(app, &qwen, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (403, "model_not_allowed"));
    assert!(message.contains(PAID_MODEL) && message.contains("`Qwen/*`"), "{message}");
    let res = app.client.post(app.url("/v1/audio/speech")).bearer_auth(&qwen).body("not json").send().await.unwrap();
    assert_eq!(res.status(), 403, "a request whose model cannot be read is refused for a restricted key");

    let free = limited(app, "free", AccessLimits { free_only: true, ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &free, FREE_MODELS[1]).await.0, 200);
    let (status, _, _, message) = ask(app, &free, PAID_MODEL).await;
    assert_eq!(status, 403);
    assert!(message.contains("the free models") && message.contains(FREE_MODELS[0]), "{message}");

    let now = app.state.now_ms();
    let soon = limited(app, "soon", AccessLimits { expires_at: Some(now + 60_000), ..AccessLimits::default() }).await;
    assert_eq!(ask(app, &soon, PAID_MODEL).await.0, 200);
    app.clock.advance(Duration::from_secs(60));
    let (status, _, code, message) = ask(app, &soon, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (401, "access_key_expired"), "{message}");
    let models = app.client.get(app.url("/v1/models")).bearer_auth(&soon).send().await.unwrap();
    assert_eq!(models.status(), 401, "expired everywhere under /v1");

    let off = limited(app, "off", AccessLimits { enabled: false, ..AccessLimits::default() }).await;
    let (status, _, code, _) = ask(app, &off, PAID_MODEL).await;
    assert_eq!((status, code.as_str()), (401, "access_key_disabled"));
    let billing = app.client.get(app.url("/v1/dashboard/billing/subscription")).bearer_auth(&off).send().await.unwrap();
    assert_eq!(billing.status(), 401);
    assert_eq!(gw.chats(KEY), 3, "no refused request reached the upstream");
}

#[actix_web::test]
async fn the_model_list_shows_only_the_models_the_key_may_use() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let app = &gw.app;
    let ids = |token: String| async move {
        let res = app.client.get(app.url("/v1/models")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let json: serde_json::Value = res.json().await.unwrap();
        json["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let qwen = limited(app, "qwen", AccessLimits { models: vec!["Qwen/*".into()], ..AccessLimits::default() }).await;
    let free = limited(app, "free", AccessLimits { free_only: true, ..AccessLimits::default() }).await;
    // First asked (a miss, forwarded), then from the cache: narrowed both times.
    assert_eq!(ids(qwen.clone()).await, vec![FREE_MODELS[0]]);
    assert_eq!(ids(qwen).await, vec![FREE_MODELS[0]]);
    assert_eq!(ids(free).await, FREE_MODELS.to_vec());
    assert_eq!(ids(gw.token.clone()).await, vec![FREE_MODELS[0], PAID_MODEL, FREE_MODELS[1]], "unrestricted");
}

#[actix_web::test]
async fn fifty_parallel_requests_against_ten_a_minute_admit_exactly_ten() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let app = &gw.app;
    start_of_a_minute(app);
    let token = limited(app, "ten", AccessLimits { rpm: Some(10), ..AccessLimits::default() }).await;
    let statuses: Vec<u16> = futures_util::stream::iter(0..50)
        .map(|_| {
            let token = token.clone();
            async move { ask(app, &token, PAID_MODEL).await.0 }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40);
    assert_eq!(gw.chats(KEY), 10);
}

/// Requests `n` times with `token` on `app`, `parallel` at a time; returns how many were admitted.
async fn admitted(app: &TestApp, token: &str, n: usize, parallel: usize) -> usize {
    let statuses: Vec<u16> = futures_util::stream::iter(0..n)
        .map(|_| async move { ask(app, token, FREE_MODELS[0]).await.0 })
        .buffer_unordered(parallel)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    statuses.iter().filter(|s| **s == 200).count()
}

async fn tick(app: &TestApp) {
    keypool::pool::writer::sync_quotas(&app.state.pool, &app.state.db, app.state.now_ms()).await.unwrap();
}

#[actix_web::test]
async fn two_instances_on_one_database_hold_a_daily_quota_to_within_one_tick() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let a = &gw.app;
    let token = limited(a, "shared", AccessLimits { rpd: Some(100), ..AccessLimits::default() }).await;
    let url = gw.upstream.url.clone();
    let b = support::spawn_sharing(a, move |c| c.upstream_override = Some(url)).await;
    support::reload_pool(&b).await;
    b.state.access_keys.reload(&b.state.db, &b.state.pool.quotas).await.unwrap();

    // Rounds of 10 parallel requests on each instance at once, each round ending with both writers'
    // ticks (their own timers tick too, which only narrows the gap): an instance cannot see what the
    // other admitted since its last tick, so the total may pass 100 by at most one round of one
    // instance (10).
    const ROUND: usize = 10;
    let mut total = 0;
    for _ in 0..15 {
        let (x, y) = futures_util::join!(admitted(a, &token, ROUND, ROUND), admitted(&b, &token, ROUND, ROUND));
        total += x + y;
        futures_util::join!(tick(a), tick(&b));
    }
    eprintln!("two instances, daily quota 100, rounds of {ROUND} per instance per tick: {total} admitted");
    assert!((100..=100 + ROUND).contains(&total), "{total} admitted");
    // Converged: both instances now refuse.
    assert_eq!(admitted(a, &token, 5, 5).await + admitted(&b, &token, 5, 5).await, 0);
    assert_eq!(gw.chats(KEY), total);
}

#[actix_web::test]
async fn quota_counts_survive_a_restart() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 50.0)]).await;
    let token = limited(&gw.app, "daily", AccessLimits { rpd: Some(5), ..AccessLimits::default() }).await;
    assert_eq!(admitted(&gw.app, &token, 3, 1).await, 3);
    tick(&gw.app).await;
    // A new instance on the same database reads the counts as it starts, before serving anything.
    let url = gw.upstream.url.clone();
    let restarted = support::spawn_sharing(&gw.app, move |c| c.upstream_override = Some(url)).await;
    support::reload_pool(&restarted).await;
    assert_eq!(admitted(&restarted, &token, 5, 1).await, 2, "3 of 5 were used before the restart");
}

#[actix_web::test]
async fn counts_of_a_key_revoked_meanwhile_are_dropped_and_the_rest_written() {
    use keypool::domain::access_limits::{Counts, Period, QuotaDelta};
    let app = support::spawn().await;
    let token = limited(&app, "kept", AccessLimits { rpd: Some(5), ..AccessLimits::default() }).await;
    let kept = app.state.access_keys.authenticate(&token).unwrap().id;
    let now = app.state.now_ms();
    let start = Period::Day.window(now, UTC8).0;
    let delta = move |id| QuotaDelta {
        access_key_id: id,
        period: Period::Day,
        window_start: start,
        counts: Counts { requests: 2, tokens: 7, cost: 0.5 },
    };
    let totals = support::with_db(&app, move |c| {
        keypool::db::access_keys::publish_quota(
            c,
            &[delta(kept), delta(kept + 1_000)],
            &[kept],
            [(Period::Minute, 0), (Period::Day, start), (Period::Month, 0)],
        )
    })
    .await
    .expect("a revoked key's counts do not fail the batch");
    assert_eq!(totals.get(&(kept, Period::Day.code(), start)), Some(&Counts { requests: 2, tokens: 7, cost: 0.5 }));
}
