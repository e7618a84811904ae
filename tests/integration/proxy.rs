//! The `/v1` gateway against the mock upstream: authentication, failover for every failure class, the
//! incident guard, timeouts, streams that die, the body limit, headers, CORS, billing and models, usage
//! and the request log, the hot path without a database, and a real OpenAI client library.

use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::mock;
use crate::support::{self, Gateway, TestApp};

async fn gateway(settings: &[(&str, &str)]) -> Gateway {
    Gateway::start(settings).await
}

fn hello() -> serde_json::Value {
    // A paid model: keys without money are not asked for it.
    serde_json::json!({"model": mock::PAID_MODEL, "messages": [{"role": "user", "content": "hi"}]})
}

#[derive(diesel::QueryableByName, Debug)]
struct KeyState {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    status_reason: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    cooling_until: Option<i64>,
    #[diesel(sql_type = BigInt)]
    request_count: i64,
    #[diesel(sql_type = BigInt)]
    failure_count: i64,
}

async fn key_state(app: &TestApp, key: &str) -> KeyState {
    let key = key.to_owned();
    support::with_db(app, move |c| {
        diesel::sql_query(
            "SELECT status, status_reason, cooling_until, request_count, failure_count FROM keys WHERE key = $1",
        )
        .bind::<Text, _>(key)
        .get_result(c)
        .unwrap()
    })
    .await
}

#[derive(diesel::QueryableByName, Debug)]
struct LogRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    key_id: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    access_key_id: Option<i64>,
    #[diesel(sql_type = Text)]
    path: String,
    #[diesel(sql_type = Nullable<Text>)]
    model: Option<String>,
    #[diesel(sql_type = BigInt)]
    status: i64,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Nullable<Text>)]
    error: Option<String>,
}

async fn request_log(app: &TestApp) -> Vec<LogRow> {
    support::with_db(app, |c| {
        diesel::sql_query(
            "SELECT key_id, access_key_id, path, model, status, attempts, error FROM request_log ORDER BY id",
        )
        .load(c)
        .unwrap()
    })
    .await
}

#[actix_web::test]
async fn access_keys_are_required_and_errors_have_openai_shape() {
    let gw = gateway(&[]).await;
    let url = gw.app.url("/v1/chat/completions");
    let res = gw.app.client.post(&url).json(&hello()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "missing_api_key");
    assert!(body["error"]["message"].as_str().unwrap().contains("Bearer"));
    let res = gw.app.client.post(&url).bearer_auth("kp-not-a-real-key").json(&hello()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "invalid_api_key");
    // A bare token without `Bearer ` is accepted too; with no key in the pool the answer is a clear 503.
    let res = gw.app.client.post(&url).header("authorization", &gw.token).json(&hello()).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(!support::header(&res, "retry-after").is_empty());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_available_key");
    assert_eq!(gw.upstream.hits.total(), 0, "nothing reached the upstream");
}

#[actix_web::test]
async fn a_request_is_forwarded_with_the_pool_key_and_nothing_of_the_callers_credentials() {
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-ok-9-forwardforwardfw", 9.0)]).await;
    let res = gw
        .app
        .client
        .put(gw.app.url("/v1/echo?a=1&b=two"))
        .bearer_auth(&gw.token)
        .header("cookie", "keypool_session=secret")
        .header("x-custom", "kept")
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "hop")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none(), "upstream cookies stay upstream");
    assert_eq!(support::header(&res, "x-accel-buffering"), "no");
    let seen: serde_json::Value = res.json().await.unwrap();
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["path"], "/v1/echo");
    assert_eq!(seen["query"], "a=1&b=two");
    assert_eq!(seen["body"], "payload");
    assert_eq!(seen["headers"]["authorization"], "Bearer sk-ok-9-forwardforwardfw");
    assert!(seen["headers"].get("x-custom").is_none(), "headers off the allow-list stay here: {seen}");
    assert!(seen["headers"].get("cookie").is_none(), "{seen}");
    assert!(seen["headers"].get("x-drop-me").is_none(), "headers named by Connection are hop-by-hop");
    assert!(!seen.to_string().contains(&gw.token), "the access key never goes upstream");
}

