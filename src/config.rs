//! Start-up configuration from the environment (and `--bind`). Anything malformed is an error that
//! names the variable; nothing here touches the database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::clock::Clock;
use crate::domain::key_crypto::EncryptionKey;

/// Where the data lives, chosen by the scheme of `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, passed to libpq as given.
    Postgres(String),
}

impl DatabaseUrl {
    /// Unset or empty means `keypool.db` in the working directory; `sqlite://PATH` (or `sqlite:PATH`)
    /// an SQLite file; `postgres://` / `postgresql://` PostgreSQL. Anything else is refused.
    pub fn parse(raw: Option<&str>) -> Result<Self, ConfigError> {
        let raw = raw.map(str::trim).unwrap_or("");
        if raw.is_empty() {
            return Ok(Self::Sqlite(PathBuf::from("keypool.db")));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(ConfigError::Invalid("DATABASE_URL", "sqlite:// needs a file path".into()));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        let scheme = raw.split(':').next().unwrap_or(raw);
        Err(ConfigError::Invalid(
            "DATABASE_URL",
            format!("unsupported scheme `{scheme}`: use sqlite://PATH or postgres://USER@HOST/DB"),
        ))
    }

    /// The URL without its password, for logs and messages.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(raw) => match url::Url::parse(raw) {
                Ok(mut parsed) if parsed.password().is_some() => {
                    let _ = parsed.set_password(Some("***"));
                    parsed.to_string()
                }
                Ok(parsed) => parsed.to_string(),
                Err(_) => "postgres://(unparsable URL)".to_owned(),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
}

/// Everything the application needs to start.
#[derive(Clone)]
pub struct Config {
    pub database: DatabaseUrl,
    pub bind: SocketAddr,
    /// Create the first admin with these (first start only).
    pub admin_username: Option<String>,
    pub admin_password: Option<String>,
    /// Session signing secret (64+ bytes); generated and stored in the database when absent.
    pub secret: Option<Vec<u8>>,
    /// Drop the `Secure` flag of cookies, for plain http.
    pub insecure_cookies: bool,
    /// Overrides the upstream base URL setting (tests, private mirrors).
    pub upstream_override: Option<String>,
    /// How long an admin session lasts.
    pub session_ttl: Duration,
    /// How long a guest stays let in after the guest password (restricted mode).
    pub guest_session_ttl: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted reverse proxy).
    pub trust_forwarded_for: bool,
    /// How often this instance looks at the check schedule.
    pub schedule_tick: Duration,
    /// Replaces `auto_check_minutes` as the schedule's period (tests and demos).
    pub schedule_period: Option<Duration>,
    /// On SIGTERM/SIGINT, how long in-flight requests and streams may take to finish.
    pub shutdown_grace: Duration,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// How a request body must keep arriving (`web::limits`).
    pub body_pace: BodyPace,
    /// Open connections one client address may hold; 0 = no cap (`web::limits`).
    pub max_connections_per_client: usize,
    /// `KEYPOOL_ENCRYPTION_KEY`: store the upstream keys encrypted (AES-256-GCM) when set.
    pub encryption_key: Option<EncryptionKey>,
    pub clock: Clock,
}

/// How a request body must keep arriving: after `grace`, at an average of `min_rate` bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPace {
    /// Time a body may take before the minimum rate applies.
    pub grace: Duration,
    /// Bytes per second a body must average after the grace; 0 turns the limit off.
    pub min_rate: u64,
}

impl Default for BodyPace {
    /// 10 s, then 8 KiB/s: a 32 MB body passes on any link faster than 64 kbit/s.
    fn default() -> Self {
        Self { grace: Duration::from_secs(10), min_rate: 8192 }
    }
}

/// Connections per client address unless `KEYPOOL_MAX_CONNECTIONS_PER_CLIENT` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;

