//! The runtime settings (系统设置): their names, defaults, parsing and cross-field rules, shared by the
//! settings page and `keypool settings set`. Stored as name → text rows; see [`Settings::from_stored`].

use std::collections::HashMap;

use super::proxy::{CorsOrigins, SelectionStrategy};
use super::{FieldError, FieldErrors};

pub const DEFAULT_UPSTREAM_URL: &str = "https://api.siliconflow.cn";
pub const DEFAULT_GUEST_PAGE_SIZE: u32 = 12;

/// The names accepted by `keypool settings set NAME=VALUE`, in display order.
pub const NAMES: &[&str] = &[
    "access_mode",
    "guest_password",
    "guest_page_size",
    "guest_full_keys",
    "upstream_url",
    "client_request_mode",
    "public_base_url",
    "contact",
    "auto_check_minutes",
    "min_balance",
    "check_probe_model",
    "check_timeout_secs",
    "history_retention_days",
    "selection_strategy",
    "max_attempts",
    "max_body_mb",
    "connect_timeout_s",
    "first_byte_timeout_s",
    "idle_timeout_s",
    "cooldown_s",
    "cors_origins",
    "request_log_retention_days",
    "metrics_public",
    "metrics_token",
];

/// The schedule choices of `auto_check_minutes` (0 = off).
pub const AUTO_CHECK_CHOICES: [u32; 7] = [0, 5, 15, 30, 60, 360, 1440];

/// The longest contact line shown on the docs page.
pub const MAX_CONTACT_LEN: usize = 200;

/// Who may see the guest page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessMode {
    /// 完全开放: anyone.
    Open,
    /// 部分开放: visitors who know the guest password.
    Restricted,
    /// 完全私有: admins only (the default until the admin chooses).
    #[default]
    Private,
}

impl AccessMode {
    pub const ALL: [AccessMode; 3] = [Self::Open, Self::Restricted, Self::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Restricted => "restricted",
            Self::Private => "private",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == raw.trim())
    }
}

/// The current settings, with defaults for anything never stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub access_mode: AccessMode,
    /// argon2 PHC string of the guest password; never shown.
    pub guest_password_hash: Option<String>,
    pub guest_page_size: u32,
    /// Base URL of the SiliconFlow API, without a trailing slash.
    pub upstream_url: String,
    /// Checks run from the admin's browser instead of the server (used by the checks feature).
    pub client_request_mode: bool,
    /// Guests see and copy whole keys (otherwise masked, and no export).
    pub guest_full_keys: bool,
    /// The address clients use (e.g. behind a proxy), shown on the docs page; empty = from the request.
    pub public_base_url: Option<String>,
    /// The admin's contact line on the docs page (how to ask for an access key).
    pub contact: Option<String>,
    /// Re-check every key that is not disabled this often (0 = off).
    pub auto_check_minutes: u32,
    /// A key is `active` when its total balance is above this.
    pub min_balance: f64,
    /// A one-token chat completion on this model proves the key can call (empty = no probe).
    pub check_probe_model: Option<String>,
    /// Timeout of one check request, in seconds.
    pub check_timeout_secs: u32,
    /// Balance history older than this is deleted.
    pub history_retention_days: u32,
    /// Bumped whenever the access mode or guest password changes: guest sessions of an older epoch end.
    pub guest_epoch: i64,
    /// The proxy's tuning: how it picks keys, fails over and times out.
    pub proxy: ProxySettings,
    /// Anyone may read `/metrics` (otherwise a signed-in admin, or the metrics token).
    pub metrics_public: bool,
    /// SHA-256 (hex) of the token that lets a scraper read `/metrics`; never shown.
    pub metrics_token_hash: Option<String>,
}

