//! What the admin sees of routing per (key, model): a key's model blocks on its page, keys without
//! money marked "free models only", the models in use with how many keys can serve each, and an
//! incident that is about one model.

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Text};

use crate::mock::{FREE_MODELS, PAID_MODEL};
use crate::support::{self, Gateway, TestApp};

/// The app in front of the mock, picking keys in turn (so a few requests meet every key).
async fn gateway() -> Gateway {
    Gateway::start(&[("selection_strategy", "round_robin")]).await
}

impl Gateway {
    async fn status_for(&self, model: &str) -> u16 {
        let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        self.chat(body).await.status().as_u16()
    }

    fn asked(&self, key: &str, model: &str) -> bool {
        self.hits(key, model) > 0
    }
}

fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:02}-{}", "v".repeat(24))
}

async fn page(app: &TestApp, path: &str, lang: &str) -> String {
    let res = app.client.get(app.url(path)).header("accept-language", lang).send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

/// The row of `model` in the dashboard's "models in use" table.
fn model_row<'a>(html: &'a str, model: &str) -> &'a str {
    let needle = format!(r#"data-model="{model}""#);
    let at = html.find(&needle).unwrap_or_else(|| panic!("no row for {model}"));
    let row = &html[html[..at].rfind("<tr").unwrap()..];
    &row[..row.find("</tr>").unwrap()]
}

/// The figure in the row's "can serve now" column.
fn servable(row: &str) -> String {
    let needle = r#"class="servable">"#;
    let start = row.find(needle).expect("a servable count") + needle.len();
    row[start..].split('<').next().unwrap().to_owned()
}

async fn set_status(app: &TestApp, id: i64, status: &str, balance: f64) {
    let status = status.to_owned();
    support::with_db(app, move |c| {
        diesel::sql_query("UPDATE keys SET status = $1, total_balance = $2 WHERE id = $3")
            .bind::<Text, _>(status)
            .bind::<diesel::sql_types::Double, _>(balance)
            .bind::<BigInt, _>(id)
            .execute(c)
            .unwrap();
    })
    .await;
    support::reload_pool(app).await;
}