#[actix_web::test]
async fn only_allow_listed_headers_go_upstream() {
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-ok-9-allowlistallowlist", 9.0)]).await;
    let res = gw
        .app
        .client
        .post(gw.app.url("/v1/echo"))
        .bearer_auth(&gw.token)
        .header("content-type", "application/json")
        .header("user-agent", "OpenAI/Python 1.0")
        .header("x-stainless-lang", "python")
        .header("openai-beta", "assistants=v2")
        .header("idempotency-key", "once")
        .header("x-api-key", "sk-callers-own-secret")
        .header("api-key", "sk-callers-azure-secret")
        .header("forwarded", "for=10.0.0.1;host=internal")
        .header("x-real-ip", "10.0.0.1")
        .header("x-forwarded-host", "internal.example")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-custom", "mine")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen: serde_json::Value = res.json().await.unwrap();
    let headers = &seen["headers"];
    for (name, value) in [
        ("content-type", "application/json"),
        ("user-agent", "OpenAI/Python 1.0"),
        ("x-stainless-lang", "python"),
        ("openai-beta", "assistants=v2"),
        ("idempotency-key", "once"),
        ("authorization", "Bearer sk-ok-9-allowlistallowlist"),
    ] {
        assert_eq!(headers[name], value, "{name} goes upstream: {seen}");
    }
    for name in [
        "x-api-key",
        "api-key",
        "forwarded",
        "x-real-ip",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-for",
        "x-custom",
    ] {
        assert!(headers.get(name).is_none(), "{name} must not go upstream: {seen}");
    }
    assert!(!seen.to_string().contains("secret"), "no caller credential goes upstream: {seen}");
}

