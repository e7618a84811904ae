//! A SiliconFlow stand-in for `/v1/user/info`, misbehaving the way the real one does. The key says
//! how it behaves:
//! - `sk-ok-<total>-…`: 200 with that total balance (`sk-ok--0.01-…` is negative);
//! - `sk-invalid…`: 401 with a bare JSON string; `sk-banned…`: 403 saying the key is banned;
//! - `sk-limited…`: 429 with Retry-After; `sk-err500…`: 500; `sk-junk…`: 200 with HTML;
//! - `sk-slow…`: answers after 3 s; `sk-flaky…`: 500 the first time, then a balance of 5;
//! - the probe (`POST /v1/chat/completions`) refuses keys holding `badprobe` with 401.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

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

/// The probe: a one-token chat completion; keys holding `badprobe` are refused as invalid.
async fn chat(req: HttpRequest, hits: web::Data<Hits>) -> HttpResponse {
    let key = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    hits.hit(&format!("chat {key}"));
    if key.contains("badprobe") {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": {"message": "invalid api key"}}));
    }
    HttpResponse::Ok().json(serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "h"}}]}))
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
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                // Without CORS there is no preflight answer and no allowed origin: browsers are refused.
                let allow = actix_web::middleware::Condition::new(
                    cors,
                    actix_web::middleware::DefaultHeaders::new().add(("Access-Control-Allow-Origin", "*")),
                );
                App::new()
                    .app_data(data.clone())
                    .wrap(allow)
                    .route("/v1/user/info", web::get().to(user_info))
                    .configure(|c| {
                        if cors {
                            c.route("/v1/user/info", web::method(actix_web::http::Method::OPTIONS).to(preflight));
                        }
                    })
                    .route("/v1/chat/completions", web::post().to(chat))
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
    MockUpstream { url: format!("http://127.0.0.1:{port}"), hits }
}
