//! The settings page (validation, saving, secrets never shown), the account form, access keys and
//! the `/v1` authentication that uses them, plus the small system routes.

use keypool::domain::proxy::{CorsOrigins, SelectionStrategy};
use keypool::domain::settings::{AccessMode, Settings};

use crate::support::{self, ADMIN_PASSWORD, TestApp, header};

async fn stored_settings(app: &TestApp) -> Settings {
    support::with_db(app, |c| Settings::from_stored(&keypool::db::settings::load_all(c).unwrap())).await
}

fn system_form<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("access_mode", "private"),
        ("guest_password", ""),
        ("guest_page_size", "12"),
        ("upstream_url", "https://api.siliconflow.cn"),
    ];
    for (k, v) in overrides {
        form.retain(|(name, _)| name != k);
        form.push((k, v));
    }
    form
}

#[actix_web::test]
async fn defaults_are_private_and_shown_on_the_page() {
    let app = support::spawn_with(|c| c.upstream_override = None).await;
    app.login().await;
    let body = app.get("/admin/settings").await.text().await.unwrap();
    assert!(body.contains(r#"value="private" checked"#), "private is the default");
    assert!(body.contains(r#"name="guest_page_size" type="number" min="1" max="100" value="12""#));
    assert!(body.contains("https://api.siliconflow.cn"));
}

#[actix_web::test]
async fn invalid_settings_save_nothing_and_say_why_next_to_the_field() {
    let app = support::spawn().await;
    app.login().await;
    let before = stored_settings(&app).await;
    let cases: [(&[(&str, &str)], &str, &str); 5] = [
        (&[("access_mode", "public")], "access_mode", "Choose one of: open, restricted, private."),
        (&[("guest_page_size", "0")], "guest_page_size", "Enter a whole number from 1 to 100."),
        (
            &[("guest_page_size", "101"), ("access_mode", "open")],
            "guest_page_size",
            "Enter a whole number from 1 to 100.",
        ),
        (&[("upstream_url", "ftp://mirror")], "upstream_url", "Enter an http:// or https:// address"),
        (&[("access_mode", "restricted")], "guest_password", "Restricted mode needs a guest password"),
    ];
    for (overrides, field, message) in cases {
        let res = app.hx_post("/admin/settings", &system_form(overrides)).await;
        assert_eq!(res.status(), 422, "{overrides:?}");
        let body = res.text().await.unwrap();
        let at = body.find(&format!(r#"id="error-{field}""#)).unwrap_or_else(|| panic!("no error for {field}: {body}"));
        assert!(body[at..].contains(message), "{field}: {body}");
        assert!(body.contains("Nothing was saved"));
        assert!(body.starts_with("<section"), "htmx gets the section fragment");
        assert_eq!(stored_settings(&app).await, before, "{overrides:?} saved nothing");
    }
}

#[actix_web::test]
async fn valid_settings_are_saved_and_the_guest_password_never_shown() {
    let app = support::spawn().await;
    app.login().await;
    let res = app
        .hx_post(
            "/admin/settings",
            &system_form(&[
                ("access_mode", "restricted"),
                ("guest_password", "friends-only"),
                ("guest_page_size", "30"),
                ("upstream_url", "http://127.0.0.1:9/"),
                ("client_request_mode", "on"),
            ]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Settings saved."));
    let s = stored_settings(&app).await;
    assert_eq!(s.access_mode, AccessMode::Restricted);
    assert_eq!(s.guest_page_size, 30);
    assert_eq!(s.upstream_url, "http://127.0.0.1:9");
    assert!(s.client_request_mode);
    let hash = s.guest_password_hash.clone().unwrap();
    assert!(hash.starts_with("$argon2id$"), "hashed");

    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(!page.contains("friends-only") && !page.contains(&hash), "secret not rendered back");
    assert!(page.contains("Set (hidden); leave blank to keep it"));

    // Blank keeps the old password; unchecking the checkbox turns the mode off.
    let res = app.hx_post("/admin/settings", &system_form(&[("access_mode", "restricted")])).await;
    assert_eq!(res.status(), 200);
    let s2 = stored_settings(&app).await;
    assert_eq!(s2.guest_password_hash.as_deref(), Some(hash.as_str()));
    assert!(!s2.client_request_mode);
    assert_eq!(s2.guest_epoch, s.guest_epoch, "nothing about guests changed");

    // Changing the mode moves the guest epoch (ends guest sessions).
    app.hx_post("/admin/settings", &system_form(&[("access_mode", "open")])).await;
    assert_eq!(stored_settings(&app).await.guest_epoch, s.guest_epoch + 1);
}

#[actix_web::test]
async fn plain_form_posts_get_the_whole_page() {
    let app = support::spawn().await;
    app.login().await;
    let res = app.post_form("/admin/settings", &system_form(&[("guest_page_size", "abc")])).await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.starts_with("<!DOCTYPE html>") && body.contains(r#"value="abc""#), "keeps what was typed");
}

#[actix_web::test]
async fn upstream_override_is_shown() {
    let app = support::spawn_with(|c| c.upstream_override = Some("http://127.0.0.1:4010".into())).await;
    app.login().await;
    let body = app.get("/admin/settings").await.text().await.unwrap();
    assert!(body.contains("KEYPOOL_UPSTREAM_URL is set and wins over this value: http://127.0.0.1:4010"));
}

#[actix_web::test]
async fn account_form_validates_every_field() {
    let app = support::spawn().await;
    app.login().await;
    let cases: [(&[(&str, &str)], &str, &str); 4] = [
        (&[("username", "admin"), ("current_password", "wrong")], "current_password", "The current password is wrong."),
        (
            &[
                ("username", "admin"),
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "short"),
                ("confirm_password", "short"),
            ],
            "new_password",
            "Use at least 8 characters.",
        ),
        (
            &[
                ("username", "admin"),
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "long-enough-1"),
                ("confirm_password", "long-enough-2"),
            ],
            "confirm_password",
            "The two passwords differ.",
        ),
        (&[("username", "two words"), ("current_password", ADMIN_PASSWORD)], "username", "without spaces"),
    ];
    for (form, field, message) in cases {
        let res = app.hx_post("/admin/settings/account", form).await;
        assert_eq!(res.status(), 422, "{form:?}");
        let body = res.text().await.unwrap();
        let at = body.find(&format!(r#"id="error-{field}""#)).unwrap_or_else(|| panic!("no error for {field}: {body}"));
        assert!(body[at..].contains(message), "{body}");
    }
    // Nothing changed: the original credentials still work.
    let fresh = support::new_client();
    assert_eq!(app.login_with(&fresh, "admin", ADMIN_PASSWORD).await.status(), 303);
}

#[actix_web::test]
async fn access_keys_are_created_shown_once_used_and_revoked() {
    let app = support::spawn().await;
    app.login().await;

    let res = app.hx_post("/admin/access-keys", &[("name", "team laptop")]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let start = body.find(r#"<code id="new-token">"#).expect("token shown") + r#"<code id="new-token">"#.len();
    let token = body[start..start + 43].to_owned();
    assert!(token.starts_with("kp-"), "{token}");

    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains("team laptop") && !page.contains(&token), "listed, token never shown again");
    assert!(page.contains("never"), "not used yet");

    let v1 = |auth: Option<String>| {
        let mut req = app.client.post(app.url("/v1/chat/completions")).body("{}");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    let res = v1(None).await.unwrap();
    assert_eq!(res.status(), 401);
    let json: serde_json::Value = res.json().await.unwrap();
    assert_eq!(json["error"]["code"], "missing_api_key");
    assert!(json["error"]["message"].is_string() && json["error"]["type"].is_string());

    let res = v1(Some("Bearer kp-not-a-real-key".into())).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "invalid_api_key");

    for auth in [format!("Bearer {token}"), token.clone()] {
        let res = v1(Some(auth)).await.unwrap();
        assert_eq!(res.status(), 503, "authenticated; no upstream key yet");
        assert_eq!(header(&res, "retry-after"), "30");
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "no_available_key");
    }

    support::flush_outcomes(&app).await;
    let keys = support::with_db(&app, |c| keypool::db::access_keys::list(c).unwrap()).await;
    assert!(keys[0].last_used_at.is_some(), "last use recorded");
    assert_ne!(keys[0].token_hash, token, "only a hash is stored");

    let res = app.hx_post("/admin/access-keys", &[("name", "team laptop")]).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("already exists"));
    let res = app.hx_post("/admin/access-keys", &[("name", "   ")]).await;
    assert_eq!(res.status(), 422);

    let id = keys[0].id;
    let res = app.hx_post(&format!("/admin/access-keys/{id}/revoke"), &[]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Access key revoked."));
    assert_eq!(v1(Some(format!("Bearer {token}"))).await.unwrap().status(), 401, "revoked keys stop working at once");
}

#[actix_web::test]
async fn health_assets_language_and_pages() {
    let app = support::spawn().await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);

    let res = app.get(keypool::views::layout::HTMX_PATH).await;
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").contains("javascript"));
    let etag = header(&res, "etag");
    assert!(!etag.is_empty());
    let res =
        app.client.get(app.url(keypool::views::layout::HTMX_PATH)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(app.get("/assets/nope.js").await.status(), 404);

    // Chinese by default, English by header, the switch kept in a cookie.
    let zh = support::new_client().get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    assert!(zh.contains(r#"<html lang="zh-CN">"#) && zh.contains("登录"));
    let res = app.client.get(app.url("/lang/zh-CN?next=/docs")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(crate::support::location(&res), "/docs");
    let body = app.get("/docs").await.text().await.unwrap();
    assert!(body.contains("API 文档"), "cookie wins over Accept-Language");

    assert_eq!(app.get("/docs").await.status(), 200);
    assert_eq!(app.get("/").await.status(), 403, "the guest page is private until the admin opens it");
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("页面不存在"), "in the language chosen above");
    assert_eq!(app.get("/metrics").await.status(), 401, "metrics are private by default");
    app.login().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("keypool_database_up 1"));
}

#[actix_web::test]
async fn malformed_input_gets_a_localised_error_page() {
    let app = support::spawn().await;
    app.login().await;
    let res = app
        .client
        .post(app.url("/admin/settings"))
        .header("content-type", "application/json")
        .header("accept-language", "zh-CN")
        .body("{\"access_mode\": \"open\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("无法理解该请求"), "Chinese error page");
    let res = app.client.get(app.url("/admin/keys/abc/delete")).header("accept-language", "en").send().await.unwrap();
    assert_eq!(res.status(), 405, "GET on a POST route");
    let res = app.client.post(app.url("/admin/keys/abc/delete")).header("accept-language", "en").send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("does not exist"));
}

/// Each case (gateway form overrides, field, message) is answered 422 with its message next to the
/// field, and the stored settings stay `before`.
async fn refused_with_nothing_saved(app: &TestApp, before: &Settings, cases: &[(&[(&str, &str)], &str, &str)]) {
    for (overrides, field, message) in cases {
        let res = app.hx_post("/admin/settings", &gateway_form(overrides)).await;
        assert_eq!(res.status(), 422, "{overrides:?}");
        let body = res.text().await.unwrap();
        let at = body.find(&format!(r#"id="error-{field}""#)).unwrap_or_else(|| panic!("no error for {field}: {body}"));
        assert!(body[at..].contains(message), "{field}: {body}");
        assert!(body.contains("Nothing was saved"));
        assert_eq!(&stored_settings(app).await, before, "{overrides:?} saved nothing");
    }
}

/// The system form with every gateway field, as the page posts it.
fn gateway_form<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = system_form(&[]);
    form.extend([
        ("selection_strategy", "weighted"),
        ("max_attempts", "3"),
        ("max_body_mb", "32"),
        ("connect_timeout_s", "10"),
        ("first_byte_timeout_s", "300"),
        ("idle_timeout_s", "120"),
        ("cooldown_s", "60"),
        ("incident_min_keys", "5"),
        ("incident_failure_pct", "90"),
        ("request_log_retention_days", "7"),
        ("cors_origins", "*"),
        ("free_models", "Qwen/Qwen2.5-7B-Instruct\nQwen/Qwen3-8B"),
        ("upstream_utc_offset", "UTC+8"),
        ("metrics_token", ""),
    ]);
    for (k, v) in overrides {
        form.retain(|(name, _)| name != k);
        form.push((k, v));
    }
    form
}

#[actix_web::test]
async fn gateway_settings_are_saved_and_reach_the_proxy_at_once() {
    let app = support::spawn().await;
    app.login().await;
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains(r#"<option value="weighted" selected>"#), "the default strategy");
    assert!(page.contains(r#"name="max_attempts" type="number" min="1" max="10" value="3""#), "{page}");
    assert!(page.contains(r#"name="request_log_retention_days" type="number" min="1" max="365" value="7""#));
    assert!(page.contains("Gateway (/v1)") && page.contains("Weighted by balance"));

    let res = app
        .hx_post(
            "/admin/settings",
            &gateway_form(&[
                ("selection_strategy", "least_inflight"),
                ("max_attempts", "5"),
                ("max_body_mb", "64"),
                ("connect_timeout_s", "7"),
                ("first_byte_timeout_s", "900"),
                ("idle_timeout_s", "45"),
                ("cooldown_s", "90"),
                ("request_log_retention_days", "30"),
                ("cors_origins", "https://chat.example.com, http://localhost:3000/"),
                ("metrics_public", "on"),
            ]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Settings saved."));
    assert!(body.contains(r#"<option value="least_inflight" selected>"#), "the saved values are shown");
    assert!(body.contains(r#"value="https://chat.example.com, http://localhost:3000""#));

    let runtime = app.state.pool.runtime();
    let proxy = &runtime.settings.proxy;
    assert_eq!(proxy.selection_strategy, SelectionStrategy::LeastInflight, "the proxy sees it right away");
    assert_eq!(
        (
            proxy.max_attempts,
            proxy.max_body_mb,
            proxy.connect_timeout_s,
            proxy.first_byte_timeout_s,
            proxy.idle_timeout_s,
            proxy.cooldown_s,
            proxy.request_log_retention_days
        ),
        (5, 64, 7, 900, 45, 90, 30)
    );
    let origins = CorsOrigins::List(vec!["https://chat.example.com".into(), "http://localhost:3000".into()]);
    assert_eq!(proxy.cors_origins, origins);
    assert!(runtime.settings.metrics_public);
    let stored = stored_settings(&app).await;
    assert_eq!(stored.proxy, *proxy, "stored as the proxy has it");
    assert!(stored.metrics_public);

    // An unchecked box saves as off; the other gateway fields keep what was posted.
    let res = app.hx_post("/admin/settings", &gateway_form(&[("max_attempts", "5")])).await;
    assert_eq!(res.status(), 200);
    let runtime = app.state.pool.runtime();
    assert!(!runtime.settings.metrics_public);
    assert_eq!(runtime.settings.proxy.selection_strategy, SelectionStrategy::Weighted);
    assert_eq!(runtime.settings.proxy.cors_origins, CorsOrigins::Any);

    // A form without the gateway fields (an older page) leaves them as they are.
    let before = stored_settings(&app).await.proxy;
    assert_eq!(app.hx_post("/admin/settings", &system_form(&[])).await.status(), 200);
    assert_eq!(stored_settings(&app).await.proxy, before);
}

#[actix_web::test]
async fn invalid_gateway_settings_save_nothing_and_say_why_next_to_the_field() {
    let app = support::spawn().await;
    app.login().await;
    let before = stored_settings(&app).await;
    let cases: [(&[(&str, &str)], &str, &str); 5] = [
        (&[("max_attempts", "0")], "max_attempts", "Enter a whole number from 1 to 10."),
        (&[("max_body_mb", "2048")], "max_body_mb", "Enter a whole number from 1 to 1024."),
        (&[("cors_origins", "not a url")], "cors_origins", "Not an origin: not."),
        (&[("metrics_token", "short")], "metrics_token", "The token must be 16 to 200"),
        (
            &[("selection_strategy", "fastest")],
            "selection_strategy",
            "Choose one of: random, weighted, round_robin, least_inflight.",
        ),
    ];
    refused_with_nothing_saved(&app, &before, &cases).await;
    // All at once: every field says what is wrong, and what was typed stays (but never the token).
    let res = app
        .post_form(
            "/admin/settings",
            &gateway_form(&[
                ("max_attempts", "0"),
                ("cors_origins", "not a url"),
                ("metrics_token", "short-secret"),
                ("cooldown_s", "45"),
            ]),
        )
        .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    for field in ["max_attempts", "cors_origins", "metrics_token"] {
        assert!(body.contains(&format!(r#"id="error-{field}""#)), "{field}");
    }
    assert!(
        body.contains(r#"value="not a url""#)
            && body.contains(r#"name="cooldown_s" type="number" min="1" max="3600" value="45""#)
    );
    assert!(!body.contains("short-secret"), "a typed token is not echoed");
    assert_eq!(stored_settings(&app).await, before);
    assert_eq!(app.state.pool.runtime().settings.proxy, before.proxy, "the proxy kept its settings");
}

#[actix_web::test]
async fn free_models_time_zone_and_incident_thresholds_are_saved_from_the_page() {
    let app = support::spawn().await;
    app.login().await;
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains("Free models") && page.contains("Upstream time zone"), "{page}");
    assert!(page.contains(r#"name="upstream_utc_offset" type="text" value="UTC+8""#), "the default zone");
    assert!(page.contains("Qwen/Qwen2.5-7B-Instruct\nQwen/Qwen2-7B-Instruct\n"), "the default free models, one a line");
    assert!(page.contains(r#"name="incident_min_keys" type="number" min="2" max="1000" value="5""#));
    assert!(page.contains(r#"name="incident_failure_pct" type="number" min="50" max="100" value="90""#));

    let res = app
        .hx_post(
            "/admin/settings",
            &gateway_form(&[
                ("free_models", "Qwen/Qwen3-8B\r\nmy-org/free-model, Qwen/Qwen3-8B\n\n"),
                ("upstream_utc_offset", "-03:30"),
                ("incident_min_keys", "8"),
                ("incident_failure_pct", "75"),
            ]),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Settings saved."), "{body}");
    assert!(body.contains(">Qwen/Qwen3-8B\nmy-org/free-model</textarea>"), "saved list shown, one a line: {body}");
    assert!(body.contains(r#"value="UTC-3:30""#), "the zone shown as stored");

    let stored = stored_settings(&app).await;
    assert_eq!(&*stored.proxy.free_models, ["Qwen/Qwen3-8B", "my-org/free-model"], "duplicates dropped");
    assert_eq!(stored.proxy.upstream_utc_offset_min, -210);
    assert_eq!((stored.proxy.incident_min_keys, stored.proxy.incident_failure_pct), (8, 75));
    let runtime = app.state.pool.runtime();
    assert_eq!(runtime.settings.proxy, stored.proxy, "the proxy sees them at once");
    assert!(runtime.settings.proxy.is_free_model("my-org/free-model"));
    assert!(!runtime.settings.proxy.is_free_model("Qwen/Qwen2.5-7B-Instruct"), "no longer free");

    // An empty list means no free model; a form without the fields leaves them as they are.
    let res =
        app.hx_post("/admin/settings", &gateway_form(&[("free_models", ""), ("upstream_utc_offset", "UTC")])).await;
    assert_eq!(res.status(), 200);
    let stored = stored_settings(&app).await;
    assert!(stored.proxy.free_models.is_empty() && !stored.proxy.is_free_model("Qwen/Qwen3-8B"));
    assert_eq!(stored.proxy.upstream_utc_offset_min, 0);
    assert_eq!(app.hx_post("/admin/settings", &system_form(&[])).await.status(), 200);
    assert_eq!(stored_settings(&app).await.proxy, stored.proxy);
}

#[actix_web::test]
async fn bad_free_models_or_time_zone_save_nothing_and_say_why_next_to_the_field() {
    let app = support::spawn().await;
    app.login().await;
    let before = stored_settings(&app).await;
    let long = "m".repeat(201);
    let cases: [(&[(&str, &str)], &str, &str); 5] = [
        (&[("free_models", "ok/model\nbad\u{7}model")], "free_models", "Not a model name: bad"),
        (&[("free_models", long.as_str())], "free_models", "at most 200 characters"),
        (&[("upstream_utc_offset", "UTC+15")], "upstream_utc_offset", "Enter a UTC offset from -12:00 to +14:00"),
        (&[("upstream_utc_offset", "Asia/Shanghai")], "upstream_utc_offset", "like UTC+8, -5 or +5:30"),
        (&[("incident_failure_pct", "40")], "incident_failure_pct", "Enter a whole number from 50 to 100."),
    ];
    refused_with_nothing_saved(&app, &before, &cases).await;
    // What was typed stays in the form, next to its error.
    let res = app
        .hx_post("/admin/settings", &gateway_form(&[("upstream_utc_offset", "UTC+99"), ("incident_min_keys", "1")]))
        .await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"value="UTC+99""#) && body.contains(r#"id="error-incident_min_keys""#), "{body}");
    assert_eq!(app.state.pool.runtime().settings.proxy, before.proxy, "the proxy kept its settings");
}

#[actix_web::test]
async fn metrics_need_a_session_the_token_or_public_access_and_the_token_is_never_shown() {
    let app = support::spawn().await;
    let anonymous = support::new_client();
    let metrics = |auth: Option<&str>| {
        let mut req = anonymous.get(app.url("/metrics"));
        if let Some(token) = auth {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        req.send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401, "no session");
    app.login().await;
    assert_eq!(app.get("/metrics").await.status(), 200, "a signed-in admin");

    let token = "scrape-token-0123456789abcdef";
    assert_eq!(metrics(Some(token)).await.unwrap().status(), 401, "no token set yet");
    let res = app.hx_post("/admin/settings", &gateway_form(&[("metrics_token", token)])).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    let hash = stored_settings(&app).await.metrics_token_hash.unwrap();
    assert!(!body.contains(token) && !body.contains(&hash), "neither the token nor its hash is shown");
    assert!(body.contains("Set (hidden); leave blank to keep it, off to remove it"));
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(!page.contains(token) && !page.contains(&hash));
    assert!(page.contains("Set (hidden); leave blank to keep it, off to remove it"));

    let res = metrics(Some(token)).await.unwrap();
    assert_eq!(res.status(), 200, "the scraper's token");
    assert!(res.text().await.unwrap().contains("keypool_database_up 1"));
    assert_eq!(metrics(Some("scrape-token-wrong-wrong-wrong")).await.unwrap().status(), 401);
    assert_eq!(metrics(None).await.unwrap().status(), 401);

    // Blank keeps the token; off removes it.
    app.hx_post("/admin/settings", &gateway_form(&[])).await;
    assert_eq!(metrics(Some(token)).await.unwrap().status(), 200);
    app.hx_post("/admin/settings", &gateway_form(&[("metrics_token", "off")])).await;
    assert_eq!(metrics(Some(token)).await.unwrap().status(), 401);
    assert!(app.get("/admin/settings").await.text().await.unwrap().contains(r#"placeholder="Not set""#));

    app.hx_post("/admin/settings", &gateway_form(&[("metrics_public", "on")])).await;
    assert_eq!(metrics(None).await.unwrap().status(), 200, "public metrics need nothing");
}

#[actix_web::test]
async fn access_keys_list_their_request_and_failure_counts() {
    use diesel::RunQueryDsl;
    let app = support::spawn().await;
    app.login().await;
    assert_eq!(app.hx_post("/admin/access-keys", &[("name", "busy client")]).await.status(), 200);
    support::with_db(&app, |c| {
        diesel::sql_query("UPDATE access_keys SET request_count = 1234, failure_count = 56").execute(c).unwrap()
    })
    .await;
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains("Requests") && page.contains("Failures"));
    assert!(page.contains(r#"<td class="count">1234</td><td class="count">56</td>"#), "{page}");
}

/// Creates an access key through the settings page; returns its id and token.
async fn new_access_key(app: &TestApp, name: &str) -> (i64, String) {
    let body = app.hx_post("/admin/access-keys", &[("name", name)]).await.text().await.unwrap();
    let start = body.find(r#"<code id="new-token">"#).expect("token shown") + r#"<code id="new-token">"#.len();
    let token = body[start..start + 43].to_owned();
    let name = name.to_owned();
    let key = support::with_db(app, move |c| keypool::db::access_keys::find_by_name(c, &name).unwrap().unwrap()).await;
    (key.id, token)
}

async fn stored_limits(app: &TestApp, id: i64) -> keypool::domain::access_limits::AccessLimits {
    support::with_db(app, move |c| keypool::db::access_keys::find(c, id).unwrap().unwrap().limits()).await
}

/// `POST /v1/chat/completions` with `token`; returns the status.
async fn chat_status(app: &TestApp, token: &str) -> u16 {
    let body = serde_json::json!({ "model": "Qwen/Qwen3-8B", "messages": [] });
    let res = app.client.post(app.url("/v1/chat/completions")).bearer_auth(token).json(&body).send().await.unwrap();
    res.status().as_u16()
}

#[actix_web::test]
async fn access_key_limits_are_saved_from_the_form_and_bad_input_saves_nothing() {
    use keypool::domain::access_limits::AccessLimits;
    let app = support::spawn().await;
    app.login().await;
    let (id, token) = new_access_key(&app, "friend").await;
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains(&format!(r#"action="/admin/access-keys/{id}/limits""#)), "every key has its form");

    let path = format!("/admin/access-keys/{id}/limits");
    let bad = [
        ("enabled", "on"),
        ("rpm", "lots"),
        ("tpd", "1000"),
        ("spend_day", "-2"),
        ("expires", "next friday"),
        ("models", "Qwen/*"),
        ("note", "for Bob"),
    ];
    let res = app.hx_post(&path, &bad).await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.starts_with("<section"), "htmx gets the section fragment");
    for (field, message) in [
        ("rpm", "Enter a whole number from 1 up"),
        ("spend_day", "Enter an amount above 0"),
        ("expires", "Enter a date and time"),
    ] {
        let at = body.find(&format!(r#"id="error-{field}""#)).unwrap_or_else(|| panic!("no error for {field}: {body}"));
        assert!(body[at..].contains(message), "{field}: {body}");
    }
    assert!(body.contains("Nothing was saved") && body.contains(r#"value="lots""#), "the input is kept");
    assert!(body.contains("<details class=\"limits-edit\" open"), "the refused form stays open");
    assert_eq!(stored_limits(&app, id).await, AccessLimits::default(), "nothing saved");
    assert_eq!(chat_status(&app, &token).await, 503, "the gateway saw no change");

    let good = [
        ("rpm", "2"),
        ("tpd", "1,000"),
        ("spend_month", "5"),
        ("expires", "2030-01-01T00:00"),
        ("models", "Qwen/*\ndeepseek-ai/DeepSeek-V3"),
        ("free_only", "on"),
        ("note", "for Bob"),
    ];
    let res = app.hx_post(&path, &good).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Limits saved"), "{body}");
    let saved = stored_limits(&app, id).await;
    let expires = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00+08:00").unwrap().timestamp_millis();
    assert_eq!(
        saved,
        AccessLimits {
            enabled: false,
            expires_at: Some(expires),
            models: vec!["Qwen/*".into(), "deepseek-ai/DeepSeek-V3".into()],
            free_only: true,
            rpm: Some(2),
            tpd: Some(1000),
            spend_month: Some(5.0),
            note: Some("for Bob".into()),
            ..AccessLimits::default()
        },
        "the unchecked box disables the key"
    );
    for shown in [
        r#"data-limit="rpm""#,
        r#"data-limit="tpd""#,
        r#"data-limit="spend_month""#,
        "0 / 2",
        "¥0 / ¥5",
        "Disabled",
        "Expires",
        "2030-01-01 00:00 UTC+8",
        "Free models only",
        "Models: Qwen/*, deepseek-ai/DeepSeek-V3",
        "for Bob",
    ] {
        assert!(body.contains(shown), "{shown}: {body}");
    }
    assert_eq!(chat_status(&app, &token).await, 401, "the gateway applies the limits at once");

    // Empty fields remove the limits; a plain form post gets the whole page.
    let res = app.post_form(&path, &[("enabled", "on")]).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("<html"));
    assert_eq!(stored_limits(&app, id).await, AccessLimits::default());
}

#[actix_web::test]
async fn resetting_today_clears_the_bars_and_lets_the_key_in_again() {
    let app = support::spawn().await;
    app.login().await;
    let (id, token) = new_access_key(&app, "daily").await;
    let res = app.hx_post(&format!("/admin/access-keys/{id}/limits"), &[("enabled", "on"), ("rpd", "2")]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(chat_status(&app, &token).await, 503, "admitted (no upstream key)");
    assert_eq!(chat_status(&app, &token).await, 503, "admitted (no upstream key)");
    assert_eq!(chat_status(&app, &token).await, 429, "the third request of the day is refused");

    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(page.contains(r#"<li class="limit-bar full" data-limit="rpd">"#), "{page}");
    assert!(page.contains("2 / 2") && page.contains("resets"), "{page}");
    assert!(page.contains(&format!(r#"hx-post="/admin/access-keys/{id}/reset""#)) && page.contains("hx-confirm"));

    support::flush_outcomes(&app).await;
    let res = app.hx_post(&format!("/admin/access-keys/{id}/reset"), &[]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Today's counters of “daily” are reset."), "{body}");
    assert!(body.contains("0 / 2") && !body.contains("limit-bar full"), "{body}");
    support::flush_outcomes(&app).await;
    assert_eq!(chat_status(&app, &token).await, 503, "admitted again");
    let body = app.get("/admin/settings").await.text().await.unwrap();
    assert!(body.contains("1 / 2"), "counting again from zero: {body}");

    let res = app.hx_post("/admin/access-keys/999/reset", &[]).await;
    assert!(res.text().await.unwrap().contains("That access key no longer exists."));
}

/// Settings are declared once (`domain::settings`): each needs its label and help (and a label per
/// choice) in both catalogues, and gets its form field on the page in both languages.
#[actix_web::test]
async fn every_declared_setting_has_its_catalogue_strings_and_a_form_field() {
    use keypool::domain::settings::SETTINGS;
    use keypool::i18n::Lang;
    let app = support::spawn().await;
    app.login().await;
    for (lang, code) in [(Lang::En, "en"), (Lang::Zh, "zh-CN")] {
        let catalogue = keypool::i18n::keys(lang);
        let res = app.client.get(app.url("/admin/settings")).header("accept-language", code).send().await.unwrap();
        let page = res.text().await.unwrap();
        let system = &page[page.find(r#"id="system""#).unwrap()..page.find(r#"id="account""#).unwrap()];
        for setting in SETTINGS {
            for key in setting.catalogue_keys() {
                assert!(catalogue.contains(&key.as_str()), "{code}: {} lacks {key}", setting.name);
            }
            assert!(
                system.contains(&format!(r#"name="{}""#, setting.name)),
                "{code}: no form field for {}",
                setting.name
            );
            let key = format!("settings.{}.label", setting.name);
            assert!(system.contains(lang.t(&key)), "{code}: the label of {} is not shown", setting.name);
        }
    }
}

/// Issue 13: the access keys (what an operator comes back for) open the settings page, and every part
/// of the long page is one jump away.
#[actix_web::test]
async fn access_keys_open_the_settings_page_and_every_part_is_one_jump_away() {
    let app = support::spawn().await;
    app.login().await;
    let html = app.get("/admin/settings").await.text().await.unwrap();
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle} is on the page"));
    assert!(at(r#"id="access-keys""#) < at(r#"id="system""#), "access keys before the system form");
    assert!(at(r#"id="system""#) < at(r#"id="account""#));
    let jump = &html[at(r#"id="settings-jump""#)..];
    let jump = &jump[..jump.find("</nav>").unwrap()];
    for target in ["#access-keys", "#system", "#account", "/admin/settings/prices"] {
        assert!(jump.contains(&format!(r#"href="{target}""#)), "{target}");
    }
}
