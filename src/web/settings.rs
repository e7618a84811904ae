//! 系统设置 / Settings: `GET /admin/settings`, the system form, the account form and access keys.
//! htmx submits get their section back; plain form posts get the whole page.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::auth::html;
use super::lang::RequestLang;
use super::session::{self, CurrentAdmin};
use crate::db;
use crate::domain::access_limits::{Counts, Period};
use crate::domain::account::AccountChange;
use crate::domain::settings::{Kind, SETTINGS, Setting, Settings, SettingsChange, find};
use crate::domain::{FieldError, FieldErrors, access_token, password};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::views::components::FlashKind;
use crate::views::layout::{Nav, PageContext};
use crate::views::settings::{
    AccessKeyItem, AccessKeysView, AccountView, Flash, SystemValues, SystemView, UsageFigures, access_keys_section,
    account_section, settings_page, system_section,
};

/// The access-keys section as stored, with a flash.
pub(super) async fn keys_view(state: &AppState, flash: Flash) -> Result<AccessKeysView, AppError> {
    Ok(AccessKeysView {
        items: load_access_keys(state).await?,
        created: None,
        name_value: String::new(),
        errors: FieldErrors::default(),
        flash,
        editing: None,
        now: state.now_ms(),
        offset_min: state.pool.runtime().proxy().upstream_utc_offset_min,
    })
}

async fn load_access_keys(state: &AppState) -> Result<Vec<AccessKeyItem>, AppError> {
    let now = state.now_ms();
    // "Today" in the upstream's time zone, where the balance's day turns.
    let offset = i64::from(state.pool.runtime().proxy().upstream_utc_offset_min) * 60_000;
    let day = 86_400_000;
    let windows = [now - (now + offset).rem_euclid(day), now - 7 * day, now - 30 * day];
    let (rows, usage) = db::run(&state.db, move |conn| {
        let rows = db::access_keys::list(conn)?;
        let mut usage = Vec::new();
        for since in windows {
            usage.push(db::traffic::per_access_key(conn, since)?);
        }
        Ok((rows, usage))
    })
    .await?;
    let figures = |id: i64| -> [UsageFigures; 3] {
        std::array::from_fn(|w| {
            usage[w].iter().find(|(k, _)| *k == id).map_or_else(UsageFigures::default, |(_, t)| UsageFigures {
                requests: t.requests,
                tokens: t.prompt_tokens + t.completion_tokens,
                cost: t.cost,
            })
        })
    };
    let offset_min = state.pool.runtime().proxy().upstream_utc_offset_min;
    let quota = |id: i64| {
        state
            .pool
            .quotas
            .get(id)
            .map(|q| q.usage(now, offset_min))
            .unwrap_or_else(|| Period::ALL.map(|p| (Counts::default(), p.window(now, offset_min).1)))
    };
    Ok(rows
        .into_iter()
        .map(|k| AccessKeyItem {
            usage: figures(k.id),
            limits: k.limits(),
            quota: quota(k.id),
            shared: k.shared_token.is_some(),
            id: k.id,
            name: k.name,
            hint: k.token_hint,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            request_count: k.request_count,
            failure_count: k.failure_count,
        })
        .collect())
}

/// The three sections; any of them may be replaced by the outcome of a submit.
struct Sections<'a> {
    account: Option<AccountView<'a>>,
    system: Option<SystemView<'a>>,
    keys: Option<AccessKeysView>,
}

async fn full_page(
    lang: &Lang,
    state: &'_ AppState,
    admin: &CurrentAdmin,
    sections: Sections<'_>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let system = match sections.system {
        Some(s) => s,
        None => SystemView {
            values: SystemValues::stored(&state.settings()),
            upstream_override: state.config.upstream_override.as_deref(),
            errors: FieldErrors::default(),
            flash: None,
        },
    };
    let keys = match sections.keys {
        Some(k) => k,
        None => keys_view(state, None).await?,
    };
    let account = sections.account.unwrap_or(AccountView {
        username: &admin.username,
        errors: FieldErrors::default(),
        flash: None,
    });
    let ctx = PageContext { lang: *lang, nav: Nav::Settings, admin: Some(&admin.username), path: "/admin/settings" };
    Ok(html(status, settings_page(&ctx, &account, &system, &keys)))
}

