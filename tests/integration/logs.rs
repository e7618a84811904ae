//! The request log: `GET /admin/logs` (every filter, keyset pages), `GET /admin/logs/export` (CSV) and
//! `keypool logs`, on rows written by the real gateway and rows inserted in bulk.

use std::collections::HashSet;

use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel::{Connection, RunQueryDsl};
use keypool::domain::logs::StatusClass;
use serde_json::json;

use crate::process::{keypool, run, text};
use crate::support::{self, Gateway, TestApp, TestDb, with_db};

pub const QWEN: &str = "Qwen/Qwen3-8B";
pub const DEEPSEEK: &str = "deepseek-ai/DeepSeek-V3";

/// A seeded row as the tests expect to find it.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub id: i64,
    pub at: i64,
    pub access_key: Option<&'static str>,
    pub access_key_id: Option<i64>,
    pub key_id: Option<i64>,
    pub model: &'static str,
    pub status: i64,
    pub error: Option<&'static str>,
}

impl Seeded {
    fn class(&self) -> StatusClass {
        StatusClass::of(self.status, self.error)
    }
}

/// An error with a comma, quotes and a line break (CSV quoting).
pub const AWKWARD_ERROR: &str = "bad request, field \"messages\"\nis missing";

/// Two access keys (`alpha`, `beta`), two upstream keys, and `n` log rows a minute apart (the newest a
/// minute ago) with every combination of access key (alpha, beta, none), model and result.
pub async fn seed_log(app: &TestApp, n: i64) -> (Vec<Seeded>, Vec<i64>, [i64; 2]) {
    let keys =
        support::seed_active(app, &[("sk-log-aaaaaaaaaaaaaaaaaaaa01", 10.0), ("sk-log-bbbbbbbbbbbbbbbbbbbb02", 10.0)])
            .await;
    let now = app.state.now_ms();
    let access: [i64; 2] = with_db(app, move |c| {
        let mut ids = [0; 2];
        for (i, name) in ["alpha", "beta"].into_iter().enumerate() {
            let minted = keypool::domain::access_token::mint();
            ids[i] = keypool::db::access_keys::create(c, name, &minted.hash, &minted.hint, now).unwrap();
        }
        ids
    })
    .await;
    let mut rows = Vec::new();
    for i in 0..n {
        let (access_key, access_key_id) = match i % 3 {
            0 => (Some("alpha"), Some(access[0])),
            1 => (Some("beta"), Some(access[1])),
            _ => (None, None),
        };
        let model = if i % 2 == 0 { QWEN } else { DEEPSEEK };
        let (status, error, key_id) = match i % 5 {
            0 | 4 => (200, None, Some(keys[(i % 2) as usize])),
            1 => (400, Some(AWKWARD_ERROR), Some(keys[0])),
            2 => (502, Some("The upstream could not be reached (connection refused)"), Some(keys[1])),
            _ => (503, Some("no key available"), None),
        };
        rows.push(Seeded {
            id: 0,
            at: now - (n - i) * 60_000,
            access_key,
            access_key_id,
            key_id,
            model,
            status,
            error,
        });
    }
    let to_insert = rows.clone();
    let ids: Vec<i64> = with_db(app, move |c| {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        c.transaction::<_, diesel::result::Error, _>(|c| {
            Ok(to_insert
                .iter()
                .map(|r| {
                    let ok = r.status == 200;
                    diesel::sql_query(
                        "INSERT INTO request_log (at, access_key_id, key_id, method, path, model, status, latency_ms, \
                     ttfb_ms, attempts, error, prompt_tokens, completion_tokens, total_tokens, cost) \
                     VALUES ($1, $2, $3, 'POST', '/v1/chat/completions', $4, $5, 120, $6, 1, $7, $8, $9, $10, $11) \
                     RETURNING id",
                    )
                    .bind::<BigInt, _>(r.at)
                    .bind::<Nullable<BigInt>, _>(r.access_key_id)
                    .bind::<Nullable<BigInt>, _>(r.key_id)
                    .bind::<Text, _>(r.model)
                    .bind::<BigInt, _>(r.status)
                    .bind::<Nullable<BigInt>, _>(ok.then_some(40))
                    .bind::<Nullable<Text>, _>(r.error)
                    .bind::<Nullable<BigInt>, _>(ok.then_some(10))
                    .bind::<Nullable<BigInt>, _>(ok.then_some(20))
                    .bind::<Nullable<BigInt>, _>(ok.then_some(30))
                    .bind::<Nullable<Double>, _>(ok.then_some(0.0012))
                    .get_result::<Id>(c)
                    .unwrap()
                    .id
                })
                .collect())
        })
        .unwrap()
    })
    .await;
    for (r, id) in rows.iter_mut().zip(ids) {
        r.id = id;
    }
    rows.reverse(); // newest first, as the log shows them
    (rows, keys, access)
}

