//! The dashboard, keys, guest and docs pages (placeholders until their features land), `/healthz`,
//! `/metrics` and the 404 page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::html;
use super::lang::RequestLang;
use super::session::CurrentAdmin;
use crate::db;
use crate::error::AppError;
use crate::state::AppState;
use crate::views::layout::{Nav, PageContext};
use crate::views::placeholder::coming_page;

fn admin_page(
    req: &HttpRequest,
    lang: crate::i18n::Lang,
    admin: &CurrentAdmin,
    nav: Nav,
    title: &str,
    note: &str,
) -> HttpResponse {
    let path = super::path_and_query(req);
    let ctx = PageContext { lang, nav, admin: Some(&admin.username), path: &path };
    html(StatusCode::OK, coming_page(&ctx, title, note))
}

pub async fn get_dashboard(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    admin: web::ReqData<CurrentAdmin>,
) -> HttpResponse {
    admin_page(&req, lang, &admin, Nav::Dashboard, "dashboard.title", "dashboard.coming")
}

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
