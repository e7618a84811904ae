//! 密钥管理 / Keys: the table (page or htmx fragment), import, selection, bulk actions and export.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::html;
use super::lang::RequestLang;
use super::session::CurrentAdmin;
use crate::db;
use crate::domain::export::ExportRequest;
use crate::domain::keys::{ImportOutcome, KeyListQuery, KeyStatus, MAX_IMPORT_BYTES, RawKeyListQuery, parse_import};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::views::components::{FlashKind, field_message};
use crate::views::keys::{KeyTable, export_refused, import_result, import_too_large, keys_page, keys_table_swap};
use crate::views::layout::{Nav, PageContext};

async fn load_table(
    state: &AppState,
    admin_id: i64,
    query: KeyListQuery,
    flash: Option<(FlashKind, String)>,
) -> Result<KeyTable, AppError> {
    let codec = state.codec.clone();
    Ok(db::run(&state.db, move |conn| {
        let mut query = query;
        let per_status = db::keys::count_by_status(conn)?;
        let total = per_status.iter().map(|(_, n)| n).sum();
        let unchecked = per_status.iter().find(|(s, _)| *s == KeyStatus::Unchecked).map_or(0, |(_, n)| *n);
        let check_failed = if unchecked > 0 { db::keys::count_check_failed(conn)? } else { 0 };
        // Without a search the counts come from the trigger-kept table; a search counts in the same
        // scan that finds its page.
        let known = match query.filter.status {
            _ if query.filter.search.is_some() => None,
            Some(status) => {
                let all = per_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                Some(match query.filter.check_failed {
                    Some(true) => check_failed,
                    Some(false) => all - check_failed,
                    None => all,
                })
            }
            None => Some(total),
        };
        let (rows, matching) = match known {
            Some(matching) => {
                // A page past the end (after a delete, or an old link) shows the last page instead.
                query.page = query.page.min(query.page_count(matching));
                (db::keys::list_page(conn, &codec, admin_id, &query, matching)?, matching)
            }
            None => match db::keys::search_page(conn, &codec, admin_id, &query)? {
                (rows, _) if rows.is_empty() && query.page > 1 => {
                    let matching = db::keys::count_matching(conn, &codec, &query.filter)?;
                    query.page = query.page.min(query.page_count(matching));
                    (db::keys::list_page(conn, &codec, admin_id, &query, matching)?, matching)
                }
                found => found,
            },
        };
        let selected = db::keys::count_selected(conn, admin_id)?;
        Ok(KeyTable { query, rows, matching, total, per_status, check_failed, selected, flash })
    })
    .await?)
}

fn table_response(lang: Lang, table: &KeyTable) -> HttpResponse {
    html(StatusCode::OK, keys_table_swap(lang, table))
}

/// `GET /admin/keys`: the page, or the table fragment for htmx (but the full page when htmx restores
/// history it has not cached).
pub async fn get_keys(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    raw: web::Query<RawKeyListQuery>,
) -> Result<HttpResponse, AppError> {
    let table = load_table(&state, admin.id, KeyListQuery::parse(&raw), None).await?;
    let restoring = req.headers().contains_key("hx-history-restore-request");
    if super::is_htmx(&req) && !restoring {
        return Ok(table_response(lang, &table));
    }
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Keys, admin: Some(&admin.username), path: &path };
    let check = state.checker.current().map(|j| j.progress());
    Ok(html(StatusCode::OK, keys_page(&ctx, &table, check.as_ref())))
}

#[derive(Deserialize)]
pub struct SelectionForm {
    action: String,
    #[serde(default)]
    ids: String,
    #[serde(flatten)]
    view: RawKeyListQuery,
}