#[actix_web::test]
async fn a_keys_page_lists_its_model_blocks_and_the_dashboard_counts_the_keys_that_can_serve_each_model() {
    let g = gateway().await;
    let (rpd, realname) = (key("sk-rpd", 1), key("sk-realname", 1));
    let good: Vec<String> = (0..3).map(|i| key("sk-ok-10-good", i)).collect();
    let broke = key("sk-ok-0-broke", 1);
    let mut seeded: Vec<(&str, f64)> = vec![(rpd.as_str(), 10.0), (realname.as_str(), 10.0)];
    seeded.extend(good.iter().map(|k| (k.as_str(), 10.0)));
    seeded.push((broke.as_str(), 10.0));
    let ids = support::seed_active(&g.app, &seeded).await;
    let (rpd_id, realname_id, good_id, broke_id) = (ids[0], ids[1], ids[2], ids[5]);
    set_status(&g.app, broke_id, "depleted", 0.0).await;

    // Requests for the paid model until both the daily-limited key and the refused one were met: each
    // is answered by another key.
    for _ in 0..10 {
        if g.asked(&rpd, PAID_MODEL) && g.asked(&realname, PAID_MODEL) {
            break;
        }
        assert_eq!(g.status_for(PAID_MODEL).await, 200);
    }
    assert!(g.asked(&rpd, PAID_MODEL) && g.asked(&realname, PAID_MODEL), "round robin meets every key");
    assert_eq!(g.status_for(FREE_MODELS[0]).await, 200);
    support::flush_outcomes(&g.app).await;
    g.app.login().await;

    // The key's page names the model, the kind of limit, the upstream's message and its end.
    let html = page(&g.app, &format!("/admin/keys/{rpd_id}"), "en").await;
    assert!(html.contains(r#"id="model-blocks""#) && html.contains("Model blocks"), "{html}");
    assert!(html.contains(r#"data-kind="daily_limit""#), "a daily block");
    assert!(html.contains("Daily limit of this model (until the upstream"), "with its label");
    assert!(html.contains(&format!(r#"data-model="{PAID_MODEL}""#)), "and the model");
    assert!(html.contains("RPD limit reached"), "and the upstream's message");
    assert!(html.contains(r#"<td class="until" data-label="Ends"><time datetime="#), "and when it ends");
    let zh = page(&g.app, &format!("/admin/keys/{rpd_id}"), "zh-CN").await;
    assert!(zh.contains("模型限制") && zh.contains("该模型当日限额（至上游零点）"), "localised");
    let html = page(&g.app, &format!("/admin/keys/{realname_id}"), "en").await;
    assert!(html.contains(r#"data-kind="refused""#), "a refused model");
    assert!(html.contains("Model refused for this account (e.g. real-name verification)"));
    let zh = page(&g.app, &format!("/admin/keys/{realname_id}"), "zh-CN").await;
    assert!(zh.contains("账号无权使用该模型（如需实名认证）"));
    let html = page(&g.app, &format!("/admin/keys/{good_id}"), "en").await;
    assert!(html.contains("No model is blocked: this key serves every model."), "a key without blocks");
    assert!(!html.contains("data-kind="));

    // A block only the database knows (written by another instance) shows too.
    let now = g.app.state.now_ms();
    support::with_db(&g.app, move |c| {
        diesel::sql_query(
            "INSERT INTO key_model_blocks (key_id, model, kind, until_at, at, reason) \
             VALUES ($1, 'Pro/deepseek-ai/DeepSeek-R1', 'no_money', $2, $3, 'HTTP 403: balance is insufficient')",
        )
        .bind::<BigInt, _>(good_id)
        .bind::<BigInt, _>(now + 3_600_000)
        .bind::<BigInt, _>(now)
        .execute(c)
        .unwrap();
    })
    .await;
    let html = page(&g.app, &format!("/admin/keys/{good_id}"), "en").await;
    assert!(html.contains(r#"data-model="Pro/deepseek-ai/DeepSeek-R1""#), "{html}");
    assert!(html.contains("A request for this model could not be paid") && html.contains("balance is insufficient"));

    // The dashboard: the paid model has the three good keys; the free one every key (with money or not).
    let html = page(&g.app, "/admin", "en").await;
    assert!(html.contains(r#"id="models-in-use""#) && html.contains("Models in use (24 h)"), "{html}");
    let paid = model_row(&html, PAID_MODEL);
    assert_eq!(servable(paid), "3", "{paid}");
    assert!(!paid.contains("unservable") && !paid.contains("no key can serve it"));
    let free = model_row(&html, FREE_MODELS[0]);
    assert_eq!(servable(free), "6", "five keys with money and one without: {free}");
    assert!(free.contains(">free<"), "marked free: {free}");
    let zh = page(&g.app, "/admin", "zh-CN").await;
    assert!(zh.contains("近 24 小时使用的模型") && zh.contains("现可用"));
}

#[actix_web::test]
async fn a_model_no_key_can_serve_stands_out_on_the_dashboard() {
    let g = gateway().await;
    g.app.login().await;
    let html = page(&g.app, "/admin", "en").await;
    assert!(!html.contains("models-in-use"), "no model asked for yet: no card");

    let rpd = key("sk-rpd", 2);
    support::seed_active(&g.app, &[(rpd.as_str(), 10.0)]).await;
    assert_ne!(g.status_for(PAID_MODEL).await, 200, "the only key is at its daily limit");
    support::flush_outcomes(&g.app).await;
    let html = page(&g.app, "/admin", "en").await;
    let row = model_row(&html, PAID_MODEL);
    assert_eq!(servable(row), "0");
    assert!(row.contains(r#"class="unservable""#) && row.contains("no key can serve it"), "{row}");
    let zh = page(&g.app, "/admin", "zh-CN").await;
    assert!(model_row(&zh, PAID_MODEL).contains("没有可用的密钥"));
}

#[actix_web::test]
async fn a_key_without_money_is_marked_free_models_only() {
    let g = gateway().await;
    let (rich, broke) = (key("sk-ok-10-rich", 1), key("sk-ok-0-broke", 2));
    let ids = support::seed_active(&g.app, &[(rich.as_str(), 10.0), (broke.as_str(), 10.0)]).await;
    set_status(&g.app, ids[1], "depleted", 0.0).await;
    g.app.login().await;

    let html = page(&g.app, "/admin/keys", "en").await;
    assert_eq!(html.matches("free models only").count(), 1, "only the key without money: {html}");
    let at = html.find("free models only").unwrap();
    assert!(html[..at].rfind("status-depleted").is_some_and(|d| at - d < 400), "beside its state");
    assert!(page(&g.app, "/admin/keys", "zh-CN").await.contains("仅免费模型"));

    let html = page(&g.app, &format!("/admin/keys/{}", ids[1]), "en").await;
    assert!(html.contains("free models only"), "on its page");
    assert!(html.contains("No model is blocked: this key serves the free models only."));
    let html = page(&g.app, &format!("/admin/keys/{}", ids[0]), "en").await;
    assert!(!html.contains("free models only"), "a key with money serves every model");

    // The guest page (an admin always gets in) says it as well.
    let html = page(&g.app, "/", "en").await;
    assert_eq!(html.matches("free models only").count(), 1, "{html}");
    assert!(html.contains(r#"class="tier tier-depleted">Depleted<"#), "not shown as invalid");
    assert!(page(&g.app, "/", "zh-CN").await.contains("仅免费模型"));
}

#[actix_web::test]
async fn an_incident_of_one_model_says_which_model() {
    let app = support::spawn().await;
    app.login().await;
    let now = app.state.now_ms();
    let t = app.state.pool.runtime().thresholds();
    // Every attempt at one model fails across many keys, while another model goes through.
    for attempt in 0..12 {
        app.state.pool.incident.record_failure(attempt % 6 + 1, Some(PAID_MODEL), now, None, "HTTP 429: busy", t);
        app.state.pool.incident.record_success(100, Some(FREE_MODELS[0]), now);
    }
    let incident = app.state.pool.incident.active(now).expect("an incident of the model");
    assert_eq!(incident.model.as_deref(), Some(PAID_MODEL));
    let html = page(&app, "/admin", "en").await;
    assert!(html.contains(r#"id="incident" role="alert""#));
    assert!(html.contains(&format!("Upstream incident on model {PAID_MODEL}")), "{html}");
    assert!(html.contains("other models are routed as usual"));
    let zh = page(&app, "/admin", "zh-CN").await;
    assert!(zh.contains(&format!("上游异常：模型 {PAID_MODEL} 在大量密钥上同时失败")));
}
