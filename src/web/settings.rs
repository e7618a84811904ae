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
use crate::domain::settings::{PROXY_RANGES, Settings, SettingsChange, format_utc_offset};
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

fn stored_values(s: &Settings) -> SystemValues {
    SystemValues {
        access_mode: s.access_mode.as_str().to_owned(),
        guest_password_set: s.guest_password_hash.is_some(),
        guest_page_size: s.guest_page_size.to_string(),
        upstream_url: s.upstream_url.clone(),
        client_request_mode: s.client_request_mode,
        guest_full_keys: s.guest_full_keys,
        public_base_url: s.public_base_url.clone().unwrap_or_default(),
        contact: s.contact.clone().unwrap_or_default(),
        auto_check_minutes: s.auto_check_minutes.to_string(),
        min_balance: crate::domain::keys::format_balance(s.min_balance),
        check_probe_model: s.check_probe_model.clone().unwrap_or_default(),
        check_timeout_secs: s.check_timeout_secs.to_string(),
        history_retention_days: s.history_retention_days.to_string(),
        selection_strategy: s.proxy.selection_strategy.as_str().to_owned(),
        proxy_numbers: PROXY_RANGES.iter().map(|(name, ..)| (*name, s.proxy.get(name).to_string())).collect(),
        cors_origins: s.proxy.cors_origins.to_setting(),
        free_models: s.proxy.free_models.join("\n"),
        upstream_utc_offset: format_utc_offset(s.proxy.upstream_utc_offset_min),
        metrics_public: s.metrics_public,
        metrics_token_set: s.metrics_token_hash.is_some(),
    }
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
            values: stored_values(&state.settings().await?),
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

#[derive(Deserialize)]
pub struct SystemForm {
    #[serde(default)]
    access_mode: String,
    #[serde(default)]
    guest_password: String,
    #[serde(default)]
    guest_page_size: String,
    #[serde(default)]
    upstream_url: String,
    /// A checkbox: present when on.
    client_request_mode: Option<String>,
    /// A checkbox: present when on.
    guest_full_keys: Option<String>,
    #[serde(default)]
    public_base_url: String,
    #[serde(default)]
    contact: String,
    auto_check_minutes: Option<String>,
    min_balance: Option<String>,
    check_probe_model: Option<String>,
    check_timeout_secs: Option<String>,
    history_retention_days: Option<String>,
    selection_strategy: Option<String>,
    max_attempts: Option<String>,
    max_body_mb: Option<String>,
    connect_timeout_s: Option<String>,
    first_byte_timeout_s: Option<String>,
    idle_timeout_s: Option<String>,
    cooldown_s: Option<String>,
    incident_min_keys: Option<String>,
    incident_failure_pct: Option<String>,
    request_log_retention_days: Option<String>,
    rollup_retention_days: Option<String>,
    cors_origins: Option<String>,
    /// One model per line (commas and spaces separate too); empty means no free model.
    free_models: Option<String>,
    upstream_utc_offset: Option<String>,
    /// A checkbox: present when on.
    metrics_public: Option<String>,
    /// Blank keeps the stored token, `off` removes it.
    #[serde(default)]
    metrics_token: String,
}

impl SystemForm {
    /// The numeric gateway fields, by their names in [`PROXY_RANGES`].
    fn proxy_numbers(&self) -> [(&'static str, &Option<String>); 10] {
        [
            ("max_attempts", &self.max_attempts),
            ("max_body_mb", &self.max_body_mb),
            ("connect_timeout_s", &self.connect_timeout_s),
            ("first_byte_timeout_s", &self.first_byte_timeout_s),
            ("idle_timeout_s", &self.idle_timeout_s),
            ("cooldown_s", &self.cooldown_s),
            ("incident_min_keys", &self.incident_min_keys),
            ("incident_failure_pct", &self.incident_failure_pct),
            ("request_log_retention_days", &self.request_log_retention_days),
            ("rollup_retention_days", &self.rollup_retention_days),
        ]
    }
}

pub async fn post_settings(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<SystemForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let checkbox = |present: bool| if present { "on" } else { "off" };
    let optional = [
        ("auto_check_minutes", &form.auto_check_minutes),
        ("min_balance", &form.min_balance),
        ("check_probe_model", &form.check_probe_model),
        ("check_timeout_secs", &form.check_timeout_secs),
        ("history_retention_days", &form.history_retention_days),
        ("selection_strategy", &form.selection_strategy),
        ("cors_origins", &form.cors_origins),
        ("free_models", &form.free_models),
        ("upstream_utc_offset", &form.upstream_utc_offset),
    ];
    let present =
        optional.into_iter().chain(form.proxy_numbers()).filter_map(|(name, v)| v.as_deref().map(|v| (name, v)));
    let parsed = SettingsChange::parse(present.chain([
        ("access_mode", form.access_mode.as_str()),
        ("guest_password", form.guest_password.as_str()),
        ("guest_page_size", form.guest_page_size.as_str()),
        ("upstream_url", form.upstream_url.as_str()),
        ("client_request_mode", checkbox(form.client_request_mode.is_some())),
        ("guest_full_keys", checkbox(form.guest_full_keys.is_some())),
        ("public_base_url", form.public_base_url.as_str()),
        ("contact", form.contact.as_str()),
        ("metrics_public", checkbox(form.metrics_public.is_some())),
        ("metrics_token", form.metrics_token.as_str()),
    ]));
    let now = state.now_ms();
    // On failure: the errors, and the stored settings when they were already read.
    let outcome: Result<(), (FieldErrors, Option<Settings>)> = match parsed {
        Err(errors) => Err((errors, None)),
        Ok(change) => {
            db::run(&state.db, move |conn| {
                let current = db::settings::current(conn)?;
                match current.apply(&change, password::hash) {
                    Ok(rows) => {
                        db::settings::put_many(conn, &rows, now)?;
                        Ok(Ok(()))
                    }
                    Err(errors) => Ok(Err((errors, Some(current)))),
                }
            })
            .await?
        }
    };
    let upstream_override = state.config.upstream_override.as_deref();
    let (view, status) = match outcome {
        Ok(()) => {
            // Reads the saved settings back and hands them to the proxy, which uses them at once.
            let saved = state.settings().await?;
            tracing::info!(admin = %admin.username, "settings saved");
            (
                SystemView {
                    values: stored_values(&saved),
                    upstream_override,
                    errors: FieldErrors::default(),
                    flash: Some((FlashKind::Success, lang.t("settings.saved").to_owned())),
                },
                StatusCode::OK,
            )
        }
        Err((errors, stored)) => {
            let stored = match stored {
                Some(s) => s,
                None => state.settings().await?,
            };
            let proxy_numbers =
                form.proxy_numbers().into_iter().map(|(name, v)| (name, v.clone().unwrap_or_default())).collect();
            (
                SystemView {
                    values: SystemValues {
                        access_mode: form.access_mode,
                        guest_password_set: stored.guest_password_hash.is_some(),
                        guest_page_size: form.guest_page_size,
                        upstream_url: form.upstream_url,
                        client_request_mode: form.client_request_mode.is_some(),
                        guest_full_keys: form.guest_full_keys.is_some(),
                        public_base_url: form.public_base_url,
                        contact: form.contact,
                        auto_check_minutes: form.auto_check_minutes.unwrap_or_default(),
                        min_balance: form.min_balance.unwrap_or_default(),
                        check_probe_model: form.check_probe_model.unwrap_or_default(),
                        check_timeout_secs: form.check_timeout_secs.unwrap_or_default(),
                        history_retention_days: form.history_retention_days.unwrap_or_default(),
                        selection_strategy: form.selection_strategy.unwrap_or_default(),
                        proxy_numbers,
                        cors_origins: form.cors_origins.unwrap_or_default(),
                        free_models: form.free_models.unwrap_or_default(),
                        upstream_utc_offset: form.upstream_utc_offset.unwrap_or_default(),
                        metrics_public: form.metrics_public.is_some(),
                        metrics_token_set: stored.metrics_token_hash.is_some(),
                    },
                    upstream_override,
                    errors,
                    flash: Some((FlashKind::Error, lang.t("settings.not_saved").to_owned())),
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    };
    let fragment = || system_section(lang, &view);
    if super::is_htmx(&req) {
        return Ok(html(status, fragment()));
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
