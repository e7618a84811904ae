//! Admin sessions: what a signed-in session carries, the guard in front of every `/admin` route, and
//! the `Origin` check of state-changing requests.

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse, web};

use sha2::{Digest, Sha256};

use crate::db;
use crate::domain::password;
use crate::error::AppError;
use crate::state::AppState;

const ADMIN_ID: &str = "admin_id";
const CREDENTIALS_VERSION: &str = "admin_cv";
const SIGNED_IN_AT: &str = "admin_at";
/// A random token naming this session's row in `admin_sessions` (which stores only its hash): signing
/// out deletes the row, so a copy of the cookie stops working too.
const SESSION_TOKEN: &str = "admin_sid";

/// The admin behind a request, put in the request's extensions by [`require_admin`].
#[derive(Debug, Clone)]
pub struct CurrentAdmin {
    pub id: i64,
    pub username: String,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Starts a fresh session for this admin (a new cookie, so a planted one is never reused) and records
/// it server-side; expired records are pruned on the way.
pub async fn sign_in(
    state: &AppState,
    session: &Session,
    admin: &db::admins::Admin,
    now_ms: i64,
) -> Result<(), AppError> {
    let token = password::random_token(43);
    let id = token_hash(&token);
    let admin_id = admin.id;
    let expires_at = now_ms.saturating_add(state.config.session_ttl.as_millis() as i64);
    db::run(&state.db, move |conn| Ok(db::admins::create_session(conn, &id, admin_id, now_ms, expires_at)?)).await?;
    session.renew();
    let keep = |e: actix_session::SessionInsertError| AppError::Internal(e.to_string());
    session.insert(ADMIN_ID, admin.id).map_err(keep)?;
    session.insert(CREDENTIALS_VERSION, admin.credentials_version).map_err(keep)?;
    session.insert(SIGNED_IN_AT, now_ms).map_err(keep)?;
    session.insert(SESSION_TOKEN, token).map_err(keep)
}

/// Keeps this session valid after its own credentials change (other sessions end).
pub fn refresh_credentials(session: &Session, credentials_version: i64) -> Result<(), AppError> {
    session.insert(CREDENTIALS_VERSION, credentials_version).map_err(|e| AppError::Internal(e.to_string()))
}

/// Ends this session: its record is deleted (so copies of the cookie end too) and the cookie cleared.
pub async fn sign_out(state: &AppState, session: &Session) -> Result<(), AppError> {
    if let Some(token) = session.get::<String>(SESSION_TOKEN).ok().flatten() {
        let id = token_hash(&token);
        db::run(&state.db, move |conn| Ok(db::admins::delete_session(conn, &id)?)).await?;
    }
    session.purge();
    Ok(())
}

/// Ends every session of this session's admin, on every device and instance, this one included.
pub async fn sign_out_everywhere(state: &AppState, session: &Session) -> Result<(), AppError> {
    if let Some(admin) = current_admin(state, session).await? {
        let ended = db::run(&state.db, move |conn| Ok(db::admins::delete_sessions(conn, admin.id)?)).await?;
        tracing::info!(admin = %admin.username, sessions = ended, "admin signed out everywhere");
    }
    session.purge();
    Ok(())
}

/// The admin of this session, if it is signed in, not expired, not signed out and its credentials did
/// not change.
pub async fn current_admin(state: &AppState, session: &Session) -> Result<Option<CurrentAdmin>, AppError> {
    let get = |k: &str| session.get::<i64>(k).ok().flatten();
    let token = session.get::<String>(SESSION_TOKEN).ok().flatten();
    let (Some(id), Some(version), Some(at), Some(token)) =
        (get(ADMIN_ID), get(CREDENTIALS_VERSION), get(SIGNED_IN_AT), token)
    else {
        if session.get::<i64>(ADMIN_ID).ok().flatten().is_some() {
            // An admin session from before server-side records: it cannot be revoked, so it ends.
            session.purge();
        }
        return Ok(None);
    };
    let ttl_ms = state.config.session_ttl.as_millis() as i64;
    let now = state.now_ms();
    if now >= at + ttl_ms || at > now + 60_000 {
        session.purge();
        return Ok(None);
    }
    let sid = token_hash(&token);
    let admin = db::run(&state.db, move |conn| {
        if db::admins::session_admin(conn, &sid, now)? != Some(id) {
            return Ok(None);
        }
        Ok(db::admins::find(conn, id)?)
    })
    .await?;
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
/// cross-site requests anonymous. The proxy (`/v1`, for other sites' SDKs) is a scope of its own,
/// outside this middleware.
pub async fn check_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && !same_origin(req.request()) {
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
    let trust_forwarded = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.trust_forwarded_for);
    if trust_forwarded {
        return origin_host.eq_ignore_ascii_case(req.connection_info().host());
    }
    // Without a trusted proxy in front, `Forwarded`/`X-Forwarded-Host` are whatever the client says.
    origin_host.eq_ignore_ascii_case(&direct_host(req))
}

/// The host this request was sent to, from `Host` (HTTP/1) or the URI's authority (HTTP/2), ignoring
/// forwarding headers.
fn direct_host(req: &HttpRequest) -> String {
    if let Some(host) = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()) {
        return host.to_owned();
    }
    match req.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => req.app_config().host().to_owned(),
    }
}
