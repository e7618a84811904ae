//! The store: one diesel `MultiConnection` over SQLite or PostgreSQL, an r2d2 pool whose manager picks
//! the backend from the URL scheme (so a bad URL fails with the driver's real message), embedded
//! migrations per backend, and [`run`] to execute blocking queries off the async executor.

pub mod access_keys;
pub mod admins;
pub mod checks;
pub mod keys;
pub mod schema;
pub mod settings;
pub mod statement;
pub mod stats;
pub mod usage;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::DatabaseUrl;
use crate::error::AppError;

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

/// Runs blocking database work on actix's blocking thread pool with a pooled connection.
pub async fn run<T, F>(pool: &DbPool, work: F) -> Result<T, AppError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    actix_web::web::block(move || {
        let mut conn = pool.get().map_err(|e| AppError::Database(e.to_string()))?;
        work(&mut conn)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
}

/// Is the database answering right now? Used by `/healthz`.
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
