//! The dashboard's figures and chart fragments, and a key's detail, over HTTP.

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use crate::support::{self, TestApp};

async fn seed(app: &TestApp, keys: &[(&str, &str, Option<f64>)]) {
    let text: Vec<&str> = keys.iter().map(|(k, _, _)| *k).collect();
    app.hx_post("/admin/keys/import", &[("keys", text.join("\n").as_str())]).await;
    for (k, status, balance) in keys {
        let (k, status, balance) = (k.to_string(), status.to_string(), *balance);
        support::with_db(app, move |c| {
            diesel::sql_query("UPDATE keys SET status = $1, total_balance = $2, checked_at = 1 WHERE key = $3")
                .bind::<Text, _>(status)
                .bind::<Nullable<Double>, _>(balance)
                .bind::<Text, _>(k)
                .execute(c)
                .unwrap();
        })
        .await;
    }
}

fn metric(html: &str, id: &str) -> String {
    let needle = format!(r#"id="metric-{id}">"#);
    let start = html.find(&needle).unwrap_or_else(|| panic!("no metric {id}")) + needle.len();
    html[start..].split('<').next().unwrap().to_owned()
}

#[actix_web::test]
async fn an_empty_pool_has_a_dashboard() {
    let app = support::spawn().await;
    app.login().await;
    let res = app.get("/admin").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert_eq!(metric(&html, "total"), "0");
    assert_eq!(metric(&html, "balance"), "—");
    for panel in ["distribution", "status", "trend", "top"] {
        assert!(html.contains(&format!(r#"hx-get="/admin/charts/{panel}""#)), "{panel} loads as a fragment");
        let fragment = app.get(&format!("/admin/charts/{panel}")).await.text().await.unwrap();
        assert!(fragment.contains(&format!(r#"id="chart-{panel}""#)) && fragment.contains("data-chart="), "{panel}");
    }
    assert!(app.get("/admin/charts/trend").await.text().await.unwrap().contains("No point yet"));
    assert!(html.contains(keypool::views::dashboard::ECHARTS_PATH), "ECharts is vendored");
    assert_eq!(app.get(keypool::views::dashboard::ECHARTS_PATH).await.status(), 200);
}

#[actix_web::test]
async fn figures_are_aggregates_of_the_pool() {
    let app = support::spawn().await;
    app.login().await;
    seed(
        &app,
        &[
            ("sk-dash-a-aaaaaaaaaaaaaaaaaa", "active", Some(5.0)),
            ("sk-dash-b-bbbbbbbbbbbbbbbbbb", "active", Some(11.0)),
            ("sk-dash-c-cccccccccccccccccc", "active", Some(1500.0)),
            ("sk-dash-d-dddddddddddddddddd", "active", Some(13.5)),
            ("sk-dash-e-eeeeeeeeeeeeeeeeee", "depleted", Some(-0.01)),
            ("sk-dash-f-ffffffffffffffffff", "invalid", None),
            ("sk-dash-g-gggggggggggggggggg", "unchecked", None),
        ],
    )
    .await;
    let html = app.get("/admin").await.text().await.unwrap();
    assert_eq!(metric(&html, "total"), "7");
    assert_eq!(metric(&html, "active"), "4");
    assert_eq!(metric(&html, "depleted"), "1");
    assert_eq!(metric(&html, "balance"), "1529.50");
    assert!(html.contains(">12.25<"), "median of 5, 11, 13.5, 1500");
    assert!(html.contains(">382.38<"), "average");
    assert!(html.contains(">1500.00<") && html.contains(">5.00<"), "highest and lowest active");

    // Fixed buckets: (0,10]=1, (10,12]=1, (13,14]=1, >1000=1 (the negative depleted key is in none).
    let dist = app.get("/admin/charts/distribution").await.text().await.unwrap();
    assert!(dist.contains("[1,1,0,1,0,0,1]"), "{dist}");
    let auto = app.get("/admin/charts/distribution?buckets=auto").await.text().await.unwrap();
    assert!(!auto.contains("[1,1,0,1,0,0,1]") && auto.contains("&quot;bar&quot;"));

    let status = app.get("/admin/charts/status").await.text().await.unwrap();
    assert!(status.contains("Active") && status.contains("{d}%"));

    let top = app.get("/admin/charts/top?top=20").await.text().await.unwrap();
    assert!(top.contains("sk-dash…aaaa") && !top.contains("sk-dash-f"), "active keys only, masked");
    assert!(top.contains("/admin/keys/3"), "a bar opens its key");
    assert!(top.contains(r#"<strong aria-current="true">Top 20</strong>"#));

    // One recent key link per key, newest first.
    assert!(html.contains(r#"href="/admin/keys/7""#));
}

#[actix_web::test]
async fn the_trend_follows_snapshots_periods_and_the_outlier_cap() {
    let app = support::spawn().await;
    app.login().await;
    let now = app.state.now_ms();
    let day = 86_400_000i64;
    let points = [
        (now - 40 * day, 100.0),
        (now - 20 * day, 110.0),
        (now - 3 * day, 120.0),
        (now - 2 * day, 130.0),
        (now - day, 9000.0),
    ];
    for (t, v) in points {
        support::with_db(&app, move |c| {
            diesel::sql_query("INSERT INTO pool_snapshots (taken_at, active_keys, total_balance) VALUES ($1, 1, $2)")
                .bind::<BigInt, _>(t)
                .bind::<Double, _>(v)
                .execute(c)
                .unwrap();
        })
        .await;
    }
    let count = |html: &str| html.matches(".0,").count();
    let all = app.get("/admin/charts/trend?period=all").await.text().await.unwrap();
    let week = app.get("/admin/charts/trend?period=7d").await.text().await.unwrap();
    let month = app.get("/admin/charts/trend?period=30d").await.text().await.unwrap();
    assert_eq!((count(&all), count(&month), count(&week)), (5, 4, 3), "points per period");
    assert!(!all.contains("Axis capped"));
    let capped = app.get("/admin/charts/trend?period=all&outliers=cap").await.text().await.unwrap();
    assert!(capped.contains("Axis capped at"), "the chart says so");
    assert!(capped.contains("&quot;max&quot;:"), "the axis is capped");
    assert!(capped.contains("Show outliers"), "the toggle flips");
}

#[actix_web::test]
async fn a_check_leaves_a_snapshot_history_and_state_changes_on_the_key_page() {
    let upstream = crate::mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    app.login().await;
    app.hx_post("/admin/keys/import", &[("keys", "sk-ok-42-aaaaaaaaaaaaaaaaa")]).await;
    app.hx_post("/admin/keys/1/disable", &[]).await;
    app.hx_post("/admin/keys/1/enable", &[]).await;
    app.hx_post("/admin/checks", &[("scope", "all"), ("interval_secs", "0")]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.state.checker.current().is_none_or(|j| j.is_running()) {
        assert!(std::time::Instant::now() < deadline);
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let page = app.get("/admin/keys/1").await.text().await.unwrap();
    assert!(page.contains("Balance history") && page.contains("[") && page.contains("42.0]"), "history point");
    assert!(page.contains("Unchecked → Active") && page.contains("balance 42"), "state change with its reason");
    assert!(page.contains("Unchecked → Disabled") && page.contains("Disabled → Unchecked"));
    let trend = app.get("/admin/charts/trend").await.text().await.unwrap();
    assert!(trend.contains(",42.0]"), "the job's snapshot is a trend point: {trend}");
    assert_eq!(app.get("/admin/keys/999").await.status(), 404);
}

#[actix_web::test]
async fn htmx_refresh_swaps_the_dashboard_only() {
    let app = support::spawn().await;
    app.login().await;
    let res = app.client.get(app.url("/admin?refresh=30")).header("hx-request", "true").send().await.unwrap();
    let html = res.text().await.unwrap();
    assert!(
        html.starts_with(r#"<div id="dashboard""#) && html.contains(r#"hx-trigger="every 30s""#),
        "{}",
        &html[..200]
    );
}

#[actix_web::test]
async fn median_and_lowest_on_one_key_and_on_an_all_depleted_pool() {
    let app = support::spawn().await;
    app.login().await;
    seed(&app, &[("sk-one-aaaaaaaaaaaaaaaaaaaaa", "active", Some(7.5))]).await;
    let html = app.get("/admin").await.text().await.unwrap();
    assert_eq!(html.matches(">7.50<").count(), 5, "total, average, median, highest, lowest");
    support::with_db(&app, |c| {
        diesel::sql_query("UPDATE keys SET status = 'depleted', total_balance = -2").execute(c).unwrap()
    })
    .await;
    let html = app.get("/admin").await.text().await.unwrap();
    assert_eq!(metric(&html, "balance"), "—");
    assert_eq!(metric(&html, "depleted"), "1");
    let dist = app.get("/admin/charts/distribution?buckets=auto").await.text().await.unwrap();
    assert!(dist.contains("[1]"), "one bucket for one negative balance: {dist}");
}

#[actix_web::test]
async fn an_incident_shows_a_banner_until_it_clears() {
    let app = support::spawn().await;
    app.login().await;
    let html = app.get("/admin").await.text().await.unwrap();
    assert!(!html.contains("incident-banner") && !html.contains("Upstream incident"), "no incident, no banner");

    let now = app.state.now_ms();
    let t = app.state.pool.runtime().thresholds();
    // The cause as the proxy stores it: a reason, read in each page's language.
    let cause = keypool::domain::reason::Reason::upstream(429, "rate limited").encode();
    for attempt in 0..9 {
        app.state.pool.incident.record_failure(attempt % 4 + 1, Some("m"), now, None, &cause, t);
    }
    assert!(!app.get("/admin").await.text().await.unwrap().contains("incident-banner"), "four keys are not enough");
    app.state.pool.incident.record_failure(5, Some("m"), now, None, &cause, t);
    let html = app.get("/admin").await.text().await.unwrap();
    assert!(html.contains(r#"id="incident" role="alert""#), "a visible warning");
    assert!(html.contains("Upstream incident: many keys are failing at once"));
    assert!(html.contains("5 different keys failed") && html.contains("key states are frozen"));
    assert!(html.contains("single attempt") && html.contains("HTTP 429: rate limited"), "says the cause");
    assert!(html.contains("Expected to clear") && html.contains("in about 30 s"), "and when it should clear");
    let fragment = app.client.get(app.url("/admin")).header("hx-request", "true").send().await.unwrap();
    assert!(fragment.text().await.unwrap().contains("incident-banner"), "the refreshed fragment keeps it");
    let zh = app.client.get(app.url("/admin")).header("accept-language", "zh-CN").send().await.unwrap();
    let zh = zh.text().await.unwrap();
    assert!(zh.contains("上游异常") && zh.contains("上游返回 HTTP 429：rate limited"), "localised, the cause too");

    app.clock.advance(std::time::Duration::from_secs(31));
    assert!(!app.get("/admin").await.text().await.unwrap().contains("incident-banner"), "cleared after the back-off");
}

#[actix_web::test]
async fn chart_choices_in_the_address_render_selected_and_stay_in_every_link() {
    let app = support::spawn().await;
    app.login().await;
    let query = "period=7d&outliers=cap&buckets=auto&top=20&window=7d";
    let html = app.get(&format!("/admin?{query}&bogus=1")).await.text().await.unwrap();
    for panel in ["distribution", "trend", "top", "traffic"] {
        let src = format!(r#"hx-get="/admin/charts/{panel}?{}""#, query.replace('&', "&amp;"));
        assert!(html.contains(&src), "{panel} loads with the address's choices");
    }
    let selected = |html: &str, label: &str| html.contains(&format!(r#"<strong aria-current="true">{label}</strong>"#));
    let trend = app.get(&format!("/admin/charts/trend?{query}")).await.text().await.unwrap();
    assert!(selected(&trend, "7 days"), "{trend}");
    assert!(trend.contains("Show outliers"), "outliers are capped, so the toggle shows them");
    let top = app.get(&format!("/admin/charts/top?{query}")).await.text().await.unwrap();
    assert!(selected(&top, "Top 20"), "{top}");
    // A choice's link keeps the other panels' choices, in the page's address too (a reload keeps them).
    let fifty = "period=7d&amp;outliers=cap&amp;buckets=auto&amp;top=50&amp;window=7d";
    assert!(top.contains(&format!(r#"href="/admin?{fifty}""#)), "{top}");
    assert!(top.contains(r#"data-choice="top=50""#), "{top}");
    let res = app.client.get(app.url(&format!("/admin/charts/top?{query}"))).header("hx-request", "true");
    let res = res.header("x-chart-choice", "1").send().await.unwrap();
    let pushed = res.headers().get("hx-push-url").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(pushed.as_deref(), Some(format!("/admin?{query}").as_str()), "a choice puts them in the address");
    let lazy = app.client.get(app.url("/admin/charts/top")).header("hx-request", "true").send().await.unwrap();
    assert!(lazy.headers().get("hx-push-url").is_none(), "loading a panel leaves the address alone");
    assert!(top.contains(&format!(r#"hx-get="/admin/charts/top?{fifty}""#)), "{top}");
    let dist = app.get(&format!("/admin/charts/distribution?{query}")).await.text().await.unwrap();
    assert!(selected(&dist, "Automatic buckets"), "{dist}");
    let traffic = app.get(&format!("/admin/charts/traffic?{query}")).await.text().await.unwrap();
    assert!(selected(&traffic, "7 days"), "{traffic}");
    // The refreshed fragment keeps them as well.
    let res = app.client.get(app.url(&format!("/admin?{query}&refresh=60"))).header("hx-request", "true").send();
    let fragment = res.await.unwrap().text().await.unwrap();
    assert!(fragment.contains(&format!(r#"hx-get="/admin?{}&amp;refresh=60""#, query.replace('&', "&amp;"))));
    let zh = app.client.get(app.url(&format!("/admin/charts/top?{query}"))).header("accept-language", "zh-CN");
    assert!(zh.send().await.unwrap().text().await.unwrap().contains(r#"<strong aria-current="true">"#));
}
