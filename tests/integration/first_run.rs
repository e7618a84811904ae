//! A new user's first steps: the dashboard's checklist ticking through (keys, a check, an access key),
//! the generated-password nudge, "check all keys" with its confirmation, the login lockout as a form,
//! and `GET /v1/user/info` answering for the pool.

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;

use crate::mock;
use crate::support::{self, ADMIN_PASSWORD, ADMIN_USER, Gateway, TestApp};

async fn dashboard(app: &TestApp, lang: &str) -> String {
    let res = app.client.get(app.url("/admin")).header("accept-language", lang).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// Whether the checklist's step `name` is ticked in `body` (`None`: no such step shown).
fn ticked(body: &str, name: &str) -> Option<bool> {
    let at = body.find(&format!("id=\"step-{name}\""))?;
    let tag = &body[body[..at].rfind('<')?..at + body[at..].find('>')?];
    Some(tag.contains("data-done=\"true\""))
}

async fn finished(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.state.checker.current().is_none_or(|j| j.progress().running) {
        assert!(Instant::now() < deadline, "the job did not finish");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn the_checklist_ticks_as_keys_a_check_and_an_access_key_appear_in_both_languages() {
    let upstream = mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    app.login().await;

    let en = dashboard(&app, "en").await;
    assert!(en.contains("Get started"), "{en}");
    assert!(!en.contains("paste some above"), "the old text that pointed to nothing is gone");
    assert!(en.contains("href=\"/admin/keys\""));
    assert!(en.contains("href=\"/admin/settings#access-keys\""));
    assert!(en.contains(&format!("base_url=&quot;{}/v1&quot;", app.base)), "the Python snippet uses the real base URL");
    assert!(en.contains(&format!("curl {}/v1/chat/completions", app.base)));
    for step in ["keys", "check", "access", "sdk"] {
        assert_eq!(ticked(&en, step), Some(false), "{step} not done yet");
    }
    assert!(en.contains("id=\"check-all\"") && en.contains("disabled"), "nothing to check yet");
    let zh = dashboard(&app, "zh-CN").await;
    assert!(zh.contains("开始使用") && zh.contains("添加硅基流动密钥") && zh.contains("创建访问密钥"), "{zh}");
    assert!(!zh.contains("Get started"));

    let res = app
        .hx_post("/admin/keys/import", &[("keys", "sk-ok-12-aaaaaaaaaaaaaaaaaaaa\nsk-ok-3-bbbbbbbbbbbbbbbbbbbbb")])
        .await;
    assert_eq!(res.status(), 200);
    let en = dashboard(&app, "en").await;
    assert_eq!(ticked(&en, "keys"), Some(true));
    assert_eq!(ticked(&en, "check"), Some(false));
    assert!(en.contains("Check all 2 keys now? It takes about 2 s."), "the confirmation names the count and time");

    // "Check all keys" posts the existing check endpoint with scope=all.
    let res = app.hx_post("/admin/checks", &[("scope", "all")]).await;
    assert_eq!(res.status(), 200);
    finished(&app).await;
    let zh = dashboard(&app, "zh-CN").await;
    assert_eq!(ticked(&zh, "keys"), Some(true));
    assert_eq!(ticked(&zh, "check"), Some(true));
    assert_eq!(ticked(&zh, "access"), Some(false));
    assert!(zh.contains("现在检测全部 2 个密钥？约需 2 秒。"), "{zh}");

    let res = app.hx_post("/admin/access-keys", &[("name", "laptop")]).await;
    assert_eq!(res.status(), 200);
    for lang in ["en", "zh-CN"] {
        let body = dashboard(&app, lang).await;
        assert_eq!(ticked(&body, "keys"), None, "the checklist is gone once keys and an access key exist");
        assert!(!body.contains("id=\"first-run\""));
        assert!(body.contains("id=\"check-all\""), "the check-all button stays");
    }
}

#[actix_web::test]
async fn a_generated_admin_password_is_remembered_and_the_nudge_ends_when_it_changes() {
    // A first start without KEYPOOL_ADMIN_PASSWORD remembers the generated password's hash.
    let generated = support::spawn_with(|c| c.admin_password = None).await;
    let (hash, stored) = support::with_db(&generated, |c| {
        let admin = keypool::db::admins::first(c).unwrap().unwrap();
        let stored = keypool::db::settings::get(c, keypool::db::admins::GENERATED_PASSWORD_SETTING).unwrap();
        (admin.password_hash, stored)
    })
    .await;
    assert_eq!(stored.as_deref(), Some(hash.as_str()));

    // A password from the environment is not nagged about.
    let app = support::spawn().await;
    app.login().await;
    assert!(!dashboard(&app, "en").await.contains("password-nudge"));
    // As if generated: the nudge shows, in both languages, and links to the account section.
    support::with_db(&app, |c| {
        let admin = keypool::db::admins::first(c).unwrap().unwrap();
        let row = [(keypool::db::admins::GENERATED_PASSWORD_SETTING.to_owned(), admin.password_hash)];
        keypool::db::settings::put_many(c, &row, 1).unwrap();
    })
    .await;
    let en = dashboard(&app, "en").await;
    assert!(en.contains("id=\"password-nudge\"") && en.contains("generated at the first start"), "{en}");
    assert!(en.contains("href=\"/admin/settings#account\""));
    assert!(dashboard(&app, "zh-CN").await.contains("首次启动时生成的管理员密码"));

    let form = [
        ("username", ADMIN_USER),
        ("current_password", ADMIN_PASSWORD),
        ("new_password", "a-brand-new-password"),
        ("confirm_password", "a-brand-new-password"),
    ];
    let res = app.post_form("/admin/settings/account", &form).await;
    assert!(res.status().is_success() || res.status().is_redirection(), "{}", res.status());
    app.login_with(&app.client, ADMIN_USER, "a-brand-new-password").await;
    assert!(!dashboard(&app, "en").await.contains("password-nudge"), "changed: no nudge");
}

#[actix_web::test]
async fn the_login_lockout_shows_the_form_again_with_when_to_retry() {
    let app = support::spawn().await;
    for _ in 0..5 {
        assert_eq!(app.login_with(&app.client, ADMIN_USER, "nope-nope").await.status(), 401);
    }
    let res = app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert_eq!(support::header(&res, "retry-after"), "300");
    let body = res.text().await.unwrap();
    assert!(body.contains("form method=\"post\" action=\"/login\""), "the form again: {body}");
    assert!(body.contains("Try again in 300 seconds (about 5 min)."), "{body}");
    assert!(body.contains(&format!("value=\"{ADMIN_USER}\"")), "the username is kept");

    app.clock.advance(Duration::from_secs(200));
    let res = app
        .client
        .post(app.url("/login"))
        .header("accept-language", "zh-CN")
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let body = res.text().await.unwrap();
    assert!(body.contains("请在 100 秒（约 2 分钟）后重试") && body.contains("action=\"/login\""), "{body}");
}

#[actix_web::test]
async fn user_info_answers_the_pools_balance_in_siliconflows_shape() {
    let gw = Gateway::start(&[]).await;
    let ids = support::seed_active(
        &gw.app,
        &[
            ("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.5),
            ("sk-ok-2-bbbbbbbbbbbbbbbbbbbbb", 4.25),
            ("sk-ok-3-ccccccccccccccccccccc", 500.0),
        ],
    )
    .await;
    let (charged, dead) = (ids[0], ids[2]);
    support::with_db(&gw.app, move |c| {
        diesel::sql_query("UPDATE keys SET charge_balance = 6.5, gift_balance = 4.0 WHERE id = $1")
            .bind::<diesel::sql_types::BigInt, _>(charged)
            .execute(c)
            .unwrap();
        diesel::sql_query("UPDATE keys SET charge_balance = 0, gift_balance = 4.25 WHERE id <> $1")
            .bind::<diesel::sql_types::BigInt, _>(charged)
            .execute(c)
            .unwrap();
        // Not routable: not part of the pool's balance.
        diesel::sql_query("UPDATE keys SET status = 'invalid' WHERE id = $1")
            .bind::<diesel::sql_types::BigInt, _>(dead)
            .execute(c)
            .unwrap();
    })
    .await;
    support::reload_pool(&gw.app).await;
    let before = gw.upstream.received();

    let http = reqwest::Client::new();
    let url = gw.app.url("/v1/user/info");
    let res = http.get(&url).bearer_auth(&gw.token).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let info: serde_json::Value = res.json().await.unwrap();
    assert_eq!(info["code"], 20000);
    assert_eq!(info["message"], "OK");
    assert_eq!(info["status"], true);
    assert_eq!(info["data"]["totalBalance"], "14.7500", "the pool's total, not one key's: {info}");
    assert_eq!(info["data"]["chargeBalance"], "6.5000");
    assert_eq!(info["data"]["balance"], "8.2500");
    assert_eq!(info["data"]["status"], "normal");
    assert_eq!(gw.upstream.received(), before, "answered locally, never forwarded");

    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401, "refused without an access key");
    let res = http.get(&url).bearer_auth("kp-not-a-real-access-key").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let docs = gw.app.get("/docs").await.text().await.unwrap();
    assert!(docs.contains("/v1/user/info"), "listed among the endpoints on the API docs page");
}
