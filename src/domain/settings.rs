//! The runtime settings (系统设置): their names, defaults, parsing and cross-field rules, shared by the
//! settings page and `keypool settings set`. Stored as name → text rows; see [`Settings::from_stored`].

use std::collections::{HashMap, HashSet};

use super::proxy::{CorsOrigins, SelectionStrategy};
use super::{FieldError, FieldErrors};

pub const DEFAULT_UPSTREAM_URL: &str = "https://api.siliconflow.cn";
pub const DEFAULT_GUEST_PAGE_SIZE: u32 = 12;

/// SiliconFlow's free models (chat and embedding/rerank): keys without money can still serve them.
pub const DEFAULT_FREE_MODELS: &[&str] = &[
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2-7B-Instruct",
    "Qwen/Qwen3-8B",
    "THUDM/glm-4-9b-chat",
    "THUDM/GLM-4-9B-0414",
    "THUDM/GLM-Z1-9B-0414",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "internlm/internlm2_5-7b-chat",
    "BAAI/bge-m3",
    "BAAI/bge-large-zh-v1.5",
    "BAAI/bge-reranker-v2-m3",
    "netease-youdao/bce-embedding-base_v1",
];

/// The most names `free_models` may hold, and the longest name.
pub const MAX_FREE_MODELS: usize = 500;
pub const MAX_MODEL_NAME_LEN: usize = 200;

/// SiliconFlow's time zone (UTC+8), in minutes east of UTC: its midnight ends the daily limits.
pub const DEFAULT_UPSTREAM_UTC_OFFSET_MIN: i32 = 8 * 60;
/// The offsets in use on Earth: UTC−12:00 to UTC+14:00, in minutes.
pub const UTC_OFFSET_RANGE_MIN: std::ops::RangeInclusive<i32> = -12 * 60..=14 * 60;

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
    "free_models",
    "upstream_utc_offset",
    "incident_min_keys",
    "incident_failure_pct",
    "cors_origins",
    "request_log_retention_days",
    "rollup_retention_days",
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
    /// How long the hourly traffic roll-ups are kept (the per-minute ones go with the request log).
    pub rollup_retention_days: u32,
    /// Models that cost nothing upstream, so keys without money can serve them; no duplicates, in the
    /// order given. Change it with [`ProxySettings::set_free_models`], which keeps the lookup set in step.
    pub free_models: Vec<String>,
    /// `free_models` as a set, for [`ProxySettings::is_free_model`].
    free_model_set: HashSet<Box<str>>,
    /// The upstream's time zone in minutes east of UTC: its midnight ends the daily rate limits (RPD/TPD).
    pub upstream_utc_offset_min: i32,
    /// How many distinct keys must fail the same transient way, with no success between, before it is
    /// an upstream (or IP) incident rather than the keys' fault (2–1000).
    pub incident_min_keys: u32,
    /// The share of recent attempts, per model and overall, that must fail that way, in percent (50–100).
    pub incident_failure_pct: u32,
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
            rollup_retention_days: 365,
            free_models: Vec::new(),
            free_model_set: HashSet::new(),
            upstream_utc_offset_min: DEFAULT_UPSTREAM_UTC_OFFSET_MIN,
            incident_min_keys: 5,
            incident_failure_pct: 90,
        }
        .with_free_models(DEFAULT_FREE_MODELS.iter().map(|m| (*m).to_owned()).collect())
    }
}

