//! Encryption at rest of the upstream keys (`KEYPOOL_ENCRYPTION_KEY`): an encrypted pool imports,
//! searches, serves, exports and refuses duplicates with no key in clear in the database;
//! `keypool encrypt-keys` / `decrypt-keys` migrate a database both ways; a wrong, missing or
//! malformed key is refused at start.

use diesel::RunQueryDsl;
use diesel::sql_types::{Nullable, Text};
use keypool::config::DatabaseUrl;
use keypool::domain::key_crypto::EncryptionKey;

use crate::mock;
use crate::process::{keypool, run, start_server, text};
use crate::support::{self, Gateway, TestDb, header};

const KEY_A: &str = "0303030303030303030303030303030303030303030303030303030303030303";
const KEY_B: &str = "0404040404040404040404040404040404040404040404040404040404040404";

fn key(i: usize) -> String {
    format!("sk-encr{i:0>28}")
}

#[derive(diesel::QueryableByName, Debug)]
struct Row {
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Nullable<Text>)]
    key_hash: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    key_hint: Option<String>,
}

fn rows_of(conn: &mut keypool::db::AnyConnection) -> Vec<Row> {
    diesel::sql_query("SELECT key, key_hash, key_hint FROM keys ORDER BY id").load(conn).unwrap()
}

fn stored_rows(url: &DatabaseUrl) -> Vec<Row> {
    let pool = keypool::db::open(url, 1).unwrap();
    rows_of(&mut pool.get().unwrap())
}

/// Whether any of `keys` appears anywhere in the SQLite files (database and write-ahead log).
fn sqlite_files_contain(url: &DatabaseUrl, keys: &[String]) -> bool {
    let DatabaseUrl::Sqlite(path) = url else { return false };
    let mut bytes = std::fs::read(path).unwrap();
    bytes.extend(std::fs::read(format!("{}-wal", path.display())).unwrap_or_default());
    let haystack = String::from_utf8_lossy(&bytes);
    keys.iter().any(|k| haystack.contains(k.as_str()))
}

