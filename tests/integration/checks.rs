//! Check jobs against the mock upstream: classification, retries, intervals, stop, parameters,
//! history, import "check now", and the schedule with two instances on one database.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::sql_types::{Double, Nullable, Text};
use keypool::domain::keys::{KeyRow, KeyStatus};
use keypool::domain::reason::Reason;

use crate::mock;
use crate::support::{self, TestApp};

async fn app_with_mock() -> (TestApp, mock::MockUpstream) {
    let upstream = mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    app.login().await;
    (app, upstream)
}

async fn import(app: &TestApp, keys: &[&str]) {
    let text = keys.join("\n");
    let res = app.hx_post("/admin/keys/import", &[("keys", text.as_str())]).await;
    assert_eq!(res.status(), 200);
}

/// Starts a check over `scope` with `params`; returns the panel's status.
async fn check(app: &TestApp, scope: &str, params: &[(&str, &str)]) -> reqwest::StatusCode {
    let mut form = vec![("scope", scope)];
    form.extend_from_slice(params);
    app.hx_post("/admin/checks", &form).await.status()
}

/// Polls until the current job has finished.
async fn finished(app: &TestApp) -> keypool::checker::Progress {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = app.state.checker.current().map(|j| j.progress())
            && !p.running
        {
            return p;
        }
        assert!(Instant::now() < deadline, "the job did not finish");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn rows(app: &TestApp) -> Vec<KeyRow> {
    support::with_db(app, |c| {
        let q = keypool::domain::keys::KeyListQuery { size: 500, ..Default::default() };
        let n = keypool::db::keys::count_matching(c, &keypool::domain::key_crypto::KeyCodec::Plain, &q.filter).unwrap();
        keypool::db::keys::list_page(c, &keypool::domain::key_crypto::KeyCodec::Plain, 1, &q, n).unwrap()
    })
    .await
}

/// A stored reason read back (`None` fails: a reason was expected).
fn reason(stored: Option<&str>) -> Reason {
    Reason::decode(stored.expect("a reason"))
}

fn row<'a>(rows: &'a [KeyRow], key: &str) -> &'a KeyRow {
    rows.iter().find(|r| r.key == key).unwrap()
}

const FAST: [(&str, &str); 3] = [("interval_secs", "0"), ("retries", "0"), ("concurrency", "8")];

