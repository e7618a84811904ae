//! What an access key may do: enabled, expiry, allowed models, and quotas per minute, day and month
//! (requests, tokens, estimated spend). The rules live here, pure; the proxy holds the counts in
//! memory (`pool::quota`) and asks [`AccessLimits::over`] before each request.
//!
//! Windows are fixed: the calendar minute, and the day and month of the `upstream_utc_offset` time
//! zone (UTC+8 by default, like SiliconFlow). A request is admitted while every count is under its
//! limit; tokens and cost are known when the answer ends, so the last admitted request may go over a
//! token or spend limit (the overshoot is shown, and the next request is refused).

use chrono::{Datelike, NaiveDate};

use super::FieldError;

/// The limits of one access key. `None` (or empty) means no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLimits {
    pub enabled: bool,
    /// Refused from this time on (ms).
    pub expires_at: Option<i64>,
    /// Allowed model names or patterns (`*` matches any run of characters); empty: every model.
    pub models: Vec<String>,
    /// Only the models of the `free_models` setting.
    pub free_only: bool,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub rpd: Option<i64>,
    pub tpd: Option<i64>,
    pub spend_day: Option<f64>,
    pub spend_month: Option<f64>,
    pub note: Option<String>,
}

impl Default for AccessLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            expires_at: None,
            models: Vec::new(),
            free_only: false,
            rpm: None,
            tpm: None,
            rpd: None,
            tpd: None,
            spend_day: None,
            spend_month: None,
            note: None,
        }
    }
}

/// A quota's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Minute,
    Day,
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Minute, Period::Day, Period::Month];

    /// How the period is stored (`access_key_quota.period`).
    pub fn code(self) -> i64 {
        match self {
            Period::Minute => 1,
            Period::Day => 2,
            Period::Month => 3,
        }
    }

    pub fn index(self) -> usize {
        self.code() as usize - 1
    }

    /// The window holding `now`: (first ms, first ms of the next), days and months at the
    /// `offset_min` time zone's midnight.
    pub fn window(self, now: i64, offset_min: i32) -> (i64, i64) {
        const MINUTE: i64 = 60_000;
        const DAY: i64 = 86_400_000;
        let offset = i64::from(offset_min) * 60_000;
        match self {
            Period::Minute => {
                let start = now.div_euclid(MINUTE) * MINUTE;
                (start, start + MINUTE)
            }
            Period::Day => {
                let start = (now + offset).div_euclid(DAY) * DAY - offset;
                (start, start + DAY)
            }
            Period::Month => {
                let local = chrono::DateTime::from_timestamp_millis(now + offset).unwrap_or_default().date_naive();
                let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1).unwrap_or_default();
                let next = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
                let ms =
                    |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis() - offset;
                (ms(first), ms(next))
            }
        }
    }
}

/// What one access key used in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub requests: i64,
    pub tokens: i64,
    pub cost: f64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.cost += other.cost;
    }

    pub fn is_zero(&self) -> bool {
        self.requests == 0 && self.tokens == 0 && self.cost == 0.0
    }
}

/// What one instance adds to one window of one access key, written by the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaDelta {
    pub access_key_id: i64,
    pub period: Period,
    pub window_start: i64,
    pub counts: Counts,
}

/// One quota of an access key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rpm,
    Tpm,
    Rpd,
    Tpd,
    SpendDay,
    SpendMonth,
}

impl Limit {
    pub const ALL: [Limit; 6] = [Limit::Rpm, Limit::Tpm, Limit::Rpd, Limit::Tpd, Limit::SpendDay, Limit::SpendMonth];

    pub fn period(self) -> Period {
        match self {
            Limit::Rpm | Limit::Tpm => Period::Minute,
            Limit::Rpd | Limit::Tpd | Limit::SpendDay => Period::Day,
            Limit::SpendMonth => Period::Month,
        }
    }

