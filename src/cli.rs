//! The command line: `serve` (default), `migrate`, `import`, `export`, `check`, `logs`, `encrypt-keys`,
//! `decrypt-keys`, `admin reset-password`, `settings`, `access-key`, `prices`.
//! Every failure prints one line on stderr and exits non-zero.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::db;
use crate::domain::settings::SettingsChange;
use crate::domain::{access_token, account, password};
use crate::i18n::Lang;
use crate::startup::{self, Application};
use crate::state::AppState;

#[derive(Parser)]
#[command(name = "keypool", version, about = "SiliconFlow API-key pool and OpenAI-compatible gateway")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the admin, the guest page and the /v1 gateway (the default).
    Serve {
        /// Listen address, e.g. 127.0.0.1:3000 (default 0.0.0.0:$PORT, PORT defaulting to 8080).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Add keys from a file (or `-` for stdin), split like the page's import; prints the counts.
    Import {
        /// A text file of keys, or `-` to read stdin.
        file: String,
        /// A source label stored with the new keys.
        #[arg(long)]
        source: Option<String>,
    },
    /// Write keys to stdout or a file.
    Export {
        /// all, valid (active), or min-balance.
        #[arg(long, default_value = "all")]
        scope: String,
        /// Threshold for --scope min-balance (inclusive).
        #[arg(long)]
        min_balance: Option<String>,
        /// Write key|balance.
        #[arg(long)]
        with_balance: bool,
        /// newline, comma, space, semicolon, tab, or any text up to 10 characters.
        #[arg(long, default_value = "newline")]
        sep: String,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Check keys against the upstream and wait for the job to end (progress on stderr, counts on stdout).
    Check {
        /// Every key that is not disabled.
        #[arg(long, conflicts_with = "status")]
        all: bool,
        /// Keys in this state (repeatable): unchecked, active, depleted, invalid, cooling, disabled.
        #[arg(long, value_name = "S")]
        status: Vec<String>,
        /// Checks in flight at once (1–64, default 10).
        #[arg(long)]
        concurrency: Option<String>,
        /// Requests per second across the job (0 = no cap).
        #[arg(long)]
        rate: Option<String>,
        /// Retries of a transient failure (0–5, default 1).
        #[arg(long)]
        retries: Option<String>,
        /// Fixed pause of each worker between checks, in ms (default 1000).
        #[arg(long, conflicts_with = "random_interval_ms")]
        interval_ms: Option<String>,
        /// Random pause MIN-MAX in ms.
        #[arg(long, value_name = "MIN-MAX")]
        random_interval_ms: Option<String>,
    },
    /// Encrypt the keys stored in clear with KEYPOOL_ENCRYPTION_KEY (in batches; safe to stop and rerun).
    EncryptKeys,
    /// Store the encrypted keys in clear again (needs KEYPOOL_ENCRYPTION_KEY; in batches; safe to rerun).
    DecryptKeys,
    /// Print the request log, newest first: an aligned table (the newest --limit rows), or CSV with
    /// --csv (every matching row, streamed).
    Logs {
        /// Only the last DURATION, e.g. 1h, 24h, 7d, 30d.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// From this time (UTC; e.g. 2026-11-30T10:00 or RFC 3339).
        #[arg(long, conflicts_with = "since")]
        from: Option<String>,
        /// Until this time (UTC, exclusive).
        #[arg(long, conflicts_with = "since")]
        to: Option<String>,
        /// Only requests with this access key (name or id).
        #[arg(long, value_name = "NAME")]
        access_key: Option<String>,
        /// Only requests for this model.
        #[arg(long, value_name = "M")]
        model: Option<String>,
        /// Only this result: ok (2xx/3xx), 4xx, 5xx or no_key (503, no key could serve it).
        #[arg(long, value_name = "ok|4xx|5xx|no_key")]
        status: Option<String>,
        /// Only requests served (last) by this upstream key id.
        #[arg(long, value_name = "ID")]
        key: Option<String>,
        /// Only requests whose error contains this text.
        #[arg(long, value_name = "TEXT")]
        error: Option<String>,
        /// Rows at most (default 100 for the table; every row with --csv).
        #[arg(long)]
        limit: Option<u64>,
        /// CSV (header row, ISO-8601 UTC times) instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Manage the admin account.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Read or change settings without the web page.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
    /// Manage the access keys that clients of /v1 use.
    AccessKey {
        #[command(subcommand)]
        command: AccessKeyCommand,
    },
    /// The per-model price table (per million tokens, in the balance's currency) behind each
    /// request's estimated cost.
    Prices {
        #[command(subcommand)]
        command: PricesCommand,
    },
}

#[derive(Subcommand)]
enum PricesCommand {
    /// Print every model's input and output price per million tokens.
    List,
    /// Set a model's price per million input and output tokens (0 for a free model).
    Set {
        model: String,
        #[arg(value_name = "INPUT_PER_M", allow_negative_numbers = true)]
        input_per_m: String,
        #[arg(value_name = "OUTPUT_PER_M", allow_negative_numbers = true)]
        output_per_m: String,
    },
    /// Remove a model's price (its requests then show no cost).
    Remove { model: String },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Set a new admin password, typed at the terminal (or one line on stdin); ends all sessions.
    ResetPassword {
        /// Also rename the admin.
        #[arg(long)]
        username: Option<String>,
    },
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// Print every setting as NAME=VALUE (secrets as set / not set).
    List,
    /// Change settings: NAME=VALUE … (validated like the settings page; nothing is saved on error).
    Set {
        #[arg(required = true, value_name = "NAME=VALUE")]
        pairs: Vec<String>,
    },
}

// Parsed once per run: the size of `Set` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum AccessKeyCommand {
    /// Create an access key and print its token (shown only this once).
    Create { name: String },
    /// List access keys: token hint, state, limits, today's use (requests, tokens, cost), last use.
    List,
    /// Revoke an access key by name.
    Revoke { name: String },
    /// Change an access key's limits; only the options given change (`0` or `none` removes a limit).
    /// Days and months follow the `upstream_utc_offset` setting's time zone.
    Set {
        name: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<String>,
        /// Tokens per minute.
        #[arg(long)]
        tpm: Option<String>,
        /// Requests per day.
        #[arg(long)]
        rpd: Option<String>,
        /// Tokens per day.
        #[arg(long)]
        tpd: Option<String>,
        /// Estimated spend per day, in the balance's currency (from the price table).
        #[arg(long)]
        spend_day: Option<String>,
        /// Estimated spend per month.
        #[arg(long)]
        spend_month: Option<String>,
        /// Allowed models: names or patterns such as `Qwen/*`, comma-separated; `none` allows every model.
        #[arg(long)]
        models: Option<String>,
        /// Only the models of the `free_models` setting: on|off.
        #[arg(long)]
        free_only: Option<String>,
        /// Refused from this time: RFC 3339, or `YYYY-MM-DD[ HH:MM]` in the upstream's time zone; `never`.
        #[arg(long)]
        expires: Option<String>,
        /// on|off.
        #[arg(long)]
        enabled: Option<String>,
        /// A note for the admin (`none` removes it).
        #[arg(long)]
        note: Option<String>,
    },
}

/// The options of `keypool access-key set` (raw, parsed by the domain's rules).
#[derive(Default)]
struct LimitFlags {
    rpm: Option<String>,
    tpm: Option<String>,
    rpd: Option<String>,
    tpd: Option<String>,
    spend_day: Option<String>,
    spend_month: Option<String>,
    models: Option<String>,
    free_only: Option<String>,
    expires: Option<String>,
    enabled: Option<String>,
    note: Option<String>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = actix_web::rt::System::new().block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keypool: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr through `tracing`: plain text, or one JSON object per line with `KEYPOOL_LOG_FORMAT=json`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let json = std::env::var("KEYPOOL_LOG_FORMAT").is_ok_and(|f| f.trim().eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ =
        if json { builder.json().try_init() } else { builder.with_ansi(std::io::stderr().is_terminal()).try_init() };
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command.unwrap_or(Command::Serve { bind: None }) {
        Command::Serve { bind } => serve(bind).await,
        Command::Migrate => {
            let config = Config::from_env(None).context("reading the configuration")?;
            let target = config.database.redacted();
            startup::prepare(config, false).await.context("opening the database")?;
            println!("migrations applied to {target}");
            Ok(())
        }
        Command::Import { file, source } => import(&file, source).await,
        Command::Export { scope, min_balance, with_balance, sep, out } => {
            export(&scope, min_balance.as_deref(), with_balance, &sep, out).await
        }
        Command::Check { all, status, concurrency, rate, retries, interval_ms, random_interval_ms } => {
            check(all, status, concurrency, rate, retries, interval_ms, random_interval_ms).await
        }
        Command::EncryptKeys => migrate_keys(true).await,
        Command::DecryptKeys => migrate_keys(false).await,
        Command::Logs { since, from, to, access_key, model, status, key, error, limit, csv } => {
            let raw = crate::domain::logs::RawLogQuery {
                since,
                from,
                to,
                access_key,
                model,
                status,
                key,
                q: error,
                before: None,
            };
            logs(raw, limit, csv).await
        }
        Command::Admin { command: AdminCommand::ResetPassword { username } } => reset_password(username).await,
        Command::Settings { command } => settings(command).await,
        Command::AccessKey { command } => access_key(command).await,
        Command::Prices { command } => prices(command).await,
    }
}

async fn serve(bind: Option<String>) -> Result<(), String> {
    let config = Config::from_env(bind.as_deref()).context("reading the configuration")?;
    let backend = config.database.redacted();
    let app = Application::build(config).await.context("starting the server")?;
    let state = app.state.clone();
    let port = app.port();
    let server = app.into_server();
    spawn_graceful_stop(server.handle());
    let keys: i64 = db::run(&state.db, |conn| Ok(db::keys::count_by_status(conn)?))
        .await
        .map(|counts| counts.iter().map(|(_, n)| n).sum())
        .unwrap_or(0);
    let routable = state.pool.snapshot().paid_keys();
    let listen = std::net::SocketAddr::new(state.config.bind.ip(), port);
    tracing::info!(
        database = %backend,
        %listen,
        port,
        keys,
        routable,
        upstream = %state.pool.runtime().upstream,
        instance = %state.instance_id,
        keys_encrypted = state.codec.is_encrypted(),
        "keypool is listening"
    );
    server.await.context("serving")?;
    // The server has stopped (SIGTERM/SIGINT): write what is still only in memory.
    if !crate::pool::writer::flush(&state.pool, &state.db).await {
        return Err("could not write the last proxy outcomes at shutdown".to_owned());
    }
    Ok(())
}

/// SIGTERM and SIGINT (Ctrl-C) both stop gracefully: no new connections, in-flight requests and
/// streams finish (up to `KEYPOOL_SHUTDOWN_GRACE_S`), then `serve` writes what is buffered.
fn spawn_graceful_stop(handle: actix_web::dev::ServerHandle) {
    actix_web::rt::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::error!("cannot listen for SIGTERM/SIGINT");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping: finishing requests in flight");
        handle.stop(true).await;
    });
}