/// The gateway's settings, kept in memory by the proxy (the hot path reads no database).
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    pub selection_strategy: SelectionStrategy,
    /// Upstream attempts per request, each on a different key (1–10).
    pub max_attempts: u32,
    /// Largest request body accepted, in MB (1–1024).
    pub max_body_mb: u32,
    pub connect_timeout_s: u32,
    /// Until the upstream's response head; reasoning models are slow to start.
    pub first_byte_timeout_s: u32,
    /// Longest silence between two chunks of a streamed answer.
    pub idle_timeout_s: u32,
    /// How long a rate-limited key cools when the upstream gives no `Retry-After`.
    pub cooldown_s: u32,
    pub cors_origins: CorsOrigins,
    /// Request-log rows older than this are deleted.
    pub request_log_retention_days: u32,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            selection_strategy: SelectionStrategy::default(),
            max_attempts: 3,
            max_body_mb: 32,
            connect_timeout_s: 10,
            first_byte_timeout_s: 300,
            idle_timeout_s: 120,
            cooldown_s: 60,
            cors_origins: CorsOrigins::Any,
            request_log_retention_days: 7,
        }
    }
}

/// Bounds of the numeric proxy settings: (name, min, max).
pub const PROXY_RANGES: [(&str, u32, u32); 7] = [
    ("max_attempts", 1, 10),
    ("max_body_mb", 1, 1024),
    ("connect_timeout_s", 1, 120),
    ("first_byte_timeout_s", 1, 3600),
    ("idle_timeout_s", 1, 3600),
    ("cooldown_s", 1, 3600),
    ("request_log_retention_days", 1, 365),
];

impl ProxySettings {
    /// The value of a numeric proxy setting by name (for forms and `settings list`).
    pub fn get(&self, name: &str) -> u32 {
        match name {
            "max_attempts" => self.max_attempts,
            "max_body_mb" => self.max_body_mb,
            "connect_timeout_s" => self.connect_timeout_s,
            "first_byte_timeout_s" => self.first_byte_timeout_s,
            "idle_timeout_s" => self.idle_timeout_s,
            "cooldown_s" => self.cooldown_s,
            _ => self.request_log_retention_days,
        }
    }

    fn number_mut(&mut self, name: &str) -> &mut u32 {
        match name {
            "max_attempts" => &mut self.max_attempts,
            "max_body_mb" => &mut self.max_body_mb,
            "connect_timeout_s" => &mut self.connect_timeout_s,
            "first_byte_timeout_s" => &mut self.first_byte_timeout_s,
            "idle_timeout_s" => &mut self.idle_timeout_s,
            "cooldown_s" => &mut self.cooldown_s,
            _ => &mut self.request_log_retention_days,
        }
    }
}

/// The field name of a numeric proxy setting as a `'static` str.
fn proxy_field(name: &str) -> Option<(&'static str, u32, u32)> {
    PROXY_RANGES.iter().find(|(n, ..)| *n == name).copied()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_mode: AccessMode::default(),
            guest_password_hash: None,
            guest_page_size: DEFAULT_GUEST_PAGE_SIZE,
            upstream_url: DEFAULT_UPSTREAM_URL.to_owned(),
            client_request_mode: false,
            guest_full_keys: true,
            public_base_url: None,
            contact: None,
            auto_check_minutes: 60,
            min_balance: 0.0,
            check_probe_model: None,
            check_timeout_secs: 15,
            history_retention_days: 90,
            guest_epoch: 0,
            proxy: ProxySettings::default(),
            metrics_public: false,
            metrics_token_hash: None,
        }
    }
}

/// Storage names that are not user-facing settings.
pub const GUEST_PASSWORD_HASH: &str = "guest_password_hash";
pub const GUEST_EPOCH: &str = "guest_epoch";
pub const METRICS_TOKEN_HASH: &str = "metrics_token_hash";

