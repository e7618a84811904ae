//! Routing under SiliconFlow's real conditions: keys that died since their check, per-model minute and
//! daily limits, models refused for an account, keys without money serving the free models, our IP
//! rate-limited as a whole, and a busy pool where a few keys sit at their own limits.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::mock::{self, FREE_MODELS, PAID_MODEL};
use crate::support::{self, Gateway, TestApp};

type Pool = Gateway;

async fn pool() -> Pool {
    Gateway::start(&[]).await
}

/// What the caller got: the status, and the key named in the answer (the mock names itself).
#[derive(Debug)]
struct Served {
    status: u16,
    key: Option<String>,
    whole: bool,
}

impl Gateway {
    async fn ask(&self, model: &str, stream: bool) -> Served {
        let body =
            serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        let res = self
            .app
            .client
            .post(self.app.url("/v1/chat/completions"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let key = text.split("by ").nth(1).map(|rest| rest.chars().take_while(|c| *c != '"').collect());
        let whole = !stream || (text.trim_end().ends_with("data: [DONE]") && !text.contains("event: error"));
        Served { status, key, whole }
    }

    fn slot_usable(&self, key: &str, model: &str) -> bool {
        let now = self.app.state.now_ms();
        let snap = self.app.state.pool.snapshot();
        snap.paid.slots.iter().chain(snap.free.slots.iter()).any(|s| &*s.key == key && s.usable_for(model, now))
    }
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}-{}", "k".repeat(24))).collect()
}

async fn key_status(app: &TestApp, key: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct S {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let key = key.to_owned();
    support::with_db(app, move |c| {
        diesel::RunQueryDsl::get_result::<S>(
            diesel::sql_query("SELECT status FROM keys WHERE key = $1").bind::<diesel::sql_types::Text, _>(key),
            c,
        )
        .unwrap()
        .status
    })
    .await
}

/// Runs `n` requests, `parallel` at a time: the i-th asks for `model(i)`, streamed when `stream(i)`.
async fn traffic(
    p: &Pool,
    n: usize,
    parallel: usize,
    model: impl Fn(usize) -> &'static str,
    stream: impl Fn(usize) -> bool,
) -> Vec<(usize, Served)> {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (m, s) = (model(i), stream(i));
            async move { (i, p.ask(m, s).await) }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

#[actix_web::test]
async fn a_realistic_pool_serves_every_request_some_key_can_serve() {
    let p = pool().await;
    p.app.login().await;
    let good = keys("sk-ok-10-good", 13);
    let died = keys("sk-died", 6);
    let rpm = keys("sk-rpm", 6);
    let rpd = keys("sk-rpd", 3);
    let realname = keys("sk-realname", 2);
    let broke = keys("sk-ok-0-broke", 10);
    let all: Vec<&String> = good.iter().chain(&died).chain(&rpm).chain(&rpd).chain(&realname).chain(&broke).collect();
    assert_eq!(all.len(), 40);
    // As a new user would: import, check every key, and go.
    let text = all.iter().map(|k| k.as_str()).collect::<Vec<_>>().join("\n");
    assert_eq!(p.app.hx_post("/admin/keys/import", &[("keys", text.as_str())]).await.status(), 200);
    let form = [("scope", "all"), ("concurrency", "20"), ("interval_secs", "0"), ("retries", "0")];
    assert_eq!(p.app.hx_post("/admin/checks", &form).await.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.app.state.checker.current().is_none_or(|j| j.progress().running) {
        assert!(Instant::now() < deadline, "the check did not finish");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    support::reload_pool(&p.app).await;
    assert_eq!(key_status(&p.app, &broke[0]).await, "depleted", "no money: free models only");
    assert_eq!(key_status(&p.app, &died[0]).await, "active", "died after its check");

    // 400 requests, 4 at a time, half for the paid model and half for a free one, a third streamed.
    let served = traffic(&p, 400, 4, |i| if i % 2 == 0 { PAID_MODEL } else { FREE_MODELS[0] }, |i| i % 3 == 0).await;
    let failed: Vec<&(usize, Served)> = served.iter().filter(|(_, s)| s.status != 200 || !s.whole).collect();
    assert!(failed.is_empty(), "{} of 400 failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    let free: Vec<&Served> = served.iter().filter(|(i, _)| i % 2 == 1).map(|(_, s)| s).collect();
    let on_broke = free.iter().filter(|s| s.key.as_deref().is_some_and(|k| k.starts_with("sk-ok-0-"))).count();
    assert!(on_broke * 100 >= free.len() * 90, "{on_broke} of {} free requests on keys without money", free.len());
    for (i, s) in &served {
        if i % 2 == 0 {
            let key = s.key.as_deref().unwrap_or_default();
            assert!(key.starts_with("sk-ok-10-good"), "request {i} for the paid model was served by {key}");
        }
    }
    // A key at its daily limit for the paid model is not asked for it again that day; one refused the
    // model is not asked again until its next check; dead keys are out. (Requests in flight together
    // may each meet a key before its first answer is known: at most 4 at a time.)
    let out: Vec<&String> = rpd.iter().chain(&realname).chain(&died).collect();
    let seen: Vec<usize> = out.iter().map(|k| p.hits(k, PAID_MODEL)).collect();
    assert!(seen.iter().all(|n| *n <= 4), "{seen:?}");
    let again = traffic(&p, 100, 4, |_| PAID_MODEL, |i| i % 3 == 0).await;
    assert!(again.iter().all(|(_, s)| s.status == 200 && s.whole));
    for (k, before) in out.iter().zip(&seen) {
        assert_eq!(p.hits(k, PAID_MODEL), *before, "{k} was asked again");
    }
    let asked_rpd = rpd.iter().filter(|k| p.hits(k, PAID_MODEL) > 0).count();
    support::flush_outcomes(&p.app).await;
    for k in rpm.iter().chain(&rpd).chain(&realname) {
        assert_eq!(key_status(&p.app, k).await, "active", "{k}: a model's limit or refusal is not the key's");
    }
    for k in &died {
        let status = key_status(&p.app, k).await;
        assert!(status == "invalid" || p.hits(k, PAID_MODEL) + p.hits(k, FREE_MODELS[0]) == 0, "{k}: {status}");
    }
    // The daily blocks are written (a restart and the other instances know them), until the upstream's
    // next midnight (UTC+8).
    #[derive(diesel::QueryableByName)]
    struct Block {
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        until_at: i64,
    }
    let blocks: Vec<Block> = support::with_db(&p.app, |c| {
        diesel::RunQueryDsl::load(
            diesel::sql_query(
                "SELECT b.kind, b.until_at FROM key_model_blocks b JOIN keys k ON k.id = b.key_id \
                 WHERE k.key LIKE 'sk-rpd%'",
            ),
            c,
        )
        .unwrap()
    })
    .await;
    assert_eq!(blocks.len(), asked_rpd);
    let midnight = keypool::domain::settings::next_day_boundary(p.app.state.now_ms(), 480);
    assert!(blocks.iter().all(|b| b.kind == "daily_limit" && b.until_at == midnight), "until the next day");

    // Keys limited on the paid model still serve the free one: with the keys without money taken out,
    // free-model traffic reaches them.
    for k in rpm.iter().chain(&rpd) {
        assert!(p.slot_usable(k, FREE_MODELS[0]), "{k} serves the free model");
    }
    for k in &broke {
        let id = support::with_db(&p.app, {
            let k = k.clone();
            move |c| {
                #[derive(diesel::QueryableByName)]
                struct Id {
                    #[diesel(sql_type = diesel::sql_types::BigInt)]
                    id: i64,
                }
                diesel::RunQueryDsl::get_result::<Id>(
                    diesel::sql_query("SELECT id FROM keys WHERE key = $1").bind::<diesel::sql_types::Text, _>(k),
                    c,
                )
                .unwrap()
                .id
            }
        })
        .await;
        let res = p.app.hx_post(&format!("/admin/keys/{id}/disable"), &[]).await;
        assert!(res.status().is_success(), "disable {k}: {}", res.status());
    }
    let before: usize = rpm.iter().chain(&rpd).map(|k| p.hits(k, FREE_MODELS[1])).sum();
    let served = traffic(&p, 60, 4, |_| FREE_MODELS[1], |_| false).await;
    assert!(served.iter().all(|(_, s)| s.status == 200));
    let after: usize = rpm.iter().chain(&rpd).map(|k| p.hits(k, FREE_MODELS[1])).sum();
    assert!(after > before, "the keys at the paid model's limits served free-model requests");
    assert!(p.app.state.pool.incident.active(p.app.state.now_ms()).is_none(), "none of this is an incident");
}

#[actix_web::test]
async fn when_our_ip_is_rate_limited_no_key_is_touched_and_traffic_recovers_by_itself() {
    let p = pool().await;
    let all = keys("sk-ok-10-ip", 12);
    let seeded: Vec<(&str, f64)> = all.iter().map(|k| (k.as_str(), 10.0)).collect();
    support::seed_active(&p.app, &seeded).await;
    p.upstream.set_overloaded(true);
    let first = p.ask(PAID_MODEL, false).await;
    assert!(first.status == 429 || first.status == 503, "{first:?}");
    let now = p.app.state.now_ms();
    let incident = p.app.state.pool.incident.active(now).expect("every key failing the same way is an incident");
    assert!(incident.cause.contains("429"), "{incident:?}");
    let tried: usize = all.iter().map(|k| p.hits(k, PAID_MODEL)).sum();
    assert!(tried <= 12, "{tried}");
    // During the incident: one attempt per request, no failover storm.
    for _ in 0..3 {
        let s = p.ask(PAID_MODEL, false).await;
        assert!(s.status == 429 || s.status == 503, "{s:?}");
    }
    let tried_after: usize = all.iter().map(|k| p.hits(k, PAID_MODEL)).sum();
    assert!(tried_after <= tried + 3, "{tried} then {tried_after}");
    // No key is killed or cooled, and no pair is out beyond the upstream's own Retry-After (1 s).
    support::flush_outcomes(&p.app).await;
    for k in &all {
        assert_eq!(key_status(&p.app, k).await, "active", "{k}");
    }
    for slot in p.app.state.pool.snapshot().paid.slots.iter() {
        for b in slot.blocks(now) {
            assert!(b.until <= now + 1_000, "{b:?} is beyond the upstream's hint");
        }
    }
    // The dashboard shows the incident.
    p.app.login().await;
    let html = p.app.get("/admin").await.text().await.unwrap();
    assert!(html.contains(r#"id="incident" role="alert""#), "the banner shows");
    // The upstream recovers: within its hint, traffic flows again by itself.
    p.upstream.set_overloaded(false);
    p.app.clock.advance(Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if p.ask(PAID_MODEL, false).await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "traffic did not recover");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p.app.state.pool.incident.active(p.app.state.now_ms()).is_none(), "a success ends it");
    let served = traffic(&p, 40, 4, |_| PAID_MODEL, |i| i % 2 == 0).await;
    assert!(served.iter().all(|(_, s)| s.status == 200 && s.whole));
}

#[actix_web::test]
async fn a_few_keys_at_their_own_limit_in_a_busy_pool_are_never_an_incident() {
    let p = pool().await;
    let ok = keys("sk-ok-10-busy", 190);
    let limited = keys("sk-rpm-busy", 10);
    let seeded: Vec<(&str, f64)> = ok.iter().chain(&limited).map(|k| (k.as_str(), 10.0)).collect();
    support::seed_active(&p.app, &seeded).await;
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut after_first: Vec<usize> = Vec::new();
    for round in 0..6 {
        let served = traffic(&p, 100, 8, |_| PAID_MODEL, |i| i % 3 == 0).await;
        for (_, s) in &served {
            assert!(s.whole, "{s:?}");
            *statuses.entry(s.status).or_default() += 1;
        }
        assert!(p.app.state.pool.incident.active(p.app.state.now_ms()).is_none(), "round {round}: no incident");
        if round == 0 {
            after_first = limited.iter().map(|k| p.hits(k, PAID_MODEL)).collect();
        }
    }
    assert_eq!(statuses.get(&200), Some(&600), "no caller sees a 429: {statuses:?}");
    // Once a key answered 429 it is out for its model (requests in flight together may each have met
    // it before its first answer was known: at most 8 at a time).
    for (k, first) in limited.iter().zip(&after_first) {
        let hits = p.hits(k, PAID_MODEL);
        assert!(hits <= 8, "{k}: {hits}");
        if *first > 0 {
            assert_eq!(hits, *first, "{k} was asked again for its model");
        }
        assert!(!p.slot_usable(k, PAID_MODEL) || hits == 0, "{k}");
    }
    // Out for that model only: the free model still reaches them.
    let served = traffic(&p, 200, 8, |_| FREE_MODELS[1], |_| false).await;
    assert!(served.iter().all(|(_, s)| s.status == 200));
    let free_hits: usize = limited.iter().map(|k| p.hits(k, FREE_MODELS[1])).sum();
    assert!(free_hits > 0, "the limited keys serve other models");
    support::flush_outcomes(&p.app).await;
    for k in &limited {
        assert_eq!(key_status(&p.app, k).await, "active", "{k}");
    }
}

#[actix_web::test]
async fn long_blocks_reach_the_other_instances_and_survive_a_restart() {
    let a = Gateway::start(&[("selection_strategy", "round_robin")]).await;
    let url = a.upstream.url.clone();
    let rpd = "sk-rpd-shared-kkkkkkkkkkkkkkkkkkkkkk";
    let realname = "sk-realname-shared-kkkkkkkkkkkkkkkkk";
    let good = keys("sk-ok-10-shared", 3);
    let mut seeded: Vec<(&str, f64)> = vec![(rpd, 10.0), (realname, 10.0)];
    seeded.extend(good.iter().map(|k| (k.as_str(), 10.0)));
    support::seed_active(&a.app, &seeded).await;
    let b_url = url.clone();
    let b = support::spawn_sharing(&a.app, move |c| c.upstream_override = Some(b_url)).await;
    let b = Gateway::on(b, mock::start(), &[]).await;
    // Instance A meets both keys on the paid model and writes what it learned.
    for _ in 0..5 {
        assert_eq!(a.ask(PAID_MODEL, false).await.status, 200);
    }
    assert_eq!((a.hits(rpd, PAID_MODEL), a.hits(realname, PAID_MODEL)), (1, 1));
    support::flush_outcomes(&a.app).await;
    // Instance B learns it from the database within a writer tick, without asking the upstream.
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.slot_usable(rpd, PAID_MODEL) || b.slot_usable(realname, PAID_MODEL) {
        assert!(Instant::now() < deadline, "instance B did not learn the blocks");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.slot_usable(rpd, FREE_MODELS[0]), "for that model only");
    for _ in 0..10 {
        assert_eq!(b.ask(PAID_MODEL, false).await.status, 200);
    }
    // (B's requests reach the same mock as A's.)
    assert_eq!((a.hits(rpd, PAID_MODEL), a.hits(realname, PAID_MODEL)), (1, 1), "B never asked them");
    // An instance started now (a restart) loads them at start-up.
    let c_url = url.clone();
    let c = support::spawn_sharing(&a.app, move |c| c.upstream_override = Some(c_url)).await;
    let c = Gateway::on(c, mock::start(), &[]).await;
    assert!(!c.slot_usable(rpd, PAID_MODEL) && !c.slot_usable(realname, PAID_MODEL));
    assert!(c.slot_usable(rpd, FREE_MODELS[0]) && c.slot_usable(realname, FREE_MODELS[0]));
    // A check of the refused key ends its block (until the key's next check); the daily one stays.
    let ids = support::with_db(&a.app, |conn| {
        #[derive(diesel::QueryableByName)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        diesel::RunQueryDsl::load::<Id>(
            diesel::sql_query("SELECT id FROM keys WHERE key LIKE 'sk-r%' ORDER BY key"),
            conn,
        )
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect::<Vec<i64>>()
    })
    .await;
    let results: Vec<(i64, keypool::domain::checks::CheckOutcome)> = ids
        .iter()
        .map(|id| {
            let b = keypool::domain::checks::Balances { total: 10.0, charge: 10.0, gift: 0.0 };
            (*id, keypool::domain::checks::CheckOutcome::Balance(b))
        })
        .collect();
    let now = a.app.state.now_ms() + 1;
    support::with_db(&a.app, move |conn| keypool::db::checks::record(conn, &results, 0.0, now).unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.slot_usable(realname, PAID_MODEL) {
        assert!(Instant::now() < deadline, "the check did not end the refusal's block");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!c.slot_usable(rpd, PAID_MODEL), "a check does not end a daily limit");
}
