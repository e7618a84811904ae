//! Admin sessions: what a signed-in session carries, the guard in front of every `/admin` route, and
//! the `Origin` check of state-changing requests.

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, web};

use crate::db;
use crate::error::AppError;
use crate::state::AppState;

const ADMIN_ID: &str = "admin_id";
const CREDENTIALS_VERSION: &str = "admin_cv";
const SIGNED_IN_AT: &str = "admin_at";

/// The admin behind a request, put in the request's extensions by [`require_admin`].
#[derive(Debug, Clone)]
pub struct CurrentAdmin {
    pub id: i64,
    pub username: String,
}

/// Starts a fresh session for this admin (a new cookie, so a planted one is never reused).
pub fn sign_in(session: &Session, admin: &db::admins::Admin, now_ms: i64) -> Result<(), AppError> {
    session.renew();
    let insert = |k: &str, v: i64| session.insert(k, v).map_err(|e| AppError::Internal(e.to_string()));
    insert(ADMIN_ID, admin.id)?;
    insert(CREDENTIALS_VERSION, admin.credentials_version)?;
    insert(SIGNED_IN_AT, now_ms)
}

/// Keeps this session valid after its own credentials change (other sessions end).
pub fn refresh_credentials(session: &Session, credentials_version: i64) -> Result<(), AppError> {
    session.insert(CREDENTIALS_VERSION, credentials_version).map_err(|e| AppError::Internal(e.to_string()))
}

/// The admin of this session, if it is signed in, not expired and its credentials did not change.
pub async fn current_admin(state: &AppState, session: &Session) -> Result<Option<CurrentAdmin>, AppError> {
    let get = |k: &str| session.get::<i64>(k).ok().flatten();
    let (Some(id), Some(version), Some(at)) = (get(ADMIN_ID), get(CREDENTIALS_VERSION), get(SIGNED_IN_AT)) else {
        return Ok(None);
    };
    let ttl_ms = state.config.session_ttl.as_millis() as i64;
    let now = state.now_ms();
    if now >= at + ttl_ms || at > now + 60_000 {
        session.purge();
        return Ok(None);
    }
    let admin = db::run(&state.db, move |conn| Ok(db::admins::find(conn, id)?)).await?;
    match admin {
        Some(a) if a.credentials_version == version => Ok(Some(CurrentAdmin { id: a.id, username: a.username })),
        _ => {
            session.purge();
            Ok(None)
        }
    }
}

/// Guard of every `/admin` route: anonymous browsers go to `/login`, htmx gets `HX-Redirect`.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(AppError::Internal("application state missing".into())).map_into_right_body());
    };
    let session = req.get_session();
    match current_admin(&state, &session).await {
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
        Ok(Some(admin)) => {
            req.extensions_mut().insert(admin);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Ok(None) => {
            let res = to_login(req.request());
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

/// Where an anonymous request for an admin page is sent.
fn to_login(req: &HttpRequest) -> HttpResponse {
    if super::is_htmx(req) {
        // The page the browser shows, not the fragment URL htmx asked for.
        let back = req
            .headers()
            .get("hx-current-url")
            .and_then(|v| v.to_str().ok())
            .and_then(|u| url::Url::parse(u).ok())
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_owned(),
            });
        let location = login_url(back.as_deref());
        return HttpResponse::Unauthorized().insert_header(("HX-Redirect", location)).finish();
    }
    let back = (req.method() == Method::GET).then(|| super::path_and_query(req));
    HttpResponse::SeeOther().insert_header((header::LOCATION, login_url(back.as_deref()))).finish()
}

fn login_url(back: Option<&str>) -> String {
    match back {
        Some(b) if b != "/admin" => format!("/login?next={}", crate::views::layout::urlencode(b)),
        _ => "/login".to_owned(),
    }
}

/// Refuses a state-changing request whose `Origin` (or, without one, `Referer`) is another site.
/// Requests with neither header (curl, scripts) pass: SameSite=Strict cookies already keep browsers'
/// cross-site requests anonymous. The proxy (`/v1`) is for other sites' SDKs and is not checked.
pub async fn check_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !req.path().starts_with("/v1/") && !same_origin(req.request()) {
        return Ok(req.error_response(AppError::Forbidden("error.foreign_origin")).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

fn same_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    let claimed =
        headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).map(|v| v.to_str().unwrap_or("null"));
    let Some(claimed) = claimed else { return true };
    let Ok(url) = url::Url::parse(claimed) else { return false };
    let Some(host) = url.host_str() else { return false };
    let origin_host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let conn = req.connection_info();
    origin_host.eq_ignore_ascii_case(conn.host())
}