impl Settings {
    /// Builds settings from stored rows; a value that no longer parses falls back to its default.
    pub fn from_stored(rows: &HashMap<String, String>) -> Self {
        let d = Self::default();
        let get = |name: &str| rows.get(name).map(String::as_str);
        Self {
            access_mode: get("access_mode").and_then(AccessMode::parse).unwrap_or(d.access_mode),
            guest_password_hash: get(GUEST_PASSWORD_HASH).filter(|h| !h.is_empty()).map(str::to_owned),
            guest_page_size: get("guest_page_size").and_then(|v| parse_page_size(v).ok()).unwrap_or(d.guest_page_size),
            upstream_url: get("upstream_url").and_then(|v| parse_upstream_url(v).ok()).unwrap_or(d.upstream_url),
            client_request_mode: get("client_request_mode").and_then(parse_bool).unwrap_or(d.client_request_mode),
            guest_full_keys: get("guest_full_keys").and_then(parse_bool).unwrap_or(d.guest_full_keys),
            public_base_url: get("public_base_url").and_then(|v| parse_public_base_url(v).ok()).flatten(),
            contact: get("contact").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned),
            auto_check_minutes: get("auto_check_minutes")
                .and_then(|v| parse_auto_check(v).ok())
                .unwrap_or(d.auto_check_minutes),
            min_balance: get("min_balance").and_then(|v| parse_min_balance(v).ok()).unwrap_or(d.min_balance),
            check_probe_model: get("check_probe_model").map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned),
            check_timeout_secs: get("check_timeout_secs")
                .and_then(|v| parse_range(v, 1, 300, "check_timeout_secs").ok())
                .unwrap_or(d.check_timeout_secs),
            history_retention_days: get("history_retention_days")
                .and_then(|v| parse_range(v, 1, 3650, "history_retention_days").ok())
                .unwrap_or(d.history_retention_days),
            guest_epoch: get(GUEST_EPOCH).and_then(|v| v.parse().ok()).unwrap_or(0),
            proxy: {
                let mut p = d.proxy.clone();
                for (name, min, max) in PROXY_RANGES {
                    if let Some(v) = get(name).and_then(|v| parse_range(v, min, max, name).ok()) {
                        *p.number_mut(name) = v;
                    }
                }
                if let Some(s) = get("selection_strategy").and_then(|v| SelectionStrategy::parse(v).ok()) {
                    p.selection_strategy = s;
                }
                if let Some(c) = get("cors_origins").and_then(|v| CorsOrigins::parse(v).ok()) {
                    p.cors_origins = c;
                }
                p
            },
            metrics_public: get("metrics_public").and_then(parse_bool).unwrap_or(d.metrics_public),
            metrics_token_hash: get(METRICS_TOKEN_HASH).filter(|h| !h.is_empty()).map(str::to_owned),
        }
    }

    /// Checks a change against these settings and returns the rows to store. `hash` turns a new guest
    /// password into its stored form. Nothing is returned when any field is wrong.
    pub fn apply(
        &self,
        change: &SettingsChange,
        hash: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<(String, String)>, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mode = change.access_mode.unwrap_or(self.access_mode);
        let has_guest_password = change.guest_password.is_some() || self.guest_password_hash.is_some();
        if mode == AccessMode::Restricted && !has_guest_password {
            errors.push(FieldError::new("guest_password", "settings.guest_password_required"));
        }
        let mut rows = Vec::new();
        let mut guest_changed = false;
        if let Some(m) = change.access_mode {
            guest_changed |= m != self.access_mode;
            rows.push(("access_mode".to_owned(), m.as_str().to_owned()));
        }
        if let Some(pw) = &change.guest_password {
            match hash(pw) {
                Ok(h) => rows.push((GUEST_PASSWORD_HASH.to_owned(), h)),
                Err(_) => errors.push(FieldError::new("guest_password", "error.internal")),
            }
            guest_changed = true;
        }
        if let Some(n) = change.guest_page_size {
            rows.push(("guest_page_size".to_owned(), n.to_string()));
        }
        if let Some(u) = &change.upstream_url {
            rows.push(("upstream_url".to_owned(), u.clone()));
        }
        if let Some(b) = change.client_request_mode {
            rows.push(("client_request_mode".to_owned(), bool_str(b).to_owned()));
        }
        if let Some(b) = change.guest_full_keys {
            rows.push(("guest_full_keys".to_owned(), bool_str(b).to_owned()));
        }
        if let Some(u) = &change.public_base_url {
            rows.push(("public_base_url".to_owned(), u.clone().unwrap_or_default()));
        }
        if let Some(c) = &change.contact {
            rows.push(("contact".to_owned(), c.clone()));
        }
        if let Some(m) = change.auto_check_minutes {
            rows.push(("auto_check_minutes".to_owned(), m.to_string()));
        }
        if let Some(b) = change.min_balance {
            rows.push(("min_balance".to_owned(), b.to_string()));
        }
        if let Some(m) = &change.check_probe_model {
            rows.push(("check_probe_model".to_owned(), m.clone()));
        }
        if let Some(t) = change.check_timeout_secs {
            rows.push(("check_timeout_secs".to_owned(), t.to_string()));
        }
        if let Some(d) = change.history_retention_days {
            rows.push(("history_retention_days".to_owned(), d.to_string()));
        }
        if let Some(s) = change.selection_strategy {
            rows.push(("selection_strategy".to_owned(), s.as_str().to_owned()));
        }
        for (name, value) in &change.proxy_numbers {
            rows.push(((*name).to_owned(), value.to_string()));
        }
        if let Some(c) = &change.cors_origins {
            rows.push(("cors_origins".to_owned(), c.to_setting()));
        }
        if let Some(b) = change.metrics_public {
            rows.push(("metrics_public".to_owned(), bool_str(b).to_owned()));
        }
        if let Some(token) = &change.metrics_token {
            let hash = token.as_deref().map(super::access_token::hash).unwrap_or_default();
            rows.push((METRICS_TOKEN_HASH.to_owned(), hash));
        }
        if guest_changed {
            rows.push((GUEST_EPOCH.to_owned(), (self.guest_epoch + 1).to_string()));
        }
        errors.into_result(rows)
    }

    /// `NAME=VALUE` lines for `keypool settings list`; secrets appear only as set / not set.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("access_mode", self.access_mode.as_str().to_owned()),
            ("guest_password", if self.guest_password_hash.is_some() { "(set)" } else { "(not set)" }.to_owned()),
            ("guest_page_size", self.guest_page_size.to_string()),
            ("upstream_url", self.upstream_url.clone()),
            ("guest_full_keys", bool_str(self.guest_full_keys).to_owned()),
            ("client_request_mode", bool_str(self.client_request_mode).to_owned()),
            ("public_base_url", self.public_base_url.clone().unwrap_or_default()),
            ("contact", self.contact.clone().unwrap_or_default()),
            ("auto_check_minutes", self.auto_check_minutes.to_string()),
            ("min_balance", super::keys::format_balance(self.min_balance)),
            ("check_probe_model", self.check_probe_model.clone().unwrap_or_default()),
            ("check_timeout_secs", self.check_timeout_secs.to_string()),
            ("history_retention_days", self.history_retention_days.to_string()),
            ("selection_strategy", self.proxy.selection_strategy.as_str().to_owned()),
            ("max_attempts", self.proxy.max_attempts.to_string()),
            ("max_body_mb", self.proxy.max_body_mb.to_string()),
            ("connect_timeout_s", self.proxy.connect_timeout_s.to_string()),
            ("first_byte_timeout_s", self.proxy.first_byte_timeout_s.to_string()),
            ("idle_timeout_s", self.proxy.idle_timeout_s.to_string()),
            ("cooldown_s", self.proxy.cooldown_s.to_string()),
            ("cors_origins", self.proxy.cors_origins.to_setting()),
            ("request_log_retention_days", self.proxy.request_log_retention_days.to_string()),
            ("metrics_public", bool_str(self.metrics_public).to_owned()),
            ("metrics_token", if self.metrics_token_hash.is_some() { "(set)" } else { "(not set)" }.to_owned()),
        ]
    }
}

