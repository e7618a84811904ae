//! Sign-in, sign-out, throttling, session expiry, the admin guard and the Origin check.

use std::time::Duration;

use keypool::web::routes::{Access, table};

use crate::support::{self, ADMIN_PASSWORD, ADMIN_USER, header, location, new_client};

#[actix_web::test]
async fn login_page_and_anonymous_admin_redirects() {
    let app = support::spawn().await;
    let res = app.get("/login").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains(r#"name="username""#) && body.contains(r#"name="password""#));
    assert!(body.contains("Sign in"), "English from Accept-Language");

    let res = app.get("/admin").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    let res = app.get("/admin/keys?page=2").await;
    assert_eq!(location(&res), "/login?next=%2Fadmin%2Fkeys%3Fpage%3D2");
}

#[actix_web::test]
async fn login_logout_round_trip() {
    let app = support::spawn().await;
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD), ("next", "/admin/settings")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/admin/settings", "goes where it was asked");

    let res = app.get("/admin/settings").await;
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("Admin account") && body.contains(ADMIN_USER));
    assert!(!body.contains("argon2"), "no hash is rendered");

    let res = app.post_form("/logout", &[]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(app.get("/admin").await.status(), 303, "signed out");
}

#[actix_web::test]
async fn login_refuses_an_offsite_next() {
    let app = support::spawn().await;
    let res = app
        .client
        .post(app.url("/login"))
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD), ("next", "//evil.example/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/admin");
}

#[actix_web::test]
async fn wrong_password_and_unknown_user_are_refused_alike() {
    let app = support::spawn().await;
    for (user, password) in [(ADMIN_USER, "wrong-password"), ("nobody", ADMIN_PASSWORD), (ADMIN_USER, "")] {
        let res = app.login_with(&app.client, user, password).await;
        assert_eq!(res.status(), 401, "{user}/{password}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Wrong username or password."), "{body}");
    }
    assert_eq!(app.get("/admin").await.status(), 303, "still anonymous");
}

#[actix_web::test]
async fn repeated_failures_are_throttled_then_released() {
    let app = support::spawn().await;
    for _ in 0..5 {
        assert_eq!(app.login_with(&app.client, ADMIN_USER, "nope-nope").await.status(), 401);
    }
    // Locked: even the right password is refused, with the time to wait.
    let res = app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), "300");
    let body = res.text().await.unwrap();
    assert!(body.contains("Try again in 300 seconds"), "{body}");

    app.clock.advance(Duration::from_secs(299));
    assert_eq!(app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await.status(), 429);
    app.clock.advance(Duration::from_secs(1));
    app.login().await;
}

#[actix_web::test]
async fn throttling_is_per_client_address_behind_a_trusted_proxy() {
    let app = support::spawn_with(|c| c.trust_forwarded_for = true).await;
    let attempt = |ip: &'static str, password: &'static str| {
        app.client
            .post(app.url("/login"))
            .header("x-forwarded-for", ip)
            .form(&[("username", ADMIN_USER), ("password", password)])
            .send()
    };
    for _ in 0..5 {
        assert_eq!(attempt("203.0.113.9", "bad-password").await.unwrap().status(), 401);
    }
    assert_eq!(attempt("203.0.113.9", ADMIN_PASSWORD).await.unwrap().status(), 429);
    assert_eq!(attempt("198.51.100.7", ADMIN_PASSWORD).await.unwrap().status(), 303, "another address is not locked");
}

#[actix_web::test]
async fn sessions_expire_after_their_lifetime() {
    let app = support::spawn().await;
    app.login().await;
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 - 60));
    assert_eq!(app.get("/admin/settings").await.status(), 200, "still inside 7 days");
    app.clock.advance(Duration::from_secs(120));
    let res = app.get("/admin/settings").await;
    assert_eq!(res.status(), 303, "expired after 7 days");
    assert!(location(&res).starts_with("/login"));
}

#[actix_web::test]
async fn session_lifetime_is_configurable() {
    let app = support::spawn_with(|c| c.session_ttl = Duration::from_secs(3600)).await;
    app.login().await;
    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(app.get("/admin").await.status(), 303);
}