    /// Its name in settings, the CLI and error codes (`rpm`, `spend_day` …).
    pub fn name(self) -> &'static str {
        match self {
            Limit::Rpm => "rpm",
            Limit::Tpm => "tpm",
            Limit::Rpd => "rpd",
            Limit::Tpd => "tpd",
            Limit::SpendDay => "spend_day",
            Limit::SpendMonth => "spend_month",
        }
    }

    /// The limit set on `limits`, if any.
    pub fn of(self, limits: &AccessLimits) -> Option<f64> {
        match self {
            Limit::Rpm => limits.rpm.map(|n| n as f64),
            Limit::Tpm => limits.tpm.map(|n| n as f64),
            Limit::Rpd => limits.rpd.map(|n| n as f64),
            Limit::Tpd => limits.tpd.map(|n| n as f64),
            Limit::SpendDay => limits.spend_day,
            Limit::SpendMonth => limits.spend_month,
        }
    }

    /// What counts against it.
    pub fn used(self, counts: &Counts) -> f64 {
        match self {
            Limit::Rpm | Limit::Rpd => counts.requests as f64,
            Limit::Tpm | Limit::Tpd => counts.tokens as f64,
            Limit::SpendDay | Limit::SpendMonth => counts.cost,
        }
    }

    /// Whether it counts money (shown with the currency).
    pub fn is_spend(self) -> bool {
        matches!(self, Limit::SpendDay | Limit::SpendMonth)
    }
}

/// Why a request is refused before any key is tried.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Disabled,
    Expired {
        at: i64,
    },
    /// The model is not among those allowed (`None`: the request named no model keypool could read).
    Model {
        model: Option<String>,
    },
    /// A quota is used up until `resets_at`.
    Quota {
        limit: Limit,
        value: f64,
        used: f64,
        resets_at: i64,
    },
}

impl AccessLimits {
    /// Whether any quota is set (only then are counts kept).
    pub fn has_quota(&self) -> bool {
        Limit::ALL.iter().any(|l| l.of(self).is_some())
    }

    /// Whether the models are restricted.
    pub fn restricts_models(&self) -> bool {
        self.free_only || !self.models.is_empty()
    }

    /// Disabled or expired at `now`.
    pub fn refuses_key(&self, now: i64) -> Option<Refusal> {
        if !self.enabled {
            return Some(Refusal::Disabled);
        }
        match self.expires_at {
            Some(at) if at <= now => Some(Refusal::Expired { at }),
            _ => None,
        }
    }

    /// Whether `model` may be used; `is_free` says whether it is one of the free models.
    pub fn allows_model(&self, model: &str, is_free: bool) -> bool {
        if self.free_only && !is_free {
            return false;
        }
        self.models.is_empty() || self.models.iter().any(|p| pattern_matches(p, model))
    }

    /// The quota that refuses one more request, given the counts of the current minute, day and
    /// month (indexed by [`Period::index`]); when several do, the one that resets last (the time
    /// after which the request can pass).
    pub fn over(&self, counts: &[Counts; 3], windows: &[(i64, i64); 3]) -> Option<Refusal> {
        let mut worst: Option<Refusal> = None;
        for limit in Limit::ALL {
            let Some(value) = limit.of(self) else { continue };
            let used = limit.used(&counts[limit.period().index()]);
            if used < value {
                continue;
            }
            let resets_at = windows[limit.period().index()].1;
            if worst.as_ref().is_none_or(|w| matches!(w, Refusal::Quota { resets_at: r, .. } if *r < resets_at)) {
                worst = Some(Refusal::Quota { limit, value, used, resets_at });
            }
        }
        worst
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Words that remove a limit.
fn means_none(raw: &str) -> bool {
    let t = raw.trim();
    t.is_empty() || t == "0" || t.eq_ignore_ascii_case("none")
}

/// A count limit (requests or tokens): a positive whole number; empty, `0` or `none` remove it.
pub fn parse_count(field: &'static str, raw: &str) -> Result<Option<i64>, FieldError> {
    if means_none(raw) {
        return Ok(None);
    }
    match raw.trim().replace(['_', ','], "").parse::<i64>() {
        Ok(n) if (1..=1_000_000_000_000).contains(&n) => Ok(Some(n)),
        _ => Err(FieldError::new(field, "access_keys.limits.count_invalid").with("value", raw.trim())),
    }
}

/// A spending limit in the balance's currency; empty, `0` or `none` remove it.
pub fn parse_money(field: &'static str, raw: &str) -> Result<Option<f64>, FieldError> {
    if means_none(raw) {
        return Ok(None);
    }
    match raw.trim().trim_start_matches(['¥', '$']).parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1e9 => Ok(Some(x)),
        _ => Err(FieldError::new(field, "access_keys.limits.money_invalid").with("value", raw.trim())),
    }
}

/// Allowed models: names or patterns separated by commas, spaces or lines; empty, `none` or `*`:
/// every model.
pub fn parse_models(raw: &str) -> Result<Vec<String>, FieldError> {
    let items: Vec<&str> = raw.split([',', '\n', '\r', ' ', '\t']).filter(|s| !s.is_empty()).collect();
    if items.is_empty() || items == ["*"] || (items.len() == 1 && items[0].eq_ignore_ascii_case("none")) {
        return Ok(Vec::new());
    }
    if items.len() > 200 {
        return Err(FieldError::new("models", "access_keys.limits.models_too_many"));
    }
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if item.chars().count() > 200 || item.chars().any(char::is_control) {
            return Err(FieldError::new("models", "access_keys.limits.model_invalid").with("value", item));
        }
        if !out.iter().any(|m| m == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

/// An expiry: RFC 3339 (`2026-12-31T23:59:00+08:00`), or a date and time without a zone
/// (`2026-12-31T23:59`, `2026-12-31 23:59`, `2026-12-31`: end of that day) read in the `offset_min`
/// time zone; empty or `never`: no expiry.
pub fn parse_expiry(raw: &str, offset_min: i32) -> Result<Option<i64>, FieldError> {
    let t = raw.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("never") || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(Some(at.timestamp_millis()));
    }
    let offset = i64::from(offset_min) * 60_000;
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
        .or_else(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(23, 59, 59)));
    match local {
        Some(dt) => Ok(Some(dt.and_utc().timestamp_millis() - offset)),
        None => Err(FieldError::new("expires", "access_keys.limits.expiry_invalid").with("value", t)),
    }
}

/// A note: at most 200 characters, one line.
pub fn parse_note(raw: &str) -> Result<Option<String>, FieldError> {
    let t = raw.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(FieldError::new("note", "access_keys.limits.note_invalid"));
    }
    Ok(Some(t.to_owned()))
}