/// A partial update: `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    pub access_mode: Option<AccessMode>,
    /// The new guest password in clear (hashed by [`Settings::apply`]).
    pub guest_password: Option<String>,
    pub guest_page_size: Option<u32>,
    pub upstream_url: Option<String>,
    pub client_request_mode: Option<bool>,
    pub guest_full_keys: Option<bool>,
    /// `Some(None)` clears it.
    pub public_base_url: Option<Option<String>>,
    /// Empty clears it.
    pub contact: Option<String>,
    pub auto_check_minutes: Option<u32>,
    pub min_balance: Option<f64>,
    /// Empty clears it (no probe).
    pub check_probe_model: Option<String>,
    pub check_timeout_secs: Option<u32>,
    pub history_retention_days: Option<u32>,
    pub selection_strategy: Option<SelectionStrategy>,
    /// Numeric proxy settings (names of [`PROXY_RANGES`]) with their new values.
    pub proxy_numbers: Vec<(&'static str, u32)>,
    pub cors_origins: Option<CorsOrigins>,
    pub metrics_public: Option<bool>,
    /// `Some(None)` removes the token (`off`); blank keeps it.
    pub metrics_token: Option<Option<String>>,
}

impl SettingsChange {
    /// Parses one `NAME=VALUE`. An empty guest password means "keep the current one".
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), FieldError> {
        match name {
            "access_mode" => {
                self.access_mode = Some(
                    AccessMode::parse(value)
                        .ok_or_else(|| FieldError::new("access_mode", "settings.access_mode_invalid"))?,
                );
            }
            "guest_password" => {
                if !value.is_empty() {
                    self.guest_password = Some(parse_guest_password(value)?);
                }
            }
            "guest_page_size" => self.guest_page_size = Some(parse_page_size(value)?),
            "upstream_url" => self.upstream_url = Some(parse_upstream_url(value)?),
            "client_request_mode" => {
                self.client_request_mode = Some(
                    parse_bool(value).ok_or_else(|| FieldError::new("client_request_mode", "settings.bool_invalid"))?,
                );
            }
            "guest_full_keys" => {
                self.guest_full_keys =
                    Some(parse_bool(value).ok_or_else(|| FieldError::new("guest_full_keys", "settings.bool_invalid"))?);
            }
            "public_base_url" => self.public_base_url = Some(parse_public_base_url(value)?),
            "contact" => {
                let contact = value.trim();
                if contact.chars().count() > MAX_CONTACT_LEN || contact.chars().any(char::is_control) {
                    return Err(FieldError::new("contact", "settings.contact_invalid"));
                }
                self.contact = Some(contact.to_owned());
            }
            "auto_check_minutes" => self.auto_check_minutes = Some(parse_auto_check(value)?),
            "min_balance" => self.min_balance = Some(parse_min_balance(value)?),
            "check_probe_model" => {
                let model = value.trim();
                if model.chars().count() > 200 || model.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(FieldError::new("check_probe_model", "settings.probe_model_invalid"));
                }
                self.check_probe_model = Some(model.to_owned());
            }
            "check_timeout_secs" => self.check_timeout_secs = Some(parse_range(value, 1, 300, "check_timeout_secs")?),
            "history_retention_days" => {
                self.history_retention_days = Some(parse_range(value, 1, 3650, "history_retention_days")?)
            }
            "selection_strategy" => self.selection_strategy = Some(SelectionStrategy::parse(value)?),
            "cors_origins" => self.cors_origins = Some(CorsOrigins::parse(value)?),
            "metrics_public" => {
                self.metrics_public =
                    Some(parse_bool(value).ok_or_else(|| FieldError::new("metrics_public", "settings.bool_invalid"))?);
            }
            "metrics_token" => match value.trim() {
                "" => {}
                "off" => self.metrics_token = Some(None),
                token if token.len() >= 16 && token.len() <= 200 && token.chars().all(|c| c.is_ascii_graphic()) => {
                    self.metrics_token = Some(Some(token.to_owned()));
                }
                _ => return Err(FieldError::new("metrics_token", "settings.metrics_token_invalid")),
            },
            other => match proxy_field(other) {
                Some((field, min, max)) => {
                    let v = parse_range(value, min, max, field)?;
                    self.proxy_numbers.retain(|(n, _)| *n != field);
                    self.proxy_numbers.push((field, v));
                }
                None => return Err(FieldError::new("name", "settings.unknown_name").with("name", name)),
            },
        }
        Ok(())
    }

    /// Parses many pairs, collecting every error.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, FieldErrors> {
        let mut change = Self::default();
        let mut errors = FieldErrors::default();
        for (name, value) in pairs {
            if let Err(e) = change.set(name, value) {
                errors.push(e);
            }
        }
        errors.into_result(change)
    }
}

