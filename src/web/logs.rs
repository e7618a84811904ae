//! 请求日志 / Request log: the page (or its table fragment for htmx) and the streamed CSV export.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::auth::html;
use super::lang::RequestLang;
use super::session::CurrentAdmin;
use crate::db;
use crate::domain::logs::{CSV_HEADER, LogQuery, PAGE_SIZE, RawLogQuery, csv_row};
use crate::error::AppError;
use crate::state::AppState;
use crate::views::components::field_message;
use crate::views::layout::{Nav, PageContext};
use crate::views::logs::{LogChoices, LogTable, logs_page, logs_table};

/// Models offered by the filter at most.
const MODEL_CHOICES: i64 = 200;

/// Rows per slice of the CSV export (one query each).
const EXPORT_SLICE: i64 = 5_000;

/// `GET /admin/logs`: newest first, filtered by the query parameters, 50 rows a page (keyset: `before`).
pub async fn get_logs(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    raw: web::Query<RawLogQuery>,
) -> Result<HttpResponse, AppError> {
    let (query, errors) = LogQuery::parse(&raw);
    let now = state.now_ms();
    let restoring = req.headers().contains_key("hx-history-restore-request");
    let fragment = super::is_htmx(&req) && !restoring;
    let q = query.clone();
    let ((mut rows, searched_to), choices) = db::run(&state.db, move |conn| {
        let plan = db::logs::plan(conn, &q.filter, now)?;
        let rows = db::logs::bounded_page(conn, &plan, q.before, PAGE_SIZE + 1)?;
        let choices = if fragment {
            None
        } else {
            Some(LogChoices {
                access_keys: db::logs::access_keys(conn)?,
                models: db::logs::models(conn, MODEL_CHOICES)?,
            })
        };
        Ok((rows, choices))
    })
    .await?;
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let searched = searched_to.filter(|_| !more).map(|to| (to, db::logs::PAGE_SCAN));
    let table = LogTable { query, rows, more, searched, errors };
    match choices {
        None => Ok(html(StatusCode::OK, logs_table(lang, &table))),
        Some(choices) => {
            let path = super::path_and_query(&req);
            let ctx = PageContext { lang, nav: Nav::Logs, admin: Some(&admin.username), path: &path };
            Ok(html(StatusCode::OK, logs_page(&ctx, &table, &choices)))
        }
    }
}

/// `GET /admin/logs/export`: the filtered rows as CSV, newest first, streamed in keyset slices (constant
/// memory). The first slice is read before answering, so a database failure is an error status rather
/// than an empty download.
pub async fn get_logs_export(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    raw: web::Query<RawLogQuery>,
) -> Result<HttpResponse, AppError> {
    let (query, errors) = LogQuery::parse(&raw);
    if let Some(e) = errors.0.first() {
        return Err(AppError::BadRequest(field_message(lang, e)));
    }
    let now = state.now_ms();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, String>>(8);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<Result<(), AppError>>();
    let pool = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let opened = pool.get().map_err(|e| AppError::from(db::DbError::from(e))).and_then(|mut conn| {
            let plan = db::logs::plan(&mut conn, &query.filter, now)?;
            let first = db::logs::page(&mut conn, &plan, None, EXPORT_SLICE)?;
            Ok((conn, plan, first))
        });
        let (mut conn, plan, first) = match opened {
            Ok(v) => v,
            Err(e) => {
                let _ = started_tx.send(Err(e));
                return;
            }
        };
        let _ = started_tx.send(Ok(()));
        let mut piece = String::with_capacity(first.len() * 160 + CSV_HEADER.len());
        piece.push_str(CSV_HEADER);
        for e in &first {
            csv_row(&mut piece, e);
        }
        if tx.blocking_send(Ok(web::Bytes::from(piece))).is_err() || (first.len() as i64) < EXPORT_SLICE {
            return;
        }
        let before = first.last().map(|e| e.id);
        drop(first);
        let result = db::logs::each_slice(&mut conn, &plan, before, EXPORT_SLICE, |rows| {
            let mut piece = String::with_capacity(rows.len() * 160);
            for e in rows {
                csv_row(&mut piece, e);
            }
            tx.blocking_send(Ok(web::Bytes::from(piece))).is_ok()
        });
        if let Err(e) = result {
            // The answer has begun: it is cut off (no final chunk, so not mistaken for a whole file).
            let e = db::DbError::from(e);
            tracing::error!(error = %crate::error::chain(&e), "request log export failed mid-way");
            let _ = tx.blocking_send(Err(e.to_string()));
        }
    });
    started_rx.await.map_err(|e| AppError::Internal(e.to_string()))??;
    tracing::info!(admin = %admin.username, filter = %raw_filter(&raw), "request log exported");
    let stamp = chrono::DateTime::from_timestamp_millis(now)
        .map(|t| t.format("%Y-%m-%dT%H-%M-%S").to_string())
        .unwrap_or_default();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk.map_err(actix_web::error::ErrorInternalServerError), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"keypool-requests-{stamp}.csv\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(stream))
}

fn raw_filter(raw: &RawLogQuery) -> String {
    LogQuery::parse(raw).0.filter.to_query_string()
}