/// The store for a command other than `serve`: it never creates the admin account (only `serve`
/// does, so a generated password lands in the server's log, not in a script's output).
async fn open() -> Result<crate::state::AppState, String> {
    let config = Config::from_env(None).context("reading the configuration")?;
    startup::prepare(config, false).await.context("opening the database")
}

fn read_password(prompt: &str) -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

async fn reset_password(username: Option<String>) -> Result<(), String> {
    let state = open().await?;
    let new_name = match username {
        Some(u) => Some(account::parse_username(&u).map_err(|e| Lang::En.t(e.key).to_owned())?),
        None => None,
    };
    let first = read_password("New admin password: ")?;
    let again = if std::io::stdin().is_terminal() { read_password("Again: ")? } else { first.clone() };
    let pw = account::parse_new_password(&first, &again).map_err(|e| crate::i18n::field_message(Lang::En, &e))?;
    let now = state.now_ms();
    let default_name = state.config.admin_username.clone().unwrap_or_else(|| "admin".to_owned());
    // argon2 before the connection is taken.
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw)).await.context("hashing the password")??;
    let (name, created) = db::run(&state.db, move |conn| {
        let Some(admin) = db::admins::first(conn)? else {
            // No admin yet (`serve` never ran): create it with the password just typed.
            let username = new_name.unwrap_or(default_name);
            db::admins::create(conn, &username, &hash, now)?;
            return Ok((username, true));
        };
        let username = new_name.unwrap_or(admin.username);
        db::admins::update_credentials(conn, admin.id, &username, &hash, now)?;
        Ok((username, false))
    })
    .await
    .context("saving the admin credentials")?;
    if created {
        println!("created admin `{name}` with the password given");
    } else {
        println!("password of admin `{name}` changed; every admin session has ended");
    }
    Ok(())
}

