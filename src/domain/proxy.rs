//! The gateway's pure rules: how a key is chosen (strategy names), what an upstream answer says about
//! the key that made it (the proxy's side of the one key state machine), which origins may call from a
//! browser, and `Retry-After`.

use super::FieldError;
use super::key_state::{Evidence, UNTIL_CHECK_MAX_MS};
use super::reason::Reason;
use super::upstream_error::{Meaning, UpstreamError};

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

/// Why an attempt whose answer `proxy::upstream::close_delimited` failed: the message of that transient
/// fault, and of the 502 a caller gets when every attempt ended that way (the log page reads it as
/// `logs.failure.close_delimited`).
pub const CLOSE_DELIMITED_MESSAGE: &str = "the upstream's answer has no Content-Length and is not chunked (its body \
     ends at connection close), which keypool cannot relay safely";

/// Why an upstream attempt failed, for failover and for the key's state.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptFailure {
    pub meaning: Meaning,
    /// The upstream's own `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
    /// `HTTP 429: …`, or what went wrong without an answer (for the caller's error answer).
    pub message: String,
    /// The same as a stored reason (for the key's state, its blocks and an incident's cause).
    pub reason: Reason,
}

impl AttemptFailure {
    /// No answer at all (connection error, timeout) or an answer keypool cannot relay.
    pub fn transient(message: String, reason: Reason) -> Self {
        Self { meaning: Meaning::Transient, retry_after_s: None, message, reason }
    }

    /// An answer whose status [`is_failure`]: by the rules shared with the checks.
    pub fn from_answer(status: u16, retry_after: Option<&str>, body: &[u8]) -> Self {
        let error = UpstreamError::parse(status, body);
        Self {
            meaning: error.meaning(),
            retry_after_s: retry_after.and_then(parse_retry_after),
            message: error.describe(),
            reason: error.reason(),
        }
    }

    /// The failure cause as a metrics label.
    pub fn cause(&self) -> &'static str {
        match self.meaning {
            Meaning::KeyInvalid => "invalid_key",
            Meaning::NoMoney => "no_money",
            Meaning::RateLimited { .. } => "rate_limited",
            Meaning::ModelRefused => "model_refused",
            Meaning::Transient => "transient",
        }
    }

    /// Whether the answer is definitive about the key or the (key, model) pair: it cost the upstream
    /// no work, so it does not use up `max_attempts` (outside an incident).
    pub fn is_definitive(&self) -> bool {
        !matches!(self.meaning, Meaning::Transient)
    }

    /// Whether this is the kind of failure that, across many keys at once, means an incident
    /// (upstream outage or our IP throttled) rather than bad keys.
    pub fn is_correlated_kind(&self) -> bool {
        matches!(self.meaning, Meaning::RateLimited { .. } | Meaning::Transient)
    }

    /// What the failure says about the key that made the request for `model`: `cooldown_s` when a
    /// minute limit comes without `Retry-After`, `next_day` the upstream's next midnight.
    pub fn evidence(&self, model: Option<&str>, now: i64, cooldown_s: u32, next_day: i64) -> Evidence {
        let until_check = now + UNTIL_CHECK_MAX_MS;
        let model_or_none = || model.unwrap_or_default().to_owned();
        match self.meaning {
            Meaning::KeyInvalid => Evidence::KeyInvalid,
            Meaning::NoMoney => Evidence::NoMoney { model: model_or_none(), until: until_check },
            Meaning::ModelRefused => Evidence::ModelRefused { model: model_or_none(), until: until_check },
            Meaning::RateLimited { daily } => {
                let until = match self.retry_after_s {
                    Some(s) => now + s.clamp(1, 86_400) as i64 * 1000,
                    None if daily => next_day,
                    None => now + i64::from(cooldown_s.max(1)) * 1000,
                };
                Evidence::RateLimited { model: model.map(str::to_owned), daily, until }
            }
            Meaning::Transient => Evidence::Transient,
        }
    }
}

/// Whether an answer with this status failed the attempt (its body then says why). Every other
/// answer — 2xx, 3xx, and the caller's mistakes (400, 404, 413, 422, other 4xx) — goes back to the
/// caller as it is and is never retried.
pub fn is_failure(status: u16) -> bool {
    matches!(status, 401..=403 | 429 | 500..=599)
}

/// `Retry-After` in seconds (the HTTP-date form is rare upstream and treated as absent).
pub fn parse_retry_after(raw: &str) -> Option<u64> {
    raw.trim().parse::<u64>().ok()
}

/// Rounds of percent-decoding [`safe_v1_path`] undoes (`%252e` is `.` after two); a path still encoded
/// after that many is refused.
const PATH_DECODE_ROUNDS: usize = 3;