pub fn parse_page_size(raw: &str) -> Result<u32, FieldError> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| FieldError::new("guest_page_size", "settings.page_size_invalid"))
}

/// An http(s) URL with a host and no query or fragment; the trailing slash is dropped.
pub fn parse_upstream_url(raw: &str) -> Result<String, FieldError> {
    let err = || FieldError::new("upstream_url", "settings.upstream_url_invalid");
    let trimmed = raw.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).map_err(|_| err())?;
    let ok = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if ok { Ok(trimmed.to_owned()) } else { Err(err()) }
}

/// One of [`AUTO_CHECK_CHOICES`] (`off` = 0).
pub fn parse_auto_check(raw: &str) -> Result<u32, FieldError> {
    let raw = raw.trim();
    let minutes = if raw == "off" { Some(0) } else { raw.parse::<u32>().ok() };
    minutes
        .filter(|m| AUTO_CHECK_CHOICES.contains(m))
        .ok_or_else(|| FieldError::new("auto_check_minutes", "settings.auto_check_invalid"))
}

/// A finite number (may be negative).
pub fn parse_min_balance(raw: &str) -> Result<f64, FieldError> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|b| b.is_finite())
        .ok_or_else(|| FieldError::new("min_balance", "settings.min_balance_invalid"))
}

