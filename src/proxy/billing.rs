//! Helpers for chat clients: the pool's credit in the shape of OpenAI's old billing endpoints (which
//! clients such as ChatGPT-Next-Web read to show remaining credit), and the model list, cached.

use std::sync::Mutex;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use serde_json::json;

use crate::pool::KeyPool;

/// How long a model list is served from memory.
pub const MODELS_TTL_MS: i64 = 60_000;

/// `GET /v1/dashboard/billing/subscription`: the hard limit is the total balance of the keys the
/// proxy can route now, so `hard_limit_usd - total_usage / 100` is the pool's remaining credit.
pub fn subscription(pool: &KeyPool) -> HttpResponse {
    let snapshot = pool.snapshot();
    let total = (snapshot.total_balance * 100.0).round() / 100.0;
    HttpResponse::Ok().json(json!({
        "object": "billing_subscription",
        "has_payment_method": true,
        "soft_limit_usd": total,
        "hard_limit_usd": total,
        "system_hard_limit_usd": total,
        "access_until": 0,
        "plan": { "title": "keypool", "id": "keypool" },
        "keypool": { "usable_keys": snapshot.paid_keys(), "total_balance": total }
    }))
}

/// `GET /v1/dashboard/billing/usage`: the balance above is what is left, so the usage is 0.
pub fn usage() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "object": "list", "total_usage": 0.0, "daily_costs": [] }))
}

/// The last good `GET /v1/models` answer.
#[derive(Default)]
pub struct ModelsCache {
    entry: Mutex<Option<(i64, String, Bytes)>>,
}

impl ModelsCache {
    pub fn get(&self, now: i64) -> Option<HttpResponse> {
        let entry = self.entry.lock().ok()?;
        let (at, content_type, body) = entry.as_ref()?;
        (now - at < MODELS_TTL_MS).then(|| {
            HttpResponse::Ok()
                .content_type(content_type.as_str())
                .insert_header(("x-keypool-cache", "hit"))
                .body(body.clone())
        })
    }

    pub fn put(&self, now: i64, content_type: &str, body: Bytes) {
        if let Ok(mut entry) = self.entry.lock() {
            *entry = Some((now, content_type.to_owned(), body));
        }
    }
}
