//! `Application::build` opens the store, prepares the admin account and session secret, binds the
//! listener (port 0 in tests) and wires the routes.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::PersistentSession;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::config::Config;
use crate::db::{self, DbPool};
use crate::domain::password;
use crate::domain::throttle::Throttle;
use crate::proxy::auth::AccessKeyIndex;
use crate::state::AppState;

/// Name of the admin session cookie.
pub const SESSION_COOKIE: &str = "keypool_session";
/// Name of the stored generated session secret.
const SESSION_SECRET: &str = "session_secret";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] db::StoreError),
    #[error("database error during start-up: {0}")]
    Database(String),
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("{0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    server: Server,
    pub state: web::Data<AppState>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let state = prepare(config, true).await?;
        // Only the server routes: the command line's commands never load the keys into memory.
        crate::pool::writer::reload(&state.pool, &state.db, state.now_ms())
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        // The access keys' quota counts as every instance left them (limits hold across restarts).
        crate::pool::writer::sync_quotas(&state.pool, &state.db, state.now_ms())
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
        let addr = state.config.bind;
        let listener =
            TcpListener::bind(addr).map_err(|e| StartError::Bind { addr: addr.to_string(), message: e.to_string() })?;
        let port = listener.local_addr().map_err(|e| StartError::Other(e.to_string()))?.port();
        let secret = session_secret(&state).await?;
        let state = web::Data::new(state);
        spawn_loops(&state);

        let app_state = state.clone();
        let workers = state.config.workers;
        let connections = crate::web::limits::ConnectionCap::new(state.config.max_connections_per_client);
        let mut server = HttpServer::new(move || {
            let state = app_state.clone();
            let sessions =
                SessionMiddleware::builder(CookieSessionStore::default(), secret.clone())
                    .cookie_name(SESSION_COOKIE.to_owned())
                    .cookie_http_only(true)
                    .cookie_same_site(SameSite::Strict)
                    .cookie_secure(!state.config.insecure_cookies)
                    .session_lifecycle(PersistentSession::default().session_ttl(
                        actix_web::cookie::time::Duration::seconds(state.config.session_ttl.as_secs() as i64),
                    ))
                    .build();
            App::new()
                .app_data(state.gateway.clone())
                .app_data(state)
                // Outermost: every body of every route is read under the time limit.
                .wrap(from_fn(crate::web::limits::pace_bodies))
                // awc is not Send: one upstream client per worker.
                .app_data(web::Data::new(crate::proxy::upstream::UpstreamClient::default()))
                // Malformed input gets the same localised page as every other error.
                .app_data(
                    web::FormConfig::default()
                        .limit(64 * 1024)
                        .error_handler(|e, _| crate::error::AppError::from_form(e).into()),
                )
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|e, _| crate::error::AppError::BadRequest(e.to_string()).into()),
                )
                .app_data(web::PathConfig::default().error_handler(|_, _| crate::error::AppError::NotFound.into()))
                .service(crate::web::routes::proxy_scope())
                .service(
                    web::scope("")
                        .configure(crate::web::routes::configure)
                        .default_service(web::to(crate::web::pages::not_found))
                        .wrap(from_fn(crate::web::session::check_origin))
                        .wrap(sessions)
                        .wrap(from_fn(crate::web::errors::render_error_pages)),
                )
        })
        .on_connect(move |conn, ext| connections.on_connect(conn, ext))
        .shutdown_timeout(state.config.shutdown_grace.as_secs())
        // actix stops at once on SIGINT; `keypool serve` handles both signals itself, gracefully.
        .disable_signals()
        .listen(listener)
        .map_err(|e| StartError::Bind { addr: addr.to_string(), message: e.to_string() })?;
        if let Some(n) = workers {
            server = server.workers(n);
        }
        Ok(Self { port, server: server.run(), state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running server; await it to serve until stopped.
    pub fn into_server(self) -> Server {
        self.server
    }
}

/// Starts the background loops under the supervisor: the reloader, the writer, the re-checks and the
/// check schedule.
fn spawn_loops(state: &web::Data<AppState>) {
    let loops = &state.loops;
    let s = state.clone();
    loops.spawn("reloader", RELOAD_EVERY, move |t| Box::pin(run_reloader(s.clone(), t)));
    let s = state.clone();
    loops.spawn("writer", crate::pool::writer::TICK, move |t| {
        let clock = s.config.clock.clone();
        Box::pin(crate::pool::writer::run(s.pool.clone(), s.db.clone(), clock, s.instance_id.clone(), t))
    });
    let s = state.clone();
    loops.spawn("recheck", crate::pool::writer::TICK, move |t| {
        Box::pin(crate::checker::recheck::run(s.pool.clone(), s.db.clone(), s.config.clock.clone(), t))
    });
    let s = state.clone();
    loops.spawn("schedule", state.config.schedule_tick, move |t| Box::pin(run_schedule(s.clone(), t)));
}

/// How often the reloader runs.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Every [`RELOAD_EVERY`] for the life of the server (under the supervisor): reloads the access keys,
/// the settings and the prices, so a key created or revoked elsewhere (the CLI, another instance) and
/// settings saved elsewhere take effect within that time.
async fn run_reloader(state: web::Data<AppState>, ticker: crate::supervise::Ticker) {
    let mut tick = actix_web::rt::time::interval(RELOAD_EVERY);
    loop {
        tick.tick().await;
        ticker.tick();
        if let Err(e) = state.access_keys.reload(&state.db, &state.pool.quotas).await {
            tracing::warn!(error = %e, "could not reload access keys");
        }
        if let Err(e) = state.reload_settings().await {
            tracing::warn!(error = %e, "could not reload settings");
        }
        if let Err(e) = state.reload_prices().await {
            tracing::warn!(error = %e, "could not reload the price table");
        }
    }
}

/// Ticks the check schedule (every 20 seconds by default) for the life of the server.
async fn run_schedule(state: web::Data<AppState>, ticker: crate::supervise::Ticker) {
    let mut tick = actix_web::rt::time::interval(state.config.schedule_tick);
    loop {
        tick.tick().await;
        ticker.tick();
        let schedule = crate::checker::schedule::Schedule {
            db: &state.db,
            checker: &state.checker,
            codec: state.codec.clone(),
            holder: &state.instance_id,
            period: state.config.schedule_period,
        };
        let result = schedule.tick(&state.settings(), state.job_context(), state.now_ms()).await;
        state.schedule_ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(Some((job, period_end))) => {
                tracing::info!(job, period_end, instance = %state.instance_id, "scheduled check started")
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "scheduled check"),
        }
    }
}