/// Sends `method path` exactly as written (clients normalise dot segments themselves) with the access
/// key, and returns the status and the body.
async fn raw_request(app: &TestApp, method: &str, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[actix_web::test]
async fn paths_with_dot_segments_are_refused_before_any_key_is_used() {
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-ok-9-dotsegmentsdotseg", 9.0)]).await;
    for path in [
        "/v1/../admin",
        "/v1/./models",
        "/v1/%2e%2e/admin",
        "/v1/%2E%2E/admin",
        "/v1/.%2e/admin",
        "/v1/%2e./admin",
        "/v1/%2e/models",
        "/v1/chat/%2E%2E/x",
        "/v1/chat/completions/..",
        "/v1/chat%2f..%2fadmin",
        "/v1/chat%2F%2e%2e%2Fadmin",
        "/v1/chat%5c..%5cadmin",
        "/v1/%252e%252e/admin",
        "/v1/chat\\..\\admin",
    ] {
        for method in ["GET", "POST"] {
            let (status, body) = raw_request(&gw.app, method, path, &gw.token).await;
            assert_eq!(status, 400, "{method} {path}: {body}");
            let body: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body}"));
            assert_eq!(body["error"]["code"], "invalid_path", "{method} {path}: {body}");
            assert_eq!(body["error"]["type"], "invalid_request_error");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    assert_eq!(gw.upstream.received(), 0, "nothing reached the upstream");
    assert_eq!(gw.upstream.hits.total(), 0);
    // Dots inside a segment or in the query are not segments: forwarded as usual.
    let (status, body) = raw_request(&gw.app, "POST", "/v1/echo?next=../../x", &gw.token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.upstream.received(), 1);
}

#[actix_web::test]
async fn invalid_banned_and_broke_keys_are_failed_over_and_taken_out_of_rotation() {
    // "No money" for one request blocks that (key, model) pair at once; the key becomes `depleted` only
    // when the balance check that answer starts agrees (the mock's balance of both is 0).
    let gw = gateway(&[("selection_strategy", "round_robin"), ("max_attempts", "5")]).await;
    let keys = [
        "sk-invalid-aaaaaaaaaaaaaaaaaa",
        "sk-banned-bbbbbbbbbbbbbbbbbbb",
        "sk-broke-ccccccccccccccccccccc",
        "sk-pay-ddddddddddddddddddddddd",
        "sk-ok-50-eeeeeeeeeeeeeeeeeeeee",
    ];
    support::seed_active(&gw.app, &keys.map(|k| (k, 10.0))).await;
    let res = gw.chat(hello()).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "answered by sk-ok-50-eeeeeeeeeeeeeeeeeeeee");
    for k in keys {
        assert_eq!(gw.chats(k), 1, "{k} was tried once");
    }
    // From now on only the good key is picked, without touching the others.
    for _ in 0..5 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    assert_eq!(gw.chats(keys[0]) + gw.chats(keys[1]) + gw.chats(keys[2]) + gw.chats(keys[3]), 4);
    support::flush_outcomes(&gw.app).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while key_state(&gw.app, keys[2]).await.status != "depleted"
        || key_state(&gw.app, keys[3]).await.status != "depleted"
    {
        assert!(std::time::Instant::now() < deadline, "the re-check of the broke keys did not land");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(gw.upstream.hits.of(keys[2]), 1, "one balance check, started by the proxy");
    let states = [
        ("invalid", "Api key is invalid"),
        ("invalid", "banned"),
        ("depleted", "balance 0"),
        ("depleted", "balance 0"),
        ("active", ""),
    ];
    for (key, (status, reason)) in keys.iter().zip(states) {
        let s = key_state(&gw.app, key).await;
        assert_eq!(s.status, status, "{key}");
        let said = keypool::i18n::stored_reason_text(keypool::i18n::Lang::En, &s.status_reason.unwrap_or_default());
        assert!(said.contains(reason), "{key}: {said}");
    }
    assert_eq!(key_state(&gw.app, keys[4]).await.request_count, 6);
    assert_eq!(key_state(&gw.app, keys[0]).await.failure_count, 1);
    let log = request_log(&gw.app).await;
    assert_eq!(log.len(), 6);
    assert_eq!((log[0].status, log[0].attempts), (200, 5));
    assert_eq!(log[0].model.as_deref(), Some(mock::PAID_MODEL));
    assert_eq!(log[0].path, "/v1/chat/completions");
    assert!(log[0].access_key_id.is_some() && log[0].key_id.is_some());
    // The state changes are key events, like a check's.
    let events: i64 = support::with_db(&gw.app, |c| {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT COUNT(*) AS n FROM key_events").get_result::<N>(c).unwrap().n
    })
    .await;
    assert_eq!(events, 4);
}

#[actix_web::test]
async fn a_rate_limited_key_is_out_for_that_model_until_retry_after_then_comes_back() {
    let gw = gateway(&[("selection_strategy", "round_robin")]).await;
    let limited = "sk-limited-aaaaaaaaaaaaaaaaaa";
    support::seed_active(&gw.app, &[(limited, 10.0), ("sk-ok-1-bbbbbbbbbbbbbbbbbbbbb", 10.0)]).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    assert_eq!(gw.chats(limited), 1, "out for the model: not tried again");
    support::flush_outcomes(&gw.app).await;
    let s = key_state(&gw.app, limited).await;
    assert_eq!((s.status.as_str(), s.cooling_until), ("active", None), "a model's rate limit is not the key's");
    let now = gw.app.state.now_ms();
    let slot = gw.app.state.pool.snapshot().paid.slots.iter().find(|s| &*s.key == limited).cloned().unwrap();
    let blocks = slot.blocks(now);
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        (&*blocks[0].model, blocks[0].until),
        (hello()["model"].as_str().unwrap(), now + 7_000),
        "Retry-After: 7"
    );
    // Seven seconds later the key is picked again (and is out again).
    gw.app.clock.advance(std::time::Duration::from_secs(7));
    gw.app.state.pool.rebuild(gw.app.state.now_ms());
    for _ in 0..2 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    assert_eq!(gw.chats(limited), 2);
}

#[actix_web::test]
async fn a_403_about_a_model_or_our_region_never_kills_a_key() {
    let gw = gateway(&[("selection_strategy", "round_robin"), ("max_attempts", "3")]).await;
    let (model_off, region) = ("sk-modeloff-aaaaaaaaaaaaaaaaaa", "sk-region-bbbbbbbbbbbbbbbbbbbb");
    support::seed_active(&gw.app, &[(model_off, 10.0), (region, 10.0), ("sk-ok-1-ccccccccccccccccccccc", 10.0)]).await;
    for _ in 0..6 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    // The model refused for the account: out for that model, asked once; our region: nothing learned
    // about the key, which stays in rotation (and counts against `max_attempts`).
    assert_eq!(gw.chats(model_off), 1);
    assert!(gw.chats(region) >= 2, "{}", gw.chats(region));
    let other = serde_json::json!({"model": mock::FREE_MODELS[1], "messages": [{"role": "user", "content": "hi"}]});
    let mut served_by_model_off = false;
    for _ in 0..6 {
        let res = gw.chat(other.clone()).await;
        assert_eq!(res.status(), 200);
        served_by_model_off |= res.text().await.unwrap().contains(model_off);
    }
    assert!(served_by_model_off, "the key still serves other models");
    support::flush_outcomes(&gw.app).await;
    for k in [model_off, region] {
        assert_eq!(key_state(&gw.app, k).await.status, "active", "{k}");
    }
}

#[actix_web::test]
async fn server_errors_and_dead_keys_are_retried_elsewhere_but_never_change_the_keys_state() {
    let gw = gateway(&[("selection_strategy", "round_robin"), ("max_attempts", "2")]).await;
    let broken = "sk-err500-aaaaaaaaaaaaaaaaaaa";
    support::seed_active(&gw.app, &[(broken, 10.0), ("sk-ok-1-bbbbbbbbbbbbbbbbbbbbb", 10.0)]).await;
    for _ in 0..4 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    assert_eq!(gw.chats(broken), 4, "a 500 says nothing about the key: it stays in rotation");
    support::flush_outcomes(&gw.app).await;
    let s = key_state(&gw.app, broken).await;
    assert_eq!((s.status.as_str(), s.request_count, s.failure_count), ("active", 4, 4));

    // With only failing keys, the caller gets the last upstream answer as it was.
    let gw = gateway(&[("max_attempts", "2")]).await;
    support::seed_active(&gw.app, &[(broken, 10.0), ("sk-err500-ccccccccccccccccccc", 10.0)]).await;
    let res = gw.chat(hello()).await;
    assert_eq!(res.status(), 500);
    assert!(res.text().await.unwrap().contains("upstream exploded"));
    support::flush_outcomes(&gw.app).await;
    let log = request_log(&gw.app).await;
    assert_eq!((log[0].status, log[0].attempts), (500, 2));
}

#[actix_web::test]
async fn caller_mistakes_pass_through_unchanged_and_are_never_retried() {
    let gw = gateway(&[("max_attempts", "3")]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0), ("sk-ok-2-bbbbbbbbbbbbbbbbbbbbb", 10.0)])
        .await;
    let res = gw.chat(serde_json::json!({"model": "no-such-model", "messages": []})).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["message"], "Model does not exist.");
    let res = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&gw.token)
        .header("content-type", "application/json")
        .body("{broken json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let total: usize =
        ["sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbbbbb"].iter().map(|k| gw.chats(k)).sum();
    assert_eq!(total, 2, "one attempt each");
    support::flush_outcomes(&gw.app).await;
    for key in ["sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", "sk-ok-2-bbbbbbbbbbbbbbbbbbbbb"] {
        let s = key_state(&gw.app, key).await;
        assert_eq!((s.status.as_str(), s.failure_count), ("active", 0), "a caller's mistake is not the key's");
    }
}