/// `POST /admin/keys/selection`: select or unselect rows, the page, every matching key, or nothing.
pub async fn post_selection(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<SelectionForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let query = KeyListQuery::parse(&form.view);
    let ids: Vec<i64> = form.ids.split(',').filter_map(|s| s.trim().parse().ok()).take(1000).collect();
    let admin_id = admin.id;
    let filter = query.filter.clone();
    let action = form.action;
    let codec = state.codec.clone();
    db::run_as(&state.db, move |conn| {
        match action.as_str() {
            "select" | "select_page" => db::keys::set_selected(conn, admin_id, &ids, true)?,
            "unselect" | "unselect_page" => db::keys::set_selected(conn, admin_id, &ids, false)?,
            "select_all" => db::keys::select_matching(conn, &codec, admin_id, &filter)?,
            "clear" => db::keys::clear_selection(conn, admin_id)?,
            other => return Err(AppError::BadRequest(format!("unknown selection action `{other}`"))),
        };
        Ok(())
    })
    .await?;
    Ok(table_response(lang, &load_table(&state, admin.id, query, None).await?))
}

#[derive(Deserialize)]
pub struct BulkForm {
    action: String,
    #[serde(flatten)]
    view: RawKeyListQuery,
}

/// `POST /admin/keys/bulk`: delete, disable or enable the selection; or delete every invalid key.
pub async fn post_bulk(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<BulkForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let query = KeyListQuery::parse(&form.view);
    let admin_id = admin.id;
    let now = state.now_ms();
    let action = form.action.clone();
    let (count, message) = db::run_as(&state.db, move |conn| {
        use db::keys::KeyTarget::SelectionOf;
        Ok(match action.as_str() {
            "delete" => (db::keys::delete_selected(conn, admin_id)?, "keys.bulk.deleted"),
            "disable" => (db::keys::set_disabled(conn, SelectionOf(admin_id), true, now)?, "keys.bulk.disabled"),
            "enable" => (db::keys::set_disabled(conn, SelectionOf(admin_id), false, now)?, "keys.bulk.enabled"),
            "delete_invalid" => (db::keys::delete_invalid(conn)?, "keys.bulk.deleted"),
            other => return Err(AppError::BadRequest(format!("unknown bulk action `{other}`"))),
        })
    })
    .await?;
    catch_up_now(&state).await;
    tracing::info!(admin = %admin.username, action = %form.action, count, "bulk key action");
    let flash = Some((FlashKind::Success, lang.tf(message, &[("count", &count.to_string())])));
    Ok(table_response(lang, &load_table(&state, admin.id, query, flash).await?))
}

#[derive(Deserialize)]
pub struct KeyActionForm {
    /// `detail` when the key's own page posts.
    from: Option<String>,
    #[serde(flatten)]
    view: RawKeyListQuery,
}

/// A redirect htmx follows as a page load (`HX-Redirect`), or a plain 303 without script.
fn redirect(req: &HttpRequest, to: &str) -> HttpResponse {
    if super::is_htmx(req) {
        HttpResponse::Ok().insert_header(("HX-Redirect", to)).finish()
    } else {
        HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
    }
}

/// `POST /admin/keys/{id}/{action}` with action `delete`, `disable` or `enable`.
pub async fn post_key_action(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    path: web::Path<(i64, String)>,
    form: web::Form<KeyActionForm>,
) -> Result<HttpResponse, AppError> {
    let (id, action) = path.into_inner();
    let form = form.into_inner();
    let query = KeyListQuery::parse(&form.view);
    let now = state.now_ms();
    let act = action.clone();
    let (count, message) = db::run_as(&state.db, move |conn| {
        use db::keys::KeyTarget::One;
        Ok(match act.as_str() {
            "delete" => (db::keys::delete_one(conn, id)?, "keys.bulk.deleted"),
            "disable" => (db::keys::set_disabled(conn, One(id), true, now)?, "keys.bulk.disabled"),
            "enable" => (db::keys::set_disabled(conn, One(id), false, now)?, "keys.bulk.enabled"),
            _ => return Err(AppError::NotFound),
        })
    })
    .await?;
    catch_up_now(&state).await;
    tracing::info!(admin = %admin.username, %action, key_id = id, "key action");
    if form.from.as_deref() == Some("detail") {
        // From the key's page: back to it, or to the list as it was filtered once the key is gone.
        let list = query.to_query_string();
        let to = if action == "delete" { format!("/admin/keys?{list}") } else { format!("/admin/keys/{id}?{list}") };
        return Ok(redirect(&req, &to));
    }
    let flash = Some((FlashKind::Success, lang.tf(message, &[("count", &count.to_string())])));
    Ok(table_response(lang, &load_table(&state, admin.id, query, flash).await?))
}

