//! Why something happened to a key: why it is in its state, why its last check failed, why a (key,
//! model) pair is blocked. Stored as a code with parameters — JSON such as
//! `{"code":"balance_low","balance":"-0.01"}` in `keys.status_reason`, `keys.last_error`,
//! `key_events.reason` and `key_model_blocks.reason` — and rendered from the catalogues
//! (`reason.CODE`, the parameters as its placeholders; see `i18n::reason_text`), so each language reads
//! its own words. The parameters are data: a balance, an HTTP status, the upstream's own message.
//! A sentence stored before reasons had codes (`balance -0.01 at or below the minimum`, `enabled by
//! admin`, `HTTP 401: …`) is read back as the reason it says, so older rows need no migration; any
//! other text reads back as [`Reason::Text`] and is shown as it is.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// A check read a balance above the minimum.
    Balance {
        balance: String,
    },
    /// A check read a balance at or below the minimum.
    BalanceLow {
        balance: String,
    },
    /// The upstream answered this status; `message` is its own words (may be empty).
    Upstream {
        status: u16,
        message: String,
    },
    /// No answer in time.
    Timeout,
    /// No answer: the connection failed (`detail` is the client's own words).
    Connection {
        detail: String,
    },
    /// An answer that could not be read.
    Unreadable {
        detail: String,
    },
    /// What the one-token probe call after the balance answer met.
    Probe {
        reason: Box<Reason>,
    },
    /// What a browser check (client mode) reported without an answer.
    Browser {
        detail: String,
    },
    DisabledByAdmin,
    EnabledByAdmin,
    CoolingEnded,
    /// A text stored before reasons had codes (or a code this version does not know).
    #[serde(skip)]
    Text(String),
}

impl Reason {
    pub fn upstream(status: u16, message: &str) -> Self {
        Self::Upstream { status, message: message.trim().to_owned() }
    }

    pub fn probe(reason: Reason) -> Self {
        Self::Probe { reason: Box::new(reason) }
    }

    /// The stored form.
    pub fn encode(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    }

    /// The stored form read back: a code, a sentence of an older version, else a [`Reason::Text`].
    pub fn decode(stored: &str) -> Self {
        if stored.starts_with('{')
            && let Ok(reason) = serde_json::from_str(stored)
        {
            return reason;
        }
        Self::from_sentence(stored).unwrap_or_else(|| Self::Text(stored.to_owned()))
    }

    /// The reasons older versions stored as English sentences.
    fn from_sentence(text: &str) -> Option<Self> {
        let detail = |d: &str| d.trim().to_owned();
        Some(match text.trim() {
            "disabled by admin" => Self::DisabledByAdmin,
            "enabled by admin" => Self::EnabledByAdmin,
            "cooling ended" => Self::CoolingEnded,
            "timeout" => Self::Timeout,
            t => {
                if let Some(rest) = t.strip_prefix("probe: ") {
                    Self::probe(Self::decode(rest))
                } else if let Some(d) = t.strip_prefix("connection error: ") {
                    Self::Connection { detail: detail(d) }
                } else if let Some(d) = t.strip_prefix("unreadable answer: ") {
                    Self::Unreadable { detail: detail(d) }
                } else if let Some(d) = t.strip_prefix("browser: ") {
                    Self::Browser { detail: detail(d) }
                } else if let Some(b) =
                    t.strip_prefix("balance ").and_then(|r| r.strip_suffix(" at or below the minimum"))
                {
                    Self::BalanceLow { balance: b.to_owned() }
                } else if let Some(b) = t.strip_prefix("balance ").filter(|b| b.parse::<f64>().is_ok()) {
                    Self::Balance { balance: b.to_owned() }
                } else if let Some(rest) = t.strip_prefix("HTTP ") {
                    let (status, message) = rest.split_once(": ").unwrap_or((rest, ""));
                    Self::upstream(status.parse().ok()?, message)
                } else {
                    return None;
                }
            }
        })
    }

