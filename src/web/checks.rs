//! Check jobs from the admin: start (one key, the selection, the filter, all keys, or just-imported
//! keys), the progress panel (polled by htmx), and stop.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::auth::html;
use super::lang::RequestLang;
use super::session::CurrentAdmin;
use crate::checker::StartError;
use crate::db;
use crate::db::keys::CheckScope;
use crate::domain::checks::{CheckParams, RawCheckParams};
use crate::domain::keys::{KeyListQuery, RawKeyListQuery};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::views::checks::panel;
use crate::views::components::{FlashKind, field_message};

/// Starts a job over `scope`; `Some(message)` says why it did not start.
pub async fn start(
    state: &AppState,
    lang: Lang,
    scope: CheckScope,
    params: CheckParams,
    label: &str,
) -> Result<Option<(FlashKind, String)>, AppError> {
    let ctx = crate::checker::context(state).await?;
    let keys = db::run(&state.db, move |conn| Ok(db::keys::ids_for_check(conn, &scope)?)).await?;
    Ok(match state.checker.start(ctx, keys, params, label) {
        Ok(_) => None,
        Err(StartError::AlreadyRunning) => Some((FlashKind::Error, lang.t("checks.already_running").to_owned())),
        Err(StartError::Empty) => Some((FlashKind::Error, lang.t("checks.nothing").to_owned())),
        Err(StartError::Thread(e)) => return Err(AppError::Internal(e)),
    })
}

/// The panel of the current job, swapped out of band when `oob`.
pub fn panel_markup(state: &AppState, lang: Lang, message: Option<(FlashKind, String)>, oob: bool) -> maud::Markup {
    let progress = state.checker.current().map(|j| j.progress());
    panel(lang, progress.as_ref(), message, oob)
}

pub fn panel_response(state: &AppState, lang: Lang, message: Option<(FlashKind, String)>) -> HttpResponse {
    let progress = state.checker.current().map(|j| j.progress());
    let mut res = html(StatusCode::OK, panel(lang, progress.as_ref(), message, false));
    if progress.is_some_and(|p| !p.running) {
        // The table shows the new states once the job is over.
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("hx-trigger"),
            actix_web::http::header::HeaderValue::from_static("keys-changed"),
        );
    }
    res
}

#[derive(Deserialize)]
pub struct StartForm {
    /// `key`, `selection`, `matching` or `all`.
    scope: String,
    id: Option<i64>,
    #[serde(flatten)]
    params: RawCheckParams,
    #[serde(flatten)]
    view: RawKeyListQuery,
}

/// `POST /admin/checks`.
pub async fn post_checks(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<StartForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let params = match CheckParams::parse(&form.params) {
        Ok(p) => p,
        Err(errors) => {
            let text: Vec<String> = errors.0.iter().map(|e| field_message(lang, e)).collect();
            let mut res = panel_response(&state, lang, Some((FlashKind::Error, text.join(" "))));
            *res.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(res);
        }
    };
    let (scope, label) = match (form.scope.as_str(), form.id) {
        ("key", Some(id)) => (CheckScope::One(id), "checks.scope.key"),
        ("selection", _) => (CheckScope::SelectionOf(admin.id), "checks.scope.selection"),
        ("matching", _) => (CheckScope::Matching(KeyListQuery::parse(&form.view).filter), "checks.scope.matching"),
        ("all", _) => (CheckScope::AllEnabled, "checks.scope.all"),
        _ => return Err(AppError::BadRequest(format!("unknown check scope `{}`", form.scope))),
    };
    tracing::info!(admin = %admin.username, scope = %form.scope, "check job requested");
    let message = start(&state, lang, scope, params, lang.t(label)).await?;
    Ok(panel_response(&state, lang, message))
}

/// `GET /admin/checks/panel`.
pub async fn get_panel(RequestLang(lang): RequestLang, state: web::Data<AppState>) -> HttpResponse {
    panel_response(&state, lang, None)
}

/// `POST /admin/checks/stop`: stops the running job and answers once it has written its results.
pub async fn post_stop(RequestLang(lang): RequestLang, state: web::Data<AppState>) -> HttpResponse {
    if let Some(job) = state.checker.current() {
        job.request_stop();
        job.wait_finished(Duration::from_secs(5)).await;
    }
    panel_response(&state, lang, None)
}
