//! A SiliconFlow stand-in for `/v1/user/info`, misbehaving the way the real one does. The key says
//! how it behaves:
//! - `sk-ok-<total>-…`: 200 with that total balance (`sk-ok--0.01-…` is negative);
//! - `sk-invalid…`: 401 with a bare JSON string; `sk-banned…`: 403 saying the key is banned;
//! - `sk-limited…`: 429 with Retry-After; `sk-err500…`: 500; `sk-junk…`: 200 with HTML;
//! - `sk-slow…`: answers after 3 s; `sk-flaky…`: 500 the first time, then a balance of 5;
//! - the probe (`POST /v1/chat/completions`) refuses keys holding `badprobe` with 401.
//!
//! Chat completions (what the proxy forwards) answer by key too: `sk-invalid…` 401, `sk-banned…` 403
//! banned, `sk-broke…` 403 insufficient balance, `sk-pay…` 402, `sk-limited…` 429 with `Retry-After: 7`,
//! `sk-err500…` 500, `sk-slow…` a head after 3 s, `sk-sleepy…` after 60 s, `sk-stall…` one SSE chunk then silence, `sk-drop…`
//! two SSE chunks then a broken connection, `sk-trickle…` (streamed) ten chunks 200 ms apart; any other key answers, naming itself in the content, as a
//! JSON completion or (with `"stream": true`) an SSE stream ending in `data: [DONE]`. The model
//! `no-such-model` gets 404 and a body that is not JSON gets 400, whatever the key. `/v1/echo` answers
//! what it received; `/v1/models` a model list.
//!
//! SiliconFlow's per-model answers, for the paid model [`PAID_MODEL`] only (every other model answers):
//! `sk-rpm…` 429 "RPM limit reached" (no Retry-After), `sk-rpd…` 429 "RPD limit reached",
//! `sk-realname…` 403 real-name verification required, `sk-modeloff…` 403 model disabled for the
//! account; keys with no money (`sk-ok-0-…`) get 403 code 30001 for any model but the free ones
//! ([`FREE_MODELS`]); `sk-died…` is valid to a check but 401 to a chat (died since); `sk-region…` 403 "not available in your region" for every model. Their balances
//! (`/v1/user/info`) are 10, but 0 for `sk-ok-0-…`, `sk-broke…` and `sk-pay…`.
//! [`MockUpstream::set_overloaded`] makes every chat answer 429 with `Retry-After: 1` (our IP limited).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;

#[derive(Clone, Default)]
pub struct Hits(Arc<Mutex<HashMap<String, usize>>>);

impl Hits {
    pub fn of(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    fn hit(&self, key: &str) -> usize {
        let mut map = self.0.lock().unwrap();
        let n = map.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }
}

pub struct MockUpstream {
    pub url: String,
    pub hits: Hits,
    /// Every request the mock received, whatever its path or answer.
    received: Arc<std::sync::atomic::AtomicUsize>,
    overloaded: Overloaded,
}

/// The paid model of the per-model answers.
pub const PAID_MODEL: &str = "deepseek-ai/DeepSeek-V3";
/// Models the mock serves on keys without money (also in keypool's default `free_models`).
pub const FREE_MODELS: [&str; 2] = ["Qwen/Qwen2.5-7B-Instruct", "THUDM/glm-4-9b-chat"];

#[derive(Clone, Default)]
struct Overloaded(Arc<std::sync::atomic::AtomicBool>);

impl MockUpstream {
    /// Every chat answers 429 with `Retry-After: 1` (on), or as usual (off).
    pub fn set_overloaded(&self, on: bool) {
        self.overloaded.0.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many requests reached the mock at all (any path, including those it answers 404).
    pub fn received(&self) -> usize {
        self.received.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn balance(total: &str) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "code": 20000, "message": "OK", "status": true,
        "data": { "id": "", "name": "", "balance": "0.00", "chargeBalance": total, "totalBalance": total, "status": "normal" }
    }))
}

