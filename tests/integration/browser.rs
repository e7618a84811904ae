//! The admin in a real browser: headless Chromium driven over WebDriver (chromedriver), against the
//! real app. Reported as ignored where Chromium is not installed (build.rs sets `keypool_browser`), unless
//! `KEYPOOL_REQUIRE_BROWSER` is set (CI sets it, and installs Chromium): then a missing browser fails.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{self, ADMIN_PASSWORD, ADMIN_USER, TestApp};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser<'a> {
    driver: &'a Driver,
    session: String,
    /// Where downloads land.
    downloads: std::path::PathBuf,
}

/// Browser tests are ignored where Chromium is not installed (`keypool_browser`, from build.rs); where
/// they run, a missing browser (with `KEYPOOL_REQUIRE_BROWSER` set) fails them with this message.
fn require_browser() {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "{CHROMEDRIVER} or {CHROMIUM} is missing: apt-get install chromium chromium-driver"
    );
}

async fn start_driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        _profile: tempfile::tempdir().unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = driver.http.get(format!("{}/status", driver.base)).send().await
            && res.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
        {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Driver {
    async fn session(&self, width: u32, height: u32) -> Browser<'_> {
        let profile = self._profile.path().join(format!("profile-{width}"));
        let downloads = self._profile.path().join(format!("downloads-{width}"));
        std::fs::create_dir_all(&downloads).unwrap();
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--lang=en-US",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "intl.accept_languages": "en-US,en",
                "download.default_directory": downloads.to_string_lossy(),
                "download.prompt_for_download": false
            }
        });
        if width < 500 {
            // Headless windows are at least 500 px wide: emulate the phone's viewport instead.
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0 } });
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": options
        } } });
        let res: Value =
            self.http.post(format!("{}/session", self.base)).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {res}")).to_owned();
        Browser { driver: self, session, downloads }
    }
}

