//! Key checks: the job parameters (parsed and validated), what SiliconFlow's `/v1/user/info` answers,
//! and how an answer moves a key in the one state machine.

use std::time::Duration;

use super::keys::KeyStatus;
use super::reason::Reason;
use super::upstream_error::{Meaning, UpstreamError};
use super::{FieldError, FieldErrors};

/// How long to wait between two checks made by the same worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Fixed(Duration),
    /// Uniform in [min, max].
    Random {
        min: Duration,
        max: Duration,
    },
}

/// A check job's tuning, all validated; zero is allowed everywhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckParams {
    /// Checks in flight at once (1–64).
    pub concurrency: usize,
    pub interval: Interval,
    /// Extra attempts after a transient failure (0–5).
    pub retries: u32,
    pub retry_interval: Duration,
    /// Requests per second across the job; 0 = no cap.
    pub rate: f64,
}

impl Default for CheckParams {
    fn default() -> Self {
        Self {
            concurrency: 10,
            interval: Interval::Fixed(Duration::from_secs(1)),
            retries: 1,
            retry_interval: Duration::from_millis(2000),
            rate: 0.0,
        }
    }
}

/// The raw form / CLI values; blank means the default.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RawCheckParams {
    pub concurrency: Option<String>,
    /// `fixed` or `random`.
    pub interval_mode: Option<String>,
    /// Seconds, for `fixed`.
    pub interval_secs: Option<String>,
    pub min_interval_ms: Option<String>,
    pub max_interval_ms: Option<String>,
    pub retries: Option<String>,
    pub retry_interval_ms: Option<String>,
    pub rate: Option<String>,
}

fn number<T: std::str::FromStr>(
    raw: &Option<String>,
    field: &'static str,
    key: &'static str,
) -> Result<Option<T>, FieldError> {
    match raw.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| FieldError::new(field, key)),
    }
}

impl CheckParams {
    pub fn parse(raw: &RawCheckParams) -> Result<Self, FieldErrors> {
        let d = Self::default();
        let mut errors = FieldErrors::default();
        let mut take = |r: Result<Option<u64>, FieldError>| r.map_err(|e| errors.push(e)).ok().flatten();
        let concurrency = take(number(&raw.concurrency, "concurrency", "checks.params.concurrency_invalid"));
        let retries = take(number(&raw.retries, "retries", "checks.params.retries_invalid"));
        let retry_ms = take(number(&raw.retry_interval_ms, "retry_interval_ms", "checks.params.ms_invalid"));
        let min_ms = take(number(&raw.min_interval_ms, "min_interval_ms", "checks.params.ms_invalid"));
        let max_ms = take(number(&raw.max_interval_ms, "max_interval_ms", "checks.params.ms_invalid"));
        let secs = number::<f64>(&raw.interval_secs, "interval_secs", "checks.params.seconds_invalid")
            .map_err(|e| errors.push(e))
            .ok()
            .flatten();
        let rate =
            number::<f64>(&raw.rate, "rate", "checks.params.rate_invalid").map_err(|e| errors.push(e)).ok().flatten();

        let concurrency = concurrency.unwrap_or(d.concurrency as u64);
        if !(1..=64).contains(&concurrency) {
            errors.push(FieldError::new("concurrency", "checks.params.concurrency_invalid"));
        }
        let retries = retries.unwrap_or(d.retries as u64);
        if retries > 5 {
            errors.push(FieldError::new("retries", "checks.params.retries_invalid"));
        }
        let retry_ms = retry_ms.unwrap_or(2000);
        if retry_ms > 600_000 {
            errors.push(FieldError::new("retry_interval_ms", "checks.params.ms_invalid"));
        }
        let interval = match raw.interval_mode.as_deref().map(str::trim).unwrap_or("fixed") {
            "" | "fixed" => {
                let secs = secs.unwrap_or(1.0);
                if !(0.0..=3600.0).contains(&secs) {
                    errors.push(FieldError::new("interval_secs", "checks.params.seconds_invalid"));
                }
                Interval::Fixed(Duration::from_millis((secs.clamp(0.0, 3600.0) * 1000.0).round() as u64))
            }
            "random" => {
                let (min, max) = (min_ms.unwrap_or(500), max_ms.unwrap_or(1500));
                if min > max {
                    errors.push(FieldError::new("min_interval_ms", "checks.params.min_above_max"));
                }
                if max > 3_600_000 {
                    errors.push(FieldError::new("max_interval_ms", "checks.params.ms_invalid"));
                }
                Interval::Random { min: Duration::from_millis(min), max: Duration::from_millis(max) }
            }
            _ => {
                errors.push(FieldError::new("interval_mode", "checks.params.mode_invalid"));
                d.interval
            }
        };
        let rate = rate.unwrap_or(0.0);
        if !(0.0..=100_000.0).contains(&rate) {
            errors.push(FieldError::new("rate", "checks.params.rate_invalid"));
        }
        errors.into_result(Self {
            concurrency: concurrency.clamp(1, 64) as usize,
            interval,
            retries: retries.min(5) as u32,
            retry_interval: Duration::from_millis(retry_ms),
            rate,
        })
    }
}

