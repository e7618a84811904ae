//! The OpenAI-compatible `/v1/*` gateway. Today it authenticates access keys (in memory) and answers
//! in OpenAI's error shape; forwarding to upstream keys arrives with the key pool.

pub mod auth;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// An error in OpenAI's JSON shape: `{"error":{"message","type","code"}}`.
pub fn openai_error(status: StatusCode, message: &str, kind: &str, code: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "message": message, "type": kind, "code": code } }))
}

/// Any method on `/v1/*`.
pub async fn forward(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(crate::domain::access_token::from_authorization) else {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "Missing access key: send `Authorization: Bearer <access key>` (create one in keypool's settings).",
            "invalid_request_error",
            "missing_api_key",
        );
    };
    if !state.access_keys.authenticate(token, state.now_ms()) {
        return openai_error(
            StatusCode::UNAUTHORIZED,
            "Unknown or revoked access key.",
            "invalid_request_error",
            "invalid_api_key",
        );
    }
    let mut res = openai_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "No upstream key is available: the pool has no usable SiliconFlow key yet.",
        "service_unavailable",
        "no_available_key",
    );
    res.headers_mut()
        .insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from_static("30"));
    res
}
