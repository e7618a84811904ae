//! Access keys' limits at the gateway: disabled and expired keys get 401, a model the key may not use
//! 403 with the models it may, a used-up quota 429 with `Retry-After` and the time it resets. All
//! from memory ([`super::auth::Client`] and its [`crate::pool::quota::Quota`]).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::auth::Client;
use super::{openai_error, with_retry_after};
use crate::domain::access_limits::{Limit, Refusal, format_money};
use crate::domain::settings::{ProxySettings, format_utc_offset};

/// What a request is refused with, and the reason logged.
pub struct Refused {
    pub response: HttpResponse,
    pub reason: String,
}

/// Admits a request of `client` for `model` (`None`: none could be read from the request) at `now`:
/// counted against its quotas when admitted.
pub fn admit(
    client: &Client,
    model: Option<&str>,
    needs_model: bool,
    settings: &ProxySettings,
    now: i64,
) -> Result<(), Refusal> {
    if let Some(refusal) = client.limits.refuses_key(now) {
        return Err(refusal);
    }
    if client.limits.restricts_models() {
        match model {
            Some(m) if client.limits.allows_model(m, settings.is_free_model(m)) => {}
            Some(m) => return Err(Refusal::Model { model: Some(m.to_owned()) }),
            None if needs_model => return Err(Refusal::Model { model: None }),
            None => {}
        }
    }
    match &client.quota {
        Some(quota) => quota.admit(&client.limits, now, settings.upstream_utc_offset_min),
        None => Ok(()),
    }
}

/// The OpenAI-shaped answer to a refusal.
pub fn refuse(client: &Client, refusal: &Refusal, settings: &ProxySettings, now: i64) -> Refused {
    let offset = settings.upstream_utc_offset_min;
    let name = &client.name;
    match refusal {
        Refusal::Disabled => Refused {
            response: openai_error(
                StatusCode::UNAUTHORIZED,
                &format!("The access key `{name}` is disabled; ask the pool's admin to enable it."),
                "invalid_request_error",
                "access_key_disabled",
            ),
            reason: "access key disabled".to_owned(),
        },
        Refusal::Expired { at } => Refused {
            response: openai_error(
                StatusCode::UNAUTHORIZED,
                &format!("The access key `{name}` expired at {}.", local_time(*at, offset)),
                "invalid_request_error",
                "access_key_expired",
            ),
            reason: "access key expired".to_owned(),
        },
        Refusal::Model { model } => {
            let allowed = allowed_models(client, settings);
            let message = match model {
                Some(m) => format!("The access key `{name}` may not use the model `{m}`; it may use: {allowed}."),
                None => format!(
                    "The access key `{name}` may use only some models ({allowed}), and keypool could not read a \
                     `model` from this request's JSON body."
                ),
            };
            Refused {
                response: openai_error(StatusCode::FORBIDDEN, &message, "permission_error", "model_not_allowed"),
                reason: format!("model not allowed: {}", model.as_deref().unwrap_or("(none)")),
            }
        }
        Refusal::Quota { limit, value, used, resets_at } => {
            let what = describe(*limit, *value);
            let over = if used > value {
                let by =
                    if limit.is_spend() { format_money(used - value) } else { format!("{}", (used - value) as i64) };
                format!(" (used: over by {by})")
            } else {
                String::new()
            };
            let wait_s = ((resets_at - now) + 999) / 1000;
            let message = format!(
                "The access key `{name}` reached its limit of {what}{over}; it resets at {} (in {}).",
                local_time(*resets_at, offset),
                wait_text(wait_s),
            );
            Refused {
                response: with_retry_after(
                    openai_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        &message,
                        "rate_limit_error",
                        &format!("access_key_{}_limit", limit.name()),
                    ),
                    wait_s,
                ),
                reason: format!("access key limit {} reached", limit.name()),
            }
        }
    }
}

/// `10 requests per minute`, `¥5 spent per day` …
pub fn describe(limit: Limit, value: f64) -> String {
    let n = value as i64;
    match limit {
        Limit::Rpm => format!("{n} requests per minute"),
        Limit::Tpm => format!("{n} tokens per minute"),
        Limit::Rpd => format!("{n} requests per day"),
        Limit::Tpd => format!("{n} tokens per day"),
        Limit::SpendDay => format!("{} spent per day", format_money(value)),
        Limit::SpendMonth => format!("{} spent per month", format_money(value)),
    }
}

fn allowed_models(client: &Client, settings: &ProxySettings) -> String {
    let mut parts: Vec<String> = client.limits.models.iter().map(|m| format!("`{m}`")).collect();
    if client.limits.free_only {
        let free: Vec<String> = settings.free_models.iter().map(|m| format!("`{m}`")).collect();
        let free = if free.is_empty() { "none configured".to_owned() } else { free.join(", ") };
        if parts.is_empty() {
            parts.push(format!("the free models ({free})"));
        } else {
            parts.push(format!("and of those only the free models ({free})"));
        }
    }
    parts.join(", ")
}

/// `2026-12-01 00:00:00 (UTC+8)`.
pub fn local_time(ms: i64, offset_min: i32) -> String {
    let shifted = ms + i64::from(offset_min) * 60_000;
    let t = chrono::DateTime::from_timestamp_millis(shifted).unwrap_or_default();
    format!("{} ({})", t.format("%Y-%m-%d %H:%M:%S"), format_utc_offset(offset_min))
}

fn wait_text(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3_600, (s % 3_600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_waits_read_naturally() {
        assert_eq!(local_time(0, 480), "1970-01-01 08:00:00 (UTC+8)");
        assert_eq!(wait_text(23), "23 s");
        assert_eq!(wait_text(600), "10 min");
        assert_eq!(wait_text(3 * 3600 + 120), "3 h 2 min");
        assert_eq!(describe(Limit::SpendDay, 2.5), "2.5 spent per day");
        assert_eq!(describe(Limit::Rpm, 10.0), "10 requests per minute");
    }
}
