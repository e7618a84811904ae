//! What an upstream failure answer means, shared by the checks and the proxy: one table of rules
//! ([`RULES`]), tried in order, on structured evidence first — the HTTP status, SiliconFlow's numeric
//! `code`, OpenAI's `error.code` — and on words of the message only as a last resort. A 403 that no
//! rule recognises never kills a key: on SiliconFlow a 403 is most often about a *model* (real-name
//! verification), not the key (DESIGN §8).

/// What a failure says, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The key itself is refused (401, banned, revoked): it becomes `invalid`.
    KeyInvalid,
    /// This request could not be paid. About the request (the model, `max_tokens`) until a balance
    /// check says the key has no money at all.
    NoMoney,
    /// A rate limit of the model on this account; `daily` for RPD/TPD/IPD (until the next day).
    RateLimited { daily: bool },
    /// The account may not use the model (real-name verification, a model disabled for it).
    ModelRefused,
    /// Overload, 5xx, our region or IP, anything unrecognised: nothing learned about the key.
    Transient,
}

/// An upstream error answer, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub status: u16,
    /// SiliconFlow's numeric `code` (e.g. 30001), at the top level or under `error`.
    pub code: Option<i64>,
    /// OpenAI's `error.code` (e.g. `invalid_api_key`) or `error.type`.
    pub name: Option<String>,
    /// The message, at most 300 characters.
    pub message: String,
}

