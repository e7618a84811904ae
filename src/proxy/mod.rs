//! The OpenAI-compatible `/v1/*` gateway: access keys are checked in memory, the request body is read
//! once, and the request goes to `{upstream}/v1/*` on a key picked from the in-memory pool, failing
//! over to other keys until the first byte reaches the caller. The hot path reads no database: what
//! it learns goes to the pool's buffer, which the writer task drains in batches.

pub mod auth;
pub mod billing;
pub mod cors;
pub mod metrics;
pub mod relay;
pub mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

use crate::domain::keys::KeyStatus;
use crate::domain::proxy::{AttemptClass, classify_failure, is_failure};
use crate::domain::usage::StateChange;
use crate::pool::{KeySlot, Verdict};
use crate::state::AppState;
use metrics::Outcome;
use relay::{EndCheck, InflightGuard, Ledger, Relay};
use upstream::UpstreamClient;

/// Largest failure answer read to classify it.
const FAILURE_BODY_LIMIT: usize = 1024 * 1024;
/// Answers of known length up to this size are read whole and sent in one piece; larger ones and
/// streams pass through chunk by chunk.
const WHOLE_BODY_LIMIT: u64 = 64 * 1024;

/// An error in OpenAI's JSON shape: `{"error":{"message","type","code"}}`.
pub fn openai_error(status: StatusCode, message: &str, kind: &str, code: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": { "message": message, "type": kind, "code": code } }))
}

