//! The `keypool` binary: start-up failures, first start, `migrate`, `settings`, `access-key` and
//! `admin reset-password`.

use std::process::{Command, Stdio};
use std::time::Duration;

use keypool::config::DatabaseUrl;

use crate::process::{keypool, run, seed_routable, start_server, text, wait_with_deadline};
use crate::support::TestDb;

/// Runs `keypool` (serve) on `database`; it must fail within 5 s with one line on stderr, returned.
fn fails_fast(dir: &std::path::Path, database: &str) -> String {
    let child = keypool(dir, Some(database)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let out = wait_with_deadline(child, Duration::from_secs(5));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    err
}

#[test]
fn unsupported_database_url_exits_quickly_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails_fast(dir.path(), "mysql://x");
    assert!(err.contains("DATABASE_URL") && err.contains("mysql"), "{err}");
    assert!(!dir.path().join("keypool.db").exists(), "no SQLite file was created by mistake");
}

#[test]
fn unreachable_postgres_exits_quickly_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails_fast(dir.path(), "postgres://postgres:secret-pw@127.0.0.1:1/keypool");
    assert!(err.contains("cannot open the database") && err.contains("127.0.0.1"), "{err}");
    assert!(!err.contains("secret-pw"), "password redacted: {err}");
}

#[test]
fn silent_postgres_exits_within_the_connect_timeout() {
    // A socket that accepts connections but never answers: libpq's connect_timeout must end the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let err = fails_fast(dir.path(), &format!("postgres://postgres@127.0.0.1:{port}/keypool"));
    assert!(err.contains("cannot open the database"), "{err}");
    drop(silent);
}

#[test]
fn bad_secret_and_bad_port_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(keypool(dir.path(), None).env("KEYPOOL_SECRET", "too-short"), None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("KEYPOOL_SECRET"));
    let out = run(keypool(dir.path(), None).env("PORT", "eighty"), None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("PORT"));
}

#[test]
fn first_start_on_the_sqlite_default_serves_login_and_prints_a_generated_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _, lines) = start_server(dir.path(), None, &[]);
    let log = lines.lock().unwrap().join("\n");
    let _ = child.kill();
    let _ = child.wait();
    assert!(dir.path().join("keypool.db").exists(), "keypool.db in the working directory");
    let password =
        log.split("generated password `").nth(1).and_then(|r| r.split('`').next()).unwrap_or_default().to_owned();
    assert_eq!(password.len(), 20, "{log}");
    assert!(log.contains("account `admin`"));

    let (mut child, port2, lines) = start_server(dir.path(), None, &[]);
    let (body, login) = actix_web::rt::System::new().block_on(async {
        let client = crate::support::new_client();
        let base = format!("http://127.0.0.1:{port2}");
        let body = client.get(format!("{base}/login")).send().await.unwrap().text().await.unwrap();
        let form = [("username", "admin"), ("password", password.as_str())];
        let login = client.post(format!("{base}/login")).form(&form).send().await.unwrap().status();
        (body, login)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(!lines.lock().unwrap().join("\n").contains("generated password"), "printed only on first start");
    assert!(body.contains(r#"name="password""#));
    assert_eq!(login, 303, "the printed password works");
}

#[test]
fn environment_creates_the_admin_and_migrate_runs_alone() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let out = run(keypool(dir.path(), Some(&env_url)).arg("migrate"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("migrations applied"));

    // Only `serve` creates the admin, from the environment here.
    let admin_env = [("KEYPOOL_ADMIN_USERNAME", "boss"), ("KEYPOOL_ADMIN_PASSWORD", "from-the-environment")];
    let out = run(keypool(dir.path(), Some(&env_url)).envs(admin_env).args(["settings", "list"]), None);
    assert!(out.status.success());
    assert!(no_admin(&url), "a command other than serve creates no admin");
    let (mut child, _, _) = start_server(dir.path(), Some(&env_url), &admin_env);
    let _ = child.kill();
    let _ = child.wait();
    let admin = admin_row(&url);
    assert_eq!(admin.username, "boss");
    assert!(keypool::domain::password::verify("from-the-environment", &admin.password_hash));
    drop(db);
}

fn no_admin(url: &DatabaseUrl) -> bool {
    let mut conn = keypool::db::connect(url).unwrap();
    keypool::db::admins::first(&mut conn).unwrap().is_none()
}

#[test]
fn only_serve_creates_the_admin_and_prints_the_generated_password() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let out = run(keypool(dir.path(), Some(&env_url)).args(["settings", "list"]), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!printed.contains("password `") && !printed.contains("generated"), "{printed}");
    assert!(no_admin(&url), "no admin before serve");

    // With JSON logs, the password is printed on stderr but never enters the log stream.
    let (mut child, _, lines) = start_server(dir.path(), Some(&env_url), &[("KEYPOOL_LOG_FORMAT", "json")]);
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.lock().unwrap().join("\n");
    assert_eq!(log.matches("generated password `").count(), 1, "{log}");
    let password = log.split("generated password `").nth(1).and_then(|r| r.split('`').next()).unwrap();
    let json_lines: Vec<&str> = log.lines().filter(|l| l.starts_with('{')).collect();
    assert!(json_lines.iter().any(|l| l.contains("created the admin account")), "{log}");
    assert!(!json_lines.iter().any(|l| l.contains(password)), "the password is not in the logs: {log}");
    assert!(!no_admin(&url));
    drop(db);
}

#[test]
fn the_database_and_exports_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let env_url = format!("sqlite://{}", db.display());
    let out = run(keypool(dir.path(), Some(&env_url)).arg("migrate"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&db), 0o600, "the database holds every key in clear");

    let (mut child, _, lines) = start_server(dir.path(), Some(&env_url), &[]);
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("fresh.db{suffix}"));
        assert!(side.exists(), "{suffix} while serving");
        assert_eq!(mode(&side), 0o600, "{suffix}");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(!lines.lock().unwrap().join("\n").contains("readable by others"));

    let target = dir.path().join("keys.txt");
    let out = run(keypool(dir.path(), Some(&env_url)).args(["export", "--out", target.to_str().unwrap()]), Some(""));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(mode(&target), 0o600, "an export holds keys in clear");

    // An existing database readable by others is used as it is, with one warning.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(keypool(dir.path(), Some(&env_url)).args(["settings", "list"]), None);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.matches("readable by others").count(), 1, "{err}");
    assert_eq!(mode(&db), 0o644);
}