    /// The catalogue key of the message and its parameters (a [`Reason::Probe`]'s `reason` parameter
    /// is the inner reason, rendered by the caller; a [`Reason::Text`] has no key).
    pub fn message(&self) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        Some(match self {
            Self::Balance { balance } => ("reason.balance", vec![("balance", balance.clone())]),
            Self::BalanceLow { balance } => ("reason.balance_low", vec![("balance", balance.clone())]),
            Self::Upstream { status, message } if message.is_empty() => {
                ("reason.upstream_status", vec![("status", status.to_string())])
            }
            Self::Upstream { status, message } => {
                ("reason.upstream", vec![("status", status.to_string()), ("message", message.clone())])
            }
            Self::Timeout => ("reason.timeout", vec![]),
            Self::Connection { detail } => ("reason.connection", vec![("detail", detail.clone())]),
            Self::Unreadable { detail } => ("reason.unreadable", vec![("detail", detail.clone())]),
            Self::Probe { .. } => ("reason.probe", vec![]),
            Self::Browser { detail } => ("reason.browser", vec![("detail", detail.clone())]),
            Self::DisabledByAdmin => ("reason.disabled_by_admin", vec![]),
            Self::EnabledByAdmin => ("reason.enabled_by_admin", vec![]),
            Self::CoolingEnded => ("reason.cooling_ended", vec![]),
            Self::Text(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_through_their_stored_form() {
        let all = [
            Reason::Balance { balance: "14".into() },
            Reason::BalanceLow { balance: "-0.01".into() },
            Reason::upstream(401, "Api key is invalid"),
            Reason::upstream(429, ""),
            Reason::Timeout,
            Reason::Connection { detail: "refused".into() },
            Reason::Unreadable { detail: "not JSON".into() },
            Reason::probe(Reason::upstream(403, "{\"a\":1}")),
            Reason::Browser { detail: "Failed to fetch".into() },
            Reason::DisabledByAdmin,
            Reason::EnabledByAdmin,
            Reason::CoolingEnded,
        ];
        for reason in all {
            let stored = reason.encode();
            assert!(stored.starts_with("{\"code\":"), "{stored}");
            assert_eq!(Reason::decode(&stored), reason, "{stored}");
            // Each key is in both catalogues: `source::every_catalogue_key_named_in_the_source_…`.
            let key = reason.message().map(|(k, _)| k).unwrap_or_default();
            assert!(key.starts_with("reason."), "{key}");
        }
        assert_eq!(
            Reason::decode("{\"code\":\"balance_low\",\"balance\":\"0\"}"),
            Reason::BalanceLow { balance: "0".into() }
        );
    }

    #[test]
    fn sentences_of_older_versions_read_back_as_their_reasons() {
        let cases = [
            ("balance -0.01 at or below the minimum", Reason::BalanceLow { balance: "-0.01".into() }),
            ("balance 14", Reason::Balance { balance: "14".into() }),
            ("enabled by admin", Reason::EnabledByAdmin),
            ("disabled by admin", Reason::DisabledByAdmin),
            ("cooling ended", Reason::CoolingEnded),
            ("timeout", Reason::Timeout),
            ("HTTP 401: Api key is invalid", Reason::upstream(401, "Api key is invalid")),
            ("HTTP 500", Reason::upstream(500, "")),
            ("probe: HTTP 401: no", Reason::probe(Reason::upstream(401, "no"))),
            ("connection error: refused", Reason::Connection { detail: "refused".into() }),
            ("unreadable answer: <html>", Reason::Unreadable { detail: "<html>".into() }),
            ("browser: Failed to fetch", Reason::Browser { detail: "Failed to fetch".into() }),
        ];
        for (stored, reason) in cases {
            assert_eq!(Reason::decode(stored), reason, "{stored}");
        }
    }

    #[test]
    fn other_texts_and_unknown_codes_read_back_as_text() {
        for stored in ["rate limited", "balance low", "HTTP x", "{\"code\":\"later\"}", "{oops"] {
            assert_eq!(Reason::decode(stored), Reason::Text(stored.into()));
            assert_eq!(Reason::decode(stored).encode(), stored);
        }
    }
}