/// The balances of a successful check (CNY or USD, as the upstream says).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balances {
    pub total: f64,
    pub charge: f64,
    pub gift: f64,
}

/// What one check learned about a key.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// The key answered with its balances.
    Balance(Balances),
    /// The upstream says the key is invalid or banned.
    Invalid(Reason),
    /// Rate limit, 5xx, timeout, connection error, unreadable body: nothing learned about the key.
    Transient(Reason),
}

impl CheckOutcome {
    /// The outcome's class, as counted on the progress panel.
    pub fn class(&self, min_balance: f64) -> OutcomeClass {
        match self {
            Self::Balance(b) if b.total > min_balance => OutcomeClass::Active,
            Self::Balance(_) => OutcomeClass::Depleted,
            Self::Invalid(_) => OutcomeClass::Invalid,
            Self::Transient(_) => OutcomeClass::Transient,
        }
    }

    /// The state a key moves to (None: it keeps its state), and why.
    pub fn transition(&self, min_balance: f64) -> Option<(KeyStatus, Reason)> {
        let balance = |b: &Balances| super::keys::format_balance(b.total);
        match self {
            Self::Balance(b) if b.total > min_balance => {
                Some((KeyStatus::Active, Reason::Balance { balance: balance(b) }))
            }
            Self::Balance(b) => Some((KeyStatus::Depleted, Reason::BalanceLow { balance: balance(b) })),
            Self::Invalid(reason) => Some((KeyStatus::Invalid, reason.clone())),
            Self::Transient(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeClass {
    Active,
    Depleted,
    Invalid,
    Transient,
}

impl OutcomeClass {
    pub const ALL: [OutcomeClass; 4] = [Self::Active, Self::Depleted, Self::Invalid, Self::Transient];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Depleted => "depleted",
            Self::Invalid => "invalid",
            Self::Transient => "transient",
        }
    }
}

/// A check job's state, as shown by the panel and the CLI.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub id: u64,
    pub label: String,
    pub total: usize,
    pub processed: usize,
    pub counts: Vec<(OutcomeClass, usize)>,
    pub elapsed: Duration,
    /// Checks per second so far.
    pub speed: f64,
    pub eta: Option<Duration>,
    pub running: bool,
    pub stopped: bool,
}

/// The upstream's message in any of its error shapes: `{"message"}`, `{"error":{"message"}}`, a bare
/// JSON string, or the raw text.
pub fn upstream_message(body: &[u8]) -> String {
    UpstreamError::parse(0, body).message
}

/// Classifies a `/v1/user/info` answer: by the rules shared with the proxy, only a key-invalid
/// answer moves the key; anything else is transient.
pub fn classify(status: u16, body: &[u8]) -> CheckOutcome {
    if (200..=299).contains(&status) {
        return parse_balances(body).map_or_else(
            || CheckOutcome::Transient(Reason::Unreadable { detail: upstream_message(body) }),
            CheckOutcome::Balance,
        );
    }
    let error = UpstreamError::parse(status, body);
    match error.meaning() {
        Meaning::KeyInvalid => CheckOutcome::Invalid(error.reason()),
        _ => CheckOutcome::Transient(error.reason()),
    }
}

pub use super::upstream_error::with_status;

fn amount(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// `{"code":20000,"status":true,"data":{"balance","chargeBalance","totalBalance"}}` → balances.
pub fn parse_balances(body: &[u8]) -> Option<Balances> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if v.get("status").is_some_and(|s| s == false) {
        return None;
    }
    let data = v.get("data")?;
    let gift = amount(&data["balance"]).unwrap_or(0.0);
    let charge = amount(&data["chargeBalance"]).unwrap_or(0.0);
    let total = amount(&data["totalBalance"]).unwrap_or(gift + charge);
    Some(Balances { total, charge, gift })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawCheckParams {
        let mut r = RawCheckParams::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "concurrency" => r.concurrency = v,
                "interval_mode" => r.interval_mode = v,
                "interval_secs" => r.interval_secs = v,
                "min_interval_ms" => r.min_interval_ms = v,
                "max_interval_ms" => r.max_interval_ms = v,
                "retries" => r.retries = v,
                "retry_interval_ms" => r.retry_interval_ms = v,
                "rate" => r.rate = v,
                _ => {}
            }
        }
        r
    }

    #[test]
    fn defaults_zeroes_and_bounds() {
        assert_eq!(CheckParams::parse(&RawCheckParams::default()).ok(), Some(CheckParams::default()));
        let zero = CheckParams::parse(&raw(&[
            ("interval_secs", "0"),
            ("retries", "0"),
            ("retry_interval_ms", "0"),
            ("rate", "0"),
        ]))
        .unwrap_or_default();
        assert_eq!(
            (zero.interval, zero.retries, zero.retry_interval, zero.rate),
            (Interval::Fixed(Duration::ZERO), 0, Duration::ZERO, 0.0)
        );
        let r = CheckParams::parse(&raw(&[
            ("interval_mode", "random"),
            ("min_interval_ms", "0"),
            ("max_interval_ms", "0"),
        ]));
        assert_eq!(r.ok().map(|p| p.interval), Some(Interval::Random { min: Duration::ZERO, max: Duration::ZERO }));
        let bad = CheckParams::parse(&raw(&[
            ("concurrency", "65"),
            ("retries", "6"),
            ("interval_mode", "random"),
            ("min_interval_ms", "900"),
            ("max_interval_ms", "100"),
            ("rate", "-1"),
        ]))
        .err()
        .unwrap_or_default();
        let fields: Vec<_> = bad.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["concurrency", "retries", "min_interval_ms", "rate"]);
        assert!(CheckParams::parse(&raw(&[("concurrency", "0")])).is_err());
        assert!(CheckParams::parse(&raw(&[("concurrency", "ten")])).is_err());
    }

    #[test]
    fn classifies_every_answer() {
        let ok =
            br#"{"code":20000,"status":true,"data":{"balance":"0.88","chargeBalance":"88.00","totalBalance":"88.88"}}"#;
        assert_eq!(classify(200, ok), CheckOutcome::Balance(Balances { total: 88.88, charge: 88.0, gift: 0.88 }));
        assert_eq!(classify(200, ok).class(0.0), OutcomeClass::Active);
        assert_eq!(classify(200, ok).class(100.0), OutcomeClass::Depleted);
        let negative =
            br#"{"code":20000,"status":true,"data":{"balance":"0","chargeBalance":"-0.01","totalBalance":"-0.01"}}"#;
        assert_eq!(classify(200, negative).class(0.0), OutcomeClass::Depleted);
        assert_eq!(
            classify(401, br#""Api key is invalid""#),
            CheckOutcome::Invalid(Reason::upstream(401, "Api key is invalid"))
        );
        assert!(
            matches!(classify(403, br#"{"code":30011,"message":"account banned","data":null}"#), CheckOutcome::Invalid(Reason::Upstream { message, .. }) if message.contains("banned"))
        );
        assert!(matches!(
            classify(403, br#"{"code":30001,"message":"Sorry, your account balance is insufficient"}"#),
            CheckOutcome::Transient(_)
        ));
        assert!(matches!(
            classify(403, br#"{"error":{"message":"real-name verification required"}}"#),
            CheckOutcome::Transient(_)
        ));
        assert_eq!(
            classify(429, br#"{"message":"rate limited"}"#),
            CheckOutcome::Transient(Reason::upstream(429, "rate limited"))
        );
        assert_eq!(classify(500, b""), CheckOutcome::Transient(Reason::upstream(500, "")));
        assert!(matches!(classify(200, b"<html>oops</html>"), CheckOutcome::Transient(Reason::Unreadable { .. })));
        assert!(matches!(classify(200, br#"{"code":50000,"status":false,"data":null}"#), CheckOutcome::Transient(_)));
    }

    #[test]
    fn transitions_keep_reasons() {
        let b = CheckOutcome::Balance(Balances { total: 0.0, charge: 0.0, gift: 0.0 });
        assert_eq!(b.transition(0.0), Some((KeyStatus::Depleted, Reason::BalanceLow { balance: "0".into() })));
        assert_eq!(CheckOutcome::Transient(Reason::Timeout).transition(0.0), None);
        assert_eq!(
            CheckOutcome::Invalid(Reason::upstream(401, "")).transition(0.0),
            Some((KeyStatus::Invalid, Reason::upstream(401, "")))
        );
    }
}