/// The models as stored (one per line; NULL for every model).
pub fn models_to_stored(models: &[String]) -> Option<String> {
    (!models.is_empty()).then(|| models.join("\n"))
}

pub fn models_from_stored(stored: Option<&str>) -> Vec<String> {
    stored.map(|s| s.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

/// Shows an amount of the balance's currency without float noise (`1.5`, `0.0042`).
pub fn format_money(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".to_owned() } else { s.to_owned() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H8: i32 = 480;

    fn ms(rfc: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc).unwrap().timestamp_millis()
    }

    #[test]
    fn windows_follow_the_time_zone() {
        let now = ms("2026-11-30T17:30:12+00:00"); // 01:30 on 1 December at UTC+8
        assert_eq!(Period::Minute.window(now, H8), (ms("2026-11-30T17:30:00Z"), ms("2026-11-30T17:31:00Z")));
        assert_eq!(Period::Day.window(now, H8), (ms("2026-12-01T00:00:00+08:00"), ms("2026-12-02T00:00:00+08:00")));
        assert_eq!(Period::Month.window(now, H8), (ms("2026-12-01T00:00:00+08:00"), ms("2027-01-01T00:00:00+08:00")));
        assert_eq!(Period::Day.window(now, 0), (ms("2026-11-30T00:00:00Z"), ms("2026-12-01T00:00:00Z")));
        assert_eq!(Period::Month.window(now, 0), (ms("2026-11-01T00:00:00Z"), ms("2026-12-01T00:00:00Z")));
        let feb = ms("2028-02-29T12:00:00-05:00");
        assert_eq!(Period::Month.window(feb, -300), (ms("2028-02-01T00:00:00-05:00"), ms("2028-03-01T00:00:00-05:00")));
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("Qwen/*", "Qwen/Qwen2.5-7B-Instruct"));
        assert!(!pattern_matches("Qwen/*", "Pro/Qwen/Qwen2.5-7B-Instruct"));
        assert!(pattern_matches("*Qwen*", "Pro/Qwen/Qwen2.5-7B-Instruct"));
        assert!(pattern_matches("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-V3"));
        assert!(!pattern_matches("deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-V3.1"));
        assert!(pattern_matches("*", ""));
        assert!(pattern_matches("a*b*c", "abc") && pattern_matches("a*b*c", "axxbyyc"));
        assert!(!pattern_matches("a*b*c", "acb") && !pattern_matches("ab*ba", "aba"));
    }

    #[test]
    fn models_and_free_only() {
        let mut l = AccessLimits { models: vec!["Qwen/*".into()], ..AccessLimits::default() };
        assert!(l.allows_model("Qwen/Qwen3-8B", false));
        assert!(!l.allows_model("deepseek-ai/DeepSeek-V3", false));
        l.free_only = true;
        assert!(!l.allows_model("Qwen/Qwen3-235B", false));
        assert!(l.allows_model("Qwen/Qwen3-8B", true));
        l.models.clear();
        assert!(l.allows_model("THUDM/glm-4-9b-chat", true) && !l.allows_model("THUDM/glm-4-9b-chat", false));
        assert!(!AccessLimits::default().restricts_models() && l.restricts_models());
    }

    #[test]
    fn disabled_and_expired() {
        let l = AccessLimits { expires_at: Some(1_000), ..AccessLimits::default() };
        assert_eq!(l.refuses_key(999), None);
        assert_eq!(l.refuses_key(1_000), Some(Refusal::Expired { at: 1_000 }));
        let off = AccessLimits { enabled: false, ..AccessLimits::default() };
        assert_eq!(off.refuses_key(0), Some(Refusal::Disabled));
    }

    #[test]
    fn a_request_passes_while_every_count_is_under_its_limit_and_the_latest_reset_is_named() {
        let l = AccessLimits { rpm: Some(10), tpd: Some(1_000), spend_month: Some(5.0), ..AccessLimits::default() };
        let windows = [(0, 60), (0, 86_400), (0, 2_000_000)];
        let mut counts = [
            Counts { requests: 9, ..Counts::default() },
            Counts { tokens: 999, ..Counts::default() },
            Counts { cost: 4.99, ..Counts::default() },
        ];
        assert!(l.has_quota());
        assert_eq!(l.over(&counts, &windows), None);
        counts[0].requests = 10;
        assert_eq!(
            l.over(&counts, &windows),
            Some(Refusal::Quota { limit: Limit::Rpm, value: 10.0, used: 10.0, resets_at: 60 })
        );
        counts[1].tokens = 1_200; // the last request went over: reported as used
        assert!(
            matches!(l.over(&counts, &windows), Some(Refusal::Quota { limit: Limit::Tpd, used, resets_at: 86_400, .. }) if used == 1_200.0)
        );
        counts[2].cost = 5.0;
        assert!(matches!(l.over(&counts, &windows), Some(Refusal::Quota { limit: Limit::SpendMonth, .. })));
        assert!(!AccessLimits::default().has_quota());
        assert_eq!(AccessLimits::default().over(&counts, &windows), None);
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_count("rpm", " 60 ").unwrap(), Some(60));
        assert_eq!(parse_count("rpm", "1,000").unwrap(), Some(1000));
        for none in ["", "0", "none", "NONE"] {
            assert_eq!(parse_count("rpm", none).unwrap(), None);
            assert_eq!(parse_money("spend_day", none).unwrap(), None);
        }
        for bad in ["-1", "1.5", "x", "99999999999999"] {
            assert_eq!(parse_count("rpm", bad).unwrap_err().key, "access_keys.limits.count_invalid");
        }
        assert_eq!(parse_money("spend_day", "¥2.5").unwrap(), Some(2.5));
        assert!(parse_money("spend_day", "-2").is_err() && parse_money("spend_day", "NaN").is_err());
        assert_eq!(
            parse_models("Qwen/*, deepseek-ai/DeepSeek-V3\nQwen/*").unwrap(),
            vec!["Qwen/*", "deepseek-ai/DeepSeek-V3"]
        );
        assert!(parse_models("").unwrap().is_empty() && parse_models("*").unwrap().is_empty());
        assert!(parse_models("a\u{7}b").is_err());
        assert_eq!(parse_expiry("never", H8).unwrap(), None);
        assert_eq!(parse_expiry("2026-12-04T18:00:00+08:00", 0).unwrap(), Some(ms("2026-12-04T10:00:00Z")));
        assert_eq!(parse_expiry("2026-12-04T18:00", H8).unwrap(), Some(ms("2026-12-04T10:00:00Z")));
        assert_eq!(parse_expiry("2026-12-04", H8).unwrap(), Some(ms("2026-12-04T23:59:59+08:00")));
        assert_eq!(parse_expiry("friday", H8).unwrap_err().key, "access_keys.limits.expiry_invalid");
        assert_eq!(parse_note(" for Bob ").unwrap().as_deref(), Some("for Bob"));
        assert!(parse_note(&"x".repeat(201)).is_err());
        assert_eq!(models_from_stored(models_to_stored(&["a".into(), "b".into()]).as_deref()), vec!["a", "b"]);
        assert_eq!(format_money(1.50), "1.5");
        assert_eq!(format_money(0.00421), "0.0042");
        assert_eq!(format_money(3.0), "3");
    }
}
