//! Tokens and cost per request: read from JSON answers and from streams as they pass (the caller's
//! stream unchanged), priced by the price table, written to the request log.

use diesel::RunQueryDsl;

use crate::mock::{FREE_MODELS, PAID_MODEL};
use crate::support::{self, Gateway};

const KEY: &str = "sk-ok-usage-aaaaaaaaaaaaaaaaaaaaaa";

#[derive(Debug, PartialEq, diesel::QueryableByName)]
struct Logged {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    model: Option<String>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    status: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    prompt_tokens: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    completion_tokens: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    total_tokens: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
    cost: Option<f64>,
}

/// Every request-log row's model, status, tokens and cost, oldest first.
async fn logged(app: &support::TestApp) -> Vec<Logged> {
    support::with_db(app, |c| {
        diesel::sql_query(
            "SELECT model, status, prompt_tokens, completion_tokens, total_tokens, cost FROM request_log ORDER BY id",
        )
        .load(c)
        .unwrap()
    })
    .await
}

fn chat(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

#[actix_web::test]
async fn tokens_and_cost_of_json_answers_and_streams_go_into_the_request_log() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 5.0)]).await;
    let unpriced = "acme/unpriced-model";

    // A JSON answer of the paid model (usage 1 + 3 at the seeded list price 2 / 8 per million).
    let res = gw.chat(chat(PAID_MODEL, false)).await;
    assert_eq!(res.status(), 200);
    // A stream of a free model: the caller gets exactly the upstream's bytes.
    let through = gw.chat(chat(FREE_MODELS[0], true)).await.bytes().await.unwrap();
    let direct = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.upstream.url))
        .bearer_auth(KEY)
        .json(&chat(FREE_MODELS[0], true))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(through, direct, "the stream passes byte for byte");
    assert!(String::from_utf8_lossy(&through).contains("\"usage\""));
    // A model without a price, and an error answer without usage.
    assert_eq!(gw.chat(chat(unpriced, true)).await.status(), 200);
    assert_eq!(gw.chat(chat("no-such-model", false)).await.status(), 404);
    support::flush_outcomes(&gw.app).await;

    let rows: Vec<Logged> = logged(&gw.app).await;
    let row = |model: &str, status, tokens: Option<(i64, i64, i64)>, cost| Logged {
        model: Some(model.to_owned()),
        status,
        prompt_tokens: tokens.map(|t| t.0),
        completion_tokens: tokens.map(|t| t.1),
        total_tokens: tokens.map(|t| t.2),
        cost,
    };
    assert_eq!(
        rows,
        vec![
            row(PAID_MODEL, 200, Some((1, 3, 4)), Some((1.0 * 2.0 + 3.0 * 8.0) / 1e6)),
            // The last chunk's running usage is the stream's.
            row(FREE_MODELS[0], 200, Some((5, 2, 7)), Some(0.0)),
            row(unpriced, 200, Some((5, 2, 7)), None),
            row("no-such-model", 404, None, None),
        ]
    );
}

#[actix_web::test]
async fn a_changed_price_prices_the_next_request() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 5.0)]).await;
    let now = gw.app.state.now_ms();
    let price = keypool::domain::tokens::Price { input_per_m: 1_000_000.0 - 1.0, output_per_m: 0.5 };
    support::with_db(&gw.app, move |c| keypool::db::prices::set(c, PAID_MODEL, price, now).unwrap()).await;
    gw.app.state.reload_prices().await.unwrap();
    assert_eq!(gw.chat(chat(PAID_MODEL, false)).await.status(), 200);
    support::flush_outcomes(&gw.app).await;
    let cost: Vec<Logged> = logged(&gw.app).await;
    let expected = (1.0 * 999_999.0 + 3.0 * 0.5) / 1e6;
    assert!((cost[0].cost.unwrap() - expected).abs() < 1e-12, "{:?}", cost[0]);
}

