//! An access key's limits from the settings page: `POST /admin/access-keys/{id}/limits` (the form),
//! `…/{id}/reset` (today's counters), `…/{id}/share` and `/admin/access-keys/unshare` (the guest
//! access key). Each answers with the access-keys section, like creating and revoking.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::lang::RequestLang;
use super::session::CurrentAdmin;
use super::settings::{keys_response, keys_view};
use crate::db;
use crate::domain::access_limits::{
    AccessLimits, Period, parse_count, parse_expiry, parse_models, parse_money, parse_note,
};
use crate::domain::{FieldError, FieldErrors};
use crate::error::AppError;
use crate::state::AppState;
use crate::views::access_limits::LimitsFormValues;
use crate::views::components::FlashKind;
use crate::views::settings::{AccessKeysView, LimitsEdit};

#[derive(Deserialize)]
pub struct LimitsForm {
    /// A checkbox: present when on.
    enabled: Option<String>,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    models: String,
    /// A checkbox: present when on.
    free_only: Option<String>,
    #[serde(default)]
    rpm: String,
    #[serde(default)]
    tpm: String,
    #[serde(default)]
    rpd: String,
    #[serde(default)]
    tpd: String,
    #[serde(default)]
    spend_day: String,
    #[serde(default)]
    spend_month: String,
    #[serde(default)]
    note: String,
}

impl From<LimitsForm> for LimitsFormValues {
    fn from(f: LimitsForm) -> Self {
        Self {
            enabled: f.enabled.is_some(),
            expires: f.expires,
            models: f.models,
            free_only: f.free_only.is_some(),
            rpm: f.rpm,
            tpm: f.tpm,
            rpd: f.rpd,
            tpd: f.tpd,
            spend_day: f.spend_day,
            spend_month: f.spend_month,
            note: f.note,
        }
    }
}

/// Every field of the form, each with its own message; the expiry is read in the upstream's time
/// zone (`offset_min`).
pub fn parse_limits(v: &LimitsFormValues, offset_min: i32) -> Result<AccessLimits, FieldErrors> {
    let mut errors = FieldErrors::default();
    let limits = AccessLimits {
        enabled: v.enabled,
        expires_at: keep(&mut errors, parse_expiry(&v.expires, offset_min)).flatten(),
        models: keep(&mut errors, parse_models(&v.models)).unwrap_or_default(),
        free_only: v.free_only,
        rpm: keep(&mut errors, parse_count("rpm", &v.rpm)).flatten(),
        tpm: keep(&mut errors, parse_count("tpm", &v.tpm)).flatten(),
        rpd: keep(&mut errors, parse_count("rpd", &v.rpd)).flatten(),
        tpd: keep(&mut errors, parse_count("tpd", &v.tpd)).flatten(),
        spend_day: keep(&mut errors, parse_money("spend_day", &v.spend_day)).flatten(),
        spend_month: keep(&mut errors, parse_money("spend_month", &v.spend_month)).flatten(),
        note: keep(&mut errors, parse_note(&v.note)).flatten(),
    };
    errors.into_result(limits)
}

/// The value, or `None` with its error kept.
fn keep<T>(errors: &mut FieldErrors, parsed: Result<T, FieldError>) -> Option<T> {
    parsed.map_err(|e| errors.push(e)).ok()
}

fn offset_min(state: &AppState) -> i32 {
    state.pool.runtime().proxy().upstream_utc_offset_min
}

/// The section with a success flash, after a change the gateway now knows.
async fn changed(
    req: &HttpRequest,
    lang: crate::i18n::Lang,
    state: &AppState,
    admin: &CurrentAdmin,
    flash: String,
) -> Result<HttpResponse, AppError> {
    state.access_keys.reload(&state.db, &state.pool.quotas).await?;
    let view = keys_view(state, Some((FlashKind::Success, flash))).await?;
    keys_response(req, lang, state, admin, StatusCode::OK, view).await
}

/// `POST /admin/access-keys/{id}/limits`: all fields valid, or nothing saved (422).
pub async fn post_access_key_limits(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    id: web::Path<i64>,
    form: web::Form<LimitsForm>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let values = LimitsFormValues::from(form.into_inner());
    let limits = match parse_limits(&values, offset_min(&state)) {
        Ok(limits) => limits,
        Err(errors) => {
            let flash = Some((FlashKind::Error, lang.t("settings.not_saved").to_owned()));
            let base = keys_view(&state, flash).await?;
            let view = AccessKeysView { editing: Some(LimitsEdit { id, values, errors }), ..base };
            return keys_response(&req, lang, &state, &admin, StatusCode::UNPROCESSABLE_ENTITY, view).await;
        }
    };
    let saved = db::run(&state.db, move |conn| Ok(db::access_keys::set_limits(conn, id, &limits)?)).await?;
    if saved {
        tracing::info!(admin = %admin.username, access_key_id = id, "access key limits saved");
    }
    let flash = if saved { "access_keys.limits.saved" } else { "access_keys.already_gone" };
    changed(&req, lang, &state, &admin, lang.t(flash).to_owned()).await
}

