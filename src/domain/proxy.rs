//! The gateway's pure rules: how a key is chosen (strategy names), what an upstream answer says about
//! the key that made it (the proxy's side of the one key state machine), which origins may call from a
//! browser, and `Retry-After`.

use super::FieldError;
use super::keys::KeyStatus;

/// How the proxy picks a key among the routable ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelectionStrategy {
    /// Uniformly at random (the original's behaviour).
    Random,
    /// At random, in proportion to each key's balance (default: rich keys carry more traffic).
    #[default]
    Weighted,
    /// In turn.
    RoundRobin,
    /// The key with the fewest requests in flight (exact up to 64 keys; beyond, the least busy of 64
    /// keys taken in turn, so a pick stays O(1)).
    LeastInflight,
}

impl SelectionStrategy {
    pub const ALL: [SelectionStrategy; 4] = [Self::Random, Self::Weighted, Self::RoundRobin, Self::LeastInflight];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Weighted => "weighted",
            Self::RoundRobin => "round_robin",
            Self::LeastInflight => "least_inflight",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw.trim())
            .ok_or_else(|| FieldError::new("selection_strategy", "settings.strategy_invalid"))
    }
}

/// Why an upstream attempt failed, for failover and for the key's state.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptClass {
    /// 401, or 403 saying the key is invalid, banned or disabled: the key becomes `invalid`.
    KeyInvalid(String),
    /// 402, or 403 saying the balance is insufficient: the key becomes `depleted`.
    KeyDepleted(String),
    /// 429: the key cools until `Retry-After` (seconds) or the default.
    RateLimited { retry_after_s: Option<u64>, message: String },
    /// 5xx, an unexplained 403, a connection error or a timeout: nothing learned about the key.
    Transient(String),
}

impl AttemptClass {
    /// The state the key moves to because of this answer (None: it keeps its state).
    pub fn key_status(&self) -> Option<KeyStatus> {
        match self {
            Self::KeyInvalid(_) => Some(KeyStatus::Invalid),
            Self::KeyDepleted(_) => Some(KeyStatus::Depleted),
            Self::RateLimited { .. } => Some(KeyStatus::Cooling),
            Self::Transient(_) => None,
        }
    }

    /// The failure cause as a metrics label.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::KeyInvalid(_) => "invalid_key",
            Self::KeyDepleted(_) => "depleted_key",
            Self::RateLimited { .. } => "rate_limited",
            Self::Transient(_) => "transient",
        }
    }

    /// Whether this is the kind of failure that, across many keys at once, means an incident
    /// (upstream outage or our IP throttled) rather than bad keys.
    pub fn is_correlated_kind(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Self::KeyInvalid(m) | Self::KeyDepleted(m) | Self::Transient(m) => m,
            Self::RateLimited { message, .. } => message,
        }
    }
}

/// Whether an answer with this status failed the attempt (its body then says why). Every other
/// answer — 2xx, 3xx, and the caller's mistakes (400, 404, 413, 422, other 4xx) — goes back to the
/// caller as it is and is never retried.
pub fn is_failure(status: u16) -> bool {
    matches!(status, 401..=403 | 429 | 500..=599)
}

/// Why an attempt failed, from an answer whose status [`is_failure`]: by status, `Retry-After` and
/// (for 403) the upstream's message, with the checks' rules.
pub fn classify_failure(status: u16, retry_after: Option<&str>, body: &[u8]) -> AttemptClass {
    let message = super::checks::with_status(status, &super::checks::upstream_message(body));
    match status {
        401 => AttemptClass::KeyInvalid(message),
        402 => AttemptClass::KeyDepleted(message),
        403 if super::checks::says_balance_insufficient(&message) => AttemptClass::KeyDepleted(message),
        403 if super::checks::says_key_invalid(&message) => AttemptClass::KeyInvalid(message),
        429 => AttemptClass::RateLimited { retry_after_s: retry_after.and_then(parse_retry_after), message },
        _ => AttemptClass::Transient(message),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare upstream and treated as absent).
pub fn parse_retry_after(raw: &str) -> Option<u64> {
    raw.trim().parse::<u64>().ok()
}

/// The origins allowed to call `/v1/*` from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// `*`: any origin (no credentials are ever allowed).
    #[default]
    Any,
    /// Exact origins like `https://chat.example.com`.
    List(Vec<String>),
}