fn admin_row(url: &DatabaseUrl) -> keypool::db::admins::Admin {
    let mut conn = keypool::db::connect(url).unwrap();
    keypool::db::admins::first(&mut conn).unwrap().unwrap()
}

#[test]
fn prices_cli_lists_sets_and_removes_and_refuses_bad_prices() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let cli = |args: &[&str]| run(keypool(dir.path(), Some(&env_url)).arg("prices").args(args), None);

    let listed = text(&cli(&["list"]).stdout);
    let seeded = listed.lines().find(|l| l.starts_with("deepseek-ai/DeepSeek-V3 ")).expect("seeded price");
    assert_eq!(seeded.split_whitespace().collect::<Vec<_>>(), ["deepseek-ai/DeepSeek-V3", "2", "8"]);
    let out = cli(&["set", "acme/model", "-1", "2"]);
    assert!(!out.status.success() && text(&out.stderr).contains("`-1` is not a price"), "{}", text(&out.stderr));
    let out = cli(&["set", "acme/model", "0.25", "1.5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&cli(&["list"]).stdout);
    assert!(listed.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["acme/model", "0.25", "1.5"]));
    assert!(cli(&["remove", "acme/model"]).status.success());
    assert!(!text(&cli(&["list"]).stdout).contains("acme/model"));
    let out = cli(&["remove", "acme/model"]);
    assert!(!out.status.success() && text(&out.stderr).contains("has no price"));

    // A failure says what the command was doing and why, down to the database's own words.
    let mut side = keypool::db::connect(&url).unwrap();
    diesel::RunQueryDsl::execute(diesel::sql_query("ALTER TABLE request_log RENAME TO log_gone"), &mut side).unwrap();
    let out = run(keypool(dir.path(), Some(&env_url)).arg("logs"), None);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("reading the log: "), "{stderr}");
    assert!(stderr.contains("request_log"), "the driver's message names the table: {stderr}");
    drop(db);
}