/// The row ids of a page (or fragment), in order.
fn ids_of(html: &str) -> Vec<i64> {
    html.split("<tr data-id=\"").skip(1).filter_map(|s| s.split('"').next()?.parse().ok()).collect()
}

/// The "older" link's target, if the page has one.
fn older_link(html: &str) -> Option<String> {
    let start = html.find("id=\"log-older\"")?;
    let href = &html[start..];
    let href = &href[href.find("href=\"")? + 6..];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

async fn page(app: &TestApp, query: &str) -> String {
    let res = app.get(&format!("/admin/logs?{query}")).await;
    assert_eq!(res.status(), 200, "/admin/logs?{query}");
    res.text().await.unwrap()
}

/// Every page of a filter, following the "older" links; the ids in order.
async fn walk(app: &TestApp, query: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut next = Some(format!("/admin/logs?{query}"));
    let mut pages = 0;
    while let Some(path) = next {
        let res = app.client.get(app.url(&path)).header("hx-request", "true").send().await.unwrap();
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        let found = ids_of(&html);
        assert!(found.len() <= 50, "50 rows a page at most");
        ids.extend(found);
        next = older_link(&html);
        pages += 1;
        assert!(pages < 100, "the pages end");
    }
    ids
}

fn expect(rows: &[Seeded], keep: impl Fn(&Seeded) -> bool) -> Vec<i64> {
    rows.iter().filter(|r| keep(r)).map(|r| r.id).collect()
}

#[actix_web::test]
async fn every_filter_narrows_and_pages_walk_every_row_once() {
    let app = support::spawn().await;
    app.login().await;
    let (rows, keys, access) = seed_log(&app, 130).await;
    let now = app.state.now_ms();

    // The newest 50 first, then older pages by keyset; every row once.
    let first = ids_of(&page(&app, "").await);
    assert_eq!(first, expect(&rows, |_| true)[..50].to_vec());
    let all = walk(&app, "").await;
    assert_eq!(all, expect(&rows, |_| true), "all rows, newest first");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len(), "no duplicates");

    let alpha = access[0].to_string();
    let from = keypool::domain::logs::iso_time(now - 100 * 60_000);
    let to = keypool::domain::logs::iso_time(now - 30 * 60_000);
    let key0 = keys[0].to_string();
    let key0_id = keys[0];
    let cases: Vec<(String, Box<dyn Fn(&Seeded) -> bool>)> = vec![
        (format!("access_key={alpha}"), Box::new(|r| r.access_key == Some("alpha"))),
        ("access_key=beta".into(), Box::new(|r| r.access_key == Some("beta"))),
        ("access_key=nobody".into(), Box::new(|_| false)),
        (format!("model={QWEN}"), Box::new(|r| r.model == QWEN)),
        ("status=ok".into(), Box::new(|r| r.class() == StatusClass::Ok)),
        ("status=4xx".into(), Box::new(|r| r.status == 400)),
        ("status=5xx".into(), Box::new(|r| r.status == 502)),
        ("status=no_key".into(), Box::new(|r| r.status == 503)),
        (format!("key={key0}"), Box::new(move |r| r.key_id == Some(key0_id))),
        ("q=CONNECTION+refused".into(), Box::new(|r| r.status == 502)),
        ("since=1h".into(), Box::new(move |r| r.at >= now - 3_600_000)),
        (format!("from={from}&to={to}"), Box::new(move |r| r.at >= now - 100 * 60_000 && r.at < now - 30 * 60_000)),
        (
            format!("since=24h&access_key=beta&model={DEEPSEEK}&status=4xx"),
            Box::new(|r| r.access_key == Some("beta") && r.model == DEEPSEEK && r.status == 400),
        ),
    ];
    for (query, keep) in &cases {
        let query = query.replace('/', "%2F").replace(':', "%3A");
        let want = expect(&rows, keep);
        assert!(want.len() < rows.len(), "{query} narrows");
        assert_eq!(walk(&app, &query).await, want, "{query}");
    }

    // The page shows the row: names, masked key linked to its page, tokens and cost; selects keep state.
    let html = page(&app, &format!("access_key={alpha}&status=ok")).await;
    assert!(html.contains("<option value=\"ok\" selected>"), "the status select shows the filter");
    assert!(html.contains(&format!("<option value=\"{alpha}\" selected>alpha</option>")));
    assert!(html.contains("sk-log-…aa01") || html.contains("sk-log-…bb02"), "keys masked");
    assert!(!html.contains("sk-log-aaaaaaaaaaaaaaaaaaaa01"), "never in clear");
    assert!(html.contains(&format!("href=\"/admin/keys/{}\"", keys[0])));
    assert!(html.contains("10 / 20 / 30") && html.contains("¥0.0012"));
    assert!(html.contains("href=\"/admin/logs/export?access_key="), "export keeps the filter");

    // Bad parameters are reported, not fatal.
    let html = page(&app, "since=forever&status=teapot").await;
    assert!(html.contains("forever") && html.contains("teapot"), "messages name the bad values");
    assert_eq!(ids_of(&html).len(), 50, "and the rest of the filter applies");

    // The key page links to its requests.
    let html = app.get(&format!("/admin/keys/{}", keys[0])).await.text().await.unwrap();
    assert!(html.contains(&format!("href=\"/admin/logs?key={}\"", keys[0])), "key page links to its log");
    assert!(html.contains("Requests of this key"));
}