#[actix_web::test]
async fn when_every_key_is_unusable_the_caller_gets_503_with_retry_after() {
    let gw = gateway(&[("max_attempts", "3")]).await;
    support::seed_active(&gw.app, &[("sk-invalid-aaaaaaaaaaaaaaaaaa", 10.0), ("sk-broke-bbbbbbbbbbbbbbbbbbbbb", 10.0)])
        .await;
    let res = gw.chat(hello()).await;
    assert_eq!(res.status(), 503);
    assert_eq!(support::header(&res, "retry-after"), "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_available_key");
    assert!(body["error"]["message"].as_str().unwrap().contains("2 upstream key(s)"), "{body}");
    // Now nothing is left to try: 503 without an upstream call. (Only the chat calls are counted: the
    // "no money" answer asks for a balance re-check in the background, which may call `/v1/user/info`
    // at any moment.)
    let chats = |gw: &Gateway| {
        gw.upstream.hits.of("chat Bearer sk-invalid-aaaaaaaaaaaaaaaaaa")
            + gw.upstream.hits.of("chat Bearer sk-broke-bbbbbbbbbbbbbbbbbbbbb")
    };
    let before = chats(&gw);
    let res = gw.chat(hello()).await;
    assert_eq!(res.status(), 503);
    assert_eq!(chats(&gw), before);
    // A key cooling down: Retry-After says when it comes back.
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-limited-aaaaaaaaaaaaaaaaaa", 10.0)]).await;
    assert_eq!(gw.chat(hello()).await.status(), 429, "the upstream's 429 goes back as it was");
    gw.app.state.pool.rebuild(gw.app.state.now_ms());
    let res = gw.chat(hello()).await;
    assert_eq!(res.status(), 503);
    assert_eq!(support::header(&res, "retry-after"), "7");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("model deepseek-ai/DeepSeek-V3"), "{body}");
}