/// Bounds of the numeric proxy settings: (name, min, max).
pub const PROXY_RANGES: [(&str, u32, u32); 10] = [
    ("max_attempts", 1, 10),
    ("max_body_mb", 1, 1024),
    ("connect_timeout_s", 1, 120),
    ("first_byte_timeout_s", 1, 3600),
    ("idle_timeout_s", 1, 3600),
    ("cooldown_s", 1, 3600),
    ("incident_min_keys", 2, 1000),
    ("incident_failure_pct", 50, 100),
    ("request_log_retention_days", 1, 365),
    ("rollup_retention_days", 7, 3650),
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
            "incident_min_keys" => self.incident_min_keys,
            "incident_failure_pct" => self.incident_failure_pct,
            "rollup_retention_days" => self.rollup_retention_days,
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
            "incident_min_keys" => &mut self.incident_min_keys,
            "incident_failure_pct" => &mut self.incident_failure_pct,
            "rollup_retention_days" => &mut self.rollup_retention_days,
            _ => &mut self.request_log_retention_days,
        }
    }

    /// Whether `model` (exactly as a client names it) costs nothing upstream.
    pub fn is_free_model(&self, model: &str) -> bool {
        debug_assert!(self.free_models_in_step(), "free_models was changed without set_free_models");
        self.free_model_set.contains(model)
    }

    /// Replaces the free models (a later duplicate is dropped) and rebuilds their lookup set.
    pub fn set_free_models(&mut self, mut models: Vec<String>) {
        let mut set = HashSet::with_capacity(models.len());
        models.retain(|m| set.insert(Box::<str>::from(m.as_str())));
        self.free_models = models;
        self.free_model_set = set;
    }

    /// These settings with other free models (see [`ProxySettings::set_free_models`]).
    pub fn with_free_models(mut self, models: Vec<String>) -> Self {
        self.set_free_models(models);
        self
    }

    fn free_models_in_step(&self) -> bool {
        self.free_model_set.len() == self.free_models.len()
            && self.free_models.iter().all(|m| self.free_model_set.contains(m.as_str()))
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
                if let Some(models) = get("free_models").and_then(|v| parse_free_models(v).ok()) {
                    p.set_free_models(models);
                }
                if let Some(offset) = get("upstream_utc_offset").and_then(|v| parse_utc_offset(v).ok()) {
                    p.upstream_utc_offset_min = offset;
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
        if let Some(models) = &change.free_models {
            rows.push(("free_models".to_owned(), models.join(",")));
        }
        if let Some(offset) = change.upstream_utc_offset_min {
            rows.push(("upstream_utc_offset".to_owned(), format_utc_offset(offset)));
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
            ("free_models", self.proxy.free_models.join(",")),
            ("upstream_utc_offset", format_utc_offset(self.proxy.upstream_utc_offset_min)),
            ("incident_min_keys", self.proxy.incident_min_keys.to_string()),
            ("incident_failure_pct", self.proxy.incident_failure_pct.to_string()),
            ("cors_origins", self.proxy.cors_origins.to_setting()),
            ("request_log_retention_days", self.proxy.request_log_retention_days.to_string()),
            ("rollup_retention_days", self.proxy.rollup_retention_days.to_string()),
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
    /// Empty means no free model.
    pub free_models: Option<Vec<String>>,
    pub upstream_utc_offset_min: Option<i32>,
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
            "free_models" => self.free_models = Some(parse_free_models(value)?),
            "upstream_utc_offset" => self.upstream_utc_offset_min = Some(parse_utc_offset(value)?),
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

/// Model names separated by commas, white space or new lines; each 1–[`MAX_MODEL_NAME_LEN`] characters
/// without control characters, at most [`MAX_FREE_MODELS`] of them. Duplicates are dropped (the first
/// stays); empty means no free model.
pub fn parse_free_models(raw: &str) -> Result<Vec<String>, FieldError> {
    let mut seen = HashSet::new();
    let mut models = Vec::new();
    for name in raw.split(|c: char| c == ',' || c == '\u{ff0c}' || c.is_whitespace()).filter(|n| !n.is_empty()) {
        if name.chars().count() > MAX_MODEL_NAME_LEN || name.chars().any(char::is_control) {
            let mut shown: String =
                name.chars().take(40).map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
            if name.chars().count() > 40 {
                shown.push('…');
            }
            return Err(FieldError::new("free_models", "settings.free_models_invalid").with("model", shown));
        }
        if seen.insert(name) {
            models.push(name.to_owned());
        }
    }
    if models.len() > MAX_FREE_MODELS {
        return Err(FieldError::new("free_models", "settings.free_models_too_many").with("max", MAX_FREE_MODELS));
    }
    Ok(models)
}

/// A UTC offset in minutes east of UTC: `+8`, `8`, `-5`, `+5:30`, `UTC+8`, `UTC-03:30`, `UTC` or `0`,
/// from UTC−12:00 to UTC+14:00.
pub fn parse_utc_offset(raw: &str) -> Result<i32, FieldError> {
    let err = || FieldError::new("upstream_utc_offset", "settings.utc_offset_invalid");
    let trimmed = raw.trim();
    let rest = match trimmed.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("utc") || prefix.eq_ignore_ascii_case("gmt") => {
            match trimmed[3..].trim_start() {
                "" => return Ok(0),
                rest => rest,
            }
        }
        _ => trimmed,
    };
    let (sign, rest) = if let Some(r) = rest.strip_prefix('+') {
        (1, r)
    } else if let Some(r) = rest.strip_prefix('-').or_else(|| rest.strip_prefix('\u{2212}')) {
        (-1, r)
    } else {
        (1, rest)
    };
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        if len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<i32>().ok() } else { None }
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (digits(h, 1..=2), digits(m, 2..=2)),
        None => (digits(rest, 1..=2), Some(0)),
    };
    match (hours, minutes) {
        (Some(h), Some(m)) if m < 60 => {
            Some(sign * (h * 60 + m)).filter(|o| UTC_OFFSET_RANGE_MIN.contains(o)).ok_or_else(err)
        }
        _ => Err(err()),
    }
}

