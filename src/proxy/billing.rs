//! Helpers for chat clients: the pool's credit in the shape of OpenAI's old billing endpoints (which
//! clients such as ChatGPT-Next-Web read to show remaining credit), and the model list, cached.

use std::sync::Mutex;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use serde_json::json;

use super::Gateway;
use super::auth::Client;
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

/// `GET /v1/user/info` in SiliconFlow's own shape, for the pool rather than one key: the balances of
/// the keys the proxy can route now, summed. `balance` is the gift part, `chargeBalance` the charged
/// part and `totalBalance` both, as decimal strings like SiliconFlow's; chat clients that show a
/// SiliconFlow balance read them.
pub fn user_info(pool: &KeyPool) -> HttpResponse {
    let snapshot = pool.snapshot();
    let total = snapshot.total_balance.max(0.0);
    let charge = snapshot.charge_balance.clamp(0.0, total);
    let gift = total - charge;
    HttpResponse::Ok().json(json!({
        "code": 20000,
        "message": "OK",
        "status": true,
        "data": {
            "id": "keypool",
            "name": "keypool",
            "image": "",
            "email": "",
            "isAdmin": false,
            "balance": format!("{gift:.4}"),
            "status": "normal",
            "introduction": "",
            "role": "",
            "chargeBalance": format!("{charge:.4}"),
            "totalBalance": format!("{total:.4}"),
        }
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

/// A model list narrowed to the models `client` may use (unchanged when it may use every model, or
/// when the answer is not OpenAI's `{"data": [{"id": …}]}`).
pub async fn only_allowed_models(res: HttpResponse, client: &Client, state: &Gateway) -> HttpResponse {
    if !client.limits.restricts_models() {
        return res;
    }
    let (head, body) = res.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        return HttpResponse::BadGateway().finish();
    };
    let Ok(mut list) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return head.set_body(bytes).map_into_boxed_body();
    };
    let runtime = state.pool.runtime();
    let settings = runtime.proxy();
    if let Some(data) = list.get_mut("data").and_then(|d| d.as_array_mut()) {
        data.retain(|m| {
            m.get("id")
                .and_then(|id| id.as_str())
                .is_some_and(|id| client.limits.allows_model(id, settings.is_free_model(id)))
        });
    }
    let mut out = HttpResponse::build(head.status());
    for (name, value) in head.headers() {
        if name != actix_web::http::header::CONTENT_LENGTH {
            out.append_header((name.clone(), value.clone()));
        }
    }
    out.json(list)
}
