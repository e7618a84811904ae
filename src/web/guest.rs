//! 访客页 / Guest page and API docs. The access mode is enforced here on the page, its fragment and
//! its export: `open` lets anyone in, `restricted` asks for the guest password once and then trusts
//! a guest session (the password is never a token), `private` is for admins. Admins always get in.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use std::sync::Arc;

use crate::pool::RuntimeSettings;

use super::auth::html;
use super::lang::RequestLang;
use super::session::{self, CurrentAdmin};
use crate::db;
use crate::domain::access_limits::AccessLimits;
use crate::domain::export::{ExportRequest, ExportScope};
use crate::domain::password;
use crate::domain::settings::{AccessMode, Settings};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::views::access_limits::SharedKeyView;
use crate::views::docs::{DocsView, docs_page};
use crate::views::guest::{Card, GuestView, admin_only_page, cards, guest_page, password_page, refused};
use crate::views::layout::{Nav, PageContext};

const GUEST_AT: &str = "guest_at";
const GUEST_EPOCH: &str = "guest_epoch";

/// Who is asking, as far as the guest page is concerned.
pub enum GuestAccess {
    Admin(CurrentAdmin),
    Guest,
    NeedsPassword,
    AdminOnly,
}

impl GuestAccess {
    fn admin_name(&self) -> Option<&str> {
        match self {
            Self::Admin(a) => Some(&a.username),
            _ => None,
        }
    }
}

/// Decides access; a guest session from before a mode or password change, or past its lifetime, ends.
pub async fn guest_access(state: &AppState, session: &Session, settings: &Settings) -> Result<GuestAccess, AppError> {
    if let Some(admin) = session::current_admin(state, session).await? {
        return Ok(GuestAccess::Admin(admin));
    }
    Ok(match settings.access_mode {
        AccessMode::Open => GuestAccess::Guest,
        AccessMode::Private => GuestAccess::AdminOnly,
        AccessMode::Restricted => {
            let at = session.get::<i64>(GUEST_AT).ok().flatten();
            let epoch = session.get::<i64>(GUEST_EPOCH).ok().flatten();
            let ttl = state.config.guest_session_ttl.as_millis() as i64;
            match (at, epoch) {
                (Some(at), Some(epoch)) if epoch == settings.guest_epoch && state.now_ms() < at + ttl => {
                    GuestAccess::Guest
                }
                (None, None) => GuestAccess::NeedsPassword,
                _ => {
                    session.remove(GUEST_AT);
                    session.remove(GUEST_EPOCH);
                    GuestAccess::NeedsPassword
                }
            }
        }
    })
}

#[derive(Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

async fn load_view(
    state: &AppState,
    settings: &Settings,
    admin: bool,
    page: Option<&str>,
) -> Result<GuestView, AppError> {
    let size = settings.guest_page_size as i64;
    let requested: i64 = page.and_then(|p| p.trim().parse().ok()).filter(|p| *p >= 1).unwrap_or(1);
    let full_keys = settings.guest_full_keys || admin;
    let codec = state.codec.clone();
    let mut view = db::run(&state.db, move |conn| {
        let counts = db::keys::count_by_status(conn)?;
        let count = |s: crate::domain::keys::KeyStatus| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
        let usable = count(crate::domain::keys::KeyStatus::Active);
        let total: i64 = counts.iter().map(|(_, n)| n).sum::<i64>() - count(crate::domain::keys::KeyStatus::Disabled);
        let pages = ((total.max(0) + size - 1) / size).max(1);
        let page = requested.min(pages);
        let cards = db::keys::guest_cards(conn, &codec, usable, (page - 1) * size, size)?
            .into_iter()
            .map(|c| Card { key: c.key, status: c.status, balance: c.total_balance, checked_at: c.checked_at })
            .collect();
        let total_balance = db::keys::usable_balance(conn)?;
        let lasts = crate::domain::forecast::Forecast::NotEnoughData;
        Ok(GuestView { cards, full_keys, total, usable, total_balance, lasts, page: page as u32, pages: pages as u32 })
    })
    .await?;
    view.lasts = super::dashboard::forecast(state, view.total_balance).await?;
    Ok(view)
}

/// `GET /`.
pub async fn get_guest(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let settings = state.settings();
    let access = guest_access(&state, &session, &settings).await?;
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Guest, admin: access.admin_name(), path: &path };
    Ok(match access {
        GuestAccess::NeedsPassword => html(StatusCode::UNAUTHORIZED, password_page(&ctx, None)),
        GuestAccess::AdminOnly => html(StatusCode::FORBIDDEN, admin_only_page(&ctx)),
        GuestAccess::Guest | GuestAccess::Admin(_) => {
            let admin = matches!(access, GuestAccess::Admin(_));
            let view = load_view(&state, &settings, admin, q.page.as_deref()).await?;
            let shared = shared_key(&state, &settings).await?;
            let base = super::base_url(&req, &settings);
            let card = shared.as_ref().map(|(token, limits)| SharedKeyView {
                base_url: &base,
                token,
                limits,
                now: state.now_ms(),
                offset_min: state.pool.runtime().proxy().upstream_utc_offset_min,
            });
            html(StatusCode::OK, guest_page(&ctx, &view, card.as_ref()))
        }
    })
}