async fn settings(command: SettingsCommand) -> Result<(), String> {
    let state = open().await?;
    match command {
        SettingsCommand::List => {
            let stored = state.settings();
            let mut out = std::io::stdout().lock();
            for (name, value) in stored.describe() {
                let _ = writeln!(out, "{name}={value}");
            }
            if let Some(url) = &state.config.upstream_override {
                let _ = writeln!(out, "# upstream_url is overridden by KEYPOOL_UPSTREAM_URL={url}");
            }
            Ok(())
        }
        SettingsCommand::Set { pairs } => {
            let mut split = Vec::new();
            for pair in &pairs {
                let (name, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not NAME=VALUE"))?;
                split.push((name.trim(), value));
            }
            let change = SettingsChange::parse(split.iter().copied()).map_err(|e| describe_errors(&e))?;
            let outcome = state.save_settings(change).await.context("saving the settings")?;
            outcome.map_err(|e| describe_errors(&e))?;
            println!(
                "saved: {}",
                pairs.iter().map(|p| p.split('=').next().unwrap_or("")).collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
    }
}

fn describe_errors(errors: &crate::domain::FieldErrors) -> String {
    errors
        .0
        .iter()
        .map(|e| format!("{}: {}", e.field, crate::i18n::field_message(Lang::En, e)))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn access_key(command: AccessKeyCommand) -> Result<(), String> {
    let state = open().await?;
    let now = state.now_ms();
    match command {
        AccessKeyCommand::Create { name } => {
            let name = access_token::parse_name(&name).map_err(|e| crate::i18n::field_message(Lang::En, &e))?;
            let created = db::run(&state.db, move |conn| Ok(db::access_keys::create_named(conn, &name, now)?))
                .await
                .context("creating the access key")?;
            let (name, token) = created.map_err(|e| crate::i18n::field_message(Lang::En, &e))?;
            eprintln!("created access key `{name}`; its token is shown only this once:");
            println!("{token}");
            Ok(())
        }
        AccessKeyCommand::List => list_access_keys(&state, now).await,
        AccessKeyCommand::Set {
            name,
            rpm,
            tpm,
            rpd,
            tpd,
            spend_day,
            spend_month,
            models,
            free_only,
            expires,
            enabled,
            note,
        } => {
            let flags =
                LimitFlags { rpm, tpm, rpd, tpd, spend_day, spend_month, models, free_only, expires, enabled, note };
            set_access_key_limits(&state, &name, flags).await
        }
        AccessKeyCommand::Revoke { name } => {
            let lookup = name.clone();
            let removed = db::run(&state.db, move |conn| Ok(db::access_keys::revoke_by_name(conn, &lookup)?))
                .await
                .context("revoking the access key")?;
            if removed {
                println!("revoked access key `{name}`");
                Ok(())
            } else {
                Err(format!("no access key is named `{name}`"))
            }
        }
    }
}

/// `keypool access-key list`: one line per key, with its limits and what it used today (every
/// instance's counts, as the database holds them).
async fn list_access_keys(state: &AppState, now: i64) -> Result<(), String> {
    use crate::domain::access_limits::Period;
    let offset = state.settings().proxy.upstream_utc_offset_min;
    let windows = Period::ALL.map(|p| (p, p.window(now, offset).0));
    let (rows, totals) = db::run(&state.db, move |conn| {
        let rows = db::access_keys::list(conn)?;
        let ids: Vec<i64> = rows.iter().map(|k| k.id).collect();
        let totals = db::access_keys::quota_totals(conn, &ids, windows)?;
        Ok((rows, totals))
    })
    .await
    .context("reading the access keys")?;
    let fmt = |ms: i64| crate::proxy::limits::local_time(ms, offset);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "NAME\tTOKEN\tSTATE\tLIMITS\tTODAY\tLAST USED");
    for k in rows {
        let limits = k.limits();
        let state = match limits.refuses_key(now) {
            Some(crate::domain::access_limits::Refusal::Disabled) => "disabled".to_owned(),
            Some(_) => "expired".to_owned(),
            None => match limits.expires_at {
                Some(at) => format!("enabled until {}", fmt(at)),
                None => "enabled".to_owned(),
            },
        };
        let today =
            totals.get(&(k.id, Period::Day.code(), windows[Period::Day.index()].1)).copied().unwrap_or_default();
        let today = format!(
            "{} requests, {} tokens, {}",
            today.requests,
            today.tokens,
            crate::domain::access_limits::format_money(today.cost)
        );
        let last = k.last_used_at.map(fmt).unwrap_or_else(|| "never".to_owned());
        let _ = writeln!(out, "{}\t{}\t{state}\t{}\t{today}\t{last}", k.name, k.token_hint, limits_summary(&limits));
    }
    Ok(())
}

/// `rpm 60, rpd 1000, models Qwen/*, free models only` (or `none`).
fn limits_summary(limits: &crate::domain::access_limits::AccessLimits) -> String {
    use crate::domain::access_limits::{Limit, format_money};
    let mut parts: Vec<String> = Limit::ALL
        .iter()
        .filter_map(|l| {
            let v = l.of(limits)?;
            Some(format!("{} {}", l.name(), if l.is_spend() { format_money(v) } else { (v as i64).to_string() }))
        })
        .collect();
    if !limits.models.is_empty() {
        parts.push(format!("models {}", limits.models.join(" ")));
    }
    if limits.free_only {
        parts.push("free models only".to_owned());
    }
    if let Some(note) = &limits.note {
        parts.push(format!("note: {note}"));
    }
    if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
}

/// `keypool access-key set NAME …`: every option parsed first; any error saves nothing.
async fn set_access_key_limits(state: &AppState, name: &str, flags: LimitFlags) -> Result<(), String> {
    use crate::domain::access_limits::{parse_count, parse_expiry, parse_models, parse_money, parse_note};
    use crate::domain::settings::parse_bool;
    let offset = state.settings().proxy.upstream_utc_offset_min;
    let lookup = name.to_owned();
    let key = db::run(&state.db, move |conn| Ok(db::access_keys::find_by_name(conn, &lookup)?))
        .await
        .context("finding the access key")?
        .ok_or_else(|| format!("no access key is named `{name}`"))?;
    let mut limits = key.limits();
    let mut errors = crate::domain::FieldErrors::default();
    let mut take = |r: Result<(), crate::domain::FieldError>| {
        if let Err(e) = r {
            errors.push(e);
        }
    };
    let on_off = |field: &'static str, raw: &str| {
        parse_bool(raw).ok_or_else(|| crate::domain::FieldError::new(field, "access_keys.limits.on_off_invalid"))
    };
    if let Some(v) = &flags.rpm {
        take(parse_count("rpm", v).map(|x| limits.rpm = x));
    }
    if let Some(v) = &flags.tpm {
        take(parse_count("tpm", v).map(|x| limits.tpm = x));
    }
    if let Some(v) = &flags.rpd {
        take(parse_count("rpd", v).map(|x| limits.rpd = x));
    }
    if let Some(v) = &flags.tpd {
        take(parse_count("tpd", v).map(|x| limits.tpd = x));
    }
    if let Some(v) = &flags.spend_day {
        take(parse_money("spend_day", v).map(|x| limits.spend_day = x));
    }
    if let Some(v) = &flags.spend_month {
        take(parse_money("spend_month", v).map(|x| limits.spend_month = x));
    }
    if let Some(v) = &flags.models {
        take(parse_models(v).map(|x| limits.models = x));
    }
    if let Some(v) = &flags.free_only {
        take(on_off("free_only", v).map(|x| limits.free_only = x));
    }
    if let Some(v) = &flags.expires {
        take(parse_expiry(v, offset).map(|x| limits.expires_at = x));
    }
    if let Some(v) = &flags.enabled {
        take(on_off("enabled", v).map(|x| limits.enabled = x));
    }
    if let Some(v) = &flags.note {
        take(parse_note(v).map(|x| limits.note = x));
    }
    if !errors.is_empty() {
        return Err(format!("nothing changed: {}", describe_errors(&errors)));
    }
    let id = key.id;
    let saved = limits.clone();
    db::run(&state.db, move |conn| Ok(db::access_keys::set_limits(conn, id, &saved)?))
        .await
        .context("saving the access key's limits")?;
    println!("access key `{name}`: {}", limits_summary(&limits));
    Ok(())
}

async fn prices(command: PricesCommand) -> Result<(), String> {
    use crate::domain::tokens::{Price, parse_model, parse_price};
    let state = open().await?;
    let now = state.now_ms();
    match command {
        PricesCommand::List => {
            let rows = db::run(&state.db, |conn| Ok(db::prices::list(conn)?)).await.context("reading the prices")?;
            let width = rows.iter().map(|r| r.model.len()).max().unwrap_or(5).max(5);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{:width$}  {:>12}  {:>12}", "MODEL", "INPUT_PER_M", "OUTPUT_PER_M");
            for r in rows {
                let _ = writeln!(out, "{:width$}  {:>12}  {:>12}", r.model, r.input_per_m, r.output_per_m);
            }
            Ok(())
        }
        PricesCommand::Set { model, input_per_m, output_per_m } => {
            let model = parse_model(&model).ok_or_else(|| format!("`{model}` is not a model name"))?;
            let number = |raw: &str| {
                parse_price(raw).ok_or_else(|| format!("`{raw}` is not a price (a number from 0, per million tokens)"))
            };
            let price = Price { input_per_m: number(&input_per_m)?, output_per_m: number(&output_per_m)? };
            let stored = model.clone();
            db::run(&state.db, move |conn| Ok(db::prices::set(conn, &stored, price, now)?))
                .await
                .context("saving the price")?;
            println!("{model}: {} in / {} out per million tokens", price.input_per_m, price.output_per_m);
            Ok(())
        }
        PricesCommand::Remove { model } => {
            let lookup = model.clone();
            let removed = db::run(&state.db, move |conn| Ok(db::prices::remove(conn, &lookup)?))
                .await
                .context("removing the price")?;
            if !removed {
                return Err(format!("{model} has no price"));
            }
            println!("removed the price of {model}");
            Ok(())
        }
    }
}

async fn import(file: &str, source: Option<String>) -> Result<(), String> {
    use std::io::Read;
    let limit = crate::domain::keys::MAX_IMPORT_BYTES as u64;
    let mut text = String::new();
    let read = if file == "-" {
        std::io::stdin().lock().take(limit + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit + 1).read_to_string(&mut text))
    };
    read.map_err(|e| format!("cannot read {file}: {e}"))?;
    if text.len() as u64 > limit {
        return Err(format!("{file} is larger than 20 MB: split it into several imports"));
    }
    let state = open().await?;
    let source = source.or_else(|| (file != "-").then(|| file.to_owned()));
    let now = state.now_ms();
    let codec = state.codec.clone();
    let summary = db::run(&state.db, move |conn| {
        Ok(db::keys::import(conn, &codec, crate::domain::keys::parse_import(&text), source.as_deref(), now)?)
    })
    .await
    .context("importing the keys")?;
    println!(
        "added {}, already present {}, duplicates in input {}, rejected {}",
        summary.added,
        summary.present,
        summary.duplicates,
        summary.rejected.len()
    );
    for r in &summary.rejected {
        eprintln!("line {}: {} ({})", r.line, r.text, Lang::En.t(r.reason.message_key()));
    }
    Ok(())
}

async fn export(
    scope: &str,
    min_balance: Option<&str>,
    with_balance: bool,
    sep: &str,
    out: Option<std::path::PathBuf>,
) -> Result<(), String> {
    if matches!(scope, "selection" | "selected") {
        return Err("--scope selection exists only in the admin page: use all, valid or min-balance".into());
    }
    let request =
        crate::domain::export::ExportRequest::parse(scope, min_balance, with_balance.then_some("1"), Some(sep))
            .map_err(|e| crate::i18n::field_message(Lang::En, &e))?;
    let state = open().await?;
    let pool = state.db.clone();
    let codec = state.codec.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let mut conn = pool.get().context("connecting to the database")?;
        let mut sink: Box<dyn Write> = match &out {
            Some(path) => Box::new(std::io::BufWriter::new(
                create_private(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let mut failure = None;
        let count =
            db::keys::export_each(&mut conn, &codec, &request, 0, |piece| match sink.write_all(piece.as_bytes()) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e.to_string());
                    false
                }
            })
            .context("exporting the keys")?;
        sink.flush().context("writing the export")?;
        failure.map_or(Ok(count), Err)
    })
    .await
    .map_err(|e| e.to_string())??;
    eprintln!("exported {written} keys");
    Ok(())
}

