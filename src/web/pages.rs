//! `/healthz`, `/metrics`, and the 404 and 405 answers.

use actix_web::{HttpResponse, web};

use crate::db;
use crate::error::AppError;
use crate::state::AppState;

/// 200 when the database answers, is at this build's newest migration and takes a committed write, and
/// every background loop runs and ticks; 503 with the reason in one line otherwise (see
/// [`db::check_health`] and [`crate::supervise`]). `loops` reports each loop's state, last tick and
/// restarts either way.
pub async fn get_healthz(state: web::Data<AppState>) -> HttpResponse {
    let loops = state.loops.report();
    let loop_problem = loops.iter().find_map(|l| l.problem());
    let loops_json: serde_json::Map<String, serde_json::Value> = loops
        .iter()
        .map(|l| {
            let entry = serde_json::json!({
                "state": l.state,
                "healthy": l.healthy,
                "last_tick_at_ms": l.last_tick_at_ms,
                "last_tick_age_ms": l.last_tick_age_ms,
                "restarts": l.restarts,
            });
            (l.name.to_owned(), entry)
        })
        .collect();
    match db::health(&state.db, state.instance_id.clone(), state.now_ms()).await {
        Ok(()) => match loop_problem {
            None => {
                HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "database": "ok", "loops": loops_json }))
            }
            Some(reason) => {
                tracing::debug!(reason, "/healthz: a background loop is down");
                HttpResponse::ServiceUnavailable().json(serde_json::json!({
                    "status": "unavailable",
                    "database": "ok",
                    "reason": reason,
                    "loops": loops_json,
                }))
            }
        },
        Err(e) => {
            tracing::debug!(reason = e.reason(), "/healthz: the database is {}", e.kind());
            HttpResponse::ServiceUnavailable().json(serde_json::json!({
                "status": "unavailable",
                "database": e.kind(),
                "reason": e.reason(),
                "loops": loops_json,
            }))
        }
    }
}

/// Prometheus text format: the proxy's requests, retries, in-flight requests and latencies, keys by
/// state, the incident guard, the writer's buffer and the background loops. Readable by a signed-in admin, by anyone with
/// `Authorization: Bearer <metrics_token>`, or by anyone when `metrics_public` is on.
pub async fn get_metrics(
    req: actix_web::HttpRequest,
    session: actix_session::Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let runtime = state.pool.runtime();
    let settings = &runtime.settings;
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::domain::access_token::from_authorization);
    let token_ok = matches!((bearer, &settings.metrics_token_hash),
        (Some(t), Some(hash)) if crate::domain::access_token::hash(t) == *hash);
    if !settings.metrics_public && !token_ok && super::session::current_admin(&state, &session).await?.is_none() {
        return Ok(HttpResponse::Unauthorized()
            .insert_header(("www-authenticate", "Bearer"))
            .content_type("text/plain; charset=utf-8")
            .body("metrics need an admin session or `Authorization: Bearer <metrics_token>` (settings)\n"));
    }
    let up = db::ping(&state.db).await;
    let mut body = format!(
        "# HELP keypool_build_info Build information.\n# TYPE keypool_build_info gauge\n\
         keypool_build_info{{version=\"{}\"}} 1\n\
         # HELP keypool_database_up Whether the database answers.\n# TYPE keypool_database_up gauge\n\
         keypool_database_up {}\n",
        env!("CARGO_PKG_VERSION"),
        u8::from(up)
    );
    if up && let Ok(counts) = db::run(&state.db, |conn| Ok(db::keys::count_by_status(conn)?)).await {
        body.push_str("# HELP keypool_keys Keys in the database by state.\n# TYPE keypool_keys gauge\n");
        for (status, n) in counts {
            body.push_str(&format!("keypool_keys{{state=\"{}\"}} {n}\n", status.as_str()));
        }
    }
    let now = state.now_ms();
    let (routable, cooling, dead) = state.pool.counts(now);
    body.push_str(&format!(
        "# HELP keypool_pool_keys Keys in the proxy's memory by what it knows now.\n# TYPE keypool_pool_keys gauge\n\
         keypool_pool_keys{{state=\"routable\"}} {routable}\nkeypool_pool_keys{{state=\"cooling\"}} {cooling}\n\
         keypool_pool_keys{{state=\"out\"}} {dead}\n\
         # HELP keypool_incident_active Whether many keys are failing at once (key states frozen).\n\
         # TYPE keypool_incident_active gauge\nkeypool_incident_active {}\n\
         # HELP keypool_request_log_dropped_total Request-log rows dropped while the database was away.\n\
         # TYPE keypool_request_log_dropped_total counter\nkeypool_request_log_dropped_total {}\n",
        u8::from(state.pool.incident.active(now).is_some()),
        state.pool.dropped_log_rows.load(std::sync::atomic::Ordering::Relaxed),
    ));
    state.metrics.render(&mut body);
    state.loops.render(&mut body);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound)
}

pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed().finish()
}