#[actix_web::test]
async fn first_byte_timeout_fails_over_and_connect_failures_say_so() {
    let gw = gateway(&[("first_byte_timeout_s", "1"), ("selection_strategy", "round_robin")]).await;
    let slow = "sk-sleepy-aaaaaaaaaaaaaaaaaaa";
    support::seed_active(&gw.app, &[(slow, 10.0), ("sk-ok-1-bbbbbbbbbbbbbbbbbbbbb", 10.0)]).await;
    assert_eq!(gw.chat(hello()).await.status(), 200, "the slow key timed out and the next one answered");
    support::flush_outcomes(&gw.app).await;
    let s = key_state(&gw.app, slow).await;
    assert_eq!((s.request_count, s.failure_count), (1, 1), "the slow key was tried once");
    assert_eq!(s.status, "active", "a slow answer says nothing about the key");
    assert_eq!(request_log(&gw.app).await[0].attempts, 2);
    // Only the slow key: 504 in OpenAI's shape.
    let gw = gateway(&[("first_byte_timeout_s", "1")]).await;
    support::seed_active(&gw.app, &[(slow, 10.0)]).await;
    let res = gw.chat(hello()).await;
    assert_eq!(res.status(), 504);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"]["code"], "upstream_timeout");

    // An upstream that refuses connections: 502.
    let app = support::spawn().await;
    let token = support::access_key(&app).await;
    support::seed_active(&app, &[("sk-ok-1-ccccccccccccccccccccc", 10.0)]).await;
    let res = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&token).json(&hello()).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable");
}

#[actix_web::test]
async fn connect_timeout_applies_to_an_upstream_that_never_accepts() {
    // A listener whose accept queue is full: the kernel drops further SYNs, so connecting hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let url = format!("http://{addr}");
    let app = support::spawn_with(move |c| c.upstream_override = Some(url)).await;
    let token = support::access_key(&app).await;
    support::set_settings(&app, &[("connect_timeout_s", "1")]).await;
    support::seed_active(&app, &[("sk-ok-1-ccccccccccccccccccccc", 10.0)]).await;
    let res = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&token).json(&hello()).send().await.unwrap();
    assert_eq!(res.status(), 502);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().to_lowercase().contains("connect"), "{body}");
    drop((listener, fillers));
}

async fn read_sse(res: reqwest::Response) -> String {
    // Read to the end whatever happens to the connection.
    let mut text = String::new();
    let mut stream = res.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Err(_) => break,
        }
    }
    text
}