impl Browser<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.base, self.session);
        let mut req = self.driver.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        req.send().await.unwrap().json::<Value>().await.unwrap()["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", json!({})).await.as_str().unwrap_or("").to_owned()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", json!({ "script": script, "args": [] })).await
    }

    /// Polls until the CSS selector matches, then returns the element id.
    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v =
                self.call(reqwest::Method::POST, "/element", json!({ "using": "css selector", "value": css })).await;
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element matches {css} on {}", self.url().await);
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), json!({})).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), json!({ "text": text })).await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn wait_for_url(&self, suffix: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.url().await.ends_with(suffix) {
            assert!(Instant::now() < deadline, "URL {} never ended with {suffix}", self.url().await);
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn accept_alert(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.call(reqwest::Method::POST, "/alert/accept", json!({})).await;
            if v.is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "no confirmation dialog appeared: {v}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Console messages at SEVERE level (JavaScript errors, failed loads).
    async fn console_errors(&self) -> Vec<String> {
        let logs = self.call(reqwest::Method::POST, "/se/log", json!({ "type": "browser" })).await;
        logs.as_array()
            .map(|a| {
                a.iter()
                    .filter(|l| l["level"] == "SEVERE")
                    .map(|l| l["message"].as_str().unwrap_or("").to_owned())
                    // Deliberate refusals (a 422 form, the guest page's 401/403) are logged by Chromium as
                    // failed resources; script errors are what matters.
                    .filter(|m| !["status of 422", "status of 401", "status of 403"].iter().any(|s| m.contains(s)))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn no_horizontal_scroll(&self) -> bool {
        self.script("return document.documentElement.scrollWidth <= window.innerWidth;").await == true
    }

    async fn screenshot(&self, name: &str) {
        let data = self.call(reqwest::Method::GET, "/screenshot", json!({})).await;
        if let Some(b64) = data.as_str() {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(dir.join(format!("{name}.png.b64")), b64);
        }
    }

    /// The whole page (beyond the viewport) as a PNG file, through Chrome's DevTools protocol.
    async fn full_screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let params =
            json!({ "cmd": "Page.captureScreenshot", "params": { "format": "png", "captureBeyondViewport": true } });
        let shot = self.call(reqwest::Method::POST, "/goog/cdp/execute", params).await;
        let data = shot["data"].as_str().unwrap_or_else(|| panic!("no screenshot: {shot}"));
        std::fs::write(path, base64::engine::general_purpose::STANDARD.decode(data).unwrap()).unwrap();
    }

    async fn login(&self, app: &TestApp) {
        self.goto(&app.url("/admin/settings")).await;
        assert!(self.url().await.contains("/login?next="), "anonymous visit goes to the login page");
        self.type_into("#username", ADMIN_USER).await;
        self.type_into("#password", ADMIN_PASSWORD).await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.wait_for_url("/admin/settings").await;
    }

    /// Polls until the text of `css` contains `needle`.
    async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css} never contained {needle:?}; it says {text:?}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for one finished download and returns its name and contents.
    /// The first finished, non-empty download. Chrome reserves the final name with an empty file
    /// while it writes to a `.crdownload` beside it, so a `.txt` alone is not yet a finished file.
    async fn downloaded(&self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let files: Vec<_> =
                std::fs::read_dir(&self.downloads).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
            let writing = files.iter().any(|p| p.extension().is_some_and(|x| x == "crdownload"));
            let done = files
                .iter()
                .find(|p| p.extension().is_some_and(|x| x == "txt") && std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
            if let (false, Some(path)) = (writing, done) {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                return (name, std::fs::read_to_string(path).unwrap());
            }
            assert!(Instant::now() < deadline, "no download finished");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn quit(self) {
        let url = format!("{}/session/{}", self.driver.base, self.session);
        let _ = self.driver.http.delete(url).send().await;
    }
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn admin_signs_in_changes_settings_and_manages_access_keys_in_a_browser() {
    require_browser();
    let app = support::spawn().await;
    let driver = start_driver().await;
    let b = driver.session(1280, 900).await;
    b.login(&app).await;

    // Restricted without a guest password: refused in place by an htmx swap, nothing saved.
    b.click("input[name=access_mode][value=restricted]").await;
    b.click("#system button[type=submit]").await;
    let message = b.text("#error-guest_password").await;
    assert!(message.contains("guest password"), "{message}");
    assert!(b.url().await.ends_with("/admin/settings"), "no navigation: the section was swapped");

    b.type_into("#guest-password", "friends-only").await;
    b.click("#system button[type=submit]").await;
    assert!(b.text("#system .flash-success").await.contains("Settings saved"));
    let stored = support::with_db(&app, |c| {
        keypool::domain::settings::Settings::from_stored(&keypool::db::settings::load_all(c).unwrap())
    })
    .await;
    assert_eq!(stored.access_mode, keypool::domain::settings::AccessMode::Restricted);

    // Create an access key, see its token once, then revoke it through the confirmation dialog.
    b.type_into("#access-key-name", "browser key").await;
    b.click("#access-keys form.inline button[type=submit]").await;
    let token = b.text("#new-token").await;
    assert!(token.starts_with("kp-"), "{token}");
    b.click("#access-keys button.danger").await;
    b.accept_alert().await;
    assert!(b.text("#access-keys .flash-success").await.contains("revoked"));
    b.screenshot("settings-desktop").await;

    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    b.click("form.signout button").await;
    b.wait_for_url("/login").await;
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn pages_fit_a_375_px_phone() {
    require_browser();
    let app = support::spawn().await;
    let driver = start_driver().await;
    let b = driver.session(375, 812).await;
    b.goto(&app.url("/login")).await;
    b.find("#username").await;
    assert_eq!(b.script("return window.innerWidth;").await, 375, "viewport width");
    assert!(b.no_horizontal_scroll().await, "login page scrolls sideways");
    b.screenshot("login-375").await;
    b.login(&app).await;
    b.type_into("#access-key-name", "phone").await;
    b.click("#access-keys form.inline button[type=submit]").await;
    b.find("#new-token").await;
    // Every page, with keys in it (issue 13: no horizontal scroll on any page at 375 px), in both
    // languages, and no script error on any.
    seed_keys(&app).await;
    let key_id = first_key_id(&app).await;
    set_mode(&app, &[("access_mode", "open")]).await;
    let pages = [
        "/admin".to_owned(),
        "/admin/keys".to_owned(),
        format!("/admin/keys/{key_id}"),
        "/admin/logs".to_owned(),
        "/admin/settings".to_owned(),
        "/admin/settings/prices".to_owned(),
        "/".to_owned(),
        "/docs".to_owned(),
    ];
    for lang in ["zh-CN", "en"] {
        b.goto(&app.url(&format!("/lang/{lang}?next=/admin"))).await;
        for path in &pages {
            b.goto(&app.url(path)).await;
            b.find("main").await;
            assert!(b.no_horizontal_scroll().await, "{path} scrolls sideways at 375 px ({lang})");
        }
    }
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.goto(&app.url("/admin/settings")).await;
    b.find("#system").await;
    b.screenshot("settings-375").await;
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn keys_import_sort_select_all_and_export_in_a_browser() {
    require_browser();
    let app = support::spawn().await;
    let driver = start_driver().await;
    let b = driver.session(1280, 900).await;
    b.login(&app).await;
    b.goto(&app.url("/admin/keys")).await;

    let keys: Vec<String> = (1..=45).map(|i| format!("sk-browser{i:0>26}")).collect();
    b.type_into("#import-keys", &keys.join("\n")).await;
    b.click("#import button[type=submit]").await;
    b.wait_for_text("#import-result", "45 added").await;
    // The table refreshed itself after the import.
    b.wait_for_text("#keys-table .counts", "45 keys").await;

    // As checks would: every third key active with a balance equal to its number.
    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let (k, balance) = (k.clone(), (i + 1) as f64);
        support::with_db(&app, move |c| {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE keys SET status = 'active', total_balance = $1, checked_at = 1 WHERE key = $2")
                .bind::<diesel::sql_types::Double, _>(balance)
                .bind::<diesel::sql_types::Text, _>(k)
                .execute(c)
                .unwrap();
        })
        .await;
    }

    // Sort by balance: the column header swaps the table and keeps the state in the URL.
    b.click("th a.sort[href*='sort=balance']").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.url().await.contains("sort=balance") {
        assert!(Instant::now() < deadline, "URL did not follow the sort");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let first = b.script("return document.querySelector('#keys-table tbody code[data-key]').dataset.key;").await;
    assert_eq!(first, keys[42].as_str(), "highest balance first");
    b.screenshot("keys-desktop").await;

    // Select all matching keys across the three pages.
    b.click("#keys-table .bulk button[hx-vals*='select_all']").await;
    b.wait_for_text("#selected-count", "45 selected").await;

    // Export the valid keys with a comma separator and read the downloaded file.
    b.click("#export-form select[name=scope] option[value=valid]").await;
    b.click("#export-form select[name=sep] option[value=comma]").await;
    b.click("#export-form button[type=submit]").await;
    let (name, contents) = b.downloaded().await;
    assert!(name.starts_with("keypool-valid-keys-") && name.ends_with(".txt"), "{name}");
    let expected: Vec<&str> = keys.iter().step_by(3).map(String::as_str).collect();
    assert_eq!(contents, expected.join(","));

    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await;
}

async fn set_mode(app: &TestApp, pairs: &'static [(&'static str, &'static str)]) {
    let now = app.state.now_ms();
    support::with_db(app, move |c| {
        use keypool::domain::settings::{Settings, SettingsChange};
        let current = Settings::from_stored(&keypool::db::settings::load_all(c).unwrap());
        let rows = current
            .apply(&SettingsChange::parse(pairs.iter().copied()).unwrap(), keypool::domain::password::hash)
            .unwrap();
        keypool::db::settings::put_many(c, &rows, now).unwrap();
    })
    .await;
    app.state.reload_settings().await.unwrap();
}

/// The id of the pool's first key.
async fn first_key_id(app: &TestApp) -> i64 {
    support::with_db(app, |c| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::sql_query("SELECT MIN(id) AS id FROM keys").get_result::<Id>(c).unwrap().id
    })
    .await
}

/// Fifteen keys with balances, imported and "checked" through the admin's client.
async fn seed_keys(app: &TestApp) -> Vec<String> {
    app.login().await;
    let keys: Vec<String> =
        (1..=15).map(|i| format!("sk-{i:0>2}guestbrowserkeyabcdefghijklmnopqrstuvwxyz0123")).collect();
    app.hx_post("/admin/keys/import", &[("keys", keys.join("\n").as_str())]).await;
    for (i, k) in keys.iter().enumerate() {
        let (k, balance) = (k.clone(), (i * 10) as f64);
        support::with_db(app, move |c| {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE keys SET status = 'active', total_balance = $1, checked_at = 1 WHERE key = $2")
                .bind::<diesel::sql_types::Double, _>(balance)
                .bind::<diesel::sql_types::Text, _>(k)
                .execute(c)
                .unwrap();
        })
        .await;
    }
    keys
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn guest_page_in_all_three_modes_with_copy_on_click() {
    require_browser();
    let app = support::spawn().await;
    let keys = seed_keys(&app).await;
    let driver = start_driver().await;
    let b = driver.session(1280, 900).await;

    // Private (the default): admins only, with a way to sign in.
    b.goto(&app.url("/")).await;
    assert!(b.text("main h1").await.contains("Admins only"));
    b.find("main a[href='/login?next=%2F']").await;
    assert!(b.script("return document.querySelectorAll('.key-card').length;").await == 0);

    // Open: cards, highest balance first; a click copies the whole key and says so.
    set_mode(&app, &[("access_mode", "open")]).await;
    b.goto(&app.url("/")).await;
    let first = b.script("return document.querySelector('.key-card').dataset.copyText;").await;
    assert_eq!(first, keys[14].as_str());
    let url = format!("{}/session/{}/permissions", driver.base, b.session);
    for name in ["clipboard-read", "clipboard-write"] {
        let body = json!({ "descriptor": { "name": name }, "state": "granted" });
        let _ = driver.http.post(&url).json(&body).send().await;
    }
    b.click(".key-card").await;
    b.wait_for_text("#toast", "copied").await;
    let pasted = b
        .call(
            reqwest::Method::POST,
            "/execute/async",
            json!({ "script": "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('error: ' + e));", "args": [] }),
        )
        .await;
    assert_eq!(pasted, keys[14].as_str(), "the clipboard holds the whole key");

    // Paging swaps the cards.
    b.click("#guest-cards .pager a").await;
    b.wait_for_text("#guest-cards .pager", "Page 2 of 2").await;

    // Restricted: the password form; a wrong guess is refused, the right one lets the guest in.
    set_mode(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    b.goto(&app.url("/")).await;
    b.type_into("#guest-password", "wrong-guess").await;
    b.click("form[action='/guest/login'] button[type=submit]").await;
    b.wait_for_text("main .flash-error", "Wrong guest password").await;
    b.type_into("#guest-password", "friends-only").await;
    b.click("form[action='/guest/login'] button[type=submit]").await;
    b.find(".key-card").await;
    let stored = b.script("return JSON.stringify(localStorage) + document.cookie;").await;
    assert!(!stored.as_str().unwrap_or("").contains("friends-only"), "the password is kept nowhere in the browser");
    b.screenshot("guest-desktop").await;

    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn guest_docs_and_keys_pages_fit_a_375_px_phone() {
    require_browser();
    let app = support::spawn().await;
    seed_keys(&app).await;
    set_mode(&app, &[("access_mode", "open")]).await;
    let driver = start_driver().await;
    let b = driver.session(375, 812).await;
    for (path, shot) in [("/", "guest-375"), ("/docs", "docs-375")] {
        b.goto(&app.url(path)).await;
        b.find("main h1").await;
        assert_eq!(b.script("return window.innerWidth;").await, 375);
        assert!(b.no_horizontal_scroll().await, "{path} scrolls sideways at 375 px");
        b.screenshot(shot).await;
    }
    b.login(&app).await;
    b.goto(&app.url("/admin/keys")).await;
    b.find("#keys-table tbody").await;
    assert!(b.no_horizontal_scroll().await, "the keys page scrolls sideways at 375 px");
    b.screenshot("keys-375").await;
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn checks_run_from_the_keys_page_and_fall_back_to_the_server_when_the_browser_is_refused() {
    require_browser();
    let upstream = crate::mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    app.login().await;
    let keys = "sk-ok-12-aaaaaaaaaaaaaaaaa\nsk-ok-0-bbbbbbbbbbbbbbbbbb\nsk-invalid-cccccccccccccccc";
    app.hx_post("/admin/keys/import", &[("keys", keys)]).await;
    let driver = start_driver().await;
    let b = driver.session(1280, 900).await;
    b.login(&app).await;

    // Server mode: the row's "Check" starts a job; the panel follows it and the table refreshes.
    b.goto(&app.url("/admin/keys")).await;
    b.click("details.check-params summary").await;
    b.type_into("#check-params input[name=interval_secs]", "0").await;
    b.click("#keys-table tbody tr:first-child .actions button[hx-post='/admin/checks']").await;
    b.wait_for_text("#check-panel", "Check finished").await;
    b.wait_for_text("#keys-table .counts", "Invalid 1").await;

    // Client mode: the browser is refused by the upstream (no CORS), says so, and offers the server.
    set_mode(&app, &[("client_request_mode", "on")]).await;
    b.goto(&app.url("/admin/keys")).await;
    b.click("details.check-params summary").await;
    b.type_into("#check-params input[name=interval_secs]", "0").await;
    b.click("#keys-table .bulk button[hx-vals*='\"all\"']").await;
    b.accept_alert().await; // "check all" asks first
    b.wait_for_text("#check-panel .client-message", "could not reach the upstream").await;
    assert_eq!(upstream.hits.total(), 1, "the browser's requests never reached the upstream");
    b.click("#check-panel .client-fallback button").await;
    b.wait_for_text("#check-panel", "Check finished").await;
    b.wait_for_text("#keys-table .counts", "Active 1").await;
    assert!(b.text("#keys-table .counts").await.contains("Depleted 1"));
    assert_eq!(upstream.hits.total(), 4);
    b.screenshot("keys-checked").await;
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn dashboard_draws_every_chart_switches_period_toggles_outliers_and_opens_a_key() {
    require_browser();
    let app = support::spawn().await;
    seed_keys(&app).await;
    let now = app.state.now_ms();
    for (i, v) in [100.0, 110.0, 120.0, 130.0, 9000.0].into_iter().enumerate() {
        support::with_db(&app, move |c| {
            use diesel::RunQueryDsl;
            diesel::sql_query("INSERT INTO pool_snapshots (taken_at, active_keys, total_balance) VALUES ($1, 15, $2)")
                .bind::<diesel::sql_types::BigInt, _>(now - (5 - i as i64) * 86_400_000)
                .bind::<diesel::sql_types::Double, _>(v)
                .execute(c)
                .unwrap();
        })
        .await;
    }
    let driver = start_driver().await;
    let b = driver.session(1280, 900).await;
    b.login(&app).await;
    b.goto(&app.url("/admin")).await;
    for panel in ["distribution", "status", "trend", "top"] {
        b.find(&format!("#chart-{panel} .chart svg")).await;
    }
    b.screenshot("dashboard").await;

    b.click("#chart-trend .choices a[href*='period=7d']").await;
    b.wait_for_text("#chart-trend .choices strong", "7 days").await;
    b.find("#chart-trend .chart svg").await;
    b.click("#chart-trend .choices a[href*='outliers=cap']").await;
    b.wait_for_text("#chart-trend .chart-note", "Axis capped").await;
    b.find("#chart-trend .chart svg").await;

    b.click("#dashboard table a[href^='/admin/keys/']").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.url().await.contains("/admin/keys/") {
        assert!(Instant::now() < deadline, "the key's detail did not open");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    b.find("#chart-history .chart svg").await;
    assert!(b.text("main h1").await.contains("Key"));
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn client_mode_checks_from_the_browser_and_the_server_classifies_the_answers() {
    require_browser();
    let upstream = crate::mock::start_allowing_browsers();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    app.login().await;
    let keys = "sk-ok-12-aaaaaaaaaaaaaaaaa\nsk-ok-0-bbbbbbbbbbbbbbbbbb\nsk-invalid-cccccccccccccccc\nsk-flaky-dddddddddddddddddd";
    app.hx_post("/admin/keys/import", &[("keys", keys)]).await;
    set_mode(&app, &[("client_request_mode", "on")]).await;
    let driver = start_driver().await;
    let b = driver.session(1280, 900).await;
    b.login(&app).await;
    b.goto(&app.url("/admin/keys")).await;
    b.click("details.check-params summary").await;
    b.type_into("#check-params input[name=interval_secs]", "0").await;
    b.type_into("#check-params input[name=retry_interval_ms]", "0").await;
    b.click("#keys-table .bulk button[hx-vals*='\"all\"']").await;
    b.accept_alert().await; // "check all" asks first
    b.wait_for_text("#check-panel .client-message", "Checked 4 of 4 keys from this browser").await;
    // The table refreshes itself; the server classified what the browser got.
    b.wait_for_text("#keys-table .counts", "Invalid 1").await;
    let counts = b.text("#keys-table .counts").await;
    assert!(counts.contains("Active 2") && counts.contains("Depleted 1"), "{counts}");
    assert!(app.state.checker.current().is_none(), "no server job ran");
    assert_eq!(upstream.hits.of("sk-flaky-dddddddddddddddddd"), 2, "the browser retried the 500 once");
    assert_eq!(upstream.hits.total(), 5);
    // The upstream's deliberate 500 is logged as a failed resource; nothing else may be.
    let errors: Vec<_> = b.console_errors().await.into_iter().filter(|e| !e.starts_with(&upstream.url)).collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn request_log_filters_by_access_key_and_model_and_opens_from_a_key_page() {
    require_browser();
    let app = support::spawn().await;
    let (rows, keys, access) = crate::logs::seed_log(&app, 130).await;
    let driver = start_driver().await;
    let b = driver.session(1366, 768).await;
    b.login(&app).await;
    b.goto(&app.url("/admin/logs")).await;
    b.find("#logs-table tr[data-id]").await;
    assert!(b.no_horizontal_scroll().await, "the log page scrolls sideways at 1366 px");
    b.screenshot("logs-1366-en").await;

    // Access key from the select, then a model typed (Enter submits): the table is swapped and the URL follows.
    b.click(&format!("#log-access-key option[value='{}']", access[0])).await;
    b.type_into("#log-model", &format!("{}\u{E007}", crate::logs::DEEPSEEK)).await;
    let want = rows.iter().filter(|r| r.access_key == Some("alpha") && r.model == crate::logs::DEEPSEEK).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = b
            .script(&format!(
                "const rows = [...document.querySelectorAll('#logs-table tr[data-id]')]; \
                 return rows.every(r => r.querySelector('.access-key').textContent === 'alpha' \
                   && r.querySelector('.model').textContent === '{}') ? rows.length : -1;",
                crate::logs::DEEPSEEK
            ))
            .await;
        if shown == json!(want) {
            break;
        }
        assert!(Instant::now() < deadline, "the table never showed alpha's {want} rows: {shown}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let url = b.url().await;
    assert!(url.contains(&format!("access_key={}", access[0])) && url.contains("model=deepseek"), "{url}");
    b.screenshot("logs-filtered-1366-en").await;

    // From a key's page to its requests.
    b.goto(&app.url(&format!("/admin/keys/{}", keys[0]))).await;
    b.click("#key-requests").await;
    b.wait_for_url(&format!("/admin/logs?key={}", keys[0])).await;
    b.find("#logs-table tr[data-id]").await;
    let only_this_key = b
        .script(&format!(
            "return [...document.querySelectorAll('#logs-table td.key a')].every(a => a.getAttribute('href') === '/admin/keys/{}');",
            keys[0]
        ))
        .await;
    assert_eq!(only_this_key, true);
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    b.goto(&app.url("/lang/zh-CN?next=/admin/logs")).await;
    b.wait_for_text("h1", "请求日志").await;
    b.screenshot("logs-1366-zh").await;
    b.quit().await;

    let phone = driver.session(375, 812).await;
    phone.login(&app).await;
    for lang in ["en", "zh-CN"] {
        phone.goto(&app.url(&format!("/lang/{lang}?next=/admin/logs"))).await;
        phone.find("#logs-table tr[data-id]").await;
        assert!(phone.no_horizontal_scroll().await, "the log page scrolls sideways at 375 px ({lang})");
        phone.screenshot(&format!("logs-375-{lang}")).await;
        phone.script("document.querySelector('#logs-table').scrollIntoView();").await;
        phone.screenshot(&format!("logs-375-{lang}-rows")).await;
    }
    phone.quit().await;
}

/// Shows `css` at the top of the viewport and saves a screenshot named `name`.
async fn shoot(b: &Browser<'_>, css: &str, name: &str) {
    b.find(css).await;
    b.script(&format!("document.querySelector(\"{css}\").scrollIntoView(); return true;")).await;
    b.screenshot(name).await;
}

/// The settings page's access keys and the guest page with the guest access key, in both languages,
/// on a desktop and on a phone (restricted mode: the admin sees what trusted guests see).
async fn shoot_limits(app: &TestApp, b: &Browser<'_>, width: u32) {
    for lang in ["en", "zh-CN"] {
        b.goto(&app.url(&format!("/lang/{lang}?next=%2Fadmin%2Fsettings"))).await;
        shoot(b, "#access-keys", &format!("limits-settings-{width}-{lang}")).await;
        assert!(b.no_horizontal_scroll().await, "settings scroll sideways at {width} px");
        b.script("document.querySelector('details.limits-edit').open = true; return true;").await;
        shoot(b, "details.limits-edit", &format!("limits-form-{width}-{lang}")).await;
        assert!(b.no_horizontal_scroll().await, "the open limits form scrolls sideways at {width} px");
        b.goto(&app.url("/")).await;
        shoot(b, "#shared-key", &format!("limits-guest-{width}-{lang}")).await;
        assert!(b.no_horizontal_scroll().await, "the guest page scrolls sideways at {width} px");
    }
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn an_access_key_limited_in_the_browser_fills_its_bar_and_shows_when_it_resets() {
    require_browser();
    let upstream = crate::mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    support::seed_active(&app, &[("sk-ok-9-browserlimitsbrowserlim", 9.0)]).await;
    let driver = start_driver().await;
    let b = driver.session(1366, 768).await;
    b.login(&app).await;

    b.type_into("#access-key-name", "friend").await;
    b.click("#access-keys form.inline button[type=submit]").await;
    let token = b.text("#new-token").await;
    let id = support::with_db(&app, |c| keypool::db::access_keys::find_by_name(c, "friend").unwrap().unwrap().id).await;
    let row = format!("tr[data-access-key='{id}']");
    b.click(&format!("{row} details.limits-edit summary")).await;
    b.type_into(&format!("#limits-{id}-rpm"), "2").await;
    b.click(&format!("{row} form.limits-form button[type=submit]")).await;
    b.wait_for_text("#access-keys .flash-success", "Limits saved").await;

    let body = json!({ "model": "Qwen/Qwen3-8B", "messages": [{ "role": "user", "content": "hi" }] });
    let mut statuses = Vec::new();
    while statuses.last() != Some(&429) && statuses.len() < 5 {
        let res =
            app.client.post(app.url("/v1/chat/completions")).bearer_auth(&token).json(&body).send().await.unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429], "two requests a minute");

    b.goto(&app.url("/admin/settings")).await;
    let bar = b.text(&format!("{row} li.limit-bar.full[data-limit='rpm']")).await;
    assert!(bar.contains("2 / 2") && bar.contains("resets") && bar.contains("UTC+8"), "{bar}");

    // Shared with guests (confirmed in the dialog), for the pictures of the guest page.
    b.click(&format!("{row} form.limit-action[action$='/share'] button")).await;
    b.accept_alert().await;
    b.wait_for_text("#access-keys .flash-success", "guest access key").await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    set_mode(&app, &[("access_mode", "restricted"), ("guest_password", "friends-only")]).await;
    shoot_limits(&app, &b, 1366).await;
    b.quit().await;
    let phone = driver.session(375, 812).await;
    phone.login(&app).await;
    shoot_limits(&app, &phone, 375).await;
    phone.quit().await;
}

/// Screenshots of every page, whole (beyond the viewport), at 1366×768 and 375×812, in both languages and
/// both themes, into `target/screenshots/PAGE-LANG-WIDTH[-dark].png`, for a reviewer to look at. Not a check: run it with
/// `cargo test --test integration screenshots -- --ignored`.
#[ignore = "writes screenshots for a reviewer: cargo test --test integration screenshots -- --ignored"]
#[actix_web::test]
async fn screenshots_of_every_page() {
    require_browser();
    let app = support::spawn().await;
    let keys = seed_keys(&app).await;
    let token = support::access_key(&app).await;
    let limited = [("rpm", "60"), ("rpd", "1000"), ("spend_day", "5"), ("note", "for the team")];
    let id = support::with_db(&app, |c| keypool::db::access_keys::list(c).unwrap()[0].id).await;
    app.hx_post(&format!("/admin/access-keys/{id}/limits"), &limited).await;
    let key_id = first_key_id(&app).await;
    let _ = (keys, token);
    // Keys with reasons (read in each language) and log rows with the gateway's own errors.
    let reasons = [
        ("depleted", "reason", r#"{"code":"balance_low","balance":"-0.01"}"#),
        ("invalid", "reason", r#"{"code":"upstream","status":401,"message":"Api key is invalid"}"#),
        ("unchecked", "error", r#"{"code":"upstream","status":429,"message":"TPM limit reached"}"#),
    ];
    for (i, (status, column, reason)) in reasons.into_iter().enumerate() {
        support::with_db(&app, move |c| {
            use diesel::RunQueryDsl;
            let column = if column == "reason" { "status_reason" } else { "last_error" };
            let sql = format!("UPDATE keys SET status = $1, {column} = $2 WHERE id = (SELECT MIN(id) FROM keys) + {i}");
            diesel::sql_query(sql)
                .bind::<diesel::sql_types::Text, _>(status)
                .bind::<diesel::sql_types::Text, _>(reason)
                .execute(c)
                .unwrap();
        })
        .await;
    }
    for token in [None, Some("kp-wrong")] {
        let req = app.client.post(app.url("/v1/chat/completions")).json(&json!({}));
        let _ = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
        .send()
        .await;
    }
    support::flush_outcomes(&app).await;
    set_mode(&app, &[("access_mode", "open")]).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let driver = start_driver().await;
    let pages = [
        ("dashboard", "/admin".to_owned()),
        ("keys", "/admin/keys".to_owned()),
        ("key", format!("/admin/keys/{}", key_id + 1)),
        ("logs", "/admin/logs".to_owned()),
        ("settings", "/admin/settings".to_owned()),
        ("prices", "/admin/settings/prices".to_owned()),
        ("guest", "/".to_owned()),
        ("docs", "/docs".to_owned()),
    ];
    for (width, height) in [(1366, 768), (375, 812)] {
        let b = driver.session(width, height).await;
        // The login page as a visitor sees it (once signed in, /login goes on to the dashboard).
        for lang in ["en", "zh-CN"] {
            b.goto(&app.url(&format!("/lang/{lang}?next=/login"))).await;
            b.find("#username").await;
            b.full_screenshot(&dir.join(format!("login-{lang}-{width}.png"))).await;
        }
        b.login(&app).await;
        for (lang, theme) in [("en", "light"), ("zh-CN", "light"), ("en", "dark"), ("zh-CN", "dark")] {
            b.goto(&app.url(&format!("/lang/{lang}?next=/admin"))).await;
            b.script(&format!("localStorage.setItem('theme', '{theme}');")).await;
            let suffix = if theme == "dark" { "-dark" } else { "" };
            for (name, path) in &pages {
                b.goto(&app.url(path)).await;
                b.find("body").await;
                actix_web::rt::time::sleep(Duration::from_millis(500)).await; // charts draw
                b.full_screenshot(&dir.join(format!("{name}-{lang}-{width}{suffix}.png"))).await;
            }
        }
        b.quit().await;
    }
    println!("screenshots in {}", dir.display());
}

// Keys page (issue 13): empty exports refused with a message, counts said, a transient check
// failure visible and filterable, a row click selecting, the import box cleared.

impl Browser<'_> {
    /// Empties the toast, so the next message is seen anew.
    async fn clear_toast(&self) {
        self.script("const t = document.getElementById('toast'); t.textContent = ''; t.hidden = true; return true;")
            .await;
    }

    /// The value of a form control.
    async fn value(&self, css: &str) -> String {
        let v = self.script(&format!("return document.querySelector(\"{css}\").value;")).await;
        v.as_str().unwrap_or("").to_owned()
    }

    async fn grant_clipboard(&self) {
        let url = format!("{}/session/{}/permissions", self.driver.base, self.session);
        for name in ["clipboard-read", "clipboard-write"] {
            let body = json!({ "descriptor": { "name": name }, "state": "granted" });
            let _ = self.driver.http.post(&url).json(&body).send().await;
        }
    }

    async fn downloads_count(&self) -> usize {
        std::fs::read_dir(&self.downloads).map(|d| d.count()).unwrap_or(0)
    }
}

/// The whole keys page with every reason open, beside the screenshots command's pictures.
async fn shoot_keys(b: &Browser<'_>, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    b.find("#keys-table tbody").await;
    b.script("document.querySelectorAll('details.state-reason').forEach(d => d.open = true); return true;").await;
    b.full_screenshot(&dir.join(format!("{name}.png"))).await;
}

/// Sets the last error of a key, as a transient check failure (429, 5xx, timeout) leaves it.
async fn fail_check(app: &TestApp, key: &str, error: &str) {
    let (key, error) = (key.to_owned(), error.to_owned());
    support::with_db(app, move |c| {
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE keys SET last_error = $1 WHERE key = $2")
            .bind::<diesel::sql_types::Text, _>(error)
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(c)
            .unwrap();
    })
    .await;
}

/// Imports three keys through the page: the box is emptied; a refused line stays to be fixed.
async fn import_clears_the_box(b: &Browser<'_>, keys: &[String]) {
    // No check right away: the failures below are the test's own.
    b.click("#import input[name=check_now]").await;
    b.type_into("#import-keys", &keys.join("\n")).await;
    b.click("#import button[type=submit]").await;
    b.wait_for_text("#import-result", &format!("{} added", keys.len())).await;
    b.wait_for_text("#keys-table .counts", &format!("{} keys", keys.len())).await;
    assert_eq!(b.value("#import-keys").await, "", "the box is cleared after a successful import");
    b.type_into("#import-keys", "short").await;
    b.click("#import button[type=submit]").await;
    b.wait_for_text("#import-result", "1 rejected").await;
    assert_eq!(b.value("#import-keys").await, "short", "a refused line stays in the box");
}

/// An empty selection: export, copy and the bulk bar's export say so; nothing is downloaded.
async fn empty_exports_are_refused(b: &Browser<'_>, message: &str) {
    let before = b.downloads_count().await;
    b.script("document.querySelector('#export-form select[name=scope]').value = 'selection'; return true;").await;
    for button in [
        "#export-form button[type=submit]",
        "#export-form button[data-copy-export]",
        "#keys-table a[data-export-check]",
    ] {
        b.clear_toast().await;
        b.click(button).await;
        b.wait_for_text("#toast", message).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.downloads_count().await, before, "no empty file was downloaded");
}

/// A key whose check failed transiently reads "Check failed", its reason opens with a tap, and the
/// state's badge filters the table.
async fn transient_failure_is_visible_and_filterable(b: &Browser<'_>, app: &TestApp) {
    b.goto(&app.url("/admin/keys")).await;
    b.wait_for_text("#keys-table .counts a.status-check_failed", "Check failed 1").await;
    let summary = "#keys-table td.state details.state-reason summary .status-check_failed";
    assert_eq!(b.text(summary).await, "Check failed");
    b.click("#keys-table td.state details.state-reason summary").await;
    b.wait_for_text("#keys-table td.state details.state-reason[open] .reason", "upstream answered 503").await;
    assert!(b.no_horizontal_scroll().await, "the open reason widens the page");
    b.click("#keys-table .counts a.status-check_failed").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.url().await.contains("status=check_failed") {
        assert!(Instant::now() < deadline, "the URL did not follow the filter");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = b.script("return document.querySelectorAll('#keys-table tbody tr').length;").await;
    assert_eq!(rows, 1, "only the key whose check failed");
    assert_eq!(b.value("#filter-status").await, "check_failed", "the filter's select follows");
}

/// A click on a row's plain cell toggles its selection (the box, the count).
async fn row_click_selects(b: &Browser<'_>) {
    b.click("#keys-table tbody tr[data-select-row] td.balance").await;
    b.wait_for_text("#selected-count", "1 selected").await;
    let checked =
        b.script("return document.querySelector('#keys-table tbody tr.selected td.check input').checked;").await;
    assert_eq!(checked, true);
    b.click("#keys-table tbody tr[data-select-row] td.balance").await;
    b.wait_for_text("#selected-count", "0 selected").await;
    b.click("#keys-table tbody tr[data-select-row] td.balance").await;
    b.wait_for_text("#selected-count", "1 selected").await;
}

async fn keys_page_ux_at(driver: &Driver, width: u32, height: u32) {
    let app = &support::spawn().await;
    let b = driver.session(width, height).await;
    b.login(app).await;
    b.goto(&app.url("/lang/en?next=/admin/keys")).await;
    let keys: Vec<String> = (1..=3).map(|i| format!("sk-ux{width}-{i:0>24}")).collect();
    import_clears_the_box(&b, &keys).await;
    assert!(b.no_horizontal_scroll().await, "the keys page scrolls sideways at {width} px");
    empty_exports_are_refused(&b, "Select the keys to export first.").await;

    fail_check(app, &keys[0], "upstream answered 503").await;
    transient_failure_is_visible_and_filterable(&b, app).await;
    b.goto(&app.url("/admin/keys?status=check_failed")).await;
    row_click_selects(&b).await;

    // One selected: the export says how many keys it holds, and downloads them.
    b.clear_toast().await;
    b.click("#export-form button[type=submit]").await;
    b.wait_for_text("#toast", "Keys exported: 1").await;
    if width > 500 {
        let (name, contents) = b.downloaded().await;
        assert!(name.starts_with("keypool-selected-keys-"), "{name}");
        assert_eq!(contents, keys[0]);
        b.grant_clipboard().await;
        b.clear_toast().await;
        b.click("#export-form button[data-copy-export]").await;
        b.wait_for_text("#toast", "Keys copied: 1").await;
    }

    b.goto(&app.url("/admin/keys")).await;
    b.wait_for_text("#selected-count", "1 selected").await;
    assert!(b.no_horizontal_scroll().await, "the keys page scrolls sideways at {width} px");
    shoot_keys(&b, &format!("keys-ux-en-{width}")).await;

    // In Chinese, after clearing the selection: the original's message.
    b.click("#keys-table .bulk button[hx-vals*='clear']").await;
    b.wait_for_text("#selected-count", "0 selected").await;
    b.goto(&app.url("/lang/zh-CN?next=/admin/keys")).await;
    b.wait_for_text("h1", "密钥管理").await;
    empty_exports_are_refused(&b, "请先选择要导出的密钥").await;
    b.wait_for_text("#keys-table .counts a.status-check_failed", "检测失败 1").await;
    assert!(b.no_horizontal_scroll().await, "the keys page scrolls sideways at {width} px (zh-CN)");
    shoot_keys(&b, &format!("keys-ux-zh-CN-{width}")).await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors at {width} px: {errors:?}");
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn keys_refuse_empty_exports_show_failed_checks_select_rows_and_clear_the_import() {
    require_browser();
    let driver = start_driver().await;
    keys_page_ux_at(&driver, 1366, 768).await;
    keys_page_ux_at(&driver, 375, 812).await;
}
/// Polls until `script` (an expression) is true in the page.
async fn wait_until(b: &Browser<'_>, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.script(&format!("return !!({script});")).await != true {
        assert!(Instant::now() < deadline, "never true: {script} on {}", b.url().await);
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn step_done(b: &Browser<'_>, step: &str) -> Value {
    b.script(&format!("const s = document.getElementById('step-{step}'); return s && s.dataset.done;")).await
}

/// The first-run checklist ticking through in a browser, at a desktop and a phone width, in both
/// languages: add keys from its link, "check all keys" through its confirmation, an access key from
/// its link; then the checklist is gone. Its pictures go to `target/screenshots/first-run-*.png`.
#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn first_run_checklist_ticks_through_on_a_desktop_and_a_phone_in_both_languages() {
    require_browser();
    let upstream = crate::mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let driver = start_driver().await;
    for (width, height) in [(1366, 768), (375, 812)] {
        let b = driver.session(width, height).await;
        // The login page as a visitor sees it (once signed in, /login goes on to the dashboard).
        for lang in ["en", "zh-CN"] {
            b.goto(&app.url(&format!("/lang/{lang}?next=/login"))).await;
            b.find("#username").await;
            b.full_screenshot(&dir.join(format!("login-{lang}-{width}.png"))).await;
        }
        b.login(&app).await;
        for lang in ["en", "zh-CN"] {
            // A fresh install again.
            support::with_db(&app, |c| {
                use diesel::RunQueryDsl;
                diesel::sql_query("DELETE FROM keys").execute(c).unwrap();
                diesel::sql_query("DELETE FROM access_keys").execute(c).unwrap();
            })
            .await;
            b.goto(&app.url(&format!("/lang/{lang}?next=/admin"))).await;
            b.find("#first-run").await;
            for step in ["keys", "check", "access", "sdk"] {
                assert_eq!(step_done(&b, step).await, "false", "{step} at {width} px in {lang}");
            }
            assert!(b.text("#first-run pre.snippet").await.contains(&format!("{}/v1", app.base)));
            assert!(b.no_horizontal_scroll().await, "no sideways scroll at {width} px in {lang}");
            b.full_screenshot(&dir.join(format!("first-run-{lang}-{width}.png"))).await;

            // 1. Keys, from the step's link.
            b.click("#step-keys a").await;
            b.wait_for_url("/admin/keys").await;
            b.type_into("#import-keys", "sk-ok-12-aaaaaaaaaaaaaaaaaaaa\nsk-ok-3-bbbbbbbbbbbbbbbbbbbbb").await;
            // Not checked on import: the checklist's own step does it.
            b.click("#import input[name=check_now]").await;
            b.click("#import button[type=submit]").await;
            let deadline = Instant::now() + Duration::from_secs(10);
            let count = || support::with_db(&app, |c| keypool::db::keys::count_by_status(c).unwrap());
            while count().await.iter().map(|(_, n)| n).sum::<i64>() < 2 {
                assert!(Instant::now() < deadline, "the import never landed");
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
            b.goto(&app.url("/admin")).await;
            wait_until(&b, "document.querySelector('#step-keys[data-done=true]')").await;
            assert_eq!(step_done(&b, "check").await, "false");

            // 2. "Check all keys", confirmed; the dashboard refreshes when the job ends.
            b.click("#check-all").await;
            b.accept_alert().await;
            wait_until(&b, "document.querySelector('#step-check[data-done=true]')").await;
            assert_eq!(step_done(&b, "access").await, "false");
            assert!(b.no_horizontal_scroll().await, "no sideways scroll with the check panel at {width} px");

            // 3. An access key, from the step's link to the settings' access-key section.
            b.click("#step-access a").await;
            b.wait_for_url("/admin/settings#access-keys").await;
            b.type_into("#access-key-name", "laptop").await;
            b.click("#access-keys form.inline button[type=submit]").await;
            b.find("#new-token").await;
            b.goto(&app.url("/admin")).await;
            b.find("#check-all").await;
            assert_eq!(b.script("return document.getElementById('first-run') === null;").await, true);
            assert!(b.no_horizontal_scroll().await, "no sideways scroll at {width} px in {lang}");
        }
        let errors = b.console_errors().await;
        assert!(errors.is_empty(), "console errors at {width} px: {errors:?}");
        b.quit().await;
    }
}

/// The login lockout in a browser: the form again with when to retry, at both widths and in both
/// languages, no sideways scroll; its pictures go to `target/screenshots/login-lockout-*.png`.
#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn login_lockout_shows_the_form_with_when_to_retry_in_a_browser() {
    require_browser();
    let app = support::spawn().await;
    for _ in 0..5 {
        assert_eq!(app.login_with(&app.client, ADMIN_USER, "nope-nope").await.status(), 401);
    }
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let driver = start_driver().await;
    for (width, height) in [(1366, 768), (375, 812)] {
        let b = driver.session(width, height).await;
        for (lang, says) in [("en", "Try again in 300 seconds"), ("zh-CN", "请在 300 秒")] {
            b.goto(&app.url(&format!("/lang/{lang}?next=/login"))).await;
            b.type_into("#username", ADMIN_USER).await;
            b.type_into("#password", ADMIN_PASSWORD).await;
            b.click("form[action='/login'] button[type=submit]").await;
            let message = b.wait_for_text(".flash-error", says).await;
            assert!(!message.is_empty());
            b.find("form[action='/login'] #password").await;
            assert!(b.no_horizontal_scroll().await, "no sideways scroll at {width} px in {lang}");
            b.full_screenshot(&dir.join(format!("login-lockout-{lang}-{width}.png"))).await;
        }
        let errors: Vec<String> =
            b.console_errors().await.into_iter().filter(|m| !m.contains("status of 429")).collect();
        assert!(errors.is_empty(), "console errors at {width} px: {errors:?}");
        b.quit().await;
    }
}

// Dashboard charts (issue 13): every bucket labelled, choices kept in the address through a reload,
// readable at a phone's width.

/// Waits until every chart panel has drawn its SVG.
async fn charts_drawn(b: &Browser<'_>) {
    for panel in ["distribution", "status", "trend", "top"] {
        b.find(&format!("#chart-{panel} .chart svg")).await;
    }
}

/// The distribution's axis labels as drawn (the bucket labels read `(a, b]` or `> a`).
async fn bucket_labels(b: &Browser<'_>) -> Vec<String> {
    let labels = b
        .script(
            "return [...document.querySelectorAll('#chart-distribution svg text')].map(t => t.textContent)\
             .filter(t => /^\\(.*\\]$|^> /.test(t));",
        )
        .await;
    labels.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

async fn chart_choices_at(driver: &Driver, app: &TestApp, width: u32, height: u32) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let b = driver.session(width, height).await;
    b.login(app).await;
    for lang in ["en", "zh-CN"] {
        b.goto(&app.url(&format!("/lang/{lang}?next=/admin"))).await;
        charts_drawn(&b).await;
        let fixed = bucket_labels(&b).await;
        assert_eq!(fixed.len(), 7, "all seven fixed buckets labelled at {width} px in {lang}: {fixed:?}");
        assert!(b.no_horizontal_scroll().await, "no sideways scroll at {width} px in {lang}");
        b.full_screenshot(&dir.join(format!("dashboard-charts-fixed-{lang}-{width}.png"))).await;

        b.click("#chart-trend .choices a[href*='period=7d']").await;
        b.wait_for_url("period=7d&outliers=show").await;
        b.click("#chart-trend .choices a[href*='outliers=cap']").await;
        b.wait_for_url("period=7d&outliers=cap").await;
        b.click("#chart-distribution .choices a[href*='buckets=auto']").await;
        b.wait_for_url("buckets=auto").await;
        b.click("#chart-top .choices a[href*='top=20']").await;
        b.wait_for_url("top=20").await;
        let url = b.url().await;
        assert!(url.ends_with("/admin?period=7d&outliers=cap&buckets=auto&top=20"), "{url}");

        // A reload renders the same choices.
        b.goto(&url).await;
        charts_drawn(&b).await;
        assert!(b.text("#chart-trend .choices strong").await.contains('7'), "7 days kept in {lang}");
        b.find("#chart-trend .choices a[href*='outliers=show']").await;
        b.find("#chart-distribution .choices a[href*='buckets=fixed']").await;
        assert!(b.text("#chart-top .choices strong").await.contains("20"), "top 20 kept in {lang}");
        let auto = bucket_labels(&b).await;
        assert!(!auto.is_empty() && auto.iter().all(|l| !l.contains("0000")), "round bounds: {auto:?}");
        // So does the dashboard's own refresh.
        b.click(".page-head .refresh button").await;
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        charts_drawn(&b).await;
        assert!(b.text("#chart-top .choices strong").await.contains("20"), "the refresh keeps top 20");
        assert!(b.no_horizontal_scroll().await, "no sideways scroll at {width} px in {lang}");
        b.full_screenshot(&dir.join(format!("dashboard-charts-{lang}-{width}.png"))).await;
    }
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors at {width} px: {errors:?}");
    b.quit().await;
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn chart_choices_survive_a_reload_and_charts_fit_a_phone_in_both_languages() {
    require_browser();
    let app = support::spawn().await;
    seed_keys(&app).await;
    let driver = start_driver().await;
    chart_choices_at(&driver, &app, 1366, 768).await;
    chart_choices_at(&driver, &app, 375, 812).await;
}

/// Emoji that need an emoji font (empty boxes on a Linux desktop): icons are inline SVG instead.
const EMOJI_ICONS: [&str; 3] = ["👁", "⧉", "📋"];

async fn assert_no_emoji_icons(b: &Browser<'_>, page: &str) {
    let text = b.script("return document.body.innerText + ' ' + document.body.innerHTML;").await;
    let text = text.as_str().unwrap_or("");
    for e in EMOJI_ICONS {
        assert!(!text.contains(e), "{page} still shows the emoji {e}");
    }
}

/// The theme `<html>` is drawn in: the page background's colour.
async fn page_background(b: &Browser<'_>) -> String {
    b.script("return getComputedStyle(document.body).backgroundColor;").await.as_str().unwrap_or("").to_owned()
}

async fn design_at(driver: &Driver, app: &TestApp, width: u32, height: u32) {
    let b = driver.session(width, height).await;
    b.login(app).await;
    for lang in ["en", "zh-CN"] {
        b.goto(&app.url(&format!("/lang/{lang}?next=/admin/keys"))).await;
        b.find("#keys-table tbody").await;
        assert_no_emoji_icons(&b, "the keys page").await;
        let icons = b.script("return document.querySelectorAll('button.icon svg').length;").await;
        assert!(icons.as_u64().unwrap_or(0) >= 2, "the keys' reveal and copy buttons draw SVG icons");
        let unlabelled = b.script("return [...document.querySelectorAll('button.icon')].filter(x => !x.getAttribute('aria-label')).length;").await;
        assert_eq!(unlabelled, 0, "every icon button has an aria-label");
        let faded = b
            .script("const d = [...document.querySelectorAll('button:disabled')]; return d.length > 0 && d.every(x => parseFloat(getComputedStyle(x).opacity) < 0.6 && getComputedStyle(x).cursor === 'not-allowed');")
            .await;
        assert_eq!(faded, true, "disabled buttons look disabled");
        // The copy icon flashes a tick, then gets its icon back.
        b.grant_clipboard().await;
        b.click("button.icon[data-copy-text]").await;
        actix_web::rt::time::sleep(Duration::from_millis(400)).await;
        let tick = b.script("return document.querySelector('button.icon[data-copy-text]').textContent;").await;
        assert_eq!(tick, "✓", "a copy flashes a tick");
        actix_web::rt::time::sleep(Duration::from_millis(1800)).await;
        let svg = b.script("return !!document.querySelector('button.icon[data-copy-text] svg');").await;
        assert_eq!(svg, true, "the copy button shows its icon again after a copy");

        // The toggle flips the theme, and the choice survives a reload.
        b.script("localStorage.removeItem('theme'); document.documentElement.removeAttribute('data-theme');").await;
        let light = page_background(&b).await;
        b.click("[data-theme-toggle]").await;
        let dark = page_background(&b).await;
        assert_ne!(light, dark, "the toggle changes the colours");
        assert_eq!(b.script("return document.documentElement.dataset.theme;").await, "dark");
        b.goto(&app.url("/admin")).await;
        b.find("main h1").await;
        assert_eq!(b.script("return document.documentElement.dataset.theme;").await, "dark", "kept after a reload");
        assert_eq!(page_background(&b).await, dark);
        assert_eq!(
            b.script("return document.querySelector('[data-theme-toggle]').getAttribute('aria-pressed');").await,
            "true"
        );
        assert!(b.no_horizontal_scroll().await, "the dashboard scrolls sideways at {width} px");
        b.click("[data-theme-toggle]").await;
        assert_eq!(page_background(&b).await, light, "and back to light");

        // The guest page: stat cards, a one-line total, keys never broken, no emoji.
        b.goto(&app.url("/")).await;
        b.find("#count-balance").await;
        assert_no_emoji_icons(&b, "the guest page").await;
        let lines = b.script("const e = document.getElementById('count-balance'); const lh = parseFloat(getComputedStyle(e).lineHeight); return Math.round(e.getBoundingClientRect().height / lh);").await;
        assert_eq!(lines, 1, "the total is one line at {width} px");
        let fits = b
            .script("const e = document.getElementById('count-balance'); return e.scrollWidth <= e.clientWidth;")
            .await;
        assert_eq!(fits, true, "the total is whole at {width} px");
        let broken = b.script("return [...document.querySelectorAll('.card-key')].filter(e => e.getClientRects().length > 1 || e.getBoundingClientRect().height > 2 * parseFloat(getComputedStyle(e).fontSize)).length;").await;
        assert_eq!(broken, 0, "no key breaks over two lines at {width} px");
        let tiers = b.script("return new Set([...document.querySelectorAll('.key-card')].map(e => getComputedStyle(e).borderLeftColor)).size;").await;
        assert!(tiers.as_u64().unwrap_or(0) >= 2, "balance tiers are told apart by colour");
        assert!(b.no_horizontal_scroll().await, "the guest page scrolls sideways at {width} px");
    }
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await;
}

/// The design system: a theme toggle that survives a reload, SVG icons instead of emoji, a guest total on
/// one line and whole keys at 1366×768 and 375×812, in both languages.
#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn theme_toggle_icons_and_guest_stat_cards_on_a_desktop_and_a_phone() {
    require_browser();
    let app = support::spawn().await;
    seed_keys(&app).await;
    set_mode(&app, &[("access_mode", "open")]).await;
    support::with_db(&app, |c| {
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE keys SET total_balance = 8829.24 WHERE id = (SELECT MIN(id) FROM keys)")
            .execute(c)
            .unwrap();
    })
    .await;
    let driver = start_driver().await;
    design_at(&driver, &app, 1366, 768).await;
    design_at(&driver, &app, 375, 812).await;
}

// Key detail and long work in view (issue 13, ux-detail): the detail page's actions and way back, the
// check panel in view after an import, "check all" confirmed with the count, parameters kept.

impl Browser<'_> {
    /// The text of the open dialog, then dismisses it.
    async fn dismiss_alert_text(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.call(reqwest::Method::GET, "/alert/text", json!({})).await;
            if let Some(text) = v.as_str() {
                self.call(reqwest::Method::POST, "/alert/dismiss", json!({})).await;
                return text.to_owned();
            }
            assert!(Instant::now() < deadline, "no confirmation dialog appeared: {v}");
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Waits until no check job runs on the server.
async fn no_job_running(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.state.checker.current().is_some_and(|j| j.progress().running) {
        assert!(Instant::now() < deadline, "the check job never finished");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Check parameters typed in survive a reload; an import with "check the new keys now" brings the
/// panel into view; "check all" asks first with the count.
async fn panel_in_view_after_import(app: &TestApp, b: &Browser<'_>) {
    b.goto(&app.url("/admin/keys")).await;
    b.click("details.check-params summary").await;
    b.type_into("#check-params input[name=interval_secs]", "0").await;
    b.type_into("#check-params input[name=concurrency]", "4").await;
    b.goto(&app.url("/admin/keys")).await;
    b.find("#check-params").await;
    assert_eq!(b.value("#check-params input[name=concurrency]").await, "4", "parameters survive a reload");
    assert_eq!(b.value("#check-params input[name=interval_secs]").await, "0");
    let keys: Vec<String> = (1..=3).map(|i| format!("sk-ok-{i}-{}", "abcdefghij".repeat(2))).collect();
    b.type_into("#import-keys", &keys.join("\n")).await;
    b.script("window.scrollTo(0, 0); return true;").await;
    b.click("#import button[type=submit]").await;
    wait_until(b, "document.querySelector('#check-panel .check-head')").await;
    let in_view = "(() => { const r = document.getElementById('check-panel').getBoundingClientRect(); \
                   return r.top >= 0 && r.top < window.innerHeight && r.bottom > 0; })()";
    wait_until(b, in_view).await;
    no_job_running(app).await;
    b.goto(&app.url("/admin/keys")).await;
    b.click("#keys-table .bulk button[data-check-scope=all]").await;
    let question = b.dismiss_alert_text().await;
    assert!(question.contains('3'), "the count is asked: {question}");
    assert!(app.state.checker.current().is_some_and(|j| j.progress().total == 3), "dismissed: no new job");
}

/// From a filtered list to a key's page: disable then enable, check, and delete back to the list.
async fn key_detail_actions(app: &TestApp, b: &Browser<'_>, shot: &std::path::Path) {
    support::with_db(app, |c| {
        use diesel::RunQueryDsl;
        diesel::sql_query("UPDATE keys SET total_balance = 99").execute(c).unwrap();
    })
    .await;
    b.goto(&app.url("/admin/keys?status=active&size=20")).await;
    b.click("#keys-table tbody tr:first-child td.num a").await;
    wait_until(b, "/^\\/admin\\/keys\\/\\d+$/.test(location.pathname)").await;
    let back = b.script("return document.getElementById('back-to-list').getAttribute('href');").await;
    assert!(back.as_str().unwrap_or("").contains("status=active"), "the way back keeps the filter: {back}");
    b.click("#key-actions button[data-action=disable]").await;
    b.click("#key-actions button[data-action=enable]").await;
    b.find("#key-actions button[data-action=disable]").await;
    b.click("#detail-check").await;
    wait_until(
        b,
        "document.querySelector('#check-panel progress') && !document.querySelector('#check-panel button.danger')",
    )
    .await;
    wait_until(b, "!document.querySelector('dl.facts').textContent.includes('99.00')").await;
    assert!(b.no_horizontal_scroll().await, "the key page scrolls sideways");
    b.full_screenshot(shot).await;
    b.click("#key-actions button[data-action=delete]").await;
    b.accept_alert().await;
    wait_until(b, "location.pathname === '/admin/keys' && location.search.includes('status=active')").await;
    wait_until(b, "document.querySelectorAll('#keys-table tbody tr').length === 2").await;
    assert!(b.no_horizontal_scroll().await, "the keys page scrolls sideways");
}

#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn key_detail_actions_and_the_check_panel_in_view_on_a_desktop_and_a_phone_in_both_languages() {
    require_browser();
    let upstream = crate::mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let driver = start_driver().await;
    for (width, height) in [(1366, 768), (375, 812)] {
        let b = driver.session(width, height).await;
        // The login page as a visitor sees it (once signed in, /login goes on to the dashboard).
        for lang in ["en", "zh-CN"] {
            b.goto(&app.url(&format!("/lang/{lang}?next=/login"))).await;
            b.find("#username").await;
            b.full_screenshot(&dir.join(format!("login-{lang}-{width}.png"))).await;
        }
        b.login(&app).await;
        for lang in ["en", "zh-CN"] {
            no_job_running(&app).await;
            support::with_db(&app, |c| {
                use diesel::RunQueryDsl;
                diesel::sql_query("DELETE FROM keys").execute(c).unwrap();
            })
            .await;
            b.goto(&app.url(&format!("/lang/{lang}?next=/admin/keys"))).await;
            panel_in_view_after_import(&app, &b).await;
            key_detail_actions(&app, &b, &dir.join(format!("key-detail-{lang}-{width}.png"))).await;
        }
        let errors = b.console_errors().await;
        assert!(errors.is_empty(), "console errors at {width} px: {errors:?}");
        b.quit().await;
    }
}

/// Issue 13: "check all keys" on the dashboard runs with the check parameters this browser remembers
/// from the keys page, and its confirmation and hint give the time for them, not for the defaults.
#[cfg_attr(
    not(keypool_browser),
    ignore = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
)]
#[actix_web::test]
async fn check_all_on_the_dashboard_uses_and_estimates_the_remembered_parameters() {
    require_browser();
    let app = support::spawn().await;
    seed_keys(&app).await;
    let driver = start_driver().await;
    let b = driver.session(1366, 768).await;
    b.login(&app).await;
    b.goto(&app.url("/lang/en?next=/admin")).await;
    let confirm = "return document.getElementById('check-all').getAttribute('hx-confirm');";
    assert_eq!(b.script(confirm).await, "Check all 15 keys now? It takes about 4 s.", "the defaults: 2 rounds of 10");
    // One at a time, 2 s apart: 15 rounds of about 3 s.
    let params = r#"{"concurrency":"1","interval_mode":"fixed","interval_secs":"2","retries":"0"}"#;
    b.script(&format!("localStorage.setItem('keypool.check-params', '{params}');")).await;
    b.goto(&app.url("/admin")).await;
    b.find("#check-all").await;
    assert_eq!(b.script(confirm).await, "Check all 15 keys now? It takes about 45 s.");
    assert_eq!(b.text("#check-all-hint").await, "15 keys, about 45 s");
    b.click("#check-all").await;
    b.accept_alert().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        if let Some(job) = app.state.checker.current() {
            break job;
        }
        assert!(Instant::now() < deadline, "no job started");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    job.request_stop();
    assert_eq!(job.params.concurrency, 1);
    assert_eq!(job.params.interval, keypool::domain::checks::Interval::Fixed(Duration::from_secs(2)));
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    b.quit().await;
}
