//! The guest page, its fragment and its export under each access mode, guest sessions, throttling,
//! and the docs page's base URL.

use std::time::Duration;

use diesel::RunQueryDsl;
use diesel::sql_types::{Double, Nullable, Text};
use keypool::domain::settings::{Settings, SettingsChange};

use crate::support::{self, TestApp, header, location, new_client};

fn key(i: usize) -> String {
    format!("sk-guest{i:0>28}")
}

/// Applies settings as the settings page would (validated, guest password hashed).
async fn set(app: &TestApp, pairs: &'static [(&'static str, &'static str)]) {
    let now = app.state.now_ms();
    support::with_db(app, move |c| {
        let current = Settings::from_stored(&keypool::db::settings::load_all(c).unwrap());
        let change = SettingsChange::parse(pairs.iter().copied()).unwrap();
        let rows = current.apply(&change, keypool::domain::password::hash).unwrap();
        keypool::db::settings::put_many(c, &rows, now).unwrap();
    })
    .await;
    app.state.reload_settings().await.unwrap();
}

/// Five keys: three usable (balances 5, 50, 500), one depleted, one invalid.
async fn seed(app: &TestApp) {
    app.login().await;
    let text: String = (1..=5).map(|i| key(i) + "\n").collect();
    app.hx_post("/admin/keys/import", &[("keys", text.as_str())]).await;
    let states = [
        (1, "active", Some(5.0)),
        (2, "active", Some(500.0)),
        (3, "depleted", Some(0.0)),
        (4, "invalid", None),
        (5, "active", Some(50.0)),
    ];
    for (i, status, balance) in states {
        let k = key(i);
        support::with_db(app, move |c| {
            diesel::sql_query("UPDATE keys SET status = $1, total_balance = $2, checked_at = 1000 WHERE key = $3")
                .bind::<Text, _>(status)
                .bind::<Nullable<Double>, _>(balance)
                .bind::<Text, _>(k)
                .execute(c)
                .unwrap();
        })
        .await;
    }
    app.post_form("/logout", &[]).await;
}

struct Seen {
    page: u16,
    fragment: u16,
    export: u16,
}

async fn visit(app: &TestApp, client: &reqwest::Client) -> Seen {
    let get = |path: &str| client.get(app.url(path)).header("accept-language", "en").send();
    Seen {
        page: get("/").await.unwrap().status().as_u16(),
        fragment: get("/guest/keys?page=1").await.unwrap().status().as_u16(),
        export: get("/guest/export").await.unwrap().status().as_u16(),
    }
}