/// Keys per batch of `encrypt-keys` / `decrypt-keys` (one transaction each).
const MIGRATE_BATCH: i64 = 1_000;

/// `encrypt-keys` / `decrypt-keys`: rewrites the keys in batches of [`MIGRATE_BATCH`], one
/// transaction each, in id order; a batch only takes keys not yet migrated, so an interrupted run is
/// finished by running it again. Start-up has already refused a wrong key. Progress on stderr, the
/// counts on stdout.
async fn migrate_keys(encrypt: bool) -> Result<(), String> {
    let state = open().await?;
    let Some(cipher) = state.codec.cipher().cloned() else {
        return Err(format!(
            "KEYPOOL_ENCRYPTION_KEY is not set: `keypool {}` needs the encryption key",
            if encrypt { "encrypt-keys" } else { "decrypt-keys" }
        ));
    };
    let verb = if encrypt { "encrypted" } else { "decrypted" };
    let (mut after, mut done) = (0_i64, 0_usize);
    loop {
        let cipher = cipher.clone();
        let (n, last) = db::run(&state.db, move |conn| {
            Ok(if encrypt {
                db::encryption::encrypt_batch(conn, &cipher, after, MIGRATE_BATCH)?
            } else {
                db::encryption::decrypt_batch(conn, &cipher, after, MIGRATE_BATCH)?
            })
        })
        .await
        .context("migrating the stored keys")?;
        let Some(last) = last else { break };
        after = last;
        done += n;
        eprintln!("{verb} {done} keys…");
    }
    let (encrypted, in_clear, scrubbed) = db::run(&state.db, move |conn| {
        let (encrypted, in_clear) = db::encryption::counts(conn)?;
        if !encrypt && encrypted == 0 {
            db::encryption::forget_check(conn)?;
        }
        let scrubbed = encrypt && done > 0 && db::encryption::scrub(conn)?;
        Ok((encrypted, in_clear, scrubbed))
    })
    .await
    .context("finishing the key migration")?;
    println!("{verb} {done} keys; now {encrypted} stored encrypted, {in_clear} in clear");
    if encrypt && done > 0 {
        eprintln!(
            "{}",
            if scrubbed {
                "the SQLite file was rebuilt (VACUUM): no key in clear is left in its free space"
            } else {
                "PostgreSQL keeps the old row versions until it vacuums: run `VACUUM FULL keys` to drop them now"
            }
        );
    }
    if !encrypt && encrypted == 0 {
        println!("every key is stored in clear: KEYPOOL_ENCRYPTION_KEY can be removed");
    }
    Ok(())
}

