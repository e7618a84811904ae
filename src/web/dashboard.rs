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
use crate::domain::checks::{CheckParams, Interval};
use crate::domain::forecast::{self, Forecast};
use crate::domain::keys::KeyStatus;
use crate::domain::keys::mask;
use crate::domain::stats::{auto_buckets, default_buckets, outlier_cap};
use crate::domain::usage::RollupSums;
use crate::error::AppError;
use crate::i18n::Lang;
use crate::pool::ModelBlock;
use crate::state::AppState;
use crate::views::dashboard::{
    BlockView, CheckAll, Choice, Dashboard, Figures, FirstRun, IncidentBanner, KeyView, ModelServing, Panel, RecentKey,
    dashboard, dashboard_page, key_page, panel,
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
    /// The traffic panels' window: `24h`, `7d` or `30d`.
    window: Option<String>,
}

/// `value` when it is one of `allowed`.
fn pick(value: Option<&str>, allowed: &[&'static str]) -> Option<&'static str> {
    allowed.iter().find(|a| value == Some(**a)).copied()
}

impl ChartQuery {
    /// The dashboard's choices as a query string (only known values, in a fixed order), with `set`
    /// replacing some: what a choice's link and the address bar carry, so a reload keeps them.
    pub fn query(&self, set: &[(&str, &str)]) -> String {
        let refresh = self.refresh.filter(|s| [30, 60, 300].contains(s)).map(|s| s.to_string());
        let current: [(&str, Option<&str>); 6] = [
            ("period", pick(self.period.as_deref(), &["all", "7d", "30d"])),
            ("outliers", pick(self.outliers.as_deref(), &["cap", "show"])),
            ("buckets", pick(self.buckets.as_deref(), &["fixed", "auto"])),
            ("top", pick(self.top.as_deref(), &["10", "20", "50", "all"])),
            ("window", pick(self.window.as_deref(), &["24h", "7d", "30d"])),
            ("refresh", refresh.as_deref()),
        ];
        current
            .iter()
            .filter_map(|(name, value)| {
                let value = set.iter().find(|(n, _)| n == name).map(|(_, v)| *v).or(*value)?;
                Some(format!("{name}={value}"))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A traffic panel's window: 24 h of per-minute roll-ups in 15-minute steps, 7 days of hourly ones,
/// or 30 days of hourly ones in 6-hour steps.
struct Window {
    name: &'static str,
    since: i64,
    period: i64,
    step: i64,
}

impl Window {
    fn of(q: &ChartQuery, now: i64) -> Self {
        use crate::domain::usage::{HOUR, MINUTE};
        let (name, days, period, step) = match q.window.as_deref() {
            Some("7d") => ("7d", 7, HOUR, HOUR),
            Some("30d") => ("30d", 30, HOUR, 6 * HOUR),
            _ => ("24h", 1, MINUTE, 15 * MINUTE),
        };
        // Whole steps: the first one is not cut short.
        let since = now - days * DAY_MS;
        Self { name, since: since - since.rem_euclid(step), period, step }
    }

    fn choices(&self, q: &ChartQuery) -> Vec<Choice> {
        ["24h", "7d", "30d"]
            .into_iter()
            .map(|w| choice(&format!("dashboard.window.{w}"), q, &[("window", w)], w == self.name))
            .collect()
    }
}

/// The roll-ups of a window summed per step: (step start, outcome totals merged).
async fn steps(state: &AppState, w: &Window) -> Result<Vec<(i64, RollupSums, i64)>, AppError> {
    let (period, since, step) = (w.period, w.since, w.step);
    let rows = db::run(&state.db, move |conn| Ok(db::traffic::series(conn, period, since, step)?)).await?;
    let mut out: Vec<(i64, RollupSums, i64)> = Vec::new();
    for (at, outcome, sums) in rows {
        if out.last().is_none_or(|(t, _, _)| *t != at) {
            out.push((at, RollupSums::default(), 0));
        }
        if let Some((_, total, failures)) = out.last_mut() {
            total.add(&sums);
            if outcome.is_failure() {
                *failures += sums.requests;
            }
        }
    }
    Ok(out)
}

async fn traffic(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
    let w = Window::of(q, state.now_ms());
    let steps = steps(state, &w).await?;
    let points: Vec<(i64, i64, f64)> = steps
        .iter()
        .map(|(t, s, failed)| {
            (*t, s.requests, if s.requests > 0 { 100.0 * *failed as f64 / s.requests as f64 } else { 0.0 })
        })
        .collect();
    let chart = charts::traffic(&points, lang.t("dashboard.traffic.requests"), lang.t("dashboard.traffic.error_rate"));
    let note = points.is_empty().then(|| lang.t("dashboard.traffic.empty").to_owned());
    Ok(Panel { name: "traffic", chart, links: None, choices: w.choices(q), note })
}

async fn latency(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
    let w = Window::of(q, state.now_ms());
    let points: Vec<(i64, i64, i64)> = steps(state, &w)
        .await?
        .iter()
        .filter_map(|(t, s, _)| Some((*t, s.latency_quantile(0.5)?, s.latency_quantile(0.99)?)))
        .collect();
    let chart = charts::latency(&points, "p50", "p99", lang.t("dashboard.chart.ms"));
    let note = if points.is_empty() {
        Some(lang.t("dashboard.traffic.empty").to_owned())
    } else {
        Some(lang.t("dashboard.latency.note").to_owned())
    };
    Ok(Panel { name: "latency", chart, links: None, choices: w.choices(q), note })
}

async fn tokens(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
    let w = Window::of(q, state.now_ms());
    let since = w.since;
    let rows =
        db::run(&state.db, move |conn| Ok(db::traffic::totals_by(conn, db::traffic::By::Model, since, 10)?)).await?;
    let labels: Vec<String> = rows.iter().map(|r| charts::short_model(&r.name)).collect();
    let input: Vec<i64> = rows.iter().map(|r| r.prompt_tokens).collect();
    let output: Vec<i64> = rows.iter().map(|r| r.completion_tokens).collect();
    let names = (lang.t("dashboard.tokens.input"), lang.t("dashboard.tokens.output"));
    let note = rows.is_empty().then(|| lang.t("dashboard.traffic.empty").to_owned());
    Ok(Panel {
        name: "tokens",
        chart: charts::tokens_by_model(&labels, &input, &output, names),
        links: None,
        choices: w.choices(q),
        note,
    })
}

async fn spend(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
    let w = Window::of(q, state.now_ms());
    let since = w.since;
    let rows = db::run(&state.db, move |conn| Ok(db::traffic::totals_by(conn, db::traffic::By::AccessKey, since, 10)?))
        .await?;
    let labels: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let cost: Vec<f64> = rows.iter().map(|r| (r.cost * 10_000.0).round() / 10_000.0).collect();
    let note = if rows.is_empty() {
        Some(lang.t("dashboard.traffic.empty").to_owned())
    } else {
        Some(lang.t("dashboard.spend.note").to_owned())
    };
    Ok(Panel {
        name: "spend",
        chart: charts::bars(&labels, &cost, lang.t("dashboard.spend.cost")),
        links: None,
        choices: w.choices(q),
        note,
    })
}

/// How long the usable `balance` lasts at the last 7 days' rate (measured cost and balance decline).
pub async fn forecast(state: &AppState, balance: f64) -> Result<Forecast, AppError> {
    let now = state.now_ms();
    let since = now - 7 * DAY_MS;
    let (hourly, snapshots) =
        db::run(&state.db, move |conn| Ok((db::traffic::hourly_cost(conn, since)?, db::stats::trend(conn, since)?)))
            .await?;
    let (cost, decline) = (forecast::cost_rate(&hourly, now), forecast::decline_rate(&snapshots));
    Ok(forecast::forecast(balance, cost, decline))
}

const DAY_MS: i64 = 86_400_000;

/// A choice above a chart: `set` applied to the dashboard's current choices `q`.
fn choice(label: &str, q: &ChartQuery, set: &[(&str, &str)], active: bool) -> Choice {
    let own = set.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    Choice { label: label.to_owned(), query: q.query(set), own, active }
}

async fn distribution(state: &AppState, lang: Lang, q: &ChartQuery) -> Result<Panel, AppError> {
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
        chart: charts::distribution(&labels, &counts.1, lang.t("dashboard.chart.keys_series")),
        links: None,
        choices: vec![
            choice("dashboard.buckets.fixed", q, &[("buckets", "fixed")], !auto),
            choice("dashboard.buckets.auto", q, &[("buckets", "auto")], auto),
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
            .map(|(p, label)| choice(label, q, &[("period", p), ("outliers", outliers)], p == period))
            .collect();
    let toggle = if capping { "show" } else { "cap" };
    let toggle_label = if capping { "dashboard.outliers.show" } else { "dashboard.outliers.cap" };
    choices.push(choice(toggle_label, q, &[("period", period), ("outliers", toggle)], false));
    Ok(Panel {
        name: "trend",
        chart: charts::trend(
            &points,
            cap,
            note.as_deref().unwrap_or_default(),
            lang.t("dashboard.chart.balance_series"),
        ),
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
    let codec = state.codec.clone();
    let keys = db::run(&state.db, move |conn| Ok(db::stats::top_keys(conn, &codec, limit)?)).await?;
    let labels: Vec<String> = keys.iter().map(|k| mask(&k.key)).collect();
    let balances: Vec<f64> = keys.iter().map(|k| k.total_balance.unwrap_or(0.0)).collect();
    // The chart lists the highest on top, so its data (and links) run from the lowest.
    let links: Vec<String> = keys.iter().rev().map(|k| format!("/admin/keys/{}", k.id)).collect();
    let choices = ["10", "20", "50", "all"]
        .into_iter()
        .map(|n| choice(&format!("dashboard.top.{n}"), q, &[("top", n)], n == which))
        .collect();
    let note = (which == "all").then(|| lang.t("dashboard.top.all_note").to_owned());
    Ok(Panel {
        name: "top",
        chart: charts::top_keys(&labels, &balances, lang.t("dashboard.chart.balance_series")),
        links: Some(links),
        choices,
        note,
    })
}

async fn load(state: &AppState, q: &ChartQuery) -> Result<Dashboard, AppError> {
    let codec = state.codec.clone();
    let figures = db::run(&state.db, move |conn| {
        let per_status = db::keys::count_by_status(conn)?;
        let total = per_status.iter().map(|(_, n)| n).sum();
        let active = db::stats::active_balances(conn)?;
        let median = db::stats::active_median(conn, active.count)?;
        let recent = db::stats::recent_keys(conn, &codec, 5)?;
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
        model: i.model,
    });
    let runtime = state.pool.runtime();
    let models = state
        .pool
        .serving(now - DAY_MS, now)
        .into_iter()
        .map(|(model, paid, free)| ModelServing {
            free_model: runtime.proxy().is_free_model(&model),
            model,
            paid,
            free,
        })
        .collect();
    let lasts = forecast(state, active.total.unwrap_or(0.0)).await?;
    let check_all = check_all(&per_status);
    Ok(Dashboard {
        first_run: FirstRun::default(),
        check_all,
        check_panel: maud::html! {},
        lasts,
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
        chart_query: q.query(&[]),
        incident,
        models,
    })
}

/// How many keys "check all" checks (every key not disabled) and roughly how long it takes with the
/// default check parameters: each of `concurrency` workers takes about a second per key plus the
/// interval between its requests. The page's script says it again for the parameters this browser
/// remembers (`checkAllEstimate` in `assets/js/app.js`, the same rule).
fn check_all(per_status: &[(KeyStatus, i64)]) -> CheckAll {
    let keys: i64 = per_status.iter().filter(|(s, _)| *s != KeyStatus::Disabled).map(|(_, n)| n).sum();
    let p = CheckParams::default();
    let interval_ms = match p.interval {
        Interval::Fixed(d) => d.as_millis() as i64,
        Interval::Random { min, max } => (min.as_millis() + max.as_millis()) as i64 / 2,
    };
    let rounds = (keys + p.concurrency as i64 - 1) / p.concurrency.max(1) as i64;
    CheckAll { keys, estimate_s: (rounds * (1000 + interval_ms) + 999) / 1000 }
}

/// The first-run checklist's steps and the generated-password nudge, for admin `admin_id`.
async fn first_run(state: &AppState, req: &HttpRequest, admin_id: i64) -> Result<FirstRun, AppError> {
    let (has_keys, checked, has_access_key, generated_password) = db::run(&state.db, move |conn| {
        let (has_keys, checked, access) = db::stats::first_run_steps(conn)?;
        Ok((has_keys, checked, access, db::admins::uses_generated_password(conn, admin_id)?))
    })
    .await?;
    let base_url = super::base_url(req, &state.settings().settings);
    Ok(FirstRun { has_keys, checked, has_access_key, generated_password, base_url })
}

/// `GET /admin`: the page, or the dashboard fragment for htmx refreshes.
pub async fn get_dashboard(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    q: web::Query<ChartQuery>,
) -> Result<HttpResponse, AppError> {
    let mut d = load(&state, &q).await?;
    d.first_run = first_run(&state, &req, admin.id).await?;
    d.check_panel = super::checks::panel_markup(&state, lang, None, false);
    if super::is_htmx(&req) && !req.headers().contains_key("hx-history-restore-request") {
        return Ok(html(StatusCode::OK, dashboard(lang, &d)));
    }
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Dashboard, admin: Some(&admin.username), path: &path };
    Ok(html(StatusCode::OK, dashboard_page(&ctx, &d)))
}

/// `GET /admin/charts/{name}`: one chart panel. A choice's click (header `X-Chart-Choice`) also puts
/// the dashboard's choices in the address bar (`HX-Push-Url`), so a reload keeps them.
pub async fn get_chart(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<ChartQuery>,
) -> Result<HttpResponse, AppError> {
    let p = match name.as_str() {
        "distribution" => distribution(&state, lang, &q).await?,
        "status" => status(&state, lang).await?,
        "trend" => trend(&state, lang, &q).await?,
        "top" => top(&state, lang, &q).await?,
        "traffic" => traffic(&state, lang, &q).await?,
        "latency" => latency(&state, lang, &q).await?,
        "tokens" => tokens(&state, lang, &q).await?,
        "spend" => spend(&state, lang, &q).await?,
        _ => return Err(AppError::NotFound),
    };
    let mut res = html(StatusCode::OK, panel(lang, &p));
    if req.headers().contains_key("x-chart-choice") {
        let query = q.query(&[]);
        let url = if query.is_empty() { "/admin".to_owned() } else { format!("/admin?{query}") };
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&url) {
            res.headers_mut().insert(actix_web::http::header::HeaderName::from_static("hx-push-url"), value);
        }
    }
    Ok(res)
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
    let now = state.now_ms();
    let codec = state.codec.clone();
    let found = db::run(&state.db, move |conn| {
        let Some(detail) = db::stats::key_detail(conn, &codec, id)? else { return Ok(None) };
        let stored: Vec<ModelBlock> = db::usage::blocks_of(conn, id, now)?.iter().map(|b| b.to_block()).collect();
        Ok(Some((detail, db::stats::key_history(conn, id)?, db::stats::key_events(conn, id)?, stored)))
    })
    .await?;
    let Some((detail, history, events, stored)) = found else { return Err(AppError::NotFound) };
    let live = state.pool.slot(id).map(|s| s.blocks(now)).unwrap_or_default();
    let view = KeyView {
        detail,
        history: charts::key_history(&history, lang.t("dashboard.chart.balance_series")),
        events,
        blocks: merge_blocks(stored, live),
    };
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Keys, admin: Some(&admin.username), path: &path };
    Ok(html(StatusCode::OK, key_page(&ctx, &view)))
}

/// The blocks of a key in force: the database's (known to every instance) and this server's; for the
/// same model this server's, the newer knowledge, wins. By model, then end.
fn merge_blocks(stored: Vec<ModelBlock>, live: Vec<ModelBlock>) -> Vec<BlockView> {
    let mut all: Vec<ModelBlock> = stored.into_iter().filter(|s| !live.iter().any(|l| l.model == s.model)).collect();
    all.extend(live);
    let mut views: Vec<BlockView> = all
        .into_iter()
        .map(|b| BlockView { model: b.model.into(), kind: b.kind, until: b.until, reason: b.reason })
        .collect();
    views.sort_by(|a, b| a.model.cmp(&b.model).then(a.until.cmp(&b.until)));
    views
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::key_state::BlockKind;

    fn block(model: &str, kind: BlockKind, until: i64) -> ModelBlock {
        ModelBlock { model: model.into(), kind, until, at: 0, hinted: false, reason: kind.as_str().to_owned() }
    }

    #[test]
    fn the_query_keeps_known_choices_and_replaces_some() {
        let q = ChartQuery {
            period: Some("7d".into()),
            top: Some("20".into()),
            buckets: Some("<script>".into()),
            refresh: Some(30),
            ..ChartQuery::default()
        };
        assert_eq!(q.query(&[]), "period=7d&top=20&refresh=30");
        assert_eq!(q.query(&[("top", "50"), ("buckets", "auto")]), "period=7d&buckets=auto&top=50&refresh=30");
        assert_eq!(ChartQuery::default().query(&[]), "");
    }

    #[test]
    fn this_servers_block_of_a_model_wins_over_the_stored_one() {
        let stored = vec![block("b", BlockKind::DailyLimit, 50), block("a", BlockKind::Refused, 90)];
        let live = vec![block("a", BlockKind::RateLimit, 10), block("", BlockKind::RateLimit, 20)];
        let merged: Vec<(String, BlockKind)> =
            merge_blocks(stored, live).into_iter().map(|b| (b.model, b.kind)).collect();
        assert_eq!(
            merged,
            [
                ("".to_owned(), BlockKind::RateLimit),
                ("a".into(), BlockKind::RateLimit),
                ("b".into(), BlockKind::DailyLimit)
            ]
        );
    }
}
