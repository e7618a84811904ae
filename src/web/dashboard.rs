//! 仪表盘 / Dashboard: figures and charts from SQL aggregates; each chart is a fragment with its own
//! choices (buckets, period, outliers, how many top keys); the key detail page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::html;
use super::lang::RequestLang;
use super::session::CurrentAdmin;
use crate::charts;
use crate::db;
use crate::domain::keys::mask;
use crate::domain::stats::{auto_buckets, default_buckets, outlier_cap};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::views::dashboard::{
    Dashboard, Figures, IncidentBanner, KeyView, Panel, RecentKey, dashboard, dashboard_page, key_page, panel,
};
use crate::views::layout::{Nav, PageContext};

/// Each chart's choices, all optional in the URL.
#[derive(Debug, Default, Deserialize)]
pub struct ChartQuery {
    refresh: Option<u32>,
    /// `fixed` (the original's buckets) or `auto`.
    buckets: Option<String>,
    /// `all`, `7d` or `30d`.
    period: Option<String>,
    /// `cap` (IQR-based bound) or `show`.
    outliers: Option<String>,
    /// `10`, `20`, `50` or `all`.
    top: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

fn choice(label: &str, query: String, active: bool) -> (String, String, bool) {
    (label.to_owned(), query, active)
}

async fn distribution(state: &AppState, q: &ChartQuery) -> Result<Panel, AppError> {
    let auto = q.buckets.as_deref() == Some("auto");
    let counts = db::run(&state.db, move |conn| {
        let buckets = if auto {
            match db::stats::balance_range(conn)? {
                (Some(lo), Some(hi)) => auto_buckets(lo, hi, 8),
                _ => default_buckets(),
            }
        } else {
            default_buckets()
        };
        let counts = db::stats::bucket_counts(conn, &buckets)?;
        Ok((buckets, counts))
    })
    .await?;
    let labels: Vec<String> = counts.0.iter().map(|b| b.label()).collect();
    Ok(Panel {
        name: "distribution",
        chart: charts::distribution(&labels, &counts.1),
        links: None,
        choices: vec![
            choice("dashboard.buckets.fixed", "buckets=fixed".into(), !auto),
            choice("dashboard.buckets.auto", "buckets=auto".into(), auto),
        ],
        note: None,
    })
}

async fn status(state: &AppState, lang: Lang) -> Result<Panel, AppError> {
    let counts = db::run(&state.db, |conn| Ok(db::keys::count_by_status(conn)?)).await?;
    let slices: Vec<(String, i64)> =
        counts.iter().map(|(s, n)| (lang.t(&format!("keys.status.{}", s.as_str())).to_owned(), *n)).collect();
    Ok(Panel { name: "status", chart: charts::status_doughnut(&slices), links: None, choices: Vec::new(), note: None })
}

async fn trend(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
    let period = match q.period.as_deref() {
        Some("7d") => "7d",
        Some("30d") => "30d",
        _ => "all",
    };
    let capping = q.outliers.as_deref() == Some("cap");
    let since = match period {
        "7d" => state.now_ms() - 7 * DAY_MS,
        "30d" => state.now_ms() - 30 * DAY_MS,
        _ => 0,
    };
    let points = db::run(&state.db, move |conn| Ok(db::stats::trend(conn, since)?)).await?;
    let cap = if capping { outlier_cap(&points.iter().map(|(_, v)| *v).collect::<Vec<_>>()) } else { None };
    let note = cap.map(|c| lang.tf("dashboard.trend.capped", &[("value", &format!("{:.2}", c))]));
    let outliers = if capping { "cap" } else { "show" };
    let mut choices: Vec<_> =
        [("all", "dashboard.period.all"), ("7d", "dashboard.period.7d"), ("30d", "dashboard.period.30d")]
            .into_iter()
            .map(|(p, label)| choice(label, format!("period={p}&outliers={outliers}"), p == period))
            .collect();
    let toggle = if capping { "show" } else { "cap" };
    let toggle_label = if capping { "dashboard.outliers.show" } else { "dashboard.outliers.cap" };
    choices.push(choice(toggle_label, format!("period={period}&outliers={toggle}"), false));
    Ok(Panel {
        name: "trend",
        chart: charts::trend(&points, cap, note.as_deref().unwrap_or_default()),
        links: None,
        choices,
        note: if points.is_empty() { Some(lang.t("dashboard.trend.empty").to_owned()) } else { note },
    })
}

async fn top(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
    let (which, limit) = match q.top.as_deref() {
        Some("20") => ("20", 20),
        Some("50") => ("50", 50),
        Some("all") => ("all", 1000),
        _ => ("10", 10),
    };
    let keys = db::run(&state.db, move |conn| Ok(db::stats::top_keys(conn, limit)?)).await?;
    let labels: Vec<String> = keys.iter().map(|k| mask(&k.key)).collect();
    let balances: Vec<f64> = keys.iter().map(|k| k.total_balance.unwrap_or(0.0)).collect();
    // The chart lists the highest on top, so its data (and links) run from the lowest.
    let links: Vec<String> = keys.iter().rev().map(|k| format!("/admin/keys/{}", k.id)).collect();
    let choices = ["10", "20", "50", "all"]
        .into_iter()
        .map(|n| choice(&format!("dashboard.top.{n}"), format!("top={n}"), n == which))
        .collect();
    let note = (which == "all").then(|| lang.t("dashboard.top.all_note").to_owned());
    Ok(Panel { name: "top", chart: charts::top_keys(&labels, &balances), links: Some(links), choices, note })
}

async fn load(state: &AppState, q: &ChartQuery) -> Result<Dashboard, AppError> {
    let figures = db::run(&state.db, |conn| {
        let per_status = db::keys::count_by_status(conn)?;
        let total = per_status.iter().map(|(_, n)| n).sum();
        let active = db::stats::active_balances(conn)?;
        let median = db::stats::active_median(conn, active.count)?;
        let recent = db::stats::recent_keys(conn, 5)?;
        Ok((per_status, total, active, median, recent))
    })
    .await?;
    let (per_status, total, active, median, recent) = figures;
    let now = state.now_ms();
    let incident = state.pool.incident.active(now).map(|i| IncidentBanner {
        since: i.since,
        until: i.until,
        clears_in_s: (i.until - now + 999) / 1000,
        cause: i.cause,
        keys: i.keys,
    });
    Ok(Dashboard {
        figures: Figures {
            per_status,
            total,
            active_balance: active.total,
            average: active.average,
            highest: active.highest,
            lowest: active.lowest,
            median,
        },
        recent: recent
            .into_iter()
            .map(|k| RecentKey {
                id: k.id,
                key: k.key,
                status: k.status,
                balance: k.total_balance,
                added_at: k.added_at,
            })
            .collect(),
        refresh: q.refresh.filter(|s| [30, 60, 300].contains(s)).unwrap_or(0),
        incident,
    })
}

/// `GET /admin`: the page, or the dashboard fragment for htmx refreshes.
pub async fn get_dashboard(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    q: web::Query<ChartQuery>,
) -> Result<HttpResponse, AppError> {
    let d = load(&state, &q).await?;
    if super::is_htmx(&req) && !req.headers().contains_key("hx-history-restore-request") {
        return Ok(html(StatusCode::OK, dashboard(lang, &d)));
    }
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Dashboard, admin: Some(&admin.username), path: &path };
    Ok(html(StatusCode::OK, dashboard_page(&ctx, &d)))
}

/// `GET /admin/charts/{name}`: one chart panel.
pub async fn get_chart(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<ChartQuery>,
) -> Result<HttpResponse, AppError> {
    let p = match name.as_str() {
        "distribution" => distribution(&state, &q).await?,
        "status" => status(&state, lang).await?,
        "trend" => trend(&state, lang, &q).await?,
        "top" => top(&state, lang, &q).await?,
        _ => return Err(AppError::NotFound),
    };
    Ok(html(StatusCode::OK, panel(lang, &p)))
}

/// `GET /admin/keys/{id}`: a key's detail.
pub async fn get_key(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let found = db::run(&state.db, move |conn| {
        let Some(detail) = db::stats::key_detail(conn, id)? else { return Ok(None) };
        Ok(Some((detail, db::stats::key_history(conn, id)?, db::stats::key_events(conn, id)?)))
    })
    .await?;
    let Some((detail, history, events)) = found else { return Err(AppError::NotFound) };
    let view = KeyView { detail, history: charts::key_history(&history), events };
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Keys, admin: Some(&admin.username), path: &path };
    Ok(html(StatusCode::OK, key_page(&ctx, &view)))
}