async fn user_info(req: HttpRequest, hits: web::Data<Hits>) -> HttpResponse {
    let key = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let n = hits.hit(&key);
    if ["sk-rpm", "sk-rpd", "sk-realname", "sk-modeloff", "sk-region", "sk-died"].iter().any(|p| key.starts_with(p)) {
        return balance("10");
    }
    if key.starts_with("sk-broke") || key.starts_with("sk-pay") {
        return balance("0");
    }
    if let Some(rest) = key.strip_prefix("sk-ok-") {
        let total = if let Some(neg) = rest.strip_prefix('-') {
            format!("-{}", neg.split('-').next().unwrap_or("0"))
        } else {
            rest.split('-').next().unwrap_or("0").to_owned()
        };
        return balance(&total);
    }
    match key.get(..9).unwrap_or("") {
        k if k.starts_with("sk-invali") => HttpResponse::Unauthorized().json("Api key is invalid"),
        k if k.starts_with("sk-banned") => HttpResponse::Forbidden()
            .json(serde_json::json!({"code": 30011, "message": "The API key has been banned", "data": null})),
        k if k.starts_with("sk-limite") => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", "1"))
            .json(serde_json::json!({"code": 50603, "message": "rate limited", "data": null})),
        k if k.starts_with("sk-err500") => {
            HttpResponse::InternalServerError().json(serde_json::json!({"error": {"message": "upstream exploded"}}))
        }
        k if k.starts_with("sk-junk") => HttpResponse::Ok().content_type("text/html").body("<html>maintenance</html>"),
        k if k.starts_with("sk-slow") => {
            actix_web::rt::time::sleep(Duration::from_secs(3)).await;
            balance("1.00")
        }
        k if k.starts_with("sk-flaky") && n == 1 => HttpResponse::InternalServerError().finish(),
        k if k.starts_with("sk-flaky") => balance("5"),
        _ => HttpResponse::Unauthorized().json("Api key is invalid"),
    }
}

/// Chat completions: the probe of the checks, and what the proxy forwards.
async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    hits: web::Data<Hits>,
    overloaded: web::Data<Overloaded>,
) -> HttpResponse {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    hits.hit(&format!("chat {header}"));
    let key = header.strip_prefix("Bearer ").unwrap_or("").to_owned();
    let requested: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let model = requested["model"].as_str().unwrap_or("").to_owned();
    hits.hit(&format!("chat {header} {model}"));
    if overloaded.0.load(std::sync::atomic::Ordering::SeqCst) {
        return HttpResponse::TooManyRequests().insert_header(("Retry-After", "1")).json(
            serde_json::json!({"code": 50603, "message": "Request was rejected due to rate limiting", "data": null}),
        );
    }
    let sf = |code: i64, message: &str| serde_json::json!({"code": code, "message": message, "data": null});
    if model == PAID_MODEL {
        match key.as_str() {
            k if k.starts_with("sk-rpm") => {
                return HttpResponse::TooManyRequests().json(sf(50603, "RPM limit reached for this model"));
            }
            k if k.starts_with("sk-rpd") => {
                return HttpResponse::TooManyRequests().json(sf(50603, "RPD limit reached for this model"));
            }
            k if k.starts_with("sk-realname") => {
                return HttpResponse::Forbidden()
                    .json(sf(30003, "Real-name verification is required to use this model"));
            }
            k if k.starts_with("sk-modeloff") => {
                return HttpResponse::Forbidden().json(sf(30002, "This model is disabled for your account"));
            }
            _ => {}
        }
    }
    if key.starts_with("sk-died") {
        return HttpResponse::Unauthorized().json("Api key is invalid");
    }
    if key.starts_with("sk-region") {
        return HttpResponse::Forbidden().json(sf(30004, "Sorry, this service is not available in your region"));
    }
    if key.starts_with("sk-ok-0-") && !FREE_MODELS.contains(&model.as_str()) {
        return HttpResponse::Forbidden().json(sf(30001, "Sorry, your account balance is insufficient"));
    }
    if key.contains("badprobe") {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": {"message": "invalid api key"}}));
    }
    match key.get(..9).unwrap_or("") {
        k if k.starts_with("sk-invali") => return HttpResponse::Unauthorized().json("Api key is invalid"),
        k if k.starts_with("sk-banned") => {
            return HttpResponse::Forbidden()
                .json(serde_json::json!({"code": 30011, "message": "The API key has been banned", "data": null}));
        }
        k if k.starts_with("sk-broke") => {
            return HttpResponse::Forbidden().json(
                serde_json::json!({"code": 30001, "message": "Sorry, your account balance is insufficient", "data": null}),
            );
        }
        k if k.starts_with("sk-pay") => return HttpResponse::PaymentRequired().json("payment required"),
        k if k.starts_with("sk-limite") => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", "7"))
                .json(serde_json::json!({"code": 50603, "message": "System is too busy now", "data": null}));
        }
        k if k.starts_with("sk-err500") => {
            return HttpResponse::InternalServerError()
                .json(serde_json::json!({"error": {"message": "upstream exploded"}}));
        }
        k if k.starts_with("sk-slow") => actix_web::rt::time::sleep(Duration::from_secs(3)).await,
        // Far slower than any first-byte timeout a test sets (1 s): a wide margin on a loaded machine.
        k if k.starts_with("sk-sleepy") => actix_web::rt::time::sleep(Duration::from_secs(60)).await,
        _ => {}
    }
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": {"message": "body is not JSON"}}));
    };
    let model = request["model"].as_str().unwrap_or("").to_owned();
    if model == "no-such-model" {
        return HttpResponse::NotFound().json(serde_json::json!({"error": {"message": "Model does not exist."}}));
    }
    let content = format!("answered by {key}");
    if key.starts_with("sk-stall") || key.starts_with("sk-drop") || request["stream"] == true {
        // As SiliconFlow's streams do, every chunk carries the running usage.
        let chunk = |text: &str, completion: u32| {
            let frame = serde_json::json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": null}],
                "usage": {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion}
            });
            web::Bytes::from(format!("data: {frame}\n\n"))
        };
        let first = [chunk("answered ", 1), chunk(&format!("by {key}"), 2)];
        let stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>>>> = if key
            .starts_with("sk-stall")
        {
            Box::pin(futures_util::stream::iter([Ok(first[0].clone())]).chain(futures_util::stream::pending()))
        } else if key.starts_with("sk-drop") {
            Box::pin(futures_util::stream::iter(first.into_iter().map(Ok)).chain(futures_util::stream::once(async {
                // Long enough for the first chunks to leave, then the connection breaks.
                actix_web::rt::time::sleep(Duration::from_millis(300)).await;
                Err(actix_web::error::ErrorInternalServerError("connection lost"))
            })))
        } else if key.starts_with("sk-trickle") {
            // Ten chunks 200 ms apart, then the end: a stream that takes two seconds.
            let frames: Vec<web::Bytes> = (0..10)
                .map(|i| chunk(&format!("{i} "), i + 1))
                .chain([web::Bytes::from_static(b"data: [DONE]\n\n")])
                .collect();
            Box::pin(futures_util::stream::iter(frames).then(|f| async move {
                actix_web::rt::time::sleep(Duration::from_millis(200)).await;
                Ok(f)
            }))
        } else {
            let done = web::Bytes::from_static(b"data: [DONE]\n\n");
            Box::pin(futures_util::stream::iter(first.into_iter().chain([done]).map(Ok)))
        };
        return HttpResponse::Ok().content_type("text/event-stream").streaming(stream);
    }
    HttpResponse::Ok().json(serde_json::json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}
    }))
}

