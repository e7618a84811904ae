//! The keys page over HTTP: import, sort/filter/search/page, selection and bulk actions, export.

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use crate::support::{self, TestApp, header};

fn key(i: usize) -> String {
    format!("sk-{i:0>32}")
}

/// Keys of the rendered table rows, in order.
fn row_keys(html: &str) -> Vec<String> {
    html.split("data-key=\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_owned).collect()
}

async fn import(app: &TestApp, text: &str) -> String {
    let res = app.hx_post("/admin/keys/import", &[("keys", text)]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "hx-trigger"), "keys-changed", "the table refreshes itself");
    res.text().await.unwrap()
}

/// Sets what a check would have set.
async fn set_key(app: &TestApp, k: &str, status: &str, balance: Option<f64>, checked_at: Option<i64>) {
    let (k, status) = (k.to_owned(), status.to_owned());
    support::with_db(app, move |c| {
        diesel::sql_query("UPDATE keys SET status = $1, total_balance = $2, checked_at = $3 WHERE key = $4")
            .bind::<Text, _>(status)
            .bind::<Nullable<Double>, _>(balance)
            .bind::<Nullable<BigInt>, _>(checked_at)
            .bind::<Text, _>(k)
            .execute(c)
            .unwrap()
    })
    .await;
}

async fn key_count(app: &TestApp) -> i64 {
    support::with_db(app, |c| {
        keypool::db::keys::count_matching(c, &keypool::domain::key_crypto::KeyCodec::Plain, &Default::default())
            .unwrap()
    })
    .await
}

async fn page(app: &TestApp, query: &str) -> String {
    let res =
        app.client.get(app.url(&format!("/admin/keys?{query}"))).header("hx-request", "true").send().await.unwrap();
    assert_eq!(res.status(), 200, "{query}");
    res.text().await.unwrap()
}

#[actix_web::test]
async fn import_splits_dedupes_and_rejects_with_line_numbers() {
    let app = support::spawn().await;
    app.login().await;
    let text = format!(
        "{},{}\n{};{}\t{} {}|12.5\nshort\n<script>alert(1)</script>aaaaaaaaaaaaaaaa\n{}\n\n",
        key(1),
        key(2),
        key(3),
        key(1),
        key(4),
        key(5),
        key(2)
    );
    let body = import(&app, &text).await;
    assert!(body.contains("5 added, 0 already present, 2 duplicates in the input, 2 rejected."), "{body}");
    assert!(body.contains("Line 3") && body.contains("Line 4"), "{body}");
    assert!(!body.contains("<script>alert"), "rejected text is escaped");
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(key_count(&app).await, 5);

    // The page never shows the junk, and everything it shows is escaped.
    let full = app.get("/admin/keys").await.text().await.unwrap();
    assert!(!full.contains("<script>alert"));

    // Re-adding keeps balances and dates.
    set_key(&app, &key(1), "active", Some(42.5), Some(1_000)).await;
    let again = import(&app, &format!("{}\n{}", key(1), key(6))).await;
    assert!(again.contains("1 added, 1 already present"), "{again}");
    let row = support::with_db(&app, |c| {
        keypool::db::keys::list_page(
            c,
            &keypool::domain::key_crypto::KeyCodec::Plain,
            1,
            &keypool::domain::keys::KeyListQuery::default(),
            6,
        )
        .unwrap()
    })
    .await;
    let k1 = row.iter().find(|r| r.key == key(1)).unwrap();
    assert_eq!((k1.status.as_str(), k1.total_balance, k1.checked_at), ("active", Some(42.5), Some(1_000)));
}

