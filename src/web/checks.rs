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
use crate::views::checks::{ClientJob, PanelOpts, client_panel, panel, panel_with};
use crate::views::components::{FlashKind, field_message};

/// What a start said: nothing (the job runs), or why not; `busy` when another job runs.
#[derive(Default)]
pub struct StartAnswer {
    pub message: Option<(FlashKind, String)>,
    pub busy: bool,
}

/// Starts a job over `scope`.
pub async fn start(
    state: &AppState,
    lang: Lang,
    scope: CheckScope,
    params: CheckParams,
    label: &str,
) -> Result<StartAnswer, AppError> {
    let ctx = state.job_context();
    let codec = state.codec.clone();
    let keys = db::run(&state.db, move |conn| Ok(db::keys::ids_for_check(conn, &codec, &scope)?)).await?;
    Ok(match state.checker.start(ctx, keys, params, label) {
        Ok(_) => StartAnswer::default(),
        Err(StartError::AlreadyRunning) => StartAnswer { message: Some(busy_message(lang)), busy: true },
        Err(StartError::Empty) => {
            StartAnswer { message: Some((FlashKind::Error, lang.t("checks.nothing").to_owned())), busy: false }
        }
        Err(StartError::Thread(e)) => return Err(AppError::Internal(e)),
    })
}

/// Said to whoever tried to start a check while another runs (the panel then shows the running one).
fn busy_message(lang: Lang) -> (FlashKind, String) {
    (FlashKind::Error, lang.t("checks.busy.not_started").to_owned())
}

/// The panel of the current job, swapped out of band when `oob`.
pub fn panel_markup(state: &AppState, lang: Lang, message: Option<(FlashKind, String)>, oob: bool) -> maud::Markup {
    let progress = state.checker.current().map(|j| j.progress());
    panel(lang, progress.as_ref(), message, oob)
}

/// The panel answering a start, out of band when `oob`: scrolled into view by `app.js`.
pub fn started_panel(state: &AppState, lang: Lang, answer: StartAnswer, oob: bool) -> maud::Markup {
    let progress = state.checker.current().map(|j| j.progress());
    let opts = PanelOpts { busy: answer.busy, scroll: true };
    panel_with(lang, progress.as_ref(), answer.message, oob, opts)
}

pub fn panel_response(state: &AppState, lang: Lang, message: Option<(FlashKind, String)>) -> HttpResponse {
    panel_response_with(state, lang, message, PanelOpts::default())
}

fn panel_response_with(
    state: &AppState,
    lang: Lang,
    message: Option<(FlashKind, String)>,
    opts: PanelOpts,
) -> HttpResponse {
    // One snapshot for the markup and the trigger, so a job ending in between cannot lose the refresh.
    let progress = state.checker.current().map(|j| j.progress());
    let mut res = html(StatusCode::OK, panel_with(lang, progress.as_ref(), message, false, opts));
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
    /// Run on the server even in client request mode (the fallback the page offers).
    force_server: Option<String>,
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
    let settings = state.settings();
    if settings.client_request_mode && form.force_server.is_none() {
        // Client request mode: the browser makes the calls; it gets the keys and reports raw answers.
        let codec = state.codec.clone();
        let keys = db::run(&state.db, move |conn| Ok(db::keys::ids_for_check(conn, &codec, &scope)?)).await?;
        if keys.is_empty() {
            return Ok(panel_response(&state, lang, Some((FlashKind::Error, lang.t("checks.nothing").to_owned()))));
        }
        let job = ClientJob {
            upstream: state.effective_upstream(&settings.upstream_url).to_owned(),
            keys,
            concurrency: params.concurrency,
            interval: params.interval,
            retries: params.retries,
            retry_interval_ms: params.retry_interval.as_millis() as u64,
            rate: params.rate,
            scope: form.scope.clone(),
            id: form.id,
            filter_status: form.view.status.clone(),
            filter_q: form.view.q.clone(),
        };
        return Ok(html(StatusCode::OK, client_panel(lang, &job)));
    }
    let answer = start(&state, lang, scope, params, label).await?;
    let opts = PanelOpts { busy: answer.busy, scroll: true };
    Ok(panel_response_with(&state, lang, answer.message, opts))
}

/// `POST /admin/checks/client-results`: raw answers the browser got from the upstream, classified
/// here by the same rules as server checks (the browser's word is only the HTTP status and body).
pub async fn post_client_results(
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    body: web::Json<ClientResults>,
) -> Result<HttpResponse, AppError> {
    let results = body.into_inner().results;
    if results.len() > 1000 {
        return Err(AppError::BadRequest("at most 1000 results per post".into()));
    }
    let mut outcomes = Vec::with_capacity(results.len());
    for r in results {
        if r.body.len() > 64 * 1024 {
            return Err(AppError::BadRequest(format!("answer of key {} is too large", r.id)));
        }
        let outcome = match r.status {
            0 => crate::domain::checks::CheckOutcome::Transient(crate::domain::reason::Reason::Browser {
                detail: r.body.chars().take(200).collect(),
            }),
            100..=599 => crate::domain::checks::classify(r.status, r.body.as_bytes()),
            other => return Err(AppError::BadRequest(format!("status {other} is not an HTTP status"))),
        };
        outcomes.push((r.id, outcome));
    }
    let settings = state.settings();
    let min_balance = settings.min_balance;
    let mut counts = std::collections::BTreeMap::new();
    for (_, o) in &outcomes {
        *counts.entry(o.class(min_balance).as_str()).or_insert(0usize) += 1;
    }
    let now = state.now_ms();
    let ids: Vec<i64> = outcomes.iter().map(|(id, _)| *id).collect();
    let codec = state.codec.clone();
    db::run(&state.db, move |conn| {
        // Only keys that exist: an id from a stale page is ignored, not an error.
        let known: std::collections::HashSet<i64> =
            db::keys::ids_for_check(conn, &codec, &CheckScope::Ids(ids))?.into_iter().map(|(id, _)| id).collect();
        let outcomes: Vec<_> = outcomes.into_iter().filter(|(id, _)| known.contains(id)).collect();
        Ok(db::checks::record(conn, &outcomes, min_balance, now)?)
    })
    .await?;
    tracing::info!(admin = %admin.username, ?counts, "client check results recorded");
    Ok(HttpResponse::Ok().json(counts))
}

#[derive(Deserialize)]
pub struct ClientResults {
    results: Vec<ClientResult>,
}

#[derive(Deserialize)]
pub struct ClientResult {
    id: i64,
    /// The HTTP status the browser got; 0 when the request failed (CORS, network, timeout).
    status: u16,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
pub struct PanelQuery {
    /// Set on the polls of a panel that refused a start: it keeps saying so while the job runs.
    busy: Option<String>,
}

/// `GET /admin/checks/panel`.
pub async fn get_panel(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    q: web::Query<PanelQuery>,
) -> HttpResponse {
    let running = state.checker.current().is_some_and(|j| j.progress().running);
    if q.busy.is_some() && running {
        return panel_response_with(&state, lang, Some(busy_message(lang)), PanelOpts { busy: true, scroll: false });
    }
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