#[actix_web::test]
async fn a_stream_passes_through_whole_and_one_that_dies_ends_with_an_error_event_and_no_done() {
    let gw = gateway(&[("idle_timeout_s", "1")]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    let mut body = hello();
    body["stream"] = true.into();
    let res = gw.chat(body.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(support::header(&res, "content-type"), "text/event-stream");
    assert_eq!(support::header(&res, "x-accel-buffering"), "no");
    let text = read_sse(res).await;
    assert!(text.contains("answered ") && text.ends_with("data: [DONE]\n\n"), "{text}");

    for (key, cause) in
        [("sk-drop-bbbbbbbbbbbbbbbbbbbbb", "broke off before"), ("sk-stall-ccccccccccccccccccccc", "idle_timeout_s")]
    {
        let gw = gateway(&[("idle_timeout_s", "1")]).await;
        support::seed_active(&gw.app, &[(key, 10.0)]).await;
        let res = gw.chat(body.clone()).await;
        assert_eq!(res.status(), 200, "the head was already sent");
        let text = read_sse(res).await;
        assert!(text.starts_with("data: {"), "the first chunks arrived: {text}");
        assert!(text.contains("event: error\ndata: {\"error\""), "{text}");
        assert!(text.contains("stream_interrupted") && text.contains(cause), "{text}");
        assert!(!text.contains("[DONE]"), "a truncated stream must not look whole: {text}");
        support::flush_outcomes(&gw.app).await;
        let s = key_state(&gw.app, key).await;
        assert_eq!((s.request_count, s.failure_count), (1, 1), "logged as a failure of {key}");
        assert_eq!(s.status, "active", "but not a reason to drop the key");
        let log = request_log(&gw.app).await;
        assert!(log[0].error.as_deref().unwrap_or("").contains(cause), "{:?}", log[0]);
        let metrics = gw.app.state.metrics.requests_with(keypool::proxy::metrics::Outcome::StreamError);
        assert_eq!(metrics, 1);
    }
}

#[actix_web::test]
async fn bodies_over_the_limit_get_413_with_a_message() {
    let gw = gateway(&[("max_body_mb", "1")]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    let big = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(1_100_000)}]});
    let res = gw.chat(big).await;
    assert_eq!(res.status(), 413);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("1 MB"));
    // Without a Content-Length (chunked), the limit holds while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..12).map(|_| Ok(vec![b' '; 100_000])).collect();
    let res = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&gw.token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(gw.upstream.hits.total(), 0);
    // Just under the limit goes through.
    let fits = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(900_000)}]});
    assert_eq!(gw.chat(fits).await.status(), 200);
}

#[actix_web::test]
async fn browsers_get_cors_from_allowed_origins_only() {
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    let preflight = |origin: &'static str| {
        gw.app
            .client
            .request(reqwest::Method::OPTIONS, gw.app.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let res = preflight("https://chat.example.com").await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(support::header(&res, "access-control-allow-origin"), "*");
    assert!(support::header(&res, "access-control-allow-methods").contains("POST"));
    assert_eq!(support::header(&res, "access-control-allow-headers"), "authorization, content-type");
    assert!(res.headers().get("access-control-allow-credentials").is_none());
    let res = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&gw.token)
        .header("origin", "https://chat.example.com")
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a cross-site POST to /v1 is not refused by the admin's origin check");
    assert_eq!(support::header(&res, "access-control-allow-origin"), "*");

    support::set_settings(&gw.app, &[("cors_origins", "https://chat.example.com")]).await;
    let res = preflight("https://chat.example.com").await.unwrap();
    assert_eq!(support::header(&res, "access-control-allow-origin"), "https://chat.example.com");
    assert_eq!(support::header(&res, "vary"), "Origin");
    let res = preflight("https://evil.example.com").await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn billing_endpoints_show_the_pools_credit_and_models_are_cached() {
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.5), ("sk-ok-2-bbbbbbbbbbbbbbbbbbbbb", 4.25)])
        .await;
    let get = |path: &'static str| gw.app.client.get(gw.app.url(path)).bearer_auth(&gw.token).send();
    let sub: serde_json::Value = get("/v1/dashboard/billing/subscription").await.unwrap().json().await.unwrap();
    assert_eq!(sub["hard_limit_usd"], 14.75);
    assert_eq!(sub["object"], "billing_subscription");
    let usage: serde_json::Value = get("/v1/dashboard/billing/usage").await.unwrap().json().await.unwrap();
    assert_eq!(usage["total_usage"], 0.0);
    let res = gw.app.client.get(gw.app.url("/v1/dashboard/billing/subscription")).send().await.unwrap();
    assert_eq!(res.status(), 401, "the billing endpoints need an access key too");

    for _ in 0..3 {
        let models: serde_json::Value = get("/v1/models").await.unwrap().json().await.unwrap();
        assert_eq!(models["data"][0]["id"], "Qwen/Qwen2.5-7B-Instruct");
    }
    assert_eq!(gw.upstream.hits.of("models"), 1, "served from memory for a minute");
    gw.app.clock.advance(std::time::Duration::from_secs(61));
    get("/v1/models").await.unwrap();
    assert_eq!(gw.upstream.hits.of("models"), 2);
}