/// Opens the store (applying migrations) and builds the shared state; also used by the CLI.
/// `create_admin` also creates the admin account when there is none: only `serve` asks for it, so a
/// generated password is printed into the server's log and never into the output of another command.
pub async fn prepare(config: Config, create_admin: bool) -> Result<AppState, StartError> {
    let url = config.database.clone();
    let pool: DbPool = tokio::task::spawn_blocking(move || db::open(&url, 10))
        .await
        .map_err(|e| StartError::Other(e.to_string()))??;
    let backend = {
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || pool.get().map(|c| db::backend_of(&c)))
            .await
            .map_err(|e| StartError::Other(e.to_string()))?
            .map_err(|e| StartError::Database(e.to_string()))?
    };
    let codec = Arc::new(crate::domain::key_crypto::KeyCodec::new(config.encryption_key.as_ref()));
    check_encryption(&pool, &codec, config.clock.now_ms(), create_admin).await?;
    let pool_in_memory = Arc::new(
        crate::pool::KeyPool::new(
            crate::domain::settings::Settings::default(),
            crate::domain::settings::DEFAULT_UPSTREAM_URL.to_owned(),
        )
        .with_codec(codec.clone()),
    );
    let gateway = web::Data::new(crate::proxy::Gateway {
        pool: pool_in_memory.clone(),
        access_keys: Arc::new(AccessKeyIndex::default()),
        metrics: Arc::default(),
        models_cache: Arc::default(),
        clock: config.clock.clone(),
    });
    let state = AppState {
        db: pool,
        backend,
        login_throttle: Throttle::new(5, Duration::from_secs(15 * 60), Duration::from_secs(5 * 60)),
        guest_throttle: Throttle::new(10, Duration::from_secs(15 * 60), Duration::from_secs(5 * 60)),
        access_keys: gateway.access_keys.clone(),
        checker: crate::checker::Checker::default(),
        schedule_ticks: std::sync::atomic::AtomicU64::new(0),
        instance_id: format!("{}-{}", std::process::id(), password::random_token(8)),
        pool: pool_in_memory,
        codec,
        metrics: gateway.metrics.clone(),
        models_cache: gateway.models_cache.clone(),
        gateway,
        settings_read: tokio::sync::Mutex::new(()),
        config,
        loops: Arc::new(crate::supervise::Supervisor::default()),
    };
    if create_admin {
        ensure_admin(&state).await?;
    }
    state.access_keys.reload(&state.db, &state.pool.quotas).await.map_err(|e| StartError::Database(e.to_string()))?;
    state.reload_settings().await.map_err(|e| StartError::Database(e.to_string()))?;
    state.reload_prices().await.map_err(|e| StartError::Database(e.to_string()))?;
    Ok(state)
}