#[actix_web::test]
async fn every_answer_lands_in_the_right_state_and_transient_ones_change_nothing() {
    let (app, upstream) = app_with_mock().await;
    let keys = [
        "sk-ok-88.88-aaaaaaaaaaaaaaaa",
        "sk-ok-0.00-bbbbbbbbbbbbbbbbb",
        "sk-ok--0.01-cccccccccccccccc",
        "sk-invalid-dddddddddddddddd",
        "sk-banned-eeeeeeeeeeeeeeeee",
        "sk-limited-ffffffffffffffff",
        "sk-err500-ggggggggggggggggg",
        "sk-junk-hhhhhhhhhhhhhhhhhhh",
    ];
    import(&app, &keys).await;
    // A good key that is rate limited now keeps its state and balance.
    support::with_db(&app, |c| {
        diesel::sql_query("UPDATE keys SET status = 'active', total_balance = $1 WHERE key = $2")
            .bind::<Nullable<Double>, _>(Some(20.0))
            .bind::<Text, _>("sk-limited-ffffffffffffffff")
            .execute(c)
            .unwrap();
    })
    .await;
    assert_eq!(check(&app, "all", &FAST).await, 200);
    let p = finished(&app).await;
    assert_eq!((p.processed, p.total), (8, 8));
    let count = |class: &str| p.counts.iter().find(|(c, _)| c.as_str() == class).map(|(_, n)| *n).unwrap();
    assert_eq!((count("active"), count("depleted"), count("invalid"), count("transient")), (1, 2, 2, 3));

    let rows = rows(&app).await;
    let ok = row(&rows, keys[0]);
    assert_eq!((ok.status.as_str(), ok.total_balance), ("active", Some(88.88)));
    assert!(ok.checked_at.is_some() && ok.last_error.is_none());
    assert_eq!(row(&rows, keys[1]).status.as_str(), "depleted");
    assert_eq!((row(&rows, keys[2]).status.as_str(), row(&rows, keys[2]).total_balance), ("depleted", Some(-0.01)));
    let invalid = row(&rows, keys[3]);
    assert_eq!(invalid.status.as_str(), "invalid");
    assert!(invalid.status_reason.as_deref().unwrap().contains("Api key is invalid"), "the upstream's message is kept");
    assert!(row(&rows, keys[4]).status_reason.as_deref().unwrap().contains("banned"));
    let limited = row(&rows, keys[5]);
    assert_eq!((limited.status.as_str(), limited.total_balance), ("active", Some(20.0)), "a rate limit kills nothing");
    assert!(limited.last_error.as_deref().unwrap().contains("429"));
    let broken = row(&rows, keys[6]);
    assert_eq!(broken.status.as_str(), "unchecked");
    assert!(broken.last_error.as_deref().unwrap().contains("upstream exploded"));
    assert!(matches!(reason(row(&rows, keys[7]).last_error.as_deref()), Reason::Unreadable { .. }));

    // Each language reads the reasons in its own words (issue 13): stored as codes, not sentences.
    let depleted = row(&rows, keys[2]);
    assert_eq!(reason(depleted.status_reason.as_deref()), Reason::BalanceLow { balance: "-0.01".into() });
    let detail = |lang: &'static str, id: i64| {
        let app = &app;
        async move {
            app.get(&format!("/lang/{lang}?next=/admin")).await;
            let list = app.get("/admin/keys?status=depleted").await.text().await.unwrap();
            let page = app.get(&format!("/admin/keys/{id}")).await.text().await.unwrap();
            (list, page)
        }
    };
    let (list, page) = detail("zh-CN", depleted.id).await;
    for html in [&list, &page] {
        assert!(html.contains("余额 -0.01，不高于最低余额"), "the Chinese reason");
        assert!(!html.contains("at or below the minimum"), "no English sentence in the Chinese UI");
    }
    let invalid_page = app.get(&format!("/admin/keys/{}", row(&rows, keys[3]).id)).await.text().await.unwrap();
    assert!(
        invalid_page.contains("上游返回 HTTP 401：Api key is invalid"),
        "the upstream's own words, framed in Chinese"
    );
    let (list, page) = detail("en", depleted.id).await;
    for html in [&list, &page] {
        assert!(html.contains("balance -0.01 at or below the minimum"), "the English reason");
        assert!(!html.contains("不高于最低余额"));
    }
    assert_eq!(app.hx_post(&format!("/admin/keys/{}/disable", depleted.id), &[("from", "detail")]).await.status(), 200);
    assert!(
        app.get(&format!("/admin/keys/{}", depleted.id)).await.text().await.unwrap().contains("disabled by an admin")
    );
    app.get("/lang/zh-CN?next=/admin").await;
    assert!(app.get(&format!("/admin/keys/{}", depleted.id)).await.text().await.unwrap().contains("管理员已禁用"));

    let history = support::with_db(&app, |c| keypool::db::checks::history_count(c).unwrap()).await;
    assert_eq!(history, 3, "one history row per balance answer");
    assert_eq!(upstream.hits.total(), 8);
}

#[actix_web::test]
async fn retries_are_honoured_and_counted_by_the_upstream() {
    let (app, upstream) = app_with_mock().await;
    import(&app, &["sk-limited-aaaaaaaaaaaaaaaa", "sk-flaky-bbbbbbbbbbbbbbbbbb", "sk-ok-3-cccccccccccccccccc"]).await;
    let params = [("interval_secs", "0"), ("retries", "2"), ("retry_interval_ms", "0")];
    assert_eq!(check(&app, "all", &params).await, 200);
    finished(&app).await;
    assert_eq!(upstream.hits.of("sk-limited-aaaaaaaaaaaaaaaa"), 3, "1 + 2 retries");
    assert_eq!(upstream.hits.of("sk-flaky-bbbbbbbbbbbbbbbbbb"), 2, "retried once, then answered");
    assert_eq!(upstream.hits.of("sk-ok-3-cccccccccccccccccc"), 1, "a good answer is not retried");
    let rows = rows(&app).await;
    assert_eq!(row(&rows, "sk-flaky-bbbbbbbbbbbbbbbbbb").status.as_str(), "active");

    assert_eq!(check(&app, "all", &[("interval_secs", "0"), ("retries", "0")]).await, 200);
    finished(&app).await;
    assert_eq!(upstream.hits.of("sk-limited-aaaaaaaaaaaaaaaa"), 4, "no retry with 0");
}