pub async fn get_settings(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
) -> Result<HttpResponse, AppError> {
    let sections = Sections { account: None, system: None, keys: None };
    full_page(&lang, &state, &admin, sections, StatusCode::OK).await
}

/// The system form as posted: every declared setting, by name. A switch is present only when on; any
/// other setting left out of the form stays as it is.
pub struct SystemForm(Vec<(String, String)>);

impl SystemForm {
    /// The `NAME=VALUE` pairs to check, as `keypool settings set` takes them.
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        let posted = |name: &str| self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        SETTINGS
            .iter()
            .filter_map(|s| match (s.kind, posted(s.name)) {
                (Kind::Bool, value) => Some((s.name, if value.is_some() { "on" } else { "off" })),
                (_, value) => value.map(|v| (s.name, v)),
            })
            .collect()
    }

    /// The values shown again after a refused submit: as typed (secrets never), with the stored
    /// settings' values for what the form left out.
    fn shown(&self, stored: &Settings) -> SystemValues {
        let mut values = SystemValues::stored(stored);
        for (name, value) in self.pairs() {
            if !find(name).is_some_and(Setting::is_secret) {
                values.texts.insert(name, value.to_owned());
            }
        }
        values
    }
}

pub async fn post_settings(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let form = SystemForm(form.into_inner());
    let upstream_override = state.config.upstream_override.as_deref();
    let saved = match SettingsChange::parse(form.pairs()) {
        Ok(change) => state.save_settings(change).await?,
        Err(errors) => Err(errors),
    };
    let (view, status) = match saved {
        Ok(saved) => {
            tracing::info!(admin = %admin.username, "settings saved");
            let flash = Some((FlashKind::Success, lang.t("settings.saved").to_owned()));
            let values = SystemValues::stored(&saved);
            (SystemView { values, upstream_override, errors: FieldErrors::default(), flash }, StatusCode::OK)
        }
        Err(errors) => {
            let flash = Some((FlashKind::Error, lang.t("settings.not_saved").to_owned()));
            let values = form.shown(&state.settings());
            (SystemView { values, upstream_override, errors, flash }, StatusCode::UNPROCESSABLE_ENTITY)
        }
    };
    if super::is_htmx(&req) {
        return Ok(html(status, system_section(lang, &view)));
    }
    let sections = Sections { account: None, system: Some(view), keys: None };
    full_page(&lang, &state, &admin, sections, status).await
}