/// A minimal RFC 4180 reader: rows of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[actix_web::test]
async fn csv_export_streams_the_filtered_rows_with_quoting() {
    let app = support::spawn().await;
    app.login().await;
    let (rows, _, _) = seed_log(&app, 10_007).await; // two full export slices and a part
    let res = app.get("/admin/logs/export").await;
    assert_eq!(res.status(), 200);
    assert!(support::header(&res, "content-type").starts_with("text/csv"));
    assert!(support::header(&res, "content-disposition").contains(".csv"));
    let body = res.text().await.unwrap();
    let table = parse_csv(&body);
    let header = &table[0];
    assert_eq!(
        header[..10].to_vec(),
        [
            "at",
            "access_key",
            "model",
            "status",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cost",
            "latency_ms",
            "error"
        ]
    );
    let id_col = header.iter().position(|h| h == "id").unwrap();
    let ids: Vec<i64> = table[1..].iter().map(|r| r[id_col].parse().unwrap()).collect();
    assert_eq!(ids, expect(&rows, |_| true), "every row once, newest first");

    let res = app.get(&format!("/admin/logs/export?status=4xx&model={}", DEEPSEEK.replace('/', "%2F"))).await;
    let table = parse_csv(&res.text().await.unwrap());
    let want: Vec<&Seeded> = rows.iter().filter(|r| r.status == 400 && r.model == DEEPSEEK).collect();
    assert_eq!(table.len() - 1, want.len());
    let first = &table[1];
    assert_eq!(first[0], keypool::domain::logs::iso_time(want[0].at), "ISO-8601 UTC");
    assert!(first[0].ends_with('Z') && first[0].contains('T'));
    assert_eq!(first[1], want[0].access_key.unwrap_or(""));
    assert_eq!(first[2], DEEPSEEK);
    assert_eq!(first[3], "400");
    assert_eq!(first[9], AWKWARD_ERROR, "comma, quotes and line break survive quoting");
    assert!(table[1..].iter().all(|r| r.len() == header.len()));

    let ok = parse_csv(&app.get("/admin/logs/export?status=ok&access_key=alpha").await.text().await.unwrap());
    assert_eq!(&ok[1][4..9], ["10", "20", "30", "0.0012", "120"]);
    assert!(ok[1][10].contains('…'), "keys masked in the export too");

    let res = app.get("/admin/logs/export?status=teapot").await;
    assert_eq!(res.status(), 400, "a bad filter is refused, not ignored");
}

#[actix_web::test]
async fn only_an_admin_reads_the_log() {
    let app = support::spawn().await;
    seed_log(&app, 3).await;
    let anonymous = support::new_client();
    for path in ["/admin/logs", "/admin/logs/export", "/admin/logs?status=ok"] {
        let res = anonymous.get(app.url(path)).send().await.unwrap();
        assert!(res.status() == 303 || res.status() == 401, "{path}: {}", res.status());
        if res.status() == 303 {
            assert!(support::location(&res).starts_with("/login"), "{path}");
        }
        let body = res.text().await.unwrap();
        assert!(!body.contains("data-id=") && !body.contains("access_key,model"), "{path} leaks nothing");
    }
}

