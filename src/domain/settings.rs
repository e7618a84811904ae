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

/// Where a setting appears on the settings page (each section is one fieldset, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Who sees the guest page, and how.
    Guest,
    /// The upstream and how clients reach keypool.
    Upstream,
    /// Key checks and balance history.
    Checks,
    /// The `/v1` gateway.
    Gateway,
    /// Who may read `/metrics`.
    Metrics,
}

impl Section {
    pub const ALL: [Section; 5] = [Self::Guest, Self::Upstream, Self::Checks, Self::Gateway, Self::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Upstream => "upstream",
            Self::Checks => "checks",
            Self::Gateway => "gateway",
            Self::Metrics => "metrics",
        }
    }
}

/// What a secret is and how it is kept: never shown, stored hashed under its field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// 4–128 characters (spaces allowed); argon2-hashed; blank keeps it.
    Password,
    /// 16–200 printable ASCII characters; SHA-256-hashed; blank keeps it, `off` removes it.
    Token,
}

/// What kind of value a setting holds: how it is parsed, checked and shown as a form field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `on`/`off` (also true/false, 1/0, yes/no); a checkbox.
    Bool,
    /// A whole number in `min..=max`; a number field.
    Range { min: u32, max: u32 },
    /// Minutes out of a fixed list, 0 (`off`) = never; a select.
    Every(&'static [u32]),
    /// One of fixed names; radio buttons or a select, each labelled `settings.NAME.VALUE` (help
    /// `settings.NAME.VALUE_help`).
    Choice { values: &'static [&'static str], radio: bool },
    /// An http(s) URL with a host, no query, fragment or credentials; `required: false` allows empty.
    Url { required: bool },
    /// One line of at most `max` characters; `word`: without white space. Empty = not set.
    Text { max: usize, word: bool },
    /// A finite decimal number.
    Number,
    /// Names separated by commas, white space or new lines; a text area, one per line.
    List,
    /// A UTC offset such as `UTC+8`.
    Offset,
    /// Never shown or stored in clear.
    Secret(SecretKind),
}

/// One declared setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting {
    /// Its name in forms, `keypool settings set NAME=VALUE` and the catalogues (`settings.NAME.label`,
    /// `settings.NAME.help`).
    pub name: &'static str,
    /// The struct field holding it (a secret's field holds the hash, and names its stored row).
    pub field: &'static str,
    pub section: Section,
    pub kind: Kind,
}

impl Setting {
    /// The name of its stored row.
    pub fn stored_name(&self) -> &'static str {
        if matches!(self.kind, Kind::Secret(_)) { self.field } else { self.name }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self.kind, Kind::Secret(_))
    }

    /// The catalogue keys every setting needs (a choice also needs a label per value).
    pub fn catalogue_keys(&self) -> Vec<String> {
        let mut keys = vec![format!("settings.{}.label", self.name), format!("settings.{}.help", self.name)];
        if let Kind::Choice { values, .. } = self.kind {
            keys.extend(values.iter().map(|v| format!("settings.{}.{v}", self.name)));
        }
        keys
    }
}