fn row_keys(html: &str) -> Vec<String> {
    html.split("data-key=\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_owned).collect()
}

#[actix_web::test]
async fn an_encrypted_pool_stores_no_key_in_clear_yet_searches_serves_and_exports() {
    let upstream = mock::start();
    let url = upstream.url.clone();
    let app = support::spawn_with(move |c| {
        c.upstream_override = Some(url);
        c.encryption_key = Some(EncryptionKey::parse(KEY_A).unwrap());
    })
    .await;
    let gw = Gateway::on(app, upstream, &[]).await;
    let app = &gw.app;
    app.login().await;
    let keys: Vec<String> = (1..=4).map(key).collect();
    let res = app.hx_post("/admin/keys/import", &[("keys", &keys[..3].join("\n"))]).await;
    assert_eq!(res.status(), 200);

    // Duplicates are still found: the same keys again add only the new one.
    let again = format!("{}\n{}\n{}", keys[0], keys[3], keys[1]);
    let outcome = support::with_db(app, move |c| {
        keypool::db::keys::import(
            c,
            &keypool::domain::key_crypto::KeyCodec::new(Some(&EncryptionKey::parse(KEY_A).unwrap())),
            keypool::domain::keys::parse_import(&again),
            None,
            1,
        )
        .unwrap()
    })
    .await;
    assert_eq!((outcome.added, outcome.present), (1, 2));
    let res = app.hx_post("/admin/keys/import", &[("keys", &keys[0])]).await;
    assert_eq!(res.status(), 200);

    // No key in clear in the rows, nor anywhere in the SQLite files.
    let rows = support::with_db(app, rows_of).await;
    assert_eq!(rows.len(), 4);
    for (row, k) in rows.iter().zip(&keys) {
        assert!(row.key.starts_with("enc:v1:") && !row.key.contains(k.as_str()), "{row:?}");
        assert_eq!(row.key_hash.as_ref().map(String::len), Some(64));
        assert_eq!(row.key_hint.as_deref(), Some(&k[k.len() - 4..]));
    }
    let url = app.state.config.database.clone();
    assert!(!sqlite_files_contain(&url, &keys), "a key in clear in the database file");

    // The page shows (decrypted, masked) keys; search finds a whole key, or the last characters.
    let html = app.get("/admin/keys").await.text().await.unwrap();
    let mut shown = row_keys(&html);
    shown.sort();
    assert_eq!(shown, keys);
    let found = |q: String| async move {
        let res = app.client.get(app.url(&format!("/admin/keys?q={q}"))).header("hx-request", "true").send().await;
        row_keys(&res.unwrap().text().await.unwrap())
    };
    assert_eq!(found(keys[1].clone()).await, [keys[1].clone()], "exact key");
    assert_eq!(found(keys[2][keys[2].len() - 3..].to_owned()).await, [keys[2].clone()], "end of the key");
    assert!(found("encr0000".to_owned()).await.is_empty(), "no substring search over ciphertext");

    // The proxy serves through the decrypted keys.
    let now = app.state.now_ms();
    support::with_db(app, move |c| {
        diesel::sql_query("UPDATE keys SET status = 'active', total_balance = 5, status_changed_at = $1")
            .bind::<diesel::sql_types::BigInt, _>(now)
            .execute(c)
            .unwrap()
    })
    .await;
    support::reload_pool(app).await;
    for _ in 0..4 {
        let res = gw
            .chat(serde_json::json!({"model": mock::PAID_MODEL, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(keys.iter().map(|k| gw.chats(k)).sum::<usize>(), 4, "the upstream saw the keys in clear");

    // Export and the key's own page give the keys in clear.
    let export = app.client.get(app.url("/admin/keys/export?scope=all")).send().await.unwrap();
    assert!(header(&export, "content-disposition").contains("attachment"));
    assert_eq!(export.text().await.unwrap(), keys.join("\n"));
    let detail = app.get("/admin/keys/2").await.text().await.unwrap();
    assert!(detail.contains(&format!("data-copy-text=\"{}\"", keys[1])), "copy on the key's page");
    support::set_settings(app, &[("access_mode", "open")]).await;
    let guest = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(keys.iter().all(|k| guest.contains(&format!("data-copy-text=\"{k}\""))), "guest cards copy");
}

#[test]
fn encrypt_keys_then_decrypt_keys_round_trip() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let cmd = |key: Option<&str>| {
        let mut c = keypool(dir.path(), Some(&env_url));
        if let Some(k) = key {
            c.env("KEYPOOL_ENCRYPTION_KEY", k);
        }
        c
    };
    // Through a file: 2,500 keys are more than a pipe holds while `run` waits for the exit.
    let export = |key: Option<&str>| {
        let target = dir.path().join("export.txt");
        let out = run(cmd(key).args(["export", "--sep", "comma", "--out", target.to_str().unwrap()]), None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read_to_string(&target).unwrap()
    };
    // 2,500 keys in clear: three batches.
    let keys: Vec<String> = (1..=2500).map(key).collect();
    let out = run(cmd(None).args(["import", "-"]), Some(&keys.join("\n")));
    assert_eq!(text(&out.stdout).trim(), "added 2500, already present 0, duplicates in input 0, rejected 0");
    let out = run(cmd(None).arg("encrypt-keys"), None);
    assert!(!out.status.success() && text(&out.stderr).contains("KEYPOOL_ENCRYPTION_KEY is not set"));

    // A server given a key while keys are still in clear starts, and says what to run.
    let (mut server, _, log) = start_server(dir.path(), Some(&env_url), &[("KEYPOOL_ENCRYPTION_KEY", KEY_A)]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(log.lock().unwrap().iter().any(|l| l.contains("keypool encrypt-keys")), "{:?}", log.lock().unwrap());

    // Mid-way (a key set, nothing migrated yet): a duplicate in clear is found, a new key is encrypted.
    let extra = key(9999);
    let out = run(cmd(Some(KEY_A)).args(["import", "-"]), Some(&format!("{}\n{extra}\n", keys[7])));
    assert_eq!(text(&out.stdout).trim(), "added 1, already present 1, duplicates in input 0, rejected 0");
    let mut all = keys.clone();
    all.push(extra);
    assert_eq!(export(Some(KEY_A)), all.join(","), "a part-encrypted database reads whole");

    let out = run(cmd(Some(KEY_A)).arg("encrypt-keys"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "encrypted 2500 keys; now 2501 stored encrypted, 0 in clear");
    assert!(text(&out.stderr).contains("encrypted 1000 keys…"), "progress per batch");
    let rows = stored_rows(&url);
    assert!(rows.iter().all(|r| r.key.starts_with("enc:v1:") && r.key_hash.is_some()));
    assert!(!sqlite_files_contain(&url, &all[..50]), "no key in clear left in the database file");
    let out = run(cmd(Some(KEY_A)).arg("encrypt-keys"), None);
    assert_eq!(text(&out.stdout).trim(), "encrypted 0 keys; now 2501 stored encrypted, 0 in clear", "idempotent");
    let out = run(cmd(Some(KEY_A)).args(["import", "-"]), Some(&keys[..3].join("\n")));
    assert_eq!(text(&out.stdout).trim(), "added 0, already present 3, duplicates in input 0, rejected 0");
    assert_eq!(export(Some(KEY_A)), all.join(","), "export gives the keys in clear");

    let out = run(cmd(Some(KEY_A)).arg("decrypt-keys"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("decrypted 2501 keys; now 0 stored encrypted, 2501 in clear"));
    let rows = stored_rows(&url);
    let stored: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(stored, all.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rows.iter().all(|r| r.key_hash.is_none() && r.key_hint.is_none()));
    // Back to no key at all: it starts and exports as before.
    assert_eq!(export(None), all.join(","));
    // And another key may now encrypt it (the old key's fingerprint went with the last encrypted key).
    let out = run(cmd(Some(KEY_B)).arg("encrypt-keys"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(db);
}

#[test]
fn a_wrong_missing_or_malformed_key_is_refused_at_start() {
    let (db, url) = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let env_url = TestDb::env_url(&url);
    let serve = |key: Option<&str>| {
        let mut c = keypool(dir.path(), Some(&env_url));
        c.args(["serve", "--bind", "127.0.0.1:0"]);
        if let Some(k) = key {
            c.env("KEYPOOL_ENCRYPTION_KEY", k);
        }
        let out = run(&mut c, None);
        assert!(!out.status.success(), "{key:?} must be refused");
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().filter(|l| l.starts_with("keypool:")).count(), 1, "{err}");
        err
    };
    let out = run(
        keypool(dir.path(), Some(&env_url)).env("KEYPOOL_ENCRYPTION_KEY", KEY_A).args(["import", "-"]),
        Some(&key(1)),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let err = serve(Some(KEY_B));
    assert!(err.contains("KEYPOOL_ENCRYPTION_KEY is not the key the stored keys were encrypted with"), "{err}");
    let err = serve(None);
    assert!(err.contains("the database holds encrypted keys but KEYPOOL_ENCRYPTION_KEY is not set"), "{err}");
    // A command refuses too, before touching anything.
    let out = run(keypool(dir.path(), Some(&env_url)).env("KEYPOOL_ENCRYPTION_KEY", KEY_B).arg("decrypt-keys"), None);
    assert!(!out.status.success() && text(&out.stderr).contains("is not the key"));
    // Without the recorded fingerprint, the stored key that does not decrypt still says so.
    let pool = keypool::db::open(&url, 1).unwrap();
    keypool::db::encryption::forget_check(&mut pool.get().unwrap()).unwrap();
    let err = serve(Some(KEY_B));
    assert!(err.contains("is not the key"), "{err}");
    drop(pool);
    for bad in ["not-a-key", "0303", &KEY_A[..60]] {
        let err = serve(Some(bad));
        assert!(err.contains("KEYPOOL_ENCRYPTION_KEY") && err.contains("32 bytes"), "{bad}: {err}");
    }
    assert_eq!(stored_rows(&url).len(), 1, "nothing changed");
    assert!(stored_rows(&url)[0].key.starts_with("enc:v1:"));
    drop(db);
}
