//! `/healthz`, `/metrics`, and the 404 and 405 answers.

use actix_web::{HttpResponse, web};

use crate::db;
use crate::error::AppError;
use crate::state::AppState;

/// 200 when the database answers, 503 otherwise.
pub async fn get_healthz(state: web::Data<AppState>) -> HttpResponse {
    if db::ping(&state.db).await {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "database": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "database": "unreachable" }))
    }
}

/// Prometheus text format. The proxy's counters are added with the proxy.
pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    let up = u8::from(db::ping(&state.db).await);
    let body = format!(
        "# HELP keypool_build_info Build information.\n# TYPE keypool_build_info gauge\n\
         keypool_build_info{{version=\"{}\"}} 1\n\
         # HELP keypool_database_up Whether the database answers.\n# TYPE keypool_database_up gauge\n\
         keypool_database_up {up}\n",
        env!("CARGO_PKG_VERSION")
    );
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body)
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().finish()
}