impl CorsOrigins {
    /// `*`, or origins separated by commas, spaces or new lines. Empty means no browser access.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let mut list = Vec::new();
        for item in raw.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
            let err = || FieldError::new("cors_origins", "settings.cors_invalid").with("origin", item);
            let url = url::Url::parse(item).map_err(|_| err())?;
            let plain = matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty();
            if !plain || item.trim_end_matches('/').len() != url.origin().ascii_serialization().len() {
                return Err(err());
            }
            list.push(url.origin().ascii_serialization());
        }
        Ok(Self::List(list))
    }

    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, if it is allowed.
    pub fn allow<'a>(&self, origin: &'a str) -> Option<&'a str> {
        match self {
            Self::Any => Some("*"),
            Self::List(list) => list.iter().any(|o| o == origin).then_some(origin),
        }
    }

    /// The stored form.
    pub fn to_setting(&self) -> String {
        match self {
            Self::Any => "*".to_owned(),
            Self::List(list) => list.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_classify_into_key_states() {
        for delivered in [200, 201, 304, 400, 404, 413, 422, 409] {
            assert!(!is_failure(delivered), "{delivered}");
        }
        for failed in [401, 402, 403, 429, 500, 502, 503] {
            assert!(is_failure(failed), "{failed}");
        }
        assert!(
            matches!(classify_failure(401, None, br#""Api key is invalid""#), AttemptClass::KeyInvalid(m) if m.contains("invalid"))
        );
        assert!(matches!(classify_failure(402, None, b""), AttemptClass::KeyDepleted(m) if m == "HTTP 402"));
        let sf_balance = br#"{"code":30001,"message":"Sorry, your account balance is insufficient","data":null}"#;
        assert!(matches!(classify_failure(403, None, sf_balance), AttemptClass::KeyDepleted(_)));
        assert!(matches!(
            classify_failure(403, None, br#"{"code":30011,"message":"The API key has been banned"}"#),
            AttemptClass::KeyInvalid(_)
        ));
        assert!(matches!(
            classify_failure(403, None, br#"{"message":"region not served"}"#),
            AttemptClass::Transient(_)
        ));
        assert_eq!(
            classify_failure(429, Some("7"), br#"{"message":"rate limited"}"#),
            AttemptClass::RateLimited { retry_after_s: Some(7), message: "HTTP 429: rate limited".into() }
        );
        assert!(matches!(
            classify_failure(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b""),
            AttemptClass::RateLimited { retry_after_s: None, .. }
        ));
        assert!(matches!(classify_failure(503, None, b"busy"), AttemptClass::Transient(m) if m == "HTTP 503: busy"));
        assert_eq!(classify_failure(429, None, b"").key_status(), Some(KeyStatus::Cooling));
        assert!(classify_failure(500, None, b"").is_correlated_kind());
        assert!(!classify_failure(401, None, b"").is_correlated_kind());
    }

    #[test]
    fn strategies_round_trip() {
        for s in SelectionStrategy::ALL {
            assert_eq!(SelectionStrategy::parse(s.as_str()).ok(), Some(s));
        }
        assert!(SelectionStrategy::parse("fastest").is_err());
        assert_eq!(SelectionStrategy::default(), SelectionStrategy::Weighted);
    }

    #[test]
    fn cors_origins() {
        assert_eq!(CorsOrigins::parse(" * ").ok(), Some(CorsOrigins::Any));
        let list = CorsOrigins::parse("https://a.example.com, http://localhost:3000/").unwrap_or_default();
        assert_eq!(list.allow("https://a.example.com"), Some("https://a.example.com"));
        assert_eq!(list.allow("http://localhost:3000"), Some("http://localhost:3000"));
        assert_eq!(list.allow("https://evil.example.com"), None);
        assert_eq!(CorsOrigins::Any.allow("https://x.example"), Some("*"));
        assert!(CorsOrigins::parse("https://a.example.com/path").is_err());
        assert!(CorsOrigins::parse("a.example.com").is_err());
        assert_eq!(CorsOrigins::parse("").ok(), Some(CorsOrigins::List(vec![])));
        assert_eq!(list.to_setting(), "https://a.example.com, http://localhost:3000");
    }
}