#[actix_web::test]
async fn the_price_page_sets_and_removes_prices_and_refuses_bad_ones_with_a_reason() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 5.0)]).await;
    let app = &gw.app;
    // Admins only.
    let res = app.get("/admin/settings/prices").await;
    assert_eq!(res.status(), 303, "signed out: to the login page");
    app.login().await;
    let page = app.get("/admin/settings/prices").await.text().await.unwrap();
    assert!(page.contains(r#"data-model="deepseek-ai/DeepSeek-V3""#), "seeded list prices are shown");
    assert!(app.get("/admin/settings").await.text().await.unwrap().contains("/admin/settings/prices"));

    // Bad input: nothing saved, the reason next to each field, what was typed kept.
    let res = app
        .post_form("/admin/settings/prices", &[("model", "has space"), ("input_per_m", "-1"), ("output_per_m", "x")])
        .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"id="error-model""#) && body.contains(r#"id="error-input_per_m""#), "{body}");
    assert!(body.contains(r#"id="error-output_per_m""#) && body.contains(r#"value="has space""#));

    // A new model's price reaches the proxy at once.
    let res = app
        .post_form(
            "/admin/settings/prices",
            &[("model", "acme/new-model"), ("input_per_m", "1"), ("output_per_m", "2")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let shown = app.get(&support::location(&res)).await.text().await.unwrap();
    assert!(shown.contains("Price of acme/new-model saved") && shown.contains(r#"data-model="acme/new-model""#));
    assert_eq!(gw.chat(chat("acme/new-model", false)).await.status(), 200);

    // Removed: the next request has tokens but no cost.
    let res = app.post_form("/admin/settings/prices/remove", &[("model", "acme/new-model")]).await;
    assert_eq!(res.status(), 303);
    assert!(!app.get("/admin/settings/prices").await.text().await.unwrap().contains(r#"data-model="acme/new-model""#));
    assert_eq!(gw.chat(chat("acme/new-model", false)).await.status(), 200);
    support::flush_outcomes(app).await;
    let costs: Vec<Logged> = logged(app).await;
    assert_eq!(costs.iter().map(|r| r.cost).collect::<Vec<_>>(), vec![Some((1.0 + 3.0 * 2.0) / 1e6), None]);
    assert!(costs.iter().all(|r| r.total_tokens == Some(4)));
}

#[derive(Debug, PartialEq, diesel::QueryableByName)]
struct Sums {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    bucket_at: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    access_key_id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    model: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    outcome: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    requests: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    prompt_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    completion_tokens: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    latency_sum_ms: i64,
    /// Cost in millionths, so sums compare exactly.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    micro_cost: i64,
}

/// The log summed per `period` bucket the way the roll-ups sum it.
async fn log_sums(app: &support::TestApp, period: i64) -> Vec<Sums> {
    support::with_db(app, move |c| {
        diesel::sql_query(
            "SELECT at - (at % $1) AS bucket_at, COALESCE(access_key_id, 0) AS access_key_id, \
             COALESCE(model, '') AS model, outcome, COUNT(*) AS requests, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(SUM(latency_ms) AS BIGINT) AS latency_sum_ms, \
             CAST(ROUND(COALESCE(SUM(cost), 0) * 1000000) AS BIGINT) AS micro_cost \
             FROM request_log GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4",
        )
        .bind::<diesel::sql_types::BigInt, _>(period)
        .load(c)
        .unwrap()
    })
    .await
}

async fn rollup_sums(app: &support::TestApp, period: i64) -> Vec<Sums> {
    support::with_db(app, move |c| {
        diesel::sql_query(
            "SELECT bucket_at, access_key_id, model, outcome, requests, prompt_tokens, completion_tokens, \
             latency_sum_ms, CAST(ROUND(cost * 1000000) AS BIGINT) AS micro_cost \
             FROM usage_rollups WHERE period = $1 ORDER BY 1, 2, 3, 4",
        )
        .bind::<diesel::sql_types::BigInt, _>(period)
        .load(c)
        .unwrap()
    })
    .await
}

#[actix_web::test]
async fn rollups_equal_the_sums_of_the_log_they_came_from_and_are_kept_as_long_as_their_settings_say() {
    use keypool::domain::usage::{HOUR, MINUTE};
    let gw = Gateway::start(&[("request_log_retention_days", "2"), ("rollup_retention_days", "30")]).await;
    support::seed_active(&gw.app, &[(KEY, 5.0)]).await;
    let second = support::access_key(&gw.app).await;
    let other = |model: &str| {
        gw.app.client.post(gw.app.url("/v1/chat/completions")).bearer_auth(&second).json(&chat(model, true)).send()
    };
    // Three minutes of mixed traffic from two access keys, crossing an hour.
    gw.app.clock.advance(std::time::Duration::from_millis((HOUR - 90_000) as u64));
    for _ in 0..3 {
        assert_eq!(gw.chat(chat(PAID_MODEL, false)).await.status(), 200);
        assert_eq!(gw.chat(chat(FREE_MODELS[0], true)).await.status(), 200);
        assert_eq!(gw.chat(chat("no-such-model", false)).await.status(), 404);
        assert_eq!(other(PAID_MODEL).await.unwrap().status(), 200);
        assert_eq!(other("acme/unpriced").await.unwrap().status(), 200);
        support::flush_outcomes(&gw.app).await;
        gw.app.clock.advance(std::time::Duration::from_secs(61));
    }
    let minutes = rollup_sums(&gw.app, MINUTE).await;
    assert_eq!(minutes, log_sums(&gw.app, MINUTE).await);
    assert_eq!(rollup_sums(&gw.app, HOUR).await, log_sums(&gw.app, HOUR).await);
    assert_eq!(
        rollup_sums(&gw.app, keypool::domain::usage::DAY).await,
        log_sums(&gw.app, keypool::domain::usage::DAY).await
    );
    // The overall rows: the same sums without access key and model.
    for period in [MINUTE, HOUR, keypool::domain::usage::DAY] {
        let overall: Vec<(i64, String, i64, i64)> = support::with_db(&gw.app, move |c| {
            #[derive(diesel::QueryableByName)]
            struct R {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                bucket_at: i64,
                #[diesel(sql_type = diesel::sql_types::Text)]
                outcome: String,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                requests: i64,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                completion_tokens: i64,
            }
            let rows: Vec<R> = diesel::sql_query(
                "SELECT bucket_at, outcome, requests, completion_tokens FROM traffic_rollups WHERE period = $1 \
                 ORDER BY 1, 2",
            )
            .bind::<diesel::sql_types::BigInt, _>(period)
            .load(c)
            .unwrap();
            rows.into_iter().map(|r| (r.bucket_at, r.outcome, r.requests, r.completion_tokens)).collect()
        })
        .await;
        let mut expected: std::collections::BTreeMap<(i64, String), (i64, i64)> = Default::default();
        for s in log_sums(&gw.app, period).await {
            let e = expected.entry((s.bucket_at, s.outcome)).or_default();
            e.0 += s.requests;
            e.1 += s.completion_tokens;
        }
        let expected: Vec<_> = expected.into_iter().map(|((b, o), (n, c))| (b, o, n, c)).collect();
        assert_eq!(overall, expected, "period {period}");
    }
    assert_eq!(minutes.iter().map(|s| s.requests).sum::<i64>(), 15);
    assert!(minutes.iter().any(|s| s.outcome == "caller_error" && s.model == "no-such-model"));
    assert_eq!(minutes.iter().map(|s| s.bucket_at).collect::<std::collections::BTreeSet<_>>().len(), 3);

    // Retention: per-minute totals go with the log (2 days), hourly ones after 30 days.
    let (state, start) = (&gw.app.state, gw.app.state.now_ms());
    let prune = keypool::pool::writer::prune;
    // Whether this look prunes depends on when the lease's clock started; the next ones, days later, do.
    prune(&state.pool, &state.db, "a", start).await.unwrap();
    assert_eq!(rollup_sums(&gw.app, MINUTE).await.len(), minutes.len(), "nothing was old enough yet");
    gw.app.clock.advance(std::time::Duration::from_secs(3 * 86_400));
    prune(&state.pool, &state.db, "a", state.now_ms()).await.unwrap().expect("pruned");
    assert!(rollup_sums(&gw.app, MINUTE).await.is_empty());
    assert_eq!(rollup_sums(&gw.app, HOUR).await.iter().map(|s| s.requests).sum::<i64>(), 15);
    gw.app.clock.advance(std::time::Duration::from_secs(28 * 86_400));
    prune(&state.pool, &state.db, "a", state.now_ms()).await.unwrap().expect("pruned");
    assert!(rollup_sums(&gw.app, HOUR).await.is_empty());
}

/// The chart JSON of a dashboard panel fragment.
async fn panel(app: &support::TestApp, name: &str, query: &str) -> (String, serde_json::Value) {
    let html = app.get(&format!("/admin/charts/{name}?{query}")).await.text().await.unwrap();
    let start = html.find("data-chart=\"").expect("a chart") + "data-chart=\"".len();
    let end = start + html[start..].find('"').unwrap();
    let json = html[start..end].replace("&quot;", "\"").replace("&amp;", "&");
    (html.clone(), serde_json::from_str(&json).unwrap())
}

#[actix_web::test]
async fn the_dashboard_draws_traffic_latency_tokens_and_cost_per_access_key_from_the_rollups() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 5.0)]).await;
    gw.app.login().await;
    for _ in 0..4 {
        assert_eq!(gw.chat(chat(PAID_MODEL, false)).await.status(), 200);
    }
    assert_eq!(gw.chat(chat(FREE_MODELS[0], true)).await.status(), 200);
    assert_eq!(gw.chat(chat("no-such-model", false)).await.status(), 404);
    support::flush_outcomes(&gw.app).await;

    let (_, traffic) = panel(&gw.app, "traffic", "window=24h").await;
    let requests: f64 = traffic["series"][0]["data"].as_array().unwrap().iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert_eq!(requests, 6.0);
    let (html, tokens) = panel(&gw.app, "tokens", "window=7d").await;
    assert!(html.contains(r#"<strong aria-current="true">7 days</strong>"#), "the chosen window is shown as chosen");
    let models = tokens["yAxis"]["data"].as_array().unwrap().clone();
    assert_eq!(models.last().unwrap(), "DeepSeek-V3", "most tokens on top, without the organisation: {models:?}");
    // 4 × (1 in + 3 out) for the paid model.
    assert_eq!(tokens["series"][0]["data"].as_array().unwrap().last().unwrap().as_f64(), Some(4.0));
    assert_eq!(tokens["series"][1]["data"].as_array().unwrap().last().unwrap().as_f64(), Some(12.0));
    let (_, spend) = panel(&gw.app, "spend", "window=30d").await;
    let cost = spend["series"][0]["data"][0].as_f64().unwrap();
    assert!((cost - 4.0 * 26.0 / 1e6).abs() < 1e-4, "{cost}");
    let (_, latency) = panel(&gw.app, "latency", "").await;
    assert_eq!(latency["series"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn the_balance_forecast_reads_the_last_week_on_the_dashboard_and_the_guest_page() {
    let gw = Gateway::start(&[("access_mode", "open")]).await;
    support::seed_active(&gw.app, &[(KEY, 100.0)]).await;
    let app = &gw.app;
    app.login().await;
    let lasts = |html: &str| {
        let at = html.find("id=\"metric-lasts\"").or_else(|| html.find("id=\"count-lasts\"")).expect("the figure");
        let start = at + html[at..].find('>').unwrap() + 1;
        html[start..start + html[start..].find('<').unwrap()].to_owned()
    };
    assert_eq!(lasts(&app.get("/admin").await.text().await.unwrap()), "not enough data");

    // Snapshots over the last 4 days: the usable balance fell from 140 to 100, 10 a day.
    let now = app.state.now_ms();
    support::with_db(app, move |c| {
        for (days_ago, balance) in [(4, 140.0), (2, 120.0), (0, 100.0)] {
            diesel::sql_query("INSERT INTO pool_snapshots (taken_at, active_keys, total_balance) VALUES ($1, 1, $2)")
                .bind::<diesel::sql_types::BigInt, _>(now - days_ago * 86_400_000)
                .bind::<diesel::sql_types::Double, _>(balance)
                .execute(c)
                .unwrap();
        }
    })
    .await;
    assert_eq!(lasts(&app.get("/admin").await.text().await.unwrap()), "about 10 days");
    assert_eq!(lasts(&app.get("/").await.text().await.unwrap()), "about 10 days");
    let zh =
        app.client.get(app.url("/")).header("accept-language", "zh-CN").send().await.unwrap().text().await.unwrap();
    assert_eq!(lasts(&zh), "约 10 天");
}

#[actix_web::test]
async fn each_access_key_shows_its_requests_tokens_and_cost_today_this_week_and_this_month() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[(KEY, 5.0)]).await;
    gw.app.login().await;
    for _ in 0..3 {
        assert_eq!(gw.chat(chat(PAID_MODEL, false)).await.status(), 200);
    }
    support::flush_outcomes(&gw.app).await;
    let page = gw.app.get("/admin/settings").await.text().await.unwrap();
    let page = page.replace("<span>", "").replace("</span>", "").replace(r#"<span class="sep">"#, "");
    // 3 × (1 + 3) tokens at 2 / 8 per million: ¥0.000078.
    assert_eq!(page.matches("3 req · 12 tok · ¥0.0001").count(), 3, "today, 7 days and 30 days");
    assert!(page.contains("/admin/logs?access_key="), "a link to the key's requests");
}

#[actix_web::test]
async fn a_stream_that_breaks_off_still_logs_the_tokens_it_had_used() {
    let gw = Gateway::start(&[]).await;
    support::seed_active(&gw.app, &[("sk-drop-usage-aaaaaaaaaaaaaaaaaaaa", 5.0)]).await;
    let body = gw.chat(chat(PAID_MODEL, true)).await.text().await.unwrap_or_default();
    assert!(body.contains("stream_interrupted"), "{body}");
    support::flush_outcomes(&gw.app).await;
    let rows: Vec<Logged> = logged(&gw.app).await;
    // The two chunks sent before the break carried running usage up to 5 + 2.
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].prompt_tokens, rows[0].completion_tokens, rows[0].total_tokens), (Some(5), Some(2), Some(7)));
    assert!(rows[0].cost.is_some_and(|c| (c - (5.0 * 2.0 + 2.0 * 8.0) / 1e6).abs() < 1e-12));
}