#[actix_web::test]
async fn overlapping_imports_at_once_lose_and_duplicate_nothing() {
    let app = support::spawn().await;
    app.login().await;
    let a: String = (0..3000).map(|i| key(i) + "\n").collect();
    let b: String = (2000..5000).map(|i| key(i) + "\n").collect();
    let (fa, fb) = ([("keys", a.as_str())], [("keys", b.as_str())]);
    let (ra, rb) = futures_util::join!(app.hx_post("/admin/keys/import", &fa), app.hx_post("/admin/keys/import", &fb));
    let (ta, tb) = (ra.text().await.unwrap(), rb.text().await.unwrap());
    let added = |t: &str| {
        t.split(" added").next().and_then(|n| n.rsplit('>').next()).and_then(|n| n.trim().parse::<i64>().ok()).unwrap()
    };
    assert_eq!(added(&ta) + added(&tb), 5000, "{ta}\n{tb}");
    assert_eq!(key_count(&app).await, 5000);
}

#[actix_web::test]
async fn import_over_20_mb_is_refused_and_adds_nothing() {
    let app = support::spawn().await;
    app.login().await;
    let mut text = String::with_capacity(21 * 1024 * 1024);
    let mut i = 0;
    while text.len() <= 20 * 1024 * 1024 {
        text.push_str(&key(i));
        text.push('\n');
        i += 1;
    }
    let res = app
        .client
        .post(app.url("/admin/keys/import"))
        .header("content-type", "text/plain")
        .header("accept-language", "en")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(res.text().await.unwrap().contains("larger than 20 MB"));
    assert_eq!(key_count(&app).await, 0);
}