fn with_retry_after(mut res: HttpResponse, secs: i64) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// Any method on `/v1/*`.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<UpstreamClient>,
) -> HttpResponse {
    let runtime = state.pool.runtime();
    let origins = &runtime.proxy().cors_origins;
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return cors::preflight(&req, origins);
    }
    let mut res = handle(&req, payload, &state, &client).await;
    cors::decorate(&req, origins, &mut res);
    res
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &web::Data<AppState>,
    client: &UpstreamClient,
) -> HttpResponse {
    let started = Instant::now();
    let now = state.now_ms();
    state.metrics.inflight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ledger = Ledger {
        state: state.clone(),
        started,
        at: now,
        access_key_id: None,
        method: req.method().to_string(),
        path: req.path().chars().take(200).collect(),
        model: None,
        attempts: 0,
        ttfb: None,
        closed: std::cell::Cell::new(false),
    };
    let refuse = |ledger: &Ledger, res: HttpResponse, outcome: Outcome, error: &str| {
        ledger.close(res.status().as_u16(), outcome, None, Some(error.to_owned()));
        res
    };

    let header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(token) = header.and_then(crate::domain::access_token::from_authorization) else {
        let res = openai_error(
            StatusCode::UNAUTHORIZED,
            "Missing access key: send `Authorization: Bearer <access key>` (create one in keypool's settings).",
            "invalid_request_error",
            "missing_api_key",
        );
        return refuse(&ledger, res, Outcome::CallerError, "missing access key");
    };
    let Some(access_key_id) = state.access_keys.authenticate(token) else {
        let res = openai_error(
            StatusCode::UNAUTHORIZED,
            "Unknown or revoked access key.",
            "invalid_request_error",
            "invalid_api_key",
        );
        return refuse(&ledger, res, Outcome::CallerError, "unknown access key");
    };
    ledger.access_key_id = Some(access_key_id);

    let runtime = state.pool.runtime();
    let settings = runtime.proxy();
    if req.method() == Method::GET {
        match req.path() {
            "/v1/dashboard/billing/subscription" => {
                let res = billing::subscription(&state.pool);
                ledger.close(200, Outcome::Ok, None, None);
                return res;
            }
            "/v1/dashboard/billing/usage" => {
                let res = billing::usage();
                ledger.close(200, Outcome::Ok, None, None);
                return res;
            }
            "/v1/models" if req.query_string().is_empty() => {
                if let Some(res) = state.models_cache.get(now) {
                    ledger.close(200, Outcome::Ok, None, None);
                    return res;
                }
            }
            _ => {}
        }
    }

    let limit = settings.max_body_mb as usize * 1024 * 1024;
    let body = match read_body(req, payload, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            let message = format!(
                "The request body is larger than keypool's limit of {} MB (setting max_body_mb).",
                settings.max_body_mb
            );
            let res = openai_error(StatusCode::PAYLOAD_TOO_LARGE, &message, "invalid_request_error", "body_too_large");
            return refuse(&ledger, res, Outcome::CallerError, "body too large");
        }
        Err(BodyError::Broken(e)) => {
            let message = format!("The request body could not be read: {e}");
            let res = openai_error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", "unreadable_body");
            return refuse(&ledger, res, Outcome::CallerError, "unreadable body");
        }
    };
    ledger.model = model_of(&body);

    let incident = state.pool.incident.active(now).is_some();
    let attempts_allowed = if incident { 1 } else { settings.max_attempts.max(1) };
    let url = match req.uri().query() {
        Some(q) => format!("{}{}?{q}", runtime.upstream, req.path()),
        None => format!("{}{}", runtime.upstream, req.path()),
    };
    let awc = client.get(Duration::from_secs(settings.connect_timeout_s.into()));
    let first_byte = Duration::from_secs(settings.first_byte_timeout_s.into());
    let idle = Duration::from_secs(settings.idle_timeout_s.into());
    let listed = upstream::connection_listed(req.headers());

    let mut tried: Vec<i64> = Vec::new();
    let mut upstream_time = Duration::ZERO;
    let mut last: Option<Failure> = None;
    while (tried.len() as u32) < attempts_allowed {
        let at = state.now_ms();
        let Some(slot) = state.pool.pick(&tried, at) else { break };
        tried.push(slot.id);
        ledger.attempts = tried.len() as u32;
        let guard = InflightGuard::new(slot.clone());

        let mut up = awc.request(req.method().clone(), url.as_str()).no_decompress().timeout(first_byte);
        for (name, value) in req.headers() {
            if upstream::forward_request_header(name) && !listed.iter().any(|l| l == name.as_str()) {
                up = up.append_header((name.clone(), value.clone()));
            }
        }
        up = up.insert_header((header::AUTHORIZATION, format!("Bearer {}", slot.key)));
        let sent = Instant::now();
        let result = up.send_body(body.clone()).await;
        let waited = sent.elapsed();
        upstream_time += waited;
        state.metrics.upstream_latency.observe(waited);

        let res = match result {
            Ok(res) => res,
            Err(e) => {
                let (message, timeout) = match e {
                    awc::error::SendRequestError::Timeout => {
                        (format!("no answer within {} s (first_byte_timeout_s)", settings.first_byte_timeout_s), true)
                    }
                    awc::error::SendRequestError::Connect(c) => (format!("cannot connect to the upstream: {c}"), false),
                    other => (format!("upstream request failed: {other}"), false),
                };
                let class = AttemptClass::Transient(message.clone());
                learn(state, &slot, &class, incident);
                last = Some(Failure { class, answer: None, timeout });
                continue;
            }
        };
        let status = res.status().as_u16();
        if is_failure(status) {
            let retry_after = res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let (status_code, headers) = (res.status(), res.headers().clone());
            let failure_body = res.timeout(idle).body().limit(FAILURE_BODY_LIMIT).await.unwrap_or_default();
            let class = classify_failure(status, retry_after.as_deref(), &failure_body);
            learn(state, &slot, &class, incident);
            let answer = Answer { status: status_code, headers, body: failure_body };
            last = Some(Failure { class, answer: Some(answer), timeout: false });
            continue;
        }

        // The answer goes to the caller: no failover from here on.
        state.pool.incident.record_success();
        ledger.ttfb = Some(started.elapsed());
        let mut out = HttpResponse::build(res.status());
        let upstream_listed = upstream::connection_listed(res.headers());
        for (name, value) in res.headers() {
            if upstream::forward_response_header(name) && !upstream_listed.iter().any(|l| l == name.as_str()) {
                out.append_header((name.clone(), value.clone()));
            }
        }
        let content_type =
            res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let sse =
            content_type.starts_with("text/event-stream") && !res.headers().contains_key(header::CONTENT_ENCODING);
        let length =
            res.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        out.insert_header(("x-accel-buffering", "no"));
        let cache_models = req.method() == Method::GET && req.path() == "/v1/models" && req.query_string().is_empty();
        let stream = Box::pin(res);
        state.metrics.overhead.observe(started.elapsed().saturating_sub(upstream_time));
        // A small answer of known length is read whole and sent in one piece (fewer writes; and if the
        // upstream breaks off, the caller gets a clean 502 instead of a cut body). The model list too,
        // which chat clients ask for often: it is kept for a minute.
        let small = !sse && length.is_some_and(|n| n <= WHOLE_BODY_LIMIT);
        if small || (cache_models && status == 200) {
            let check = EndCheck { expected_len: length, expect_done: false };
            let relay = Relay::new(stream, idle, false, status, check, ledger, guard);
            let mut whole = BytesMut::with_capacity(length.unwrap_or(0) as usize);
            let mut chunks = std::pin::pin!(relay);
            while let Some(chunk) = chunks.next().await {
                match chunk {
                    Ok(c) => whole.extend_from_slice(&c),
                    Err(e) => {
                        return openai_error(
                            StatusCode::BAD_GATEWAY,
                            &format!("The upstream's answer broke off: {e}"),
                            "upstream_error",
                            "stream_interrupted",
                        );
                    }
                }
            }
            let whole = whole.freeze();
            if cache_models && status == 200 {
                state.models_cache.put(now, &content_type, whole.clone());
            }
            return out.body(whole);
        }
        let check =
            EndCheck { expected_len: length, expect_done: status == 200 && req.path().ends_with("/completions") };
        let relay = Relay::new(stream, idle, sse, status, check, ledger, guard);
        return match length {
            Some(n) if !sse => out.body(SizedStream::new(n, relay)),
            _ => out.streaming(relay),
        };
    }

    // Nothing was delivered.
    let attempts = tried.len();
    let (res, outcome, key_id) = match last {
        None => {
            let wait = state.pool.next_cooling_end().map_or(30, |end| ((end - now) / 1000).clamp(1, 3600));
            let res = with_retry_after(
                openai_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "No upstream key is available right now: every key is invalid, depleted, cooling down or \
                     unchecked. Add or check keys in keypool's admin.",
                    "service_unavailable",
                    "no_available_key",
                ),
                wait,
            );
            (res, Outcome::NoKey, None)
        }
        Some(f) => {
            let key = tried.last().copied();
            let message = f.class.message().to_owned();
            let res = match (f.class, f.answer) {
                (AttemptClass::KeyInvalid(_) | AttemptClass::KeyDepleted(_), _) => with_retry_after(
                    openai_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!(
                            "The {attempts} upstream key(s) tried were unusable (last: {message}); they are now out of \
                             rotation. Try again."
                        ),
                        "service_unavailable",
                        "no_available_key",
                    ),
                    1,
                ),
                (_, Some(answer)) => answer.into_response(),
                (_, None) if f.timeout => openai_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("The upstream did not answer in time ({message})."),
                    "upstream_error",
                    "upstream_timeout",
                ),
                (_, None) => openai_error(
                    StatusCode::BAD_GATEWAY,
                    &format!("The upstream could not be reached ({message})."),
                    "upstream_error",
                    "upstream_unreachable",
                ),
            };
            ledger.close(res.status().as_u16(), Outcome::UpstreamError, key, Some(message));
            state.metrics.overhead.observe(started.elapsed().saturating_sub(upstream_time));
            return res;
        }
    };
    ledger.close(res.status().as_u16(), outcome, key_id, Some("no key available".to_owned()));
    res
}

