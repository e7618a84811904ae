//! The real app on port 0 with a fresh database per test (SQLite in a temp dir, or a new PostgreSQL
//! database when `KEYPOOL_TEST_POSTGRES_URL` is set), a manual clock and a cookie-keeping client.

use std::time::Duration;

use actix_web::web;
use diesel::{Connection, RunQueryDsl};
use keypool::config::{Config, DatabaseUrl};
use keypool::domain::clock::{Clock, ManualClock};
use keypool::startup::Application;
use keypool::state::AppState;

pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

/// A database that exists for one test.
pub enum TestDb {
    /// Another app's database.
    Borrowed,
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        server_url: String,
        name: String,
    },
}

impl TestDb {
    pub fn new() -> (Self, DatabaseUrl) {
        match std::env::var("KEYPOOL_TEST_POSTGRES_URL").ok().filter(|v| !v.is_empty()) {
            Some(server_url) => {
                let name = format!("keypool_test_{}", keypool::domain::password::random_token(12).to_lowercase());
                let mut conn =
                    diesel::PgConnection::establish(&server_url).expect("KEYPOOL_TEST_POSTGRES_URL must connect");
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn).expect("create test database");
                let mut url = url::Url::parse(&server_url).expect("KEYPOOL_TEST_POSTGRES_URL must be a URL");
                url.set_path(&name);
                (Self::Postgres { server_url, name }, DatabaseUrl::Postgres(url.to_string()))
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("keypool.db");
                (Self::Sqlite { _dir: dir }, DatabaseUrl::Sqlite(path))
            }
        }
    }

    /// `DATABASE_URL` for a child process.
    pub fn env_url(url: &DatabaseUrl) -> String {
        match url {
            DatabaseUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            DatabaseUrl::Postgres(u) => u.clone(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { server_url, name } = self
            && let Ok(mut conn) = diesel::PgConnection::establish(server_url)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn);
        }
    }
}

pub fn test_config(database: DatabaseUrl, clock: Clock) -> Config {
    Config {
        database,
        bind: "127.0.0.1:0".parse().expect("address"),
        admin_username: Some(ADMIN_USER.to_owned()),
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        secret: Some(vec![7u8; 64]),
        insecure_cookies: true,
        // Nothing in a test may reach the real upstream: a closed local port unless a test sets a mock.
        upstream_override: Some("http://127.0.0.1:9".to_owned()),
        session_ttl: Duration::from_secs(7 * 24 * 3600),
        guest_session_ttl: Duration::from_secs(24 * 3600),
        schedule_tick: Duration::from_secs(20),
        schedule_period: None,
        shutdown_grace: Duration::from_secs(5),
        trust_forwarded_for: false,
        workers: Some(1),
        body_pace: keypool::config::BodyPace::default(),
        max_connections_per_client: keypool::config::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        encryption_key: None,
        clock,
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: web::Data<AppState>,
    // Dropped last: the database outlives the server.
    _db: TestDb,
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let (db, url) = TestDb::new();
    spawn_on(db, url, adjust).await
}

/// A second instance on another app's database (the database stays owned by the first).
pub async fn spawn_sharing(first: &TestApp, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let url = first.state.config.database.clone();
    spawn_on(TestDb::Borrowed, url, adjust).await
}

/// `TEST_LOG=1` (or a filter such as `TEST_LOG=keypool=trace`) shows the in-process servers' logs, to see
/// what the app did in a failing test: `TEST_LOG=1 cargo test --test integration NAME`.
fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(filter) = std::env::var("TEST_LOG").ok().filter(|v| !v.is_empty() && v != "0") else { return };
        let filter =
            if matches!(filter.as_str(), "1" | "true" | "on") { "keypool=debug,info".to_owned() } else { filter };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

pub async fn spawn_on(db: TestDb, url: DatabaseUrl, adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_test_log();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let (clock, manual) = Clock::manual(now);
    let mut config = test_config(url, clock);
    adjust(&mut config);
    let app = Application::build(config).await.expect("application starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state.clone();
    let server = app.into_server();
    actix_web::rt::spawn(server);
    TestApp { base, client: new_client(), clock: manual, state, _db: db }
}

/// A client with its own cookie jar that does not follow redirects (tests look at them).
///
/// Idle connections are dropped after 2 s, before the server's keep-alive (actix's default, 5 s) closes
/// them: a request sent on a connection the server is closing at that moment fails with
/// `IncompleteMessage` (seen in `cluster::two_instances_share_one_database`).
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).header("accept-language", "en").send().await.expect("GET")
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).header("accept-language", "en").form(form).send().await.expect("POST")
    }

    /// A form post as htmx sends it.
    pub async fn hx_post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("accept-language", "en")
            .header("hx-request", "true")
            .form(form)
            .send()
            .await
            .expect("POST")
    }

    pub async fn login_with(&self, client: &reqwest::Client, user: &str, password: &str) -> reqwest::Response {
        client
            .post(self.url("/login"))
            .header("accept-language", "en")
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .expect("POST /login")
    }

    /// Signs the default client in, asserting success.
    pub async fn login(&self) {
        let res = self.login_with(&self.client, ADMIN_USER, ADMIN_PASSWORD).await;
        assert_eq!(res.status(), 303, "login should redirect");
        assert_eq!(location(&res), "/admin");
    }
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