#[derive(Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// Verifies the current password and applies the change. Argon2 runs on the blocking pool with no
/// database connection held; the write then checks that the credentials did not change meanwhile.
async fn change_credentials(
    state: &AppState,
    admin_id: i64,
    current: String,
    change: AccountChange,
    now: i64,
) -> Result<Result<(String, i64), FieldErrors>, AppError> {
    let Some(stored) = db::run(&state.db, move |conn| Ok(db::admins::find(conn, admin_id)?)).await? else {
        return Err(AppError::NotFound);
    };
    let wrong = || Ok(Err(FieldErrors(vec![FieldError::new("current_password", "settings.account.current_wrong")])));
    let verified_hash = stored.password_hash.clone();
    let new_password = change.new_password.clone();
    let new_hash = web::block(move || -> Result<Option<String>, AppError> {
        if !password::verify(&current, &verified_hash) {
            return Ok(None);
        }
        Ok(Some(match new_password {
            Some(pw) => password::hash(&pw).map_err(AppError::Internal)?,
            None => verified_hash,
        }))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    let Some(hash) = new_hash else { return wrong() };
    let written = db::run_as(&state.db, move |conn| {
        let Some(now_stored) = db::admins::find(conn, admin_id)? else {
            return Err(AppError::NotFound);
        };
        if now_stored.credentials_version != stored.credentials_version
            || now_stored.password_hash != stored.password_hash
        {
            // Changed by another request since the password was checked.
            return Ok(Err(FieldError::new("current_password", "settings.account.current_wrong")));
        }
        // The unique index decides a name taken by another admin, also one taken a moment ago.
        match db::admins::update_credentials(conn, admin_id, &change.username, &hash, now) {
            Ok(_) => Ok(Ok((change.username, stored.credentials_version + 1))),
            Err(e) if db::error::is_unique_violation(&e) => {
                Ok(Err(FieldError::new("username", "settings.account.username_taken")))
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    Ok(written.map_err(|e| FieldErrors(vec![e])))
}

pub async fn post_account(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    session: Session,
    form: web::Form<AccountForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let addr = super::client_addr(&req, &state);
    let now = state.now_ms();
    // Counted before verifying (see `auth::post_login`); released when the password was not checked.
    let attempt = match state.login_throttle.reserve(&addr, now) {
        Ok(attempt) => attempt,
        Err(retry_after_secs) => return Err(AppError::TooManyRequests { retry_after_secs }),
    };
    let admin_id = admin.id;
    let current = form.current_password;
    let outcome: Result<(String, i64), FieldErrors> =
        match AccountChange::parse(&form.username, &form.new_password, &form.confirm_password) {
            Err(errors) => Err(errors),
            Ok(change) => change_credentials(&state, admin_id, current, change, now).await?,
        };
    let (view_username, view_errors, flash, status) = match outcome {
        Ok((username, version)) => {
            state.login_throttle.succeed(&addr);
            session::refresh_credentials(&session, version)?;
            tracing::info!(admin = %username, "admin credentials changed; other sessions ended");
            (username, FieldErrors::default(), (FlashKind::Success, lang.t("settings.account.saved")), StatusCode::OK)
        }
        Err(errors) => {
            if errors.get("current_password").is_none() {
                state.login_throttle.release(&addr, attempt);
            }
            (form.username, errors, (FlashKind::Error, lang.t("settings.not_saved")), StatusCode::UNPROCESSABLE_ENTITY)
        }
    };
    let view =
        AccountView { username: &view_username, errors: view_errors, flash: Some((flash.0, flash.1.to_owned())) };
    if super::is_htmx(&req) {
        return Ok(html(status, account_section(lang, &view)));
    }
    // The header shows the new name after a change.
    let shown = CurrentAdmin {
        id: admin.id,
        username: if status == StatusCode::OK { view_username.clone() } else { admin.username.clone() },
    };
    let sections = Sections { account: Some(view), system: None, keys: None };
    full_page(&lang, &state, &shown, sections, status).await
}

#[derive(Deserialize)]
pub struct AccessKeyForm {
    #[serde(default)]
    name: String,
}

pub async fn post_access_key(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<AccessKeyForm>,
) -> Result<HttpResponse, AppError> {
    let raw = form.into_inner().name;
    let now = state.now_ms();
    let created = match access_token::parse_name(&raw) {
        Err(e) => Err(e),
        Ok(name) => db::run(&state.db, move |conn| Ok(db::access_keys::create_named(conn, &name, now)?)).await?,
    };
    let (view, status) = match created {
        Ok((name, token)) => {
            state.access_keys.reload(&state.db, &state.pool.quotas).await?;
            tracing::info!(admin = %admin.username, access_key = %name, "access key created");
            let view = AccessKeysView { created: Some((name, token)), ..keys_view(&state, None).await? };
            (view, StatusCode::OK)
        }
        Err(e) => {
            let mut errors = FieldErrors::default();
            errors.push(e);
            let view = AccessKeysView { name_value: raw, errors, ..keys_view(&state, None).await? };
            (view, StatusCode::UNPROCESSABLE_ENTITY)
        }
    };
    keys_response(&req, lang, &state, &admin, status, view).await
}

pub async fn post_access_key_revoke(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let removed = db::run(&state.db, move |conn| Ok(db::access_keys::revoke(conn, id)?)).await?;
    state.access_keys.reload(&state.db, &state.pool.quotas).await?;
    if removed {
        tracing::info!(admin = %admin.username, access_key_id = id, "access key revoked");
    }
    let flash_key = if removed { "access_keys.revoked" } else { "access_keys.already_gone" };
    let view = keys_view(&state, Some((FlashKind::Success, lang.t(flash_key).to_owned()))).await?;
    keys_response(&req, lang, &state, &admin, StatusCode::OK, view).await
}

/// The access-keys section: the fragment for htmx, the whole page otherwise.
pub(super) async fn keys_response(
    req: &HttpRequest,
    lang: Lang,
    state: &AppState,
    admin: &CurrentAdmin,
    status: StatusCode,
    view: AccessKeysView,
) -> Result<HttpResponse, AppError> {
    if super::is_htmx(req) {
        return Ok(html(status, access_keys_section(lang, &view)));
    }
    let sections = Sections { account: None, system: None, keys: Some(view) };
    full_page(&lang, state, admin, sections, status).await
}