/// This instance's proxy takes an admin's change at once (others within a writer tick).
async fn catch_up_now(state: &AppState) {
    if let Err(e) = crate::pool::writer::catch_up(&state.pool, &state.db, state.now_ms()).await {
        tracing::warn!(error = %e, "could not read key changes");
    }
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    keys: String,
    #[serde(default)]
    source: String,
    /// Check the added keys right away (the page's checkbox, on by default).
    check_now: Option<String>,
    #[serde(flatten)]
    params: crate::domain::checks::RawCheckParams,
}

/// Parses (on a blocking thread: 20 MB of text takes a moment) and stores an import in one transaction.
async fn import_text(state: &AppState, text: String, source: Option<String>) -> Result<ImportOutcome, AppError> {
    let now = state.now_ms();
    let codec = state.codec.clone();
    Ok(db::run(&state.db, move |conn| Ok(db::keys::import(conn, &codec, parse_import(&text), source.as_deref(), now)?))
        .await?)
}

/// `POST /admin/keys/import`: form field `keys` (the page's file picker loads a `.txt` into it), or a
/// `text/plain` body. Over 20 MB of text is refused with a message and nothing stored.
pub async fn post_import(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    // Read by hand so an oversized body gets our message (room is left for URL encoding).
    let limit = MAX_IMPORT_BYTES * 3 + 64 * 1024;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = futures_util::StreamExt::next(&mut payload).await {
        let chunk = chunk.map_err(|e| AppError::from_payload(&e))?;
        if body.len() + chunk.len() > limit {
            return Ok(html(StatusCode::PAYLOAD_TOO_LARGE, import_too_large(lang)));
        }
        body.extend_from_slice(&chunk);
    }
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (text, source, check) = if content_type.starts_with("text/plain") {
        (String::from_utf8_lossy(&body).into_owned(), None, None)
    } else {
        let form: ImportForm = serde_urlencoded::from_bytes(&body).map_err(|e| AppError::BadRequest(e.to_string()))?;
        let source = Some(form.source.trim().chars().take(64).collect::<String>()).filter(|s| !s.is_empty());
        let check = form
            .check_now
            .is_some()
            .then(|| crate::domain::checks::CheckParams::parse(&form.params).unwrap_or_default());
        (form.keys, source, check)
    };
    if text.len() > MAX_IMPORT_BYTES {
        return Ok(html(StatusCode::PAYLOAD_TOO_LARGE, import_too_large(lang)));
    }
    let summary = import_text(&state, text, source).await?;
    tracing::info!(admin = %admin.username, added = summary.added, present = summary.present, rejected = summary.rejected.len(), "keys imported");
    let panel = match (check, summary.new_ids.is_empty()) {
        (Some(params), false) => {
            let scope = db::keys::CheckScope::Ids(summary.new_ids.clone());
            let answer = super::checks::start(&state, lang, scope, params, "checks.scope.imported").await?;
            // Out of band, so the import's answer stays where it is.
            Some(super::checks::started_panel(&state, lang, answer, true))
        }
        _ => None,
    };
    let mut res = html(StatusCode::OK, maud::html! { (import_result(lang, &summary)) @if let Some(p) = panel { (p) } });
    res.headers_mut()
        .insert(header::HeaderName::from_static("hx-trigger"), header::HeaderValue::from_static("keys-changed"));
    Ok(res)
}

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    scope: String,
    min_balance: Option<String>,
    with_balance: Option<String>,
    sep: Option<String>,
    /// The page's form sends `sep=custom` with the text here.
    custom_sep: Option<String>,
}

impl ExportQuery {
    fn request(&self, lang: Lang) -> Result<ExportRequest, AppError> {
        let sep = crate::domain::export::pick_separator(self.sep.as_deref(), self.custom_sep.as_deref());
        ExportRequest::parse(&self.scope, self.min_balance.as_deref(), self.with_balance.as_deref(), sep)
            .map_err(|e| AppError::BadRequest(field_message(lang, &e)))
    }
}