/// Refuses to start when the configured `KEYPOOL_ENCRYPTION_KEY` (or its absence) cannot read the
/// stored keys; `serve` (`warn`) also warns about keys still stored in clear while a key is set.
async fn check_encryption(
    pool: &DbPool,
    codec: &Arc<crate::domain::key_crypto::KeyCodec>,
    now: i64,
    warn: bool,
) -> Result<(), StartError> {
    let encrypting = codec.is_encrypted();
    let codec = codec.clone();
    let at_rest = db::run(pool, move |conn| Ok(db::encryption::check_key(conn, &codec, now)?))
        .await
        .map_err(|e| StartError::Database(e.to_string()))?
        .map_err(StartError::Other)?;
    if warn && encrypting && at_rest.in_clear {
        tracing::warn!(
            "KEYPOOL_ENCRYPTION_KEY is set but some keys are stored in clear: run `keypool encrypt-keys` to encrypt them"
        );
    }
    Ok(())
}

/// First start: creates the admin from the environment, or `admin` with a random password printed once.
/// The generated password is written straight to stderr, never through the log stream (with JSON logs
/// it would land in log storage); the log only says that an admin was created. argon2 runs before a
/// database connection is taken.
async fn ensure_admin(state: &AppState) -> Result<(), StartError> {
    let pool = state.db.clone();
    let exists = db::run(&pool, |conn| Ok(db::admins::count(conn)? > 0));
    if exists.await.map_err(|e| StartError::Database(e.to_string()))? {
        return Ok(());
    }
    let username = state.config.admin_username.clone().unwrap_or_else(|| "admin".to_owned());
    let generated = state.config.admin_password.is_none();
    let password = state.config.admin_password.clone().unwrap_or_else(|| password::random_token(20));
    let clear = password.clone();
    let hash = tokio::task::spawn_blocking(move || password::hash(&clear))
        .await
        .map_err(|e| StartError::Other(e.to_string()))?
        .map_err(StartError::Other)?;
    let now = state.now_ms();
    let user = username.clone();
    let created = db::run(&state.db, move |conn| match db::admins::create(conn, &user, &hash, now) {
        Ok(_) if generated => {
            // Remembered for the dashboard's nudge to change it (see `GENERATED_PASSWORD_SETTING`).
            let row = [(db::admins::GENERATED_PASSWORD_SETTING.to_owned(), hash.clone())];
            db::settings::put_many(conn, &row, now)?;
            Ok(true)
        }
        Ok(_) => Ok(true),
        // Another instance starting on the same database created it first.
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    })
    .await
    .map_err(|e| StartError::Database(e.to_string()))?;
    match (created, generated) {
        (true, true) => {
            tracing::warn!("created the admin account `{username}` with a generated password, printed on stderr");
            eprintln!(
                "keypool: created the admin account `{username}` with the generated password `{password}`\n\
                 keypool: it is shown only this once: sign in and change it in 系统设置 / Settings, or run \
                 `keypool admin reset-password`"
            );
        }
        (true, false) => tracing::info!("created the admin account `{username}` from KEYPOOL_ADMIN_PASSWORD"),
        (false, _) => {}
    }
    Ok(())
}

/// `KEYPOOL_SECRET`, or a secret generated on first start and kept in the database.
async fn session_secret(state: &AppState) -> Result<Key, StartError> {
    if let Some(secret) = &state.config.secret {
        return Ok(Key::derive_from(secret));
    }
    let candidate = password::random_token(86);
    let now = state.now_ms();
    let stored =
        db::run(&state.db, move |conn| Ok(db::settings::get_or_insert(conn, SESSION_SECRET, &candidate, now)?))
            .await
            .map_err(|e| StartError::Database(e.to_string()))?;
    if stored.len() < 64 {
        return Err(StartError::Other(format!("the stored `{SESSION_SECRET}` setting is shorter than 64 bytes")));
    }
    Ok(Key::derive_from(stored.as_bytes()))
}