/// Answers what it received, for header and query tests.
async fn echo(req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::from(v.to_str().unwrap_or(""))))
        .collect();
    HttpResponse::Ok().insert_header(("set-cookie", "upstream=secret")).json(serde_json::json!({
        "method": req.method().as_str(), "path": req.path(), "query": req.query_string(),
        "headers": headers, "body": String::from_utf8_lossy(&body)
    }))
}

async fn models(hits: web::Data<Hits>) -> HttpResponse {
    hits.hit("models");
    HttpResponse::Ok().json(serde_json::json!({
        "object": "list", "data": [
            {"id": "Qwen/Qwen2.5-7B-Instruct", "object": "model", "created": 0, "owned_by": "mock"},
            {"id": PAID_MODEL, "object": "model", "created": 0, "owned_by": "mock"},
            {"id": "THUDM/glm-4-9b-chat", "object": "model", "created": 0, "owned_by": "mock"}
        ]
    }))
}

/// Starts the mock on its own thread and port (no CORS: browsers are refused, like an API that does not
/// allow them).
pub fn start() -> MockUpstream {
    start_with(false)
}

/// The same mock answering CORS preflights and allowing any origin, so a browser can call it.
pub fn start_allowing_browsers() -> MockUpstream {
    start_with(true)
}

async fn preflight() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .insert_header(("Access-Control-Allow-Headers", "authorization, content-type"))
        .insert_header(("Access-Control-Allow-Methods", "GET, POST"))
        .finish()
}

fn start_with(cors: bool) -> MockUpstream {
    let hits = Hits::default();
    let data = web::Data::new(hits.clone());
    let overloaded = Overloaded::default();
    let overloaded_data = web::Data::new(overloaded.clone());
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let counter = counter.clone();
                // Without CORS there is no preflight answer and no allowed origin: browsers are refused.
                let allow = actix_web::middleware::Condition::new(
                    cors,
                    actix_web::middleware::DefaultHeaders::new().add(("Access-Control-Allow-Origin", "*")),
                );
                App::new()
                    .app_data(data.clone())
                    .app_data(overloaded_data.clone())
                    .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                    .wrap(allow)
                    .wrap_fn(move |req, srv| {
                        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        actix_web::dev::Service::call(srv, req)
                    })
                    .route("/v1/user/info", web::get().to(user_info))
                    .configure(|c| {
                        if cors {
                            c.route("/v1/user/info", web::method(actix_web::http::Method::OPTIONS).to(preflight));
                        }
                    })
                    .route("/v1/chat/completions", web::post().to(chat))
                    .route("/v1/echo", web::route().to(echo))
                    .route("/v1/models", web::get().to(models))
            })
            .workers(2)
            .bind("127.0.0.1:0")
            .unwrap();
            let port = server.addrs()[0].port();
            tx.send(port).unwrap();
            server.run().await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    MockUpstream { url: format!("http://127.0.0.1:{port}"), hits, received, overloaded }
}