impl UpstreamError {
    /// Reads `{"code","message"}`, `{"error":{"message","code","type"}}`, a bare JSON string, or text.
    pub fn parse(status: u16, body: &[u8]) -> Self {
        let value = serde_json::from_slice::<serde_json::Value>(body).ok();
        let text = || String::from_utf8_lossy(body).trim().to_owned();
        let (code, name, message) = match &value {
            Some(serde_json::Value::String(s)) => (None, None, s.clone()),
            Some(v) => {
                let code = [&v["code"], &v["error"]["code"]].into_iter().find_map(numeric_code);
                let name = [&v["error"]["code"], &v["error"]["type"], &v["type"]]
                    .into_iter()
                    .find_map(|n| n.as_str().filter(|s| !s.is_empty()).map(str::to_owned));
                let message = v["message"]
                    .as_str()
                    .or_else(|| v["error"]["message"].as_str())
                    .or_else(|| v["error"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(text);
                (code, name, message)
            }
            None => (None, None, text()),
        };
        Self { status, code, name, message: message.chars().take(300).collect() }
    }

    /// `HTTP 403: message` (the text shown as a key's reason and in the request log).
    pub fn describe(&self) -> String {
        with_status(self.status, &self.message)
    }

    /// The answer as a stored reason (its status and the upstream's own message).
    pub fn reason(&self) -> super::reason::Reason {
        super::reason::Reason::upstream(self.status, &self.message)
    }

    /// What the answer means: the first rule of [`RULES`] that matches.
    pub fn meaning(&self) -> Meaning {
        let lower = self.message.to_lowercase();
        RULES.iter().find(|r| r.matches(self, &lower)).map_or(Meaning::Transient, |r| r.meaning)
    }
}

fn numeric_code(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn with_status(status: u16, message: &str) -> String {
    if message.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {message}") }
}

/// When a rule applies.
#[derive(Debug)]
pub enum When {
    Status(u16),
    /// SiliconFlow's numeric code, whatever the status.
    Code(i64),
    /// OpenAI's error code or type.
    Name(&'static str),
    /// A status with every word group matched (each group: any of its words) and none of `unless`.
    Words {
        status: u16,
        all: &'static [&'static [&'static str]],
        unless: &'static [&'static str],
    },
}

#[derive(Debug)]
pub struct Rule {
    pub when: When,
    pub meaning: Meaning,
}

impl Rule {
    fn matches(&self, e: &UpstreamError, lower: &str) -> bool {
        match &self.when {
            When::Status(s) => e.status == *s,
            When::Code(c) => e.code == Some(*c),
            When::Name(n) => e.name.as_deref() == Some(*n),
            When::Words { status, all, unless } => {
                e.status == *status
                    && all.iter().all(|group| group.iter().any(|w| lower.contains(w)))
                    && !unless.iter().any(|w| lower.contains(w))
            }
        }
    }
}

const KEY_WORDS: &[&str] = &["api key", "apikey", "api_key", "api-key", "token", "密钥", "令牌"];
const ACCOUNT_WORDS: &[&str] = &["account", "账号", "账户"];
const DEAD_WORDS: &[&str] =
    &["invalid", "banned", "revoked", "suspended", "expired", "disabled", "无效", "封禁", "禁用", "过期", "停用"];
const MODEL_WORDS: &[&str] = &["model", "模型"];
const DAILY_WORDS: &[&str] = &["rpd", "tpd", "ipd", "per day", "daily", "每日", "每天"];

/// The rules, in order; the first that matches decides. No rule: [`Meaning::Transient`].
pub const RULES: &[Rule] = &[
    Rule { when: When::Status(401), meaning: Meaning::KeyInvalid },
    // SiliconFlow: 30001 "Sorry, your account balance is insufficient" (with 403).
    Rule { when: When::Code(30001), meaning: Meaning::NoMoney },
    Rule { when: When::Name("insufficient_quota"), meaning: Meaning::NoMoney },
    Rule { when: When::Name("invalid_api_key"), meaning: Meaning::KeyInvalid },
    Rule { when: When::Name("account_deactivated"), meaning: Meaning::KeyInvalid },
    Rule { when: When::Status(402), meaning: Meaning::NoMoney },
    // A 429 names its limit ("RPD limit reached"): daily ones last until the next day.
    Rule {
        when: When::Words { status: 429, all: &[DAILY_WORDS], unless: &[] },
        meaning: Meaning::RateLimited { daily: true },
    },
    Rule { when: When::Status(429), meaning: Meaning::RateLimited { daily: false } },
    // Last resort, words of a 403: the key or the account is dead — unless the message is about a model.
    Rule {
        when: When::Words { status: 403, all: &[KEY_WORDS, DEAD_WORDS], unless: MODEL_WORDS },
        meaning: Meaning::KeyInvalid,
    },
    Rule {
        when: When::Words {
            status: 403,
            all: &[ACCOUNT_WORDS, &["banned", "suspended", "封禁", "冻结"]],
            unless: MODEL_WORDS,
        },
        meaning: Meaning::KeyInvalid,
    },
    Rule {
        when: When::Words {
            status: 403,
            all: &[&["insufficient balance", "balance is insufficient", "余额不足", "欠费"]],
            unless: &[],
        },
        meaning: Meaning::NoMoney,
    },
    // Our region or IP: about us, not the key nor the model.
    Rule {
        when: When::Words { status: 403, all: &[&["region", "country", "地区", "区域"]], unless: &[] },
        meaning: Meaning::Transient,
    },
    Rule {
        when: When::Words {
            status: 403,
            all: &[&["real-name", "real name", "实名", "verification", "permission", "权限"]],
            unless: &[],
        },
        meaning: Meaning::ModelRefused,
    },
    Rule { when: When::Words { status: 403, all: &[MODEL_WORDS], unless: &[] }, meaning: Meaning::ModelRefused },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn meaning(status: u16, body: &str) -> Meaning {
        UpstreamError::parse(status, body.as_bytes()).meaning()
    }

    #[test]
    fn parses_every_error_shape() {
        let sf = UpstreamError::parse(
            403,
            br#"{"code":30001,"message":"Sorry, your account balance is insufficient","data":null}"#,
        );
        assert_eq!((sf.code, sf.message.as_str()), (Some(30001), "Sorry, your account balance is insufficient"));
        let oa = UpstreamError::parse(
            429,
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(
            (oa.code, oa.name.as_deref(), oa.message.as_str()),
            (None, Some("rate_limit_exceeded"), "slow down")
        );
        assert_eq!(UpstreamError::parse(401, br#""Api key is invalid""#).message, "Api key is invalid");
        assert_eq!(UpstreamError::parse(502, b" <html>bad gateway</html> ").message, "<html>bad gateway</html>");
        assert_eq!(UpstreamError::parse(403, br#"{"error":{"code":"20012","message":"x"}}"#).code, Some(20012));
        assert_eq!(UpstreamError::parse(500, &[b'x'; 1000]).message.len(), 300);
        assert_eq!(UpstreamError::parse(402, b"").describe(), "HTTP 402");
        assert_eq!(UpstreamError::parse(503, b"busy").describe(), "HTTP 503: busy");
    }

    /// Each rule of the table, row by row, with an answer it exists for.
    #[test]
    fn every_rule_row() {
        use Meaning::*;
        let rows: &[(u16, &str, Meaning)] = &[
            (401, r#""Api key is invalid""#, KeyInvalid),
            (401, r#"{"error":{"message":"whatever"}}"#, KeyInvalid),
            (403, r#"{"code":30001,"message":"Sorry, your account balance is insufficient","data":null}"#, NoMoney),
            (400, r#"{"code":30001,"message":"balance"}"#, NoMoney),
            (429, r#"{"error":{"code":"insufficient_quota","message":"You exceeded your current quota"}}"#, NoMoney),
            (403, r#"{"error":{"code":"invalid_api_key","message":"Incorrect API key provided"}}"#, KeyInvalid),
            (403, r#"{"error":{"code":"account_deactivated","message":"deactivated"}}"#, KeyInvalid),
            (402, r#""payment required""#, NoMoney),
            (
                429,
                r#"{"code":50603,"message":"RPD limit reached for model deepseek-ai/DeepSeek-V3"}"#,
                RateLimited { daily: true },
            ),
            (429, r#"{"message":"Request was rejected due to TPD rate limiting"}"#, RateLimited { daily: true }),
            (429, r#"{"code":50603,"message":"RPM limit reached"}"#, RateLimited { daily: false }),
            (429, r#"{"code":50603,"message":"System is too busy now"}"#, RateLimited { daily: false }),
            (403, r#"{"code":30011,"message":"The API key has been banned"}"#, KeyInvalid),
            (403, r#"{"message":"api key disabled"}"#, KeyInvalid),
            (403, r#"{"message":"Your account has been suspended"}"#, KeyInvalid),
            (403, r#"{"message":"您的账号已被封禁"}"#, KeyInvalid),
            (403, r#"{"message":"balance is insufficient for Pro models"}"#, NoMoney),
            (403, r#"{"message":"Sorry, this service is not available in your region"}"#, Transient),
            (403, r#"{"code":30003,"message":"Real-name verification is required to use this model"}"#, ModelRefused),
            (403, r#"{"message":"请完成实名认证后使用"}"#, ModelRefused),
            (403, r#"{"message":"This model is disabled for your account"}"#, ModelRefused),
            (403, r#"{"message":"model access denied: token has no permission"}"#, ModelRefused),
        ];
        for (status, body, expected) in rows {
            assert_eq!(meaning(*status, body), *expected, "{status} {body}");
        }
    }

    #[test]
    fn what_no_rule_knows_never_kills_a_key() {
        for (status, body) in [
            (403, r#"{"message":"forbidden"}"#),
            (403, ""),
            (403, "<html>Access denied</html>"),
            (500, r#"{"error":{"message":"upstream exploded"}}"#),
            (503, r#"{"code":50603,"message":"System is too busy now"}"#),
            (504, ""),
        ] {
            assert_eq!(meaning(status, body), Meaning::Transient, "{status} {body}");
        }
    }
}