pub fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// Runs a closure on a pooled connection of the app's database.
pub async fn with_db<T: Send + 'static>(
    app: &TestApp,
    f: impl FnOnce(&mut keypool::db::AnyConnection) -> T + Send + 'static,
) -> T {
    let pool = app.state.db.clone();
    web::block(move || {
        let mut conn = pool.get().expect("db connection");
        f(&mut conn)
    })
    .await
    .expect("blocking task")
}

/// Puts keys straight into the pool as `active` with these balances (as if checked) and reloads the
/// proxy's memory; returns their ids in order.
pub async fn seed_active(app: &TestApp, keys: &[(&str, f64)]) -> Vec<i64> {
    let keys: Vec<(String, f64)> = keys.iter().map(|(k, b)| ((*k).to_owned(), *b)).collect();
    let now = app.state.now_ms();
    let ids = with_db(app, move |c| {
        let mut ids = Vec::new();
        for (key, balance) in keys {
            #[derive(diesel::QueryableByName)]
            struct Id {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                id: i64,
            }
            let row: Id = diesel::sql_query(
                "INSERT INTO keys (key, status, total_balance, added_at, checked_at, status_changed_at) \
                 VALUES ($1, 'active', $2, $3, $3, $3) RETURNING id",
            )
            .bind::<diesel::sql_types::Text, _>(key)
            .bind::<diesel::sql_types::Double, _>(balance)
            .bind::<diesel::sql_types::BigInt, _>(now)
            .get_result(c)
            .unwrap();
            ids.push(row.id);
        }
        ids
    })
    .await;
    reload_pool(app).await;
    ids
}

/// Reloads the proxy's in-memory pool from the database now.
pub async fn reload_pool(app: &TestApp) {
    keypool::pool::writer::reload(&app.state.pool, &app.state.db, app.state.now_ms()).await.unwrap();
}

/// Mints an access key for the proxy and returns its token.
pub async fn access_key(app: &TestApp) -> String {
    let minted = keypool::domain::access_token::mint();
    let (hash, hint, now) = (minted.hash.clone(), minted.hint.clone(), app.state.now_ms());
    let name = format!("test-{}", &minted.token[3..11]);
    with_db(app, move |c| keypool::db::access_keys::create(c, &name, &hash, &hint, now).unwrap()).await;
    app.state.access_keys.reload(&app.state.db, &app.state.pool.quotas).await.unwrap();
    minted.token
}

/// Stores settings (NAME=VALUE as `keypool settings set` takes them) and hands them to the proxy.
pub async fn set_settings(app: &TestApp, pairs: &[(&str, &str)]) {
    let change = keypool::domain::settings::SettingsChange::parse(pairs.iter().copied()).unwrap();
    let current = app.state.settings();
    let rows = current.apply(&change, |p| Ok(format!("plain:{p}"))).unwrap();
    let now = app.state.now_ms();
    with_db(app, move |c| keypool::db::settings::put_many(c, &rows, now).unwrap()).await;
    app.state.reload_settings().await.unwrap();
}

/// Writes what the proxy has learned but not written yet.
pub async fn flush_outcomes(app: &TestApp) {
    assert!(keypool::pool::writer::flush(&app.state.pool, &app.state.db).await, "the database took the batch");
}

/// The app in front of the mock upstream (`KEYPOOL_UPSTREAM_URL` pointing at it), with an access key.
pub struct Gateway {
    pub app: TestApp,
    pub upstream: crate::mock::MockUpstream,
    pub token: String,
}

impl Gateway {
    /// A new app and mock, with these settings stored (NAME=VALUE as `keypool settings set` takes them).
    pub async fn start(settings: &[(&str, &str)]) -> Self {
        let upstream = crate::mock::start();
        let url = upstream.url.clone();
        let app = spawn_with(move |c| c.upstream_override = Some(url)).await;
        Self::on(app, upstream, settings).await
    }

    /// An app already running (another instance on a shared database), in front of `upstream`.
    pub async fn on(app: TestApp, upstream: crate::mock::MockUpstream, settings: &[(&str, &str)]) -> Self {
        let token = access_key(&app).await;
        if !settings.is_empty() {
            set_settings(&app, settings).await;
        }
        Self { app, upstream, token }
    }

    /// `POST /v1/chat/completions` with the access key.
    pub async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/v1/chat/completions"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST /v1/chat/completions")
    }

    /// The number of chat requests the mock got with this key (any model).
    pub fn chats(&self, key: &str) -> usize {
        self.upstream.hits.of(&format!("chat Bearer {key}"))
    }

    /// The number of chat requests the mock got with this key for this model.
    pub fn hits(&self, key: &str, model: &str) -> usize {
        self.upstream.hits.of(&format!("chat Bearer {key} {model}"))
    }
}