#[actix_web::test]
async fn the_hot_path_needs_no_database_connection() {
    let gw = gateway(&[("selection_strategy", "least_inflight")]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0), ("sk-ok-2-bbbbbbbbbbbbbbbbbbbbb", 10.0)])
        .await;
    // Hold every connection of the pool: a request that needed one would wait, then fail.
    let pool = gw.app.state.db.clone();
    let held = actix_web::web::block(move || (0..10).map(|_| pool.get().unwrap()).collect::<Vec<_>>()).await.unwrap();
    for _ in 0..30 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    let mut stream = hello();
    stream["stream"] = true.into();
    assert!(read_sse(gw.chat(stream).await).await.ends_with("[DONE]\n\n"));
    drop(held);
    // Once the database is back, nothing of it was lost.
    support::flush_outcomes(&gw.app).await;
    let total = key_state(&gw.app, "sk-ok-1-aaaaaaaaaaaaaaaaaaaaa").await.request_count
        + key_state(&gw.app, "sk-ok-2-bbbbbbbbbbbbbbbbbbbbb").await.request_count;
    assert_eq!(total, 31);
    assert_eq!(request_log(&gw.app).await.len(), 31);
}

#[actix_web::test]
async fn keys_checked_or_disabled_in_the_admin_start_or_stop_being_routed() {
    let gw = gateway(&[]).await;
    gw.app.login().await;
    let ids = support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    assert_eq!(gw.chat(hello()).await.status(), 200);
    let res = gw.app.hx_post(&format!("/admin/keys/{}/disable", ids[0]), &[]).await;
    assert_eq!(res.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gw.app.state.pool.snapshot().paid_keys() == 1 {
        assert!(std::time::Instant::now() < deadline, "the pool reloads after an admin change");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(gw.chat(hello()).await.status(), 503);
}

#[actix_web::test]
async fn a_real_openai_client_library_works_through_keypool() {
    use async_openai::types::chat::{ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs};
    use futures_util::StreamExt;
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    let config =
        async_openai::config::OpenAIConfig::new().with_api_base(gw.app.url("/v1")).with_api_key(gw.token.clone());
    let client = async_openai::Client::with_config(config);
    let request = CreateChatCompletionRequestArgs::default()
        .model("Qwen/Qwen2.5-7B-Instruct")
        .messages([ChatCompletionRequestUserMessageArgs::default().content("hi").build().unwrap().into()])
        .build()
        .unwrap();
    let answer = client.chat().create(request.clone()).await.unwrap();
    assert_eq!(answer.choices[0].message.content.as_deref(), Some("answered by sk-ok-1-aaaaaaaaaaaaaaaaaaaaa"));

    let mut stream = client.chat().create_stream(request).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        text.push_str(chunk.choices[0].delta.content.as_deref().unwrap_or(""));
    }
    assert_eq!(text, "answered by sk-ok-1-aaaaaaaaaaaaaaaaaaaaa");
}

#[actix_web::test]
async fn a_caller_that_goes_away_is_logged_and_leaves_nothing_in_flight() {
    let gw = gateway(&[]).await;
    support::seed_active(&gw.app, &[("sk-slow-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    let gone = gw
        .app
        .client
        .post(gw.app.url("/v1/chat/completions"))
        .bearer_auth(&gw.token)
        .json(&hello())
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the caller gave up before the slow upstream answered");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let metrics = &gw.app.state.metrics;
    while metrics.inflight.load(std::sync::atomic::Ordering::Relaxed) != 0 || request_count(&gw.app).await == 0 {
        assert!(std::time::Instant::now() < deadline, "the abandoned request is accounted for");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = request_log(&gw.app).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(gw.app.state.pool.snapshot().paid.slots[0].inflight.load(std::sync::atomic::Ordering::Relaxed), 0);
}

/// Request-log rows written so far (after a flush).
async fn request_count(app: &TestApp) -> usize {
    support::flush_outcomes(app).await;
    request_log(app).await.len()
}

#[actix_web::test]
async fn a_locked_database_does_not_stop_the_proxy_and_nothing_is_lost() {
    let gw = gateway(&[("selection_strategy", "round_robin"), ("max_attempts", "3")]).await;
    let keys = ["sk-invalid-aaaaaaaaaaaaaaaaaa", "sk-ok-1-bbbbbbbbbbbbbbbbbbbbb", "sk-ok-2-ccccccccccccccccccccc"];
    support::seed_active(&gw.app, &keys.map(|k| (k, 10.0))).await;
    // Another process holds the database: SQLite's write lock, or PostgreSQL's strongest table lock.
    let pool = gw.app.state.db.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        use diesel::connection::SimpleConnection;
        let mut conn = pool.get().unwrap();
        let lock = match &*conn {
            keypool::db::AnyConnection::Sqlite(_) => "BEGIN EXCLUSIVE",
            keypool::db::AnyConnection::Postgresql(_) => "BEGIN; LOCK TABLE keys, request_log IN ACCESS EXCLUSIVE MODE",
        };
        conn.batch_execute(lock).unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        conn.batch_execute("ROLLBACK").unwrap();
    });
    let sqlite = matches!(gw.app.state.backend, keypool::db::Backend::Sqlite);
    locked_rx.recv().unwrap();
    for _ in 0..12 {
        assert_eq!(gw.chat(hello()).await.status(), 200, "served from memory while the database is locked");
    }
    // A write while locked: SQLite gives up after its busy timeout (the batch is kept); PostgreSQL waits.
    let state = gw.app.state.clone();
    let write = actix_web::rt::spawn(async move { keypool::pool::writer::flush(&state.pool, &state.db).await });
    if sqlite {
        assert!(!write.await.unwrap(), "the locked database refused the batch");
        release_tx.send(()).unwrap();
    } else {
        release_tx.send(()).unwrap();
        assert!(write.await.unwrap(), "the waiting batch went in once the lock was gone");
    }
    holder.join().unwrap();
    // Once the lock is gone, everything the proxy learned meanwhile is written.
    support::flush_outcomes(&gw.app).await;
    assert_eq!(key_state(&gw.app, keys[0]).await.status, "invalid");
    assert_eq!(request_log(&gw.app).await.len(), 12);
    let answered = key_state(&gw.app, keys[1]).await.request_count + key_state(&gw.app, keys[2]).await.request_count;
    assert_eq!(answered, 12);
}

#[actix_web::test]
async fn the_request_log_keeps_its_retention_pruned_by_one_instance_an_hour() {
    use keypool::pool::writer::{PRUNE_PERIOD_MS, prune};
    let gw = gateway(&[("request_log_retention_days", "2")]).await;
    support::seed_active(&gw.app, &[("sk-ok-1-aaaaaaaaaaaaaaaaaaaaa", 10.0)]).await;
    for _ in 0..3 {
        assert_eq!(gw.chat(hello()).await.status(), 200);
    }
    support::flush_outcomes(&gw.app).await;
    let (state, start) = (&gw.app.state, gw.app.state.now_ms());
    assert_eq!(prune(&state.pool, &state.db, "a", start).await.unwrap(), None, "the first look starts the clock");
    // Two days and an hour later: those rows are past the retention; a new one is not.
    gw.app.clock.advance(std::time::Duration::from_secs(2 * 86_400 + 3_600));
    assert_eq!(gw.chat(hello()).await.status(), 200);
    support::flush_outcomes(&gw.app).await;
    let now = state.now_ms();
    assert!(now - start >= PRUNE_PERIOD_MS);
    assert_eq!(prune(&state.pool, &state.db, "a", now).await.unwrap(), Some(3));
    assert_eq!(prune(&state.pool, &state.db, "b", now).await.unwrap(), None, "once per period, whoever asks");
    assert_eq!(request_log(&gw.app).await.len(), 1);
}