#[actix_web::test]
async fn session_cookie_is_httponly_samesite_strict_and_secure_by_default() {
    let app = support::spawn_with(|c| c.insecure_cookies = false).await;
    let res = app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await;
    let cookie = header(&res, "set-cookie");
    assert!(cookie.starts_with("keypool_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=604800"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
}

#[actix_web::test]
async fn htmx_requests_get_hx_redirect() {
    let app = support::spawn().await;
    let res = app
        .client
        .post(app.url("/admin/settings"))
        .header("hx-request", "true")
        .header("hx-current-url", format!("{}/admin/settings", app.base))
        .form(&[("access_mode", "open")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(header(&res, "hx-redirect"), "/login?next=%2Fadmin%2Fsettings");
}

#[actix_web::test]
async fn every_admin_route_refuses_anonymous_requests() {
    let app = support::spawn().await;
    let routes = table();
    let admin: Vec<_> = routes.iter().filter(|r| r.access == Access::Admin).collect();
    assert!(admin.len() >= 7, "the table lists the admin routes");
    for r in &routes {
        assert_eq!(
            r.path.starts_with("/admin"),
            r.access == Access::Admin,
            "{} must be guarded exactly when under /admin",
            r.path
        );
    }
    // A signed-in client proves each path exists (so the refusal below is the guard, not a 404).
    let signed_in = new_client();
    assert_eq!(app.login_with(&signed_in, ADMIN_USER, ADMIN_PASSWORD).await.status(), 303);
    let one_key = [("keys", "sk-route-walk-aaaaaaaaaaaaaaaa")];
    signed_in.post(app.url("/admin/keys/import")).form(&one_key).send().await.unwrap();
    for r in admin {
        let path = r.path.replace("{id}", "1").replace("{action}", "disable").replace("{name}", "trend");
        let method = reqwest::Method::from_bytes(r.method.as_str().as_bytes()).unwrap();
        let anonymous = new_client();
        let res = anonymous.request(method.clone(), app.url(&path)).form(&[("x", "1")]).send().await.unwrap();
        assert_eq!(res.status(), 303, "{} {path} must redirect anonymous browsers", r.method);
        assert!(location(&res).starts_with("/login"), "{} {path}", r.method);

        let res = anonymous.request(method.clone(), app.url(&path)).header("hx-request", "true").send().await.unwrap();
        assert_eq!(res.status(), 401, "{} {path} (htmx)", r.method);
        assert!(header(&res, "hx-redirect").starts_with("/login"), "{} {path} (htmx)", r.method);

        let res = signed_in.request(method.clone(), app.url(&path)).form(&[("x", "1")]).send().await.unwrap();
        assert!(res.status() != 404 && res.status() != 303, "{} {path} as admin gave {}", r.method, res.status());
    }
}

#[actix_web::test]
async fn foreign_origin_is_refused_for_state_changes() {
    let app = support::spawn().await;
    app.login().await;
    let res = app
        .client
        .post(app.url("/admin/access-keys"))
        .header("origin", "https://evil.example")
        .header("accept-language", "en")
        .form(&[("name", "sneaky")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("came from another site"));
    let names = support::with_db(&app, |c| keypool::db::access_keys::list(c).unwrap()).await;
    assert!(names.is_empty(), "nothing was created");

    // The same request from our own page goes through.
    let res = app
        .client
        .post(app.url("/admin/access-keys"))
        .header("origin", app.base.clone())
        .form(&[("name", "legit")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Logging in from a foreign page is refused too.
    let res = new_client()
        .post(app.url("/login"))
        .header("origin", "null")
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[actix_web::test]
async fn changing_credentials_ends_other_sessions_but_keeps_this_one() {
    let app = support::spawn().await;
    app.login().await;
    let other = new_client();
    assert_eq!(app.login_with(&other, ADMIN_USER, ADMIN_PASSWORD).await.status(), 303);

    let res = app
        .hx_post(
            "/admin/settings/account",
            &[
                ("username", "root"),
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "a-new-long-password"),
                ("confirm_password", "a-new-long-password"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Account updated"));

    assert_eq!(app.get("/admin/settings").await.status(), 200, "this session continues");
    let res = other.get(app.url("/admin/settings")).send().await.unwrap();
    assert_eq!(res.status(), 303, "the other session ended");

    let fresh = new_client();
    assert_eq!(app.login_with(&fresh, ADMIN_USER, ADMIN_PASSWORD).await.status(), 401, "old credentials");
    assert_eq!(app.login_with(&fresh, "root", "a-new-long-password").await.status(), 303, "new credentials");
}

#[actix_web::test]
async fn login_page_warns_when_secure_cookies_cannot_work() {
    let app = support::spawn_with(|c| c.insecure_cookies = false).await;
    let lan = app.client.get(app.url("/login")).header("host", "192.168.1.20:8080").header("accept-language", "en");
    let body = lan.send().await.unwrap().text().await.unwrap();
    assert!(body.contains("KEYPOOL_INSECURE_COOKIES=1"), "plain http on a LAN address is explained");
    let body = app.get("/login").await.text().await.unwrap();
    assert!(!body.contains("KEYPOOL_INSECURE_COOKIES"), "127.0.0.1 keeps secure cookies");
}

#[actix_web::test]
async fn concurrent_wrong_passwords_are_verified_only_up_to_the_limit() {
    let app = support::spawn().await;
    let attempts = (0..60).map(|_| {
        let request = app.client.post(app.url("/login")).form(&[("username", ADMIN_USER), ("password", "wrong-guess")]);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let verified = statuses.iter().filter(|s| **s == 401).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((verified, locked), (5, 55), "only the first five guesses are verified: {statuses:?}");
    // The lock holds for the right password too.
    assert_eq!(app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await.status(), 429);
}

#[actix_web::test]
async fn language_switch_keeps_next_on_site() {
    let app = support::spawn().await;
    let res = app.get("/lang/en?next=/%09/evil.example").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/");
    for next in ["%0D%0ASet-Cookie:%20x=1", "/a%0D%0Ab", "/%2F/evil.example", "/%5Cevil.example"] {
        let res = app.get(&format!("/lang/en?next={next}")).await;
        assert_eq!(res.status(), 303, "{next}");
        assert_eq!(location(&res), "/", "{next}");
        assert!(res.headers().get("x").is_none());
    }
    let res = app.get("/lang/en?next=%2Fadmin%2Fkeys%3Fpage%3D2").await;
    assert_eq!(location(&res), "/admin/keys?page=2", "a local path with its query is kept");

    let res = app
        .client
        .post(app.url("/login"))
        .form(&[("username", ADMIN_USER), ("password", ADMIN_PASSWORD), ("next", "/x\r\nLocation: //evil.example")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/admin");
}

#[actix_web::test]
async fn head_is_answered_like_get() {
    let app = support::spawn().await;
    let head = |path: &str| app.client.head(app.url(path)).header("accept-language", "en").send();

    let res = head("/healthz").await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().is_empty(), "no body");

    for path in ["/", "/login", "/docs", "/lang/en?next=/docs"] {
        let get = app.get(path).await.status();
        let res = head(path).await.unwrap();
        assert_eq!(res.status(), get, "HEAD {path}");
        assert_eq!(header(&res, "content-type"), header(&app.get(path).await, "content-type"), "HEAD {path}");
        assert!(res.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }

    let res = head("/assets/css/app.css").await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/css"), "{}", header(&res, "content-type"));
    assert!(res.bytes().await.unwrap().is_empty());

    // Admin pages still need a session under HEAD.
    let res = new_client().head(app.url("/admin/keys")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).starts_with("/login"));
    app.login().await;
    assert_eq!(head("/admin/keys").await.unwrap().status(), 200);
    // Methods a path does not serve are still refused.
    assert_eq!(head("/logout").await.unwrap().status(), 405);
}

#[actix_web::test]
async fn account_changes_count_wrong_current_passwords_before_verifying() {
    let app = support::spawn().await;
    app.login().await;
    // A form that does not validate never checks the password, so it is not counted.
    let mismatch = [
        ("username", ADMIN_USER),
        ("current_password", "wrong-guess"),
        ("new_password", "a-new-long-password"),
        ("confirm_password", "another-long-password"),
    ];
    for _ in 0..6 {
        assert_eq!(app.hx_post("/admin/settings/account", &mismatch).await.status(), 422);
    }
    let attempts = (0..30).map(|_| {
        let request = app
            .client
            .post(app.url("/admin/settings/account"))
            .header("hx-request", "true")
            .form(&[("username", ADMIN_USER), ("current_password", "wrong-guess")]);
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let verified = statuses.iter().filter(|s| **s == 422).count();
    let locked = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((verified, locked), (5, 25), "{statuses:?}");
}

/// The session cookie a sign-in set, as a `Cookie` header value.
fn session_cookie(res: &reqwest::Response) -> String {
    let set = header(res, "set-cookie");
    assert!(set.starts_with("keypool_session="), "{set}");
    set.split(';').next().unwrap_or_default().to_owned()
}

/// A request carrying only this copied cookie (no jar of its own).
async fn get_with_cookie(app: &support::TestApp, path: &str, cookie: &str) -> reqwest::Response {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    client.get(app.url(path)).header("cookie", cookie).send().await.unwrap()
}

#[actix_web::test]
async fn a_copied_cookie_stops_working_after_logout() {
    let app = support::spawn().await;
    let res = app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 303);
    let copied = session_cookie(&res);
    assert_eq!(get_with_cookie(&app, "/admin", &copied).await.status(), 200, "the copy works while signed in");

    let res = app.post_form("/logout", &[]).await;
    assert_eq!(location(&res), "/login");
    let res = get_with_cookie(&app, "/admin", &copied).await;
    assert_eq!(res.status(), 303, "the copy ended with the session");
    assert_eq!(location(&res), "/login");
    assert_eq!(get_with_cookie(&app, "/admin/settings", &copied).await.status(), 303);

    // Signing in again starts a new session; the old copy stays dead.
    app.login().await;
    assert_eq!(app.get("/admin").await.status(), 200);
    assert_eq!(get_with_cookie(&app, "/admin", &copied).await.status(), 303);
}

#[actix_web::test]
async fn sign_out_everywhere_ends_every_session_of_the_admin() {
    let app = support::spawn().await;
    let res = app.login_with(&app.client, ADMIN_USER, ADMIN_PASSWORD).await;
    let copied = session_cookie(&res);
    let other = new_client();
    assert_eq!(app.login_with(&other, ADMIN_USER, ADMIN_PASSWORD).await.status(), 303);
    assert_eq!(other.get(app.url("/admin/settings")).send().await.unwrap().status(), 200);

    let body = app.get("/admin/settings").await.text().await.unwrap();
    assert!(body.contains("Sign out everywhere") && body.contains(r#"name="everywhere""#), "the button is shown");
    let zh = app.client.get(app.url("/admin/settings")).header("accept-language", "zh-CN").send().await.unwrap();
    assert!(zh.text().await.unwrap().contains("退出所有设备"));

    let res = app.post_form("/logout", &[("everywhere", "1")]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    assert_eq!(app.get("/admin/settings").await.status(), 303, "this session ended");
    let res = other.get(app.url("/admin/settings")).send().await.unwrap();
    assert_eq!(res.status(), 303, "the other device's session ended");
    assert!(location(&res).starts_with("/login"));
    assert_eq!(get_with_cookie(&app, "/admin", &copied).await.status(), 303, "copies ended too");

    // A fresh sign-in works as before.
    app.login().await;
    assert_eq!(app.get("/admin/settings").await.status(), 200);
}

async fn count_sessions(app: &support::TestApp) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    support::with_db(app, |c| {
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT COUNT(*) AS n FROM admin_sessions").get_result::<N>(c).unwrap().n
    })
    .await
}

#[actix_web::test]
async fn expired_session_records_are_pruned_on_sign_in() {
    let app = support::spawn_with(|c| c.session_ttl = Duration::from_secs(3600)).await;
    app.login().await;
    app.login_with(&new_client(), ADMIN_USER, ADMIN_PASSWORD).await;
    assert_eq!(count_sessions(&app).await, 2);
    app.clock.advance(Duration::from_secs(3601));
    app.login().await;
    assert_eq!(count_sessions(&app).await, 1, "only the new session is left");
}

#[actix_web::test]
async fn forwarded_host_headers_count_only_behind_a_trusted_proxy() {
    let sneaky = |app: &support::TestApp, forwarded: (&'static str, &'static str)| {
        app.client
            .post(app.url("/admin/access-keys"))
            .header("origin", "https://evil.example")
            .header(forwarded.0, forwarded.1)
            .header("accept-language", "en")
            .form(&[("name", "forwarded")])
            .send()
    };
    let app = support::spawn().await;
    app.login().await;
    for forwarded in [("x-forwarded-host", "evil.example"), ("forwarded", "host=evil.example;proto=https")] {
        let res = sneaky(&app, forwarded).await.unwrap();
        assert_eq!(res.status(), 403, "{forwarded:?} is ignored without a trusted proxy");
    }
    let names = support::with_db(&app, |c| keypool::db::access_keys::list(c).unwrap()).await;
    assert!(names.is_empty(), "nothing was created");

    let trusted = support::spawn_with(|c| c.trust_forwarded_for = true).await;
    trusted.login().await;
    let res = sneaky(&trusted, ("x-forwarded-host", "evil.example")).await.unwrap();
    assert_eq!(res.status(), 200, "a trusted proxy's X-Forwarded-Host names the public host");
}