/// How many keys an export would hold, and the message refusing it when none.
async fn export_count(
    state: &AppState,
    lang: Lang,
    request: &ExportRequest,
    admin_id: i64,
) -> Result<(i64, Option<&'static str>), AppError> {
    let scope = request.scope;
    let count = db::run(&state.db, move |conn| Ok(db::keys::count_export(conn, scope, admin_id)?)).await?;
    let refusal = match (count, scope) {
        (0, crate::domain::export::ExportScope::Selection) => Some(lang.t("keys.ux.export_empty_selection")),
        (0, _) => Some(lang.t("keys.ux.export_empty")),
        _ => None,
    };
    Ok((count, refusal))
}

const EXPORT_COUNT_HEADER: &str = "x-export-count";

/// `GET /admin/keys/export`: a streamed `.txt` download (the page's "copy" reads the same download,
/// its count in `X-Export-Count`). An empty scope is refused (422) with a message: a page for a
/// browser without script, the message alone for the page's script (`HX-Request`), never an empty
/// file.
pub async fn get_export(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, AppError> {
    let request = q.request(lang)?;
    let (count, refusal) = export_count(&state, lang, &request, admin.id).await?;
    if let Some(message) = refusal {
        if super::is_htmx(&req) {
            return Ok(html(
                StatusCode::UNPROCESSABLE_ENTITY,
                crate::views::components::flash(FlashKind::Error, message),
            ));
        }
        let path = super::path_and_query(&req);
        let ctx = PageContext { lang, nav: Nav::Keys, admin: Some(&admin.username), path: &path };
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, export_refused(&ctx, message)));
    }
    let mut res = export_response(&state, request, admin.id).await?;
    res.headers_mut().insert(header::HeaderName::from_static(EXPORT_COUNT_HEADER), header::HeaderValue::from(count));
    Ok(res)
}

/// `GET /admin/keys/export/count` (the export's parameters): `{"count": n}`, or 422 with the message
/// refusing an empty scope. The page's script asks before a download starts, so an empty scope says
/// why instead of saving an empty file, and a full one says how many keys it holds.
pub async fn get_export_count(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, AppError> {
    let request = q.request(lang)?;
    let (count, refusal) = export_count(&state, lang, &request, admin.id).await?;
    let status = if refusal.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok(HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "count": count, "message": refusal })))
}

/// Streams an export as a `.txt` download, read in slices on a blocking thread; shared with the
/// guest page's export. The first slice is read before answering, so a database failure then is an
/// error status; a later one cuts the download off (no final chunk), so it shows as failed.
pub async fn export_response(
    state: &AppState,
    request: ExportRequest,
    admin_id: i64,
) -> Result<HttpResponse, AppError> {
    let file_name = request.file_name(state.now_ms());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, String>>(8);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<(), AppError>>();
    let pool = state.db.clone();
    let codec = state.codec.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = match pool.get() {
            Ok(conn) => conn,
            Err(e) => {
                let _ = started_tx.send(Err(db::DbError::from(e).into()));
                return;
            }
        };
        let mut started = Some(started_tx);
        let result = db::keys::export_each(&mut conn, &codec, &request, admin_id, |piece| {
            if let Some(started) = started.take() {
                let _ = started.send(Ok(()));
            }
            tx.blocking_send(Ok(web::Bytes::from(piece))).is_ok()
        });
        match (result, started) {
            (Ok(_), Some(started)) => drop(started.send(Ok(()))),
            (Err(e), Some(started)) => drop(started.send(Err(e.into()))),
            (Err(e), None) => {
                let e = db::DbError::from(e);
                tracing::error!(error = %crate::error::chain(&e), "export failed mid-way");
                let _ = tx.blocking_send(Err(e.to_string()));
            }
            (Ok(_), None) => {}
        }
    });
    started_rx.await.map_err(|e| AppError::Internal(e.to_string()))??;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk.map_err(actix_web::error::ErrorInternalServerError), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}
