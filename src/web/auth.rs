//! `GET /login`, `POST /login`, `POST /logout`.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::lang::RequestLang;
use super::session;
use crate::db;
use crate::domain::password;
use crate::error::AppError;
use crate::state::AppState;
use crate::views::login::{LoginView, login_page};

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn get_login(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, AppError> {
    let next = super::safe_next(q.next.as_deref(), "/admin");
    if session::current_admin(&state, &session).await?.is_some() {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, next)).finish());
    }
    let warning = cookies_would_be_dropped(&req, &state).then(|| lang.t("login.insecure_cookies").to_owned());
    let view = LoginView { username: "", next: &next, message: None, warning };
    Ok(html(StatusCode::OK, login_page(lang, &super::path_and_query(&req), &view)))
}

/// Browsers keep `Secure` cookies only over https (and on localhost): over plain http elsewhere the
/// sign-in would silently bounce back here, so the page says why.
fn cookies_would_be_dropped(req: &HttpRequest, state: &AppState) -> bool {
    if state.config.insecure_cookies {
        return false;
    }
    let conn = req.connection_info();
    let host = conn
        .host()
        .rsplit_once(':')
        .map_or(conn.host(), |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { conn.host() });
    let local = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    conn.scheme() == "http" && !local
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn post_login(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let next = super::safe_next(form.next.as_deref(), "/admin");
    let addr = super::client_addr(&req, &state);
    let now = state.now_ms();
    // Counted before verifying: concurrent guesses past the limit are refused without running argon2.
    let username = form.username.trim().to_owned();
    if let Err(retry_after_secs) = state.login_throttle.reserve(&addr, now) {
        return Ok(locked_out(lang, &username, &next, retry_after_secs));
    }
    let lookup = username.clone();
    // The connection goes back to the pool before the (slow) verification.
    let found = db::run(&state.db, move |conn| Ok(db::admins::find_by_username(conn, &lookup)?)).await?;
    let password = form.password;
    let admin = web::block(move || match found {
        Some(a) if password::verify(&password, &a.password_hash) => Some(a),
        Some(_) => None,
        None => {
            password::verify_dummy(&password);
            None
        }
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    match admin {
        Some(admin) => {
            state.login_throttle.succeed(&addr);
            session::sign_in(&state, &session, &admin, now).await?;
            tracing::info!(admin = %admin.username, %addr, "admin signed in");
            Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, next)).finish())
        }
        None => {
            tracing::warn!(%addr, "failed admin sign-in");
            let view = LoginView {
                username: &username,
                next: &next,
                message: Some(lang.t("login.failed").to_owned()),
                warning: None,
            };
            Ok(html(StatusCode::UNAUTHORIZED, login_page(lang, "/login", &view)))
        }
    }
}

/// Too many wrong passwords from this address: the form again (status 429, `Retry-After` kept) with a
/// message saying when to try again, rather than a bare error page.
fn locked_out(lang: crate::i18n::Lang, username: &str, next: &str, retry_after_secs: u64) -> HttpResponse {
    let secs = retry_after_secs.max(1);
    let args = [("seconds", secs.to_string()), ("minutes", secs.div_ceil(60).to_string())];
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let view = LoginView { username, next, message: Some(lang.tf("login_lockout.message", &args)), warning: None };
    let mut res = html(StatusCode::TOO_MANY_REQUESTS, login_page(lang, "/login", &view));
    if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, value);
    }
    res
}

#[derive(Deserialize)]
pub struct LogoutForm {
    /// Set by the settings page's "sign out everywhere" button.
    #[serde(default)]
    everywhere: Option<String>,
}

/// Ends this session, or with `everywhere` set every session of this admin (other devices too).
pub async fn post_logout(
    state: web::Data<AppState>,
    session: Session,
    form: Option<web::Form<LogoutForm>>,
) -> Result<HttpResponse, AppError> {
    let everywhere = form.is_some_and(|f| f.everywhere.as_deref().is_some_and(|v| !v.is_empty()));
    if everywhere {
        session::sign_out_everywhere(&state, &session).await?;
    } else {
        session::sign_out(&state, &session).await?;
    }
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/login")).finish())
}

pub fn html(status: StatusCode, markup: maud::Markup) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}