#[actix_web::test]
async fn gateway_requests_are_logged_with_their_class() {
    let gw = Gateway::start(&[]).await;
    gw.app.login().await;
    let body = json!({ "model": QWEN, "messages": [{ "role": "user", "content": "hi" }] });
    // No key at all: 503, logged as no_key.
    assert_eq!(gw.chat(body.clone()).await.status(), 503);
    support::seed_active(&gw.app, &[("sk-good-aaaaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    assert_eq!(gw.chat(body.clone()).await.status(), 200);
    assert_eq!(gw.chat(body).await.status(), 200);
    support::flush_outcomes(&gw.app).await;

    let html = page(&gw.app, "status=no_key").await;
    assert_eq!(ids_of(&html).len(), 1, "{html}");
    assert!(html.contains("no key available"));
    let html = page(&gw.app, &format!("status=ok&model={}", QWEN.replace('/', "%2F"))).await;
    assert_eq!(ids_of(&html).len(), 2);
    assert!(html.contains("1 / 3 / 4"), "tokens from the answer's usage");
    let name = with_db(&gw.app, |c| keypool::db::access_keys::list(c).unwrap()[0].name.clone()).await;
    assert!(html.contains(&name), "the access key by name");
    assert_eq!(ids_of(&page(&gw.app, "status=5xx").await).len(), 0, "no_key is not an upstream error");
}

#[actix_web::test]
async fn keypool_logs_prints_a_table_or_csv_with_filters() {
    let app = support::spawn().await;
    let (rows, _, _) = seed_log(&app, 40).await;
    let env_url = TestDb::env_url(&app.state.config.database);
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = run(keypool(dir.path(), Some(&env_url)).arg("logs").args(args), None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };

    let table = cli(&["--access-key", "beta", "--model", DEEPSEEK]);
    let lines: Vec<&str> = table.lines().collect();
    let want: Vec<&Seeded> = rows.iter().filter(|r| r.access_key == Some("beta") && r.model == DEEPSEEK).collect();
    assert_eq!(lines.len(), want.len() + 1, "{table}");
    assert!(lines[0].starts_with("TIME (UTC)") && lines[0].contains("MODEL"));
    let status_at = lines[0].find("STATUS").unwrap();
    assert!(lines[1..].iter().all(|l| l.contains("beta") && l.contains(DEEPSEEK)), "{table}");
    assert!(lines[1..].iter().all(|l| l.len() > status_at), "columns aligned: {table}");
    assert!(lines.iter().all(|l| !l.contains("sk-log-aaaaaaaaaaaa")), "keys masked");

    assert_eq!(cli(&["--limit", "5"]).lines().count(), 6);
    assert_eq!(cli(&[]).lines().count(), 41, "all 40 under the default limit");

    let csv = cli(&["--csv", "--status", "no_key", "--since", "24h"]);
    let parsed = parse_csv(&csv);
    assert_eq!(parsed[0][..3], ["at", "access_key", "model"]);
    assert_eq!(parsed.len() - 1, rows.iter().filter(|r| r.status == 503).count());
    assert!(parsed[1..].iter().all(|r| r[3] == "503"));

    let out = run(keypool(dir.path(), Some(&env_url)).args(["logs", "--status", "teapot"]), None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("teapot"));
}

/// A filter that matches nothing among the newest requests answers after looking at a bounded number
/// of them, says so, and continues from there on request.
#[actix_web::test]
async fn a_rare_filter_looks_through_a_bounded_stretch_and_offers_to_search_older() {
    let app = support::spawn().await;
    app.login().await;
    let total = keypool::db::logs::PAGE_SCAN + 20_000;
    support::with_db(&app, move |c| {
        use diesel::RunQueryDsl;
        let series = match c {
            keypool::db::AnyConnection::Sqlite(_) => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {total}) SELECT i FROM n"
            ),
            keypool::db::AnyConnection::Postgresql(_) => format!("SELECT i FROM generate_series(1, {total}) AS s(i)"),
        };
        // The only row with an error is the tenth: far older than one page's stretch.
        diesel::sql_query(format!(
            "INSERT INTO request_log (at, method, path, model, status, latency_ms, attempts, error) \
             SELECT CAST(i AS BIGINT), 'POST', '/v1/chat/completions', 'm', 200, 1, 1, \
             CASE WHEN i = 10 THEN 'the needle' ELSE NULL END FROM ({series}) s"
        ))
        .execute(c)
        .unwrap();
    })
    .await;
    let first = page(&app, "q=needle").await;
    assert!(ids_of(&first).is_empty() && older_link(&first).is_none());
    assert!(first.contains("No more matches among the 100000 requests looked at."), "says how far it looked");
    let start = first.find("id=\"log-search-older\"").expect("a link to search older");
    let href = &first[start..];
    let href = href[href.find("href=\"").unwrap() + 6..].split('"').next().unwrap().replace("&amp;", "&");
    let older = app.get(&href).await.text().await.unwrap();
    assert_eq!(ids_of(&older).len(), 1, "found further back");
    assert!(older.contains("the needle"));
}
