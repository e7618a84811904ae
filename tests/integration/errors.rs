//! Errors keep their cause and their meaning: a unique violation lost in a race is the field's message
//! (422), not a 5xx; an export whose database fails before its first slice is an error status, and one
//! that fails in the middle is a download the client sees as broken, never a file that looks complete.

use diesel::RunQueryDsl;
use keypool::db::AnyConnection;

use crate::support::{self, ADMIN_PASSWORD, ADMIN_USER, TestApp, with_db};

/// `SELECT i` for i in 1..=n, on either backend.
fn series(c: &AnyConnection, n: i64) -> String {
    match c {
        AnyConnection::Sqlite(_) => {
            format!("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) SELECT i FROM n")
        }
        AnyConnection::Postgresql(_) => format!("SELECT i FROM generate_series(1, {n}) AS s(i)"),
    }
}

/// Runs one statement on the app's database (a side connection from its pool).
async fn execute(app: &TestApp, sql: &'static str) {
    with_db(app, move |c| diesel::sql_query(sql).execute(c).unwrap()).await;
}

#[actix_web::test]
async fn twenty_admins_creating_one_access_key_name_at_once_get_one_key_and_nineteen_field_errors() {
    let app = support::spawn().await;
    app.login().await;
    // Several rounds: the window between a look-up and the insert is short, and every round is a
    // fresh chance to hit it.
    for round in 0..5 {
        let name = format!("shared name {round}");
        let posts = (0..20).map(|_| async {
            let res = app.hx_post("/admin/access-keys", &[("name", name.as_str())]).await;
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        });
        let answers = futures_util::future::join_all(posts).await;
        let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "exactly one created: {statuses:?}");
        for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
            assert_eq!(*status, 422, "the others are told the name is taken, not a server error: {body}");
            assert!(body.contains(&format!("An access key named “{name}” already exists.")), "{body}");
        }
        let named = with_db(&app, |c| keypool::db::access_keys::list(c).unwrap()).await;
        assert_eq!(named.iter().filter(|k| k.name == name).count(), 1);
    }
}

#[actix_web::test]
async fn a_username_taken_by_another_admin_even_a_moment_ago_is_a_field_error() {
    let app = support::spawn().await;
    let now = app.state.now_ms();
    let hash = keypool::domain::password::hash("other-password-1").unwrap();
    with_db(&app, move |c| keypool::db::admins::create(c, "other", &hash, now).unwrap()).await;
    let other = support::new_client();
    assert_eq!(app.login_with(&other, "other", "other-password-1").await.status(), 303);
    // No look-up before the write: the unique index refuses the name and the form says so.
    let res = other
        .post(app.url("/admin/settings/account"))
        .header("accept-language", "en")
        .header("hx-request", "true")
        .form(&[("username", ADMIN_USER), ("current_password", "other-password-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    let at = body.find(r#"id="error-username""#).unwrap_or_else(|| panic!("no username error: {body}"));
    assert!(body[at..].contains("That username is taken."), "{body}");
    let fresh = support::new_client();
    assert_eq!(app.login_with(&fresh, ADMIN_USER, ADMIN_PASSWORD).await.status(), 303, "the first admin is untouched");
    assert_eq!(app.login_with(&fresh, "other", "other-password-1").await.status(), 303, "so is the second");

    // Both admins take one new name at once: one gets it, the other is told it is taken.
    app.login().await;
    let rename = |client: &reqwest::Client, password: &'static str| {
        client
            .post(app.url("/admin/settings/account"))
            .header("accept-language", "en")
            .header("hx-request", "true")
            .form(&[("username", "newname"), ("current_password", password)])
            .send()
    };
    let (a, b) = futures_util::join!(rename(&app.client, ADMIN_PASSWORD), rename(&other, "other-password-1"));
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 422]);
}

/// `n` unchecked keys `sk-bulk-<i>`, in id order.
async fn seed_keys(app: &TestApp, n: i64) {
    with_db(app, move |c| {
        let series = series(c, n);
        diesel::sql_query(format!(
            "INSERT INTO keys (key, status, added_at) \
             SELECT 'sk-bulk-' || CAST(i AS TEXT) || '-aaaaaaaaaaaaaaaaaaaa', 'unchecked', 1 FROM ({series}) s"
        ))
        .execute(c)
        .unwrap();
    })
    .await;
}