#[actix_web::test]
async fn an_interval_holds_the_next_check_and_stop_keeps_what_was_done() {
    let (app, upstream) = app_with_mock().await;
    let keys = ["sk-ok-1-aaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbb", "sk-ok-3-cccccccccccccccccc"];
    import(&app, &keys).await;
    // One worker, an hour between checks: exactly one request can happen.
    assert_eq!(check(&app, "all", &[("concurrency", "1"), ("interval_secs", "3600")]).await, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.state.checker.current().unwrap().progress().processed < 1 {
        assert!(Instant::now() < deadline, "the first result never came");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.state.checker.current().unwrap().progress().running, "held by the interval");
    assert_eq!(upstream.hits.total(), 1);

    let res = app.hx_post("/admin/checks/stop", &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Check stopped"));
    let p = app.state.checker.current().unwrap().progress();
    assert!(!p.running && p.stopped && p.processed == 1);
    let rows = rows(&app).await;
    assert_eq!(rows.iter().filter(|r| r.status == KeyStatus::Active).count(), 1, "the result obtained is kept");
    assert_eq!(upstream.hits.total(), 1, "nothing after the stop");

    // The random interval is held the same way.
    assert_eq!(
        check(
            &app,
            "all",
            &[
                ("concurrency", "1"),
                ("interval_mode", "random"),
                ("min_interval_ms", "3600000"),
                ("max_interval_ms", "3600000")
            ]
        )
        .await,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.state.checker.current().unwrap().progress().processed < 1 {
        assert!(Instant::now() < deadline, "the first result never came");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    app.hx_post("/admin/checks/stop", &[]).await;
    assert_eq!(upstream.hits.total(), 2);
}

#[actix_web::test]
async fn parameters_are_validated_and_zero_is_allowed() {
    let (app, _upstream) = app_with_mock().await;
    import(&app, &["sk-ok-1-aaaaaaaaaaaaaaaaaa"]).await;
    let res = app
        .hx_post(
            "/admin/checks",
            &[("scope", "all"), ("interval_mode", "random"), ("min_interval_ms", "900"), ("max_interval_ms", "100")],
        )
        .await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("cannot be above the maximum"));
    assert_eq!(check(&app, "all", &[("concurrency", "65")]).await, 422);
    assert_eq!(check(&app, "all", &[("retries", "6")]).await, 422);
    assert!(app.state.checker.current().is_none(), "nothing started");
    let zero = [
        ("interval_secs", "0"),
        ("retries", "0"),
        ("retry_interval_ms", "0"),
        ("rate", "0"),
        ("min_interval_ms", "0"),
        ("max_interval_ms", "0"),
    ];
    assert_eq!(check(&app, "all", &zero).await, 200);
    assert_eq!(finished(&app).await.processed, 1);
}

#[actix_web::test]
async fn one_key_selection_and_filter_scopes() {
    let (app, upstream) = app_with_mock().await;
    import(&app, &["sk-ok-1-aaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbb", "sk-invalid-cccccccccccccccc"]).await;
    app.hx_post("/admin/checks", &[("scope", "key"), ("id", "2"), ("interval_secs", "0")]).await;
    assert_eq!(finished(&app).await.total, 1);
    assert_eq!(upstream.hits.of("sk-ok-2-bbbbbbbbbbbbbbbbbb"), 1);

    app.hx_post("/admin/keys/selection", &[("action", "select"), ("ids", "1,3")]).await;
    check(&app, "selection", &[("interval_secs", "0")]).await;
    assert_eq!(finished(&app).await.total, 2);

    check(&app, "matching", &[("interval_secs", "0"), ("status", "invalid")]).await;
    assert_eq!(finished(&app).await.total, 1);
    assert_eq!(upstream.hits.of("sk-invalid-cccccccccccccccc"), 2);
}

#[actix_web::test]
async fn a_slow_upstream_times_out_as_transient() {
    let (app, _upstream) = app_with_mock().await;
    import(&app, &["sk-slow-aaaaaaaaaaaaaaaaaaa"]).await;
    support::with_db(&app, |c| {
        keypool::db::settings::put_many(c, &[("check_timeout_secs".to_owned(), "1".to_owned())], 0).unwrap();
    })
    .await;
    app.state.reload_settings().await.unwrap();
    check(&app, "all", &FAST).await;
    finished(&app).await;
    let rows = rows(&app).await;
    assert_eq!(rows[0].status.as_str(), "unchecked");
    assert_eq!(reason(rows[0].last_error.as_deref()), Reason::Timeout);
}

#[actix_web::test]
async fn import_checks_the_new_keys_now() {
    let (app, upstream) = app_with_mock().await;
    import(&app, &["sk-ok-1-aaaaaaaaaaaaaaaaaa"]).await;
    assert!(app.state.checker.current().is_none(), "the plain import posts no check_now");
    let text = "sk-ok-1-aaaaaaaaaaaaaaaaaa\nsk-ok-7-bbbbbbbbbbbbbbbbbb";
    let res = app.hx_post("/admin/keys/import", &[("keys", text), ("check_now", "on"), ("interval_secs", "0")]).await;
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"hx-swap-oob="true""#) && body.contains("check-panel"), "{body}");
    assert_eq!(finished(&app).await.total, 1, "only the key just added");
    assert_eq!(upstream.hits.of("sk-ok-7-bbbbbbbbbbbbbbbbbb"), 1);
    assert_eq!(upstream.hits.of("sk-ok-1-aaaaaaaaaaaaaaaaaa"), 0);
}

fn ticks(app: &TestApp) -> u64 {
    app.state.schedule_ticks.load(std::sync::atomic::Ordering::Relaxed)
}

/// Waits until the instance's schedule has ticked `n` more times.
async fn wait_ticks(app: &TestApp, n: u64) {
    let start = ticks(app);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ticks(app) < start + n {
        assert!(Instant::now() < deadline, "the schedule does not tick");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_web::test]
async fn the_schedule_runs_once_across_two_instances() {
    let upstream = mock::start();
    let url = upstream.url.clone();
    let fast = |url: String| {
        move |c: &mut keypool::config::Config| {
            c.upstream_override = Some(url);
            c.schedule_tick = Duration::from_millis(50);
        }
    };
    let a = support::spawn_with(fast(url.clone())).await;
    let b = support::spawn_sharing(&a, fast(url)).await;
    a.login().await;
    import(&a, &["sk-ok-1-aaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbb"]).await;
    support::with_db(&a, |c| {
        keypool::db::settings::put_many(c, &[("auto_check_minutes".to_owned(), "5".to_owned())], 0).unwrap();
    })
    .await;
    a.state.reload_settings().await.unwrap();
    b.state.reload_settings().await.unwrap();
    // Both instances tick; nothing runs until a period (the default hour, seen at start-up) has passed.
    futures_util::join!(wait_ticks(&a, 3), wait_ticks(&b, 3));
    assert!(a.state.checker.current().is_none() && b.state.checker.current().is_none());
    assert_eq!(upstream.hits.total(), 0, "nothing at start-up");

    a.clock.advance(Duration::from_secs(61 * 60));
    b.clock.advance(Duration::from_secs(61 * 60));
    let deadline = Instant::now() + Duration::from_secs(60);
    while a.state.checker.current().is_none() && b.state.checker.current().is_none() {
        assert!(Instant::now() < deadline, "the schedule never ran");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let runner = if a.state.checker.current().is_some() { &a } else { &b };
    finished(runner).await;
    // Both keep ticking within the new period: no second run anywhere.
    futures_util::join!(wait_ticks(&a, 5), wait_ticks(&b, 5));
    let ran = [&a, &b].iter().filter(|app| app.state.checker.current().is_some()).count();
    assert_eq!(ran, 1, "one instance ran the schedule");
    assert_eq!(upstream.hits.total(), 2, "each key checked once");
}

#[actix_web::test]
async fn client_mode_hands_the_keys_to_the_browser_and_classifies_its_answers() {
    let (app, upstream) = app_with_mock().await;
    import(&app, &["sk-ok-1-aaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbb", "sk-ok-3-cccccccccccccccccc"]).await;
    support::with_db(&app, |c| {
        keypool::db::settings::put_many(c, &[("client_request_mode".to_owned(), "on".to_owned())], 0).unwrap();
    })
    .await;
    app.state.reload_settings().await.unwrap();
    let res = app.hx_post("/admin/checks", &[("scope", "all"), ("concurrency", "3")]).await;
    let body = res.text().await.unwrap();
    assert!(body.contains("data-client-check") && body.contains(&upstream.url), "the browser gets the job");
    assert!(app.state.checker.current().is_none(), "no server job");
    assert_eq!(upstream.hits.total(), 0);

    let balance = r#"{"code":20000,"status":true,"data":{"balance":"1","chargeBalance":"9","totalBalance":"10"}}"#;
    let results = serde_json::json!({ "results": [
        { "id": 1, "status": 200, "body": balance },
        { "id": 2, "status": 401, "body": "\"Api key is invalid\"" },
        { "id": 3, "status": 0, "body": "TypeError: Failed to fetch" },
        { "id": 999, "status": 200, "body": balance }
    ] });
    let res = app.client.post(app.url("/admin/checks/client-results")).json(&results).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let counts: serde_json::Value = res.json().await.unwrap();
    assert_eq!(counts["active"], 2, "{counts}");
    let rows = rows(&app).await;
    assert_eq!(
        (
            row(&rows, "sk-ok-1-aaaaaaaaaaaaaaaaaa").status.as_str(),
            row(&rows, "sk-ok-1-aaaaaaaaaaaaaaaaaa").total_balance
        ),
        ("active", Some(10.0))
    );
    assert_eq!(row(&rows, "sk-ok-2-bbbbbbbbbbbbbbbbbb").status.as_str(), "invalid");
    let failed = row(&rows, "sk-ok-3-cccccccccccccccccc");
    assert_eq!(failed.status.as_str(), "unchecked", "a refused browser request changes no state");
    assert!(matches!(reason(failed.last_error.as_deref()), Reason::Browser { .. }));

    let bad = serde_json::json!({ "results": [{ "id": 1, "status": 999, "body": "" }] });
    assert_eq!(app.client.post(app.url("/admin/checks/client-results")).json(&bad).send().await.unwrap().status(), 400);
    // The page offers the server instead; it works whatever the mode.
    let res = app.hx_post("/admin/checks", &[("scope", "all"), ("force_server", "1"), ("interval_secs", "0")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(finished(&app).await.total, 3);
}

#[actix_web::test]
async fn the_optional_probe_proves_the_key_can_call_and_history_is_pruned() {
    let (app, upstream) = app_with_mock().await;
    import(&app, &["sk-ok-5-goodprobe-aaaaaaaaaa", "sk-ok-5-badprobe-bbbbbbbbbbb"]).await;
    check(&app, "all", &FAST).await;
    finished(&app).await;
    assert_eq!(upstream.hits.total(), 2, "no probe by default");

    support::with_db(&app, |c| {
        keypool::db::settings::put_many(
            c,
            &[("check_probe_model".to_owned(), "Qwen/Qwen2.5-7B-Instruct".to_owned())],
            0,
        )
        .unwrap();
    })
    .await;
    app.state.reload_settings().await.unwrap();
    check(&app, "all", &FAST).await;
    finished(&app).await;
    assert_eq!(upstream.hits.of("chat Bearer sk-ok-5-goodprobe-aaaaaaaaaa"), 1);
    let rows = rows(&app).await;
    assert_eq!(row(&rows, "sk-ok-5-goodprobe-aaaaaaaaaa").status.as_str(), "active");
    let bad = row(&rows, "sk-ok-5-badprobe-bbbbbbbbbbb");
    assert_eq!(bad.status.as_str(), "invalid");
    assert!(
        matches!(reason(bad.status_reason.as_deref()), Reason::Probe { reason } if matches!(*reason, Reason::Upstream { status: 401, .. }))
    );

    // History older than the retention goes.
    let (before, now) =
        (support::with_db(&app, |c| keypool::db::checks::history_count(c).unwrap()).await, app.state.now_ms());
    assert_eq!(before, 3);
    let pruned = support::with_db(&app, move |c| keypool::db::checks::prune_history(c, now + 1).unwrap()).await;
    assert_eq!(pruned, 3);
}

/// An instance busy with a manual check does not take the schedule's period (it could not run it);
/// once free, it (or another instance) runs the period's check.
#[actix_web::test]
async fn a_busy_instance_leaves_the_scheduled_period_for_when_it_can_run_it() {
    let upstream = mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| {
        c.upstream_override = Some(url);
        c.schedule_tick = Duration::from_millis(50);
    })
    .await;
    app.login().await;
    import(&app, &["sk-ok-1-aaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbb"]).await;
    support::with_db(&app, |c| {
        keypool::db::settings::put_many(c, &[("auto_check_minutes".to_owned(), "5".to_owned())], 0).unwrap();
    })
    .await;
    app.state.reload_settings().await.unwrap();
    wait_ticks(&app, 3).await;
    // A manual check held by its interval: the instance is busy when the period comes.
    assert_eq!(check(&app, "all", &[("concurrency", "1"), ("interval_secs", "3600")]).await, 200);
    app.clock.advance(Duration::from_secs(61 * 60));
    wait_ticks(&app, 5).await;
    let manual = app.state.checker.current().unwrap().progress();
    assert!(manual.running && manual.label != "checks.scope.scheduled", "the manual check still runs");
    app.hx_post("/admin/checks/stop", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.state.checker.current().is_some_and(|j| j.progress().label != "checks.scope.scheduled") {
        assert!(Instant::now() < deadline, "the period's scheduled check never ran once the instance was free");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(finished(&app).await.total, 2, "every key checked by the schedule");
}

#[actix_web::test]
async fn a_second_start_while_a_job_runs_is_told_so_and_keeps_being_told_while_it_runs() {
    let (app, _upstream) = app_with_mock().await;
    import(&app, &["sk-ok-1-aaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbb"]).await;
    let first =
        app.hx_post("/admin/checks", &[("scope", "all"), ("concurrency", "1"), ("interval_secs", "3600")]).await;
    let first = first.text().await.unwrap();
    assert!(first.contains("data-scroll"), "a started job's panel asks to be scrolled into view");
    assert!(!first.contains("did not start"));
    let second = app.hx_post("/admin/checks", &[("scope", "key"), ("id", "1")]).await;
    assert_eq!(second.status(), 200);
    let second = second.text().await.unwrap();
    assert!(second.contains("Your check did not start: another check is already running"), "{second}");
    assert!(second.contains("/admin/checks/panel?busy=1"), "its polls keep the notice");
    let polled = app.client.get(app.url("/admin/checks/panel?busy=1")).header("accept-language", "zh-CN").send().await;
    assert!(polled.unwrap().text().await.unwrap().contains("你的检测没有开始"));
    let plain = app.get("/admin/checks/panel").await.text().await.unwrap();
    assert!(!plain.contains("did not start"), "the running job's own panel says nothing of it");
    // An import with "check the new keys now" is told the same, in its out-of-band panel.
    let res = app.hx_post("/admin/keys/import", &[("keys", "sk-ok-3-cccccccccccccccccc"), ("check_now", "on")]).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("hx-swap-oob") && html.contains("did not start") && html.contains("data-scroll"), "{html}");
    app.hx_post("/admin/checks/stop", &[]).await;
    let after = app.get("/admin/checks/panel?busy=1").await.text().await.unwrap();
    assert!(!after.contains("did not start"), "no notice once the job is over");
}

/// Issue 13: a job's scope is kept as a catalogue key, so each admin reads it in their own language,
/// whatever the language of the one who started it.
#[actix_web::test]
async fn a_jobs_scope_reads_in_the_viewers_language_not_the_starters() {
    let (app, _upstream) = app_with_mock().await;
    import(&app, &["sk-ok-5-aaaaaaaaaaaaaaaaaaaaaa"]).await;
    app.get("/lang/zh-CN?next=/admin").await;
    assert_eq!(check(&app, "all", &FAST).await, 200);
    finished(&app).await;
    assert!(app.get("/admin/checks/panel").await.text().await.unwrap().contains("（全部密钥）"));
    app.get("/lang/en?next=/admin").await;
    let panel = app.get("/admin/checks/panel").await.text().await.unwrap();
    assert!(panel.contains("(all keys)"), "{panel}");
    assert!(!panel.contains("全部密钥"));
}