#[actix_web::test]
async fn sorts_filters_searches_and_pages() {
    let app = support::spawn().await;
    app.login().await;
    let all: String = (0..45).map(|i| key(i) + "\n").collect();
    import(&app, &all).await;
    // Balances 0..44 on even keys (active), odd keys stay unchecked; key(7) invalid; distinct dates.
    for i in (0..45).step_by(2) {
        set_key(&app, &key(i), "active", Some(i as f64), Some(10_000 + (44 - i as i64))).await;
    }
    set_key(&app, &key(7), "invalid", None, Some(5)).await;
    support::with_db(&app, |c| {
        diesel::sql_query("UPDATE keys SET added_at = id * 1000").execute(c).unwrap();
    })
    .await;

    // Default: newest first, 20 per page.
    let first = row_keys(&page(&app, "").await);
    assert_eq!(first.len(), 20);
    assert_eq!(first[0], key(44));
    let second = row_keys(&page(&app, "page=2").await);
    assert_eq!(second, (5..=24).rev().map(key).collect::<Vec<_>>(), "a page read from the far end");
    let third = row_keys(&page(&app, "page=3").await);
    assert_eq!(third, [key(4), key(3), key(2), key(1), key(0)]);
    let beyond = page(&app, "page=99").await;
    assert!(beyond.contains("Page 3 of 3") || beyond.contains("第 3 / 3 页"), "past the end shows the last page");

    // Balance: highest first; unchecked (no balance) last; ascending puts them first.
    let by_balance = row_keys(&page(&app, "sort=balance&dir=desc").await);
    assert_eq!(&by_balance[..3], [key(44), key(42), key(40)]);
    let asc = row_keys(&page(&app, "sort=balance&dir=asc&size=50").await);
    assert_eq!(asc.len(), 45);
    assert!(asc[..22].iter().all(|k| k.trim_start_matches("sk-").parse::<usize>().unwrap() % 2 == 1), "{asc:?}");
    assert_eq!(asc[22], key(0));
    assert_eq!(asc[44], key(44));

    // Last checked falls back to added for keys never checked.
    let checked = row_keys(&page(&app, "sort=checked&dir=asc&size=50").await);
    assert_eq!(checked[0], key(7), "checked at 5");
    assert_eq!(checked[1], key(1), "never checked, added at 2000");

    // Status filter, search, page size.
    let active = row_keys(&page(&app, "status=active&size=50").await);
    assert_eq!(active.len(), 23);
    let invalid = row_keys(&page(&app, "status=invalid").await);
    assert_eq!(invalid, [key(7)]);
    let search = row_keys(&page(&app, &format!("q={}", &key(13)[20..])).await);
    assert_eq!(search, [key(13)]);
    let upper = row_keys(&page(&app, &format!("q={}", key(13).to_uppercase())).await);
    assert!(upper.is_empty(), "keys are case-sensitive, and so is the search");
    let pct = row_keys(&page(&app, "q=%25").await);
    assert!(pct.is_empty(), "% is a literal character, not a wildcard");
    let zeros = page(&app, "q=00000000000000000000000000000&page=2").await;
    assert_eq!(row_keys(&zeros).len(), 20, "a search spanning pages");
    assert!(zeros.contains("Page 2 of 3") || zeros.contains("第 2 / 3 页"), "{zeros}");
    let past = page(&app, "q=00000000000000000000000000000&page=9").await;
    assert_eq!(row_keys(&past), [key(4), key(3), key(2), key(1), key(0)], "past the end of a search: its last page");
    assert_eq!(row_keys(&page(&app, "size=100").await).len(), 45);

    // Column headers link to the toggled sort, and the full page keeps the state in the URL.
    let html = page(&app, "sort=balance&dir=desc").await;
    assert!(html.contains("/admin/keys?sort=balance&amp;dir=asc"), "active column flips");
    assert!(html.contains("/admin/keys?sort=added&amp;dir=desc"), "another column starts descending");
    let full = app.get("/admin/keys?status=active&sort=balance&dir=asc&page=2").await.text().await.unwrap();
    assert!(full.starts_with("<!DOCTYPE html>") && full.contains(r#"<option value="active" selected>"#));
}

#[actix_web::test]
async fn select_all_matching_then_delete_in_one_go() {
    let app = support::spawn().await;
    app.login().await;
    import(&app, &(0..60).map(|i| key(i) + "\n").collect::<String>()).await;
    for i in 0..25 {
        set_key(&app, &key(i), "invalid", None, None).await;
    }
    let res = app.hx_post("/admin/keys/selection", &[("action", "select_all"), ("status", "invalid")]).await;
    let html = res.text().await.unwrap();
    assert!(html.contains("25 selected"), "every matching key across pages");
    assert_eq!(row_keys(&html).len(), 20, "only one page is rendered");

    // Unselect one row, select one more from another filter, then delete the selection.
    app.hx_post("/admin/keys/selection", &[("action", "unselect"), ("ids", "1")]).await;
    let html = app.hx_post("/admin/keys/selection", &[("action", "select"), ("ids", "60")]).await.text().await.unwrap();
    assert!(html.contains("25 selected"));
    let html = app.hx_post("/admin/keys/bulk", &[("action", "delete")]).await.text().await.unwrap();
    assert!(html.contains("25 keys deleted."), "{html}");
    assert_eq!(key_count(&app).await, 35);
    assert!(html.contains("35 keys") && html.contains("Invalid 1<"), "trigger-kept counts follow deletes: {html}");
    assert!(html.contains("0 selected"));

    // Delete all invalid: the one left unselected.
    let html = app.hx_post("/admin/keys/bulk", &[("action", "delete_invalid")]).await.text().await.unwrap();
    assert!(html.contains("1 keys deleted."), "{html}");
    assert_eq!(key_count(&app).await, 34);
}

#[actix_web::test]
async fn disable_and_enable_return_keys_to_their_state() {
    let app = support::spawn().await;
    app.login().await;
    import(&app, &format!("{}\n{}", key(1), key(2))).await;
    set_key(&app, &key(1), "active", Some(3.0), Some(1)).await;
    app.hx_post("/admin/keys/selection", &[("action", "select_all")]).await;
    let html = app.hx_post("/admin/keys/bulk", &[("action", "disable")]).await.text().await.unwrap();
    assert!(html.contains("2 keys disabled."));
    assert!(html.contains("Disabled 2<") && !html.contains("Active 1<"), "counts follow updates");
    assert_eq!(row_keys(&page(&app, "status=disabled").await).len(), 2);
    let html = app.hx_post("/admin/keys/1/enable", &[]).await.text().await.unwrap();
    assert!(html.contains("1 keys enabled."));
    assert_eq!(row_keys(&page(&app, "status=active").await), [key(1)], "back to active, not unchecked");
    app.hx_post("/admin/keys/bulk", &[("action", "enable")]).await;
    assert_eq!(row_keys(&page(&app, "status=unchecked").await), [key(2)]);
    let html = app.hx_post("/admin/keys/2/delete", &[]).await.text().await.unwrap();
    assert!(html.contains("1 keys deleted."));
    assert_eq!(key_count(&app).await, 1);
}

#[actix_web::test]
async fn exports_every_scope_content_and_separator_byte_for_byte() {
    let app = support::spawn().await;
    app.login().await;
    import(&app, &(1..=5).map(|i| key(i) + "\n").collect::<String>()).await;
    set_key(&app, &key(1), "active", Some(14.0), Some(1)).await;
    set_key(&app, &key(2), "active", Some(9.99), Some(1)).await;
    set_key(&app, &key(3), "depleted", Some(10.0), Some(1)).await;
    set_key(&app, &key(4), "invalid", Some(50.0), Some(1)).await;
    let export = |query: &'static str| {
        let client = app.client.clone();
        let url = app.url(&format!("/admin/keys/export?{query}"));
        async move {
            let res = client.get(url).send().await.unwrap();
            assert_eq!(res.status(), 200, "{query}");
            let name = header(&res, "content-disposition");
            (res.text().await.unwrap(), name)
        }
    };
    let (k1, k2, k3, k4, k5) = (key(1), key(2), key(3), key(4), key(5));
    let (body, name) = export("scope=all").await;
    assert_eq!(body, [&k1, &k2, &k3, &k4, &k5].map(|k| k.as_str()).join("\n"));
    assert!(name.starts_with("attachment; filename=\"keypool-all-keys-") && name.ends_with(".txt\""), "{name}");
    let (body, name) = export("scope=valid&sep=comma").await;
    assert_eq!(body, format!("{k1},{k2}"));
    assert!(name.contains("keypool-valid-keys-"));
    let (body, _) = export("scope=valid&sep=space&with_balance=1").await;
    assert_eq!(body, format!("{k1}|14 {k2}|9.99"));
    let (body, name) = export("scope=min_balance&with_balance=1&sep=semicolon").await;
    assert_eq!(body, format!("{k1}|14;{k3}|10"), "inclusive, not invalid keys");
    assert!(name.contains("keypool-balance-at-least-10-keys-with-balance-"), "{name}");
    let (body, _) = export("scope=min_balance&min_balance=9.99&sep=tab").await;
    assert_eq!(body, format!("{k1}\t{k2}\t{k3}"));
    let (body, _) = export("scope=all&sep=%20%7C%20&with_balance=1").await;
    assert_eq!(
        body,
        format!("{k1}|14 | {k2}|9.99 | {k3}|10 | {k4}|50 | {k5}"),
        "custom separator; unchecked keys stay bare"
    );
    let (body, _) = export("scope=all&sep=custom&custom_sep=%2F%2F").await;
    assert_eq!(body, [&k1, &k2, &k3, &k4, &k5].map(|k| k.as_str()).join("//"), "the page's custom field");
    app.hx_post("/admin/keys/selection", &[("action", "select"), ("ids", "5,3")]).await;
    let (body, name) = export("scope=selection&sep=newline").await;
    assert_eq!(body, format!("{k3}\n{k5}"));
    assert!(name.contains("keypool-selected-keys-"));

    let res = app
        .client
        .get(app.url("/admin/keys/export?scope=all&sep=0123456789X"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app.client.get(app.url("/admin/keys/export?scope=everything")).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[actix_web::test]
async fn empty_pool_says_so() {
    let app = support::spawn().await;
    app.login().await;
    let html = app.get("/admin/keys").await.text().await.unwrap();
    assert!(html.contains("No keys yet"));
    let res = app.get("/admin/keys/export?scope=all").await;
    assert_eq!(res.status(), 422, "an empty export is refused, not an empty file");
    assert!(res.text().await.unwrap().contains("No key matches this export."));
}

/// `GET path` as the given language, optionally as the page's script asks (`HX-Request`).
async fn get_in(app: &TestApp, path: &str, lang: &str, hx: bool) -> reqwest::Response {
    let mut req = app.client.get(app.url(path)).header("accept-language", lang);
    if hx {
        req = req.header("hx-request", "true");
    }
    req.send().await.unwrap()
}

#[actix_web::test]
async fn an_empty_export_scope_is_refused_with_a_message_in_both_languages_and_a_full_one_counted() {
    let app = support::spawn().await;
    app.login().await;
    import(&app, &(1..=3).map(|i| key(i) + "\n").collect::<String>()).await;
    for (lang, selection, nothing) in [
        ("en", "Select the keys to export first.", "No key matches this export."),
        ("zh-CN", "请先选择要导出的密钥", "没有符合条件的密钥可导出"),
    ] {
        // Without script: a page with the message and a way back, never a 0-byte download.
        let res = get_in(&app, "/admin/keys/export?scope=selection", lang, false).await;
        assert_eq!(res.status(), 422, "{lang}");
        assert!(res.headers().get("content-disposition").is_none(), "no download");
        let body = res.text().await.unwrap();
        assert!(body.contains(selection) && body.contains("href=\"/admin/keys\""), "{lang}: {body}");
        // The page's script (copy) gets the message alone.
        let res = get_in(&app, "/admin/keys/export?scope=selection", lang, true).await;
        assert_eq!(res.status(), 422);
        let body = res.text().await.unwrap();
        assert!(body.contains(selection) && !body.contains("<html"), "{lang}: {body}");
        // Before a download, the count: refused with the message.
        let res = get_in(&app, "/admin/keys/export/count?scope=selection", lang, false).await;
        assert_eq!(res.status(), 422);
        let json: serde_json::Value = res.json().await.unwrap();
        assert_eq!(json, serde_json::json!({ "count": 0, "message": selection }), "{lang}");
        // Another empty scope: no active key yet.
        let res = get_in(&app, "/admin/keys/export/count?scope=valid", lang, false).await;
        assert_eq!(res.status(), 422);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["message"], nothing, "{lang}");
        let res = get_in(&app, "/admin/keys/export?scope=valid&sep=comma", lang, true).await;
        assert_eq!(res.status(), 422);
        assert!(res.text().await.unwrap().contains(nothing), "{lang}");
    }
    // Two selected: the count, and the download with its count in a header.
    app.hx_post("/admin/keys/selection", &[("action", "select"), ("ids", "1,3")]).await;
    let res = app.get("/admin/keys/export/count?scope=selection").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap(), serde_json::json!({ "count": 2, "message": null }));
    let res = app.get("/admin/keys/export?scope=selection&sep=comma").await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-export-count"), "2");
    assert_eq!(res.text().await.unwrap(), format!("{},{}", key(1), key(3)));
    // A malformed request is still a 400, not a count.
    let res = app.get("/admin/keys/export/count?scope=everything").await;
    assert_eq!(res.status(), 400);
}

async fn page_en(app: &TestApp, query: &str) -> String {
    get_in(app, &format!("/admin/keys?{query}"), "en", true).await.text().await.unwrap()
}

/// Sets a key's last error, as a check that failed transiently (or a refused one) leaves it.
async fn set_last_error(app: &TestApp, k: &str, error: &str) {
    let (k, error) = (k.to_owned(), error.to_owned());
    support::with_db(app, move |c| {
        diesel::sql_query("UPDATE keys SET last_error = $1 WHERE key = $2")
            .bind::<Text, _>(error)
            .bind::<Text, _>(k)
            .execute(c)
            .unwrap()
    })
    .await;
}

#[actix_web::test]
async fn keys_whose_check_failed_transiently_have_their_own_state_filter_and_readable_reason() {
    let app = support::spawn().await;
    app.login().await;
    import(&app, &(1..=4).map(|i| key(i) + "\n").collect::<String>()).await;
    set_last_error(&app, &key(1), "upstream answered 503").await;
    set_last_error(&app, &key(2), "timed out after 10 s").await;
    set_key(&app, &key(3), "active", Some(5.0), Some(1)).await;
    set_last_error(&app, &key(3), "upstream answered 429").await;

    // Counts: never-checked and failed apart, each a filter link carrying the state in the URL.
    let all = page_en(&app, "").await;
    assert!(all.contains("Unchecked 1") && all.contains("Check failed 2") && all.contains("Active 1"), "{all}");
    assert!(all.contains("status=check_failed"), "the badge links the filter");
    // Each failed row reads "check failed" with its reason in a details element (a tap opens it).
    assert!(all.contains("<details class=\"state-reason\">"), "{all}");
    assert!(all.contains("upstream answered 503") && all.contains("timed out after 10 s"));

    let failed = page_en(&app, "status=check_failed").await;
    let mut rows = row_keys(&failed);
    rows.sort();
    assert_eq!(rows, [key(1), key(2)], "only the unchecked keys whose check failed");
    assert!(
        failed.contains("status-check_failed") && !failed.contains("<span class=\"badge status-unchecked\">"),
        "{failed}"
    );
    assert!(failed.contains("value=\"check_failed\" selected"), "the select follows the URL");
    assert!(failed.contains("name=\"status\" value=\"check_failed\""), "bulk actions keep the filter");
    assert!(failed.contains("Select all 2 matching"), "{failed}");

    assert_eq!(row_keys(&page_en(&app, "status=unchecked").await), [key(4)], "never checked only");
    assert_eq!(row_keys(&page_en(&app, "status=active").await), [key(3)], "an active key stays active");

    // Select every matching key under the filter: the two failed ones.
    let res = app
        .hx_post("/admin/keys/selection", &[("action", "select_all"), ("status", "check_failed")])
        .await
        .text()
        .await
        .unwrap();
    assert!(res.contains("2 selected"), "{res}");

    // A successful check clears the error: the key leaves the filter.
    support::with_db(&app, |c| {
        diesel::sql_query("UPDATE keys SET last_error = NULL, status = 'active' WHERE key = $1")
            .bind::<Text, _>(key(1))
            .execute(c)
            .unwrap()
    })
    .await;
    assert_eq!(row_keys(&page_en(&app, "status=check_failed").await), [key(2)]);
    let zh = get_in(&app, "/admin/keys?status=check_failed", "zh-CN", true).await.text().await.unwrap();
    assert!(zh.contains("检测失败"), "{zh}");
}

/// Polls until the current check job has finished.
async fn check_finished(app: &TestApp) -> keypool::checker::Progress {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(p) = app.state.checker.current().map(|j| j.progress())
            && !p.running
        {
            return p;
        }
        assert!(std::time::Instant::now() < deadline, "the job did not finish");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn a_real_transient_check_failure_is_filtered_and_checking_the_filter_retries_only_those_keys() {
    let upstream = crate::mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    app.login().await;
    let (ok, flaky, bad) = ("sk-ok-5-aaaaaaaaaaaaaaaaaa", "sk-err500-bbbbbbbbbbbbbbbbb", "sk-invalid-cccccccccccccccc");
    import(&app, &format!("{ok}\n{flaky}\n{bad}")).await;
    let fast = [("interval_secs", "0"), ("retries", "0"), ("concurrency", "8")];
    let form = |scope: &'static str, status: Option<&'static str>| {
        let mut form = vec![("scope", scope)];
        form.extend_from_slice(&fast);
        form.extend(status.map(|s| ("status", s)));
        form
    };
    app.hx_post("/admin/checks", &form("all", None)).await;
    assert_eq!(check_finished(&app).await.total, 3);

    // The 500 left the key unchecked with its reason: "check failed", apart from the refused key.
    let all = page_en(&app, "").await;
    assert!(all.contains("Check failed 1") && all.contains("Active 1") && all.contains("Invalid 1"), "{all}");
    assert!(!all.contains("Unchecked "), "no key is merely unchecked now");
    assert_eq!(row_keys(&page_en(&app, "status=check_failed").await), [flaky]);

    // "Check all matching" on the filter retries only that key.
    app.hx_post("/admin/checks", &form("matching", Some("check_failed"))).await;
    assert_eq!(check_finished(&app).await.total, 1);
    assert_eq!(upstream.hits.of(flaky), 2);
    assert_eq!(upstream.hits.of(ok), 1);
}

#[actix_web::test]
async fn key_detail_has_actions_and_a_way_back_to_the_list_as_filtered() {
    let app = support::spawn().await;
    app.login().await;
    import(&app, &format!("{}\n{}", key(1), key(2))).await;
    let list = page(&app, "status=unchecked&q=000&size=50&page=1").await;
    assert!(list.contains("href=\"/admin/keys/1?status=unchecked&amp;q=000"), "the detail link carries the filter");
    let detail = app.get("/admin/keys/1?status=unchecked&q=000&size=50").await.text().await.unwrap();
    let back =
        "id=\"back-to-list\" href=\"/admin/keys?status=unchecked&amp;q=000&amp;sort=added&amp;dir=desc&amp;size=50\"";
    assert!(detail.contains(back), "{detail}");
    for action in [
        "/admin/keys/1/disable",
        "/admin/keys/1/delete",
        "id=\"detail-check\"",
        "id=\"detail-copy\"",
        "id=\"check-panel\"",
    ] {
        assert!(detail.contains(action), "{action}");
    }
    assert!(detail.contains("hx-confirm=\"Delete this key? This cannot be undone.\""));
    let form = [("from", "detail"), ("status", "unchecked"), ("q", "000"), ("size", "50")];
    let res = app.hx_post("/admin/keys/1/disable", &form).await;
    assert_eq!(header(&res, "hx-redirect"), "/admin/keys/1?status=unchecked&q=000&sort=added&dir=desc&size=50");
    let detail = app.get("/admin/keys/1").await.text().await.unwrap();
    assert!(detail.contains("/admin/keys/1/enable") && !detail.contains("/admin/keys/1/disable"));
    // Without script: a plain redirect.
    let res = app.post_form("/admin/keys/1/enable", &form).await;
    assert_eq!(res.status(), 303);
    assert_eq!(support::location(&res), "/admin/keys/1?status=unchecked&q=000&sort=added&dir=desc&size=50");
    let res = app.hx_post("/admin/keys/1/delete", &form).await;
    assert_eq!(header(&res, "hx-redirect"), "/admin/keys?status=unchecked&q=000&sort=added&dir=desc&size=50");
    assert_eq!(key_count(&app).await, 1);
    assert_eq!(app.get("/admin/keys/1").await.status(), 404);
    // The keys page's "check all" asks first, with the count and a time estimate.
    let html = app.get("/admin/keys").await.text().await.unwrap();
    assert!(html.contains("hx-confirm=\"Check all 1 keys now? It takes about 2 s.\""), "{html}");
}

#[actix_web::test]
async fn backticks_in_help_texts_render_as_code() {
    let app = support::spawn().await;
    app.login().await;
    for (path, code) in [
        ("/docs", "<code>Authorization: Bearer YOUR_ACCESS_KEY</code>"),
        ("/admin/settings", "<code>Authorization: Bearer …</code>"),
    ] {
        for lang in ["en", "zh-CN"] {
            let html = app
                .client
                .get(app.url(path))
                .header("accept-language", lang)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(html.contains(code), "{path} {lang}");
            assert!(!html.contains("`Authorization"), "{path} {lang}: no raw backticks");
        }
    }
}

#[test]
fn code_spans_turn_paired_backticks_into_escaped_code_and_leave_a_lone_one() {
    use keypool::views::components::code_spans;
    assert_eq!(code_spans("use `a<b` now").into_string(), "use <code>a&lt;b</code> now");
    assert_eq!(code_spans("`x` and `y`").into_string(), "<code>x</code> and <code>y</code>");
    assert_eq!(code_spans("a ` b").into_string(), "a ` b");
    assert_eq!(code_spans("`x` and ` y").into_string(), "<code>x</code> and ` y");
    assert_eq!(code_spans("none").into_string(), "none");
}