/// The declared setting called `name`.
pub fn find(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// A setting's value type: parsed from what a user typed, stored as text, loaded back.
pub trait Value: Sized {
    /// What a user typed (form or command line), checked against the kind.
    fn parse(raw: &str, field: &'static str, kind: &Kind) -> Result<Self, FieldError>;
    /// The stored text (also `keypool settings list`).
    fn store(&self) -> String;
    /// From a stored row; `None` (the default stays) when it no longer parses.
    fn load(raw: &str, field: &'static str, kind: &Kind) -> Option<Self> {
        Self::parse(raw, field, kind).ok()
    }
    /// As the form field shows it.
    fn form_text(&self) -> String {
        self.store()
    }
}

impl Value for bool {
    fn parse(raw: &str, field: &'static str, _: &Kind) -> Result<Self, FieldError> {
        parse_bool(raw).ok_or_else(|| FieldError::new(field, "settings.bool_invalid"))
    }
    fn store(&self) -> String {
        bool_str(*self).to_owned()
    }
}

impl Value for u32 {
    fn parse(raw: &str, field: &'static str, kind: &Kind) -> Result<Self, FieldError> {
        match *kind {
            Kind::Range { min, max } => parse_range(raw, min, max, field),
            Kind::Every(choices) => parse_every(raw, choices, field),
            _ => Err(FieldError::new(field, "settings.number_invalid")),
        }
    }
    fn store(&self) -> String {
        self.to_string()
    }
}

impl Value for f64 {
    fn parse(raw: &str, field: &'static str, _: &Kind) -> Result<Self, FieldError> {
        raw.trim()
            .parse::<f64>()
            .ok()
            .filter(|b| b.is_finite())
            .ok_or_else(|| FieldError::new(field, "settings.number_invalid"))
    }
    fn store(&self) -> String {
        super::keys::format_balance(*self)
    }
}

/// UTC offsets, in minutes east of UTC.
impl Value for i32 {
    fn parse(raw: &str, field: &'static str, _: &Kind) -> Result<Self, FieldError> {
        parse_utc_offset(raw).map_err(|e| FieldError { field, ..e })
    }
    fn store(&self) -> String {
        format_utc_offset(*self)
    }
}

/// A required URL.
impl Value for String {
    fn parse(raw: &str, field: &'static str, _: &Kind) -> Result<Self, FieldError> {
        parse_url(raw).ok_or_else(|| FieldError::new(field, "settings.url_invalid"))
    }
    fn store(&self) -> String {
        self.clone()
    }
}

/// An optional URL or line of text (empty = not set), or a secret's hash.
impl Value for Option<String> {
    fn parse(raw: &str, field: &'static str, kind: &Kind) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        match *kind {
            _ if trimmed.is_empty() => Ok(None),
            Kind::Url { .. } => {
                parse_url(raw).map(Some).ok_or_else(|| FieldError::new(field, "settings.optional_url_invalid"))
            }
            Kind::Text { max, word } => {
                let bad = |c: char| c.is_control() || (word && c.is_whitespace());
                if trimmed.chars().count() > max || trimmed.chars().any(bad) {
                    let key = if word { "settings.word_invalid" } else { "settings.text_invalid" };
                    return Err(FieldError::new(field, key).with("max", max));
                }
                Ok(Some(trimmed.to_owned()))
            }
            _ => Err(FieldError::new(field, "settings.text_invalid").with("max", 0)),
        }
    }
    fn load(raw: &str, field: &'static str, kind: &Kind) -> Option<Self> {
        match kind {
            Kind::Secret(_) => Some(Some(raw.to_owned()).filter(|h| !h.is_empty())),
            _ => Self::parse(raw, field, kind).ok(),
        }
    }
    fn store(&self) -> String {
        self.clone().unwrap_or_default()
    }
}

impl Value for AccessMode {
    fn parse(raw: &str, field: &'static str, kind: &Kind) -> Result<Self, FieldError> {
        AccessMode::parse(raw).ok_or_else(|| choice_error(field, kind))
    }
    fn store(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Value for SelectionStrategy {
    fn parse(raw: &str, field: &'static str, kind: &Kind) -> Result<Self, FieldError> {
        SelectionStrategy::parse(raw).map_err(|_| choice_error(field, kind))
    }
    fn store(&self) -> String {
        self.as_str().to_owned()
    }
}

impl Value for CorsOrigins {
    fn parse(raw: &str, _: &'static str, _: &Kind) -> Result<Self, FieldError> {
        CorsOrigins::parse(raw)
    }
    fn store(&self) -> String {
        self.to_setting()
    }
}

impl Value for ModelList {
    fn parse(raw: &str, _: &'static str, _: &Kind) -> Result<Self, FieldError> {
        parse_free_models(raw).map(ModelList::new)
    }
    fn store(&self) -> String {
        self.names.join(",")
    }
    fn form_text(&self) -> String {
        self.names.join("\n")
    }
}

fn choice_error(field: &'static str, kind: &Kind) -> FieldError {
    let choices = match kind {
        Kind::Choice { values, .. } => values.join(", "),
        _ => String::new(),
    };
    FieldError::new(field, "settings.choice_invalid").with("choices", choices)
}

/// Model names without duplicates, in the order given, with a set for lookups.
#[derive(Debug, Clone, Default)]
pub struct ModelList {
    names: Vec<String>,
    set: HashSet<Box<str>>,
}

impl ModelList {
    /// The list of `names`; a later duplicate is dropped.
    pub fn new(mut names: Vec<String>) -> Self {
        let mut set = HashSet::with_capacity(names.len());
        names.retain(|m| set.insert(Box::<str>::from(m.as_str())));
        Self { names, set }
    }

    pub fn contains(&self, model: &str) -> bool {
        self.set.contains(model)
    }
}

impl std::ops::Deref for ModelList {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.names
    }
}

impl PartialEq for ModelList {
    fn eq(&self, other: &Self) -> bool {
        self.names == other.names
    }
}

/// The setting's name: the field's, unless declared `field as name`.
macro_rules! setting_name {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident $name:ident) => {
        stringify!($name)
    };
}

/// Declares every setting once: the two structs (the proxy's part kept apart, in memory on the hot
/// path), their defaults, [`SETTINGS`] (from which parsing, storing, `keypool settings list/set`, the
/// settings form and the catalogue check are derived), and the per-name accessors.
macro_rules! declare_settings {
    (
        Settings { $( $(#[doc = $gdoc:literal])* $gfield:ident $(as $gname:ident)? : $gty:ty = $gdef:expr ; $gsec:ident, $gkind:expr ; )* }
        ProxySettings { $( $(#[doc = $pdoc:literal])* $pfield:ident $(as $pname:ident)? : $pty:ty = $pdef:expr ; $psec:ident, $pkind:expr ; )* }
    ) => {
        /// The current settings, with defaults for anything never stored.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( $(#[doc = $gdoc])* pub $gfield: $gty, )*
            /// Bumped whenever the access mode or guest password changes: guest sessions of an older epoch end.
            pub guest_epoch: i64,
            /// The proxy's tuning: how it picks keys, fails over and times out.
            pub proxy: ProxySettings,
        }

        /// The gateway's settings, kept in memory by the proxy (the hot path reads no database).
        #[derive(Debug, Clone, PartialEq)]
        pub struct ProxySettings {
            $( $(#[doc = $pdoc])* pub $pfield: $pty, )*
        }

        impl Default for ProxySettings {
            fn default() -> Self {
                Self { $( $pfield: $pdef, )* }
            }
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $( $gfield: $gdef, )* guest_epoch: 0, proxy: ProxySettings::default() }
            }
        }

        /// Every setting, in display order within its section.
        pub const SETTINGS: &[Setting] = &[
            $( Setting { name: setting_name!($gfield $($gname)?), field: stringify!($gfield), section: Section::$gsec, kind: $gkind }, )*
            $( Setting { name: setting_name!($pfield $($pname)?), field: stringify!($pfield), section: Section::$psec, kind: $pkind }, )*
        ];

        impl Settings {
            /// Loads one stored value; one that no longer parses leaves the current value.
            fn load_value(&mut self, name: &str, raw: &str) {
                match name {
                    $( setting_name!($gfield $($gname)?) => {
                        if let Some(v) = <$gty as Value>::load(raw, setting_name!($gfield $($gname)?), &$gkind) { self.$gfield = v; }
                    } )*
                    $( setting_name!($pfield $($pname)?) => {
                        if let Some(v) = <$pty as Value>::load(raw, setting_name!($pfield $($pname)?), &$pkind) { self.proxy.$pfield = v; }
                    } )*
                    _ => {}
                }
            }

            /// A setting's value as stored (`form`: as its form field shows it), secrets' hashes too.
            fn raw_text(&self, name: &str, form: bool) -> Option<String> {
                let text = |v: &dyn ValueText| if form { v.form() } else { v.stored() };
                match name {
                    $( setting_name!($gfield $($gname)?) => Some(text(&self.$gfield)), )*
                    $( setting_name!($pfield $($pname)?) => Some(text(&self.proxy.$pfield)), )*
                    _ => None,
                }
            }
        }

        /// Checks what a user typed for `name` and returns its stored text; `None` for an unknown name.
        fn check_value(name: &str, raw: &str) -> Option<Result<String, FieldError>> {
            match name {
                $( setting_name!($gfield $($gname)?) => Some(<$gty as Value>::parse(raw, setting_name!($gfield $($gname)?), &$gkind).map(|v| v.store())), )*
                $( setting_name!($pfield $($pname)?) => Some(<$pty as Value>::parse(raw, setting_name!($pfield $($pname)?), &$pkind).map(|v| v.store())), )*
                _ => None,
            }
        }
    };
}

/// [`Value`] as an object, for [`Settings::text`].
trait ValueText {
    fn stored(&self) -> String;
    fn form(&self) -> String;
}

impl<T: Value> ValueText for T {
    fn stored(&self) -> String {
        self.store()
    }
    fn form(&self) -> String {
        self.form_text()
    }
}

const ACCESS_MODES: &[&str] = &["open", "restricted", "private"];
const STRATEGIES: &[&str] = &["random", "weighted", "round_robin", "least_inflight"];

declare_settings! {
    Settings {
        access_mode: AccessMode = AccessMode::Private; Guest, Kind::Choice { values: ACCESS_MODES, radio: true };
        /// argon2 PHC string of the guest password; never shown.
        guest_password_hash as guest_password: Option<String> = None; Guest, Kind::Secret(SecretKind::Password);
        guest_page_size: u32 = DEFAULT_GUEST_PAGE_SIZE; Guest, Kind::Range { min: 1, max: 100 };
        /// Guests see and copy whole keys (otherwise masked, and no export).
        guest_full_keys: bool = true; Guest, Kind::Bool;
        /// Base URL of the SiliconFlow API, without a trailing slash.
        upstream_url: String = DEFAULT_UPSTREAM_URL.to_owned(); Upstream, Kind::Url { required: true };
        /// Checks run from the admin's browser instead of the server (used by the checks feature).
        client_request_mode: bool = false; Upstream, Kind::Bool;
        /// The address clients use (e.g. behind a proxy), shown on the docs page; empty = from the request.
        public_base_url: Option<String> = None; Upstream, Kind::Url { required: false };
        /// The admin's contact line on the docs page (how to ask for an access key).
        contact: Option<String> = None; Upstream, Kind::Text { max: MAX_CONTACT_LEN, word: false };
        /// Re-check every key that is not disabled this often (0 = off).
        auto_check_minutes: u32 = 60; Checks, Kind::Every(&AUTO_CHECK_CHOICES);
        /// A key is `active` when its total balance is above this.
        min_balance: f64 = 0.0; Checks, Kind::Number;
        /// A one-token chat completion on this model proves the key can call (empty = no probe).
        check_probe_model: Option<String> = None; Checks, Kind::Text { max: MAX_MODEL_NAME_LEN, word: true };
        /// Timeout of one check request, in seconds.
        check_timeout_secs: u32 = 15; Checks, Kind::Range { min: 1, max: 300 };
        /// Balance history older than this is deleted.
        history_retention_days: u32 = 90; Checks, Kind::Range { min: 1, max: 3650 };
        /// Anyone may read `/metrics` (otherwise a signed-in admin, or the metrics token).
        metrics_public: bool = false; Metrics, Kind::Bool;
        /// SHA-256 (hex) of the token that lets a scraper read `/metrics`; never shown.
        metrics_token_hash as metrics_token: Option<String> = None; Metrics, Kind::Secret(SecretKind::Token);
    }
    ProxySettings {
        selection_strategy: SelectionStrategy = SelectionStrategy::Weighted; Gateway, Kind::Choice { values: STRATEGIES, radio: false };
        /// Upstream attempts per request, each on a different key.
        max_attempts: u32 = 3; Gateway, Kind::Range { min: 1, max: 10 };
        /// Largest request body accepted, in MB.
        max_body_mb: u32 = 32; Gateway, Kind::Range { min: 1, max: 1024 };
        connect_timeout_s: u32 = 10; Gateway, Kind::Range { min: 1, max: 120 };
        /// Until the upstream's response head; reasoning models are slow to start.
        first_byte_timeout_s: u32 = 300; Gateway, Kind::Range { min: 1, max: 3600 };
        /// Longest silence between two chunks of a streamed answer.
        idle_timeout_s: u32 = 120; Gateway, Kind::Range { min: 1, max: 3600 };
        /// How long a rate-limited key cools when the upstream gives no `Retry-After`.
        cooldown_s: u32 = 60; Gateway, Kind::Range { min: 1, max: 3600 };
        /// Models that cost nothing upstream, so keys without money can serve them.
        free_models: ModelList = default_free_models(); Gateway, Kind::List;
        /// The upstream's time zone in minutes east of UTC: its midnight ends the daily rate limits (RPD/TPD).
        upstream_utc_offset_min as upstream_utc_offset: i32 = DEFAULT_UPSTREAM_UTC_OFFSET_MIN; Gateway, Kind::Offset;
        /// How many distinct keys must fail the same transient way, with no success between, before it is
        /// an upstream (or IP) incident rather than the keys' fault.
        incident_min_keys: u32 = 5; Gateway, Kind::Range { min: 2, max: 1000 };
        /// The share of recent attempts, per model and overall, that must fail that way, in percent.
        incident_failure_pct: u32 = 90; Gateway, Kind::Range { min: 50, max: 100 };
        cors_origins: CorsOrigins = CorsOrigins::Any; Gateway, Kind::Text { max: 4000, word: false };
        /// Request-log rows older than this are deleted.
        request_log_retention_days: u32 = 7; Gateway, Kind::Range { min: 1, max: 365 };
        /// How long the hourly traffic roll-ups are kept (the per-minute ones go with the request log).
        rollup_retention_days: u32 = 365; Gateway, Kind::Range { min: 7, max: 3650 };
    }
}

fn default_free_models() -> ModelList {
    ModelList::new(DEFAULT_FREE_MODELS.iter().map(|m| (*m).to_owned()).collect())
}

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

impl ProxySettings {
    /// Whether `model` (exactly as a client names it) costs nothing upstream.
    pub fn is_free_model(&self, model: &str) -> bool {
        self.free_models.contains(model)
    }
}

/// The storage name of the guest epoch (not a user-facing setting).
pub const GUEST_EPOCH: &str = "guest_epoch";

impl Settings {
    /// Builds settings from stored rows; a value that no longer parses falls back to its default.
    pub fn from_stored(rows: &HashMap<String, String>) -> Self {
        let mut settings = Self::default();
        for setting in SETTINGS {
            if let Some(raw) = rows.get(setting.stored_name()) {
                settings.load_value(setting.name, raw);
            }
        }
        settings.guest_epoch = rows.get(GUEST_EPOCH).and_then(|v| v.parse().ok()).unwrap_or(0);
        settings
    }

    /// A setting's value as stored (`form`: as its form field shows it); `None` for a secret or an
    /// unknown name.
    pub fn text(&self, name: &str, form: bool) -> Option<String> {
        if find(name).is_none_or(Setting::is_secret) {
            return None;
        }
        self.raw_text(name, form)
    }

    /// Whether the secret `name` is set.
    pub fn secret_is_set(&self, name: &str) -> bool {
        find(name).is_some_and(Setting::is_secret) && self.raw_text(name, false).is_some_and(|h| !h.is_empty())
    }

    /// Checks a change against these settings and returns the rows to store. `hash` turns a new guest
    /// password into its stored form. Nothing is returned when any field is wrong.
    pub fn apply(
        &self,
        change: &SettingsChange,
        hash: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<(String, String)>, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut rows = Vec::new();
        // Cross-field rules: restricted needs a guest password; a new mode or password ends guest sessions.
        let mode = change.get("access_mode").and_then(AccessMode::parse).unwrap_or(self.access_mode);
        let new_password = change.secrets.iter().any(|(name, v)| *name == "guest_password" && v.is_some());
        if mode == AccessMode::Restricted && !new_password && self.guest_password_hash.is_none() {
            errors.push(FieldError::new("guest_password", "settings.guest_password_required"));
        }
        let guest_changed = mode != self.access_mode || new_password;
        for (name, text) in &change.values {
            let stored = find(name).map_or(*name, Setting::stored_name);
            rows.push((stored.to_owned(), text.clone()));
        }
        for (name, secret) in &change.secrets {
            let Some(setting) = find(name) else { continue };
            let hashed = match (setting.kind, secret) {
                (_, None) => Ok(String::new()),
                (Kind::Secret(SecretKind::Password), Some(clear)) => hash(clear),
                (_, Some(clear)) => Ok(super::access_token::hash(clear)),
            };
            match hashed {
                Ok(h) => rows.push((setting.stored_name().to_owned(), h)),
                Err(_) => errors.push(FieldError::new(setting.name, "error.internal")),
            }
        }
        if guest_changed {
            rows.push((GUEST_EPOCH.to_owned(), (self.guest_epoch + 1).to_string()));
        }
        errors.into_result(rows)
    }

    /// `NAME=VALUE` lines for `keypool settings list`; secrets appear only as set / not set.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        SETTINGS
            .iter()
            .map(|s| {
                let value = match s.is_secret() {
                    true if self.secret_is_set(s.name) => "(set)".to_owned(),
                    true => "(not set)".to_owned(),
                    false => self.text(s.name, false).unwrap_or_default(),
                };
                (s.name, value)
            })
            .collect()
    }
}

/// A partial update, checked: the settings it names with their new stored text; the others stay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    /// Declared settings with their new stored text, in the order given (a later value wins).
    values: Vec<(&'static str, String)>,
    /// New secrets in clear (hashed by [`Settings::apply`]); `None` removes one.
    secrets: Vec<(&'static str, Option<String>)>,
}

impl SettingsChange {
    /// Parses one `NAME=VALUE`. A blank secret means "keep the current one".
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), FieldError> {
        let unknown = || FieldError::new("name", "settings.unknown_name").with("name", name);
        let setting = find(name).ok_or_else(unknown)?;
        if let Kind::Secret(kind) = setting.kind {
            if let Some(secret) = parse_secret(setting.name, kind, value)? {
                self.secrets.retain(|(n, _)| *n != setting.name);
                self.secrets.push((setting.name, secret));
            }
            return Ok(());
        }
        let text = check_value(setting.name, value).ok_or_else(unknown)??;
        self.values.retain(|(n, _)| *n != setting.name);
        self.values.push((setting.name, text));
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

    /// The new stored text of `name`, if this change sets it (not for secrets).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The new passwords (argon2-hashed secrets) in clear, to hash before [`Settings::apply`] (which
    /// runs inside a database transaction) and hand to it already hashed.
    pub fn passwords(&self) -> Vec<String> {
        self.secrets
            .iter()
            .filter(|(name, _)| find(name).is_some_and(|s| s.kind == Kind::Secret(SecretKind::Password)))
            .filter_map(|(_, clear)| clear.clone())
            .collect()
    }

    /// The names this change sets, secrets included.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(n, _)| *n).chain(self.secrets.iter().map(|(n, _)| *n))
    }
}

/// A secret as typed: `None` keeps the stored one, `Some(None)` removes it (tokens: `off`).
fn parse_secret(field: &'static str, kind: SecretKind, raw: &str) -> Result<Option<Option<String>>, FieldError> {
    match kind {
        SecretKind::Password => {
            if raw.is_empty() {
                return Ok(None);
            }
            let len = raw.chars().count();
            if !(4..=128).contains(&len) || raw.chars().any(char::is_control) {
                return Err(FieldError::new(field, "settings.password_invalid"));
            }
            Ok(Some(Some(raw.to_owned())))
        }
        SecretKind::Token => match raw.trim() {
            "" => Ok(None),
            "off" => Ok(Some(None)),
            token if (16..=200).contains(&token.len()) && token.chars().all(|c| c.is_ascii_graphic()) => {
                Ok(Some(Some(token.to_owned())))
            }
            _ => Err(FieldError::new(field, "settings.token_invalid")),
        },
    }
}

/// An http(s) URL with a host and no query, fragment or credentials; the trailing slash is dropped.
fn parse_url(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let parsed = url::Url::parse(trimmed).ok()?;
    let ok = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    ok.then(|| trimmed.to_owned())
}

/// One of `choices` minutes (`off` = 0).
fn parse_every(raw: &str, choices: &[u32], field: &'static str) -> Result<u32, FieldError> {
    let raw = raw.trim();
    let minutes = if raw == "off" { Some(0) } else { raw.parse::<u32>().ok() };
    minutes.filter(|m| choices.contains(m)).ok_or_else(|| {
        let list: Vec<String> =
            choices.iter().map(|m| if *m == 0 { "off".to_owned() } else { m.to_string() }).collect();
        FieldError::new(field, "settings.choice_invalid").with("choices", list.join(", "))
    })
}

/// A whole number in `min..=max`.
pub fn parse_range(raw: &str, min: u32, max: u32, field: &'static str) -> Result<u32, FieldError> {
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| FieldError::new(field, "settings.range_invalid").with("min", min).with("max", max))
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
        assert!(rows.contains(&("guest_password_hash".to_owned(), "hash:letmein".to_owned())));
        assert!(rows.contains(&(GUEST_EPOCH.to_owned(), "1".to_owned())));
    }

    #[test]
    fn blank_guest_password_keeps_the_old_one() {
        let s = Settings { guest_password_hash: Some("h".into()), ..Settings::default() };
        let change = SettingsChange::parse([("access_mode", "restricted"), ("guest_password", "")]).unwrap_or_default();
        let rows = s.apply(&change, fake_hash).unwrap_or_default();
        assert!(!rows.iter().any(|(n, _)| n == "guest_password_hash"));
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
        assert_eq!(change.get("public_base_url"), Some("https://pool.example.com"));
        assert_eq!(change.get("contact"), Some("mail me"));
        let cleared = SettingsChange::parse([("public_base_url", "")]).unwrap_or_default();
        assert_eq!(cleared.get("public_base_url"), Some(""));
        assert!(SettingsChange::parse([("public_base_url", "pool.example.com")]).is_err());
        assert!(SettingsChange::parse([("contact", "x".repeat(201).as_str())]).is_err());
    }

    #[test]
    fn page_size_bounds_and_urls() {
        let size = |raw: &str| {
            SettingsChange::parse([("guest_page_size", raw)]).ok().map(|c| c.get("guest_page_size").map(str::to_owned))
        };
        assert_eq!(size("1"), Some(Some("1".to_owned())));
        assert_eq!(size(" 100 "), Some(Some("100".to_owned())));
        assert!(size("101").is_none() && size("ten").is_none());
        assert_eq!(parse_url("http://127.0.0.1:9000/").as_deref(), Some("http://127.0.0.1:9000"));
        assert!(parse_url("https://api.example.com/?a=1").is_none());
        assert!(parse_url("https://user:pw@api.example.com").is_none());
        assert!(parse_url("not a url").is_none());
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
        assert!(s.secret_is_set("metrics_token") && s.text("metrics_token", false).is_none(), "never shown");
        let err = SettingsChange::parse([("max_attempts", "0"), ("max_body_mb", "2048"), ("metrics_token", "short")])
            .err()
            .unwrap_or_default();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["max_attempts", "max_body_mb", "metrics_token"]);
        let off = SettingsChange::parse([("metrics_token", "off")]).unwrap_or_default();
        let rows = s.apply(&off, fake_hash).unwrap_or_default();
        assert!(rows.contains(&("metrics_token_hash".to_owned(), String::new())));
    }

    #[test]
    fn free_models_parse_dedupe_store_and_reload() {
        let d = ProxySettings::default();
        assert_eq!(&*d.free_models, DEFAULT_FREE_MODELS);
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
        assert_eq!(change.get("free_models"), Some("x/free,y/free"));
        let rows = Settings::default().apply(&change, fake_hash).unwrap_or_default();
        assert!(rows.contains(&("free_models".to_owned(), "x/free,y/free".to_owned())), "stored comma-separated");
        let s = Settings::from_stored(&rows.into_iter().collect());
        assert_eq!(&*s.proxy.free_models, ["x/free", "y/free"]);
        assert!(s.proxy.is_free_model("y/free") && !s.proxy.is_free_model("Qwen/Qwen3-8B"));
        assert!(s.describe().contains(&("free_models", "x/free,y/free".to_owned())));

        let none = SettingsChange::parse([("free_models", "")]).unwrap_or_default();
        let s = Settings::from_stored(
            &Settings::default().apply(&none, fake_hash).unwrap_or_default().into_iter().collect(),
        );
        assert!(s.proxy.free_models.is_empty() && !s.proxy.is_free_model("Qwen/Qwen3-8B"), "stored empty stays empty");
        let garbage = HashMap::from([("free_models".to_owned(), "ok bad\u{1}".to_owned())]);
        assert_eq!(Settings::from_stored(&garbage).proxy, ProxySettings::default());

        let p = ProxySettings {
            free_models: ModelList::new(vec!["a".into(), "b".into(), "a".into()]),
            ..ProxySettings::default()
        };
        assert_eq!(&*p.free_models, ["a", "b"]);
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
        assert_eq!(change.get("upstream_utc_offset"), Some("UTC-3:30"));
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
        assert_eq!((change.get("incident_min_keys"), change.get("incident_failure_pct")), (Some("12"), Some("75")));
        let rows = Settings::default().apply(&change, fake_hash).unwrap_or_default();
        let s = Settings::from_stored(&rows.into_iter().collect());
        assert_eq!((s.proxy.incident_min_keys, s.proxy.incident_failure_pct), (12, 75));
        assert_eq!(
            (s.text("incident_min_keys", true).as_deref(), s.text("incident_failure_pct", false).as_deref()),
            (Some("12"), Some("75"))
        );
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
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        listed.sort_unstable();
        names.sort_unstable();
        assert_eq!(listed, names, "describe() lists every declared setting");
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