/// Whether a `/v1` request path, exactly as received (before any decoding), may be appended to the
/// upstream's address: once percent-decoded (repeatedly, so double encodings count too), its first
/// segment is `v1`, no segment is `.` or `..`, and it holds no control character. Segments are split on
/// `/` and on `\`, encoded or not (`%2f`, `%5c`), since some servers take a backslash for a slash. So
/// `/v1/../admin`, `/v1/%2e%2e/admin`, `/v1/.%2e/x`, `/v1/chat%2f..%2fx` and `/v1/chat\..\x` are
/// refused, while dots inside a segment (`/v1/files/a..b`) are not segments and pass.
pub fn safe_v1_path(raw_path: &str) -> bool {
    let mut path = raw_path.as_bytes().to_vec();
    let mut rounds = 0;
    loop {
        let decoded = super::percent_decode(&path);
        if decoded == path {
            break;
        }
        rounds += 1;
        if rounds > PATH_DECODE_ROUNDS {
            return false;
        }
        path = decoded;
    }
    if path.iter().any(|b| b.is_ascii_control()) {
        return false;
    }
    let mut segments = path.split(|b| *b == b'/' || *b == b'\\');
    segments.next() == Some(b"".as_slice())
        && segments.next() == Some(b"v1".as_slice())
        && segments.all(|s| s != b"." && s != b"..")
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
    fn failures_become_evidence_about_the_key_or_the_pair() {
        for delivered in [200, 201, 304, 400, 404, 413, 422, 409] {
            assert!(!is_failure(delivered), "{delivered}");
        }
        for failed in [401, 402, 403, 429, 500, 502, 503] {
            assert!(is_failure(failed), "{failed}");
        }
        let now = 1_000_000;
        let ev = |status, retry: Option<&str>, body: &str, model: Option<&str>| {
            AttemptFailure::from_answer(status, retry, body.as_bytes()).evidence(model, now, 60, 5_000_000)
        };
        assert_eq!(ev(401, None, r#""Api key is invalid""#, Some("m")), Evidence::KeyInvalid);
        let m = Some("Pro/m");
        let until_check = now + UNTIL_CHECK_MAX_MS;
        assert_eq!(
            ev(403, None, r#"{"code":30001,"message":"insufficient"}"#, m),
            Evidence::NoMoney { model: "Pro/m".into(), until: until_check }
        );
        assert_eq!(
            ev(403, None, r#"{"message":"Real-name verification required for this model"}"#, m),
            Evidence::ModelRefused { model: "Pro/m".into(), until: until_check }
        );
        assert_eq!(
            ev(429, Some("7"), r#"{"message":"RPM limit reached"}"#, m),
            Evidence::RateLimited { model: Some("Pro/m".into()), daily: false, until: now + 7_000 },
            "the upstream's own hint"
        );
        assert_eq!(
            ev(429, None, r#"{"message":"RPM limit reached"}"#, m),
            Evidence::RateLimited { model: Some("Pro/m".into()), daily: false, until: now + 60_000 },
            "cooldown_s without a hint"
        );
        assert_eq!(
            ev(429, None, r#"{"message":"RPD limit reached"}"#, None),
            Evidence::RateLimited { model: None, daily: true, until: 5_000_000 },
            "a daily limit lasts until the next day"
        );
        assert_eq!(ev(503, None, "busy", m), Evidence::Transient);
        assert_eq!(ev(403, None, r#"{"message":"region not served"}"#, m), Evidence::Transient);
        let limited = AttemptFailure::from_answer(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"");
        assert_eq!((limited.retry_after_s, limited.cause()), (None, "rate_limited"));
        assert!(limited.is_definitive() && limited.is_correlated_kind());
        let dead = AttemptFailure::from_answer(401, None, b"");
        assert!(dead.is_definitive() && !dead.is_correlated_kind());
        let busy = AttemptFailure::transient("timeout".into(), Reason::Timeout);
        assert!(!busy.is_definitive() && busy.is_correlated_kind());
    }

    #[test]
    fn v1_paths_with_dot_segments_are_unsafe_in_any_encoding() {
        for unsafe_path in [
            "/v1/..",
            "/v1/../admin",
            "/v1/./models",
            "/v1/chat/completions/..",
            "/v1/chat/../../admin",
            "/v1/%2e%2e/admin",
            "/v1/%2E%2E/admin",
            "/v1/%2e%2E/admin",
            "/v1/.%2e/admin",
            "/v1/%2e./admin",
            "/v1/%2e/models",
            "/v1/chat/%2E%2E/x",
            "/v1/chat%2f..%2fadmin",
            "/v1/chat%2F%2e%2e%2Fadmin",
            "/v1/chat%5c..%5cadmin",
            "/v1/chat%5C..%5Cadmin",
            "/v1/chat\\..\\admin",
            "/v1/chat\\.",
            "/v1/%252e%252e/admin",
            "/v1/%25252e%25252e/admin",
            "/v1/%2525252e/admin",
            "/v1/chat%00/completions",
            "/v1/chat%0d%0aX-Injected:%201",
            "/v1%2f..%2fadmin",
            "/%2e%2e/v1/chat",
            "/admin",
            "v1/chat",
            "",
        ] {
            assert!(!safe_v1_path(unsafe_path), "{unsafe_path}");
        }
        for safe_path in [
            "/v1",
            "/v1/",
            "/v1/chat/completions",
            "/v1/models/Qwen/Qwen2.5-7B-Instruct",
            "/v1/files/a..b",
            "/v1/files/...",
            "/v1/files/.hidden",
            "/v1/files/x.",
            "/v1/files/%2e%2e%2e",
            "/v1/files/a%20b",
            "/v1/files/100%",
            "/v1/files/%zz",
            "/%761/chat/completions",
        ] {
            assert!(safe_v1_path(safe_path), "{safe_path}");
        }
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
