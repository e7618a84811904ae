//! The real `keypool` binary in tests: a clean environment, waiting with a deadline, a server on a
//! random port with its log, and a database seeded with one routable key and an access key.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use keypool::config::DatabaseUrl;

pub const BIN: &str = env!("CARGO_BIN_EXE_keypool");

/// `keypool` in `dir` with none of the caller's keypool environment; `DATABASE_URL` when given.
pub fn keypool(dir: &std::path::Path, database: Option<&str>) -> Command {
    clean(Command::new(BIN), dir, database)
}

/// `keypool ARGS` started by `sh` with at most `nofile` open files (soft and hard limit).
fn keypool_with_nofile(dir: &std::path::Path, database: Option<&str>, nofile: u32) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), BIN]);
    clean(cmd, dir, database)
}

fn clean(mut cmd: Command, dir: &std::path::Path, database: Option<&str>) -> Command {
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("PORT")
        .env_remove("KEYPOOL_ADMIN_USERNAME")
        .env_remove("KEYPOOL_ADMIN_PASSWORD")
        .env_remove("KEYPOOL_SECRET")
        .env_remove("KEYPOOL_UPSTREAM_URL")
        .env_remove("KEYPOOL_SHUTDOWN_GRACE_S")
        .env_remove("KEYPOOL_ENCRYPTION_KEY")
        .env("RUST_LOG", "info");
    if let Some(url) = database {
        cmd.env("DATABASE_URL", url);
    }
    cmd
}

/// Waits for the child to exit, killing it (and failing) if it is still running at the deadline.
pub fn wait_with_deadline(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {deadline:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to its end (stdin from `stdin`), with a generous deadline.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    wait_with_deadline(child, Duration::from_secs(300))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `keypool serve` on a random port with `env`; returns the child, its port and its log so far
/// (kept filling until it exits, so the server never writes to a closed pipe).
pub fn start_server(
    dir: &std::path::Path,
    database: Option<&str>,
    env: &[(&str, &str)],
) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
    started(keypool(dir, database), env)
}

/// [`start_server`] with at most `nofile` open files.
pub fn start_server_with_nofile(
    dir: &std::path::Path,
    database: Option<&str>,
    env: &[(&str, &str)],
    nofile: u32,
) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
    started(keypool_with_nofile(dir, database, nofile), env)
}

fn started(mut cmd: Command, env: &[(&str, &str)]) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .env("KEYPOOL_INSECURE_COOKIES", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // `port=8080` in text logs, `"port":8080` in JSON ones.
            let port = line
                .split("port=")
                .nth(1)
                .or_else(|| line.split("\"port\":").nth(1))
                .map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>());
            lines.lock().unwrap().push(line);
            if let Some(port) = port {
                let _ = tx.send(port.parse::<u16>().unwrap_or(0));
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(port) if port > 0 => (child, port, log),
        _ => {
            let _ = child.kill();
            panic!("server did not report its port: {:?}", log.lock().unwrap());
        }
    }
}

/// Migrates the database, puts `key` in it as active with a balance of 5 and mints an access key;
/// returns the access key's token.
pub fn seed_routable(url: &DatabaseUrl, key: &str) -> String {
    let pool = keypool::db::open(url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    keypool::db::keys::insert_new(&mut conn, &keypool::domain::key_crypto::KeyCodec::Plain, &[key.to_owned()], None, 1)
        .unwrap();
    diesel::sql_query("UPDATE keys SET status = 'active', total_balance = 5, status_changed_at = 1")
        .execute(&mut conn)
        .unwrap();
    let minted = keypool::domain::access_token::mint();
    keypool::db::access_keys::create(&mut conn, "tests", &minted.hash, &minted.hint, 1).unwrap();
    minted.token
}