/// A whole number in `min..=max`.
pub fn parse_range(raw: &str, min: u32, max: u32, field: &'static str) -> Result<u32, FieldError> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| FieldError::new(field, "settings.range_invalid").with("min", min).with("max", max))
}

/// Empty (derive from each request) or an http(s) URL like the upstream's; the field is
/// `public_base_url`.
pub fn parse_public_base_url(raw: &str) -> Result<Option<String>, FieldError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    parse_upstream_url(raw)
        .map(Some)
        .map_err(|_| FieldError::new("public_base_url", "settings.public_base_url_invalid"))
}

/// 4–128 characters, no control characters.
pub fn parse_guest_password(raw: &str) -> Result<String, FieldError> {
    let len = raw.chars().count();
    if !(4..=128).contains(&len) || raw.chars().any(char::is_control) {
        return Err(FieldError::new("guest_password", "settings.guest_password_invalid"));
    }
    Ok(raw.to_owned())
}

pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn bool_str(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_hash(pw: &str) -> Result<String, String> {
        Ok(format!("hash:{pw}"))
    }

    #[test]
    fn defaults_when_nothing_stored() {
        let s = Settings::from_stored(&HashMap::new());
        assert_eq!(s.access_mode, AccessMode::Private);
        assert_eq!(s.guest_page_size, 12);
        assert_eq!(s.upstream_url, "https://api.siliconflow.cn");
        assert!(!s.client_request_mode && s.guest_password_hash.is_none());
        assert!(s.guest_full_keys && s.public_base_url.is_none() && s.contact.is_none());
    }

    #[test]
    fn restricted_needs_a_guest_password() {
        let s = Settings::default();
        let change = SettingsChange::parse([("access_mode", "restricted")]).unwrap_or_default();
        let err = s.apply(&change, fake_hash).err().unwrap_or_default();
        assert_eq!(err.get("guest_password").map(|e| e.key), Some("settings.guest_password_required"));

        let change =
            SettingsChange::parse([("access_mode", "restricted"), ("guest_password", "letmein")]).unwrap_or_default();
        let rows = s.apply(&change, fake_hash).unwrap_or_default();
        assert!(rows.contains(&(GUEST_PASSWORD_HASH.to_owned(), "hash:letmein".to_owned())));
        assert!(rows.contains(&(GUEST_EPOCH.to_owned(), "1".to_owned())));
    }

    #[test]
    fn blank_guest_password_keeps_the_old_one() {
        let s = Settings { guest_password_hash: Some("h".into()), ..Settings::default() };
        let change = SettingsChange::parse([("access_mode", "restricted"), ("guest_password", "")]).unwrap_or_default();
        let rows = s.apply(&change, fake_hash).unwrap_or_default();
        assert!(!rows.iter().any(|(n, _)| n == GUEST_PASSWORD_HASH));
        assert!(rows.contains(&("access_mode".to_owned(), "restricted".to_owned())));
    }

    #[test]
    fn every_field_is_validated() {
        let err = SettingsChange::parse([
            ("access_mode", "public"),
            ("guest_page_size", "0"),
            ("upstream_url", "ftp://x"),
            ("client_request_mode", "maybe"),
            ("guest_password", "abc"),
            ("colour", "red"),
        ])
        .err()
        .unwrap_or_default();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["access_mode", "guest_page_size", "upstream_url", "client_request_mode", "guest_password", "name"]
        );
    }

    #[test]
    fn docs_settings() {
        let change =
            SettingsChange::parse([("public_base_url", "https://pool.example.com/"), ("contact", " mail me ")])
                .unwrap_or_default();
        assert_eq!(change.public_base_url, Some(Some("https://pool.example.com".to_owned())));
        assert_eq!(change.contact.as_deref(), Some("mail me"));
        let cleared = SettingsChange::parse([("public_base_url", "")]).unwrap_or_default();
        assert_eq!(cleared.public_base_url, Some(None));
        assert!(SettingsChange::parse([("public_base_url", "pool.example.com")]).is_err());
        assert!(SettingsChange::parse([("contact", "x".repeat(201).as_str())]).is_err());
    }

    #[test]
    fn page_size_bounds_and_urls() {
        assert_eq!(parse_page_size("1").ok(), Some(1));
        assert_eq!(parse_page_size(" 100 ").ok(), Some(100));
        assert!(parse_page_size("101").is_err() && parse_page_size("ten").is_err());
        assert_eq!(parse_upstream_url("http://127.0.0.1:9000/").ok().as_deref(), Some("http://127.0.0.1:9000"));
        assert!(parse_upstream_url("https://api.example.com/?a=1").is_err());
        assert!(parse_upstream_url("https://user:pw@api.example.com").is_err());
        assert!(parse_upstream_url("not a url").is_err());
    }

    #[test]
    fn proxy_settings_parse_store_and_reload() {
        let change = SettingsChange::parse([
            ("selection_strategy", "round_robin"),
            ("max_attempts", "5"),
            ("first_byte_timeout_s", "600"),
            ("cors_origins", "https://chat.example.com"),
            ("metrics_token", "scrape-me-please-123"),
        ])
        .unwrap_or_default();
        let rows = Settings::default().apply(&change, fake_hash).unwrap_or_default();
        let stored: HashMap<String, String> = rows.into_iter().collect();
        assert!(!stored.values().any(|v| v.contains("scrape-me")), "the token is stored hashed");
        let s = Settings::from_stored(&stored);
        assert_eq!(s.proxy.selection_strategy, SelectionStrategy::RoundRobin);
        assert_eq!((s.proxy.max_attempts, s.proxy.first_byte_timeout_s, s.proxy.max_body_mb), (5, 600, 32));
        assert_eq!(s.proxy.cors_origins.allow("https://chat.example.com"), Some("https://chat.example.com"));
        assert_eq!(
            s.metrics_token_hash.as_deref(),
            Some(super::super::access_token::hash("scrape-me-please-123").as_str())
        );
        let err = SettingsChange::parse([("max_attempts", "0"), ("max_body_mb", "2048"), ("metrics_token", "short")])
            .err()
            .unwrap_or_default();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["max_attempts", "max_body_mb", "metrics_token"]);
        let off = SettingsChange::parse([("metrics_token", "off")]).unwrap_or_default();
        let rows = s.apply(&off, fake_hash).unwrap_or_default();
        assert!(rows.contains(&(METRICS_TOKEN_HASH.to_owned(), String::new())));
    }

    #[test]
    fn stored_garbage_falls_back_to_defaults() {
        let rows = HashMap::from([
            ("access_mode".to_owned(), "weird".to_owned()),
            ("guest_page_size".to_owned(), "999".to_owned()),
        ]);
        let s = Settings::from_stored(&rows);
        assert_eq!(s.access_mode, AccessMode::Private);
        assert_eq!(s.guest_page_size, 12);
    }
}