/// `UTC+8`, `UTC-5:30`, `UTC+0`: how an offset is stored and shown.
pub fn format_utc_offset(offset_min: i32) -> String {
    let sign = if offset_min < 0 { '-' } else { '+' };
    let (hours, minutes) = (offset_min.unsigned_abs() / 60, offset_min.unsigned_abs() % 60);
    if minutes == 0 { format!("UTC{sign}{hours}") } else { format!("UTC{sign}{hours}:{minutes:02}") }
}

/// The epoch ms of the next midnight, strictly after `now_ms`, in the time zone `offset_min` minutes east
/// of UTC: when the upstream's daily limits start again.
pub fn next_day_boundary(now_ms: i64, offset_min: i32) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let offset_ms = i64::from(offset_min) * 60_000;
    (now_ms + offset_ms).div_euclid(DAY_MS).saturating_add(1).saturating_mul(DAY_MS) - offset_ms
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
    fn free_models_parse_dedupe_store_and_reload() {
        let d = ProxySettings::default();
        assert_eq!(d.free_models, DEFAULT_FREE_MODELS);
        assert!(d.is_free_model("Qwen/Qwen3-8B") && d.is_free_model("BAAI/bge-m3"));
        assert!(!d.is_free_model("deepseek-ai/DeepSeek-V3") && !d.is_free_model("qwen/qwen3-8b"), "exact names");

        let parsed = parse_free_models(" a/one, b/two\nc/three\r\n\tb/two，d/four ,, ").unwrap_or_default();
        assert_eq!(parsed, ["a/one", "b/two", "c/three", "d/four"], "commas, spaces and new lines; no duplicates");
        assert_eq!(parse_free_models(" \n ").ok(), Some(vec![]), "empty: no free model");
        assert!(parse_free_models(&"m".repeat(200)).is_ok());
        let err = parse_free_models(&format!("ok/model {}", "m".repeat(201)))
            .err()
            .unwrap_or_else(|| FieldError::new("", ""));
        assert_eq!((err.field, err.key), ("free_models", "settings.free_models_invalid"));
        assert!(parse_free_models("bad\u{7}name").is_err(), "control characters");
        let many: Vec<String> = (0..=MAX_FREE_MODELS).map(|i| format!("m{i}")).collect();
        let err = parse_free_models(&many.join(",")).err().unwrap_or_else(|| FieldError::new("", ""));
        assert_eq!(err.key, "settings.free_models_too_many");
        assert!(parse_free_models(&many[1..].join("\n")).is_ok(), "500 is the most");
        let repeated = vec!["same"; 600].join(",");
        assert_eq!(parse_free_models(&repeated).ok(), Some(vec!["same".to_owned()]), "counted without duplicates");

        let change = SettingsChange::parse([("free_models", "x/free\ny/free x/free")]).unwrap_or_default();
        assert_eq!(change.free_models.as_deref(), Some(&["x/free".to_owned(), "y/free".to_owned()][..]));
        let rows = Settings::default().apply(&change, fake_hash).unwrap_or_default();
        assert!(rows.contains(&("free_models".to_owned(), "x/free,y/free".to_owned())), "stored comma-separated");
        let s = Settings::from_stored(&rows.into_iter().collect());
        assert_eq!(s.proxy.free_models, ["x/free", "y/free"]);
        assert!(s.proxy.is_free_model("y/free") && !s.proxy.is_free_model("Qwen/Qwen3-8B"));
        assert!(s.describe().contains(&("free_models", "x/free,y/free".to_owned())));

        let none = SettingsChange::parse([("free_models", "")]).unwrap_or_default();
        let s = Settings::from_stored(
            &Settings::default().apply(&none, fake_hash).unwrap_or_default().into_iter().collect(),
        );
        assert!(s.proxy.free_models.is_empty() && !s.proxy.is_free_model("Qwen/Qwen3-8B"), "stored empty stays empty");
        let garbage = HashMap::from([("free_models".to_owned(), "ok bad\u{1}".to_owned())]);
        assert_eq!(Settings::from_stored(&garbage).proxy, ProxySettings::default());

        let mut p = ProxySettings::default();
        p.set_free_models(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(p.free_models, ["a", "b"]);
        assert!(p.is_free_model("a") && !p.is_free_model("Qwen/Qwen3-8B"));
        assert_eq!(p.clone(), p);
        assert_ne!(p, ProxySettings::default());
    }

    #[test]
    fn utc_offsets_parse_format_and_reload() {
        let ok = |raw: &str| parse_utc_offset(raw).ok();
        assert_eq!(ok("+8"), Some(480));
        assert_eq!(ok("8"), Some(480));
        assert_eq!(ok("-5"), Some(-300));
        assert_eq!(ok("+5:30"), Some(330));
        assert_eq!(ok("UTC+8"), Some(480));
        assert_eq!(ok(" utc-03:30 "), Some(-210));
        assert_eq!(ok("GMT+5:45"), Some(345));
        assert_eq!(ok("UTC"), Some(0));
        assert_eq!(ok("0"), Some(0));
        assert_eq!(ok("-0"), Some(0));
        assert_eq!(ok("UTC-12:00"), Some(-720));
        assert_eq!(ok("+14"), Some(840));
        for bad in [
            "",
            "+",
            "UTC+",
            "+15",
            "-12:30",
            "+14:01",
            "+5:60",
            "+5:3",
            "+005",
            "8h",
            "Asia/Shanghai",
            "++8",
            "+8:00:00",
        ] {
            let err = parse_utc_offset(bad).err().map(|e| (e.field, e.key));
            assert_eq!(err, Some(("upstream_utc_offset", "settings.utc_offset_invalid")), "{bad:?}");
        }
        assert_eq!(format_utc_offset(480), "UTC+8");
        assert_eq!(format_utc_offset(-330), "UTC-5:30");
        assert_eq!(format_utc_offset(345), "UTC+5:45");
        assert_eq!(format_utc_offset(0), "UTC+0");
        for offset in UTC_OFFSET_RANGE_MIN {
            assert_eq!(parse_utc_offset(&format_utc_offset(offset)).ok(), Some(offset), "round trip {offset}");
        }

        assert_eq!(Settings::default().proxy.upstream_utc_offset_min, 480, "SiliconFlow is on UTC+8");
        let change = SettingsChange::parse([("upstream_utc_offset", "-03:30")]).unwrap_or_default();
        assert_eq!(change.upstream_utc_offset_min, Some(-210));
        let rows = Settings::default().apply(&change, fake_hash).unwrap_or_default();
        assert_eq!(rows, [("upstream_utc_offset".to_owned(), "UTC-3:30".to_owned())]);
        let s = Settings::from_stored(&rows.into_iter().collect());
        assert_eq!(s.proxy.upstream_utc_offset_min, -210);
        assert!(s.describe().contains(&("upstream_utc_offset", "UTC-3:30".to_owned())));
        let garbage = HashMap::from([("upstream_utc_offset".to_owned(), "UTC+99".to_owned())]);
        assert_eq!(Settings::from_stored(&garbage).proxy.upstream_utc_offset_min, 480);
    }

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).map(|t| t.timestamp_millis()).unwrap_or(i64::MIN)
    }

    #[test]
    fn the_next_day_starts_at_the_upstreams_midnight() {
        let at = ms("2026-11-30T15:59:59Z");
        assert_eq!(next_day_boundary(at, 480), ms("2026-11-30T16:00:00Z"));
        assert_eq!(next_day_boundary(ms("2026-11-30T16:00:00Z"), 480), ms("2026-12-01T16:00:00Z"), "strictly after");
        assert_eq!(next_day_boundary(ms("2026-11-30T16:00:00.001Z"), 480), ms("2026-12-01T16:00:00Z"));
        assert_eq!(next_day_boundary(ms("2026-11-30T23:59:59.999Z"), 0), ms("2026-12-01T00:00:00Z"));
        assert_eq!(next_day_boundary(ms("2026-12-01T00:00:00Z"), 0), ms("2026-12-02T00:00:00Z"));
        assert_eq!(next_day_boundary(ms("2026-11-30T03:00:00Z"), -300), ms("2026-11-30T05:00:00Z"), "UTC-5");
        assert_eq!(next_day_boundary(ms("2026-11-30T06:00:00Z"), -300), ms("2026-12-01T05:00:00Z"));
        assert_eq!(next_day_boundary(ms("2026-11-30T18:29:00Z"), 330), ms("2026-11-30T18:30:00Z"), "UTC+5:30");
        assert_eq!(next_day_boundary(ms("1969-12-31T20:00:00Z"), 0), 0, "before the epoch");
        assert_eq!(next_day_boundary(-1, 840), ms("1970-01-01T10:00:00Z"));
    }

    #[test]
    fn incident_thresholds_are_bounded_numbers() {
        let d = ProxySettings::default();
        assert_eq!((d.incident_min_keys, d.incident_failure_pct), (5, 90));
        let change =
            SettingsChange::parse([("incident_min_keys", "12"), ("incident_failure_pct", "75")]).unwrap_or_default();
        assert_eq!(change.proxy_numbers, [("incident_min_keys", 12), ("incident_failure_pct", 75)]);
        let rows = Settings::default().apply(&change, fake_hash).unwrap_or_default();
        let s = Settings::from_stored(&rows.into_iter().collect());
        assert_eq!((s.proxy.incident_min_keys, s.proxy.incident_failure_pct), (12, 75));
        assert_eq!((s.proxy.get("incident_min_keys"), s.proxy.get("incident_failure_pct")), (12, 75));
        assert!(s.describe().contains(&("incident_min_keys", "12".to_owned())));
        assert!(s.describe().contains(&("incident_failure_pct", "75".to_owned())));
        for (name, value) in [
            ("incident_min_keys", "1"),
            ("incident_min_keys", "1001"),
            ("incident_failure_pct", "49"),
            ("incident_failure_pct", "101"),
        ] {
            let err = SettingsChange::parse([(name, value)]).err().unwrap_or_default();
            assert_eq!(err.get(name).map(|e| e.key), Some("settings.range_invalid"), "{name}={value}");
        }
        assert!(SettingsChange::parse([("incident_min_keys", "2"), ("incident_failure_pct", "100")]).is_ok());
        assert!(SettingsChange::parse([("incident_min_keys", "1000"), ("incident_failure_pct", "50")]).is_ok());
    }

    #[test]
    fn every_name_is_listed_and_settable() {
        let mut listed: Vec<&str> = Settings::default().describe().into_iter().map(|(n, _)| n).collect();
        let mut names = NAMES.to_vec();
        listed.sort_unstable();
        names.sort_unstable();
        assert_eq!(listed, names, "describe() lists every name of NAMES");
        for (name, value) in Settings::default().describe() {
            if value.starts_with('(') {
                continue; // secrets
            }
            assert!(SettingsChange::parse([(name, value.as_str())]).is_ok(), "{name}={value} sets back");
        }
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