/// An upstream answer read whole (a failure, or a small delivered one).
struct Answer {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn into_response(self) -> HttpResponse {
        let mut out = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            if upstream::forward_response_header(name) {
                out.append_header((name.clone(), value.clone()));
            }
        }
        out.body(self.body)
    }
}

struct Failure {
    class: AttemptClass,
    answer: Option<Answer>,
    timeout: bool,
}

/// Counts a failed attempt and applies what it says about the key (nothing during an incident).
fn learn(state: &AppState, slot: &Arc<KeySlot>, class: &AttemptClass, incident: bool) {
    let now = state.now_ms();
    state.pool.count_attempt(slot.id, true, now);
    state.metrics.retry(class.cause());
    let mut frozen = incident;
    if class.is_correlated_kind() {
        let retry_after = match class {
            AttemptClass::RateLimited { retry_after_s, .. } => *retry_after_s,
            _ => None,
        };
        let verdict = state.pool.incident.record_failure(slot.id, now, retry_after, class.message());
        if let Verdict::IncidentStarted(keys) = &verdict {
            // Those keys were cooled for the incident's 429s, not for anything of their own.
            for other in keys.iter().filter_map(|id| state.pool.slot(*id)) {
                if state.pool.is_cooling(&other, now) {
                    let reason = "upstream incident: the rate limit was not this key's".to_owned();
                    let change = StateChange {
                        key_id: other.id,
                        status: KeyStatus::Active,
                        reason,
                        at: now,
                        cooling_until: None,
                    };
                    state.pool.change_state(&other, change);
                }
            }
        }
        frozen |= verdict.is_incident();
    }
    if frozen {
        return;
    }
    let Some(status) = class.key_status() else { return };
    let cooling_until = match class {
        AttemptClass::RateLimited { retry_after_s, .. } => {
            let secs = retry_after_s.unwrap_or(state.pool.runtime().proxy().cooldown_s.into()).clamp(1, 3600);
            Some(now + secs as i64 * 1000)
        }
        _ => None,
    };
    state.pool.change_state(
        slot,
        StateChange { key_id: slot.id, status, reason: class.message().to_owned(), at: now, cooling_until },
    );
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// Reads the whole body (so it can be resent to another key), refusing more than `limit` bytes.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes, BodyError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The `model` of a JSON request body, for the request log.
fn model_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Model {
        model: Option<String>,
    }
    if body.first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Model>(body).ok()?.model.map(|m| m.chars().take(200).collect())
}