async fn guest_login(app: &TestApp, client: &reqwest::Client, password: &str) -> reqwest::Response {
    client
        .post(app.url("/guest/login"))
        .header("accept-language", "en")
        .form(&[("password", password)])
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn open_mode_shows_usable_keys_first_with_tiers_counters_and_export() {
    let app = support::spawn().await;
    seed(&app).await;
    set(&app, &[("access_mode", "open")]).await;
    let anon = new_client();
    let seen = visit(&app, &anon).await;
    assert_eq!((seen.page, seen.fragment, seen.export), (200, 200, 200));

    let body = anon.get(app.url("/")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
    let order: Vec<usize> = body.split("data-copy-text=\"").skip(1).map(|s| s[8..36].parse().unwrap()).collect();
    assert_eq!(order, [2, 5, 1, 3, 4], "usable by balance, then the rest");
    for tier in ["tier-high\">500", "tier-medium\">50", "tier-low\">5", "tier-invalid\">Invalid"] {
        assert!(body.contains(tier), "{tier}");
    }
    assert!(body.contains(r#"id="count-total">5<"#) && body.contains(r#"id="count-usable">3<"#));
    assert!(body.contains("¥555.00"));

    let export = anon.get(app.url("/guest/export?sep=comma")).send().await.unwrap();
    assert!(header(&export, "content-disposition").contains("keypool-valid-keys-"));
    assert_eq!(export.text().await.unwrap(), format!("{},{},{}", key(1), key(2), key(5)));

    // Masked keys: no full key anywhere, no export.
    set(&app, &[("guest_full_keys", "off")]).await;
    let body = anon.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!body.contains(&key(2)) && body.contains("sk-gues…0002"), "masked");
    assert!(!body.contains("/guest/export"));
    assert_eq!(anon.get(app.url("/guest/export")).send().await.unwrap().status(), 403);
}

#[actix_web::test]
async fn pages_follow_the_guest_page_size() {
    let app = support::spawn().await;
    seed(&app).await;
    set(&app, &[("access_mode", "open"), ("guest_page_size", "2")]).await;
    let anon = new_client();
    let third = anon
        .get(app.url("/guest/keys?page=3"))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(third.contains("Page 3 of 3") && third.contains(&key(4)) && !third.contains(&key(3)), "{third}");
    assert!(third.starts_with("<section id=\"guest-cards\">"), "a fragment");
}

#[actix_web::test]
async fn private_mode_is_for_admins_only() {
    let app = support::spawn().await;
    seed(&app).await;
    let anon = new_client();
    let seen = visit(&app, &anon).await;
    assert_eq!((seen.page, seen.fragment, seen.export), (403, 403, 403));
    let body = anon.get(app.url("/")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
    assert!(body.contains("Admins only") && body.contains("/login?next=%2F") && !body.contains(&key(2)));

    app.login().await;
    let seen = visit(&app, &app.client).await;
    assert_eq!((seen.page, seen.fragment, seen.export), (200, 200, 200), "an admin always gets in");
}

#[actix_web::test]
async fn restricted_mode_needs_the_guest_password_then_a_session() {
    let app = support::spawn().await;
    seed(&app).await;
    set(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    let guest = new_client();
    let seen = visit(&app, &guest).await;
    assert_eq!((seen.page, seen.fragment, seen.export), (401, 401, 401));
    let body = guest.get(app.url("/")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
    assert!(body.contains(r#"action="/guest/login""#) && !body.contains(&key(2)));

    let res = guest_login(&app, &guest, "wrong-guess").await;
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("Wrong guest password."));
    assert_eq!(visit(&app, &guest).await.page, 401);

    let res = guest_login(&app, &guest, "friends-only").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");
    let cookie = header(&res, "set-cookie");
    assert!(!cookie.contains("friends-only"), "the password is never the token");
    let seen = visit(&app, &guest).await;
    assert_eq!((seen.page, seen.fragment, seen.export), (200, 200, 200));

    // Guest sessions expire.
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(visit(&app, &guest).await.page, 401, "expired guest session");

    // A new password or mode ends existing guest sessions.
    assert_eq!(guest_login(&app, &guest, "friends-only").await.status(), 303);
    assert_eq!(visit(&app, &guest).await.page, 200);
    set(&app, &[("guest_password", "new-secret")]).await;
    assert_eq!(visit(&app, &guest).await.page, 401, "password changed");
    assert_eq!(guest_login(&app, &guest, "new-secret").await.status(), 303);
    set(&app, &[("access_mode", "open")]).await;
    set(&app, &[("access_mode", "restricted")]).await;
    assert_eq!(visit(&app, &guest).await.page, 401, "mode changed");

    // The admin never needs it.
    app.login().await;
    assert_eq!(visit(&app, &app.client).await.page, 200);
}

#[actix_web::test]
async fn wrong_guest_passwords_are_throttled() {
    let app = support::spawn().await;
    set(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    let guest = new_client();
    for _ in 0..10 {
        assert_eq!(guest_login(&app, &guest, "nope").await.status(), 401);
    }
    let res = guest_login(&app, &guest, "friends-only").await;
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("Try again in 300 seconds"));
    app.clock.advance(Duration::from_secs(300));
    assert_eq!(guest_login(&app, &guest, "friends-only").await.status(), 303);
}

#[actix_web::test]
async fn docs_take_the_base_url_from_the_request_or_the_setting() {
    let app = support::spawn().await;
    app.login().await;
    let token_page = app.hx_post("/admin/access-keys", &[("name", "docs")]).await.text().await.unwrap();
    let token_start = token_page.find("kp-").unwrap();
    let token = &token_page[token_start..token_start + 43];
    set(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    app.post_form("/logout", &[]).await;

    let anon = new_client();
    let body = anon.get(app.url("/docs")).header("accept-language", "en").send().await.unwrap().text().await.unwrap();
    assert!(body.contains(&format!("{}/v1", app.base)), "from the request");
    for example in ["curl ", "from openai import OpenAI", "getReader()", "/v1/dashboard/billing/subscription"] {
        assert!(body.contains(example), "{example}");
    }
    assert!(!body.contains(token) && !body.contains("friends-only"), "no secrets");

    let proxied = anon
        .get(app.url("/docs"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "pool.example.com")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(proxied.contains("https://pool.example.com/v1/chat/completions"), "behind a proxy");
    assert!(!proxied.contains("127.0.0.1"));

    set(&app, &[("public_base_url", "https://api.friends.example"), ("contact", "Ask Bob on WeChat")]).await;
    let body = anon
        .get(app.url("/docs"))
        .header("x-forwarded-host", "ignored.example")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("https://api.friends.example/v1") && !body.contains("ignored.example"));
    assert!(body.contains("Ask Bob on WeChat"));
}

#[actix_web::test]
async fn guests_see_only_their_navigation() {
    let app = support::spawn().await;
    set(&app, &[("access_mode", "open")]).await;
    let body = new_client().get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(!body.contains(r#"href="/admin/settings""#) && body.contains(r#"href="/docs""#));
}

#[actix_web::test]
async fn concurrent_wrong_guest_passwords_are_verified_only_up_to_the_limit() {
    let app = support::spawn().await;
    set(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    let guest = new_client();
    let attempts = (0..60).map(|_| {
        let request = guest.post(app.url("/guest/login")).form(&[("password", "a-wrong-guess")]);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let verified = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((verified, locked), (10, 50), "only the first ten guesses are verified: {statuses:?}");
    assert_eq!(guest_login(&app, &guest, "friends-only").await.status(), 429);
}

#[actix_web::test]
async fn the_guest_access_key_is_shown_in_restricted_mode_only_to_those_let_in() {
    let app = support::spawn().await;
    app.login().await;
    let body = app.hx_post("/admin/access-keys", &[("name", "for guests")]).await.text().await.unwrap();
    let start = body.find(r#"<code id="new-token">"#).unwrap() + r#"<code id="new-token">"#.len();
    let old_token = body[start..start + 43].to_owned();
    let id =
        support::with_db(&app, |c| keypool::db::access_keys::find_by_name(c, "for guests").unwrap().unwrap().id).await;
    app.hx_post(&format!("/admin/access-keys/{id}/limits"), &[("enabled", "on"), ("rpd", "100")]).await;
    let v1 = |token: String| app.client.post(app.url("/v1/chat/completions")).bearer_auth(token).body("{}").send();
    assert_eq!(v1(old_token.clone()).await.unwrap().status(), 503, "works before sharing");

    let res = app.hx_post(&format!("/admin/access-keys/{id}/share"), &[]).await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("is now the guest access key") && body.contains("Shown to guests"), "{body}");
    assert!(body.contains(r#"hx-post="/admin/access-keys/unshare""#), "a way to stop sharing");
    let shared = support::with_db(&app, |c| keypool::db::access_keys::shared(c).unwrap().unwrap()).await;
    let token = shared.shared_token.unwrap();
    assert!(!body.contains(&token), "the settings page never shows the token");
    assert_eq!(v1(old_token.clone()).await.unwrap().status(), 401, "sharing mints a new token");
    assert_eq!(v1(token.clone()).await.unwrap().status(), 503, "the new one works");

    let home = app.url("/");
    let page = |client: reqwest::Client| {
        let home = home.clone();
        async move {
            let res = client.get(home).header("accept-language", "en").send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    // Private (the default): not even the admin sees it.
    let (status, body) = page(app.client.clone()).await;
    assert!(status == 200 && !body.contains(&token) && !body.contains("shared-key"), "private");

    set(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    let guest = new_client();
    let (status, body) = page(guest.clone()).await;
    assert!(status == 401 && !body.contains(&token), "not before the guest password");
    assert_eq!(guest_login(&app, &guest, "friends-only").await.status(), 303);
    let (status, body) = page(guest.clone()).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"id="shared-key""#) && body.contains(&format!(r#"<code id="shared-token">{token}</code>"#))
    );
    assert!(body.contains(&format!("{}/v1", app.base)) && body.contains("100 requests per day"), "{body}");
    assert!(body.contains(r##"data-copy="#shared-token""##), "with a copy button");
    assert!(!body.contains(&old_token));
    let (_, body) = page(app.client.clone()).await;
    assert!(body.contains(&token), "an admin sees what guests see");

    set(&app, &[("access_mode", "open")]).await;
    let (status, body) = page(new_client()).await;
    assert!(status == 200 && !body.contains(&token) && !body.contains("shared-key"), "never in open mode");

    set(&app, &[("access_mode", "restricted")]).await;
    let res = app.hx_post("/admin/access-keys/unshare", &[]).await;
    assert!(res.text().await.unwrap().contains("no longer shows an access key"));
    assert_eq!(guest_login(&app, &guest, "friends-only").await.status(), 303);
    let (status, body) = page(guest).await;
    assert!(status == 200 && !body.contains(&token) && !body.contains("shared-key"), "unshared");
    assert_eq!(v1(token).await.unwrap().status(), 503, "its token keeps working");
}

/// Issue 13: the guest page's export with no valid key in the pool says so (422, in the visitor's
/// language) instead of saving an empty file.
#[actix_web::test]
async fn a_guest_export_with_no_valid_key_is_refused_with_a_message_not_an_empty_file() {
    let app = support::spawn().await;
    set(&app, &[("access_mode", "open"), ("guest_full_keys", "on")]).await;
    let anon = new_client();
    for (lang, message) in [("zh-CN", "暂无可导出的有效密钥"), ("en", "There is no valid key to export yet.")]
    {
        let res = anon.get(app.url("/guest/export")).header("accept-language", lang).send().await.unwrap();
        assert_eq!(res.status(), 422, "{lang}");
        assert!(header(&res, "content-disposition").is_empty(), "no download");
        assert!(res.text().await.unwrap().contains(message), "{lang}");
    }
    seed(&app).await;
    let res = anon.get(app.url("/guest/export")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().is_empty());
}