#[test]
fn settings_cli_validates_like_the_page() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let cli = |args: &[&str]| run(keypool(dir.path(), Some(&env_url)).arg("settings").args(args), None);

    let out = cli(&["set", "access_mode=restricted"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("guest password"), "{}", text(&out.stderr));
    let out = cli(&["set", "guest_page_size=500", "colour=red"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("guest_page_size") && err.contains("colour"), "{err}");
    assert_eq!(err.trim().lines().count(), 1);

    let out = cli(&[
        "set",
        "access_mode=restricted",
        "guest_password=club-secret",
        "guest_page_size=24",
        "client_request_mode=on",
        "free_models=Qwen/Qwen3-8B, my-org/free-model",
        "upstream_utc_offset=-5",
        "incident_min_keys=7",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli(&["set", "upstream_utc_offset=UTC+15"]);
    assert!(!out.status.success() && text(&out.stderr).contains("upstream_utc_offset"), "{}", text(&out.stderr));
    let out = cli(&["list"]);
    let listed = text(&out.stdout);
    for line in [
        "access_mode=restricted",
        "guest_password=(set)",
        "guest_page_size=24",
        "client_request_mode=on",
        "upstream_url=https://api.siliconflow.cn",
        "free_models=Qwen/Qwen3-8B,my-org/free-model",
        "upstream_utc_offset=UTC-5",
        "incident_min_keys=7",
        "incident_failure_pct=90",
    ] {
        assert!(listed.lines().any(|l| l == line), "{line} in {listed}");
    }
    assert!(!listed.contains("club-secret") && !listed.contains("argon2"));
    drop(db);
}

#[test]
fn access_key_cli_creates_lists_and_revokes() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let cli = |args: &[&str]| run(keypool(dir.path(), Some(&env_url)).arg("access-key").args(args), None);

    let out = cli(&["create", "ci"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert!(token.starts_with("kp-") && token.len() == 43, "{token}");
    assert!(!cli(&["create", "ci"]).status.success(), "names are unique");

    let listed = text(&cli(&["list"]).stdout);
    assert!(listed.contains("ci\tkp-") && listed.contains("never") && !listed.contains(&token), "{listed}");

    assert!(cli(&["revoke", "ci"]).status.success());
    let out = cli(&["revoke", "ci"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no access key is named `ci`"));
    drop(db);
}

#[test]
fn reset_password_reads_stdin_and_ends_sessions() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    // Before `serve` ever ran there is no admin: reset-password creates it with the password typed.
    let out = run(keypool(dir.path(), Some(&env_url)).args(["admin", "reset-password"]), Some("first-password-1\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("created admin `admin`"), "{}", text(&out.stdout));
    let before = admin_row(&url);
    assert!(keypool::domain::password::verify("first-password-1", &before.password_hash));

    let out = run(keypool(dir.path(), Some(&env_url)).args(["admin", "reset-password"]), Some("short\n"));
    assert!(!out.status.success(), "too short is refused");

    let out = run(keypool(dir.path(), Some(&env_url)).args(["admin", "reset-password"]), Some("brand-new-password\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = admin_row(&url);
    assert!(keypool::domain::password::verify("brand-new-password", &after.password_hash));
    assert_eq!(after.credentials_version, before.credentials_version + 1, "sessions end");
    drop(db);
}

#[test]
fn import_and_export_from_the_command_line() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let k = |i: usize| format!("sk-{i:0>32}");
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, format!("{},{}\n{}\nnot-a-key\n", k(1), k(2), k(1))).unwrap();

    let out = run(keypool(dir.path(), Some(&env_url)).args(["import", file.to_str().unwrap()]), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "added 2, already present 0, duplicates in input 1, rejected 1");
    assert!(text(&out.stderr).contains("line 3: not-a-key"));

    let out = run(keypool(dir.path(), Some(&env_url)).args(["import", "-"]), Some(&format!("{}\n{}\n", k(2), k(3))));
    assert_eq!(text(&out.stdout).trim(), "added 1, already present 1, duplicates in input 0, rejected 0");

    let out = run(keypool(dir.path(), Some(&env_url)).args(["export", "--scope", "all", "--sep", "comma"]), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{},{},{}", k(1), k(2), k(3)));

    let target = dir.path().join("valid.txt");
    let out = run(
        keypool(dir.path(), Some(&env_url)).args(["export", "--scope", "valid", "--out", target.to_str().unwrap()]),
        None,
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "", "nothing is active before checks");
    let out = run(keypool(dir.path(), Some(&env_url)).args(["export", "--scope", "selection"]), None);
    assert!(!out.status.success());
    drop(db);
}

#[test]
fn check_runs_a_job_to_its_end_and_prints_counts() {
    let upstream = crate::mock::start();
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let keys = "sk-ok-12-aaaaaaaaaaaaaaaaa\nsk-ok-0-bbbbbbbbbbbbbbbbbb\nsk-invalid-cccccccccccccccc\nsk-limited-dddddddddddddddd\n";
    assert!(run(keypool(dir.path(), Some(&env_url)).args(["import", "-"]), Some(keys)).status.success());

    let out = run(keypool(dir.path(), Some(&env_url)).arg("check"), None);
    assert!(!out.status.success(), "a scope is required");

    let out = run(
        keypool(dir.path(), Some(&env_url)).env("KEYPOOL_UPSTREAM_URL", &upstream.url).args([
            "check",
            "--all",
            "--interval-ms",
            "0",
            "--retries",
            "1",
            "--concurrency",
            "4",
        ]),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "active 1\ndepleted 1\ninvalid 1\ntransient 1\n");
    assert_eq!(upstream.hits.of("sk-limited-dddddddddddddddd"), 2, "one retry");

    let out = run(
        keypool(dir.path(), Some(&env_url)).env("KEYPOOL_UPSTREAM_URL", &upstream.url).args([
            "check",
            "--status",
            "invalid",
            "--random-interval-ms",
            "0-0",
            "--retries",
            "0",
        ]),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "active 0\ndepleted 0\ninvalid 1\ntransient 0\n");
    let out = run(keypool(dir.path(), Some(&env_url)).args(["check", "--all", "--random-interval-ms", "9-1"]), None);
    assert!(!out.status.success() && text(&out.stderr).contains("minimum interval"));
    drop(db);
}

#[test]
fn sigterm_writes_every_proxied_request_before_exiting() {
    let upstream = crate::mock::start();
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let token = seed_routable(&url, "sk-ok-5-aaaaaaaaaaaaaaaaaaaaa");
    let (child, port, _) = start_server(dir.path(), Some(&env_url), &[("KEYPOOL_UPSTREAM_URL", &upstream.url)]);
    actix_web::rt::System::new().block_on(async {
        let client = crate::support::new_client();
        for _ in 0..40 {
            let res = client
                .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
                .bearer_auth(&token)
                .json(&serde_json::json!({"model": "m", "messages": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    });
    // Usage counters are written every 5 s: right after the traffic they are only in memory.
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = wait_with_deadline(child, Duration::from_secs(30));
    assert!(out.status.success(), "exit 0 after SIGTERM: {}", text(&out.stderr));
    let pool = keypool::db::open(&url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    #[derive(diesel::QueryableByName)]
    struct Counts {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        logged: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        key_requests: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        access_requests: i64,
    }
    let counts: Counts = diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT (SELECT COUNT(*) FROM request_log) AS logged, \
             (SELECT request_count FROM keys) AS key_requests, \
             (SELECT request_count FROM access_keys) AS access_requests",
        ),
        &mut conn,
    )
    .unwrap();
    assert_eq!((counts.logged, counts.key_requests, counts.access_requests), (40, 40, 40));
    drop(conn);
    drop(pool);
    drop(db);
}

#[test]
fn access_key_set_changes_only_the_limits_given_and_list_shows_them() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let cli = |args: &[&str]| run(keypool(dir.path(), Some(&env_url)).arg("access-key").args(args), None);

    assert!(cli(&["create", "bob"]).status.success());
    let out = cli(&[
        "set",
        "bob",
        "--rpm",
        "60",
        "--models",
        "Qwen/*,THUDM/*",
        "--expires",
        "2030-01-31",
        "--note",
        "friend",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("rpm 60, models Qwen/* THUDM/*, note: friend"), "{}", text(&out.stdout));
    let out = cli(&["set", "bob", "--rpd", "1000", "--spend-day", "2.5", "--free-only", "on"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&cli(&["list"]).stdout);
    let row = listed.lines().find(|l| l.starts_with("bob\t")).expect("bob listed");
    assert!(row.contains("enabled until 2030-01-31 23:59:59 (UTC+8)"), "{row}");
    assert!(row.contains("rpm 60, rpd 1000, spend_day 2.5, models Qwen/* THUDM/*, free models only"), "{row}");
    assert!(row.contains("0 requests, 0 tokens, 0"), "{row}");

    // Any bad option: nothing changes.
    let out = cli(&["set", "bob", "--rpm", "none", "--tpm", "lots", "--enabled", "maybe"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing changed") && err.contains("tpm") && err.contains("enabled"), "{err}");
    assert!(text(&cli(&["list"]).stdout).contains("rpm 60"), "the valid --rpm none was not applied either");
    let out = cli(&["set", "bob", "--rpm", "0", "--models", "none", "--free-only", "off", "--enabled", "off"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&cli(&["list"]).stdout);
    assert!(
        listed.contains("bob\tkp-") && listed.contains("\tdisabled\trpd 1000, spend_day 2.5, note: friend\t"),
        "{listed}"
    );
    let out = cli(&["set", "nobody", "--rpm", "1"]);
    assert!(!out.status.success() && text(&out.stderr).contains("no access key is named `nobody`"));
    drop(db);
}