/// `POST /admin/access-keys/{id}/reset`: forgets this minute's and today's counts, here and in the
/// database (every instance reads zero at its next tick).
pub async fn post_access_key_reset(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let (now, offset) = (state.now_ms(), offset_min(&state));
    let (minute, day) = (Period::Minute.window(now, offset).0, Period::Day.window(now, offset).0);
    let name = db::run(&state.db, move |conn| {
        let Some(key) = db::access_keys::find(conn, id)? else { return Ok(None) };
        db::access_keys::reset_quota_day(conn, id, minute, day)?;
        Ok(Some(key.name))
    })
    .await?;
    let flash = match name {
        Some(name) => {
            if let Some(quota) = state.pool.quotas.get(id) {
                quota.reset_day();
            }
            tracing::info!(admin = %admin.username, access_key_id = id, "access key counters of today reset");
            lang.tf("access_keys.limits.reset_done", &[("name", &name)])
        }
        None => lang.t("access_keys.already_gone").to_owned(),
    };
    changed(&req, lang, &state, &admin, flash).await
}

/// `POST /admin/access-keys/{id}/share`: the guest access key, with a new token.
pub async fn post_access_key_share(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let name = db::run(&state.db, move |conn| {
        let Some(key) = db::access_keys::find(conn, id)? else { return Ok(None) };
        db::access_keys::share_with_guests(conn, Some(id))?;
        Ok(Some(key.name))
    })
    .await?;
    let flash = match name {
        Some(name) => {
            tracing::info!(admin = %admin.username, access_key_id = id, "access key shared with guests");
            lang.tf("access_keys.limits.shared_done", &[("name", &name)])
        }
        None => lang.t("access_keys.already_gone").to_owned(),
    };
    changed(&req, lang, &state, &admin, flash).await
}

/// `POST /admin/access-keys/unshare`: no guest access key (its token keeps working).
pub async fn post_access_key_unshare(
    req: HttpRequest,
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
) -> Result<HttpResponse, AppError> {
    db::run(&state.db, |conn| Ok(db::access_keys::share_with_guests(conn, None)?)).await?;
    tracing::info!(admin = %admin.username, "guest access key no longer shared");
    changed(&req, lang, &state, &admin, lang.t("access_keys.limits.unshared_done").to_owned()).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> LimitsFormValues {
        let mut v = LimitsFormValues { enabled: true, ..LimitsFormValues::default() };
        for (k, x) in pairs {
            let x = (*x).to_owned();
            match *k {
                "expires" => v.expires = x,
                "models" => v.models = x,
                "rpm" => v.rpm = x,
                "tpd" => v.tpd = x,
                "spend_day" => v.spend_day = x,
                "spend_month" => v.spend_month = x,
                "note" => v.note = x,
                _ => unreachable!(),
            }
        }
        v
    }

    #[test]
    fn every_field_is_parsed() {
        let v = values(&[
            ("rpm", "60"),
            ("tpd", "1,000"),
            ("spend_day", "2.5"),
            ("spend_month", ""),
            ("models", "Qwen/*\ndeepseek-ai/DeepSeek-V3"),
            ("expires", "2026-12-04T18:00"),
            ("note", " for Bob "),
        ]);
        let l = parse_limits(&v, 480).unwrap();
        assert_eq!((l.rpm, l.tpd, l.spend_day, l.spend_month), (Some(60), Some(1000), Some(2.5), None));
        assert_eq!(l.models, ["Qwen/*", "deepseek-ai/DeepSeek-V3"]);
        assert_eq!(l.expires_at, Some(1_796_378_400_000));
        assert_eq!(l.note.as_deref(), Some("for Bob"));
        assert!(l.enabled && !l.free_only);
    }

    #[test]
    fn every_bad_field_gets_its_own_message() {
        let v = values(&[("rpm", "-1"), ("spend_month", "lots"), ("expires", "friday"), ("note", "ok")]);
        let errors = parse_limits(&v, 480).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["expires", "rpm", "spend_month"]);
        assert_eq!(errors.get("spend_month").unwrap().key, "access_keys.limits.money_invalid");
    }
}
