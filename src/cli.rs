//! The command line: `serve` (default), `migrate`, `admin reset-password`, `settings`, `access-key`.
//! Every failure prints one line on stderr and exits non-zero.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::db;
use crate::domain::settings::SettingsChange;
use crate::domain::{access_token, account, password};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::startup::{self, Application};

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

#[derive(Subcommand)]
enum AccessKeyCommand {
    /// Create an access key and print its token (shown only this once).
    Create { name: String },
    /// List access keys (name, token hint, created, last used).
    List,
    /// Revoke an access key by name.
    Revoke { name: String },
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
            let config = Config::from_env(None).map_err(|e| e.to_string())?;
            let target = config.database.redacted();
            startup::prepare(config, false).await.map_err(|e| e.to_string())?;
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
        Command::Admin { command: AdminCommand::ResetPassword { username } } => reset_password(username).await,
        Command::Settings { command } => settings(command).await,
        Command::AccessKey { command } => access_key(command).await,
    }
}

async fn serve(bind: Option<String>) -> Result<(), String> {
    let config = Config::from_env(bind.as_deref()).map_err(|e| e.to_string())?;
    let backend = config.database.redacted();
    let app = Application::build(config).await.map_err(|e| e.to_string())?;
    let state = app.state.clone();
    let port = app.port();
    let server = app.into_server();
    spawn_graceful_stop(server.handle());
    let keys: i64 = db::run(&state.db, |conn| Ok(db::keys::count_by_status(conn)?))
        .await
        .map(|counts| counts.iter().map(|(_, n)| n).sum())
        .unwrap_or(0);
    let routable = state.pool.snapshot().slots.len();
    let listen = std::net::SocketAddr::new(state.config.bind.ip(), port);
    tracing::info!(
        database = %backend,
        %listen,
        port,
        keys,
        routable,
        upstream = %state.pool.runtime().upstream,
        instance = %state.instance_id,
        "keypool is listening"
    );
    server.await.map_err(|e| e.to_string())?;
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

async fn open() -> Result<crate::state::AppState, String> {
    let config = Config::from_env(None).map_err(|e| e.to_string())?;
    startup::prepare(config, true).await.map_err(|e| e.to_string())
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
    let pw = account::parse_new_password(&first, &again)
        .map_err(|e| crate::views::components::field_message(Lang::En, &e))?;
    let now = state.now_ms();
    let name = db::run(&state.db, move |conn| {
        let Some(admin) = db::admins::first(conn)? else {
            return Err(AppError::Internal("there is no admin account yet: run `keypool serve` once".into()));
        };
        let username = new_name.unwrap_or(admin.username);
        let hash = password::hash(&pw).map_err(AppError::Internal)?;
        db::admins::update_credentials(conn, admin.id, &username, &hash, now)?;
        Ok(username)
    })
    .await
    .map_err(|e| e.to_string())?;
    println!("password of admin `{name}` changed; every admin session has ended");
    Ok(())
}

async fn settings(command: SettingsCommand) -> Result<(), String> {
    let state = open().await?;
    match command {
        SettingsCommand::List => {
            let stored = state.settings().await.map_err(|e| e.to_string())?;
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
            let now = state.now_ms();
            let outcome = db::run(&state.db, move |conn| {
                let current = db::settings::current(conn)?;
                match current.apply(&change, password::hash) {
                    Ok(rows) => db::settings::put_many(conn, &rows, now).map(|_| Ok(())).map_err(AppError::from),
                    Err(errors) => Ok(Err(errors)),
                }
            })
            .await
            .map_err(|e| e.to_string())?;
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
        .map(|e| format!("{}: {}", e.field, crate::views::components::field_message(Lang::En, e)))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn access_key(command: AccessKeyCommand) -> Result<(), String> {
    let state = open().await?;
    let now = state.now_ms();
    match command {
        AccessKeyCommand::Create { name } => {
            let name =
                access_token::parse_name(&name).map_err(|e| crate::views::components::field_message(Lang::En, &e))?;
            let created = db::run(&state.db, move |conn| Ok(db::access_keys::create_named(conn, &name, now)?))
                .await
                .map_err(|e| e.to_string())?;
            let (name, token) = created.map_err(|e| crate::views::components::field_message(Lang::En, &e))?;
            eprintln!("created access key `{name}`; its token is shown only this once:");
            println!("{token}");
            Ok(())
        }
        AccessKeyCommand::List => {
            let rows = db::run(&state.db, |conn| Ok(db::access_keys::list(conn)?)).await.map_err(|e| e.to_string())?;
            let fmt = |ms: i64| {
                chrono::DateTime::from_timestamp_millis(ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default()
            };
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "NAME\tTOKEN\tCREATED\tLAST USED");
            for k in rows {
                let last = k.last_used_at.map(fmt).unwrap_or_else(|| "never".to_owned());
                let _ = writeln!(out, "{}\t{}\t{}\t{}", k.name, k.token_hint, fmt(k.created_at), last);
            }
            Ok(())
        }
        AccessKeyCommand::Revoke { name } => {
            let lookup = name.clone();
            let removed = db::run(&state.db, move |conn| Ok(db::access_keys::revoke_by_name(conn, &lookup)?))
                .await
                .map_err(|e| e.to_string())?;
            if removed {
                println!("revoked access key `{name}`");
                Ok(())
            } else {
                Err(format!("no access key is named `{name}`"))
            }
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
    let summary = db::run(&state.db, move |conn| {
        Ok(db::keys::import(conn, crate::domain::keys::parse_import(&text), source.as_deref(), now)?)
    })
    .await
    .map_err(|e| e.to_string())?;
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
            .map_err(|e| crate::views::components::field_message(Lang::En, &e))?;
    let state = open().await?;
    let pool = state.db.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let mut conn = pool.get().map_err(|e| e.to_string())?;
        let mut sink: Box<dyn Write> = match &out {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let mut failure = None;
        let count = db::keys::export_each(&mut conn, &request, 0, |piece| match sink.write_all(piece.as_bytes()) {
            Ok(()) => true,
            Err(e) => {
                failure = Some(e.to_string());
                false
            }
        })
        .map_err(|e| e.to_string())?;
        sink.flush().map_err(|e| e.to_string())?;
        failure.map_or(Ok(count), Err)
    })
    .await
    .map_err(|e| e.to_string())??;
    eprintln!("exported {written} keys");
    Ok(())
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
    let keys = db::run(&state.db, move |conn| {
        if all {
            return Ok(db::keys::ids_for_check(conn, &db::keys::CheckScope::AllEnabled)?);
        }
        let mut keys = Vec::new();
        for s in statuses {
            let filter = KeyFilter { status: Some(s), search: None };
            keys.extend(db::keys::ids_for_check(conn, &db::keys::CheckScope::Matching(filter))?);
        }
        Ok(keys)
    })
    .await
    .map_err(|e| e.to_string())?;
    if keys.is_empty() {
        println!("no key to check");
        return Ok(());
    }
    let ctx = crate::checker::context(&state).await.map_err(|e| e.to_string())?;
    let job = state.checker.start(ctx, keys, params, "cli").map_err(|e| e.to_string())?;
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
    let p = job.progress();
    for (class, n) in &p.counts {
        println!("{} {n}", class.as_str());
    }
    eprintln!("checked {} keys in {:.1} s", p.processed, p.elapsed.as_secs_f64());
    Ok(())
}