/// Reads a whole download: `Ok(body)`, or `Err` when the connection broke before its end.
async fn download(app: &TestApp, path: &str) -> (u16, Result<Vec<u8>, String>) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.bytes().await.map(|b| b.to_vec()).map_err(|e| format!("{e:?}")))
}

#[actix_web::test]
async fn a_key_export_whose_database_fails_before_the_first_slice_is_an_error_status() {
    let app = support::spawn().await;
    app.login().await;
    seed_keys(&app, 10).await;
    execute(&app, "ALTER TABLE keys RENAME TO keys_gone").await;
    let (status, body) = download(&app, "/admin/keys/export?scope=all").await;
    assert_eq!(status, 500, "not a 200 with an empty file: {body:?}");
    execute(&app, "ALTER TABLE keys_gone RENAME TO keys").await;
    let (status, body) = download(&app, "/admin/keys/export?scope=all").await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body.unwrap()).unwrap().lines().count(), 10, "works again");
}

#[actix_web::test]
async fn a_key_export_failing_after_its_first_slice_is_a_broken_download() {
    let app = support::spawn().await;
    app.login().await;
    // Three slices of 5,000; a key of the second that cannot be read (sealed, and this instance has
    // no encryption key) fails its slice after the first was sent, whatever the timing.
    seed_keys(&app, 12_000).await;
    execute(&app, "UPDATE keys SET key = 'enc:v1:not-a-sealed-key' WHERE key = 'sk-bulk-7000-aaaaaaaaaaaaaaaaaaaa'")
        .await;
    let (status, body) = download(&app, "/admin/keys/export?scope=all").await;
    assert_eq!(status, 200, "the first slice was read: the answer had begun");
    assert!(body.is_err(), "the client sees the download fail, not a shorter file that looks whole");
    // The same key first: nothing was sent yet, so it is an error status.
    execute(&app, "UPDATE keys SET key = 'enc:v1:another-bad-one' WHERE key = 'sk-bulk-1-aaaaaaaaaaaaaaaaaaaa'").await;
    let (status, _) = download(&app, "/admin/keys/export?scope=all").await;
    assert_eq!(status, 500);
}

/// `n` request-log rows (ids 1..=n on a fresh database).
async fn seed_log(app: &TestApp, n: i64) {
    with_db(app, move |c| {
        let series = series(c, n);
        diesel::sql_query(format!(
            "INSERT INTO request_log (at, method, path, model, status, latency_ms, attempts) \
             SELECT CAST(i AS BIGINT), 'POST', '/v1/chat/completions', 'm', 200, 1, 1 FROM ({series}) s"
        ))
        .execute(c)
        .unwrap();
    })
    .await;
}

#[actix_web::test]
async fn a_log_export_whose_database_fails_before_the_first_slice_is_an_error_status() {
    let app = support::spawn().await;
    app.login().await;
    seed_log(&app, 10).await;
    execute(&app, "ALTER TABLE request_log RENAME TO request_log_gone").await;
    let (status, body) = download(&app, "/admin/logs/export").await;
    assert_eq!(status, 500, "not a 200 with an empty file: {body:?}");
}

#[actix_web::test]
async fn a_log_export_failing_after_its_first_slice_is_a_broken_download() {
    let app = support::spawn().await;
    app.login().await;
    seed_log(&app, 12_000).await;
    // The export reads newest first in slices of 5,000: the oldest hundred rows, in the third slice,
    // come back with no method (a NOT NULL column), which fails that slice whatever the timing.
    execute(&app, "ALTER TABLE request_log RENAME TO request_log_data").await;
    execute(
        &app,
        "CREATE VIEW request_log AS SELECT id, at, access_key_id, key_id, \
         CASE WHEN id <= 100 THEN NULL ELSE method END AS method, path, model, status, latency_ms, ttfb_ms, \
         attempts, error, prompt_tokens, completion_tokens, total_tokens, cost FROM request_log_data",
    )
    .await;
    let (status, body) = download(&app, "/admin/logs/export").await;
    assert_eq!(status, 200, "the first slice was read: the answer had begun");
    assert!(body.is_err(), "the client sees the download fail, not a shorter file that looks whole");
}