/// Rows of `keypool logs` without --csv and without --limit.
const LOGS_DEFAULT_LIMIT: u64 = 100;

async fn logs(raw: crate::domain::logs::RawLogQuery, limit: Option<u64>, csv: bool) -> Result<(), String> {
    use crate::domain::logs::{CSV_HEADER, LogQuery, csv_row};
    let (query, errors) = LogQuery::parse(&raw);
    if let Some(e) = errors.0.first() {
        return Err(crate::i18n::field_message(Lang::En, e));
    }
    let limit = match (limit, csv) {
        (Some(n), _) => Some(n as i64),
        (None, false) => Some(LOGS_DEFAULT_LIMIT as i64),
        (None, true) => None,
    };
    let state = open().await?;
    let now = state.now_ms();
    let pool = state.db.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut conn = pool.get().context("connecting to the database")?;
        let plan = db::logs::plan(&mut conn, &query.filter, now).context("reading the log")?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if csv {
            out.write_all(CSV_HEADER.as_bytes()).context("writing the log")?;
            let mut left = limit.unwrap_or(i64::MAX);
            let mut failure = None;
            let slice = left.clamp(1, 5_000);
            db::logs::each_slice(&mut conn, &plan, None, slice, |rows| {
                let mut piece = String::with_capacity(rows.len() * 160);
                for e in rows.iter().take(left.max(0) as usize) {
                    csv_row(&mut piece, e);
                }
                left -= rows.len() as i64;
                if let Err(e) = out.write_all(piece.as_bytes()) {
                    failure = Some(e.to_string());
                    return false;
                }
                left > 0
            })
            .context("reading the log")?;
            if let Some(e) = failure {
                return Err(e);
            }
        } else {
            let rows = db::logs::page(&mut conn, &plan, None, limit.unwrap_or(100)).context("reading the log")?;
            out.write_all(log_table(&rows).as_bytes()).context("writing the log")?;
        }
        out.flush().context("writing the log")
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The log as an aligned text table (times in UTC, keys masked, long errors cut).
fn log_table(rows: &[crate::domain::logs::LogEntry]) -> String {
    use crate::domain::logs::format_cost;
    let header =
        ["TIME (UTC)", "ACCESS KEY", "MODEL", "KEY", "STATUS", "LATENCY", "TTFB", "TRIES", "TOKENS", "COST", "ERROR"];
    let opt = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|e| {
            let time = chrono::DateTime::from_timestamp_millis(e.at)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let tokens = match (e.prompt_tokens, e.completion_tokens, e.total_tokens) {
                (None, None, None) => "-".to_owned(),
                (p, c, t) => format!("{}/{}/{}", opt(p), opt(c), opt(t)),
            };
            let error: String = e.error.as_deref().unwrap_or("").replace(['\n', '\r', '\t'], " ");
            let error = if error.chars().count() > 80 {
                format!("{}…", error.chars().take(79).collect::<String>())
            } else {
                error
            };
            [
                time,
                Some(e.access_key_label()).filter(|s| !s.is_empty()).unwrap_or_else(|| "-".to_owned()),
                e.model.clone().unwrap_or_else(|| "-".to_owned()),
                Some(e.key_label()).filter(|s| !s.is_empty()).unwrap_or_else(|| "-".to_owned()),
                e.status.to_string(),
                format!("{} ms", e.latency_ms),
                e.ttfb_ms.map_or_else(|| "-".to_owned(), |v| format!("{v} ms")),
                e.attempts.to_string(),
                tokens,
                e.cost.map_or_else(|| "-".to_owned(), format_cost),
                error,
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |fields: Vec<&str>| {
        let mut text = String::new();
        for (i, (f, w)) in fields.iter().zip(&widths).enumerate() {
            if i + 1 == fields.len() {
                text.push_str(f);
            } else {
                text.push_str(f);
                text.push_str(&" ".repeat(w - f.chars().count() + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &cells {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Opens `path` for writing like `File::create`, but a new file is readable by its owner only (0600):
/// an export holds keys in clear. An existing file keeps its mode.
fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[allow(clippy::too_many_arguments)]
async fn check(
    all: bool,
    status: Vec<String>,
    concurrency: Option<String>,
    rate: Option<String>,
    retries: Option<String>,
    interval_ms: Option<String>,
    random_interval_ms: Option<String>,
) -> Result<(), String> {
    use crate::domain::checks::{CheckParams, RawCheckParams};
    use crate::domain::keys::{KeyFilter, KeyStatus};
    let statuses = status
        .iter()
        .map(|s| KeyStatus::parse(s).ok_or_else(|| format!("unknown status `{s}`")))
        .collect::<Result<Vec<_>, _>>()?;
    if !all && statuses.is_empty() {
        return Err("choose the keys: --all, or --status S (repeatable)".into());
    }
    let mut raw = RawCheckParams { concurrency, rate, retries, ..Default::default() };
    if let Some(ms) = interval_ms {
        let secs = ms.trim().parse::<f64>().map_err(|_| format!("--interval-ms: `{ms}` is not a number"))? / 1000.0;
        raw.interval_secs = Some(secs.to_string());
    }
    if let Some(range) = random_interval_ms {
        let (min, max) =
            range.split_once('-').ok_or_else(|| format!("--random-interval-ms: `{range}` is not MIN-MAX"))?;
        raw.interval_mode = Some("random".into());
        raw.min_interval_ms = Some(min.to_owned());
        raw.max_interval_ms = Some(max.to_owned());
    }
    let params = CheckParams::parse(&raw).map_err(|e| describe_errors(&e))?;
    let state = open().await?;
    let codec = state.codec.clone();
    let keys = db::run(&state.db, move |conn| {
        if all {
            return Ok(db::keys::ids_for_check(conn, &codec, &db::keys::CheckScope::AllEnabled)?);
        }
        let mut keys = Vec::new();
        for s in statuses {
            let filter = KeyFilter { status: Some(s), search: None, check_failed: None };
            keys.extend(db::keys::ids_for_check(conn, &codec, &db::keys::CheckScope::Matching(filter))?);
        }
        Ok(keys)
    })
    .await
    .context("choosing the keys to check")?;
    if keys.is_empty() {
        println!("no key to check");
        return Ok(());
    }
    let ctx = state.job_context();
    let job = state.checker.start(ctx, keys, params, "checks.scope.cli").context("starting the check")?;
    follow(&job).await;
    let p = job.progress();
    for (class, n) in &p.counts {
        println!("{} {n}", class.as_str());
    }
    let keys = if p.processed == 1 { "key" } else { "keys" };
    eprintln!("checked {} {keys} in {:.1} s", p.processed, p.elapsed.as_secs_f64());
    Ok(())
}

/// Shows a check's progress on stderr until it ends: a bar on a terminal, a line every 5 s otherwise.
async fn follow(job: &crate::checker::Job) {
    let tty = std::io::stderr().is_terminal();
    let mut last_line = std::time::Instant::now();
    while job.is_running() {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
        let p = job.progress();
        if tty {
            let filled = (p.processed * 30).checked_div(p.total).unwrap_or(30);
            let eta = p.eta.map(|d| format!("  ETA {}s", d.as_secs())).unwrap_or_default();
            eprint!(
                "\r[{}{}] {}/{}  {:.1}/s{eta}   ",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                p.processed,
                p.total,
                p.speed
            );
        } else if last_line.elapsed() >= std::time::Duration::from_secs(5) {
            eprintln!("checked {}/{} ({:.1}/s)", p.processed, p.total, p.speed);
            last_line = std::time::Instant::now();
        }
    }
    if tty {
        eprintln!();
    }
}

/// A CLI error: what the command was doing, then the cause chain (`saving the price: database
/// error: query failed: …`).
trait Context<T> {
    fn context(self, doing: &str) -> Result<T, String>;
}

impl<T, E: std::error::Error + 'static> Context<T> for Result<T, E> {
    fn context(self, doing: &str) -> Result<T, String> {
        self.map_err(|e| format!("{doing}: {}", crate::error::chain(&e)))
    }
}