impl Config {
    /// Reads the environment; `bind` (from `--bind`) wins over `PORT`.
    pub fn from_env(bind: Option<&str>) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let hours = |name: &'static str, default: u64| {
            Ok::<_, ConfigError>(Duration::from_secs(number(env(name), name, 1, 24 * 365)?.unwrap_or(default) * 3600))
        };
        Ok(Self {
            database: DatabaseUrl::parse(env("DATABASE_URL").as_deref())?,
            bind: bind_address(bind, env("PORT"))?,
            admin_username: env("KEYPOOL_ADMIN_USERNAME"),
            admin_password: env("KEYPOOL_ADMIN_PASSWORD"),
            secret: session_secret(env("KEYPOOL_SECRET"))?,
            insecure_cookies: env("KEYPOOL_INSECURE_COOKIES").is_some_and(|v| truthy(&v)),
            upstream_override: env("KEYPOOL_UPSTREAM_URL"),
            session_ttl: hours("KEYPOOL_SESSION_HOURS", 24 * 7)?,
            guest_session_ttl: hours("KEYPOOL_GUEST_SESSION_HOURS", 24)?,
            trust_forwarded_for: env("KEYPOOL_TRUST_FORWARDED_FOR").is_some_and(|v| truthy(&v)),
            schedule_tick: Duration::from_millis(
                millis(env("KEYPOOL_SCHEDULE_TICK_MS"), "KEYPOOL_SCHEDULE_TICK_MS")?.unwrap_or(20_000),
            ),
            schedule_period: millis(env("KEYPOOL_SCHEDULE_PERIOD_MS"), "KEYPOOL_SCHEDULE_PERIOD_MS")?
                .map(Duration::from_millis),
            shutdown_grace: Duration::from_secs(
                number(env("KEYPOOL_SHUTDOWN_GRACE_S"), "KEYPOOL_SHUTDOWN_GRACE_S", 0, 3600)?.unwrap_or(30),
            ),
            workers: number(env("KEYPOOL_WORKERS"), "KEYPOOL_WORKERS", 1, 256)?.map(|w| w as usize),
            body_pace: BodyPace {
                grace: Duration::from_secs(
                    number(env("KEYPOOL_BODY_GRACE_S"), "KEYPOOL_BODY_GRACE_S", 1, 3600)?.unwrap_or(10),
                ),
                min_rate: number(env("KEYPOOL_BODY_MIN_RATE"), "KEYPOOL_BODY_MIN_RATE", 0, 1 << 30)?
                    .unwrap_or(BodyPace::default().min_rate),
            },
            max_connections_per_client: number(
                env("KEYPOOL_MAX_CONNECTIONS_PER_CLIENT"),
                "KEYPOOL_MAX_CONNECTIONS_PER_CLIENT",
                0,
                1_000_000,
            )?
            .map_or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT, |n| n as usize),
            encryption_key: env("KEYPOOL_ENCRYPTION_KEY")
                .map(|k| EncryptionKey::parse(&k).map_err(|e| ConfigError::Invalid("KEYPOOL_ENCRYPTION_KEY", e)))
                .transpose()?,
            clock: Clock::system(),
        })
    }
}

/// `--bind` if given, else all interfaces on `PORT` (8080).
fn bind_address(bind: Option<&str>, port: Option<String>) -> Result<SocketAddr, ConfigError> {
    if let Some(addr) = bind {
        return addr
            .parse()
            .map_err(|_| ConfigError::Invalid("--bind", format!("`{addr}` is not an address like 0.0.0.0:8080")));
    }
    let port = match port {
        Some(p) => {
            p.trim().parse::<u16>().map_err(|_| ConfigError::Invalid("PORT", format!("`{p}` is not a port number")))?
        }
        None => 8080,
    };
    Ok(SocketAddr::from(([0, 0, 0, 0], port)))
}

/// `KEYPOOL_SECRET`, the cookie key: at least 64 bytes when set.
fn session_secret(raw: Option<String>) -> Result<Option<Vec<u8>>, ConfigError> {
    match raw {
        Some(s) if s.len() < 64 => {
            Err(ConfigError::Invalid("KEYPOOL_SECRET", format!("must be at least 64 bytes long (it has {})", s.len())))
        }
        other => Ok(other.map(String::into_bytes)),
    }
}

/// A positive number of milliseconds, if set.
fn millis(raw: Option<String>, name: &'static str) -> Result<Option<u64>, ConfigError> {
    raw.map(|v| {
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|ms| (10..=86_400_000).contains(ms))
            .ok_or_else(|| ConfigError::Invalid(name, format!("`{v}` is not a number of milliseconds (10–86400000)")))
    })
    .transpose()
}

/// A whole number in `min..=max`, if set.
fn number(raw: Option<String>, name: &'static str, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    raw.map(|v| {
        v.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| ConfigError::Invalid(name, format!("`{v}` is not a whole number from {min} to {max}")))
    })
    .transpose()
}

fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_schemes() {
        assert_eq!(DatabaseUrl::parse(None).ok(), Some(DatabaseUrl::Sqlite("keypool.db".into())));
        assert_eq!(DatabaseUrl::parse(Some("sqlite:///tmp/a.db")).ok(), Some(DatabaseUrl::Sqlite("/tmp/a.db".into())));
        assert_eq!(DatabaseUrl::parse(Some("sqlite://data/k.db")).ok(), Some(DatabaseUrl::Sqlite("data/k.db".into())));
        assert!(matches!(DatabaseUrl::parse(Some("postgresql://u@h/db")), Ok(DatabaseUrl::Postgres(_))));
        let err = DatabaseUrl::parse(Some("mysql://x")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("DATABASE_URL") && err.contains("mysql"), "{err}");
        assert!(DatabaseUrl::parse(Some("keypool.db")).is_err());
        assert!(DatabaseUrl::parse(Some("sqlite://")).is_err());
    }

    #[test]
    fn redacts_postgres_password() {
        let url = DatabaseUrl::Postgres("postgres://bob:hunter2@db:5432/kp".into());
        let shown = url.redacted();
        assert!(!shown.contains("hunter2") && shown.contains("bob"), "{shown}");
    }
}
