//! Every page in the pseudo-locale (`/lang/qps-ploc`, each catalogue text shown as `⟦English⟧`) holds
//! no visible text outside the brackets: all the words a user reads come from the catalogues, so both
//! languages have them (issue 13). Data (keys, model names, figures, dates, the upstream's own words
//! inside a catalogue text) is allowed by its shape, not by a list of pages.

use std::time::{Duration, Instant};

use crate::support::{self, Gateway, TestApp};

/// The pages of a pool with keys in every state, a request log, limits and a guest page, as the
/// admin sees them (and the public pages as a visitor does).
async fn seeded() -> (Gateway, Vec<i64>) {
    let gw = Gateway::start(&[("access_mode", "open")]).await;
    let app = &gw.app;
    app.login().await;
    let keys = [
        "sk-ok-88.88-aaaaaaaaaaaaaaaa",
        "sk-ok--0.01-cccccccccccccccc",
        "sk-invalid-dddddddddddddddd",
        "sk-err500-ggggggggggggggggg",
        "sk-rpm-hhhhhhhhhhhhhhhhhhhhh",
    ];
    let text = keys.join("\n");
    assert_eq!(app.hx_post("/admin/keys/import", &[("keys", text.as_str())]).await.status(), 200);
    let form = [("scope", "all"), ("interval_secs", "0"), ("retries", "0"), ("concurrency", "8")];
    assert_eq!(app.hx_post("/admin/checks", &form).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.state.checker.current().is_none_or(|j| j.progress().running) {
        assert!(Instant::now() < deadline, "the check did not finish");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    support::reload_pool(app).await;
    for model in ["Qwen/Qwen2.5-7B-Instruct", "deepseek-ai/DeepSeek-V3"] {
        let body = serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
        for _ in 0..3 {
            gw.chat(body.clone()).await;
        }
    }
    // The gateway's own refusals land in the log with its own words: no token, a wrong one, a bad path.
    let url = app.url("/v1/chat/completions");
    app.client.post(&url).json(&serde_json::json!({})).send().await.unwrap();
    app.client.post(&url).bearer_auth("kp-wrong").json(&serde_json::json!({})).send().await.unwrap();
    app.client.get(app.url("/v1/%2e%2e/admin")).bearer_auth(&gw.token).send().await.unwrap();
    support::flush_outcomes(app).await;
    let id = support::with_db(app, |c| keypool::db::access_keys::list(c).unwrap()[0].id).await;
    let limits = [("rpm", "60"), ("rpd", "1000"), ("spend_day", "5"), ("note", "team")];
    app.hx_post(&format!("/admin/access-keys/{id}/limits"), &limits).await;
    let ids = support::with_db(app, move |c| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        // A reason an older version stored as an English sentence is read in the page's language too.
        diesel::sql_query("UPDATE keys SET last_error = 'timeout' WHERE key LIKE 'sk-err500%'").execute(c).unwrap();
        diesel::sql_query("SELECT id FROM keys ORDER BY id").load::<Id>(c).unwrap().into_iter().map(|r| r.id).collect()
    })
    .await;
    (gw, ids)
}

/// The texts a user reads in a page: text between tags (not in `script`, `style` or code snippets in
/// `pre`), and the attributes that are shown (`title`, `placeholder`, `aria-label`, `alt`, confirmations).
fn visible_texts(html: &str) -> Vec<String> {
    const SHOWN: [&str; 7] = ["title", "placeholder", "aria-label", "alt", "data-confirm", "hx-confirm", "data-copied"];
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push(decode(&rest[..open]));
        rest = &rest[open..];
        let close = rest.find('>').map_or(rest.len(), |i| i + 1);
        let tag = &rest[..close];
        let name: String = tag[1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        for attr in SHOWN {
            for quote in ['"', '\''] {
                let needle = format!(" {attr}={quote}");
                if let Some(at) = tag.find(&needle) {
                    let value = &tag[at + needle.len()..];
                    out.push(decode(&value[..value.find(quote).unwrap_or(value.len())]));
                }
            }
        }
        rest = &rest[close..];
        if ["script", "style", "pre"].contains(&name.as_str()) {
            let end = format!("</{name}>");
            rest = rest.find(&end).map_or("", |i| &rest[i + end.len()..]);
        }
    }
    out.push(decode(rest));
    out.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
}

/// The texts a chart shows (titles, series and legend names) from its `data-chart` JSON.
fn chart_texts(html: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("name" | "text" | "subtext", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for chunk in html.split(" data-chart=\"").skip(1) {
        let json = decode(&chunk[..chunk.find('"').unwrap_or(chunk.len())]);
        let value: serde_json::Value = serde_json::from_str(&json).expect("a chart's JSON");
        walk(&value, &mut out);
    }
    out
}

fn decode(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The words of `text` outside every `⟦…⟧` that are not data.
fn words_outside_the_catalogues(text: &str) -> Vec<String> {
    let mut outside = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '⟦' => depth += 1,
            '⟧' => depth = depth.saturating_sub(1),
            c if depth == 0 => outside.push(c),
            _ => outside.push(' '),
        }
    }
    outside.split_whitespace().filter(|w| is_words(w) && !is_data(w)).map(str::to_owned).collect()
}

/// Whether a token holds words: a CJK character, or two ASCII letters in a row.
fn is_words(token: &str) -> bool {
    let chars: Vec<char> = token.chars().collect();
    chars.iter().any(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        || chars.windows(2).any(|w| w[0].is_ascii_alphabetic() && w[1].is_ascii_alphabetic())
}

/// Data shown as it is: keys and masked keys, model names (with their digits) and paths, URLs, names in
/// code samples (`YOUR_ACCESS_KEY`, `Authorization: Bearer`), the product's, the admin's and access keys'
/// names, the languages' own names in the switch, times in UTC.
fn is_data(token: &str) -> bool {
    let t = token.trim_matches(|c: char| ",.;:()[]\"'“”".contains(c));
    t.starts_with("sk-")
        || t.starts_with("kp-")
        || t.starts_with("test-")
        || t.contains('/')
        || t.contains('@')
        || t.chars().any(|c| c.is_ascii_digit())
        || (t.contains('_') && !t.chars().any(|c| c.is_ascii_lowercase()))
        || ["keypool", "admin", "中文", "English", "Pseudo", "UTC", "GET", "POST", "Authorization", "Bearer", "team"]
            .contains(&t)
}

async fn page(client: &reqwest::Client, app: &TestApp, path: &str) -> String {
    let res = client.get(app.url(path)).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.text().await.unwrap()
}

#[actix_web::test]
async fn every_page_in_the_pseudo_locale_holds_no_text_outside_the_catalogues() {
    let (gw, ids) = seeded().await;
    let app = &gw.app;
    app.get("/lang/qps-ploc?next=/admin").await;
    let mut paths: Vec<String> = [
        "/admin",
        "/admin/keys",
        "/admin/keys?status=invalid",
        "/admin/keys?status=check_failed",
        "/admin/logs",
        "/admin/settings",
        "/admin/settings/prices",
        "/admin/checks/panel",
        "/docs",
        "/",
        "/guest/keys",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    paths.extend(ids.iter().map(|id| format!("/admin/keys/{id}")));
    paths.extend(keypool::views::dashboard::PANELS.iter().map(|p| format!("/admin/charts/{p}")));
    let visitor = support::new_client();
    visitor.get(app.url("/lang/qps-ploc?next=/")).send().await.unwrap();
    let mut leaks = Vec::new();
    let mut pages = vec![("/login (visitor)".to_owned(), page(&visitor, app, "/login").await)];
    for path in &paths {
        pages.push((path.clone(), page(&app.client, app, path).await));
    }
    pages.extend(answers_to_actions(&gw, &visitor, ids[0]).await);
    // A fresh install: the first-run checklist, empty lists.
    let fresh = support::spawn().await;
    fresh.login().await;
    fresh.get("/lang/qps-ploc?next=/admin").await;
    for path in ["/admin", "/admin/keys", "/admin/logs", "/admin/settings"] {
        pages.push((format!("{path} (fresh install)"), page(&fresh.client, &fresh, path).await));
    }
    assert!(pages.iter().any(|(_, html)| html.contains("id=\"first-run\"")), "the checklist is looked at");
    for (path, html) in &pages {
        assert!(html.contains('⟦'), "{path} is not in the pseudo-locale");
        // One text in reading order: a catalogue text split by markup (`code` spans) closes in a later node.
        let mut texts = visible_texts(html);
        texts.extend(chart_texts(html));
        let words = words_outside_the_catalogues(&texts.join("\n"));
        if !words.is_empty() {
            leaks.push(format!("{path}: {words:?}"));
        }
    }
    assert!(leaks.is_empty(), "text outside the catalogues:\n{}", leaks.join("\n"));
}

/// What the admin and a visitor read after acting: flashes, refused lines, field errors, error pages.
async fn answers_to_actions(gw: &Gateway, visitor: &reqwest::Client, id: i64) -> Vec<(String, String)> {
    let app = &gw.app;
    let posts: [(&str, String, Vec<(&str, &str)>); 9] = [
        (
            "import",
            "/admin/keys/import".into(),
            vec![("keys", "12345\nsk-ok-1-zzzzzzzzzzzzzzzzzzzzz\nsk-ok-88.88-aaaaaaaaaaaaaaaa")],
        ),
        ("disable", format!("/admin/keys/{id}/disable"), vec![]),
        ("bulk", "/admin/keys/bulk".into(), vec![("action", "delete_invalid")]),
        (
            "account",
            "/admin/settings/account".into(),
            vec![("username", ""), ("current_password", "wrong"), ("new_password", "a"), ("confirm_password", "b")],
        ),
        ("access key", "/admin/access-keys".into(), vec![("name", "")]),
        ("settings", "/admin/settings".into(), vec![("min_balance", "lots"), ("cooldown_s", "-1")]),
        ("price", "/admin/settings/prices".into(), vec![("model", ""), ("input_per_m", "x"), ("output_per_m", "-1")]),
        ("check params", "/admin/checks".into(), vec![("scope", "all"), ("concurrency", "0")]),
        ("limits", "/admin/access-keys/1/limits".into(), vec![("rpm", "many")]),
    ];
    let mut out = Vec::new();
    for (what, path, form) in posts {
        out.push((format!("{what} (POST {path})"), app.hx_post(&path, &form).await.text().await.unwrap()));
    }
    let wrong = [("username", "admin"), ("password", "wrong password")];
    let res = visitor.post(app.url("/login")).form(&wrong).send().await.unwrap();
    out.push(("wrong password".into(), res.text().await.unwrap()));
    for path in ["/admin/nowhere", "/admin/keys/999999"] {
        out.push((format!("{path} (not found)"), app.get(path).await.text().await.unwrap()));
    }
    out
}

#[test]
fn the_scanner_sees_text_outside_the_brackets_and_allows_data() {
    let html = r#"<p title="Hello">⟦Key⟧ sk-abc…xyz Qwen/Qwen2.5 12.5 ¥3</p><script>let x = "no";</script>
        <span aria-label="⟦Close⟧">balance 3 at or below</span><b>密钥</b>"#;
    let texts = visible_texts(html);
    let leaks: Vec<String> = texts.iter().flat_map(|t| words_outside_the_catalogues(t)).collect();
    assert_eq!(leaks, ["Hello", "balance", "at", "or", "below", "密钥"]);
    assert!(words_outside_the_catalogues("⟦a ⟦nested⟧ b⟧ 2026-12-01 07:00").is_empty());
}
