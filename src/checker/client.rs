//! The SiliconFlow client of the checker: one `GET /v1/user/info` per check (and, when configured, a
//! one-token chat completion as proof the key can call), every call with a timeout and a classified
//! outcome.

use std::time::Duration;

use crate::domain::checks::{CheckOutcome, classify};
use crate::domain::reason::Reason;

/// Answers larger than this are not balance answers.
const BODY_LIMIT: usize = 256 * 1024;

pub struct SiliconFlow {
    client: awc::Client,
    base: String,
    probe_model: Option<String>,
}

impl SiliconFlow {
    /// `awc::Client` is not `Send`: build one per thread that checks.
    pub fn new(base: &str, timeout: Duration, probe_model: Option<String>) -> Self {
        // awc's rustls needs a process-wide crypto provider (idempotent; the binary installs it too).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connector = awc::Connector::new().timeout(timeout.min(Duration::from_secs(10)));
        let client = awc::Client::builder().connector(connector).timeout(timeout).finish();
        Self { client, base: base.trim_end_matches('/').to_owned(), probe_model }
    }

    /// Checks one key.
    pub async fn check(&self, key: &str) -> CheckOutcome {
        let request = self.client.get(format!("{}/v1/user/info", self.base)).bearer_auth(key);
        let outcome = match request.send().await {
            Err(e) => return CheckOutcome::Transient(send_error(&e)),
            Ok(mut res) => match res.body().limit(BODY_LIMIT).await {
                Ok(body) => classify(res.status().as_u16(), &body),
                Err(e) => CheckOutcome::Transient(Reason::Unreadable { detail: e.to_string() }),
            },
        };
        match (&outcome, &self.probe_model) {
            (CheckOutcome::Balance(_), Some(model)) => self.probe(key, model).await.unwrap_or(outcome),
            _ => outcome,
        }
    }

    /// A one-token chat completion; `None` when it went through (the balance answer stands).
    async fn probe(&self, key: &str, model: &str) -> Option<CheckOutcome> {
        let body = serde_json::json!({
            "model": model, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 1, "stream": false
        });
        let request = self.client.post(format!("{}/v1/chat/completions", self.base)).bearer_auth(key);
        match request.send_json(&body).await {
            Err(e) => Some(CheckOutcome::Transient(Reason::probe(send_error(&e)))),
            Ok(mut res) if !res.status().is_success() => {
                let body = res.body().limit(BODY_LIMIT).await.unwrap_or_default();
                Some(match classify(res.status().as_u16(), &body) {
                    CheckOutcome::Invalid(r) => CheckOutcome::Invalid(Reason::probe(r)),
                    CheckOutcome::Transient(r) => CheckOutcome::Transient(Reason::probe(r)),
                    CheckOutcome::Balance(_) => {
                        CheckOutcome::Transient(Reason::probe(Reason::upstream(res.status().as_u16(), "")))
                    }
                })
            }
            Ok(_) => None,
        }
    }
}

fn send_error(e: &awc::error::SendRequestError) -> Reason {
    match e {
        awc::error::SendRequestError::Timeout => Reason::Timeout,
        other => Reason::Connection { detail: other.to_string() },
    }
}