/// The guest access key's token and limits, in restricted mode only (to those let in): open mode
/// shows the page to anyone, so it never holds a token.
async fn shared_key(state: &AppState, settings: &Settings) -> Result<Option<(String, AccessLimits)>, AppError> {
    if settings.access_mode != AccessMode::Restricted {
        return Ok(None);
    }
    let key = db::run(&state.db, |conn| Ok(db::access_keys::shared(conn)?)).await?;
    Ok(key.and_then(|k| {
        let limits = k.limits();
        k.shared_token.map(|token| (token, limits))
    }))
}

/// The settings and the visitor's access when the keys may be shown; otherwise the refusal (401 for
/// the guest password, 403 for admins only) that a fragment or an export answers.
async fn admitted(
    state: &AppState,
    session: &Session,
    lang: Lang,
) -> Result<Result<(Arc<RuntimeSettings>, GuestAccess), HttpResponse>, AppError> {
    let settings = state.settings();
    let access = guest_access(state, session, &settings).await?;
    Ok(match access {
        GuestAccess::NeedsPassword => Err(html(StatusCode::UNAUTHORIZED, refused(lang, "guest.refused_password"))),
        GuestAccess::AdminOnly => Err(html(StatusCode::FORBIDDEN, refused(lang, "guest.refused_private"))),
        access => Ok((settings, access)),
    })
}

/// `GET /guest/keys?page=N`: the cards fragment.
pub async fn get_guest_keys(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let (settings, access) = match admitted(&state, &session, lang).await? {
        Ok(admitted) => admitted,
        Err(refused) => return Ok(refused),
    };
    let view = load_view(&state, &settings, matches!(access, GuestAccess::Admin(_)), q.page.as_deref()).await?;
    Ok(html(StatusCode::OK, cards(lang, &view)))
}

#[derive(Deserialize)]
pub struct GuestLoginForm {
    #[serde(default)]
    password: String,
}

/// `POST /guest/login`: the guest password, throttled per address, becomes a guest session.
pub async fn post_guest_login(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<GuestLoginForm>,
) -> Result<HttpResponse, AppError> {
    let settings = state.settings();
    let to_page = || HttpResponse::SeeOther().insert_header((header::LOCATION, "/")).finish();
    let (AccessMode::Restricted, Some(hash)) = (settings.access_mode, settings.guest_password_hash.clone()) else {
        return Ok(to_page());
    };
    let addr = super::client_addr(&req, &state);
    let now = state.now_ms();
    // Counted before verifying: concurrent guesses past the limit are refused without running argon2.
    if let Err(retry_after_secs) = state.guest_throttle.reserve(&addr, now) {
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    let given = form.into_inner().password;
    let ok =
        web::block(move || password::verify(&given, &hash)).await.map_err(|e| AppError::Internal(e.to_string()))?;
    if !ok {
        let ctx = PageContext { lang, nav: Nav::Guest, admin: None, path: "/" };
        return Ok(html(StatusCode::UNAUTHORIZED, password_page(&ctx, Some(lang.t("guest.password.wrong")))));
    }
    state.guest_throttle.succeed(&addr);
    let keep = |e: actix_session::SessionInsertError| AppError::Internal(e.to_string());
    session.insert(GUEST_AT, now).map_err(keep)?;
    session.insert(GUEST_EPOCH, settings.guest_epoch).map_err(keep)?;
    Ok(to_page())
}

#[derive(Deserialize)]
pub struct GuestExportQuery {
    sep: Option<String>,
    custom_sep: Option<String>,
}

/// `GET /guest/export?sep=…`: the usable keys, when the visitor may see them and guests may copy
/// whole keys (admins always may).
pub async fn get_guest_export(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
    q: web::Query<GuestExportQuery>,
) -> Result<HttpResponse, AppError> {
    let (settings, access) = match admitted(&state, &session, lang).await? {
        Ok(admitted) => admitted,
        Err(refused) => return Ok(refused),
    };
    if !settings.guest_full_keys && !matches!(access, GuestAccess::Admin(_)) {
        return Ok(html(StatusCode::FORBIDDEN, refused(lang, "guest.refused_masked")));
    }
    let sep = crate::domain::export::pick_separator(q.sep.as_deref(), q.custom_sep.as_deref());
    let request = ExportRequest::parse("valid", None, None, sep)
        .map_err(|e| AppError::BadRequest(crate::views::components::field_message(lang, &e)))?;
    debug_assert_eq!(request.scope, ExportScope::Valid);
    // No valid key: a page saying so (422), never an empty file.
    let count = db::run(&state.db, |conn| Ok(db::keys::count_export(conn, ExportScope::Valid, 0)?)).await?;
    if count == 0 {
        let page = crate::views::error::error_page(lang, 422, lang.t("guest.export_empty"));
        return Ok(html(StatusCode::UNPROCESSABLE_ENTITY, page));
    }
    super::keys::export_response(&state, request, 0).await
}

/// `GET /docs`: visible in every mode; the base URL is the public base URL setting, or this request's
/// own (honouring `X-Forwarded-Proto` / `X-Forwarded-Host`).
pub async fn get_docs(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, AppError> {
    let settings = state.settings();
    let admin = session::current_admin(&state, &session).await?;
    let base = super::base_url(&req, &settings);
    let path = super::path_and_query(&req);
    let ctx = PageContext { lang, nav: Nav::Docs, admin: admin.as_ref().map(|a| a.username.as_str()), path: &path };
    let view = DocsView { base_url: &base, contact: settings.contact.as_deref() };
    Ok(html(StatusCode::OK, docs_page(&ctx, &view)))
}
