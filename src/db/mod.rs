//! The store: one diesel `MultiConnection` over SQLite or PostgreSQL, an r2d2 pool whose manager picks
//! the backend from the URL scheme (so a bad URL fails with the driver's real message), embedded
//! migrations per backend, and [`run`] to execute blocking queries off the async executor.

pub mod access_keys;
pub mod admins;
pub mod checks;
pub mod encryption;
pub mod error;
pub mod keys;
pub mod logs;
pub mod prices;
pub mod schema;
pub mod settings;
pub mod statement;
pub mod stats;
pub mod traffic;
pub mod usage;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;
pub use error::DbError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; everything portable goes through it directly.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type DbPool = r2d2::Pool<AnyManager>;
pub type PooledConn = r2d2::PooledConnection<AnyManager>;

/// Which backend a pool talks to, for the few places that need to know (logs, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Errors of opening the store, each naming the problem in one line.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {target}: {message}")]
    Connect { target: String, message: String },
    #[error("cannot apply migrations to {target}: {message}")]
    Migrate { target: String, message: String },
}

/// Opens one connection, configured for its backend (SQLite pragmas; PostgreSQL connect timeout).
pub fn connect(url: &DatabaseUrl) -> ConnectionResult<AnyConnection> {
    match url {
        DatabaseUrl::Postgres(raw) => {
            Ok(AnyConnection::Postgresql(diesel::PgConnection::establish(&with_connect_timeout(raw))?))
        }
        DatabaseUrl::Sqlite(path) => {
            create_private(path)
                .map_err(|e| ConnectionError::BadConnection(format!("cannot create {}: {e}", path.display())))?;
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())?;
            conn.batch_execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
            // Switching to WAL needs the file to itself; SQLite answers "locked" at once (no busy wait)
            // when another process is creating or migrating it at that moment: try again for a while.
            let mut attempt = 0;
            while let Err(e) = conn.batch_execute("PRAGMA journal_mode = WAL;") {
                attempt += 1;
                if attempt > 100 || !e.to_string().contains("locked") {
                    return Err(ConnectionError::BadConnection(e.to_string()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(AnyConnection::Sqlite(conn))
        }
    }
}

/// Creates a missing SQLite file readable by its owner only (0600) before SQLite opens it: it holds
/// every key in clear and the session secret. SQLite gives its `-wal` and `-shm` files the database
/// file's permissions. An existing file is left as it is ([`warn_if_exposed`] says so at start).
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Logs one warning when the SQLite file (keys in clear, the session secret) is readable by group or
/// others.
pub fn warn_if_exposed(url: &DatabaseUrl) {
    use std::os::unix::fs::PermissionsExt;
    let DatabaseUrl::Sqlite(path) = url else { return };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "the database file {} is readable by others (mode {:o}): it holds the keys and the session secret; run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
}

/// libpq waits for an unreachable host until the OS gives up (minutes); cap it unless the URL says.
fn with_connect_timeout(raw: &str) -> String {
    if raw.contains("connect_timeout=") {
        return raw.to_owned();
    }
    let sep = if raw.contains('?') { '&' } else { '?' };
    format!("{raw}{sep}connect_timeout=3")
}

/// r2d2 manager that dispatches on the URL scheme instead of diesel's try-every-backend `establish`.
#[derive(Debug)]
pub struct AnyManager {
    url: DatabaseUrl,
}

impl r2d2::ManageConnection for AnyManager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        connect(&self.url).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Connects once (fast, clear failure), applies pending migrations, then builds the pool.
pub fn open(url: &DatabaseUrl, max_size: u32) -> Result<DbPool, StoreError> {
    let target = url.redacted();
    warn_if_exposed(url);
    let mut first =
        connect(url).map_err(|e| StoreError::Connect { target: target.clone(), message: one_line(&e.to_string()) })?;
    migrate(&mut first)
        .map_err(|e| StoreError::Migrate { target: target.clone(), message: one_line(&e.to_string()) })?;
    drop(first);
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .build(AnyManager { url: url.clone() })
        .map_err(|e| StoreError::Connect { target, message: one_line(&e.to_string()) })
}

/// Applies the embedded migrations of the connection's backend; returns how many ran.
///
/// Several instances may start at once on one database: on PostgreSQL they take turns on an advisory
/// lock (the second finds nothing pending); on SQLite, where the file's lock serialises the writes, one
/// that lost the race to apply a migration looks again and finds it applied.
pub fn migrate(conn: &mut AnyConnection) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    /// The advisory lock key of keypool's migrations ("kpmg").
    const MIGRATION_LOCK: i64 = 0x6b70_6d67;
    match conn {
        AnyConnection::Postgresql(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let ran = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|m| m.len());
            c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
            Ok(ran?)
        }
        AnyConnection::Sqlite(c) => {
            let mut attempt = 0;
            loop {
                match c.run_pending_migrations(SQLITE_MIGRATIONS) {
                    Ok(ran) => return Ok(ran.len()),
                    Err(_) if attempt < 5 => {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The backend behind a connection.
pub fn backend_of(conn: &AnyConnection) -> Backend {
    match conn {
        AnyConnection::Postgresql(_) => Backend::Postgres,
        AnyConnection::Sqlite(_) => Backend::Sqlite,
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs blocking database work on actix's blocking thread pool with a pooled connection. The work's
/// diesel errors convert with `?` (`Ok(db::x::y(conn)?)`); a pool timeout is [`DbError::Unavailable`].
pub async fn run<T, F>(pool: &DbPool, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    run_as(pool, work).await
}

/// [`run`] for work that can also fail with the caller's own error `E` (a bad request found inside
/// the transaction, say); the store's errors become `E` through `From<DbError>`.
pub async fn run_as<T, E, F>(pool: &DbPool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        work(&mut conn)
    })
    .await
    .map_err(DbError::from)?
}

/// Why the store is not fit to serve, in one line; see [`health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// No connection within 2 s.
    Unreachable(String),
    /// The newest migration this build embeds is not applied (an empty or foreign database).
    Schema(String),
    /// A committed write failed (disk full, read-only file system, permissions…).
    Unwritable(String),
}

impl Unhealthy {
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Schema(_) => "schema",
            Self::Unwritable(_) => "unwritable",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Unreachable(r) | Self::Schema(r) | Self::Unwritable(r) => r,
        }
    }
}

/// The version of the newest migration embedded for this backend (e.g. `20261130000006`).
pub fn newest_migration(backend: Backend) -> Option<String> {
    use diesel::migration::MigrationSource;
    static SQLITE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    fn newest<DB: diesel::backend::Backend>(source: &dyn MigrationSource<DB>) -> Option<String> {
        source.migrations().ok()?.iter().map(|m| m.name().version().to_string()).max()
    }
    match backend {
        Backend::Sqlite => SQLITE.get_or_init(|| newest::<diesel::sqlite::Sqlite>(&SQLITE_MIGRATIONS)).clone(),
        Backend::Postgres => POSTGRES.get_or_init(|| newest::<diesel::pg::Pg>(&POSTGRES_MIGRATIONS)).clone(),
    }
}

/// Can the store serve right now? It must answer, be at this build's newest migration (not an empty
/// or re-created database), and take a committed write: one upsert of the `healthz` row of `leases`
/// (a rolled-back write proves nothing about a full disk). `holder` names the prober in that row.
pub fn check_health(conn: &mut AnyConnection, holder: &str, now: i64) -> Result<(), Unhealthy> {
    use diesel::sql_types::{BigInt, Text};
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let newest = newest_migration(backend_of(conn))
        .ok_or_else(|| Unhealthy::Schema("this build embeds no migrations".to_owned()))?;
    // Raw SQL: reads diesel's own migrations table and writes the health lease with an upsert (not in the
    // multi-backend DSL).
    let applied = diesel::sql_query("SELECT COUNT(*) AS n FROM __diesel_schema_migrations WHERE version = $1")
        .bind::<Text, _>(&newest)
        .get_result::<Count>(conn)
        .map_err(|e| Unhealthy::Schema(format!("cannot read the applied migrations: {}", one_line(&e.to_string()))))?;
    if applied.n == 0 {
        return Err(Unhealthy::Schema(format!("migration {newest} is not applied")));
    }
    diesel::sql_query(
        "INSERT INTO leases (name, holder, expires_at) VALUES ('healthz', $1, $2) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at",
    )
    // A fresh nonce each probe: SQLite skips writing a row whose content is unchanged.
    .bind::<Text, _>(format!("{holder} {}", crate::domain::password::random_token(8)))
    .bind::<BigInt, _>(now)
    .execute(conn)
    .map_err(|e| Unhealthy::Unwritable(format!("cannot write: {}", one_line(&e.to_string()))))?;
    Ok(())
}

/// [`check_health`] on a pooled connection (waiting at most 2 s for one), off the async executor.
pub async fn health(pool: &DbPool, holder: String, now: i64) -> Result<(), Unhealthy> {
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn =
            pool.get_timeout(Duration::from_secs(2)).map_err(|e| Unhealthy::Unreachable(one_line(&e.to_string())))?;
        check_health(&mut conn, &holder, now)
    })
    .await
    .unwrap_or_else(|e| Err(Unhealthy::Unreachable(e.to_string())))
}

/// Is the database answering right now? Used by `/metrics`.
pub async fn ping(pool: &DbPool) -> bool {
    let pool = pool.clone();
    actix_web::web::block(move || {
        let Ok(mut conn) = pool.get_timeout(Duration::from_secs(2)) else {
            return false;
        };
        conn.batch_execute("SELECT 1").is_ok()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn no_connection_within_the_pool_timeout_is_unavailable() {
        let url = DatabaseUrl::Sqlite("/nonexistent-keypool-dir/keypool.db".into());
        let pool =
            r2d2::Pool::builder().connection_timeout(Duration::from_millis(300)).build_unchecked(AnyManager { url });
        let Err(e) = run(&pool, |_| Ok(())).await else { panic!("no database, yet the work ran") };
        assert!(e.is_unavailable(), "{e}");
        let status = actix_web::ResponseError::status_code(&crate::error::AppError::from(e));
        assert_eq!(status, actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
